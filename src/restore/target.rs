//! The target directory, read and written only relative to directory file descriptors.
//!
//! Every component of every path is opened with `O_NOFOLLOW | O_DIRECTORY` starting from the target's own
//! descriptor, so a symlink anywhere on the way (one that was there before, or one that appears while the
//! restore runs) is met as an error naming it, never followed out of the target. Paths are never handed to
//! the kernel as whole strings.

use crate::fsx::open_dir_at;
use crate::restore::path::{show, split};
use crate::restore::plan::{DIFF_MAX, Observed};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(Debug)]
pub struct DirFd {
    pub fd: OwnedFd,
    pub dev: u64,
    /// The count of open handles of the walker that opened it (`None` for the target itself).
    live: Option<Arc<AtomicUsize>>,
}

impl Drop for DirFd {
    fn drop(&mut self) {
        if let Some(live) = &self.live {
            live.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[derive(Debug)]
pub struct Target {
    pub dir: PathBuf,
    root: Arc<DirFd>,
}

fn open_dir_fd(fd: OwnedFd, live: Option<&Arc<AtomicUsize>>) -> io::Result<DirFd> {
    let st = rustix::fs::fstat(&fd)?;
    if let Some(live) = live {
        live.fetch_add(1, Ordering::Relaxed);
    }
    Ok(DirFd {
        fd,
        dev: st.st_dev,
        live: live.cloned(),
    })
}

impl Target {
    /// Open an existing directory. The directory named by the user is followed if it is a symlink (it is the
    /// user's choice of target); nothing below it ever is.
    pub fn open(dir: &Path) -> io::Result<Target> {
        let fd = rustix::fs::open(
            dir,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Target {
            dir: dir.to_path_buf(),
            root: Arc::new(open_dir_fd(fd, None)?),
        })
    }

    pub fn walker(&self) -> Walker {
        Walker::below(self.root.clone())
    }

    pub fn is_empty(&self) -> io::Result<bool> {
        crate::fsx::dir_is_empty(&self.root.fd)
    }
}

/// Why a directory on the way to an entry cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("/{} does not exist", show(.0))]
    Missing(Vec<u8>),
    #[error("passes through the symlink /{} on the target", show(.0))]
    Symlink(Vec<u8>),
    #[error("/{} on the target is not a directory", show(.0))]
    NotDir(Vec<u8>),
    #[error("cannot open /{}: {}", show(.0), .1)]
    Io(Vec<u8>, io::Error),
}

/// Opens directories below the target one component at a time, and keeps the most recently used ones open
/// (keyed by path, least recently used closed first), so entries of a directory used lately cost no system
/// call whatever the archive's order, and the handles kept stay bounded whatever its shape.
pub struct Walker {
    root: Arc<DirFd>,
    /// Normalized path → handle and when it was last used.
    cache: HashMap<Vec<u8>, (Arc<DirFd>, u64)>,
    tick: u64,
    capacity: usize,
    /// The most handles this walker's directories may hold open, its cache and its callers' together.
    budget: usize,
    /// Handles it opened that are still open (in its cache, or held by a caller).
    live: Arc<AtomicUsize>,
}

/// Permission bits of directories created only because something goes below them (not in the archive).
const IMPLICIT_DIR_MODE: u32 = 0o755;

fn classify(parent: BorrowedFd<'_>, name: &[u8], prefix: &[u8], e: Errno) -> WalkError {
    match e {
        Errno::NOENT => WalkError::Missing(prefix.to_vec()),
        Errno::LOOP | Errno::NOTDIR => {
            match rustix::fs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) if FileType::from_raw_mode(st.st_mode) == FileType::Symlink => {
                    WalkError::Symlink(prefix.to_vec())
                }
                Ok(_) => WalkError::NotDir(prefix.to_vec()),
                Err(e) => WalkError::Io(prefix.to_vec(), e.into()),
            }
        }
        e => WalkError::Io(prefix.to_vec(), e.into()),
    }
}

impl Walker {
    /// A walker below the open directory `root` (not followed if it is a symlink: it is already open).
    pub fn new(root: OwnedFd) -> io::Result<Walker> {
        Ok(Walker::below(Arc::new(open_dir_fd(root, None)?)))
    }

    fn below(root: Arc<DirFd>) -> Walker {
        // A quarter of the soft limit (256 at Debian's 1024) for directories, the rest for everything else.
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        let budget = (soft / 4).clamp(8, 4096) as usize;
        Walker {
            root,
            cache: HashMap::new(),
            tick: 0,
            capacity: (budget / 4).min(128),
            budget,
            live: Arc::default(),
        }
    }

    /// The directory `dir` (a normalized path; empty = the target itself). With `create`, missing
    /// components are created with mode 0755 (components that are in the archive are created by their own
    /// step, earlier in archive order, with the archive's metadata).
    pub fn open_dir(&mut self, dir: &[u8], create: bool) -> Result<Arc<DirFd>, WalkError> {
        if dir.starts_with(b"/") || dir.ends_with(b"/") || dir.windows(2).any(|w| w == b"//") {
            let comps: Vec<&[u8]> = dir
                .split(|b| *b == b'/')
                .filter(|c| !c.is_empty())
                .collect();
            return self.open_dir(&comps.join(&b'/'), create);
        }
        self.tick += 1;
        if dir.is_empty() {
            return Ok(self.root.clone());
        }
        if let Some((d, used)) = self.cache.get_mut(dir) {
            *used = self.tick;
            return Ok(d.clone());
        }
        // From the longest prefix still open (or the target), one component at a time.
        let ends: Vec<usize> = (0..dir.len()).filter(|i| dir[*i] == b'/').collect();
        let mut from = ends.len();
        let mut parent = self.root.clone();
        while from > 0 {
            if let Some((d, used)) = self.cache.get_mut(&dir[..ends[from - 1]]) {
                *used = self.tick;
                parent = d.clone();
                break;
            }
            from -= 1;
        }
        let starts = std::iter::once(0).chain(ends.iter().map(|e| e + 1));
        let comps = starts.zip(ends.iter().copied().chain([dir.len()]));
        for (start, end) in comps.skip(from) {
            let (comp, prefix) = (&dir[start..end], &dir[..end]);
            let fd = match open_dir_at(&parent.fd, comp) {
                Ok(fd) => fd,
                Err(Errno::NOENT) if create => {
                    let made =
                        match rustix::fs::mkdirat(&parent.fd, comp, Mode::from_raw_mode(0o700)) {
                            Ok(()) => true,
                            Err(Errno::EXIST) => false,
                            Err(e) => return Err(WalkError::Io(prefix.to_vec(), e.into())),
                        };
                    let fd = open_dir_at(&parent.fd, comp)
                        .map_err(|e| classify(parent.fd.as_fd(), comp, prefix, e))?;
                    if made {
                        // Explicit, so the process umask does not decide.
                        rustix::fs::fchmod(&fd, Mode::from_raw_mode(IMPLICIT_DIR_MODE))
                            .map_err(|e| WalkError::Io(prefix.to_vec(), e.into()))?;
                    }
                    fd
                }
                Err(e) => return Err(classify(parent.fd.as_fd(), comp, prefix, e)),
            };
            let d =
                open_dir_fd(fd, Some(&self.live)).map_err(|e| WalkError::Io(prefix.to_vec(), e))?;
            parent = Arc::new(d);
            self.keep(prefix, parent.clone());
        }
        Ok(parent)
    }

    fn keep(&mut self, path: &[u8], d: Arc<DirFd>) {
        if self.cache.len() >= self.capacity.max(1) {
            let oldest = self.cache.iter().min_by_key(|(_, (_, used))| *used);
            if let Some(k) = oldest.map(|(k, _)| k.clone()) {
                self.cache.remove(&k);
            }
        }
        self.cache.insert(path.to_vec(), (d, self.tick));
    }

    /// Whether the handles it opened that are still open have reached its budget: whoever holds them
    /// (files waiting for their rename) should let them go before more are opened. Letting them all go
    /// brings it back to at most the cache's size; opening one path adds at most that much again.
    pub fn full(&self) -> bool {
        self.live.load(Ordering::Relaxed) + self.capacity >= self.budget
    }
}

/// SHA-256 and (when asked for, and no bigger than [`DIFF_MAX`]) the content of an open file.
fn hash_file(mut f: File, keep: bool) -> io::Result<(String, Option<Vec<u8>>)> {
    let mut head = Vec::new();
    if keep {
        (&mut f).take(DIFF_MAX + 1).read_to_end(&mut head)?;
    }
    let (sha256, _) = crate::fsx::hash_reader(head.as_slice().chain(f))?;
    let kept = (keep && head.len() as u64 <= DIFF_MAX).then_some(head);
    Ok((sha256, kept))
}

/// What the target holds at `path` (normalized). A file is hashed only when its size is `hash_if_size` (a
/// different size already means different content); `content` keeps small files' bytes for a diff.
pub fn observe(
    walker: &mut Walker,
    path: &[u8],
    hash_if_size: Option<u64>,
    content: bool,
) -> Observed {
    let (parent, name) = split(path);
    let dir = match walker.open_dir(parent, false) {
        Ok(d) => d,
        Err(WalkError::Missing(_)) => return Observed::Missing,
        Err(e) => return Observed::Blocked(e.to_string()),
    };
    let st = match rustix::fs::statat(&dir.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(Errno::NOENT) => return Observed::Missing,
        Err(e) => return Observed::Blocked(format!("cannot inspect /{}: {e}", show(path))),
    };
    let mode = st.st_mode & 0o7777;
    let (uid, gid) = (st.st_uid, st.st_gid);
    match FileType::from_raw_mode(st.st_mode) {
        FileType::RegularFile => {
            let size = st.st_size as u64;
            let same_size = hash_if_size == Some(size);
            let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
            // Unreadable: counts as different content.
            let read = (same_size || content)
                .then(|| rustix::fs::openat(&dir.fd, name, flags, Mode::empty()).ok())
                .flatten()
                .and_then(|fd| hash_file(File::from(fd), content).ok());
            // A hash of a file of another size is never compared; keep it only when meaningful.
            let (sha256, kept) =
                read.map_or((None, None), |(sha, kept)| (same_size.then_some(sha), kept));
            Observed::File {
                mode,
                uid,
                gid,
                size,
                sha256,
                content: kept,
            }
        }
        FileType::Directory => Observed::Dir { mode, uid, gid },
        FileType::Symlink => match rustix::fs::readlinkat(&dir.fd, name, Vec::new()) {
            Ok(t) => Observed::Symlink {
                target: t.into_bytes(),
                uid,
                gid,
            },
            Err(e) => Observed::Blocked(format!("cannot read the link /{}: {e}", show(path))),
        },
        FileType::Fifo => Observed::Other("FIFO"),
        FileType::Socket => Observed::Other("socket"),
        FileType::CharacterDevice => Observed::Other("character device"),
        FileType::BlockDevice => Observed::Other("block device"),
        FileType::Unknown => Observed::Other("special file"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn observe_never_follows_symlinks() {
        let t = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"s").unwrap();
        std::fs::create_dir(t.path().join("etc")).unwrap();
        std::fs::write(t.path().join("etc/hosts"), b"h\n").unwrap();
        symlink(outside.path(), t.path().join("etc/link")).unwrap();
        symlink("hosts", t.path().join("etc/hosts-link")).unwrap();
        std::fs::write(t.path().join("file"), b"").unwrap();
        let target = Target::open(t.path()).unwrap();
        let mut w = target.walker();
        match observe(&mut w, b"etc/hosts", Some(2), true) {
            Observed::File {
                size: 2,
                sha256: Some(s),
                content: Some(c),
                ..
            } => {
                assert_eq!(s, crate::archive::sha256_hex(b"h\n"));
                assert_eq!(c, b"h\n");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            observe(&mut w, b"etc/hosts", Some(3), false),
            Observed::File { sha256: None, .. }
        ));
        assert_eq!(
            observe(&mut w, b"etc/link/secret", None, false),
            Observed::Blocked("passes through the symlink /etc/link on the target".into())
        );
        assert_eq!(
            observe(&mut w, b"file/x", None, false),
            Observed::Blocked("/file on the target is not a directory".into())
        );
        assert_eq!(
            observe(&mut w, b"etc/hosts-link", None, false),
            Observed::Symlink {
                target: b"hosts".to_vec(),
                uid: rustix::process::geteuid().as_raw(),
                gid: rustix::process::getegid().as_raw(),
            }
        );
        assert_eq!(observe(&mut w, b"nope/x", None, false), Observed::Missing);
        assert_eq!(observe(&mut w, b"etc/nope", None, false), Observed::Missing);
        // Creating through a symlink is refused too.
        assert!(
            matches!(w.open_dir(b"etc/link/sub", true), Err(WalkError::Symlink(p)) if p == b"etc/link")
        );
        assert!(!outside.path().join("sub").exists());
        let d = w.open_dir(b"new/deep", true).unwrap();
        assert_eq!(rustix::fs::fstat(&d.fd).unwrap().st_mode & 0o7777, 0o755);
        assert!(!target.is_empty().unwrap());
    }

    #[test]
    fn the_walker_keeps_a_bounded_number_of_directories_open() {
        let t = tempfile::tempdir().unwrap();
        for i in 0..300 {
            std::fs::create_dir_all(t.path().join(format!("a/d{i:03}"))).unwrap();
        }
        let deep = "d/".repeat(200);
        std::fs::create_dir_all(t.path().join(&deep)).unwrap();
        let target = Target::open(t.path()).unwrap();
        let mut w = target.walker();
        // What it gets at a soft limit of 128, whatever this process has.
        (w.budget, w.capacity) = (32, 8);
        let live = |w: &Walker| w.live.load(Ordering::Relaxed);
        // Used lately: the same handle, nothing opened again (archive order alternating between two).
        let (x, y) = (
            w.open_dir(b"a/d000", false).unwrap(),
            w.open_dir(b"a/d001", false).unwrap(),
        );
        let opened = live(&w);
        for _ in 0..100 {
            assert!(Arc::ptr_eq(&x, &w.open_dir(b"a/d000", false).unwrap()));
            assert!(Arc::ptr_eq(&y, &w.open_dir(b"/a//d001/", false).unwrap()));
        }
        assert_eq!(live(&w), opened);
        drop((x, y));
        // Many directories, or a deep one: no more than the cache stays open.
        for i in 0..300 {
            w.open_dir(format!("a/d{i:03}").as_bytes(), false).unwrap();
        }
        assert!(live(&w) <= w.capacity, "{} open", live(&w));
        let bottom = w
            .open_dir(deep.trim_end_matches('/').as_bytes(), false)
            .unwrap();
        assert!(live(&w) <= w.capacity + 1, "{} open", live(&w));
        drop(bottom);
        // Handles held by the caller count: `full` says when to let them go.
        let mut held = Vec::new();
        for i in 0..300 {
            if w.full() {
                break;
            }
            held.push(w.open_dir(format!("a/d{i:03}").as_bytes(), false).unwrap());
        }
        assert!(w.full() && live(&w) <= w.budget, "{} open", live(&w));
        drop(held);
        assert!(!w.full() && live(&w) <= w.capacity);
    }
}
