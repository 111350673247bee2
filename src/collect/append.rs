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
    let prepared = prepare(&mut Opener::new(root), item, found_keys.is_some(), s.cancel);
    store(s, item, prepared, found_keys)
}

/// Files up to this size are read whole ahead of the writer, by [`append_items`]' reader thread.
const READ_AHEAD_FILE: u64 = 256 << 10;
/// Prepared items go to the writer in batches of at most this many, or of this much content read, whichever
/// comes first: a hand-over per item cost a thread wake-up on each side every time (on the 20,000-file bench
/// tree about 6% of the backup's CPU went to scheduling).
const BATCH_ITEMS: usize = 32;
const BATCH_BYTES: usize = 512 << 10;
/// Batches waiting for the writer: with the one being filled and the one being written, at most about 3 MiB
/// of content is held.
const BATCHES_AHEAD: usize = 4;

/// [`append_item`] for every item, in order, with the progress advanced: a reader thread opens each item,
/// reads its metadata and extended attributes, and reads and hashes a small file whole, ahead of the writer,
/// which then only appends (the reading and hashing no longer wait on the compressor, nor it on them).
pub fn append_items(
    s: &mut Session,
    root: &Root,
    items: &[Item],
    mut found_keys: Option<&mut Vec<(String, String)>>,
) -> Result<(), SessionError> {
    let (sniff, cancel) = (found_keys.is_some(), s.cancel);
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Prepared>>(BATCHES_AHEAD);
        scope.spawn(move || {
            let mut opener = Opener::new(root);
            let (mut batch, mut bytes) = (Vec::with_capacity(BATCH_ITEMS), 0);
            for item in items {
                if cancel.load(Ordering::Relaxed) {
                    return;
                }
                let prepared = prepare(&mut opener, item, sniff, cancel);
                bytes += prepared.held();
                batch.push(prepared);
                if batch.len() >= BATCH_ITEMS || bytes >= BATCH_BYTES {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_ITEMS));
                    if tx.send(full).is_err() {
                        return;
                    }
                    bytes = 0;
                }
            }
            if !batch.is_empty() {
                let _ = tx.send(batch);
            }
        });
        // Dropping `rx` on an error stops the reader at its next batch.
        let mut batch = Vec::new().into_iter();
        for item in items {
            s.check_cancel()?;
            let prepared = match batch.next() {
                Some(p) => p,
                None => {
                    batch = rx
                        .recv()
                        .map_err(|_| SessionError::Interrupted)?
                        .into_iter();
                    batch.next().ok_or(SessionError::Interrupted)?
                }
            };
            let bytes = store(s, item, prepared, found_keys.as_deref_mut())?;
            s.progress.advance(1, bytes);
        }
        Ok(())
    })
}

/// An item as read from the host, ready to append.
enum Prepared {
    /// A file read whole: its content, its SHA-256, how the read went, and the age keys seen in it.
    Read {
        md: Metadata,
        xattrs: Vec<(String, Vec<u8>)>,
        data: Vec<u8>,
        /// SHA-256, outcome and read error; `Err` only when cancelled.
        read: io::Result<(String, ReadOutcome, Option<io::Error>)>,
        found: Vec<String>,
    },
    /// A larger file, open: the writer streams it.
    Open {
        file: fs::File,
        md: Metadata,
        xattrs: Vec<(String, Vec<u8>)>,
    },
    /// A directory or symlink (with its target).
    Node {
        md: Metadata,
        kind: Kind,
        xattrs: Vec<(String, Vec<u8>)>,
        target: Option<Vec<u8>>,
    },
    /// Nothing can be stored: why.
    Not(String),
}

impl Prepared {
    /// The content held in memory.
    fn held(&self) -> usize {
        match self {
            Prepared::Read { data, .. } => data.len(),
            _ => 0,
        }
    }
}

/// Opens items beneath the root as [`open_beneath`] does, keeping a handle of the last parent directory:
/// items come in scan order, so most share it with the one before, and each then costs one name looked up
/// in it (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` from that handle, itself opened so from the root), not its
/// whole path again. A directory swapped for a symlink after its handle was taken is not followed either:
/// the handle is the directory scanned.
struct Opener<'a> {
    root: &'a Root,
    parent: Option<(PathBuf, OwnedFd)>,
}

impl<'a> Opener<'a> {
    fn new(root: &'a Root) -> Self {
        Opener { root, parent: None }
    }

    fn open(&mut self, host_path: &Path, flags: OFlags) -> io::Result<OwnedFd> {
        let (Some(parent), Some(name)) = (host_path.parent(), host_path.file_name()) else {
            return open_beneath(self.root, host_path, flags);
        };
        let dir = match &self.parent {
            Some((p, fd)) if p == parent => fd,
            _ => {
                self.parent = None;
                let fd = open_beneath(self.root, parent, OFlags::PATH | OFlags::DIRECTORY)?;
                &self.parent.insert((parent.to_path_buf(), fd)).1
            }
        };
        open_beneath_at(dir.as_fd(), Path::new(name), flags)
    }
}

fn prepare(opener: &mut Opener, item: &Item, sniff: bool, cancel: &AtomicBool) -> Prepared {
    let prepared = match item.kind {
        Kind::File => prepare_file(opener, item, sniff, cancel),
        Kind::Dir | Kind::Symlink => prepare_node(opener, item),
    };
    prepared.unwrap_or_else(Prepared::Not)
}

/// Append what [`prepare`] made of `item`, and its index entry (or the warning why nothing was stored).
fn store(
    s: &mut Session,
    item: &Item,
    prepared: Prepared,
    found_keys: Option<&mut Vec<(String, String)>>,
) -> Result<u64, SessionError> {
    let stored = match prepared {
        Prepared::Read {
            md,
            xattrs,
            data,
            read,
            found,
        } => {
            let (sha, outcome, read_error) = match read {
                Ok(done) => done,
                // Only a cancelled read fails outright (a read error is an outcome).
                Err(e) if crate::archive::writer::is_cancelled(&e) => {
                    return Err(SessionError::Interrupted);
                }
                Err(e) => return Err(SessionError::Failed(e.to_string())),
            };
            let h = header(item, Kind::File, &md, &xattrs);
            s.write(|w| w.append_bytes(&h, &data))?;
            let found = found.into_iter();
            stored_file(s, item, &h, sha, outcome, read_error, found, found_keys)
        }
        Prepared::Open { file, md, xattrs } => {
            append_file(s, item, &file, &md, &xattrs, found_keys)?
        }
        Prepared::Node {
            md,
            kind,
            xattrs,
            target,
        } => {
            let h = header(item, kind, &md, &xattrs);
            match &target {
                None => s.write(|w| w.append_dir(&h))?,
                Some(t) => s.write(|w| w.append_symlink(&h, t))?,
            }
            let shown = target.map(|t| crate::archive::format::path_fields(&t).0);
            Ok(index_entry(&h, &item.category, None, shown, None))
        }
        Prepared::Not(why) => Err(why),
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

/// The entry stored (or what was prepared), or why nothing was.
pub(super) type Stored<T = IndexEntry> = Result<T, String>;

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

/// Open a file to store and read its metadata and extended attributes; a small one is read whole (exactly
/// its size at open, hashed, its age keys sniffed when `sniff`).
fn prepare_file(
    opener: &mut Opener,
    item: &Item,
    sniff: bool,
    cancel: &AtomicBool,
) -> Stored<Prepared> {
    // Never block on a FIFO swapped in.
    let file = match opener.open(&item.host_path, OFlags::RDONLY | OFlags::NONBLOCK) {
        Ok(f) => fs::File::from(f),
        Err(e) => return Err(not_stored(e, "unreadable")),
    };
    let md = match file.metadata() {
        Ok(md) if md.is_file() => md,
        Ok(_) => return Err(CHANGED_TYPE.into()),
        Err(e) => return Err(format!("cannot stat, not stored: {e}")),
    };
    let xattrs = xattrs_fd(&file);
    if md.len() > READ_AHEAD_FILE {
        return Ok(Prepared::Open { file, md, xattrs });
    }
    // The header comes from fstat of the open file; exactly that many bytes are stored.
    let mut sniffer = crate::crypt::IdentitySniffer::new(&file, sniff);
    let mut data = Vec::with_capacity(md.len() as usize);
    let mut r = ExactReader::new(&mut sniffer, md.len(), cancel);
    // As `append_file` does: the read error taken, then the outcome.
    let read = io::Read::read_to_end(&mut r, &mut data).and_then(|_| {
        let read_error = r.error.take();
        let (sha, outcome) = r.finish()?;
        Ok((sha, outcome, read_error))
    });
    Ok(Prepared::Read {
        md,
        xattrs,
        data,
        read,
        found: sniffer.found,
    })
}

/// Stream an open file into the archive (`md` and `xattrs` from the open file).
fn append_file(
    s: &mut Session,
    item: &Item,
    file: &fs::File,
    md: &Metadata,
    xattrs: &[(String, Vec<u8>)],
    found_keys: Option<&mut Vec<(String, String)>>,
) -> Result<Stored, SessionError> {
    // The header comes from fstat of the open file; exactly that many bytes are stored.
    let h = header(item, Kind::File, md, xattrs);
    let mut sniffer = crate::crypt::IdentitySniffer::new(
        io::BufReader::with_capacity(256 * 1024, file),
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
    let found = sniffer.found.drain(..);
    Ok(stored_file(
        s, item, &h, sha, outcome, read_error, found, found_keys,
    ))
}

/// The index entry of a file stored, after the warning of a read that did not go exactly (and the age keys
/// seen noted).
#[allow(clippy::too_many_arguments)]
fn stored_file(
    s: &mut Session,
    item: &Item,
    h: &EntryHeader,
    sha: String,
    outcome: ReadOutcome,
    read_error: Option<io::Error>,
    found: impl Iterator<Item = String>,
    found_keys: Option<&mut Vec<(String, String)>>,
) -> Stored {
    let host = item.host_path.display().to_string();
    if let Some(keys) = found_keys {
        keys.extend(found.map(|k| (host.clone(), k)));
    }
    let size = h.size;
    let problem = match outcome {
        ReadOutcome::Exact => None,
        ReadOutcome::Shrunk { missing } => Some(format!(
            "shrank while being read: {missing} missing bytes stored as zeros (size at open: {size})"
        )),
        ReadOutcome::Grew => Some(format!(
            "grew while being read: stored its first {size} bytes (size at open)"
        )),
        ReadOutcome::ReadError => Some(format!(
            "read error, the rest stored as zeros: {}",
            read_error.map_or_else(String::new, |e| e.to_string())
        )),
    };
    if let Some(message) = problem {
        s.warn(Some(host), message);
    }
    Ok(index_entry(h, &item.category, Some(sha), None, None))
}

/// A directory or symlink to store: its metadata, extended attributes, and a link's target, all through
/// its own handle.
fn prepare_node(opener: &mut Opener, item: &Item) -> Stored<Prepared> {
    // O_PATH | O_NOFOLLOW: the node itself, a symlink included, whatever it is now.
    let node = match opener.open(&item.host_path, OFlags::PATH) {
        Ok(fd) => fs::File::from(fd),
        Err(e) => return Err(not_stored(e, "cannot stat")),
    };
    let md = match node.metadata() {
        Ok(md) => md,
        Err(e) => return Err(not_stored(e, "cannot stat")),
    };
    let kind = match Kind::of_file(md.file_type()) {
        Some(Kind::File) | None => return Err(CHANGED_TYPE.into()),
        Some(k) => k,
    };
    let xattrs = xattrs_node(&node);
    let target = match kind {
        Kind::Dir => None,
        // The link itself, through its handle.
        _ => match rustix::fs::readlinkat(&node, "", Vec::new()) {
            Ok(t) => Some(t.into_bytes()),
            Err(e) => return Err(format!("cannot read link, not stored: {e}")),
        },
    };
    Ok(Prepared::Node {
        md,
        kind,
        xattrs,
        target,
    })
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::session::Spec;
    use crate::output::{Log, Redactor};

    /// The read-ahead pipeline stores every item, in order, small files and one larger than it reads whole,
    /// directories and links, and warns for one that vanished: the same archive as one item at a time.
    #[test]
    fn items_read_ahead_are_all_stored_in_order() {
        let t = tempfile::tempdir().unwrap();
        let root = Root::new(t.path().join("root"));
        let d = t.path().join("root/srv/d");
        fs::create_dir_all(&d).unwrap();
        let big: Vec<u8> = (0..READ_AHEAD_FILE as u32 * 3 + 1)
            .map(|i| i as u8)
            .collect();
        let mut items = vec![("/srv/d", Kind::Dir, 0)];
        // Batches end on their item count, on their bytes (three files of 200 KiB), and short at the end.
        for i in 0..BATCH_ITEMS * 3 + 5 {
            let name = format!("/srv/d/f{i:03}");
            let data = match i {
                7 => big.clone(),
                40..=42 => vec![i as u8; 200 << 10],
                _ => format!("file {i}\n").into_bytes(),
            };
            fs::write(root.path(&name), &data).unwrap();
            items.push((
                Box::leak(name.into_boxed_str()),
                Kind::File,
                data.len() as u64,
            ));
        }
        std::os::unix::fs::symlink("f001", d.join("link")).unwrap();
        items.push(("/srv/d/link", Kind::Symlink, 0));
        items.push(("/srv/d/gone", Kind::File, 3));
        let items: Vec<Item> = (items.into_iter())
            .map(|(p, kind, size)| Item {
                host_path: PathBuf::from(p),
                category: "extra".into(),
                kind,
                size,
            })
            .collect();

        let archive = |pipelined: bool| {
            let out = t.path().join(format!("out{pipelined}"));
            fs::create_dir_all(&out).unwrap();
            let (log, cancel) = (Log::new(-1, Redactor::default()), AtomicBool::new(false));
            let facts = crate::host::HostFacts::detect(&root);
            let spec = Spec {
                facts: &facts,
                root: root.dir(),
                purpose: "backup",
                categories: vec!["extra".into()],
                pve_tree_from_db: false,
                compression: crate::archive::compression::Compression::Zstd,
                level: 3,
                threads: 2,
                seal: None,
                progress: false,
            };
            let time = jiff::Timestamp::from_second(1_700_000_000).unwrap();
            let mut s =
                Session::create(&out, "t.tar.zst".into(), time, spec, &log, &cancel).unwrap();
            if pipelined {
                append_items(&mut s, &root, &items, None).unwrap();
            } else {
                for item in &items {
                    append_item(&mut s, &root, item, None).unwrap();
                }
            }
            let done = s.finish().unwrap();
            let v = crate::archive::reader::verify(&done.path).unwrap();
            assert!(v.ok(), "{:?}", v.problems);
            (v.index.unwrap(), fs::read(&done.path).unwrap())
        };
        let (index, bytes) = archive(true);
        let stored: Vec<&str> = index.entries.iter().map(|e| e.path.as_str()).collect();
        let want: Vec<&str> = (items.iter())
            .map(|i| i.host_path.to_str().unwrap().trim_start_matches('/'))
            .filter(|p| !p.ends_with("gone"))
            .collect();
        assert_eq!(stored, want);
        let big_entry = index
            .entries
            .iter()
            .find(|e| e.path == "srv/d/f007")
            .unwrap();
        assert_eq!(big_entry.sha256, Some(crate::archive::sha256_hex(&big)));
        assert_eq!(index.warnings.len(), 1, "{:?}", index.warnings);
        assert_eq!(index.warnings[0].path.as_deref(), Some("/srv/d/gone"));
        assert_eq!(bytes, archive(false).1, "the same archive either way");
    }
}
