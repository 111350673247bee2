//! Preflight: directories, free space, writability and the run lock, in that order.
//!
//! The verdicts are plain data ([`Check`]) so `proxkeep check` prints them and `backup` stops on the first
//! failure with the same text.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
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
/// (even after `kill -9`), so it can never go stale.
#[derive(Debug)]
pub struct RunLock {
    _file: File,
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
}

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
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(fs::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.split_whitespace().collect::<Vec<_>>().join(" ");
                let holder = Some(holder).filter(|h| !h.is_empty());
                let holder = holder.unwrap_or_else(|| "unknown holder".into());
                let path = path.to_path_buf();
                return Err(LockError::Held { path, holder });
            }
            Err(fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        // Diagnostics only: the lock is the flock, not this text.
        let info = format!(
            "pid={} host={} started={}\n",
            std::process::id(),
            host,
            jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ")
        );
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = file.write_all(info.as_bytes());
        let _ = file.sync_all();
        Ok(RunLock { _file: file })
    }
}

pub fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Remove hidden partial files left by runs that died (`.<name>.<pid>.partial`, `.<name>.<pid>.tmp`).
/// Only names of that exact shape are touched, and only when their writer is gone.
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
