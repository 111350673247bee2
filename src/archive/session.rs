//! Writing one archive: a hidden partial file → meta.json → entries → index.json → read-back verification →
//! rename → sidecar. Nothing visible exists until the archive has been verified. `backup` and the restore's
//! safety archive both write through a [`Session`].

use super::compression::Compression;
use super::entries::{EntryDigest, EntryLog};
use super::format::{
    CompressionInfo, INDEX_PATH, Index, IndexEntry, Kind, META_PATH, Meta, Totals, Warning,
};
use super::reader;
use super::writer::{
    ArchiveWriter, EntryHeader, ExactReader, ReadOutcome, StreamSum, is_cancelled,
};
use crate::crypt::{Keys, Seal};
use crate::fsx::{create_private, write_atomic};
use crate::host::HostFacts;
use crate::output::{Log, NoProgress, Progress};
use jiff::Timestamp;
use std::fmt::Display;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("interrupted")]
    Interrupted,
    #[error("{0}")]
    Failed(String),
}

fn failed(what: impl Display, e: impl Display) -> SessionError {
    SessionError::Failed(format!("{what}: {e}"))
}

/// How the archive is written, and what its meta.json says about itself.
pub struct Spec<'a> {
    pub facts: &'a HostFacts,
    /// Where the host was read from.
    pub root: &'a Path,
    /// `backup` or `restore-safety`.
    pub purpose: &'a str,
    pub categories: Vec<String>,
    pub pve_tree_from_db: bool,
    pub compression: Compression,
    pub level: i32,
    /// Compressor threads (0: one per core).
    pub threads: u32,
    pub seal: Option<&'a Seal>,
    /// Show a progress line (on a terminal).
    pub progress: bool,
}

/// A finished, verified and renamed archive.
pub struct Finished {
    pub path: PathBuf,
    pub name: String,
    /// SHA-256 of the file (what the sidecar holds).
    pub sha256: String,
    pub bytes: u64,
    /// What index.json says, but its entries (left empty: `totals` counts them).
    pub index: Index,
}

/// Name of the hidden partial file for an archive written by this process.
pub fn partial_name(final_name: &str) -> String {
    format!(".{final_name}.{}.partial", std::process::id())
}

/// The name `name` gives for `time`, bumped a second at a time past the names `taken` says are in use.
/// Returns the name and the time it was made for.
pub fn free_name<N>(
    mut time: Timestamp,
    name: impl Fn(Timestamp) -> N,
    taken: impl Fn(&N) -> bool,
) -> Result<(N, Timestamp), SessionError> {
    loop {
        let n = name(time);
        if !taken(&n) {
            return Ok((n, time));
        }
        time = Timestamp::from_second(time.as_second() + 1).map_err(|e| failed("time", e))?;
    }
}

pub fn warn(log: &Log, to: &mut Vec<Warning>, path: Option<String>, message: String) {
    let w = Warning { path, message };
    log.warn(&warning_text(&w));
    to.push(w);
}

pub fn warning_text(w: &Warning) -> String {
    match &w.path {
        // The path is a name: escaped as one, so that a newline in it cannot pass for a line break of the text.
        Some(p) => format!("{}: {}", crate::output::esc(p), w.message),
        None => w.message.clone(),
    }
}

type ReadBack = io::Result<(reader::Verification, EntryDigest)>;

/// The concurrent read-back; dropping it without `finish` (an error path) tells it to stop.
struct Verifier {
    handle: Option<std::thread::JoinHandle<ReadBack>>,
    state: Arc<reader::FollowState>,
    keys: Arc<Keys>,
}

impl Verifier {
    /// The read-back runs alongside the writing: it reads the partial file as it grows, and checks it
    /// against the index once the writer is done. It still reads what is on disk, not the bytes in memory.
    fn start(partial: &Path, keys: Keys) -> io::Result<Verifier> {
        let state = Arc::new(reader::FollowState::default());
        let src = reader::Follow::new(File::open(partial)?, state.clone());
        let keys = Arc::new(keys);
        let theirs = keys.clone();
        let handle = std::thread::spawn(move || reader::read_back(Box::new(src), &theirs));
        Ok(Verifier {
            handle: Some(handle),
            state,
            keys,
        })
    }

    /// Hand over the end of the file (`partial`, written and synced) and wait for the verdict, then check the
    /// entries read back against `wrote`, the digest of the entries the writer put in index.json: that the
    /// archive's index.json is that index is checked by its hash, which spares parsing a large index. When
    /// the digests differ, a full verification of the file against its index.json says where.
    fn finish(
        &mut self,
        wrote: EntryDigest,
        index_sha256: String,
        partial: &Path,
    ) -> io::Result<reader::Verification> {
        self.state.done.store(true, Ordering::Release);
        let (mut v, seen) = match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r?,
            _ => return Err(io::Error::other("the verifier thread failed")),
        };
        if v.index_sha256.as_deref() != Some(index_sha256.as_str()) {
            let differs = "differs from the index the backup wrote";
            v.problems
                .push(reader::problem(Some(INDEX_PATH.as_bytes()), differs));
        }
        if v.problems.is_empty() && seen.finish() != wrote.finish() {
            let full = reader::verify_stream(Box::new(File::open(partial)?), None, &self.keys)?;
            v.problems.extend(full.problems);
            if v.problems.is_empty() {
                let differs = "the entries read back differ from the index the backup wrote";
                v.problems.push(reader::problem(None, differs));
            }
        }
        Ok(v)
    }
}

impl Drop for Verifier {
    fn drop(&mut self) {
        self.state.abort.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn io_err(partial: &Path, e: io::Error) -> SessionError {
    if is_cancelled(&e) {
        SessionError::Interrupted
    } else {
        failed(format_args!("writing {}", partial.display()), e)
    }
}

/// One archive being written. Dropped without [`Session::finish`], it stops the read-back and removes the
/// partial file (the fields drop in that order).
pub struct Session<'a> {
    w: ArchiveWriter,
    verifier: Verifier,
    /// Removed when dropped, unless it became the archive.
    partial: tempfile::TempPath,
    dir: PathBuf,
    name: String,
    time: Timestamp,
    /// What index.json will say, but its entries: those are in `entries`, added by the `append` methods
    /// and [`Session::push_entry`]; warnings by [`Session::warn`].
    pub index: Index,
    entries: EntryLog,
    log: &'a Log,
    pub cancel: &'a AtomicBool,
    pub progress: Box<dyn Progress>,
    started: Instant,
}

impl<'a> Session<'a> {
    /// Start `dir/name` as a hidden partial file and write its meta.json; `time` is the archive's time.
    pub fn create(
        dir: &Path,
        name: String,
        time: Timestamp,
        spec: Spec,
        log: &'a Log,
        cancel: &'a AtomicBool,
    ) -> Result<Self, SessionError> {
        let started = Instant::now();
        // For an encrypted archive the read-back decrypts with a key of its own (see `Seal::encryptor`).
        let sealed = spec.seal.map(Seal::encryptor).transpose();
        let sealed = sealed.map_err(|e| failed("cannot start age", e))?;
        let (encryptor, keys) = sealed.map_or((None, Keys::default()), |(e, k)| (Some(e), k));
        let path = dir.join(partial_name(&name));
        let created = |e| failed(format_args!("cannot create {}", path.display()), e);
        let file = create_private(&path).map_err(created)?;
        let partial = tempfile::TempPath::try_from_path(&path).map_err(created)?;
        let verifier = Verifier::start(&partial, keys).map_err(|e| failed("read-back", e))?;
        let entries = EntryLog::new().map_err(|e| failed("index entries", e))?;
        let w = ArchiveWriter::new(file, spec.compression, spec.level, spec.threads, encryptor)
            .map_err(|e| failed("cannot start the compressor", e))?;
        let meta = Meta {
            format_version: super::format::FORMAT_VERSION,
            tool: "proxkeep".into(),
            tool_version: env!("CARGO_PKG_VERSION").into(),
            host: spec.facts.hostname.clone(),
            role: spec.facts.role,
            versions: spec.facts.versions.clone(),
            created: time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            created_unix: time.as_second(),
            categories: spec.categories,
            compression: CompressionInfo {
                algorithm: spec.compression.to_string(),
                level: spec.level,
            },
            root: spec.root.display().to_string(),
            pve_tree_from_db: spec.pve_tree_from_db,
            purpose: spec.purpose.into(),
            encryption: spec.seal.map(|s| s.describe()),
        };
        let meta_json = serde_json::to_vec_pretty(&meta).map_err(|e| failed("meta.json", e))?;
        let mut s = Session {
            w,
            verifier,
            partial,
            dir: dir.to_path_buf(),
            name,
            time,
            index: Index::new(),
            entries,
            log,
            cancel,
            progress: match spec.progress {
                true => log.progress(),
                false => Box::new(NoProgress),
            },
            started,
        };
        s.append_small(META_PATH, &meta_json)?;
        s.progress.phase("archiving");
        Ok(s)
    }

    pub fn check_cancel(&self) -> Result<(), SessionError> {
        check_cancel(self.cancel)
    }

    /// Run one append on the writer; an I/O error becomes a failure of the archive (or the interruption).
    pub fn write<T>(
        &mut self,
        f: impl FnOnce(&mut ArchiveWriter) -> io::Result<T>,
    ) -> Result<T, SessionError> {
        f(&mut self.w).map_err(|e| io_err(&self.partial, e))
    }

    /// Add an entry of index.json (in archive order: the entry just appended).
    pub fn push_entry(&mut self, e: IndexEntry) -> Result<(), SessionError> {
        let pushed = self.entries.push(&e);
        pushed.map_err(|e| io_err(&self.partial, e))
    }

    /// The entries added so far.
    pub fn entry_count(&self) -> u64 {
        self.entries.totals().entries
    }

    pub fn warn(&mut self, path: Option<String>, message: String) {
        warn(self.log, &mut self.index.warnings, path, message);
    }

    fn append_small(&mut self, path: &str, data: &[u8]) -> Result<(), SessionError> {
        let h = internal_header(path, data.len() as u64, self.time);
        self.write(|w| w.append_bytes(&h, data))
    }

    /// Append `size` bytes of `data` that did not come from the host's file system (0600 root, the
    /// archive's time).
    pub fn append_internal(
        &mut self,
        path: &str,
        category: &str,
        source: &str,
        data: impl io::Read,
        size: u64,
    ) -> Result<(), SessionError> {
        let h = internal_header(path, size, self.time);
        let cancel = self.cancel;
        let sha = self.write(|w| {
            let mut r = ExactReader::new(data, size, cancel);
            w.append_reader(&h, &mut r)?;
            Ok(r.finish()?.0)
        })?;
        let e = index_entry(&h, category, Some(sha), None, Some(source));
        self.push_entry(e)
    }

    /// Append index.json, spliced from the entries kept on disk (a large index is never held in memory);
    /// returns its SHA-256 and the digest of its entries.
    fn append_index(&mut self) -> Result<(String, EntryDigest), SessionError> {
        let spliced = self.entries.index_json(&self.index);
        let (size, json, digest) = spliced.map_err(|e| failed("index.json", e))?;
        let h = internal_header(INDEX_PATH, size, self.time);
        let cancel = self.cancel;
        let sha = self.write(|w| {
            let mut r = ExactReader::new(json, size, cancel);
            w.append_reader(&h, &mut r)?;
            if let Some(e) = r.error.take() {
                return Err(e);
            }
            match r.finish()? {
                (sha, ReadOutcome::Exact) => Ok(sha),
                _ => Err(io::Error::other(
                    "index.json: not the size it was planned at",
                )),
            }
        })?;
        Ok((sha, digest))
    }

    /// Write index.json, finish the file, verify what is on disk, then rename it into place, fsync the
    /// directory and write the `.sha256` sidecar.
    pub fn finish(mut self) -> Result<Finished, SessionError> {
        self.index.totals = Totals {
            warnings: self.index.warnings.len() as u64,
            ..self.entries.totals().clone()
        };
        let (index_sha, digest) = self.append_index()?;
        self.progress.phase("finishing");
        let (_file, written) = self.w.finish().map_err(|e| io_err(&self.partial, e))?;
        check_cancel(self.cancel)?;
        let log = self.log;
        log.debug(&format!(
            "archive written ({} bytes) in {:.2} s",
            written.file.len,
            self.started.elapsed().as_secs_f64()
        ));

        self.progress.phase("verifying");
        let verify_start = Instant::now();
        let v = self
            .verifier
            .finish(digest, index_sha, &self.partial)
            .map_err(|e| failed("read-back", e))?;
        self.progress.finish();
        log.debug(&format!(
            "read back and verified in {:.2} s",
            verify_start.elapsed().as_secs_f64()
        ));
        if !v.ok() {
            let shown: Vec<String> = v.problems.iter().take(5).map(|p| p.to_string()).collect();
            return Err(SessionError::Failed(format!(
                "read-back verification failed: {}",
                shown.join("; ")
            )));
        }
        let on_disk = v.file_crc32.map(|crc32| StreamSum {
            crc32,
            len: v.bytes,
        });
        let Some(sha256) = v.sha256.filter(|_| on_disk == Some(written.file)) else {
            return Err(SessionError::Failed(
                "read-back: the file on disk differs from the bytes written".into(),
            ));
        };
        if v.stream != Some(written.stream) {
            return Err(SessionError::Failed(
                "read-back: the archive decodes to other bytes than the tar stream written".into(),
            ));
        }
        check_cancel(self.cancel)?;

        let (dir, name) = (self.dir, self.name);
        let path = dir.join(&name);
        self.partial
            .persist(&path)
            .map_err(|e| failed("rename", e.error))?;
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| failed("fsync", e))?;
        let sidecar = dir.join(format!("{name}.sha256"));
        let line = format!("{sha256}  {name}\n");
        if let Err(e) = write_atomic(&sidecar, line.as_bytes(), 0o600) {
            // The sidecar is a convenience; nothing requires it. Still a warning of the run (exit 3).
            let (path, message) = (sidecar.display().to_string(), format!("cannot write: {e}"));
            warn(log, &mut self.index.warnings, Some(path), message);
        }
        Ok(Finished {
            path,
            name,
            sha256,
            bytes: written.file.len,
            index: self.index,
        })
    }
}

fn check_cancel(cancel: &AtomicBool) -> Result<(), SessionError> {
    match cancel.load(Ordering::Relaxed) {
        true => Err(SessionError::Interrupted),
        false => Ok(()),
    }
}

fn internal_header(path: &str, size: u64, time: Timestamp) -> EntryHeader<'_> {
    EntryHeader {
        path: path.as_bytes(),
        kind: Kind::File,
        mode: 0o600,
        uid: 0,
        gid: 0,
        mtime: time.as_second(),
        size,
        xattrs: &[],
    }
}

pub fn index_entry(
    h: &EntryHeader,
    category: &str,
    sha256: Option<String>,
    target: Option<String>,
    source: Option<&str>,
) -> IndexEntry {
    let (path, path_hex) = super::format::path_fields(h.path);
    IndexEntry {
        path,
        path_hex,
        category: category.into(),
        kind: h.kind,
        size: h.size,
        mode: format!("{:04o}", h.mode & 0o7777),
        uid: h.uid,
        gid: h.gid,
        mtime: h.mtime,
        sha256,
        target,
        xattrs: h.xattrs.iter().map(|(k, _)| k.clone()).collect(),
        source: source.map(Into::into),
    }
}
