//! Directories below a root directory handle, opened one component at a time with `O_NOFOLLOW | O_DIRECTORY`
//! and kept in a bounded cache: what restore (its target) and pmxcfs extract (its output) write through, so no
//! symlink is followed on the way and the handles held stay bounded whatever the order and shape of the paths.

use crate::archive::rules::show;
use crate::fsx::open_dir_at;
use rustix::fs::{AtFlags, FileType, Mode};
use rustix::io::Errno;
use std::collections::HashMap;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
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

pub(crate) fn open_dir_fd(fd: OwnedFd, live: Option<&Arc<AtomicUsize>>) -> io::Result<DirFd> {
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

    pub(crate) fn below(root: Arc<DirFd>) -> Walker {
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::fs::OFlags;

    #[test]
    fn the_walker_keeps_a_bounded_number_of_directories_open() {
        let t = tempfile::tempdir().unwrap();
        for i in 0..300 {
            std::fs::create_dir_all(t.path().join(format!("a/d{i:03}"))).unwrap();
        }
        let deep = "d/".repeat(200);
        std::fs::create_dir_all(t.path().join(&deep)).unwrap();
        let root = rustix::fs::open(t.path(), OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty());
        let mut w = Walker::new(root.unwrap()).unwrap();
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
