//! Writing the tree of a db into a directory, as pmxcfs would show it, without following any symlink.

use super::{
    NodeKind, PMXCFS_GID, PMXCFS_UID, PmxcfsError, TreeEntry, check_component, default_mode,
    read_tree,
};
use crate::dirwalk::{WalkError, Walker};
use crate::fsx::{create_at, is_symlink_at, open_dir_at, set_link_meta, set_meta};
use rustix::fs::Mode;
use rustix::io::Errno;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

/// What [`extract`] wrote (the virtual symlinks are not counted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ExtractStats {
    pub dirs: u64,
    pub files: u64,
    pub bytes: u64,
}

/// Write the tree of `db` into `dir` (empty or absent; created 0755).
///
/// Directories and files get [`default_mode`] and the rows' mtimes, and owner root:www-data when running as
/// root (otherwise ownership is left alone). Everything is created relative to already-open directory file
/// descriptors with `O_NOFOLLOW`/`O_EXCL`, so nothing is ever overwritten and no symlink is followed: a
/// symlink as `dir` or anywhere below it is refused. With `node` the pmxcfs virtual links `local`,
/// `qemu-server`, `lxc` and `openvz` are recreated (pointing into `nodes/<node>`).
pub fn extract(db: &Path, dir: &Path, node: Option<&str>) -> Result<ExtractStats, PmxcfsError> {
    if let Some(node) = node {
        check_component(node)
            .map_err(|reason| PmxcfsError::BadNodeName(db.to_path_buf(), node.into(), reason))?;
    }
    let entries = read_tree(db)?;
    let as_root = rustix::process::geteuid().is_root();
    let owner = as_root.then_some((PMXCFS_UID, PMXCFS_GID));
    let root = prepare_target(db, dir, owner)?;
    let stats = write_entries(db, dir, root.as_fd(), &entries, as_root)?;
    if let Some(node) = node {
        make_links(db, dir, root.as_fd(), node, owner)?;
    }
    Ok(stats)
}

fn io_err(db: &Path, path: &Path, action: &'static str, source: io::Error) -> PmxcfsError {
    PmxcfsError::Io {
        db: db.to_path_buf(),
        path: path.to_path_buf(),
        action,
        source,
    }
}

/// `make` (an error naming the db and a path) for `db` and `path`.
fn at(make: fn(PathBuf, PathBuf) -> PmxcfsError, db: &Path, path: &Path) -> PmxcfsError {
    make(db.to_path_buf(), path.to_path_buf())
}

fn meta_err(db: &Path, shown: &Path) -> impl FnOnce((&'static str, Errno)) -> PmxcfsError {
    move |(action, e)| io_err(db, shown, action, e.into())
}

/// Check `dir` (empty directory, not a symlink) or create it 0755; return it opened without following links.
fn prepare_target(
    db: &Path,
    dir: &Path,
    owner: Option<(u32, u32)>,
) -> Result<OwnedFd, PmxcfsError> {
    let mut created = false;
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => return Err(at(PmxcfsError::Symlink, db, dir)),
        Ok(m) if !m.is_dir() => return Err(at(PmxcfsError::TargetNotDir, db, dir)),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|e| io_err(db, dir, "create directory", e))?;
            created = true;
        }
        Err(e) => return Err(io_err(db, dir, "inspect", e)),
    }
    let fd = open_dir_at(rustix::fs::CWD, dir).map_err(|e| match e {
        Errno::LOOP | Errno::NOTDIR => at(PmxcfsError::Symlink, db, dir),
        e => io_err(db, dir, "open", e.into()),
    })?;
    // Emptiness checked on the opened directory itself, so a swap after the lstat above cannot slip through.
    if !crate::fsx::dir_is_empty(&fd).map_err(|e| io_err(db, dir, "list", e))? {
        return Err(at(PmxcfsError::TargetNotEmpty, db, dir));
    }
    if created {
        set_meta(&fd, owner, Some(0o755), None).map_err(meta_err(db, dir))?;
    }
    Ok(fd)
}

/// The error for a failed create of `name` in `parent`: a symlink in the way is reported as such.
fn create_err(
    db: &Path,
    parent: BorrowedFd<'_>,
    name: &str,
    shown: &Path,
    action: &'static str,
) -> impl FnOnce(Errno) -> PmxcfsError {
    move |e| {
        if matches!(e, Errno::EXIST | Errno::LOOP | Errno::NOTDIR) && is_symlink_at(parent, name) {
            at(PmxcfsError::Symlink, db, shown)
        } else {
            io_err(db, shown, action, e.into())
        }
    }
}

/// `path` (relative, `/`-separated) below `dir`, as messages show it.
fn shown(dir: &Path, path: &str) -> PathBuf {
    path.split('/').fold(dir.to_path_buf(), |p, c| p.join(c))
}

/// The error for a directory of the tree that cannot be opened again below `dir`.
fn walk_err(db: &Path, dir: &Path, e: WalkError) -> PmxcfsError {
    let (path, source) = match e {
        WalkError::Symlink(p) => {
            return at(
                PmxcfsError::Symlink,
                db,
                &shown(dir, &String::from_utf8_lossy(&p)),
            );
        }
        WalkError::Missing(p) => (p, io::ErrorKind::NotFound.into()),
        WalkError::NotDir(p) => (p, io::ErrorKind::NotADirectory.into()),
        WalkError::Io(p, e) => (p, e),
    };
    let path = shown(dir, &String::from_utf8_lossy(&path));
    io_err(db, &path, "open directory", source)
}

/// Give the directory `path` its mtime, once its children are done.
fn finish_dir(
    db: &Path,
    dir: &Path,
    walker: &mut Walker,
    (path, mtime): (&str, i64),
) -> Result<(), PmxcfsError> {
    let d = walker
        .open_dir(path.as_bytes(), false)
        .map_err(|e| walk_err(db, dir, e))?;
    set_meta(&d.fd, None, None, Some(mtime)).map_err(meta_err(db, &shown(dir, path)))
}

/// Write `entries` (in [`read_tree`] order) below the open directory `root` (shown as `dir` in messages).
///
/// Directories are reached through a [`Walker`], which keeps a bounded number of them open: a tree of any
/// depth or width needs no more file descriptors than that.
pub(super) fn write_entries(
    db: &Path,
    dir: &Path,
    root: BorrowedFd<'_>,
    entries: &[TreeEntry],
    as_root: bool,
) -> Result<ExtractStats, PmxcfsError> {
    let owner = as_root.then_some((PMXCFS_UID, PMXCFS_GID));
    let mut stats = ExtractStats::default();
    let mut walker = root
        .try_clone_to_owned()
        .and_then(Walker::new)
        .map_err(|e| io_err(db, dir, "open", e))?;
    // The directories of the path being written, each with the mtime it gets once its children are done.
    let mut stack: Vec<(&str, i64)> = Vec::new();
    for e in entries {
        let shown = shown(dir, &e.path);
        let refuse = |kind, why: &str| io_err(db, &shown, "create", io::Error::new(kind, why));
        for component in e.path.split('/') {
            check_component(component).map_err(|why| refuse(io::ErrorKind::InvalidInput, why))?;
        }
        let (parent, name) = e.path.rsplit_once('/').unwrap_or(("", e.path.as_str()));
        while let Some(done) = stack.pop_if(|d| d.0 != parent) {
            finish_dir(db, dir, &mut walker, done)?;
        }
        if stack.is_empty() && !parent.is_empty() {
            let why = "parent directory was not extracted first";
            return Err(refuse(io::ErrorKind::NotFound, why));
        }
        let parent_dir = walker
            .open_dir(parent.as_bytes(), false)
            .map_err(|e| walk_err(db, dir, e))?;
        let parent_fd = parent_dir.fd.as_fd();
        let mode = Some(default_mode(&e.path, e.kind));
        let cerr = |action| create_err(db, parent_fd, name, &shown, action);
        match e.kind {
            NodeKind::Dir => {
                rustix::fs::mkdirat(parent_fd, name, Mode::from_raw_mode(0o700))
                    .map_err(cerr("create directory"))?;
                let fd = open_dir_at(parent_fd, name).map_err(cerr("open directory"))?;
                set_meta(&fd, owner, mode, None).map_err(meta_err(db, &shown))?;
                stats.dirs += 1;
                stack.push((&e.path, e.mtime));
            }
            NodeKind::File => {
                let mut file = create_at(parent_fd, name).map_err(cerr("create file"))?;
                file.write_all(&e.data)
                    .map_err(|err| io_err(db, &shown, "write", err))?;
                set_meta(&file, owner, mode, Some(e.mtime)).map_err(meta_err(db, &shown))?;
                stats.files += 1;
                stats.bytes += e.data.len() as u64;
            }
        }
    }
    while let Some(done) = stack.pop() {
        finish_dir(db, dir, &mut walker, done)?;
    }
    Ok(stats)
}

/// The links pmxcfs creates at mount time (pmxcfs.c `create_symlinks`).
fn make_links(
    db: &Path,
    dir: &Path,
    root: BorrowedFd<'_>,
    node: &str,
    owner: Option<(u32, u32)>,
) -> Result<(), PmxcfsError> {
    for name in ["local", "qemu-server", "lxc", "openvz"] {
        let target = match name {
            "local" => format!("nodes/{node}"),
            _ => format!("nodes/{node}/{name}"),
        };
        let shown = dir.join(name);
        let cerr = create_err(db, root, name, &shown, "create symlink");
        rustix::fs::symlinkat(target.as_str(), root, name).map_err(cerr)?;
        set_link_meta(root, name, owner, None)
            .map_err(|err| io_err(db, &shown, "set the owner of", err.into()))?;
    }
    Ok(())
}
