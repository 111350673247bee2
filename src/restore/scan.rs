//! Pass 1 over an archive, before anything is planned or written: every entry's name and type is checked
//! (a hostile archive is refused here, naming the entry), meta.json (first) and index.json (last) are read,
//! the tar headers are compared with the index, and the compressor's own checksum is checked by reading
//! the stream to its end. File contents are not hashed here: pass 2 hashes each file as it writes it and
//! stops before a file whose hash differs from the index.

use crate::archive::format::{FORMAT_VERSION, INDEX_PATH, Index, Kind, META_PATH, Meta, self_cap};
use crate::archive::reader::{Seen, TarReader, mismatches};
use crate::restore::RestoreError;
use crate::restore::path::{Checker, normalize, show};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug)]
pub struct Scan {
    pub meta: Meta,
    pub index: Index,
    /// Contents of the small entries the caller asked for (held files, for their diffs), by normalized name.
    pub captured: HashMap<Vec<u8>, Vec<u8>>,
}

/// Read `archive` through once. `capture(name, size)` says which entries' contents to keep.
pub fn scan(
    archive: &Path,
    capture: &dyn Fn(&[u8], u64) -> bool,
    cancel: &AtomicBool,
) -> Result<Scan, RestoreError> {
    let shown = archive.display().to_string();
    let damaged = |why: String| RestoreError::Damaged {
        archive: shown.clone(),
        why,
    };
    let not_ours = |why: String| RestoreError::NotProxkeep {
        archive: shown.clone(),
        why,
    };
    let mut reader = TarReader::open(archive).map_err(|e| RestoreError::io("open", archive, e))?;
    let offset = reader.offset.clone();
    let mut checker = Checker::default();
    let mut meta: Option<Meta> = None;
    let mut index: Option<Index> = None;
    let mut seen: Vec<Seen> = Vec::new();
    let mut captured = HashMap::new();

    let entries = reader
        .archive
        .entries()
        .map_err(|e| damaged(format!("not a readable tar stream: {e}")))?;
    for entry in entries {
        if cancel.load(Ordering::Relaxed) {
            return Err(RestoreError::Interrupted);
        }
        let mut entry = entry.map_err(|e| {
            damaged(format!(
                "the stream is damaged near byte {}: {e}",
                offset.load(Ordering::Relaxed)
            ))
        })?;
        let tkind = entry.header().entry_type();
        let mut s = Seen::of(entry.path_bytes().into_owned(), &mut entry);
        let raw = std::mem::take(&mut s.path);
        // The name and type are checked before anything else, so a hostile entry is reported as such.
        s.path = checker
            .check(&raw, tkind, s.target.as_deref())
            .map_err(|why| RestoreError::Hostile {
                archive: shown.clone(),
                entry: show(&raw),
                why,
            })?;
        let path = &s.path;
        let size = s.size;
        if meta.is_none() && path != META_PATH.as_bytes() {
            return Err(not_ours(format!(
                "its first entry is {}, not {META_PATH}",
                show(&raw)
            )));
        }
        if index.is_some() {
            return Err(damaged(format!(
                "{}: entry after {INDEX_PATH} (appended to the archive)",
                show(path)
            )));
        }
        let is_meta = path == META_PATH.as_bytes();
        if is_meta || path == INDEX_PATH.as_bytes() {
            let name = show(path);
            if s.kind != Some(Kind::File) {
                return Err(damaged(format!("{name}: not a plausible {name} entry")));
            }
            self_cap(path, size, seen.len() as u64 + 1)
                .map_err(|why| damaged(format!("{name}: {why}")))?;
            let data = read_whole(&mut entry, path, size).map_err(damaged)?;
            if is_meta {
                let m: Meta = serde_json::from_slice(&data)
                    .map_err(|e| not_ours(format!("{META_PATH}: {e}")))?;
                if m.format_version > FORMAT_VERSION {
                    return Err(RestoreError::TooNew {
                        archive: shown,
                        version: m.format_version,
                    });
                }
                meta = Some(m);
            } else {
                index = Some(
                    serde_json::from_slice(&data)
                        .map_err(|e| damaged(format!("{INDEX_PATH}: {e}")))?,
                );
            }
            continue;
        }
        if s.kind == Some(Kind::File) && capture(path, size) {
            let data = read_whole(&mut entry, path, size).map_err(damaged)?;
            captured.insert(path.clone(), data);
        }
        seen.push(s);
    }
    let meta = meta.ok_or_else(|| not_ours("it is empty".into()))?;
    let index = index.ok_or_else(|| {
        damaged(format!(
            "{INDEX_PATH} is missing: the archive was cut short"
        ))
    })?;
    check_end(reader, &index, &seen).map_err(damaged)?;
    Ok(Scan {
        meta,
        index,
        captured,
    })
}

fn read_whole(entry: &mut impl Read, path: &[u8], size: u64) -> Result<Vec<u8>, String> {
    let mut data = Vec::with_capacity(size as usize);
    entry
        .read_to_end(&mut data)
        .map_err(|e| format!("{}: cannot read: {e}", show(path)))?;
    Ok(data)
}

/// After index.json: the rest of the stream (the compressor's trailing checksum, no garbage after the end),
/// then the tar headers against the index. Says why the archive is damaged.
fn check_end(reader: TarReader, index: &Index, seen: &[Seen]) -> Result<(), String> {
    match reader.finish() {
        Ok((_, _, 0)) => {}
        Ok((_, at, junk)) => {
            return Err(format!(
                "{junk} unexpected bytes after the end of the tar stream (near byte {at})"
            ));
        }
        Err(e) => return Err(format!("the stream is damaged at its end: {e}")),
    }
    let problems = compare(index, seen);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(super::first_of(&problems, 5))
    }
}

/// The tar headers against the index: the same entries in the same order, with the same metadata.
fn compare(index: &Index, seen: &[Seen]) -> Vec<String> {
    let mut out = Vec::new();
    if index.entries.len() != seen.len() {
        out.push(format!(
            "the index lists {} entries, the archive holds {}",
            index.entries.len(),
            seen.len()
        ));
    }
    for (e, s) in index.entries.iter().zip(seen) {
        let p = normalize(&e.path_bytes()).unwrap_or_default();
        let name = show(&s.path);
        if p != s.path {
            out.push(format!("{name}: the index has {} at this position", e.path));
            break;
        }
        let kind = s
            .kind
            .expect("the checker admits files, dirs and symlinks only");
        if e.kind != kind {
            out.push(format!(
                "{name}: the index says {:?}, the archive holds {:?}",
                e.kind, kind
            ));
            continue;
        }
        out.extend(mismatches(e, s).into_iter().map(|m| format!("{name}: {m}")));
    }
    out
}
