//! `list`: the archives of a directory and whether each is intact, from what is cheap to know.

use super::InspectError;
use crate::archive::probe::{self, Structure};
use crate::archive::reader;
use crate::store::{self, state};
use serde::Serialize;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Read back completely without a problem, and the file is unchanged since.
    Ok,
    /// Never read back (or changed since), and nothing cheap shows damage.
    #[default]
    Unverified,
    /// The last read-back failed, or the file is visibly cut off or unreadable.
    Damaged,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Ok => "ok",
            State::Unverified => "unverified",
            State::Damaged => "damaged",
        }
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Listed {
    pub name: String,
    pub path: PathBuf,
    pub host: String,
    pub role: String,
    /// Backup time, UTC (RFC 3339).
    pub time: String,
    #[serde(skip)]
    pub timestamp: jiff::Timestamp,
    pub size: u64,
    pub compression: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<i32>,
    /// age-encrypted (from the file name: known without a key).
    pub encrypted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// From the last read-back (index.json is at the end of the archive, which `list` does not read).
    pub files: Option<u64>,
    pub warnings: Option<u64>,
    pub state: State,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<String>,
    /// A restore-safety archive (the undo copy a restore took), listed in its own section.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub safety: bool,
}

/// The archives of `host` (all hosts when `None`) in `dir`, newest first, reading only meta.json of each.
/// A directory that does not exist yet holds no archives.
pub fn list(dir: &Path, host: Option<&str>) -> Result<Vec<Listed>, InspectError> {
    let found = match store::list(dir, host) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(InspectError::io(dir)(e)),
    };
    let records = state::load(dir).archives;
    // Each archive costs a few small reads and, when unverified, a walk over its block headers: spread them
    // over the cores (the order of the result is kept).
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let per = found.len().div_ceil(workers).max(1);
    let records = &records;
    let one = |l: &store::Listed| {
        let base = Listed {
            name: l.name.to_string(),
            host: l.name.host.clone(),
            role: l.name.role.to_string(),
            timestamp: l.name.time,
            size: l.size,
            compression: l.name.compression.to_string(),
            encrypted: l.name.encrypted,
            ..Default::default()
        };
        list_one(dir, base, records.get(&l.name.to_string()))
    };
    Ok(std::thread::scope(|scope| {
        let handles: Vec<_> = found
            .chunks(per)
            .map(|chunk| scope.spawn(move || chunk.iter().map(one).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    }))
}

/// The restore-safety archives of `host` (all hosts when `None`) in `dir`, newest first, judged like backups.
pub fn list_safety(dir: &Path, host: Option<&str>) -> Result<Vec<Listed>, InspectError> {
    let found = match crate::store::safety::list(dir, host) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(InspectError::io(dir)(e)),
    };
    let records = state::load(dir).archives;
    let one = |f: crate::store::safety::SafetyFile| {
        let rec = records.get(&f.file);
        let base = Listed {
            name: f.file,
            host: f.host,
            role: crate::archive::name::SAFETY_TAG.into(),
            timestamp: f.time,
            size: f.size,
            compression: crate::archive::compression::Compression::Zstd.to_string(),
            encrypted: f.encrypted,
            safety: true,
            ..Default::default()
        };
        list_one(dir, base, rec)
    };
    Ok(found.into_iter().map(one).collect())
}

/// `base` (what the file name says) completed with its path, time and state.
fn list_one(dir: &Path, base: Listed, rec: Option<&state::Record>) -> Listed {
    let path = dir.join(&base.name);
    let mut out = Listed {
        path: path.clone(),
        time: base.timestamp.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ..base
    };
    (out.state, out.reason) = judge(&path, rec, &mut out);
    out
}

/// The state of one archive from what is cheap to know: its meta.json, its framing, and the last read-back.
fn judge(path: &Path, rec: Option<&state::Record>, out: &mut Listed) -> (State, Option<String>) {
    let damaged = |why: String| (State::Damaged, Some(why));
    // Without a key an encrypted archive is listed from its name, its size and the last read-back; age has no
    // framing to check without decrypting.
    let mut unreadable = None;
    if out.encrypted && crate::crypt::installed().is_empty() {
        unreadable = Some("encrypted: --identity or --passphrase-file shows more".to_string());
    } else {
        match reader::read_meta(path) {
            Ok(meta) => {
                // meta.json wins over the file name for what the archive is: it is what it says about itself.
                out.role = meta.role.to_string();
                out.host = meta.host.clone();
                out.compression = meta.compression.algorithm.clone();
                out.level = Some(meta.compression.level);
                out.purpose = Some(meta.purpose.clone());
            }
            Err(e) => match crate::crypt::in_io(&e) {
                Some(c @ crate::crypt::CryptError::WrongKey(_)) => {
                    unreadable = Some(format!("encrypted: {c}"))
                }
                Some(c) => return damaged(c.to_string()),
                // A cut-off file is the likelier story, and the more useful one to tell.
                None => match framing(path) {
                    Some(Structure::Broken(why)) if !out.encrypted => return damaged(why),
                    _ => return damaged(format!("cannot read meta.json: {e}")),
                },
            },
        }
    }
    // The time stays the file name's: it is what the list is sorted by and what retention goes by.
    let Ok(file) = File::open(path) else {
        return damaged("cannot open".into());
    };
    let Ok(md) = file.metadata() else {
        return damaged("cannot stat".into());
    };
    if let Some(r) = rec {
        out.verified = Some(r.time.clone());
        if r.matches(&md) {
            if let Some(t) = &r.totals {
                out.files = Some(t.files);
                out.warnings = Some(t.warnings);
            }
            let (n, time) = (r.problems, &r.time);
            return match r.ok {
                true => (State::Ok, None),
                false => damaged(format!("{n} problem(s) found by the last verify ({time})")),
            };
        }
        if md.len() < r.size {
            let (now, then) = (md.len(), r.size);
            return damaged(format!("cut off: {now} bytes, {then} when it was verified"));
        }
    }
    let changed = rec.map(|_| "changed since it was last verified".to_string());
    if out.encrypted {
        return (State::Unverified, unreadable.or(changed));
    }
    // Unverified or changed since: at least check the container's framing (cheap, no decompression).
    match framing(path) {
        Some(Structure::Broken(why)) => damaged(why),
        None => damaged("cannot read".into()),
        Some(_) => (State::Unverified, changed),
    }
}

/// The framing check of [`probe::structure`] on a file, compression from its magic bytes; `None` when the file
/// cannot be read at all.
fn framing(path: &Path) -> Option<Structure> {
    let file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    let mut magic = [0u8; 6];
    let n = std::os::unix::fs::FileExt::read_at(&file, &mut magic, 0).unwrap_or(0);
    probe::structure(&file, len, reader::sniff(&magic[..n])).ok()
}
