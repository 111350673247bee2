//! Where archives live: the local backup directory, secondary paths (mounted NAS, USB disk) and rclone remotes.
//! Copying a verified archive to every tier, checking the copy, and pruning each tier by its retention policy.
//!
//! A tier failure is a warning, never a failure of the primary backup. Every file-system call on a secondary
//! runs under a deadline (a dead NFS mount must not hang the run) and every rclone call under a timeout.

use super::Listed;
use super::retention::{self, Candidate, Decision, Verified};
use crate::archive::name::ArchiveName;
use crate::config::{Config, Policy, RemoteConfig, SecondaryConfig};
use crate::fsx::{is_mount_point, sha256_file};
use crate::runner::{self, CommandSpec, RunOptions};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// What happened on one tier in this run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TierReport {
    /// `local`, `secondary:NAME` or `remote:NAME`.
    pub tier: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub copied: Vec<String>,
    pub removed: Vec<String>,
    /// Listed, not removed: failed verification.
    pub damaged: Vec<String>,
    /// This host's archives on the tier after the run.
    pub archives: u64,
    pub bytes: u64,
    /// Unix time of the last successful copy in this run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_copy: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum TierError {
    #[error("{what}: no answer within {secs} s (hung mount?)")]
    Deadline { what: String, secs: u64 },
    #[error("{0}")]
    Io(String),
    #[error("{path} is not a mount point (require_mount = true): nothing written")]
    NotMounted { path: PathBuf },
    #[error("rclone {what}: {detail}")]
    Rclone { what: String, detail: String },
    #[error("copy of {file} differs from the original ({detail})")]
    Mismatch { file: String, detail: String },
}

/// Run a coreutils/findutils program against a secondary under a deadline. File-system calls go through a
/// child process, not a thread of ours: a process stuck in a dead mount cannot be killed, and a stuck thread
/// would keep proxkeep itself from exiting; a stuck child is simply left behind.
fn fs_cmd(
    what: &str,
    deadline: Duration,
    program: &str,
    args: &[&str],
) -> Result<Vec<u8>, TierError> {
    let opts = RunOptions {
        timeout: deadline,
        grace: Duration::from_millis(200),
        ..Default::default()
    };
    let r = runner::run(&CommandSpec::new(program, args), &opts, &NEVER);
    match r.status {
        runner::Status::Exited(0) => Ok(r.stdout),
        runner::Status::TimedOut => Err(TierError::Deadline {
            what: what.to_string(),
            secs: deadline.as_secs().max(1),
        }),
        ref st => Err(TierError::Io(format!(
            "{what}: {st}: {}",
            r.stderr_tail(300)
        ))),
    }
}

/// Verification results recorded in a directory's `.proxkeep-verify.json` (file name → ok?).
pub fn recorded_verification(dir: &Path) -> HashMap<String, bool> {
    super::state::load(dir)
        .archives
        .into_iter()
        .map(|(name, rec)| (name, rec.ok))
        .collect()
}

pub fn plan_for(
    archives: &[Listed],
    verified: &HashMap<String, bool>,
    policy: &Policy,
    now: Timestamp,
    tz: &TimeZone,
) -> Vec<(Listed, Decision)> {
    let cands: Vec<Candidate> = archives
        .iter()
        .map(|a| Candidate {
            id: a.file.clone(),
            time: a.name.time,
            verified: Verified::from_record(verified.get(&a.file).copied()),
        })
        .collect();
    let by_id: HashMap<&str, &Listed> = archives.iter().map(|a| (a.file.as_str(), a)).collect();
    retention::plan(&cands, policy, now, tz)
        .into_iter()
        .filter_map(|(c, d)| by_id.get(c.id.as_str()).map(|a| ((*a).clone(), d)))
        .collect()
}

pub trait Tier {
    fn label(&self) -> String;
    fn policy(&self) -> Policy;
    /// This host's archives on the tier.
    fn list(&self, host: &str) -> Result<Vec<Listed>, TierError>;
    /// Copy a local archive (and its sidecar) there and check the copy.
    fn put(&self, local: &Path, sha256: &str) -> Result<(), TierError>;
    /// Remove an archive and the files that belong to it.
    fn remove(&self, file: &str) -> Result<(), TierError>;
    /// Whether the tier can be used at all right now (mounted, reachable).
    fn ready(&self) -> Result<(), TierError> {
        Ok(())
    }
    /// What `check` says of the tier: it is ready, takes a write and has room for `needed` more bytes, as far
    /// as the tier can tell.
    fn probe(&self, _needed: u64) -> Result<String, TierError> {
        self.ready().map(|()| "ready".into())
    }
}

impl TierError {
    /// What the admin can do about it, for `check`.
    pub fn fix(&self) -> &'static str {
        match self {
            TierError::NotMounted { .. } => "mount it, or set require_mount = false for this tier",
            TierError::Deadline { .. } => {
                "the file system does not answer: check the mount (a dead NFS server?)"
            }
            TierError::Rclone { .. } => {
                "try `rclone lsf TARGET` as root: remote name, credentials, network"
            }
            _ => "check the path: it must be a writable directory with room for one more archive",
        }
    }
}

/// The local backup directory.
pub struct Local {
    pub dir: PathBuf,
    pub log_dir: PathBuf,
    pub policy: Policy,
}

impl Tier for Local {
    fn label(&self) -> String {
        "local".into()
    }
    fn policy(&self) -> Policy {
        self.policy
    }
    fn list(&self, host: &str) -> Result<Vec<Listed>, TierError> {
        super::list(&self.dir, Some(host))
            .map_err(|e| TierError::Io(format!("{}: {e}", self.dir.display())))
    }
    fn put(&self, _: &Path, _: &str) -> Result<(), TierError> {
        Ok(())
    }
    fn remove(&self, file: &str) -> Result<(), TierError> {
        // The run log first: one left without its archive could not be told from a failed run's log.
        if let Some(n) = ArchiveName::parse(file) {
            let _ = fs::remove_file(self.log_dir.join(format!("{}.log", n.stem())));
        }
        remove_set(&self.dir, file).map_err(|e| TierError::Io(format!("remove {file}: {e}")))
    }
}

/// Remove an archive's sidecar, then the archive (only names of proxkeep's shapes): a run killed in between
/// leaves an archive without its sidecar, which retention removes next time, never a sidecar without its
/// archive (older versions could: see [`super::sweep_orphans`]).
pub(crate) fn remove_set(dir: &Path, file: &str) -> io::Result<()> {
    match fs::remove_file(dir.join(format!("{file}.sha256"))) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    fs::remove_file(dir.join(file))?;
    File::open(dir)?.sync_all()
}

/// `avail` bytes against the `needed` of one more archive.
fn room(avail: u64, needed: u64, at: &str) -> Result<String, TierError> {
    use crate::units::format_size;
    let (a, n) = (format_size(avail), format_size(needed));
    match avail >= needed {
        true => Ok(format!("{a} available (one more archive needs {n})")),
        false => Err(TierError::Io(format!(
            "{a} available in {at}, one more archive needs {n}"
        ))),
    }
}

/// The file name of `local`, and what to copy for it as (source, name there): the archive, then its sidecar
/// when there is one.
fn upload_set(local: &Path) -> (String, Vec<(String, String)>) {
    let name = super::file_name(local);
    let mut files = vec![(local.to_string_lossy().into_owned(), name.clone())];
    let sidecar = local.with_file_name(format!("{name}.sha256"));
    if sidecar.is_file() {
        let s = sidecar.to_string_lossy().into_owned();
        files.push((s, format!("{name}.sha256")));
    }
    (name, files)
}

/// A mounted directory (NFS, CIFS, USB disk).
pub struct Secondary {
    pub cfg: SecondaryConfig,
    pub policy: Policy,
}

impl Secondary {
    fn p(&self, name: &str) -> String {
        self.cfg.path.join(name).to_string_lossy().into_owned()
    }

    fn sync_dir(&self) -> Result<Vec<u8>, TierError> {
        let dir = self.cfg.path.to_string_lossy();
        fs_cmd("fsync directory", self.cfg.timeout, "sync", &[&dir])
    }
}

impl Tier for Secondary {
    fn label(&self) -> String {
        format!("secondary:{}", self.cfg.name)
    }
    fn policy(&self) -> Policy {
        self.policy
    }
    fn ready(&self) -> Result<(), TierError> {
        if self.cfg.require_mount && !is_mount_point(&self.cfg.path) {
            let path = self.cfg.path.clone();
            return Err(TierError::NotMounted { path });
        }
        let dir = self.cfg.path.to_string_lossy().into_owned();
        let what = format!("stat {dir}");
        let out = fs_cmd(&what, self.cfg.timeout, "stat", &["-c", "%F", &dir])?;
        if String::from_utf8_lossy(&out).trim() == "directory" {
            Ok(())
        } else {
            Err(TierError::Io(format!("{dir} is not a directory")))
        }
    }
    fn probe(&self, needed: u64) -> Result<String, TierError> {
        self.ready()?;
        let (dir, t) = (self.cfg.path.to_string_lossy(), self.cfg.timeout);
        // Writable: a read-only or full mount fails here, as the copy would.
        let probe = self.p(&format!(".proxkeep-check.{}", std::process::id()));
        fs_cmd(&format!("write in {dir}"), t, "touch", &[&probe])?;
        fs_cmd(&format!("remove {probe}"), t, "rm", &["-f", &probe])?;
        let out = fs_cmd(
            &format!("df {dir}"),
            t,
            "df",
            &["-B1", "--output=avail", &dir],
        )?;
        let avail = String::from_utf8_lossy(&out)
            .lines()
            .nth(1)
            .and_then(|l| l.trim().parse().ok());
        let avail: u64 = avail.ok_or_else(|| TierError::Io(format!("df {dir}: no figure")))?;
        let room = room(avail, needed, &dir)?;
        Ok(format!("writable, {room}"))
    }
    fn list(&self, host: &str) -> Result<Vec<Listed>, TierError> {
        let dir = self.cfg.path.to_string_lossy().into_owned();
        let opts = "-mindepth 1 -maxdepth 1 -type f -printf %f\\t%s\\n".split(' ');
        let args: Vec<&str> = std::iter::once(&*dir).chain(opts).collect();
        let out = fs_cmd(&format!("list {dir}"), self.cfg.timeout, "find", &args)?;
        let names = String::from_utf8_lossy(&out)
            .lines()
            .filter_map(|l| {
                l.rsplit_once('\t')
                    .and_then(|(n, s)| Some((n.to_string(), s.parse().ok()?)))
            })
            .collect::<Vec<_>>();
        Ok(super::archives(names, Some(host)))
    }
    fn put(&self, local: &Path, sha256: &str) -> Result<(), TierError> {
        let (name, files) = upload_set(local);
        let size = fs::metadata(local).map(|m| m.len()).unwrap_or(0);
        // Copying gets the deadline plus time for the bytes at a slow 1 MB/s.
        let budget = self.cfg.timeout + Duration::from_secs(size / 1_000_000);
        for (src, dest) in files {
            // Temp file in the destination, fsync, rename, fsync the directory.
            let tmp = self.p(&format!(".{dest}.{}.partial", std::process::id()));
            let step = (|| {
                // `install -m`, not `cp`: the copy is 0600 whatever the umask.
                let cp = ["-m", "0600", "-T", &src, &tmp];
                fs_cmd(&format!("copy {dest}"), budget, "install", &cp)?;
                fs_cmd(&format!("fsync {dest}"), budget, "sync", &[&tmp])?;
                let mv = ["-f", "-T", &tmp, &self.p(&dest)];
                fs_cmd(&format!("rename {dest}"), self.cfg.timeout, "mv", &mv)?;
                self.sync_dir()
            })();
            if let Err(e) = step {
                let _ = fs_cmd("clean up", self.cfg.timeout, "rm", &["-f", &tmp]);
                return Err(e);
            }
        }
        let what = format!("read back {name}");
        let out = fs_cmd(&what, budget, "sha256sum", &[&self.p(&name)])?;
        let got = parse_hashsum(&out).unwrap_or_default();
        if got != sha256 {
            let _ = self.remove(&name);
            return Err(TierError::Mismatch {
                file: name,
                detail: format!("sha256 {got}, expected {sha256}"),
            });
        }
        Ok(())
    }
    fn remove(&self, file: &str) -> Result<(), TierError> {
        // The sidecar first, as on the local tier (see `remove_set`).
        let rm = ["-f", &self.p(&format!("{file}.sha256")), &self.p(file)];
        fs_cmd(&format!("remove {file}"), self.cfg.timeout, "rm", &rm)?;
        self.sync_dir().map(|_| ())
    }
}

/// An rclone remote (`remote:path`), with the user's rclone setup (`RCLONE_CONFIG`, env-defined remotes).
pub struct Remote {
    pub cfg: RemoteConfig,
    pub policy: Policy,
    pub cancel: &'static AtomicBool,
}

#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LsEntry {
    name: String,
    #[serde(default)]
    size: i64,
    #[serde(default)]
    hashes: HashMap<String, String>,
}

fn parse_lsjson(text: &[u8]) -> Result<Vec<LsEntry>, TierError> {
    serde_json::from_slice(text).map_err(|e| TierError::Rclone {
        what: "lsjson".into(),
        detail: format!("unexpected lsjson output: {e}"),
    })
}

/// First field of `rclone hashsum` or `sha256sum` output (`<hash>  <name>`).
fn parse_hashsum(text: &[u8]) -> Option<String> {
    String::from_utf8_lossy(text)
        .split_whitespace()
        .next()
        .map(|s| s.to_ascii_lowercase())
}

pub static NEVER: AtomicBool = AtomicBool::new(false);

impl Remote {
    pub fn new(cfg: &RemoteConfig, default: &Policy, cancel: &'static AtomicBool) -> Self {
        Remote {
            cfg: cfg.clone(),
            policy: cfg.policy(default),
            cancel,
        }
    }

    fn path_of(&self, file: &str) -> String {
        if self.cfg.target.ends_with(':') {
            format!("{}{file}", self.cfg.target)
        } else {
            format!("{}/{file}", self.cfg.target)
        }
    }

    fn rclone(&self, what: &str, args: &[&str]) -> Result<Vec<u8>, TierError> {
        let opts = RunOptions {
            timeout: self.cfg.timeout,
            ..Default::default()
        };
        let mut spec = CommandSpec::new("rclone", args);
        spec.args.extend(self.cfg.flags.iter().cloned());
        let r = runner::run(&spec, &opts, self.cancel);
        if r.success() {
            Ok(r.stdout)
        } else {
            Err(TierError::Rclone {
                what: what.into(),
                detail: format!("{}: {}", r.status, r.stderr_tail(400)),
            })
        }
    }

    /// Run with retries and exponential backoff (1 s, 2 s, 4 s, …).
    fn rclone_retry(&self, what: &str, args: &[&str]) -> Result<Vec<u8>, TierError> {
        let mut last = None;
        for attempt in 0..self.cfg.retries.max(1) {
            if attempt > 0 {
                std::thread::sleep(Duration::from_secs(1 << (attempt - 1).min(5)));
            }
            match self.rclone(what, args) {
                Ok(out) => return Ok(out),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(TierError::Io("no attempt".into())))
    }
}

impl Tier for Remote {
    fn probe(&self, needed: u64) -> Result<String, TierError> {
        let target = &self.cfg.target;
        // One listing with the tier's timeout and no retries: does the remote answer at all?
        match self.rclone("lsf", &["lsf", "--max-depth", "1", target]) {
            Err(TierError::Rclone { detail, .. }) if detail.contains("directory not found") => {}
            other => drop(other?),
        }
        // Not every backend reports its space (`rclone about` fails on those): then only the listing counts.
        let about = self.rclone("about", &["about", "--json", target]).ok();
        let free = about.and_then(|o| serde_json::from_slice::<serde_json::Value>(&o).ok());
        match free.as_ref().and_then(|v| v.get("free")?.as_u64()) {
            Some(free) => room(free, needed, target).map(|r| format!("answers, {r}")),
            None => Ok("answers (this remote does not report its free space)".into()),
        }
    }
    fn label(&self) -> String {
        format!("remote:{}", self.cfg.name)
    }
    fn policy(&self) -> Policy {
        self.policy
    }
    fn list(&self, host: &str) -> Result<Vec<Listed>, TierError> {
        let out = match self.rclone("lsjson", &["lsjson", "--files-only", &self.cfg.target]) {
            Ok(o) => o,
            // A target directory that does not exist yet holds no archives (rclone exit 3).
            Err(TierError::Rclone { detail, .. }) if detail.starts_with("exit 3") => b"[]".to_vec(),
            Err(e) => return Err(e),
        };
        let names = parse_lsjson(&out)?.into_iter();
        let names = names.map(|e| (e.name, e.size.max(0) as u64));
        Ok(super::archives(names, Some(host)))
    }
    fn put(&self, local: &Path, sha256: &str) -> Result<(), TierError> {
        let (name, files) = upload_set(local);
        for (src, dest) in &files {
            self.rclone_retry("copyto", &["copyto", src, &self.path_of(dest)])?;
        }
        let mismatch = |detail: String| {
            Err(TierError::Mismatch {
                file: name.clone(),
                detail,
            })
        };
        // Check the copy: a hash the backend gives, else the size.
        let size = fs::metadata(local).map(|m| m.len()).unwrap_or(0);
        let path = self.path_of(&name);
        let out = self.rclone("lsjson", &["lsjson", "--hash", "--files-only", &path])?;
        let Some(there) = parse_lsjson(&out)?.into_iter().next() else {
            return mismatch("not found after upload".into());
        };
        let (rsize, hashes) = (there.size.max(0) as u64, there.hashes);
        if rsize != size {
            return mismatch(format!("size {rsize}, expected {size}"));
        }
        if let Some(h) = hashes.get("sha256") {
            if !h.eq_ignore_ascii_case(sha256) {
                return mismatch(format!("sha256 {h}, expected {sha256}"));
            }
        } else if let Some((kind, h)) = ["sha1", "md5"]
            .iter()
            .find_map(|k| hashes.get(*k).map(|h| (*k, h)))
        {
            let out = self.rclone("hashsum", &["hashsum", kind, &files[0].0])?;
            let mine = parse_hashsum(&out).unwrap_or_default();
            if !mine.eq_ignore_ascii_case(h) {
                return mismatch(format!("{kind} {h}, expected {mine}"));
            }
        }
        Ok(())
    }
    fn remove(&self, file: &str) -> Result<(), TierError> {
        // The sidecar first, as on the local tier (see `remove_set`); it may be missing (an older copy failed
        // half way): that is fine.
        let sidecar = self.path_of(&format!("{file}.sha256"));
        let _ = self.rclone("deletefile", &["deletefile", &sidecar]);
        self.rclone("deletefile", &["deletefile", &self.path_of(file)])?;
        Ok(())
    }
}

/// The tiers of a config: local first, then secondaries and remotes in config order.
pub fn tiers(
    config: &Config,
    backup_dir: &Path,
    cancel: &'static AtomicBool,
) -> Vec<Box<dyn Tier + Send + Sync>> {
    let mut v: Vec<Box<dyn Tier + Send + Sync>> = vec![Box::new(Local {
        dir: backup_dir.to_path_buf(),
        log_dir: config.log_dir.clone(),
        policy: config.retention,
    })];
    for s in &config.secondary {
        v.push(Box::new(Secondary {
            cfg: s.clone(),
            policy: s.policy(&config.retention),
        }));
    }
    for r in &config.remote {
        v.push(Box::new(Remote::new(r, &config.retention, cancel)));
    }
    v
}

/// Apply a retention plan on a tier (or only report it with `dry_run`).
pub fn prune(
    tier: &dyn Tier,
    host: &str,
    verified: &HashMap<String, bool>,
    now: Timestamp,
    tz: &TimeZone,
    dry_run: bool,
    report: &mut TierReport,
) -> Result<Vec<(Listed, Decision)>, TierError> {
    let archives = tier.list(host)?;
    let plan = plan_for(&archives, verified, &tier.policy(), now, tz);
    for (a, d) in &plan {
        match d {
            Decision::Remove if !dry_run => {
                tier.remove(&a.file)?;
                report.removed.push(a.file.clone());
            }
            Decision::Remove => report.removed.push(a.file.clone()),
            Decision::Damaged => report.damaged.push(a.file.clone()),
            Decision::Keep(_) => {}
        }
    }
    let left: Vec<&Listed> = plan
        .iter()
        .filter(|(_, d)| dry_run || !d.is_remove())
        .map(|(a, _)| a)
        .collect();
    report.archives = left.len() as u64;
    report.bytes = left.iter().map(|a| a.size).sum();
    Ok(plan)
}

/// The archive a backup just wrote and verified (its SHA-256 from the read-back).
pub struct NewArchive<'a> {
    pub file: &'a str,
    pub sha256: &'a str,
}

/// After a verified backup: copy to a tier every local archive it lacks that its policy would keep (the new
/// one, and any an earlier failed run did not deliver), then prune the tier, but only when the new archive
/// reached it.
pub fn sync_tier(
    tier: &dyn Tier,
    local: &[Listed],
    local_dir: &Path,
    new: NewArchive,
    host: &str,
    now: Timestamp,
    tz: &TimeZone,
) -> TierReport {
    let NewArchive {
        file: new_file,
        sha256: new_sha256,
    } = new;
    let mut report = TierReport {
        tier: tier.label(),
        ..Default::default()
    };
    let result = (|| -> Result<(), TierError> {
        tier.ready()?;
        let there = tier.list(host)?;
        let have: HashSet<&str> = there.iter().map(|a| a.file.as_str()).collect();
        // Only what the tier's policy would keep among (what it has + all local ones).
        let lacking = local.iter().filter(|a| !have.contains(a.file.as_str()));
        let union: Vec<Listed> = there.iter().chain(lacking).cloned().collect();
        let keep: HashSet<String> = plan_for(&union, &HashMap::new(), &tier.policy(), now, tz)
            .into_iter()
            .filter(|(_, d)| !d.is_remove())
            .map(|(a, _)| a.file)
            .collect();
        let mut missing: Vec<&Listed> = local
            .iter()
            .filter(|a| {
                !have.contains(a.file.as_str()) && (keep.contains(&a.file) || a.file == new_file)
            })
            .collect();
        // The new archive first.
        missing.sort_by_key(|a| a.file != new_file);
        for a in missing {
            let path = local_dir.join(&a.file);
            let sha = if a.file == new_file {
                new_sha256.to_string()
            } else {
                sha256_file(&path).map_err(|e| TierError::Io(format!("{}: {e}", path.display())))?
            };
            tier.put(&path, &sha)?;
            report.copied.push(a.file.clone());
            report.last_copy = Some(Timestamp::now().as_second());
        }
        prune(tier, host, &HashMap::new(), now, tz, false, &mut report)?;
        Ok(())
    })();
    match result {
        Ok(()) => report.ok = true,
        Err(e) => report.error = Some(e.to_string()),
    }
    report
}

/// An ARCHIVE argument made concrete: a local file, or a copy fetched from a remote (removed on drop).
#[derive(Debug)]
pub struct Resolved {
    pub path: PathBuf,
    /// Where it came from when fetched (`remote:b2`).
    pub tier: Option<String>,
    _fetched: Option<tempfile::TempDir>,
}

/// Resolve an ARCHIVE argument: `NAME:ARCHIVE` on a configured remote or secondary (ARCHIVE may be `latest` or
/// `latest~N`), else a path, a file name in the backup directory, `latest` or `latest~N` (see
/// [`super::resolve`]). A remote archive is fetched with rclone into a private temp directory (its sidecar is
/// not fetched: reading the archive checks every entry against its index).
pub fn resolve_archive(
    spec: &str,
    config: &Config,
    backup_dir: &Path,
    host: &str,
    cancel: &'static AtomicBool,
) -> Result<Resolved, String> {
    let found = |path, tier| Resolved {
        path,
        tier,
        _fetched: None,
    };
    if let Some((tier_name, rest)) = spec.split_once(':') {
        if let Some(s) = config.secondary.iter().find(|s| s.name == tier_name) {
            let path = super::resolve(rest, &s.path, host).map_err(|e| e.to_string())?;
            return Ok(found(path, Some(format!("secondary:{}", s.name))));
        }
        if let Some(r) = config.remote.iter().find(|r| r.name == tier_name) {
            let remote = Remote::new(r, &config.retention, cancel);
            let file = match super::latest_offset(rest) {
                Some(n) => {
                    let list = remote.list(host).map_err(|e| e.to_string())?;
                    let Some(a) = list.get(n) else {
                        let (len, name) = (list.len(), &r.name);
                        let on = format!("{len} archive(s) of {host} on remote:{name}");
                        return Err(format!("no archive {spec:?}: {on}"));
                    };
                    a.file.clone()
                }
                None => rest.to_string(),
            };
            if ArchiveName::parse(&file).is_none()
                && !file.ends_with(".tar")
                && !file.contains(".tar.")
            {
                return Err(format!("{file:?} is not an archive name"));
            }
            let dir = tempfile::Builder::new()
                .prefix("proxkeep-fetch-")
                .tempdir()
                .map_err(|e| e.to_string())?;
            let local = dir.path().join(&file);
            let local_s = local.to_string_lossy().into_owned();
            remote
                .rclone_retry("copyto", &["copyto", &remote.path_of(&file), &local_s])
                .map_err(|e| format!("fetching {spec}: {e}"))?;
            if !local.is_file() {
                return Err(format!("no archive {file:?} on remote:{}", r.name));
            }
            return Ok(Resolved {
                path: local,
                tier: Some(remote.label()),
                _fetched: Some(dir),
            });
        }
    }
    let path = super::resolve(spec, backup_dir, host).map_err(|e| e.to_string())?;
    Ok(found(path, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsjson_and_hashsum_parsing() {
        let out = br#"[{"Path":"a.tar.zst","Name":"a.tar.zst","Size":12,"MimeType":"x","ModTime":"2026-01-01T00:00:00Z","IsDir":false,"Hashes":{"sha1":"ab","md5":"cd"}}]"#;
        let v = parse_lsjson(out).unwrap();
        assert_eq!(v[0].name, "a.tar.zst");
        assert_eq!(v[0].size, 12);
        assert_eq!(v[0].hashes["sha1"], "ab");
        assert!(parse_lsjson(b"garbage").is_err());
        assert_eq!(
            parse_hashsum(b"F572D396  /tmp/a.txt\n"),
            Some("f572d396".into())
        );
    }

    #[test]
    fn only_this_hosts_archives_are_listed() {
        let names = vec![
            ("pve1-pve-20261127T030000Z.tar.zst".to_string(), 1),
            ("pve2-pve-20261127T030000Z.tar.zst".to_string(), 1),
            ("pve1-pve-20261127T030000Z.tar.zst.sha256".to_string(), 1),
            ("holiday.jpg".to_string(), 1),
            ("pve1-pve-20261128T030000Z.tar.zst".to_string(), 1),
        ];
        let v = crate::store::archives(names, Some("pve1"));
        assert_eq!(
            v.iter().map(|a| a.file.as_str()).collect::<Vec<_>>(),
            vec![
                "pve1-pve-20261128T030000Z.tar.zst",
                "pve1-pve-20261127T030000Z.tar.zst"
            ]
        );
    }
}
