//! `pmxcfs restore`: put the archive's config.db back in place: the documented Proxmox node recovery
//! (pve-docs pmxcfs.adoc "Recovery": stop pve-cluster, replace config.db with mode 0600, start it).
//!
//! Order, and why:
//! 1. stage: the db is taken out of the archive into a temp file next to the live one, its hash checked
//!    against the index, its integrity and tree validated, before any service is touched;
//! 2. refuse when this node is part of a quorate cluster (restoring the db of a node that still talks to its
//!    cluster overwrites the cluster's state: domain.md C3.4), unless `--force`;
//! 3. stop pve-cluster (timeout; on timeout `systemctl kill -s KILL`, then `is-active` must say it is down;
//!    otherwise nothing is swapped);
//! 4. copy the current config.db, -wal and -shm into a safety directory in the backup dir;
//! 5. remove -wal and -shm (an old WAL replayed onto another db corrupts it), rename the staged db into
//!    place, fsync the directory;
//! 6. start pve-cluster (always attempted once stopped, even after a failure or SIGTERM in between).

use crate::archive::format::CONFIG_DB_PATH;
use crate::dirwalk::DirFd;
use crate::output::Log;
use crate::restore::RestoreError;
use crate::restore::guard::{self, Cluster};
use crate::restore::path::show;
use crate::restore::target::Target;
use crate::runner::{self, CommandSpec, RunOptions, Status};
use jiff::Timestamp;
use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use std::fs::{DirBuilder, File};
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

pub const DB_DIR: &str = "var/lib/pve-cluster";
const DB_NAME: &str = "config.db";
const SIDE_FILES: [&str; 3] = ["config.db", "config.db-wal", "config.db-shm"];
const SERVICE: &str = "pve-cluster";

#[derive(Debug, Clone)]
pub struct RecoveryRequest {
    pub archive: PathBuf,
    pub target: PathBuf,
    /// The target is this running host: ask pvecm, stop and start pve-cluster. Otherwise (a `--target` tree
    /// such as a mounted disk) only the file is swapped.
    pub live: bool,
    pub force: bool,
    pub service_timeout: Duration,
    /// Where the safety copy of the current db goes (the backup directory).
    pub safety_dir: PathBuf,
    pub lock_file: Option<PathBuf>,
    pub now: Timestamp,
}

/// The archive's database, checked and waiting next to the live one.
#[derive(Debug)]
pub struct Staged {
    /// `<target>/var/lib/pve-cluster` (for messages).
    pub db_dir: PathBuf,
    dir: Arc<DirFd>,
    tmp: Vec<u8>,
    armed: bool,
    pub size: u64,
    pub version: u64,
    pub entries: usize,
    /// Directories under `nodes/` in the restored database.
    pub nodes: Vec<String>,
    pub has_corosync: bool,
    /// The target's host name (`/etc/hostname` under the target).
    pub hostname: String,
    /// Which of config.db, -wal, -shm exist now.
    pub current: Vec<&'static str>,
    pub cluster: Option<Cluster>,
    _target: Target,
}

impl Drop for Staged {
    fn drop(&mut self) {
        if self.armed {
            let _ = rustix::fs::unlinkat(&self.dir.fd, self.tmp.as_slice(), AtFlags::empty());
        }
    }
}

pub(super) fn run_opts(timeout: Duration) -> RunOptions {
    RunOptions {
        timeout,
        grace: Duration::from_secs(2),
        max_output: 1 << 20,
    }
}

pub(super) fn killed(timeout: Duration) -> String {
    format!(
        "did not finish within {}s and was killed",
        timeout.as_secs_f64()
    )
}

fn describe(spec: &CommandSpec, r: &runner::CommandResult, timeout: Duration) -> String {
    match &r.status {
        Status::TimedOut => format!("`{}` {}", spec.display(), killed(timeout)),
        Status::Absent => format!("`{}`: {} is not installed", spec.display(), spec.program),
        s => {
            let tail = r.stderr_tail(300);
            let sep = if tail.is_empty() { "" } else { ": " };
            format!("`{}` {s}{sep}{tail}", spec.display())
        }
    }
}

/// Take the db out of the archive, check it, and (live) ask pvecm. Nothing is changed yet.
pub fn stage(req: &RecoveryRequest, cancel: &AtomicBool) -> Result<Staged, RestoreError> {
    // Pass 1 keeps the db's bytes: the one entry pmxcfs restore needs.
    let capture = |p: &[u8], _| p == CONFIG_DB_PATH.as_bytes();
    let scan = crate::restore::scan::scan(&req.archive, &capture, cancel)?;
    let entry = scan.index.entries.iter().find(|e| e.path == CONFIG_DB_PATH).ok_or_else(|| {
        RestoreError::Refused(format!(
            "{} holds no {CONFIG_DB_PATH} (it is not the backup of a PVE node, or its snapshot failed)",
            req.archive.display()
        ))
    })?;
    let expected = entry.sha256.clone().unwrap_or_default();
    let target = Target::open(&req.target)
        .map_err(|e| RestoreError::io("open the target directory", &req.target, e))?;
    let db_dir = req.target.join(DB_DIR);
    let dir = target
        .walker()
        .open_dir(DB_DIR.as_bytes(), true)
        .map_err(|e| RestoreError::Refused(format!("{}: {e}", db_dir.display())))?;
    let tmp = format!(".proxkeep-db.{}.tmp", std::process::id()).into_bytes();
    let _ = rustix::fs::unlinkat(&dir.fd, tmp.as_slice(), AtFlags::empty());
    let mut staged = Staged {
        db_dir: db_dir.clone(),
        dir: dir.clone(),
        tmp: tmp.clone(),
        armed: true,
        size: 0,
        version: 0,
        entries: 0,
        nodes: Vec::new(),
        has_corosync: false,
        hostname: crate::host::hostname(&crate::host::Root::new(&req.target)),
        current: Vec::new(),
        cluster: None,
        _target: target,
    };
    let mut file = crate::fsx::create_at(&dir.fd, tmp.as_slice())
        .map_err(|e| RestoreError::io("create a temp file in", &db_dir, e.into()))?;
    rustix::fs::fchmod(&file, Mode::from_raw_mode(0o600))
        .map_err(|e| RestoreError::io("chmod", &db_dir, e.into()))?;
    let db = scan.captured.get(CONFIG_DB_PATH.as_bytes());
    let db = db.map(Vec::as_slice).unwrap_or_default();
    let got = crate::archive::sha256_hex(db);
    if got != expected {
        return Err(RestoreError::Damaged {
            archive: req.archive.display().to_string(),
            why: format!(
                "{CONFIG_DB_PATH}: content does not match the index (sha256 {got}, index {expected})"
            ),
        });
    }
    file.write_all(db)
        .map_err(|e| RestoreError::io("write", &db_dir, e))?;
    staged.size = db.len() as u64;
    file.sync_all()
        .map_err(|e| RestoreError::io("fsync", &db_dir, e))?;
    drop(file);

    // SQLite opens it by name; the name goes through our own directory descriptor, no symlink in between.
    let via = PathBuf::from(format!(
        "/proc/self/fd/{}/{}",
        dir.fd.as_raw_fd(),
        show(&tmp)
    ));
    crate::pmxcfs::check_integrity_of(&via)?;
    staged.version = crate::pmxcfs::db_version(&via)?;
    let tree = crate::pmxcfs::read_tree(&via)?;
    staged.entries = tree.len();
    staged.has_corosync = tree.iter().any(|e| e.path == "corosync.conf");
    staged.nodes = tree
        .iter()
        .filter(|e| e.kind == crate::pmxcfs::NodeKind::Dir)
        .filter_map(|e| e.path.strip_prefix("nodes/"))
        .filter(|n| !n.contains('/'))
        .map(String::from)
        .collect();
    staged.current = SIDE_FILES
        .into_iter()
        .filter(|name| rustix::fs::statat(&dir.fd, *name, AtFlags::SYMLINK_NOFOLLOW).is_ok())
        .collect();
    if req.live {
        staged.cluster = Some(check_cluster(req, cancel)?);
    }
    Ok(staged)
}

fn check_cluster(req: &RecoveryRequest, cancel: &AtomicBool) -> Result<Cluster, RestoreError> {
    let spec = CommandSpec::new("pvecm", &["status"]);
    let r = runner::run(&spec, &run_opts(req.service_timeout), cancel);
    if r.status == Status::Cancelled {
        return Err(RestoreError::Interrupted);
    }
    let state = guard::cluster_state(&r);
    let why = match &state {
        _ if req.force => return Ok(state),
        Cluster::Quorate => "this node is part of a quorate cluster: putting an old config.db \
            under a node that still talks to its cluster overwrites the cluster's state. Rejoin \
            the node instead (pvecm add), or isolate it first"
            .to_string(),
        Cluster::Unknown(why) => {
            format!("cannot tell whether this node is in a quorate cluster ({why})")
        }
        _ => return Ok(state),
    };
    let why = format!("{why}; --force restores anyway");
    Err(RestoreError::Refused(why))
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Swapped {
    pub db: PathBuf,
    pub safety_copy: Option<PathBuf>,
    pub stopped: bool,
    pub started: bool,
    pub warnings: Vec<String>,
}

fn systemctl(
    args: &[&str],
    timeout: Duration,
    log: &Log,
    cancel: &AtomicBool,
) -> Result<(), String> {
    let spec = CommandSpec::new("systemctl", args);
    log.info(&format!("running {}", spec.display()));
    let r = runner::run(&spec, &run_opts(timeout), cancel);
    if r.success() {
        Ok(())
    } else {
        Err(describe(&spec, &r, timeout))
    }
}

fn stop(
    timeout: Duration,
    log: &Log,
    cancel: &AtomicBool,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let Err(first) = systemctl(&["stop", SERVICE], timeout, log, cancel) else {
        return Ok(());
    };
    if cancel.load(Ordering::Relaxed) {
        return Err(format!("{first} (interrupted)"));
    }
    log.warn(&format!("{first}: escalating to SIGKILL"));
    let mut why = vec![first];
    if let Err(e) = systemctl(&["kill", "--signal=SIGKILL", SERVICE], timeout, log, cancel) {
        why.push(e);
    }
    let spec = CommandSpec::new("systemctl", &["is-active", SERVICE]);
    let r = runner::run(&spec, &run_opts(timeout), cancel);
    let still = match r.status {
        // is-active exits non-zero for inactive/failed: down, as wanted.
        Status::Exited(c) if c != 0 => {
            let why = why.join("; ");
            warnings.push(format!("{why}; pve-cluster was killed instead"));
            return Ok(());
        }
        Status::Exited(_) => "systemd still reports pve-cluster active".into(),
        _ => describe(&spec, &r, timeout),
    };
    why.push(still);
    Err(why.join("; "))
}

fn copy_side_file(dir: &DirFd, name: &str, to: &Path) -> io::Result<()> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut src = File::from(rustix::fs::openat(&dir.fd, name, flags, Mode::empty())?);
    let mut dst = crate::fsx::create_private(to)?;
    io::copy(&mut src, &mut dst)?;
    dst.sync_all()
}

/// Stop, keep a safety copy, swap, start. Consumes the staged db.
pub fn swap(
    mut staged: Staged,
    req: &RecoveryRequest,
    log: &Log,
    cancel: &AtomicBool,
) -> Result<Swapped, RestoreError> {
    let _lock = req
        .lock_file
        .as_ref()
        .map(|l| crate::preflight::RunLock::acquire(l, &staged.hostname))
        .transpose()?;
    if cancel.load(Ordering::Relaxed) {
        return Err(RestoreError::Interrupted);
    }
    let mut out = Swapped {
        db: staged.db_dir.join(DB_NAME),
        ..Default::default()
    };
    // Not cancellable: the node must not be left without pmxcfs (a flag SIGTERM cannot have set).
    let start = || {
        systemctl(
            &["start", SERVICE],
            req.service_timeout,
            log,
            &AtomicBool::new(false),
        )
    };
    if req.live {
        if let Err(why) = stop(req.service_timeout, log, cancel, &mut out.warnings) {
            // It may be half-stopped: bring it back.
            let _ = start();
            return Err(RestoreError::Service(format!(
                "{why}: pve-cluster may still be running, so config.db was NOT replaced (nothing changed)"
            )));
        }
        out.stopped = true;
    }
    let swapped = swap_files(&mut staged, req, &mut out);
    if req.live {
        // Started in every case once stopped.
        match start() {
            Ok(()) => out.started = true,
            Err(why) => {
                let state = match &swapped {
                    Ok(()) => "config.db was replaced",
                    Err(_) => "config.db was NOT replaced",
                };
                let safety = out
                    .safety_copy
                    .as_ref()
                    .map(|p| format!("; the previous db is in {}", p.display()))
                    .unwrap_or_default();
                return Err(RestoreError::Service(format!(
                    "{state}, but pve-cluster did not start: {why}{safety}; see `journalctl -u pve-cluster`"
                )));
            }
        }
    }
    swapped?;
    Ok(out)
}

fn safety_copy(staged: &Staged, req: &RecoveryRequest) -> Result<PathBuf, String> {
    let time = crate::archive::name::format_time(req.now);
    let safety = req
        .safety_dir
        .join(format!("{}-pmxcfs-safety-{time}", staged.hostname));
    let cannot = |dir: &Path, e| format!("cannot create {}: {e}", dir.display());
    // Explicit modes: the process umask must not decide who can read the copies of root's secrets.
    crate::fsx::create_dir_all(&req.safety_dir, 0o700).map_err(|e| cannot(&req.safety_dir, e))?;
    DirBuilder::new()
        .mode(0o700)
        .create(&safety)
        .map_err(|e| cannot(&safety, e))?;
    for name in &staged.current {
        copy_side_file(&staged.dir, name, &safety.join(name))
            .map_err(|e| format!("cannot copy {name} to {}: {e}", safety.display()))?;
    }
    File::open(&safety)
        .and_then(|d| d.sync_all())
        .map_err(|e| e.to_string())?;
    Ok(safety)
}

fn swap_files(
    staged: &mut Staged,
    req: &RecoveryRequest,
    out: &mut Swapped,
) -> Result<(), RestoreError> {
    let dir = staged.dir.clone();
    if !staged.current.is_empty() {
        out.safety_copy = Some(safety_copy(staged, req).map_err(RestoreError::Safety)?);
    }
    // The WAL of the old db must never be replayed onto the new one: gone before the new db is in place.
    for name in &SIDE_FILES[1..] {
        if let Err(e) = rustix::fs::unlinkat(&dir.fd, *name, AtFlags::empty())
            && e != Errno::NOENT
        {
            let path = staged.db_dir.join(name);
            return Err(RestoreError::io("remove", &path, e.into()));
        }
    }
    rustix::fs::renameat(&dir.fd, staged.tmp.as_slice(), &dir.fd, DB_NAME)
        .map_err(|e| RestoreError::io("rename the new config.db into", &staged.db_dir, e.into()))?;
    staged.armed = false;
    rustix::fs::fsync(&dir.fd).map_err(|e| RestoreError::io("fsync", &staged.db_dir, e.into()))?;
    Ok(())
}

/// What to check after a recovery (pure, for the tests and the printout).
pub fn next_steps(nodes: &[String], hostname: &str, has_corosync: bool, live: bool) -> Vec<String> {
    let mut out = Vec::new();
    out.push(if nodes.iter().any(|n| n == hostname) {
        format!("host name {hostname:?} matches its node directory /etc/pve/nodes/{hostname}")
    } else {
        format!(
            "the database has node{} {} but this host is named {hostname:?}: pmxcfs shows /etc/pve/local for the \
             host name, so set /etc/hostname and /etc/hosts to the node name (or move the guests with \
             `proxkeep restore --map-node`) and reboot",
            if nodes.len() == 1 { "" } else { "s" },
            if nodes.is_empty() { "(none)".to_string() } else { nodes.join(", ") },
        )
    });
    out.push(
        "run `pvecm updatecerts --force` to renew this node's certificates and SSH known hosts"
            .into(),
    );
    if has_corosync {
        out.push(
            "the database belongs to a cluster (corosync.conf): /etc/corosync/authkey and corosync.conf must match \
             the cluster's; restore them with `proxkeep restore ARCHIVE --only corosync` if needed"
                .into(),
        );
    }
    out.push(match live {
        true => "check `ls /etc/pve/qemu-server /etc/pve/lxc`, then reboot the node".into(),
        false => "on the restored host: check /etc/hostname, then boot it".into(),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_steps_name_the_mismatch() {
        let s = next_steps(&["due".into()], "newhost", true, true);
        assert!(
            s[0].contains("node due") && s[0].contains("\"newhost\""),
            "{s:?}"
        );
        assert!(s.iter().any(|l| l.contains("pvecm updatecerts")));
        assert!(s.iter().any(|l| l.contains("authkey")));
        let s = next_steps(&["due".into(), "uno".into()], "due", false, false);
        assert!(s[0].contains("matches"), "{s:?}");
        assert!(!s.iter().any(|l| l.contains("authkey")));
    }
}
