//! The safety archive: before a restore changes anything, the current version of everything it will replace
//! or remove goes into a normal proxkeep archive (purpose `restore-safety`) in the backup directory, written
//! and verified like a backup. Its index also lists, as `absent`, what the restore will create, so restoring
//! the safety archive removes those again: it undoes the restore.

use crate::archive::format::{Absent, Index, Kind, Meta};
use crate::archive::name::safety_file_name;
use crate::archive::session::{self, Session, SessionError, Spec, warning_text};
use crate::collect::{Item, append_item};
use crate::config::{Compression, EncryptionConfig};
use crate::host::{HostFacts, Root};
use crate::output::Log;
use crate::restore::RestoreError;
use crate::restore::plan::Step;
use jiff::Timestamp;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

pub const PURPOSE: &str = "restore-safety";

fn host_path(p: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    Path::new("/").join(std::ffi::OsStr::from_bytes(p))
}

impl From<SessionError> for RestoreError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Interrupted => RestoreError::Interrupted,
            SessionError::Failed(why) => RestoreError::Safety(why),
        }
    }
}

/// Write the safety archive for `changed` (steps that replace or remove something: its current version is
/// stored) and `created` (steps that create something: listed as absent). It is named after `host`, the host
/// of the archive being restored (a fresh install's own name is often `localhost`). Returns its path.
#[allow(clippy::too_many_arguments)]
pub fn write(
    host: &str,
    target: &Path,
    changed: &[&Step],
    created: &[&Step],
    backup_dir: &Path,
    encryption: Option<&EncryptionConfig>,
    now: Timestamp,
    log: &Log,
    cancel: &AtomicBool,
) -> Result<PathBuf, RestoreError> {
    let seal = encryption
        .map(EncryptionConfig::seal)
        .transpose()
        .map_err(|e| RestoreError::Safety(format!("[encryption]: {e}")))?;
    let check = crate::preflight::directory("backup directory", backup_dir, true);
    if !check.ok {
        return Err(RestoreError::Safety(check.line()));
    }
    let root = Root::new(target);
    let mut facts = HostFacts::detect(&root);
    facts.hostname = host.to_string();
    let (name, time) = session::free_name(
        now,
        |t| safety_file_name(&facts.hostname, t, seal.is_some()),
        |n| backup_dir.join(n).exists(),
    )?;
    let mut categories: Vec<String> = Vec::new();
    for s in changed.iter().chain(created) {
        if !categories.contains(&s.category) {
            categories.push(s.category.clone());
        }
    }
    let spec = Spec {
        facts: &facts,
        root: target,
        purpose: PURPOSE,
        categories,
        pve_tree_from_db: false,
        compression: Compression::Zstd,
        level: 3,
        threads: 0,
        seal: seal.as_ref(),
        progress: false,
    };
    let mut w = Session::create(backup_dir, name, time, spec, log, cancel)?;
    for s in changed {
        w.check_cancel()?;
        let item = Item {
            host_path: host_path(&s.path),
            category: s.category.as_str().into(),
            kind: s.observed.unwrap_or(Kind::File),
            size: 0,
        };
        append_item(&mut w, &root, &item, None)?;
    }
    if let Some(warning) = w.index.warnings.first() {
        // Without it, the undo would be incomplete: better not to start.
        return Err(RestoreError::Safety(format!(
            "cannot save the current version of {}; nothing was changed (--no-safety-backup restores without it)",
            warning_text(warning)
        )));
    }
    w.index.absent = created
        .iter()
        .map(|s| Absent {
            category: s.category.clone(),
            path: host_path(&s.path).display().to_string(),
        })
        .collect();
    let done = w.finish()?;
    // The read-back was a full verify: recorded, `list` shows it `ok` without reading it again.
    let (sha, totals) = (Some(done.sha256.clone()), Some(done.index.totals.clone()));
    if let Err(e) = std::fs::metadata(&done.path).and_then(|md| {
        let rec = crate::store::state::Record::new(&md, true, sha, 0, totals, PURPOSE);
        crate::store::state::record(backup_dir, &done.name, rec)
    }) {
        log.debug(&format!("safety archive: verification not recorded: {e}"));
    }
    log.debug(&format!(
        "safety archive {} ({} entries, {} absent)",
        done.path.display(),
        done.index.totals.entries,
        done.index.absent.len()
    ));
    Ok(done.path)
}

/// The `absent` list of a safety archive as (category, normalized path) pairs; empty for other archives.
pub fn absent_paths(meta: &Meta, index: &Index) -> Vec<(String, Vec<u8>)> {
    if meta.purpose != PURPOSE {
        return Vec::new();
    }
    index
        .absent
        .iter()
        .filter_map(|a| {
            let p =
                crate::restore::path::normalize(a.path.trim_start_matches('/').as_bytes()).ok()?;
            Some((a.category.clone(), p))
        })
        .collect()
}
