//! `show`, `ls` and `cat`: reading an archive's meta, index and entries sequentially.

use super::{InspectError, normalize_entry_path, open_tar};
use crate::archive::format::{
    Absent, CommandRecord, INDEX_PATH, Index, Kind, META_PATH, Meta, Skipped, Totals, Warning,
    path_fields, read_capped, self_cap,
};
use crate::fsx::hash_reader;
use serde::Serialize;
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Meta and index of an archive: reads (decompresses) it to its end, since index.json is the last entry.
pub fn read_meta_index(archive: &Path) -> Result<(Meta, Index), InspectError> {
    let mut reader = open_tar(archive)?;
    let offset = reader.offset.clone();
    let broken = |path: Option<&[u8]>, e| InspectError::broken(archive, path, &offset, "", e);
    let damaged = |path: Option<&[u8]>, why| InspectError::damaged(archive, path, None, why);
    let mut meta = None;
    let mut index = None;
    let entries = reader.archive.entries().map_err(|e| broken(None, e))?;
    for (i, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| broken(None, e))?;
        let path = entry.path_bytes().into_owned();
        let want_meta = i == 0 && path == META_PATH.as_bytes();
        if i == 0 && !want_meta {
            let why = "first entry is not proxkeep/meta.json: not a proxkeep archive";
            return Err(damaged(None, why.into()));
        }
        if want_meta || path == INDEX_PATH.as_bytes() {
            let cap =
                self_cap(&path, entry.size(), i as u64).map_err(|w| damaged(Some(&path), w))?;
            let data = read_capped(&mut entry, cap).map_err(|e| broken(Some(&path), e))?;
            let parse_err =
                |e: serde_json::Error| damaged(Some(&path), format!("cannot parse: {e}"));
            if want_meta {
                meta = Some(serde_json::from_slice::<Meta>(&data).map_err(parse_err)?);
            } else {
                index = Some(serde_json::from_slice::<Index>(&data).map_err(parse_err)?);
            }
        } else if index.is_some() {
            let why = "entry found after proxkeep/index.json";
            return Err(damaged(Some(&path), why.into()));
        }
    }
    let meta = meta.ok_or_else(|| damaged(None, "proxkeep/meta.json is missing".into()))?;
    let index = index.ok_or_else(|| damaged(None, "proxkeep/index.json is missing".into()))?;
    Ok((meta, index))
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CategorySummary {
    pub category: String,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    pub commands: u64,
    pub commands_failed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    pub archive: PathBuf,
    pub size: u64,
    pub meta: Meta,
    pub categories: Vec<CategorySummary>,
    pub totals: Totals,
    pub warnings: Vec<Warning>,
    pub absent: Vec<Absent>,
    pub skipped: Vec<Skipped>,
    pub commands: Vec<CommandRecord>,
}

pub fn show(archive: &Path) -> Result<Shown, InspectError> {
    let size = fs::metadata(archive)
        .map_err(InspectError::io(archive))?
        .len();
    let (meta, index) = read_meta_index(archive)?;
    let categories = summarize(&meta.categories, &index);
    Ok(Shown {
        archive: archive.to_path_buf(),
        size,
        meta,
        categories,
        totals: index.totals,
        warnings: index.warnings,
        absent: index.absent,
        skipped: index.skipped,
        commands: index.commands,
    })
}

/// Counts by category, in the archive's category order (then any others by name).
fn summarize(order: &[String], index: &Index) -> Vec<CategorySummary> {
    let mut by: BTreeMap<&str, CategorySummary> = BTreeMap::new();
    let new = |c: &str| CategorySummary {
        category: c.to_string(),
        ..Default::default()
    };
    for e in &index.entries {
        let s = by.entry(&e.category).or_insert_with(|| new(&e.category));
        match e.kind {
            Kind::File => {
                s.files += 1;
                s.bytes += e.size;
            }
            Kind::Dir => s.dirs += 1,
            Kind::Symlink => s.symlinks += 1,
        }
    }
    for c in &index.commands {
        let s = by.entry(&c.category).or_insert_with(|| new(&c.category));
        s.commands += 1;
        s.commands_failed += u64::from(c.status != "ok");
    }
    let mut out: Vec<CategorySummary> = order
        .iter()
        .map(|c| by.remove(c.as_str()).unwrap_or_else(|| new(c)))
        .collect();
    out.extend(by.into_values());
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct LsEntry {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    pub kind: &'static str,
    /// Permission bits, octal.
    pub mode: String,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

fn kind_name(t: tar::EntryType) -> &'static str {
    match Kind::of_tar(t) {
        Some(k) => k.name(),
        None if t == tar::EntryType::Link => "hardlink",
        None => "other",
    }
}

/// Whether archive path `path` is `prefix` or below it (whole components: `etc/pve` matches `etc/pve/x`,
/// not `etc/pve2`). An empty prefix matches everything.
pub fn under_prefix(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.len() > prefix.len()
            && path.starts_with(prefix)
            && path.as_bytes()[prefix.len()] == b'/')
}

/// Call `each` for every entry (under `prefix`) in archive order, from the tar headers themselves, so a
/// damaged archive still lists everything before the damage. Returns how many entries matched.
pub fn ls(
    archive: &Path,
    prefix: Option<&str>,
    mut each: impl FnMut(&LsEntry) -> io::Result<()>,
) -> Result<u64, InspectError> {
    let prefix = prefix.map(normalize_entry_path).unwrap_or_default();
    let mut reader = open_tar(archive)?;
    let offset = reader.offset.clone();
    let broken = |e: io::Error, after: Option<&str>| {
        let at = after.map(|p| format!(" (after {p})")).unwrap_or_default();
        InspectError::broken(archive, None, &offset, &at, e)
    };
    let mut count = 0;
    let mut last: Option<String> = None;
    let (mut first, mut index) = (None, false);
    let entries = reader.archive.entries().map_err(|e| broken(e, None))?;
    for entry in entries {
        let entry = entry.map_err(|e| broken(e, last.as_deref()))?;
        let h = entry.header();
        let (path, path_hex) = path_fields(&entry.path_bytes());
        first.get_or_insert(path == META_PATH);
        index = path == INDEX_PATH;
        if under_prefix(&path, &prefix) {
            let e = LsEntry {
                kind: kind_name(h.entry_type()),
                mode: format!("{:04o}", h.mode().unwrap_or(0) & 0o7777),
                uid: h.uid().unwrap_or(0),
                gid: h.gid().unwrap_or(0),
                size: h.size().unwrap_or(0),
                mtime: h.mtime().unwrap_or(0) as i64,
                target: entry.link_name_bytes().map(|t| path_fields(&t).0),
                path: path.clone(),
                path_hex,
            };
            each(&e).map_err(InspectError::Output)?;
            count += 1;
        }
        last = Some(path);
        // Dropping the entry skips its content, which still runs it through the decompressor.
    }
    // Read the stream to its very end: the compressor's trailing checksum is the last word on the data read.
    reader
        .finish()
        .map_err(|e| InspectError::broken(archive, None, &offset, " at its end", e))?;
    // What `show` and `verify` say of the same file (an empty one has neither).
    let missing = match (first, index) {
        (None, _) => Some("proxkeep/meta.json is missing"),
        (Some(false), _) => Some("first entry is not proxkeep/meta.json: not a proxkeep archive"),
        (_, false) => Some("proxkeep/index.json is missing"),
        _ => None,
    };
    match missing {
        Some(why) => Err(InspectError::damaged(archive, None, None, why)),
        None => Ok(count),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct CatInfo {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// Writes what it reads to `out`, keeping a write error apart from a read error (damage).
struct Tee<'a, R> {
    inner: R,
    out: &'a mut dyn Write,
    failed: Option<io::Error>,
}

impl<R: Read> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Err(e) = self.out.write_all(&buf[..n]) {
            self.failed = Some(e);
            return Err(io::Error::other("output failed"));
        }
        Ok(n)
    }
}

/// Copy the content of entry `path` to `out`, then read on to index.json and check it against the hash stored
/// there. Bytes are written as they are read: on a damaged archive, `out` has everything up to the damage.
pub fn cat(archive: &Path, path: &str, out: &mut dyn Write) -> Result<CatInfo, InspectError> {
    let want = normalize_entry_path(path);
    let mut reader = open_tar(archive)?;
    let offset = reader.offset.clone();
    let mut found: Option<CatInfo> = None;
    let mut index: Option<Index> = None;
    let entries = reader
        .archive
        .entries()
        .map_err(|e| InspectError::broken(archive, None, &offset, "", e))?;
    for (before, entry) in entries.enumerate() {
        let mut entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let before = format!(" before {want} was found");
                return Err(match &found {
                    None => InspectError::broken(archive, None, &offset, &before, e),
                    Some(_) => unchecked(archive, &want, Some(&offset), &e.to_string()),
                });
            }
        };
        let p = entry.path_bytes().into_owned();
        if found.is_none() && p == want.as_bytes() {
            let kind = kind_name(entry.header().entry_type());
            if kind != "file" {
                return Err(InspectError::NotAFile {
                    archive: archive.to_path_buf(),
                    path: want,
                    kind,
                    target: entry.link_name_bytes().map(|t| path_fields(&t).0),
                });
            }
            let mut tee = Tee {
                inner: &mut entry,
                out: &mut *out,
                failed: None,
            };
            let inside = " inside this file (its first bytes were written)";
            let (sha256, size) = hash_reader(&mut tee).map_err(|e| match tee.failed.take() {
                Some(w) => InspectError::Output(w),
                None => InspectError::broken(archive, Some(&p), &offset, inside, e),
            })?;
            out.flush().map_err(InspectError::Output)?;
            found = Some(CatInfo {
                path: want.clone(),
                size,
                sha256,
            });
        } else if p == INDEX_PATH.as_bytes() {
            let cap = self_cap(&p, entry.size(), before as u64).ok();
            let data = cap.and_then(|cap| read_capped(&mut entry, cap).ok());
            index = data.and_then(|d| serde_json::from_slice(&d).ok());
            break;
        }
    }
    let Some(info) = found else {
        return Err(InspectError::NoEntry {
            archive: archive.to_path_buf(),
            path: want,
        });
    };
    let missing = "proxkeep/index.json is missing or unreadable";
    let Some(index) = index else {
        return Err(unchecked(archive, &want, None, missing));
    };
    let damaged = |why: &str| InspectError::damaged(archive, Some(want.as_bytes()), None, why);
    let entry = index
        .entries
        .iter()
        .find(|e| e.path_bytes() == want.as_bytes());
    match entry {
        Some(e) if e.sha256.as_deref() == Some(info.sha256.as_str()) => Ok(info),
        Some(_) => Err(damaged(
            "content hash differs from the index (content damaged or changed): the bytes written are not the ones backed up",
        )),
        None => Err(damaged("in the archive but not in the index")),
    }
}

fn unchecked(archive: &Path, want: &str, offset: Option<&AtomicU64>, why: &str) -> InspectError {
    let at = offset.map(|o| o.load(Ordering::Relaxed));
    let message = format!(
        "{want} was written in full, but the archive is damaged after it ({why}), so its content could not be checked against the index"
    );
    InspectError::damaged(archive, None, at, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert!(under_prefix("etc/pve/x", "etc/pve"));
        assert!(under_prefix("etc/pve", "etc/pve"));
        assert!(!under_prefix("etc/pve2/x", "etc/pve"));
        assert!(!under_prefix("etc", "etc/pve"));
        assert!(under_prefix("anything", ""));
    }
}
