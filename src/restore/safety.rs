//! The safety archive: before a restore changes anything, the current version of everything it will replace
//! or remove goes into a normal proxkeep archive (purpose `restore-safety`) in the backup directory, written
//! and verified like a backup. Its index also lists, as `absent`, what the restore will create, so restoring
//! the safety archive removes those again: it undoes the restore.

use crate::archive::format::{
    self, Absent, CompressionInfo, INDEX_PATH, Index, Kind, META_PATH, Meta,
};
use crate::archive::name::safety_file_name;
use crate::archive::reader;
use crate::archive::writer::{ArchiveWriter, is_cancelled};
use crate::backup::{append_item, internal_header, warning_text};
use crate::collect::Item;
use crate::config::{Compression, EncryptionConfig};
use crate::crypt::Keys;
use crate::fsx::{create_private, write_atomic};
use crate::host::{HostFacts, Root};
use crate::output::Log;
use crate::restore::RestoreError;
use crate::restore::plan::Step;
use jiff::Timestamp;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

pub const PURPOSE: &str = "restore-safety";

/// Removes the partial file unless it became the archive.
struct Partial(PathBuf, bool);
impl Drop for Partial {
    fn drop(&mut self) {
        if self.1 {
            let _ = fs::remove_file(&self.0);
        }
    }
}

fn host_path(p: &[u8]) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    Path::new("/").join(std::ffi::OsStr::from_bytes(p))
}

/// Write the safety archive for `changed` (steps that replace or remove something: its current version is
/// stored) and `created` (steps that create something: listed as absent). Returns its path.
#[allow(clippy::too_many_arguments)]
pub fn write(
    target: &Path,
    changed: &[&Step],
    created: &[&Step],
    backup_dir: &Path,
    encryption: Option<&EncryptionConfig>,
    now: Timestamp,
    log: &Log,
    cancel: &AtomicBool,
) -> Result<PathBuf, RestoreError> {
    let err = |why: String| RestoreError::Safety(why);
    let (encryptor, readback_keys, described) = match encryption {
        Some(e) => {
            let seal = e.seal().map_err(|e| err(format!("[encryption]: {e}")))?;
            let (enc, keys) = seal
                .encryptor()
                .map_err(|e| err(format!("cannot start age: {e}")))?;
            (Some(enc), keys, Some(seal.describe()))
        }
        None => (None, Keys::default(), None),
    };
    let check = crate::preflight::directory("backup directory", backup_dir, true);
    if !check.ok {
        return Err(err(check.line()));
    }
    let root = Root::new(target);
    let facts = HostFacts::detect(&root);
    let mut time = Timestamp::from_second(now.as_second()).unwrap_or(now);
    let name = loop {
        let n = safety_file_name(&facts.hostname, time, encryptor.is_some());
        if !backup_dir.join(&n).exists() {
            break n;
        }
        time = Timestamp::from_second(time.as_second() + 1).map_err(|e| err(e.to_string()))?;
    };
    let final_path = backup_dir.join(&name);
    let partial_path = backup_dir.join(crate::preflight::partial_name(&name));
    let file = create_private(&partial_path)
        .map_err(|e| err(format!("cannot create {}: {e}", partial_path.display())))?;
    let mut guard = Partial(partial_path.clone(), true);
    let io_err = |e: std::io::Error| {
        if is_cancelled(&e) {
            RestoreError::Interrupted
        } else {
            err(format!("writing {}: {e}", partial_path.display()))
        }
    };

    let mut categories: Vec<String> = Vec::new();
    for s in changed.iter().chain(created) {
        if !categories.contains(&s.category) {
            categories.push(s.category.clone());
        }
    }
    let meta = Meta {
        format_version: format::FORMAT_VERSION,
        tool: "proxkeep".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        host: facts.hostname.clone(),
        role: facts.role,
        versions: facts.versions.clone(),
        created: time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        created_unix: time.as_second(),
        categories,
        compression: CompressionInfo {
            algorithm: Compression::Zstd.to_string(),
            level: 3,
        },
        root: target.display().to_string(),
        pve_tree_from_db: false,
        purpose: PURPOSE.into(),
        encryption: described,
    };
    let mut w = ArchiveWriter::new(file, Compression::Zstd, 3, 0, encryptor).map_err(io_err)?;
    let meta_json = serde_json::to_vec_pretty(&meta).map_err(|e| err(e.to_string()))?;
    w.append_bytes(
        &internal_header(META_PATH, meta_json.len(), time),
        &meta_json,
    )
    .map_err(io_err)?;
    let mut index = Index::new();
    for s in changed {
        if cancel.load(Ordering::Relaxed) {
            return Err(RestoreError::Interrupted);
        }
        let item = Item {
            host_path: host_path(&s.path),
            category: s.category.clone(),
            kind: s.observed.unwrap_or(Kind::File),
            size: 0,
        };
        append_item(&mut w, &root, &item, &mut index, log, cancel, None).map_err(io_err)?;
    }
    if let Some(warning) = index.warnings.first() {
        // Without it, the undo would be incomplete: better not to start.
        return Err(err(format!(
            "cannot save the current version of {}; nothing was changed (--no-safety-backup restores without it)",
            warning_text(warning)
        )));
    }
    index.absent = created
        .iter()
        .map(|s| Absent {
            category: s.category.clone(),
            path: host_path(&s.path).display().to_string(),
        })
        .collect();
    index.compute_totals();
    let index_json = serde_json::to_vec(&index).map_err(|e| err(e.to_string()))?;
    w.append_bytes(
        &internal_header(INDEX_PATH, index_json.len(), time),
        &index_json,
    )
    .map_err(io_err)?;
    let (_file, written) = w.finish().map_err(io_err)?;
    if cancel.load(Ordering::Relaxed) {
        return Err(RestoreError::Interrupted);
    }
    let read_back = || -> std::io::Result<reader::Verification> {
        let len = fs::metadata(&partial_path)?.len();
        let src = Box::new(File::open(&partial_path)?);
        reader::verify_stream(src, Some(len), &readback_keys, || Some(index.clone()))
    };
    let v =
        read_back().map_err(|e| err(format!("read-back of {}: {e}", partial_path.display())))?;
    if !v.ok() || v.sha256.as_deref() != Some(written.sha256.as_str()) {
        let shown: Vec<String> = v.problems.iter().take(3).map(|p| p.to_string()).collect();
        return Err(err(format!(
            "read-back verification failed: {}",
            shown.join("; ")
        )));
    }
    fs::rename(&partial_path, &final_path)
        .map_err(|e| err(format!("rename to {}: {e}", final_path.display())))?;
    guard.1 = false;
    File::open(backup_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| err(format!("fsync {}: {e}", backup_dir.display())))?;
    let sidecar = backup_dir.join(format!("{name}.sha256"));
    if let Err(e) = write_atomic(
        &sidecar,
        format!("{}  {name}\n", written.sha256).as_bytes(),
        0o600,
    ) {
        log.warn(&format!("cannot write {}: {e}", sidecar.display()));
    }
    log.debug(&format!(
        "safety archive {} ({} entries, {} absent)",
        final_path.display(),
        index.entries.len(),
        index.absent.len()
    ));
    Ok(final_path)
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
