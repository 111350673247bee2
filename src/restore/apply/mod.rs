//! Pass 2: write what the plan says while the archive streams by.
//!
//! Every file is written to a temp file in its own directory, hashed, and only given its name (rename) when
//! the hash matches the index; so a damaged archive stops before the damaged file lands, and an interrupted
//! restore leaves every file either old or new, never partial.
//!
//! Durability is batched: the temp files of a batch are written, then one `syncfs` per file system puts all
//! their data on disk, then they are renamed. That is the temp → fsync → rename sequence for each file, with
//! one journal commit per batch instead of one per file (a per-file fsync costs milliseconds each on ext4,
//! which is minutes for a big /etc/pve).
//!
//! The work runs as a pipeline, as `zstd -dc | tar -x` does with two processes, so decompression, hashing,
//! writing and syncing overlap instead of adding up:
//!
//! ```text
//! this thread: decompress, tar headers, path checks, directories, symlinks
//!    ─► writer threads: hash each file's content, write its temp file, set its metadata
//!    ─► back here, put in archive order ─► syncer thread: syncfs per batch, then the renames
//! ```
//!
//! Decompression stays on this thread: with it on a thread of its own (and the decoded bytes copied across)
//! both passes measured slower on 2 cores, where every cycle counts.
//!
//! Renames stay in archive order, and a file is renamed only when it and every file before it were written
//! and verified: a restore that stops (damaged entry, failure, signal) leaves exactly the files before the
//! stopping entry in place, as if the files were written one at a time.

mod sync;
mod worker;

use crate::archive::format::{INDEX_PATH, Kind, META_PATH};
use crate::archive::reader::{TarReader, xattrs};
use crate::dirwalk::{DirFd, WalkError, Walker};
use crate::fsx::{open_dir_at, set_link_meta, set_meta};
use crate::output::Progress;
use crate::restore::path::{Checker, NodeMap, show, split};
use crate::restore::plan::{Action, Plan, Step, Wanted};
use crate::restore::target::Target;
use rustix::fs::{AtFlags, Mode, XattrFlags};
use rustix::io::Errno;
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};
use sync::{Flushed, InOrder, Pending, Written};
use worker::Job;

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// `extract`: never replace anything (renames use RENAME_NOREPLACE), and write meta.json and index.json.
    pub extract: bool,
    /// Set owners; only root can, so this is on when running as root.
    pub chown: bool,
    /// A batch ends after this many files or bytes (see the module docs).
    pub batch_files: usize,
    pub batch_bytes: u64,
    /// Writer threads (at least 1).
    pub writers: usize,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            extract: false,
            chown: rustix::process::geteuid().is_root(),
            batch_files: 1024,
            batch_bytes: 64 << 20,
            // Writing is mostly kernel time (page-cache copies, inode allocation), which spreads over the
            // cores: one writer per core (2 to 4). More were no faster on the 2-core bench machine.
            writers: std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4)),
        }
    }
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Done {
    /// Host path (`/etc/hosts`).
    pub path: String,
    pub category: String,
    pub action: &'static str,
    pub kind: Kind,
}

/// Why a restore stopped before the end.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, thiserror::Error)]
#[serde(tag = "reason", rename_all = "lowercase")]
pub enum Stop {
    #[error("interrupted")]
    Interrupted,
    /// The archive's content differs from its index (or changed since pass 1).
    #[error("{entry}: {why}")]
    Damaged { entry: String, why: String },
    #[error("{entry}: {why}")]
    Failed { entry: String, why: String },
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ApplyReport {
    pub created: u64,
    pub replaced: u64,
    pub removed: u64,
    pub bytes: u64,
    pub done: Vec<Done>,
    /// Planned writes and removals that were not done (the restore stopped first).
    pub not_done: u64,
    pub warnings: Vec<String>,
    pub stopped: Option<Stop>,
    /// Temp files left by an earlier restore that was killed, removed from the directories written to.
    #[serde(skip_serializing_if = "is_zero")]
    pub stale_temps_removed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

const MAX_WARNINGS: usize = 200;

/// Files waiting for a writer.
const QUEUE: usize = 32;

/// Pass 2's state on this thread: the walk of the target, the results coming back, the batch being filled.
struct Writer<'a> {
    walker: Walker,
    opts: &'a ApplyOptions,
    cancel: &'a AtomicBool,
    report: ApplyReport,
    /// Written files in archive order, for the next batch.
    batch: Vec<Pending>,
    batch_bytes: u64,
    tmp_counter: u64,
    /// Directories whose mode and mtime are set at the end: writing into a directory changes its mtime,
    /// and a read-only mode from the archive must not stop what goes into it.
    dir_meta: Vec<(Vec<u8>, Option<u32>, i64)>,
    /// File systems written to (synced once more at the end).
    devs: HashMap<u64, Arc<DirFd>>,
    order: InOrder,
    jobs: Option<SyncSender<Job>>,
    /// Jobs given to the writers whose result has not come back yet.
    in_flight: usize,
    written: Receiver<Written>,
    to_sync: Option<Sender<Vec<Pending>>>,
    /// Batches given to the syncer whose result has not come back yet.
    syncing: usize,
    synced: Receiver<Flushed>,
    /// The first stop in archive order, with the sequence number of the entry it is about.
    stop: Option<(u64, Stop)>,
    /// Directories already cleared of stale temp files, or made by this run (nothing stale in them).
    swept: HashSet<Vec<u8>>,
}

fn failed(entry: &str, what: &str, e: impl std::fmt::Display) -> Stop {
    walk_failed(entry.to_string(), format!("cannot {what}: {e}"))
}

fn walk_failed(entry: String, why: impl ToString) -> Stop {
    Stop::Failed {
        entry,
        why: why.to_string(),
    }
}

/// The archive's content is not what the index said: the entry is not written.
fn damaged(entry: &str, why: impl std::fmt::Display) -> Stop {
    Stop::Damaged {
        entry: entry.to_string(),
        why: format!("{why}: stopped before writing it"),
    }
}

fn changed(entry: &str, why: impl std::fmt::Display) -> Stop {
    let why = format!("{why} (the archive changed since it was read)");
    damaged(entry, why)
}

fn done(want: &Wanted, action: &'static str) -> Done {
    Done {
        path: want.shown(),
        category: want.category.clone(),
        action,
        kind: want.kind,
    }
}

/// Write the plan's creates and replaces from `archive` into `target` (a file in `rewritten`, by archive path,
/// with those bytes instead of the archive's), then its removals.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    archive: &Path,
    target: &Target,
    wanted: &[Wanted],
    plan: &Plan,
    map: Option<&NodeMap>,
    rewritten: &HashMap<Vec<u8>, Vec<u8>>,
    opts: &ApplyOptions,
    cancel: &AtomicBool,
    progress: &dyn Progress,
) -> ApplyReport {
    let mut todo: HashMap<&[u8], &Step> = plan
        .writes()
        .filter_map(|s| Some((wanted[s.wanted?].archive_path.as_slice(), s)))
        .collect();
    let planned =
        todo.len() as u64 + plan.removals().count() as u64 + if opts.extract { 2 } else { 0 };
    // Same dirs that get something written below them keep the archive's mtime too.
    let same_dirs: HashMap<&[u8], i64> = plan
        .steps
        .iter()
        .filter(|s| s.kind == Kind::Dir && s.action == Action::Same && !s.through_pmxcfs)
        .filter_map(|s| {
            s.wanted
                .map(|i| (wanted[i].path.as_slice(), wanted[i].mtime))
        })
        .collect();
    progress.phase("restoring");
    let (job_tx, job_rx) = sync_channel::<Job>(QUEUE);
    let job_rx = std::sync::Mutex::new(job_rx);
    let (written_tx, written) = channel::<Written>();
    let (sync_tx, sync_rx) = channel::<Vec<Pending>>();
    let (synced_tx, synced) = channel::<Flushed>();
    std::thread::scope(|scope| {
        for _ in 0..opts.writers.max(1) {
            let (job_rx, out) = (&job_rx, written_tx.clone());
            scope.spawn(move || worker::run(job_rx, out, opts, cancel));
        }
        drop(written_tx);
        let extract = opts.extract;
        scope.spawn(move || sync::syncer(sync_rx, synced_tx, extract));
        let mut w = Writer {
            walker: target.walker(),
            opts,
            cancel,
            report: ApplyReport::default(),
            batch: Vec::new(),
            batch_bytes: 0,
            tmp_counter: 0,
            dir_meta: Vec::new(),
            devs: HashMap::new(),
            order: InOrder::default(),
            jobs: Some(job_tx),
            in_flight: 0,
            written,
            to_sync: Some(sync_tx),
            syncing: 0,
            synced,
            stop: None,
            swept: HashSet::new(),
        };
        if let Err(stop) = w.read_all(archive, wanted, &mut todo, (map, rewritten), progress) {
            let seq = w.order.next_seq();
            w.note_stop(seq, stop);
        }
        w.finish(plan);
        // Directory mtimes last (writing into a directory changes its mtime), also after a stop.
        let written_parents: HashSet<Vec<u8>> = w
            .report
            .done
            .iter()
            .map(|d| split(d.path.trim_start_matches('/').as_bytes()).0.to_vec())
            .collect();
        for (p, t) in same_dirs {
            if written_parents.contains(p) {
                w.dir_meta.push((p.to_vec(), None, t));
            }
        }
        w.set_dir_meta();
        w.final_sync();
        progress.finish();
        w.report.not_done = planned.saturating_sub(w.report.done.len() as u64);
        w.report.stopped = w.stop.map(|(_, s)| s);
        w.report
    })
}

/// Set each extended attribute with `set`: a warning for each that cannot be set.
fn xattr_warnings(
    shown: &str,
    xa: &[(String, Vec<u8>)],
    set: impl Fn(&str, &[u8]) -> rustix::io::Result<()>,
) -> Vec<String> {
    xa.iter()
        .filter_map(|(k, v)| {
            let e = set(k, v).err()?;
            Some(format!("{shown}: cannot set extended attribute {k}: {e}"))
        })
        .collect()
}

/// Pass 2 proper: every entry of the archive, in order; what the plan writes is written or handed on.
impl Writer<'_> {
    fn read_all(
        &mut self,
        archive: &Path,
        wanted: &[Wanted],
        todo: &mut HashMap<&[u8], &Step>,
        (map, rewritten): (Option<&NodeMap>, &HashMap<Vec<u8>, Vec<u8>>),
        progress: &dyn Progress,
    ) -> Result<(), Stop> {
        let mut reader = TarReader::open(archive)
            .map_err(|e| failed(&archive.display().to_string(), "open the archive", e))?;
        let mut checker = Checker::default();
        let entries = reader
            .archive
            .entries()
            .map_err(|e| changed("archive", e))?;
        for entry in entries {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Stop::Interrupted);
            }
            self.collect();
            if self.stop.is_some() {
                return Ok(());
            }
            let mut entry =
                entry.map_err(|e| changed("archive", format!("the stream is damaged: {e}")))?;
            let raw = entry.path_bytes().into_owned();
            let header = entry.header().clone();
            let tkind = header.entry_type();
            let link = entry.link_name_bytes().map(|l| l.into_owned());
            let path = checker
                .check(&raw, tkind, link.as_deref())
                .map_err(|h| changed(&show(&raw), h))?;
            if self.opts.extract && (path == META_PATH.as_bytes() || path == INDEX_PATH.as_bytes())
            {
                // Not in the index (they describe it); extract writes them as they are.
                let own = Wanted {
                    path: path.clone(),
                    archive_path: path.clone(),
                    category: "proxkeep".into(),
                    kind: Kind::File,
                    mode: header.mode().unwrap_or(0o600) & 0o7777,
                    uid: header.uid().unwrap_or(0) as u32,
                    gid: header.gid().unwrap_or(0) as u32,
                    mtime: header.mtime().unwrap_or(0) as i64,
                    size: header.size().unwrap_or(0),
                    sha256: None,
                    link: None,
                };
                self.file(&own, false, "create", &mut entry, Vec::new())?;
                continue;
            }
            let Some(step) = todo.remove(path.as_slice()) else {
                continue;
            };
            let want = &wanted[step.wanted.expect("write steps come from the index")];
            let shown = want.shown();
            // The header must still say what pass 1 and the index said.
            let size = header.size().unwrap_or(0);
            // A rewritten file has the rewritten size; its archive bytes were checked in pass 1.
            let new = rewritten.get(path.as_slice());
            let same_header = Kind::of_tar(tkind) == Some(want.kind)
                && (want.kind != Kind::File || size == want.size || new.is_some())
                && header.mode().unwrap_or(0) & 0o7777 == want.mode
                && (header.uid().unwrap_or(0), header.gid().unwrap_or(0))
                    == (u64::from(want.uid), u64::from(want.gid));
            if !same_header {
                return Err(changed(&shown, "its tar header differs from the index"));
            }
            let action = step.action.name();
            // What goes through pmxcfs gets no metadata of its own there, extended attributes included.
            let xa = match step.through_pmxcfs && want.kind != Kind::Symlink {
                true => Vec::new(),
                false => xattrs(&mut entry, |k, v| (k.to_string(), v.to_vec())),
            };
            match want.kind {
                Kind::File => {
                    let data: &mut dyn std::io::Read = match new {
                        Some(bytes) => &mut bytes.as_slice(),
                        None => &mut entry,
                    };
                    self.file(want, step.through_pmxcfs, action, data, xa)?
                }
                Kind::Symlink => {
                    let link = link.unwrap_or_default();
                    let link = match map {
                        Some(m) => m.link(&want.path, &link).into_owned(),
                        None => link,
                    };
                    if Some(&link) != want.link.as_ref()
                        && show(&link) != show(want.link.as_deref().unwrap_or_default())
                    {
                        return Err(changed(&shown, "its link target differs from the index"));
                    }
                    self.symlink(want, action, &link, xa)?;
                }
                Kind::Dir => self.dir(want, step, xa)?,
            }
            progress.advance(1, size);
        }
        if let Some(first) = todo.keys().map(|p| show(p)).min() {
            let why = format!("{} planned entries are not in the archive", todo.len());
            return Err(changed(&first, why));
        }
        Ok(())
    }

    fn warn(&mut self, msg: String) {
        if self.report.warnings.len() < MAX_WARNINGS {
            self.report.warnings.push(msg);
        }
    }

    fn record(&mut self, done: Done) {
        match done.action {
            "replace" => self.report.replaced += 1,
            _ => self.report.created += 1,
        }
        self.report.done.push(done);
    }

    /// Keep the first stop in archive order: what comes after it would not have been reached by a restore
    /// writing one file at a time. One replaced by an earlier one was seen all the same: kept as a warning.
    fn note_stop(&mut self, seq: u64, stop: Stop) {
        if self.stop.as_ref().is_some_and(|(s, _)| *s <= seq) {
            return;
        }
        if let Some((_, earlier)) = self.stop.replace((seq, stop.clone()))
            && earlier != Stop::Interrupted
            && earlier != stop
        {
            self.warn(format!("also: {earlier}"));
        }
    }

    fn tmp_name(&mut self) -> Vec<u8> {
        self.tmp_counter += 1;
        // Short (a long name plus a suffix could exceed NAME_MAX) and recognizable by its PID.
        format!(".proxkeep-{}-{}.tmp", std::process::id(), self.tmp_counter).into_bytes()
    }

    fn parent(&mut self, want: &Wanted) -> Result<Arc<DirFd>, Stop> {
        let (parent, _) = split(&want.path);
        if self.walker.full() {
            self.drain();
        }
        let d = self
            .walker
            .open_dir(parent, true)
            .map_err(|e| walk_failed(want.shown(), e))?;
        self.devs.entry(d.dev).or_insert_with(|| d.clone());
        if !self.swept.contains(parent) {
            self.swept.insert(parent.to_vec());
            self.report.stale_temps_removed += sweep_stale_temps(&d);
        }
        Ok(d)
    }

    fn symlink(
        &mut self,
        want: &Wanted,
        action: &'static str,
        link: &[u8],
        xa: Vec<(String, Vec<u8>)>,
    ) -> Result<(), Stop> {
        let shown = want.shown();
        let dir = self.parent(want)?;
        let tmp = self.tmp_name();
        rustix::fs::symlinkat(link, &dir.fd, tmp.as_slice())
            .map_err(|e| failed(&shown, "create a symlink", e))?;
        let owner = self.opts.chown.then_some((want.uid, want.gid));
        if let Err(e) = set_link_meta(&dir.fd, tmp.as_slice(), owner, Some(want.mtime)) {
            let _ = rustix::fs::unlinkat(&dir.fd, tmp.as_slice(), AtFlags::empty());
            return Err(failed(&shown, "set the owner or mtime of", e));
        }
        if !xa.is_empty() {
            // No fd-based call exists for a symlink itself: go through our own open directory.
            let via = format!("/proc/self/fd/{}/{}", dir.fd.as_raw_fd(), show(&tmp));
            let warnings = xattr_warnings(&shown, &xa, |k, v| {
                rustix::fs::lsetxattr(via.as_str(), k, v, XattrFlags::empty())
            });
            warnings.into_iter().for_each(|w| self.warn(w));
        }
        let seq = self.order.reserve();
        let pending = Pending::new(seq, dir, tmp, want, action, 0, Vec::new());
        self.order.put(seq, Ok(pending));
        Ok(())
    }

    /// Directories are created (or get their metadata) right away: files written later go into them.
    fn dir(&mut self, want: &Wanted, step: &Step, xa: Vec<(String, Vec<u8>)>) -> Result<(), Stop> {
        let shown = want.shown();
        let parent = self.parent(want)?;
        let name = split(&want.path).1;
        if step.observed != Some(Kind::Dir) {
            match rustix::fs::mkdirat(&parent.fd, name, Mode::from_raw_mode(0o700)) {
                Ok(()) => {
                    self.swept.insert(want.path.clone());
                }
                // Made meanwhile (by a file's parent walk, or someone else): its metadata is set below.
                Err(Errno::EXIST) => {}
                Err(e) => return Err(failed(&shown, "create the directory", e)),
            }
        }
        let fd = open_dir_at(parent.fd.as_fd(), name)
            .map_err(|e| failed(&shown, "open the directory (a symlink in the way?)", e))?;
        if !step.through_pmxcfs {
            let owner = self.opts.chown.then_some((want.uid, want.gid));
            set_meta(&fd, owner, None, None)
                .map_err(|(_, e)| failed(&shown, "set the owner of", e))?;
            let warnings = xattr_warnings(&shown, &xa, |k, v| {
                rustix::fs::fsetxattr(&fd, k, v, XattrFlags::empty())
            });
            warnings.into_iter().for_each(|w| self.warn(w));
            self.dir_meta
                .push((want.path.clone(), Some(want.mode), want.mtime));
        }
        self.record(done(want, step.action.name()));
        Ok(())
    }

    /// Removals (restoring a safety archive): deepest first; a directory only when empty.
    fn remove_all(&mut self, plan: &Plan) -> Result<(), Stop> {
        let mut removals: Vec<&Step> = plan.removals().collect();
        removals.sort_by(|a, b| b.path.cmp(&a.path));
        for s in removals {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Stop::Interrupted);
            }
            let shown = s.shown();
            let (parent, name) = split(&s.path);
            let dir = match self.walker.open_dir(parent, false) {
                Ok(d) => d,
                Err(WalkError::Missing(_)) => continue,
                Err(e) => return Err(walk_failed(shown, e)),
            };
            let flags = if s.kind == Kind::Dir {
                AtFlags::REMOVEDIR
            } else {
                AtFlags::empty()
            };
            match rustix::fs::unlinkat(&dir.fd, name, flags) {
                Ok(()) | Err(Errno::NOENT) => {}
                Err(Errno::NOTEMPTY | Errno::EXIST) => {
                    self.warn(format!(
                        "{shown}: left in place, the directory is not empty"
                    ));
                    continue;
                }
                Err(e) => return Err(failed(&shown, "remove", e)),
            }
            self.devs.entry(dir.dev).or_insert_with(|| dir.clone());
            self.report.removed += 1;
            self.report.done.push(Done {
                path: shown,
                category: s.category.clone(),
                action: "remove",
                kind: s.kind,
            });
        }
        Ok(())
    }

    fn set_dir_meta(&mut self) {
        let mut dirs = std::mem::take(&mut self.dir_meta);
        // A directory listed twice keeps the entry that sets its mode.
        dirs.sort_by(|a, b| (&a.0, a.1.is_none()).cmp(&(&b.0, b.1.is_none())));
        dirs.dedup_by(|later, first| later.0 == first.0);
        for (p, mode, t) in dirs {
            let r = match self.walker.open_dir(&p, false) {
                Ok(dir) => set_meta(&dir.fd, None, mode, Some(t))
                    .map_err(|(what, e)| format!("cannot {}: {e}", what.trim_end_matches(" of"))),
                Err(e) => Err(e.to_string()),
            };
            if let Err(e) = r {
                self.warn(format!("/{}: {e}", show(&p)));
            }
        }
    }
}

/// The PID in a temp file name this code makes (`.proxkeep-<pid>-<n>.tmp`, see `tmp_name`); `None` for any
/// other name.
fn temp_pid(name: &[u8]) -> Option<i32> {
    let rest = name.strip_prefix(b".proxkeep-")?.strip_suffix(b".tmp")?;
    let dash = rest.iter().position(|b| *b == b'-')?;
    let (pid, n) = (&rest[..dash], &rest[dash + 1..]);
    let digits = |d: &[u8]| !d.is_empty() && d.len() <= 20 && d.iter().all(u8::is_ascii_digit);
    if !digits(pid) || !digits(n) {
        return None;
    }
    std::str::from_utf8(pid)
        .ok()?
        .parse()
        .ok()
        .filter(|p| *p > 0)
}

/// Remove the temp files a killed restore (SIGKILL, power loss) left in `dir`: only names this code makes,
/// and only when their process is gone (not this one, nor one still running). Returns how many went.
fn sweep_stale_temps(dir: &DirFd) -> u64 {
    let Ok(entries) = rustix::fs::Dir::read_from(&dir.fd) else {
        return 0;
    };
    let me = std::process::id() as i32;
    let mut removed = 0;
    for item in entries.flatten() {
        let name = item.file_name().to_bytes();
        let Some(pid) = temp_pid(name) else { continue };
        let gone = pid != me
            && rustix::process::Pid::from_raw(pid)
                .is_some_and(|p| rustix::process::test_kill_process(p) == Err(Errno::SRCH));
        // A directory of that name is not ours: unlinkat without REMOVEDIR leaves it.
        if gone && rustix::fs::unlinkat(&dir.fd, name, AtFlags::empty()).is_ok() {
            removed += 1;
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_own_temp_names_are_recognized() {
        assert_eq!(temp_pid(b".proxkeep-1234-7.tmp"), Some(1234));
        assert_eq!(temp_pid(b".proxkeep-1-1.tmp"), Some(1));
        for other in [
            &b".proxkeep-0-1.tmp"[..],
            b".proxkeep--1.tmp",
            b".proxkeep-12-.tmp",
            b".proxkeep-12.tmp",
            b".proxkeep-1a-2.tmp",
            b".proxkeep-1-2.tmp.x",
            b"x.proxkeep-1-2.tmp",
            b".proxkeep-+1-2.tmp",
            b".proxkeep-1-2-3.tmp",
            b".proxkeep-99999999999-1.tmp",
            b"hosts",
        ] {
            assert_eq!(temp_pid(other), None, "{}", show(other));
        }
    }
}
