//! The target directory, read and written only relative to directory file descriptors.
//!
//! Every component of every path is opened with `O_NOFOLLOW | O_DIRECTORY` starting from the target's own
//! descriptor, so a symlink anywhere on the way (one that was there before, or one that appears while the
//! restore runs) is met as an error naming it, never followed out of the target. Paths are never handed to
//! the kernel as whole strings.

use crate::dirwalk::{DirFd, WalkError, Walker, open_dir_fd};
use crate::restore::path::{show, split};
use crate::restore::plan::{DIFF_MAX, Observed};
use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Debug)]
pub struct Target {
    pub dir: PathBuf,
    root: Arc<DirFd>,
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
}
