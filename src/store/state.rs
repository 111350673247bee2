//! What proxkeep last found when it read an archive back: `.proxkeep-verify.json` in the archive's directory.
//!
//! `list` must say whether an archive is intact without decompressing it. A full read-back (by `backup` right
//! after writing, or by `verify`) is recorded here with the file's size and mtime; as long as both are unchanged
//! the result still holds. The totals (files, warnings) live in index.json at the *end* of the archive, so the
//! record keeps them too: `list` reads only meta.json and would otherwise not know them.

use crate::archive::format::Totals;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, Metadata};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// File name of the state file, in the backup directory. Hidden, and never parsed as an archive name.
pub const STATE_FILE: &str = ".proxkeep-verify.json";
const VERSION: u32 = 1;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StateFile {
    pub version: u32,
    /// Archive file name → last full read-back.
    #[serde(default)]
    pub archives: BTreeMap<String, Record>,
}

/// One full read-back of an archive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub ok: bool,
    /// When it was read back (RFC 3339, UTC).
    pub time: String,
    /// SHA-256 of the file; absent when the stream could not be read to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub problems: u64,
    /// Size and mtime (ns) of the file when it was read: a change to either voids the result.
    pub size: u64,
    pub mtime_ns: i64,
    /// From index.json, when it could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totals: Option<Totals>,
    /// `backup` (its own read-back) or `verify`.
    pub by: String,
}

/// Size and mtime in nanoseconds: what a record is matched against.
pub fn stamp(md: &Metadata) -> (u64, i64) {
    (
        md.len(),
        md.mtime()
            .saturating_mul(1_000_000_000)
            .saturating_add(md.mtime_nsec()),
    )
}

impl Record {
    pub fn new(
        md: &Metadata,
        ok: bool,
        sha256: Option<String>,
        problems: u64,
        totals: Option<Totals>,
        by: &str,
    ) -> Self {
        let (size, mtime_ns) = stamp(md);
        Record {
            ok,
            time: jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
            sha256,
            problems,
            size,
            mtime_ns,
            totals,
            by: by.to_string(),
        }
    }

    /// Whether the file still is what was read back.
    pub fn matches(&self, md: &Metadata) -> bool {
        stamp(md) == (self.size, self.mtime_ns)
    }
}

/// The records of `dir`. A missing file is an empty state; so is an unreadable or unparsable one, since it is
/// only a cache of read-backs and the next `verify` rewrites it.
pub fn load(dir: &Path) -> StateFile {
    fs::read(dir.join(STATE_FILE))
        .ok()
        .and_then(|data| serde_json::from_slice::<StateFile>(&data).ok())
        .unwrap_or_default()
}

/// Record the read-back of `dir/name`, dropping records of archives that no longer exist (retention removes
/// them). Concurrent writers (a backup finishing while a `verify --all` runs) are serialized with an exclusive
/// flock on the directory, so neither loses the other's record.
pub fn record(dir: &Path, name: &str, rec: Record) -> io::Result<()> {
    let dir_fd = File::open(dir)?;
    rustix::fs::flock(&dir_fd, rustix::fs::FlockOperation::LockExclusive)?;
    let mut state = load(dir);
    state.version = VERSION;
    state.archives.insert(name.to_string(), rec);
    state.archives.retain(|n, _| dir.join(n).is_file());
    let mut data = serde_json::to_vec_pretty(&state).map_err(io::Error::other)?;
    data.push(b'\n');
    crate::fsx::write_atomic(&dir.join(STATE_FILE), &data, 0o600)
    // The flock ends when `dir_fd` is closed.
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn record_load_prune_and_match() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a.tar");
        fs::write(&a, b"abc").unwrap();
        let md = fs::metadata(&a).unwrap();
        record(
            d.path(),
            "a.tar",
            Record::new(&md, true, Some("x".into()), 0, None, "verify"),
        )
        .unwrap();
        record(
            d.path(),
            "gone.tar",
            Record::new(&md, false, None, 2, None, "verify"),
        )
        .unwrap();
        let s = load(d.path());
        assert!(s.archives["a.tar"].ok && s.archives["a.tar"].matches(&md));
        // Only existing archives are kept (gone.tar was recorded and then pruned on the next write).
        fs::write(d.path().join("b.tar"), b"x").unwrap();
        record(
            d.path(),
            "b.tar",
            Record::new(&md, true, None, 0, None, "verify"),
        )
        .unwrap();
        assert_eq!(
            load(d.path()).archives.keys().collect::<Vec<_>>(),
            vec!["a.tar", "b.tar"]
        );
        let mode = fs::metadata(d.path().join(STATE_FILE))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        // A change of the file voids the match.
        fs::write(&a, b"abcd").unwrap();
        assert!(!load(d.path()).archives["a.tar"].matches(&fs::metadata(&a).unwrap()));
        // Garbage in the state file is an empty state, not an error.
        fs::write(d.path().join(STATE_FILE), b"{not json").unwrap();
        assert!(load(d.path()).archives.is_empty());
    }
}
