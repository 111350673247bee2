//! Storing the scanned items: each read beneath the root handle without following a symlink, with its
//! metadata and extended attributes, streamed into the archive session.

use super::*;

/// Append one host item. Problems with the *source* (vanished, unreadable, changed while read) become
/// warnings; an `Err` is a problem with the archive itself and ends the run. Returns the bytes stored.
/// `found_keys`: when given, the recipients of age secret keys seen in file contents are added, with the path.
pub fn append_item(
    s: &mut Session,
    root: &Root,
    item: &Item,
    found_keys: Option<&mut Vec<(String, String)>>,
) -> Result<u64, SessionError> {
    let stored = match item.kind {
        Kind::File => append_file(s, root, item, found_keys)?,
        Kind::Dir | Kind::Symlink => append_node(s, root, item)?,
    };
    match stored {
        Ok(entry) => {
            let size = entry.size;
            s.push_entry(entry)?;
            Ok(size)
        }
        Err(message) => {
            s.warn(Some(item.host_path.display().to_string()), message);
            Ok(0)
        }
    }
}

/// Where the files over their source's size limit are listed: path, category, size and SHA-256 of each.
pub const LISTED_PATH: &str = "proxkeep/listed-files.json";

#[derive(serde::Serialize)]
struct ListedFile<'a> {
    path: String,
    category: &'a str,
    size: u64,
    sha256: String,
}

/// Append what the scan generated: the NIC inventory, and [`LISTED_PATH`] when the plan lists files (one
/// that cannot be read is a warning).
pub fn append_generated(s: &mut Session, root: &Root, plan: &Plan) -> Result<(), SessionError> {
    if let Some((category, nics)) = &plan.nics {
        let json =
            serde_json::to_vec_pretty(nics).map_err(|e| SessionError::Failed(e.to_string()))?;
        let path = format!(
            "{}/{category}/nics.json",
            crate::archive::format::COMMANDS_DIR
        );
        let size = json.len() as u64;
        s.append_internal(&path, category, "/sys/class/net", &json[..], size)?;
    }
    let mut out = Vec::new();
    for item in &plan.listed {
        s.check_cancel()?;
        let path = item.host_path.display().to_string();
        // Opened as a stored file is (beneath the root, no symlink in any component), so a directory swapped
        // after the scan cannot make the listing hash a file outside the tree.
        let flags = OFlags::RDONLY | OFlags::NONBLOCK;
        let hashed = open_beneath(root, &item.host_path, flags)
            .map(fs::File::from)
            .and_then(crate::fsx::hash_reader);
        match hashed {
            Ok((sha256, size)) => out.push(ListedFile {
                path,
                category: &item.category,
                size,
                sha256,
            }),
            Err(e) => s.warn(
                Some(path),
                not_stored(e, "unreadable").replace("stored", "listed"),
            ),
        }
    }
    let Some(first) = plan.listed.first() else {
        return Ok(());
    };
    let json = serde_json::to_vec_pretty(&out).map_err(|e| SessionError::Failed(e.to_string()))?;
    let size = json.len() as u64;
    s.append_internal(LISTED_PATH, &first.category, "listed", &json[..], size)
}

/// The entry stored, or why nothing was.
pub(super) type Stored = Result<IndexEntry, String>;

pub(super) const CHANGED_TYPE: &str = "changed type during the backup, not stored";

pub(super) fn not_stored(e: io::Error, what: &str) -> String {
    use rustix::io::Errno;
    match Errno::from_io_error(&e) {
        _ if e.kind() == io::ErrorKind::NotFound => "vanished during the backup".into(),
        Some(Errno::LOOP | Errno::NOTDIR) => THROUGH_LINK.into(),
        _ => format!("{what}, not stored: {e}"),
    }
}

pub(super) const THROUGH_LINK: &str = "a symlink or non-directory is in its path now (proxkeep never reads through a symlink), not stored";

/// Open a host path below `root` without following a symlink in any component, the last one included, so
/// a directory swapped for a symlink after the scan can never make the backup read outside the tree it
/// scanned: openat2 with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` where the kernel has it, else a walk from
/// the root, one `O_NOFOLLOW | O_DIRECTORY` open per directory.
pub fn open_beneath(root: &Root, host_path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    let rel: PathBuf = host_path
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        &rel
    };
    open_beneath_at(root.dir_fd()?, rel, flags)
}

/// Set when the kernel has no openat2 (before 5.6, or refused by a seccomp filter): walk from then on.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

pub(super) fn open_beneath_at(
    base: BorrowedFd<'_>,
    rel: &Path,
    flags: OFlags,
) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, ResolveFlags};
    use rustix::io::Errno;
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        let how = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
        // EAGAIN: a concurrent rename the kernel could not rule out; it says to try again.
        for _ in 0..8 {
            match rustix::fs::openat2(base, rel, flags, Mode::empty(), how) {
                Err(Errno::AGAIN | Errno::INTR) => continue,
                Err(Errno::NOSYS | Errno::PERM) => {
                    NO_OPENAT2.store(true, Ordering::Relaxed);
                    break;
                }
                r => return r.map_err(io::Error::from),
            }
        }
    }
    open_walk(base, rel, flags)
}

/// The fallback of [`open_beneath_at`]: `rel` (normal components only) opened one component at a time.
pub(super) fn open_walk(base: BorrowedFd<'_>, rel: &Path, flags: OFlags) -> io::Result<OwnedFd> {
    use rustix::fs::{Mode, openat};
    let dir_flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut comps = rel.iter().peekable();
    let mut dir: Option<OwnedFd> = None;
    while let Some(c) = comps.next() {
        let at = dir.as_ref().map_or(base, |d| d.as_fd());
        let last = comps.peek().is_none();
        let f = if last { flags } else { dir_flags };
        let fd = openat(at, c, f, Mode::empty())?;
        if last {
            return Ok(fd);
        }
        dir = Some(fd);
    }
    Err(io::ErrorKind::NotFound.into())
}

pub fn header<'a>(
    item: &'a Item,
    kind: Kind,
    md: &Metadata,
    xattrs: &'a [(String, Vec<u8>)],
) -> EntryHeader<'a> {
    EntryHeader {
        path: item.archive_path(),
        kind,
        mode: md.mode(),
        uid: md.uid(),
        gid: md.gid(),
        mtime: md.mtime(),
        size: if kind == Kind::File { md.len() } else { 0 },
        xattrs,
    }
}

/// Open a file to store as the backup does: never follow a link, never block on a FIFO swapped in.
pub fn open_no_follow(path: &Path) -> io::Result<fs::File> {
    let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
    OpenOptions::new()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
}

fn append_file(
    s: &mut Session,
    root: &Root,
    item: &Item,
    found_keys: Option<&mut Vec<(String, String)>>,
) -> Result<Stored, SessionError> {
    // Never block on a FIFO swapped in.
    let file = match open_beneath(root, &item.host_path, OFlags::RDONLY | OFlags::NONBLOCK) {
        Ok(f) => fs::File::from(f),
        Err(e) => return Ok(Err(not_stored(e, "unreadable"))),
    };
    let md = match file.metadata() {
        Ok(md) if md.is_file() => md,
        Ok(_) => return Ok(Err(CHANGED_TYPE.into())),
        Err(e) => return Ok(Err(format!("cannot stat, not stored: {e}"))),
    };
    let xattrs = xattrs_fd(&file);
    // The header comes from fstat of the open file; exactly that many bytes are stored.
    let h = header(item, Kind::File, &md, &xattrs);
    let mut sniffer = crate::crypt::IdentitySniffer::new(
        io::BufReader::with_capacity(256 * 1024, &file),
        found_keys.is_some(),
    );
    let cancel = s.cancel;
    let (sha, outcome, read_error) = s.write(|w| {
        let mut r = ExactReader::new(&mut sniffer, md.len(), cancel);
        w.append_reader(&h, &mut r)?;
        let read_error = r.error.take();
        let (sha, outcome) = r.finish()?;
        Ok((sha, outcome, read_error))
    })?;
    let host = item.host_path.display().to_string();
    if let Some(found) = found_keys {
        found.extend(sniffer.found.drain(..).map(|k| (host.clone(), k)));
    }
    let problem = match outcome {
        ReadOutcome::Exact => None,
        ReadOutcome::Shrunk { missing } => Some(format!(
            "shrank while being read: {missing} missing bytes stored as zeros (size at open: {})",
            md.len()
        )),
        ReadOutcome::Grew => Some(format!(
            "grew while being read: stored its first {} bytes (size at open)",
            md.len()
        )),
        ReadOutcome::ReadError => Some(format!(
            "read error, the rest stored as zeros: {}",
            read_error.map_or_else(String::new, |e| e.to_string())
        )),
    };
    if let Some(message) = problem {
        s.warn(Some(host), message);
    }
    Ok(Ok(index_entry(&h, &item.category, Some(sha), None, None)))
}

fn append_node(s: &mut Session, root: &Root, item: &Item) -> Result<Stored, SessionError> {
    // O_PATH | O_NOFOLLOW: the node itself, a symlink included, whatever it is now.
    let node = match open_beneath(root, &item.host_path, OFlags::PATH) {
        Ok(fd) => fs::File::from(fd),
        Err(e) => return Ok(Err(not_stored(e, "cannot stat"))),
    };
    let md = match node.metadata() {
        Ok(md) => md,
        Err(e) => return Ok(Err(not_stored(e, "cannot stat"))),
    };
    let kind = match Kind::of_file(md.file_type()) {
        Some(Kind::File) | None => return Ok(Err(CHANGED_TYPE.into())),
        Some(k) => k,
    };
    let xattrs = xattrs_node(&node);
    let h = header(item, kind, &md, &xattrs);
    if kind == Kind::Dir {
        s.write(|w| w.append_dir(&h))?;
        return Ok(Ok(index_entry(&h, &item.category, None, None, None)));
    }
    // The link itself, through its handle.
    let target = match rustix::fs::readlinkat(&node, "", Vec::new()) {
        Ok(t) => t.into_bytes(),
        Err(e) => return Ok(Err(format!("cannot read link, not stored: {e}"))),
    };
    s.write(|w| w.append_symlink(&h, &target))?;
    let shown = crate::archive::format::path_fields(&target).0;
    Ok(Ok(index_entry(&h, &item.category, None, Some(shown), None)))
}

/// Extended attributes (POSIX ACLs included, as `system.posix_acl_*`) of an open file.
pub fn xattrs_fd(file: &std::fs::File) -> Vec<(String, Vec<u8>)> {
    read_xattrs(
        |buf| rustix::fs::flistxattr(file, buf),
        |name, buf| rustix::fs::fgetxattr(file, name, buf),
    )
}

/// Extended attributes of the node (a directory or the symlink itself) an `O_PATH` handle holds, through
/// `/proc/self/fd/N`, which leads to that very node (and needs no read permission on a directory).
pub(super) fn xattrs_node(node: &fs::File) -> Vec<(String, Vec<u8>)> {
    let path = format!("/proc/self/fd/{}", node.as_raw_fd());
    read_xattrs(
        |buf| rustix::fs::listxattr(&path, buf),
        |name, buf| rustix::fs::getxattr(&path, name, buf),
    )
}

/// Extended attributes of a path, not following a symlink.
pub fn xattrs_path(path: &Path) -> Vec<(String, Vec<u8>)> {
    read_xattrs(
        |buf| rustix::fs::llistxattr(path, buf),
        |name, buf| rustix::fs::lgetxattr(path, name, buf),
    )
}

fn read_xattrs(
    list: impl Fn(&mut [u8]) -> rustix::io::Result<usize>,
    get: impl Fn(&str, &mut [u8]) -> rustix::io::Result<usize>,
) -> Vec<(String, Vec<u8>)> {
    // ENOTSUP and friends: this file system has no xattrs.
    let Some(names) = sized(1024, list) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for raw in names.split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let Ok(name) = std::str::from_utf8(raw) else {
            continue;
        };
        if let Some(value) = sized(256, |buf| get(name, buf)) {
            out.push((name.to_string(), value));
        }
    }
    out.sort();
    out
}

/// What `call` writes into a buffer of `start` bytes, grown when too small. Sizes can change between
/// the size query and the call; retry a few times with the new size.
fn sized(start: usize, call: impl Fn(&mut [u8]) -> rustix::io::Result<usize>) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; start];
    for _ in 0..4 {
        match call(&mut buf) {
            Ok(len) => {
                buf.truncate(len);
                return Some(buf);
            }
            Err(rustix::io::Errno::RANGE) => {
                let need = call(&mut []).unwrap_or(0);
                buf.resize(need.max(buf.len() * 2), 0);
            }
            Err(_) => return None,
        }
    }
    None
}
