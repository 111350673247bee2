//! Pass 2: write what the plan says while the archive streams by, one entry at a time.
//!
//! Every file is written to a temp file in its own directory, hashed while it is written, and only given its
//! name (rename) when the hash matches the index; so a damaged archive stops before the damaged file lands,
//! and an interrupted restore leaves every file either old or new, never partial.
//!
//! Durability is batched: the temp files of a batch are written, then one `syncfs` per file system puts all
//! their data on disk, then they are renamed. That is the temp → fsync → rename sequence for each file, with
//! one journal commit per batch instead of one per file (a per-file fsync costs milliseconds each on ext4,
//! which is minutes for a big /etc/pve).

use crate::archive::format::{INDEX_PATH, Kind, META_PATH, hex};
use crate::archive::reader::Opened;
use crate::output::Progress;
use crate::restore::path::{Checker, NodeMap, TarKind, show, split};
use crate::restore::plan::{Action, Plan, Step, Wanted};
use crate::restore::scan::xattrs;
use crate::restore::target::{DirFd, Target, Walker, open_subdir};
use rustix::fs::{AtFlags, Gid, Mode, OFlags, RenameFlags, Timespec, Timestamps, Uid, XattrFlags};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// `extract`: never replace anything (renames use RENAME_NOREPLACE), and write meta.json and index.json.
    pub extract: bool,
    /// Set owners; only root can, so this is on when running as root.
    pub chown: bool,
    /// A batch ends after this many files or bytes (see the module docs).
    pub batch_files: usize,
    pub batch_bytes: u64,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        ApplyOptions {
            extract: false,
            chown: rustix::process::geteuid().is_root(),
            batch_files: 1024,
            batch_bytes: 64 << 20,
        }
    }
}

/// One entry written or removed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Done {
    /// Host path (`/etc/hosts`).
    pub path: String,
    pub category: String,
    pub action: &'static str,
    pub kind: Kind,
}

/// Why a restore stopped before the end.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "reason", rename_all = "lowercase")]
pub enum Stop {
    Interrupted,
    /// The archive's content differs from its index (or changed since pass 1).
    Damaged {
        entry: String,
        why: String,
    },
    Failed {
        entry: String,
        why: String,
    },
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::Interrupted => f.write_str("interrupted"),
            Stop::Damaged { entry, why } => write!(f, "{entry}: {why}"),
            Stop::Failed { entry, why } => write!(f, "{entry}: {why}"),
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ApplyReport {
    pub created: u64,
    pub replaced: u64,
    pub removed: u64,
    /// File bytes written.
    pub bytes: u64,
    pub done: Vec<Done>,
    /// Planned writes and removals that were not done (the restore stopped first).
    pub not_done: u64,
    pub warnings: Vec<String>,
    pub stopped: Option<Stop>,
}

const MAX_WARNINGS: usize = 200;

/// A written temp file waiting for its name.
struct Pending {
    dir: Rc<DirFd>,
    tmp: Vec<u8>,
    name: Vec<u8>,
    done: Done,
    bytes: u64,
    replace: bool,
}

struct Writer<'a> {
    walker: Walker,
    opts: &'a ApplyOptions,
    cancel: &'a AtomicBool,
    report: ApplyReport,
    batch: Vec<Pending>,
    batch_bytes: u64,
    tmp_counter: u64,
    /// Directories whose mode and mtime are set at the end: writing into a directory changes its mtime,
    /// and a read-only mode from the archive must not stop what goes into it.
    dir_meta: Vec<(Vec<u8>, Option<u32>, i64)>,
    /// File systems written to (synced once more at the end).
    devs: HashMap<u64, Rc<DirFd>>,
    buf: Vec<u8>,
}

fn times(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

fn failed(entry: &str, what: &str, e: impl std::fmt::Display) -> Stop {
    Stop::Failed {
        entry: entry.to_string(),
        why: format!("cannot {what}: {e}"),
    }
}

/// Write the plan's creates and replaces from `archive` into `target`, then its removals.
#[allow(clippy::too_many_arguments)]
pub fn apply(
    archive: &Path,
    target: &Target,
    wanted: &[Wanted],
    plan: &Plan,
    map: Option<&NodeMap>,
    opts: &ApplyOptions,
    cancel: &AtomicBool,
    progress: &dyn Progress,
) -> ApplyReport {
    let mut todo: HashMap<&[u8], &Step> = HashMap::new();
    for s in plan.writes() {
        if let Some(i) = s.wanted {
            todo.insert(wanted[i].archive_path.as_slice(), s);
        }
    }
    let planned =
        todo.len() as u64 + plan.removals().count() as u64 + if opts.extract { 2 } else { 0 };
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
        buf: vec![0u8; 256 * 1024],
    };
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
    let result = (|| -> Result<(), Stop> {
        let opened = Opened::open(archive)
            .map_err(|e| failed(&archive.display().to_string(), "open the archive", e))?;
        let mut reader = opened.tar();
        let mut checker = Checker::default();
        let changed = |entry: &str, why: String| Stop::Damaged {
            entry: entry.to_string(),
            why: format!(
                "{why} (the archive changed since it was read): stopped before writing it"
            ),
        };
        let entries = reader
            .archive
            .entries()
            .map_err(|e| changed("archive", e.to_string()))?;
        for entry in entries {
            if cancel.load(Ordering::Relaxed) {
                return Err(Stop::Interrupted);
            }
            let mut entry =
                entry.map_err(|e| changed("archive", format!("the stream is damaged: {e}")))?;
            let raw = entry.path_bytes().into_owned();
            let header = entry.header().clone();
            let tkind = TarKind::of(header.entry_type());
            let link = entry.link_name_bytes().map(|l| l.into_owned());
            let path = checker
                .check(&raw, tkind, link.as_deref())
                .map_err(|h| changed(&show(&raw), h.to_string()))?;
            if opts.extract && (path == META_PATH.as_bytes() || path == INDEX_PATH.as_bytes()) {
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
                w.file(&own, false, "create", &mut entry, Vec::new())?;
                continue;
            }
            let Some(step) = todo.remove(path.as_slice()) else {
                continue;
            };
            let want = &wanted[step.wanted.expect("write steps come from the index")];
            let shown = want.shown();
            // The header must still say what pass 1 and the index said.
            let size = header.size().unwrap_or(0);
            let same_header = crate::restore::scan::kind_of(tkind) == Some(want.kind)
                && (want.kind != Kind::File || size == want.size)
                && header.mode().unwrap_or(0) & 0o7777 == want.mode
                && (header.uid().unwrap_or(0), header.gid().unwrap_or(0))
                    == (u64::from(want.uid), u64::from(want.gid));
            if !same_header {
                return Err(changed(
                    &shown,
                    "its tar header differs from the index".into(),
                ));
            }
            let action = step.action.name();
            match want.kind {
                Kind::File => {
                    let xa = if step.through_pmxcfs {
                        Vec::new()
                    } else {
                        xattrs(&mut entry)
                    };
                    w.file(want, step.through_pmxcfs, action, &mut entry, xa)?;
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
                        return Err(changed(
                            &shown,
                            "its link target differs from the index".into(),
                        ));
                    }
                    let xa = xattrs(&mut entry);
                    w.symlink(want, action, &link, xa)?;
                }
                Kind::Dir => {
                    let xa = if step.through_pmxcfs {
                        Vec::new()
                    } else {
                        xattrs(&mut entry)
                    };
                    w.dir(want, step, xa)?;
                }
            }
            progress.advance(1, size);
        }
        if !todo.is_empty() {
            let mut missing: Vec<String> = todo.keys().map(|p| show(p)).collect();
            missing.sort();
            return Err(changed(
                &missing[0],
                format!("{} planned entries are not in the archive", missing.len()),
            ));
        }
        w.flush()?;
        w.remove_all(plan)?;
        Ok(())
    })();
    if let Err(stop) = result {
        // The files already written and verified in this batch still get their names: what came before the
        // stop is restored whatever the batch size. If that fails too, they are dropped (old version kept).
        if stop == Stop::Interrupted || matches!(stop, Stop::Damaged { .. }) {
            if let Err(e) = w.flush() {
                w.warn(format!("after the stop: {e}"));
                w.abort_batch();
            }
        } else {
            w.abort_batch();
        }
        w.report.stopped = Some(stop);
    }
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
    let done = w.report.done.len() as u64;
    w.report.not_done = planned.saturating_sub(done);
    w.report
}

impl Writer<'_> {
    fn warn(&mut self, msg: String) {
        if self.report.warnings.len() < MAX_WARNINGS {
            self.report.warnings.push(msg);
        }
    }

    fn tmp_name(&mut self) -> Vec<u8> {
        self.tmp_counter += 1;
        // Short (a long name plus a suffix could exceed NAME_MAX) and recognizable by its PID.
        format!(".proxkeep-{}-{}.tmp", std::process::id(), self.tmp_counter).into_bytes()
    }

    fn parent(&mut self, want: &Wanted) -> Result<Rc<DirFd>, Stop> {
        let (parent, _) = split(&want.path);
        let d = self
            .walker
            .open_dir(parent, true)
            .map_err(|e| Stop::Failed {
                entry: want.shown(),
                why: e.describe(),
            })?;
        self.devs.entry(d.dev).or_insert_with(|| d.clone());
        Ok(d)
    }

    fn set_xattrs(
        &mut self,
        shown: &str,
        xa: &[(String, Vec<u8>)],
        set: impl Fn(&str, &[u8]) -> rustix::io::Result<()>,
    ) {
        for (k, v) in xa {
            if let Err(e) = set(k, v) {
                self.warn(format!("{shown}: cannot set extended attribute {k}: {e}"));
            }
        }
    }

    /// Write one file to a temp name, checking its hash; it gets its name when the batch is flushed.
    fn file(
        &mut self,
        want: &Wanted,
        through: bool,
        action: &'static str,
        data: &mut dyn Read,
        xa: Vec<(String, Vec<u8>)>,
    ) -> Result<(), Stop> {
        let shown = want.shown();
        let dir = self.parent(want)?;
        let tmp = self.tmp_name();
        let fd = rustix::fs::openat(
            &dir.fd,
            tmp.as_slice(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )
        .map_err(|e| failed(&shown, "create a temp file", e))?;
        let mut file = File::from(fd);
        let unlink = |dir: &DirFd| {
            let _ = rustix::fs::unlinkat(&dir.fd, tmp.as_slice(), AtFlags::empty());
        };
        let mut hasher = Sha256::new();
        let mut n = 0u64;
        let copied: Result<(), Stop> = loop {
            if self.cancel.load(Ordering::Relaxed) {
                break Err(Stop::Interrupted);
            }
            let got = match data.read(&mut self.buf) {
                Ok(0) => break Ok(()),
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    break Err(Stop::Damaged {
                        entry: shown.clone(),
                        why: format!(
                            "cannot read it from the archive ({e}): stopped before writing it"
                        ),
                    });
                }
            };
            hasher.update(&self.buf[..got]);
            n += got as u64;
            if let Err(e) = file.write_all(&self.buf[..got]) {
                break Err(failed(&shown, "write", e));
            }
        };
        if let Err(stop) = copied {
            drop(file);
            unlink(&dir);
            return Err(stop);
        }
        if let Some(expected) = &want.sha256 {
            let got = hex(&hasher.finalize());
            if n != want.size || got != *expected {
                drop(file);
                unlink(&dir);
                return Err(Stop::Damaged {
                    entry: shown,
                    why: format!(
                        "its content does not match the index (sha256 {got}, index {expected}): stopped before writing it"
                    ),
                });
            }
        }
        let meta = (|| -> rustix::io::Result<()> {
            if !through {
                if self.opts.chown {
                    rustix::fs::fchown(
                        &file,
                        Some(Uid::from_raw(want.uid)),
                        Some(Gid::from_raw(want.gid)),
                    )?;
                }
                // After chown, which clears set-id bits.
                rustix::fs::fchmod(&file, Mode::from_raw_mode(want.mode))?;
            }
            rustix::fs::futimens(&file, &times(want.mtime))
        })();
        if let Err(e) = meta {
            drop(file);
            unlink(&dir);
            return Err(failed(&shown, "set the owner, mode or mtime of", e));
        }
        self.set_xattrs(&shown, &xa, |k, v| {
            rustix::fs::fsetxattr(&file, k, v, XattrFlags::empty())
        });
        drop(file);
        self.push(Pending {
            dir,
            tmp,
            name: split(&want.path).1.to_vec(),
            done: Done {
                path: shown,
                category: want.category.clone(),
                action,
                kind: Kind::File,
            },
            bytes: n,
            replace: action == "replace",
        })
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
        let meta = (|| -> rustix::io::Result<()> {
            if self.opts.chown {
                rustix::fs::chownat(
                    &dir.fd,
                    tmp.as_slice(),
                    Some(Uid::from_raw(want.uid)),
                    Some(Gid::from_raw(want.gid)),
                    AtFlags::SYMLINK_NOFOLLOW,
                )?;
            }
            rustix::fs::utimensat(
                &dir.fd,
                tmp.as_slice(),
                &times(want.mtime),
                AtFlags::SYMLINK_NOFOLLOW,
            )
        })();
        if let Err(e) = meta {
            let _ = rustix::fs::unlinkat(&dir.fd, tmp.as_slice(), AtFlags::empty());
            return Err(failed(&shown, "set the owner or mtime of", e));
        }
        if !xa.is_empty() {
            // No fd-based call exists for a symlink itself: go through our own open directory.
            let via = format!("/proc/self/fd/{}/{}", dir.fd.as_raw_fd(), show(&tmp));
            self.set_xattrs(&shown, &xa, |k, v| {
                rustix::fs::lsetxattr(via.as_str(), k, v, XattrFlags::empty())
            });
        }
        self.push(Pending {
            dir,
            tmp,
            name: split(&want.path).1.to_vec(),
            done: Done {
                path: shown,
                category: want.category.clone(),
                action,
                kind: Kind::Symlink,
            },
            bytes: 0,
            replace: action == "replace",
        })
    }

    /// Directories are created (or get their metadata) right away: files written later go into them.
    fn dir(&mut self, want: &Wanted, step: &Step, xa: Vec<(String, Vec<u8>)>) -> Result<(), Stop> {
        let shown = want.shown();
        let parent = self.parent(want)?;
        let name = split(&want.path).1;
        let exists = step.observed == Some(Kind::Dir);
        if !exists {
            match rustix::fs::mkdirat(&parent.fd, name, Mode::from_raw_mode(0o700)) {
                Ok(()) => {}
                // Made meanwhile (by a file's parent walk, or someone else): its metadata is set below.
                Err(Errno::EXIST) => {}
                Err(e) => return Err(failed(&shown, "create the directory", e)),
            }
        }
        let fd = open_subdir(parent.fd.as_fd(), name).map_err(|e| Stop::Failed {
            entry: shown.clone(),
            why: format!("cannot open the directory (a symlink in the way?): {e}"),
        })?;
        if !step.through_pmxcfs {
            let meta = (|| -> rustix::io::Result<()> {
                if self.opts.chown {
                    rustix::fs::fchown(
                        &fd,
                        Some(Uid::from_raw(want.uid)),
                        Some(Gid::from_raw(want.gid)),
                    )?;
                }
                Ok(())
            })();
            meta.map_err(|e| failed(&shown, "set the owner of", e))?;
            self.set_xattrs(&shown, &xa, |k, v| {
                rustix::fs::fsetxattr(&fd, k, v, XattrFlags::empty())
            });
            self.dir_meta
                .push((want.path.clone(), Some(want.mode), want.mtime));
        }
        let action = step.action.name();
        if action == "replace" {
            self.report.replaced += 1;
        } else {
            self.report.created += 1;
        }
        self.report.done.push(Done {
            path: shown,
            category: want.category.clone(),
            action,
            kind: Kind::Dir,
        });
        Ok(())
    }

    fn push(&mut self, p: Pending) -> Result<(), Stop> {
        self.batch_bytes += p.bytes;
        self.batch.push(p);
        if self.batch.len() >= self.opts.batch_files || self.batch_bytes >= self.opts.batch_bytes {
            self.flush()?;
        }
        Ok(())
    }

    /// Data of every temp file on disk (one syncfs per file system), then the renames.
    fn flush(&mut self) -> Result<(), Stop> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let mut synced = HashSet::new();
        for p in &self.batch {
            if synced.insert(p.dir.dev)
                && let Err(e) = rustix::fs::syncfs(&p.dir.fd)
            {
                let entry = p.done.path.clone();
                return Err(failed(&entry, "sync the file system of", e));
            }
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        let mut rest = batch.into_iter();
        while let Some(p) = rest.next() {
            let r = if self.opts.extract {
                rustix::fs::renameat_with(
                    &p.dir.fd,
                    p.tmp.as_slice(),
                    &p.dir.fd,
                    p.name.as_slice(),
                    RenameFlags::NOREPLACE,
                )
            } else {
                rustix::fs::renameat(&p.dir.fd, p.tmp.as_slice(), &p.dir.fd, p.name.as_slice())
            };
            if let Err(e) = r {
                let _ = rustix::fs::unlinkat(&p.dir.fd, p.tmp.as_slice(), AtFlags::empty());
                self.batch = rest.collect();
                let why = if e == Errno::EXIST {
                    "it already exists (extract never replaces anything)".to_string()
                } else {
                    format!("cannot rename into place: {e}")
                };
                return Err(Stop::Failed {
                    entry: p.done.path,
                    why,
                });
            }
            if p.replace {
                self.report.replaced += 1;
            } else {
                self.report.created += 1;
            }
            self.report.bytes += p.bytes;
            self.report.done.push(p.done);
        }
        Ok(())
    }

    /// The temp files not yet renamed are removed, so their targets keep the old version.
    fn abort_batch(&mut self) {
        for p in self.batch.drain(..) {
            let _ = rustix::fs::unlinkat(&p.dir.fd, p.tmp.as_slice(), AtFlags::empty());
        }
        self.batch_bytes = 0;
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
                Err(crate::restore::target::WalkError::Missing(_)) => continue,
                Err(e) => {
                    return Err(Stop::Failed {
                        entry: shown,
                        why: e.describe(),
                    });
                }
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
            let r = (|| -> Result<(), String> {
                let dir = self.walker.open_dir(&p, false).map_err(|e| e.describe())?;
                if let Some(mode) = mode {
                    rustix::fs::fchmod(&dir.fd, Mode::from_raw_mode(mode))
                        .map_err(|e| format!("cannot set the mode: {e}"))?;
                }
                rustix::fs::futimens(&dir.fd, &times(t))
                    .map_err(|e| format!("cannot set the mtime: {e}"))
            })();
            if let Err(e) = r {
                self.warn(format!("/{}: {e}", show(&p)));
            }
        }
    }

    /// The renames of the last batch and the directory changes on disk too.
    fn final_sync(&mut self) {
        for d in self.devs.values() {
            if let Err(e) = rustix::fs::syncfs(&d.fd) {
                let msg = format!("cannot sync the target's file system: {e}");
                if self.report.warnings.len() < MAX_WARNINGS {
                    self.report.warnings.push(msg);
                }
            }
        }
    }
}
