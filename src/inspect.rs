//! Knowing what you have without extracting anything: `list`, `show`, `ls`, `cat`, `verify` (and `diff`, in
//! [`diff`]). Everything reads archives sequentially with the same reader as the backup's read-back.
//!
//! Commands that stream (`ls`, `cat`) hand out everything they could read before a damaged spot and only then
//! fail with [`InspectError::Damaged`]: on a broken archive the readable part is exactly what an admin needs.

pub mod diff;
pub mod table;

use crate::archive::compression::Compression;
use crate::archive::format::{
    INDEX_PATH, Index, IndexEntry, META_PATH, Meta, Totals, hex, path_fields,
};
use crate::archive::name::ArchiveName;
use crate::archive::probe::{self, Structure};
use crate::archive::reader::{self, Opened, Problem, TarReader};
use crate::store::{self, ResolveError, state};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{} is damaged: {problem}", archive.display())]
    Damaged { archive: PathBuf, problem: Problem },
    #[error("no entry {path:?} in {}", archive.display())]
    NoEntry { archive: PathBuf, path: String },
    #[error("{path} is a {kind} in {}, not a file{}", archive.display(), target.as_ref().map(|t| format!(" (-> {t})")).unwrap_or_default())]
    NotAFile {
        archive: PathBuf,
        path: String,
        kind: &'static str,
        target: Option<String>,
    },
    #[error("cannot write the output: {0}")]
    Output(io::Error),
}

impl InspectError {
    pub fn exit_code(&self) -> i32 {
        match self {
            InspectError::Resolve(_) => crate::exit::USAGE,
            InspectError::Damaged { .. } => crate::exit::DAMAGED,
            _ => crate::exit::FAILED,
        }
    }

    fn io(path: &Path) -> impl FnOnce(io::Error) -> InspectError + '_ {
        move |source| InspectError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn damaged(
        archive: &Path,
        path: Option<&[u8]>,
        offset: Option<u64>,
        message: impl Into<String>,
    ) -> InspectError {
        InspectError::Damaged {
            archive: archive.to_path_buf(),
            problem: Problem {
                path: path.map(|p| path_fields(p).0),
                offset,
                message: message.into(),
            },
        }
    }
}

/// Where ARCHIVE arguments are looked up: the backup dir and this host's name (for `latest`).
pub struct Lookup<'a> {
    pub dir: &'a Path,
    pub host: &'a str,
}

impl Lookup<'_> {
    pub fn resolve(&self, spec: &str) -> Result<PathBuf, InspectError> {
        Ok(store::resolve(spec, self.dir, self.host)?)
    }
}

/// Archive path as given on the command line (`/etc/pve/x`, `./etc/pve/x/`) → as stored (`etc/pve/x`).
pub fn normalize_entry_path(p: &str) -> String {
    let mut s = p.trim_start_matches('/');
    while let Some(rest) = s.strip_prefix("./") {
        s = rest.trim_start_matches('/');
    }
    s.trim_end_matches('/').to_string()
}

// ------------------------------------------------------------------------------------------------
// list
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Read back completely without a problem, and the file is unchanged since.
    Ok,
    /// Never read back (or changed since), and nothing cheap shows damage.
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

/// One line of `list`.
#[derive(Debug, Clone, Serialize)]
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
}

/// The archives of `host` (all hosts when `None`) in `dir`, newest first, reading only meta.json of each.
/// A directory that does not exist yet holds no archives.
pub fn list(dir: &Path, host: Option<&str>) -> Result<Vec<Listed>, InspectError> {
    let found = match store::list(dir, host) {
        Ok(l) => l,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(InspectError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let records = state::load(dir).archives;
    // Each archive costs a few small reads and, when unverified, a walk over its block headers: spread them
    // over the cores (the order of the result is kept).
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let per = found.len().div_ceil(workers).max(1);
    Ok(std::thread::scope(|scope| {
        let handles: Vec<_> = found
            .chunks(per)
            .map(|chunk| {
                let records = &records;
                scope.spawn(move || {
                    chunk
                        .iter()
                        .map(|l| list_one(l, records.get(&l.name.to_string())))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    }))
}

fn list_one(l: &store::Listed, rec: Option<&state::Record>) -> Listed {
    let name = l.name.to_string();
    let mut out = Listed {
        path: l.path.clone(),
        host: l.name.host.clone(),
        role: l.name.role.to_string(),
        time: l.name.time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        timestamp: l.name.time,
        size: l.size,
        compression: l.name.compression.to_string(),
        level: None,
        encrypted: l.name.encrypted,
        purpose: None,
        files: None,
        warnings: None,
        state: State::Unverified,
        reason: None,
        verified: None,
        name,
    };
    let (state, reason) = judge(&l.path, rec, &mut out);
    out.state = state;
    out.reason = reason;
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
            return if r.ok {
                (State::Ok, None)
            } else {
                damaged(format!(
                    "{} problem(s) found by the last verify ({})",
                    r.problems, r.time
                ))
            };
        }
        if md.len() < r.size {
            return damaged(format!(
                "cut off: {} bytes, {} when it was verified",
                md.len(),
                r.size
            ));
        }
    }
    if out.encrypted {
        let reason = match (unreadable, rec.is_some()) {
            (Some(u), _) => Some(u),
            (None, true) => Some("changed since it was last verified".into()),
            (None, false) => None,
        };
        return (State::Unverified, reason);
    }
    // Unverified or changed since: at least check the container's framing (cheap, no decompression).
    match framing(path) {
        Some(Structure::Broken(why)) => damaged(why),
        None => damaged("cannot read".into()),
        Some(_) if rec.is_some() => (
            State::Unverified,
            Some("changed since it was last verified".into()),
        ),
        Some(_) => (State::Unverified, None),
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

// ------------------------------------------------------------------------------------------------
// show, and reading meta + index
// ------------------------------------------------------------------------------------------------

/// Meta and index of an archive: reads (decompresses) it to its end, since index.json is the last entry.
pub fn read_meta_index(archive: &Path) -> Result<(Meta, Index), InspectError> {
    let opened = Opened::open(archive).map_err(InspectError::io(archive))?;
    let mut reader = opened.tar();
    let offset = reader.offset.clone();
    let broken = |path: Option<&[u8]>, e: io::Error| {
        InspectError::damaged(
            archive,
            path,
            Some(offset.load(Ordering::Relaxed)),
            format!("archive stream is damaged: {e}"),
        )
    };
    let mut meta = None;
    let mut index = None;
    let entries = reader.archive.entries().map_err(|e| broken(None, e))?;
    for (i, entry) in entries.enumerate() {
        let mut entry = entry.map_err(|e| broken(None, e))?;
        let path = entry.path_bytes().into_owned();
        let want_meta = i == 0 && path == META_PATH.as_bytes();
        if i == 0 && !want_meta {
            return Err(InspectError::damaged(
                archive,
                None,
                None,
                "first entry is not proxkeep/meta.json: not a proxkeep archive",
            ));
        }
        if want_meta || path == INDEX_PATH.as_bytes() {
            let mut data = Vec::new();
            entry
                .read_to_end(&mut data)
                .map_err(|e| broken(Some(&path), e))?;
            let parse_err = |e: serde_json::Error| {
                InspectError::damaged(archive, Some(&path), None, format!("cannot parse: {e}"))
            };
            if want_meta {
                meta = Some(serde_json::from_slice::<Meta>(&data).map_err(parse_err)?);
            } else {
                index = Some(serde_json::from_slice::<Index>(&data).map_err(parse_err)?);
            }
        } else if index.is_some() {
            return Err(InspectError::damaged(
                archive,
                Some(&path),
                None,
                "entry found after proxkeep/index.json",
            ));
        }
    }
    let meta = meta.ok_or_else(|| {
        InspectError::damaged(archive, None, None, "proxkeep/meta.json is missing")
    })?;
    let index = index.ok_or_else(|| {
        InspectError::damaged(archive, None, None, "proxkeep/index.json is missing")
    })?;
    Ok((meta, index))
}

/// Per-category counts of an archive.
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
    pub warnings: Vec<crate::archive::format::Warning>,
    pub absent: Vec<crate::archive::format::Absent>,
    pub skipped: Vec<crate::archive::format::Skipped>,
    pub commands: Vec<crate::archive::format::CommandRecord>,
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
pub fn summarize(order: &[String], index: &Index) -> Vec<CategorySummary> {
    let mut by: BTreeMap<&str, CategorySummary> = BTreeMap::new();
    for e in &index.entries {
        let s = by
            .entry(e.category.as_str())
            .or_insert_with(|| CategorySummary {
                category: e.category.clone(),
                ..Default::default()
            });
        match e.kind {
            crate::archive::format::Kind::File => {
                s.files += 1;
                s.bytes += e.size;
            }
            crate::archive::format::Kind::Dir => s.dirs += 1,
            crate::archive::format::Kind::Symlink => s.symlinks += 1,
        }
    }
    for c in &index.commands {
        let s = by
            .entry(c.category.as_str())
            .or_insert_with(|| CategorySummary {
                category: c.category.clone(),
                ..Default::default()
            });
        s.commands += 1;
        if c.status != "ok" {
            s.commands_failed += 1;
        }
    }
    let mut out: Vec<CategorySummary> = order
        .iter()
        .map(|c| {
            by.remove(c.as_str()).unwrap_or_else(|| CategorySummary {
                category: c.clone(),
                ..Default::default()
            })
        })
        .collect();
    out.extend(by.into_values());
    out
}

// ------------------------------------------------------------------------------------------------
// ls
// ------------------------------------------------------------------------------------------------

/// One entry as the tar stream has it.
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
    match t {
        tar::EntryType::Regular | tar::EntryType::Continuous => "file",
        tar::EntryType::Directory => "dir",
        tar::EntryType::Symlink => "symlink",
        tar::EntryType::Link => "hardlink",
        _ => "other",
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
    let opened = Opened::open(archive).map_err(InspectError::io(archive))?;
    let mut reader = opened.tar();
    let offset = reader.offset.clone();
    let broken = |e: io::Error, after: Option<&str>| {
        let at = after.map(|p| format!(" (after {p})")).unwrap_or_default();
        InspectError::damaged(
            archive,
            None,
            Some(offset.load(Ordering::Relaxed)),
            format!("archive stream is damaged{at}: {e}"),
        )
    };
    let mut count = 0;
    let mut last: Option<String> = None;
    {
        let entries = reader.archive.entries().map_err(|e| broken(e, None))?;
        for entry in entries {
            let entry = entry.map_err(|e| broken(e, last.as_deref()))?;
            let h = entry.header();
            let (path, path_hex) = path_fields(&entry.path_bytes());
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
    }
    finish_stream(archive, reader)?;
    Ok(count)
}

/// Read the stream to its very end: the compressor's trailing checksum is the last word on the data read.
fn finish_stream(archive: &Path, reader: TarReader) -> Result<(), InspectError> {
    let offset = reader.offset.clone();
    reader.finish().map(|_| ()).map_err(|e| {
        InspectError::damaged(
            archive,
            None,
            Some(offset.load(Ordering::Relaxed)),
            format!("archive stream is damaged at its end: {e}"),
        )
    })
}

// ------------------------------------------------------------------------------------------------
// cat
// ------------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
pub struct CatInfo {
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

/// Copy the content of entry `path` to `out`, then read on to index.json and check it against the hash stored
/// there. Bytes are written as they are read: on a damaged archive, `out` has everything up to the damage.
pub fn cat(archive: &Path, path: &str, out: &mut dyn Write) -> Result<CatInfo, InspectError> {
    let want = normalize_entry_path(path);
    let opened = Opened::open(archive).map_err(InspectError::io(archive))?;
    let mut reader = opened.tar();
    let offset = reader.offset.clone();
    let at = || Some(offset.load(Ordering::Relaxed));
    let mut found: Option<CatInfo> = None;
    let mut index: Option<Index> = None;
    {
        let entries = reader.archive.entries().map_err(|e| {
            InspectError::damaged(
                archive,
                None,
                at(),
                format!("archive stream is damaged: {e}"),
            )
        })?;
        for entry in entries {
            let mut entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    return Err(match &found {
                        None => InspectError::damaged(
                            archive,
                            None,
                            at(),
                            format!("archive stream is damaged before {want} was found: {e}"),
                        ),
                        Some(_) => unchecked(archive, &want, at(), &e.to_string()),
                    });
                }
            };
            let p = entry.path_bytes().into_owned();
            if found.is_none() && p == want.as_bytes() {
                let h = entry.header();
                let kind = kind_name(h.entry_type());
                if kind != "file" {
                    return Err(InspectError::NotAFile {
                        archive: archive.to_path_buf(),
                        path: want,
                        kind,
                        target: entry.link_name_bytes().map(|t| path_fields(&t).0),
                    });
                }
                let (sha256, size) = copy_hashing(&mut entry, out).map_err(|e| match e {
                    Copy::Read(e) => InspectError::damaged(
                        archive,
                        Some(&p),
                        at(),
                        format!("archive stream is damaged inside this file (its first bytes were written): {e}"),
                    ),
                    Copy::Write(e) => InspectError::Output(e),
                })?;
                out.flush().map_err(InspectError::Output)?;
                found = Some(CatInfo {
                    path: want.clone(),
                    size,
                    sha256,
                });
            } else if p == INDEX_PATH.as_bytes() {
                let mut data = Vec::new();
                let read = entry.read_to_end(&mut data);
                index = read.ok().and_then(|_| serde_json::from_slice(&data).ok());
                break;
            }
        }
    }
    let Some(info) = found else {
        return Err(InspectError::NoEntry {
            archive: archive.to_path_buf(),
            path: want,
        });
    };
    let Some(index) = index else {
        return Err(unchecked(
            archive,
            &want,
            None,
            "proxkeep/index.json is missing or unreadable",
        ));
    };
    match index
        .entries
        .iter()
        .find(|e: &&IndexEntry| e.path_bytes() == want.as_bytes())
    {
        Some(e) if e.sha256.as_deref() == Some(info.sha256.as_str()) => Ok(info),
        Some(_) => Err(InspectError::damaged(
            archive,
            Some(want.as_bytes()),
            None,
            "content hash differs from the index (content damaged or changed): the bytes written are not the ones backed up",
        )),
        None => Err(InspectError::damaged(
            archive,
            Some(want.as_bytes()),
            None,
            "in the archive but not in the index",
        )),
    }
}

fn unchecked(archive: &Path, want: &str, offset: Option<u64>, why: &str) -> InspectError {
    InspectError::damaged(
        archive,
        None,
        offset,
        format!(
            "{want} was written in full, but the archive is damaged after it ({why}), so its content could not be checked against the index"
        ),
    )
}

enum Copy {
    Read(io::Error),
    Write(io::Error),
}

fn copy_hashing(r: &mut impl Read, out: &mut dyn Write) -> Result<(String, u64), Copy> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Copy::Read(e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).map_err(Copy::Write)?;
        total += n as u64;
    }
    Ok((hex(&hasher.finalize()), total))
}

// ------------------------------------------------------------------------------------------------
// verify
// ------------------------------------------------------------------------------------------------

/// What `verify` found for one archive.
#[derive(Debug, Clone, Serialize)]
pub struct Verified {
    pub archive: PathBuf,
    pub name: String,
    pub ok: bool,
    pub compression: Compression,
    /// Size of the file.
    pub size: u64,
    pub entries: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// `absent`, `ok` or `mismatch` (the `<archive>.sha256` file beside it).
    pub sidecar: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totals: Option<Totals>,
    pub problems: Vec<Problem>,
    /// The result could not be recorded in the state file (the verification itself is unaffected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_error: Option<String>,
    /// Only the file's SHA-256 against its sidecar was checked: an encrypted archive and no key to read it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sidecar_only: bool,
}

/// An encrypted archive without a key: the file's SHA-256 against its sidecar still catches a cut-off or
/// bit-rotted file. `None` when there is no sidecar to compare with (then nothing can be checked).
fn verify_sidecar_only(
    archive: &Path,
    md: &fs::Metadata,
) -> Result<Option<Verified>, InspectError> {
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !archive.with_file_name(format!("{name}.sha256")).exists() {
        return Ok(None);
    }
    let mut hasher = crate::archive::writer::HashWriter::new(io::sink());
    let mut f = File::open(archive).map_err(InspectError::io(archive))?;
    io::copy(&mut f, &mut hasher).map_err(InspectError::io(archive))?;
    let (_, sha, _) = hasher.finish();
    let mut problems = Vec::new();
    let sidecar = check_sidecar(archive, &name, Some(&sha), &mut problems);
    Ok(Some(Verified {
        archive: archive.to_path_buf(),
        ok: problems.is_empty(),
        compression: ArchiveName::parse(&name).map_or(Compression::None, |n| n.compression),
        size: md.len(),
        entries: 0,
        sha256: Some(sha),
        sidecar,
        totals: None,
        problems,
        record_error: None,
        sidecar_only: true,
        name,
    }))
}

/// Read `archive` back completely (see [`reader::verify`]), check its sidecar, and record the result in the
/// state file of its directory when it is named like a proxkeep archive.
pub fn verify(archive: &Path) -> Result<Verified, InspectError> {
    let md = fs::metadata(archive).map_err(InspectError::io(archive))?;
    let v = match reader::verify(archive, None) {
        Ok(v) => v,
        Err(e)
            if matches!(
                crate::crypt::in_io(&e),
                Some(crate::crypt::CryptError::NoKey)
            ) =>
        {
            match verify_sidecar_only(archive, &md)? {
                Some(v) => return Ok(v),
                None => return Err(InspectError::io(archive)(e)),
            }
        }
        Err(e) => return Err(InspectError::io(archive)(e)),
    };
    let name = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut problems = v.problems.clone();
    let sidecar = check_sidecar(archive, &name, v.sha256.as_deref(), &mut problems);
    let totals = v.index.as_ref().map(|i| i.totals.clone());
    let mut out = Verified {
        archive: archive.to_path_buf(),
        ok: problems.is_empty(),
        compression: v.compression,
        size: md.len(),
        entries: v.entries,
        sha256: v.sha256.clone(),
        sidecar,
        totals: totals.clone(),
        problems,
        record_error: None,
        sidecar_only: false,
        name,
    };
    if ArchiveName::parse(&out.name).is_some() {
        let dir = archive
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let rec = state::Record::new(
            &md,
            out.ok,
            v.sha256,
            out.problems.len() as u64,
            totals,
            "verify",
        );
        if let Err(e) = state::record(dir, &out.name, rec) {
            out.record_error = Some(format!(
                "cannot record the result in {}: {e}",
                dir.join(state::STATE_FILE).display()
            ));
        }
    }
    Ok(out)
}

/// Compare the `<archive>.sha256` file (when present) with the file's hash. Returns its state.
fn check_sidecar(
    archive: &Path,
    name: &str,
    actual: Option<&str>,
    problems: &mut Vec<Problem>,
) -> &'static str {
    let side_name = format!("{name}.sha256");
    let side = archive.with_file_name(&side_name);
    let text = match fs::read_to_string(&side) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return "absent",
        Err(e) => {
            problems.push(Problem {
                path: Some(side_name),
                offset: None,
                message: format!("cannot read: {e}"),
            });
            return "mismatch";
        }
    };
    // `sha256sum -c` format: "<64 hex>  <name>" (or " *<name>" in binary mode).
    let claimed = text
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    let names_it = text
        .split_whitespace()
        .nth(1)
        .map(|n| n.trim_start_matches('*'))
        == Some(name);
    if claimed.len() != 64 || !claimed.bytes().all(|b| b.is_ascii_hexdigit()) {
        problems.push(Problem {
            path: Some(side_name),
            offset: None,
            message: "not in `sha256sum -c` format".into(),
        });
        return "mismatch";
    }
    if !names_it {
        problems.push(Problem {
            path: Some(side_name),
            offset: None,
            message: format!("does not name {name}"),
        });
        return "mismatch";
    }
    match actual {
        Some(a) if a == claimed => "ok",
        Some(a) => {
            problems.push(Problem {
                path: Some(side_name),
                offset: None,
                message: format!("says sha256 {claimed}, but the archive's is {a}"),
            });
            "mismatch"
        }
        // The stream broke before its end: that problem is already reported, and the file hash is unknown.
        None => "unchecked",
    }
}

/// Verify every proxkeep archive in `dir` (all hosts), newest first. An archive that cannot even be opened
/// is reported as damaged, and the others are still checked.
pub fn verify_dir(dir: &Path) -> Result<Vec<Verified>, InspectError> {
    let found = store::list(dir, None).map_err(InspectError::io(dir))?;
    Ok(found
        .iter()
        .map(|l| {
            verify(&l.path).unwrap_or_else(|e| Verified {
                sidecar_only: false,
                archive: l.path.clone(),
                name: l.name.to_string(),
                ok: false,
                compression: l.name.compression,
                size: l.size,
                entries: 0,
                sha256: None,
                sidecar: "unchecked",
                totals: None,
                problems: vec![Problem {
                    path: None,
                    offset: None,
                    message: e.to_string(),
                }],
                record_error: None,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths_and_prefixes() {
        assert_eq!(
            normalize_entry_path("/etc/pve/storage.cfg"),
            "etc/pve/storage.cfg"
        );
        assert_eq!(normalize_entry_path("./etc/pve/"), "etc/pve");
        assert_eq!(normalize_entry_path(".//etc"), "etc");
        assert!(under_prefix("etc/pve/x", "etc/pve"));
        assert!(under_prefix("etc/pve", "etc/pve"));
        assert!(!under_prefix("etc/pve2/x", "etc/pve"));
        assert!(!under_prefix("etc", "etc/pve"));
        assert!(under_prefix("anything", ""));
    }

    #[test]
    fn sidecar_states() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("h-pve-20260101T000000Z.tar");
        let name = "h-pve-20260101T000000Z.tar";
        let h = "a".repeat(64);
        let mut p = Vec::new();
        assert_eq!(check_sidecar(&a, name, Some(&h), &mut p), "absent");
        fs::write(
            d.path().join(format!("{name}.sha256")),
            format!("{h}  {name}\n"),
        )
        .unwrap();
        assert_eq!(check_sidecar(&a, name, Some(&h), &mut p), "ok");
        assert!(p.is_empty());
        assert_eq!(
            check_sidecar(&a, name, Some(&"b".repeat(64)), &mut p),
            "mismatch"
        );
        assert_eq!(
            p[0].path.as_deref(),
            Some(format!("{name}.sha256").as_str())
        );
        fs::write(
            d.path().join(format!("{name}.sha256")),
            format!("{h}  other.tar\n"),
        )
        .unwrap();
        assert_eq!(check_sidecar(&a, name, Some(&h), &mut p), "mismatch");
        fs::write(d.path().join(format!("{name}.sha256")), "garbage\n").unwrap();
        assert_eq!(check_sidecar(&a, name, Some(&h), &mut p), "mismatch");
    }
}
