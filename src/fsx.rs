//! File-system helpers every layer uses: atomic and private writes, hashing a stream, mount points, and
//! creating and stamping entries below an open directory.

use rustix::fs::{AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid};
use rustix::io::Errno;
use sha2::{Digest, Sha256};
use std::ffi::CStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Create a new file with mode 0600 (never following or replacing an existing one).
pub fn create_private(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)
}

/// Create `dir` and the parents it lacks, each with exactly `mode` whatever the umask (set with `fchmod` on the
/// directory just made, opened without following a symlink). Directories that exist are left as they are.
pub fn create_dir_all(dir: &Path, mode: u32) -> io::Result<()> {
    // A relative `dir` ends its ancestors with "", which is the working directory, not a missing one.
    let absent = |d: &&Path| !d.as_os_str().is_empty() && is_absent(d);
    let missing: Vec<&Path> = dir.ancestors().take_while(absent).collect();
    for d in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(mode).create(d) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => continue,
            made => made?,
        }
        let fd = open_dir_at(rustix::fs::CWD, d)?;
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode))?;
    }
    Ok(())
}

/// Nothing is at `path`, not even a dangling symlink (an error other than "not found" is not absence).
pub fn is_absent(path: &Path) -> bool {
    fs::symlink_metadata(path).is_err_and(|e| e.kind() == io::ErrorKind::NotFound)
}

/// The directory `path` is in (`.` for a bare name).
pub fn dir_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Write `data` to `path` atomically: temp file in the same directory, fsync, rename, fsync the directory.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".proxkeep-{name}."))
        .suffix(&format!(".{}.tmp", std::process::id()))
        .tempfile_in(dir)?;
    tmp.as_file()
        .set_permissions(fs::Permissions::from_mode(mode))?;
    tmp.write_all(data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    File::open(dir)?.sync_all()
}

/// Append `data` to the log file `path` (made 0600 with its directory 0700 when new, never through a symlink),
/// then fsync it.
pub fn append_private(path: &Path, data: &[u8]) -> io::Result<()> {
    create_dir_all(dir_of(path), 0o700)?;
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(path)?;
    f.write_all(data)?;
    f.sync_all()
}

/// SHA-256 (lower-case hex) and length of everything `r` yields.
pub fn hash_reader(mut r: impl Read) -> io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    // 256 KiB: syscalls do not count next to the hashing, and zeroing it stays cheap when restore hashes
    // thousands of small files one call each.
    let mut buf = vec![0u8; 256 << 10];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((base16ct::lower::encode_string(&hasher.finalize()), total))
}

pub fn sha256_file(path: &Path) -> io::Result<String> {
    hash_reader(File::open(path)?).map(|(h, _)| h)
}

/// One line of `/proc/self/mountinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) if b[i] == b'\\' => {
                out.push(((d[0] - b'0') << 6) | ((d[1] - b'0') << 3) | (d[2] - b'0'));
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse mountinfo (proc(5)): `id parent major:minor root mount-point options [optional...] - fstype source super-options`.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let fstype = r.next()?;
            let source = r.next().unwrap_or("");
            Some(Mount {
                mount_point: unescape(mount_point),
                fstype: unescape(fstype),
                source: unescape(source),
            })
        })
        .collect()
}

/// The mounts of this process's namespace (empty when `/proc` cannot be read).
pub fn mounts() -> Vec<Mount> {
    parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

pub fn is_mount_point(path: &Path) -> bool {
    let want = path.components().collect::<PathBuf>();
    mounts().iter().any(|m| Path::new(&m.mount_point) == want)
}

// Writing below an open directory (restore, pmxcfs extraction): nothing followed, nothing replaced

/// atime and mtime both at `mtime` (whole seconds), as restore and extraction give them.
pub fn timestamps(mtime: i64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// Open the directory `name` in `parent` without following a symlink.
pub fn open_dir_at(parent: impl AsFd, name: impl rustix::path::Arg) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(parent, name, flags, Mode::empty())
}

/// Create the new file `name` in `dir` with mode 0600, never following or replacing what is there.
pub fn create_at(dir: impl AsFd, name: impl rustix::path::Arg) -> rustix::io::Result<File> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    rustix::fs::openat(dir, name, flags, Mode::from_raw_mode(0o600)).map(File::from)
}

/// Set what is given of owner, mode and mtime on an open file or directory, in that order (chown clears the
/// set-id bits, so the mode goes after it). A failure says which step failed: "set the owner of", ...
pub fn set_meta(
    fd: impl AsFd,
    owner: Option<(u32, u32)>,
    mode: Option<u32>,
    mtime: Option<i64>,
) -> Result<(), (&'static str, Errno)> {
    if let Some((uid, gid)) = owner {
        let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        rustix::fs::fchown(&fd, uid, gid).map_err(|e| ("set the owner of", e))?;
    }
    if let Some(mode) = mode {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(|e| ("set the mode of", e))?;
    }
    if let Some(t) = mtime {
        rustix::fs::futimens(&fd, &timestamps(t)).map_err(|e| ("set the mtime of", e))?;
    }
    Ok(())
}

/// Owner and mtime of the symlink `name` in `dir` itself, never of what it points to.
pub fn set_link_meta(
    dir: impl AsFd,
    name: impl rustix::path::Arg + Copy,
    owner: Option<(u32, u32)>,
    mtime: Option<i64>,
) -> rustix::io::Result<()> {
    if let Some((uid, gid)) = owner {
        let (uid, gid) = (Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)));
        rustix::fs::chownat(&dir, name, uid, gid, AtFlags::SYMLINK_NOFOLLOW)?;
    }
    if let Some(t) = mtime {
        rustix::fs::utimensat(&dir, name, &timestamps(t), AtFlags::SYMLINK_NOFOLLOW)?;
    }
    Ok(())
}

pub fn is_symlink_at(dir: impl AsFd, name: impl rustix::path::Arg) -> bool {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW)
        .is_ok_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Symlink)
}

/// Whether an open directory has no entries (asked of the descriptor, so a swapped path cannot fool it).
pub fn dir_is_empty(dir: impl AsFd) -> io::Result<bool> {
    for item in rustix::fs::Dir::read_from(dir)? {
        let item = item?;
        if ![&b"."[..], b".."].contains(&item.file_name().to_bytes()) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Remove the directory `name` in `dir` and everything below it, through directory descriptors: a symlink is
/// removed as an entry and never followed, and a directory on another file system (a mount) stops the removal
/// with `EXDEV` instead of being emptied.
pub fn remove_tree_at(dir: impl AsFd, name: &CStr) -> io::Result<()> {
    let dev = rustix::fs::fstat(&dir)?.st_dev;
    let fd = open_dir_at(&dir, name)?;
    if rustix::fs::fstat(&fd)?.st_dev != dev {
        return Err(Errno::XDEV.into());
    }
    let mut names = Vec::new();
    for item in rustix::fs::Dir::read_from(&fd)? {
        let item = item?;
        if ![&b"."[..], b".."].contains(&item.file_name().to_bytes()) {
            names.push(item.file_name().to_owned());
        }
    }
    for n in names {
        let st = rustix::fs::statat(&fd, n.as_c_str(), AtFlags::SYMLINK_NOFOLLOW)?;
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Directory => remove_tree_at(&fd, &n)?,
            _ => rustix::fs::unlinkat(&fd, n.as_c_str(), AtFlags::empty())?,
        }
    }
    Ok(rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_dir_all_sets_the_mode_of_each_directory_it_makes_and_only_those() {
        let t = tempfile::tempdir().unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        fs::set_permissions(t.path(), fs::Permissions::from_mode(0o711)).unwrap();
        // 0777 is what no usual umask lets through: only an explicit chmod gives it.
        create_dir_all(&t.path().join("a/b/c"), 0o777).unwrap();
        for d in ["a", "a/b", "a/b/c"] {
            assert_eq!(mode(&t.path().join(d)), 0o777, "{d}");
        }
        assert_eq!(mode(t.path()), 0o711);
        create_dir_all(&t.path().join("a/b/c"), 0o700).unwrap();
        assert_eq!(
            mode(&t.path().join("a/b/c")),
            0o777,
            "an existing directory is left as it is"
        );
    }

    #[test]
    fn mountinfo_unescapes() {
        let text = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw\n\
                    90 22 0:50 / /mnt/my\\040nas rw - nfs4 srv:/x rw\ngarbage\n";
        let m = parse_mountinfo(text);
        assert_eq!(m.len(), 2);
        assert_eq!(
            m[1],
            Mount {
                mount_point: "/mnt/my nas".into(),
                fstype: "nfs4".into(),
                source: "srv:/x".into()
            }
        );
    }

    #[test]
    fn hashes_a_stream() {
        let (h, n) = hash_reader(&b"abc"[..]).unwrap();
        assert_eq!(n, 3);
        assert_eq!(
            h,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn remove_tree_at_removes_links_not_their_targets_and_refuses_a_symlink_at_the_top() {
        let t = tempfile::tempdir().unwrap();
        let outside = t.path().join("outside");
        fs::create_dir_all(outside.join("keep")).unwrap();
        fs::write(outside.join("keep/f"), b"x").unwrap();
        let tree = t.path().join("tree");
        fs::create_dir_all(tree.join("a/b")).unwrap();
        fs::write(tree.join("a/b/f"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, tree.join("a/link")).unwrap();
        std::os::unix::fs::symlink(&outside, t.path().join("top-link")).unwrap();
        let dir = File::open(t.path()).unwrap();
        assert!(remove_tree_at(&dir, c"top-link").is_err());
        remove_tree_at(&dir, c"tree").unwrap();
        assert!(is_absent(&tree));
        assert!(outside.join("keep/f").is_file() && t.path().join("top-link").exists());
    }
}
