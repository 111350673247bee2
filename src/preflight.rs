//! Preflight: directories, free space, writability and the run lock, in that order.
//!
//! The verdicts are plain data ([`Check`]) so `proxkeep check` prints them and `backup` stops on the first
//! failure with the same text.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// One preflight verdict with the fix to print when it fails.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// Passes, but deserves a look (`!` instead of ✓; `check` exits 3).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warning: bool,
}

impl Check {
    pub fn pass(name: &str, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: true,
            detail: detail.into(),
            fix: None,
            warning: false,
        }
    }
    pub fn fail(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
            warning: false,
        }
    }
    pub fn warn(name: &str, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            ok: true,
            warning: true,
            ..Check::fail(name, detail, fix)
        }
    }
    pub fn line(&self) -> String {
        let mark = match (self.ok, self.warning) {
            (true, false) => "✓",
            (true, true) => "!",
            (false, _) => "✗",
        };
        match &self.fix {
            Some(fix) => format!("{mark} {}: {}\n    fix: {fix}", self.name, self.detail),
            None => format!("{mark} {}: {}", self.name, self.detail),
        }
    }
}

/// The directory exists (or, with `create`, is created 0700).
pub fn directory(name: &str, dir: &Path, create: bool) -> Check {
    let d = dir.display();
    let not_found = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    match fs::metadata(dir) {
        Ok(md) if md.is_dir() => Check::pass(name, d.to_string()),
        Ok(_) => Check::fail(
            name,
            format!("{d} is not a directory"),
            "point the config at a directory",
        ),
        Err(e) if not_found(&e) && !create => match nearest_existing(dir) {
            Some(_) => Check::pass(name, format!("{d} (will be created, mode 0700)")),
            None => Check::fail(name, format!("{d} cannot be created"), "create it"),
        },
        Err(e) if not_found(&e) => match crate::fsx::create_dir_all(dir, 0o700) {
            Ok(()) => Check::pass(name, format!("{d} (created, mode 0700)")),
            Err(e) => Check::fail(
                name,
                format!("cannot create {d}: {e}"),
                format!("create it: mkdir -m 0700 -p {d}"),
            ),
        },
        Err(e) => Check::fail(
            name,
            format!("{d}: {e}"),
            "check the path and its permissions",
        ),
    }
}

fn nearest_existing(dir: &Path) -> Option<PathBuf> {
    dir.ancestors().find(|a| a.is_dir()).map(Path::to_path_buf)
}

/// Bytes available to an unprivileged writer (statvfs f_bavail) on the file system holding `dir`
/// (or its nearest existing ancestor).
pub fn available_bytes(dir: &Path) -> std::io::Result<u64> {
    let at = nearest_existing(dir).unwrap_or_else(|| PathBuf::from("/"));
    let st = rustix::fs::statvfs(&at).map_err(std::io::Error::from)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Free space must cover max(configured minimum, needed).
pub fn free_space(dir: &Path, min_free: u64, needed: u64, needed_why: &str) -> Check {
    use crate::units::format_size;
    let want = min_free.max(needed);
    match available_bytes(dir) {
        Ok(avail) => {
            let (avail_s, want_s, d) = (format_size(avail), format_size(want), dir.display());
            let detail = format!("{avail_s} available in {d}, need {want_s} ({needed_why})");
            if avail >= want {
                Check::pass("free space", detail)
            } else {
                let fix = "free space there, point backup_dir elsewhere, or lower min_free_space";
                Check::fail("free space", detail, fix)
            }
        }
        Err(e) => Check::fail(
            "free space",
            format!("statvfs {}: {e}", dir.display()),
            "check the backup directory",
        ),
    }
}

/// A temp file can be created, written, synced and removed in `dir`.
pub fn writable(dir: &Path) -> Check {
    let r = tempfile::Builder::new()
        .prefix(".proxkeep-probe-")
        .tempfile_in(dir)
        .and_then(|mut f| {
            f.write_all(b"proxkeep")?;
            f.as_file().sync_all()
        });
    match r {
        Ok(()) => Check::pass("writable", dir.display().to_string()),
        Err(e) => Check::fail(
            "writable",
            format!("cannot write in {}: {e}", dir.display()),
            "fix permissions, remount read-write, or choose another backup_dir",
        ),
    }
}

/// The run lock: a kernel `flock` on the lock file, released by the kernel when the process ends
/// (even after `kill -9`), so it can never go stale. The file also holds a record of the holder
/// (`pid=… host=… started=…`), cleared when the lock is released.
#[derive(Debug)]
pub struct RunLock {
    file: File,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("another proxkeep run holds the lock {path}: {holder}")]
    Held { path: PathBuf, holder: String },
    #[error("cannot open lock file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "refusing the lock file {path}: {why}; remove it or set lock_file to a path of its own"
    )]
    Unsafe { path: PathBuf, why: String },
}

/// How long a run that finds the lock taken waits for the holder's record (a holder writes it right after
/// taking the lock): 200 tries, 5 ms apart.
const HOLDER_TRIES: u32 = 200;

impl RunLock {
    pub fn acquire(path: &Path, host: &str) -> Result<RunLock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(io)?;
        }
        let file = open_lock_file(path)?;
        let try_lock = || match file.try_lock() {
            Ok(()) => Ok(true),
            Err(fs::TryLockError::WouldBlock) => Ok(false),
            Err(fs::TryLockError::Error(e)) => Err(e),
        };
        let pause = || std::thread::sleep(std::time::Duration::from_millis(5));
        if let Contended::Held(holder) =
            contend(try_lock, || read_holder(&file), pause).map_err(io)?
        {
            let path = path.to_path_buf();
            return Err(LockError::Held { path, holder });
        }
        // Diagnostics only: the lock is the flock, not this text. Written over the old record in one write,
        // then cut to its length, so a reader sees a whole record or none.
        let info = format!(
            "pid={} host={} started={}\n",
            std::process::id(),
            host,
            jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ")
        );
        let _ = file.write_all_at(info.as_bytes(), 0);
        let _ = file.set_len(info.len() as u64);
        let _ = file.sync_all();
        Ok(RunLock { file })
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Still under the lock: nobody reads this record as the next holder's.
        let _ = self.file.set_len(0);
    }
}

enum Contended {
    Mine,
    /// The holder's record.
    Held(String),
}

/// Take the lock, or name its holder. Between a holder's flock and its record, or a holder's release and
/// the next one's flock, there is no live record: look again (or take the lock once it is free) rather
/// than report an unknown holder.
fn contend(
    mut try_lock: impl FnMut() -> std::io::Result<bool>,
    mut holder: impl FnMut() -> Option<Holder>,
    mut pause: impl FnMut(),
) -> std::io::Result<Contended> {
    for tries in 1.. {
        if try_lock()? {
            return Ok(Contended::Mine);
        }
        let h = holder();
        if h.as_ref().is_some_and(|h| h.live) || tries >= HOLDER_TRIES {
            let text = h.map_or_else(|| "unknown holder".into(), |h| h.text);
            return Ok(Contended::Held(text));
        }
        pause();
    }
    unreachable!("the loop returns by HOLDER_TRIES")
}

/// Open (or create, 0600) the lock file without following a symlink and check it is a regular file of the
/// caller's with no other name: the holder record is written into it, so it must not be someone else's file.
fn open_lock_file(path: &Path) -> Result<File, LockError> {
    use rustix::fs::OFlags;
    use rustix::io::Errno;
    let unsafe_ = |why: String| LockError::Unsafe {
        path: path.to_path_buf(),
        why,
    };
    let opened = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(path);
    let file = match opened {
        Ok(f) => f,
        Err(e) => {
            return Err(match Errno::from_io_error(&e) {
                Some(Errno::LOOP) => {
                    unsafe_("it is a symlink (proxkeep never writes through one)".into())
                }
                Some(Errno::ISDIR) => unsafe_("it is a directory, not a regular file".into()),
                Some(Errno::NXIO) => unsafe_("it is a socket, not a regular file".into()),
                _ => LockError::Io {
                    path: path.to_path_buf(),
                    source: e,
                },
            });
        }
    };
    let md = file.metadata().map_err(|source| LockError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let me = rustix::process::geteuid().as_raw();
    if !md.is_file() {
        return Err(unsafe_("it is not a regular file".into()));
    }
    if md.uid() != me {
        return Err(unsafe_(format!(
            "it is owned by uid {}, not by the user running proxkeep (uid {me})",
            md.uid()
        )));
    }
    if md.nlink() > 1 {
        return Err(unsafe_(format!("it has {} hard links", md.nlink())));
    }
    Ok(file)
}

/// The holder record in a lock file; `live` when it is whole and its process is running.
struct Holder {
    text: String,
    live: bool,
}

fn read_holder(file: &File) -> Option<Holder> {
    let mut buf = [0u8; 512];
    let n = file.read_at(&mut buf, 0).ok()?;
    let raw = String::from_utf8_lossy(&buf[..n]);
    let text = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        return None;
    }
    let pid = text
        .split(' ')
        .find_map(|w| w.strip_prefix("pid="))
        .and_then(|p| p.parse().ok());
    let live = raw.ends_with('\n') && pid.is_some_and(pid_alive);
    Some(Holder { text, live })
}

pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Remove hidden partial files left by runs that died (`.<name>.<pid>.partial`, `.<name>.<pid>.tmp`), and the
/// scratch directories of dead drills ([`sweep_drill_scratch`]). Only names of those exact shapes are touched,
/// and only when their writer is gone.
pub fn sweep_partials(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return removed;
    };
    for entry in rd.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(pid) = partial_pid(name)
            && pid != std::process::id()
            && !pid_alive(pid)
            && fs::remove_file(entry.path()).is_ok()
        {
            removed.push(entry.path());
        }
    }
    removed.extend(sweep_drill_scratch(dir));
    removed
}

/// What a drill's scratch directory is named: `.proxkeep-drill-<pid>-XXXXXX`, `<pid>` the drill's own.
pub const DRILL_SCRATCH_PREFIX: &str = ".proxkeep-drill-";

/// The pid in the name of a drill's scratch directory; `None` for any other name (a kept drill's
/// `proxkeep-drill-kept-…` among them).
pub fn drill_scratch_pid(name: &str) -> Option<u32> {
    let (pid, rand) = name.strip_prefix(DRILL_SCRATCH_PREFIX)?.split_once('-')?;
    let digits = !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
    let rand_ok = !rand.is_empty() && rand.bytes().all(|b| b.is_ascii_alphanumeric());
    (digits && rand_ok).then(|| pid.parse().ok()).flatten()
}

/// Whether `pid` runs proxkeep: a dead drill's pid taken again by another program does not.
pub fn is_proxkeep(pid: u32) -> bool {
    fs::read(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_ascii_end() == b"proxkeep")
}

/// Remove the scratch directories in `dir` of drills that died (`kill -9`, a crash): only names of
/// [`drill_scratch_pid`]'s shape whose pid is not this process and no running proxkeep, each removed below
/// the directory's descriptor without following a symlink ([`crate::fsx::remove_tree_at`]). Returns what was
/// removed.
pub fn sweep_drill_scratch(dir: &Path) -> Vec<PathBuf> {
    let mut removed = Vec::new();
    let Ok(fd) = File::open(dir) else {
        return removed;
    };
    let Ok(rd) = rustix::fs::Dir::read_from(&fd) else {
        return removed;
    };
    let names: Vec<std::ffi::CString> = rd.flatten().map(|e| e.file_name().to_owned()).collect();
    for n in names {
        let Ok(name) = n.to_str() else { continue };
        if let Some(pid) = drill_scratch_pid(name)
            && pid != std::process::id()
            && !is_proxkeep(pid)
            && crate::fsx::remove_tree_at(&fd, &n).is_ok()
        {
            removed.push(dir.join(name));
        }
    }
    removed
}

pub fn partial_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix('.')?;
    let rest = rest
        .strip_suffix(".partial")
        .or_else(|| rest.strip_suffix(".tmp"))?;
    let (stem, pid) = rest.rsplit_once('.')?;
    let stem = stem.strip_suffix(".sha256").unwrap_or(stem);
    if !stem.starts_with("proxkeep-")
        && crate::archive::name::ArchiveName::parse(stem).is_none()
        && !crate::archive::name::is_safety_file_name(stem)
    {
        return None;
    }
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::session::partial_name;

    #[test]
    fn partial_names() {
        assert_eq!(
            partial_pid(".pve1-pve-20261128T031500Z.tar.zst.4242.partial"),
            Some(4242)
        );
        assert_eq!(partial_pid(".proxkeep-db.77.tmp"), Some(77));
        assert_eq!(
            partial_pid(".due-restore-safety-20261128T031500Z.tar.zst.31.partial"),
            Some(31)
        );
        assert_eq!(partial_pid(".proxkeep-db.Ab3xYz.77.tmp"), Some(77));
        assert_eq!(
            partial_pid(".proxkeep-x.tar.zst.sha256.q1w2e3.9.tmp"),
            Some(9)
        );
        assert_eq!(partial_pid("pve1-pve-20261128T031500Z.tar.zst"), None);
        assert_eq!(partial_pid(".somebody-elses.12.partial"), None);
        assert_eq!(
            partial_pid(".pve1-pve-20261128T031500Z.tar.zst.x.partial"),
            None
        );
        let own = partial_name("pve1-pve-20261128T031500Z.tar.zst");
        assert_eq!(partial_pid(&own), Some(std::process::id()));
    }

    #[test]
    fn drill_scratch_names() {
        assert_eq!(drill_scratch_pid(".proxkeep-drill-4242-Ab3xYz"), Some(4242));
        for other in [
            ".proxkeep-drill-Ab3xYz",
            ".proxkeep-drill--Ab3xYz",
            ".proxkeep-drill-42-",
            ".proxkeep-drill-4x2-Ab3xYz",
            ".proxkeep-drill-42-a/b",
            "proxkeep-drill-kept-20261130T040000Z",
            "proxkeep-drill-4242-Ab3xYz",
        ] {
            assert_eq!(drill_scratch_pid(other), None, "{other}");
        }
        assert!(!is_proxkeep(std::process::id()));
    }

    #[test]
    fn sweep_removes_only_dead_writers_partials() {
        let d = tempfile::tempdir().unwrap();
        let dead = d
            .path()
            .join(".pve1-pve-20261128T031500Z.tar.zst.999999999.partial");
        let mine = d
            .path()
            .join(partial_name("pve1-pve-20261128T031500Z.tar.zst"));
        let other = d.path().join(".unrelated.1.partial");
        for p in [&dead, &mine, &other] {
            fs::write(p, b"x").unwrap();
        }
        assert_eq!(sweep_partials(d.path()), vec![dead.clone()]);
        assert!(mine.exists() && other.exists() && !dead.exists());
    }

    /// "unknown holder" (issue 16): a run that finds the lock taken before its holder wrote its record
    /// waits for the record, or takes the lock once it is free, instead of naming nobody.
    #[test]
    fn a_taken_lock_without_a_live_record_is_looked_at_again() {
        let rec = |text: &str, live| Holder {
            text: text.into(),
            live,
        };
        // flock taken, then: no record yet, a dead run's record, the holder's record.
        let mut looks = vec![
            None,
            Some(rec("pid=1 dead", false)),
            Some(rec("pid=7", true)),
        ];
        looks.reverse();
        let (mut pauses, mut tries) = (0, 0);
        let got = contend(
            || {
                tries += 1;
                Ok(false)
            },
            || looks.pop().unwrap(),
            || pauses += 1,
        );
        assert!(matches!(got.unwrap(), Contended::Held(h) if h == "pid=7"));
        assert_eq!((tries, pauses), (3, 2));
        // The holder ends before its record is read: the lock is taken.
        let mut calls = 0;
        let got = contend(
            || {
                calls += 1;
                Ok(calls == 2)
            },
            || None,
            || {},
        );
        assert!(matches!(got.unwrap(), Contended::Mine));
        // Never a record: after HOLDER_TRIES looks, say so.
        let got = contend(|| Ok(false), || None, || {});
        assert!(matches!(got.unwrap(), Contended::Held(h) if h == "unknown holder"));
    }

    #[test]
    fn the_record_is_cleared_when_the_lock_is_released() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("proxkeep.lock");
        let lock = RunLock::acquire(&p, "pve1").unwrap();
        let record = fs::read_to_string(&p).unwrap();
        assert!(record.starts_with(&format!("pid={} host=pve1 started=", std::process::id())));
        drop(lock);
        assert_eq!(fs::read_to_string(&p).unwrap(), "");
    }

    #[test]
    fn second_lock_is_refused_with_holder() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("run/proxkeep.lock");
        let first = RunLock::acquire(&p, "pve1").unwrap();
        match RunLock::acquire(&p, "pve1") {
            Err(LockError::Held { holder, .. }) => {
                assert!(holder.contains(&format!("pid={}", std::process::id())))
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        RunLock::acquire(&p, "pve1").unwrap();
    }
}
