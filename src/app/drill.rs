//! `proxkeep drill`: a restore rehearsal that never touches the host. Verify the archive, restore it completely
//! into a private scratch directory through the same plan and writes as `restore --target` (no safety
//! archive, no follow-ups), check the restored tree for consistency ([`crate::drill::checks`]), compare the
//! archive with the live host (`diff --live`), then report, write the `proxkeep_drill_*` metrics and notify.

use crate::archive::format::Meta;
use crate::config::Config;
use crate::drill::{self, Check, Facts, Verdict};
use crate::exit;
use crate::host::Root;
use crate::inspect::{self, InspectError, diff};
use crate::notify::{self, Delivery, report::ArchiveInfo};
use crate::output::Log;
use crate::restore::apply::ApplyOptions;
use crate::restore::plan::PveWrite;
use crate::restore::{self, Execute, Mode, Request};
use crate::store::tier;
use jiff::Timestamp;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

/// How a drill runs, beyond its archive.
pub struct DrillOptions<'a> {
    pub config: &'a Config,
    /// The live host to compare with (`--root`, default `/`): only read.
    pub root: &'a Root,
    /// Where the scratch directory is made: `--scratch DIR`, else the backup directory.
    pub scratch_in: PathBuf,
    /// Leave the scratch directory in place (`--keep`).
    pub keep: bool,
    /// `PROXKEEP_NOW` or the clock: the run's time and the archive's age.
    pub now: Timestamp,
    /// The monotonic start of the run (the duration is measured from it).
    pub started: Instant,
}

/// What a restore would change on the live host now, for one category (`diff --live`, archive → host).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LiveCount {
    pub category: String,
    /// In the archive, missing on the host: a restore creates them.
    pub create: usize,
    /// Different on the host: a restore replaces them.
    pub replace: usize,
    /// On the host only: a restore leaves them.
    pub host_only: usize,
}

/// The report of one drill: every check with its result, the comparison with the host, the time it took.
#[derive(Debug, Serialize)]
pub struct DrillReport {
    pub status: &'static str,
    pub exit_code: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<PathBuf>,
    /// Where the archive came from when it was fetched (`remote:b2`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    pub host: String,
    pub role: String,
    /// When the archive was made (RFC 3339) and its age at the drill's time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<i64>,
    pub checks: Vec<Check>,
    /// `None` when the drill stopped before it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<Vec<LiveCount>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live_error: Option<String>,
    /// The scratch directory, when it was kept (`--keep`): renamed `proxkeep-drill-kept-<time>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scratch: Option<PathBuf>,
    /// Scratch directories of drills that died (`kill -9`), removed before this one began.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub swept: Vec<PathBuf>,
    /// Why the drill ended early (no archive, not enough space, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub started: i64,
    pub duration_ms: u64,
    pub notifications: Vec<Delivery>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_error: Option<String>,
    /// Bytes of the archive file.
    pub size: u64,
}

impl DrillReport {
    fn new(host: &str, now: Timestamp) -> DrillReport {
        DrillReport {
            status: "ok",
            exit_code: exit::OK,
            archive: None,
            tier: None,
            host: host.to_string(),
            role: String::new(),
            created: None,
            age_seconds: None,
            checks: Vec::new(),
            live: None,
            live_error: None,
            scratch: None,
            swept: Vec::new(),
            error: None,
            started: now.as_second(),
            duration_ms: 0,
            notifications: Vec::new(),
            metrics_error: None,
            size: 0,
        }
    }

    /// A drill that could not start (no archive to drill, a fetch that failed): exit `code`.
    pub fn failed_early(host: &str, now: Timestamp, code: i32, error: String) -> DrillReport {
        let mut r = DrillReport::new(host, now);
        r.error = Some(error);
        r.decide(Some(code));
        r
    }

    pub fn failed_checks(&self) -> usize {
        self.checks
            .iter()
            .filter(|c| c.result == Verdict::Failed)
            .count()
    }

    /// The exit code: `stop` when the drill ended early with one; 6 for a failed check; 3 for a warning (a
    /// check that should have run but could not, restore warnings, no live comparison); else 0.
    fn decide(&mut self, stop: Option<i32>) {
        let warned = self.checks.iter().any(|c| c.warning) || self.live_error.is_some();
        self.exit_code = match stop {
            Some(code) => code,
            None if self.failed_checks() > 0 => exit::DAMAGED,
            None => super::exit_if(warned, exit::WARNINGS),
        };
        self.status = match self.exit_code {
            exit::OK => "passed",
            exit::WARNINGS => "warning",
            exit::INTERRUPTED => "interrupted",
            _ => "failed",
        };
    }
}

/// The default ARCHIVE: this host's newest archive on any tier (local first on a tie), as an ARCHIVE
/// argument (`FILE` or `NAME:FILE`). Unreachable tiers are named in `warnings`.
pub fn newest_archive(
    config: &Config,
    backup_dir: &Path,
    host: &str,
    cancel: &'static AtomicBool,
    warnings: &mut Vec<String>,
) -> Result<String, String> {
    let mut best: Option<(Timestamp, String)> = None;
    let tiers = tier::tiers(config, backup_dir, cancel);
    for t in &tiers {
        let newest = match t.ready().and_then(|()| t.list(host)) {
            Ok(list) => list.into_iter().next(),
            Err(e) => {
                warnings.push(format!("tier {}: {e}", t.label()));
                continue;
            }
        };
        let Some(a) = newest.filter(|a| best.as_ref().is_none_or(|(time, _)| a.name.time > *time))
        else {
            continue;
        };
        let spec = match t.label().split_once(':') {
            Some((_, name)) => format!("{name}:{}", a.file),
            None => a.file.clone(),
        };
        best = Some((a.name.time, spec));
    }
    best.map(|(_, spec)| spec).ok_or_else(|| {
        let labels: Vec<String> = tiers.iter().map(|t| t.label()).collect();
        format!("no archive of {host} on any tier ({})", labels.join(", "))
    })
}

/// Every step of the drill on `archive` (resolved: a local file or a fetched copy).
pub fn run(
    archive: &Path,
    tier: Option<String>,
    o: &DrillOptions,
    log: &Log,
    cancel: &AtomicBool,
) -> DrillReport {
    let host = crate::host::hostname(o.root);
    let mut r = DrillReport::new(&host, o.now);
    r.archive = Some(archive.to_path_buf());
    r.tier = tier;
    r.swept = crate::preflight::sweep_drill_scratch(&o.scratch_in);
    for p in &r.swept {
        log.info(&format!(
            "drill: removed {}, left by a drill that died",
            p.display()
        ));
    }
    let stop = rehearse(archive, o, log, cancel, &mut r);
    r.duration_ms = o.started.elapsed().as_millis() as u64;
    r.decide(stop);
    r
}

/// The steps; `Some(code)` when the drill stopped early.
fn rehearse(
    archive: &Path,
    o: &DrillOptions,
    log: &Log,
    cancel: &AtomicBool,
    r: &mut DrillReport,
) -> Option<i32> {
    log.info(&format!("drill: verifying {}", archive.display()));
    let v = match inspect::verify(archive) {
        Ok(v) => v,
        Err(e) => {
            // No key for an encrypted archive is a usage error (2), a wrong one damage (6), as for `verify`.
            let crypt = crate::crypt::find(std::iter::successors(
                Some(&e as &(dyn std::error::Error + 'static)),
                |e| e.source(),
            ));
            let code = crypt.map_or(exit::DAMAGED, |c| c.exit_code());
            let detail = "the archive does not read back";
            r.checks
                .push(Check::failed("verify", detail, vec![e.to_string()]));
            if code == exit::USAGE {
                r.error = Some(e.to_string());
            }
            return Some(code);
        }
    };
    r.size = v.size;
    if !v.ok {
        let problems = v.problems.iter().map(|p| p.to_string()).collect();
        let detail = format!("{} problem(s): the archive is damaged", v.problems.len());
        r.checks.push(Check::failed("verify", detail, problems));
        return Some(exit::DAMAGED);
    }
    if v.sidecar_only {
        r.error = Some("the archive is encrypted and no key was given (--identity FILE or --passphrase-file FILE)".into());
        return Some(exit::USAGE);
    }
    r.checks.push(Check::passed(
        "verify",
        format!("{} entries, every hash matches the index", v.entries),
    ));
    let unpacked = v.totals.as_ref().map_or(0, |t| t.bytes + t.entries * 4096);
    let space = crate::preflight::free_space(&o.scratch_in, 0, unpacked, "the archive unpacked");
    if !space.ok {
        let fix = space.fix.clone().unwrap_or_default();
        r.checks
            .push(Check::failed("free-space", space.detail.clone(), vec![fix]));
        r.error = Some(format!(
            "not enough space to restore into {}",
            o.scratch_in.display()
        ));
        return Some(exit::PREFLIGHT);
    }
    r.checks
        .push(Check::passed("free-space", space.detail.clone()));
    let scratch = match make_scratch(&o.scratch_in) {
        Ok(s) => s,
        Err(e) => {
            r.error = Some(format!(
                "cannot make a scratch directory in {}: {e}",
                o.scratch_in.display()
            ));
            return Some(exit::FAILED);
        }
    };
    let stop = restore_and_check(archive, scratch.path(), o, log, cancel, r);
    if o.keep {
        r.scratch = Some(keep_scratch(scratch.keep(), o.now, log));
    }
    if stop.is_some() {
        return stop;
    }
    log.info("drill: comparing with the live host");
    match live_counts(archive, o) {
        Ok(l) => r.live = Some(l),
        Err(e) => r.live_error = Some(e.to_string()),
    }
    None
}

/// A new 0700 directory in `dir` (`.proxkeep-drill-<pid>-XXXXXX`), removed when dropped; should the drill die
/// first, the next drill or backup removes it ([`crate::preflight::sweep_drill_scratch`]).
fn make_scratch(dir: &Path) -> std::io::Result<tempfile::TempDir> {
    use std::os::unix::fs::PermissionsExt;
    let prefix = format!(
        "{}{}-",
        crate::preflight::DRILL_SCRATCH_PREFIX,
        std::process::id()
    );
    let t = tempfile::Builder::new()
        .prefix(&prefix)
        .permissions(std::fs::Permissions::from_mode(0o700))
        .tempdir_in(dir)?;
    crate::fsx::create_dir_all(&t.path().join("root"), 0o700)?;
    Ok(t)
}

/// `--keep`: the finished scratch directory renamed `proxkeep-drill-kept-<time>` (`-2`, `-3`, ... when taken),
/// a name no sweep touches. Should every rename fail it stays as it is, said in the log.
fn keep_scratch(path: PathBuf, now: Timestamp, log: &Log) -> PathBuf {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    let base = format!("proxkeep-drill-kept-{}", now.strftime("%Y%m%dT%H%M%SZ"));
    let mut last = None;
    for n in 1..100 {
        let name = match n {
            1 => base.clone(),
            n => format!("{base}-{n}"),
        };
        let kept = path.with_file_name(name);
        match renameat_with(CWD, &path, CWD, &kept, RenameFlags::NOREPLACE) {
            Ok(()) => return kept,
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => {
                last = Some(e);
                break;
            }
        }
    }
    let why = last.map_or_else(|| "every name is taken".to_string(), |e| e.to_string());
    log.warn(&format!(
        "drill: cannot rename the kept scratch directory {} ({why}): a later drill or backup may remove it",
        path.display()
    ));
    path
}

/// Facts, the restore into `scratch/root`, and the checks of the tree.
fn restore_and_check(
    archive: &Path,
    scratch: &Path,
    o: &DrillOptions,
    log: &Log,
    cancel: &AtomicBool,
    r: &mut DrillReport,
) -> Option<i32> {
    let facts = match drill::read_facts(archive, &scratch.join("config.db")) {
        Ok(f) => f,
        Err(e) => {
            r.checks.push(Check::failed(
                "restore",
                "the archive's own files do not read",
                vec![e.to_string()],
            ));
            return Some(exit::DAMAGED);
        }
    };
    describe(&facts, o.now, r);
    let target = scratch.join("root");
    log.info(&format!("drill: restoring into {}", target.display()));
    if let Err(c) = restore_into(archive, &target, o.now, log, cancel).map(|c| r.checks.push(c)) {
        let code = if c.result == Verdict::Skipped {
            exit::INTERRUPTED
        } else {
            exit::DAMAGED
        };
        r.checks.push(c);
        return Some(code);
    }
    log.info("drill: checking the restored tree");
    r.checks.extend(drill::checks::all(&target, &facts));
    None
}

/// Host, role and age from the archive's meta.json.
fn describe(facts: &Facts, now: Timestamp, r: &mut DrillReport) {
    if let Some(m) = &facts.meta {
        let Meta {
            host,
            role,
            created,
            created_unix,
            ..
        } = m;
        r.host = host.clone();
        r.role = role.to_string();
        r.created = Some(created.clone());
        r.age_seconds = Some(now.as_second() - created_unix);
    }
}

/// The whole archive (`--path /`: held files too) into `target` with `restore`'s own plan and writes: no
/// safety archive, no lock (nothing of the host is written), no follow-ups. `Err`: the failed check (skipped
/// for an interrupt).
fn restore_into(
    archive: &Path,
    target: &Path,
    now: Timestamp,
    log: &Log,
    cancel: &AtomicBool,
) -> Result<Check, Check> {
    const NAME: &str = "restore";
    let req = Request {
        archive: archive.to_path_buf(),
        target: target.to_path_buf(),
        mode: Mode::Restore,
        only: Vec::new(),
        paths: vec!["/".into()],
        map_node: None,
        nic: Vec::new(),
        pve: Some(PveWrite::Plain),
    };
    let fail = |e: restore::RestoreError| match e {
        restore::RestoreError::Interrupted => Check::skipped(NAME, "interrupted"),
        e => Check::failed(NAME, "the archive does not restore", vec![e.to_string()]),
    };
    let p = restore::prepare(&req, cancel).map_err(fail)?;
    let how = Execute {
        safety_dir: None,
        encryption: None,
        keep_safety: 0,
        lock_file: None,
        now,
        apply: ApplyOptions::default(),
    };
    let (outcome, code) = super::restore::execute(&p, &how, log, cancel).map_err(fail)?;
    let a = &outcome.report;
    let detail = format!(
        "{} entries written ({} of file data): everything, hardware-bound files too",
        a.created,
        crate::units::format_size(a.bytes),
    );
    match code {
        exit::OK => Ok(Check::passed(NAME, detail)),
        exit::WARNINGS => Ok(Check {
            warning: true,
            problems: a.warnings.clone(),
            ..Check::passed(NAME, detail)
        }),
        exit::INTERRUPTED => Err(Check::skipped(NAME, "interrupted")),
        _ => {
            let why = a
                .stopped
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default();
            Err(Check::failed(
                NAME,
                format!("the restore stopped: {detail}"),
                vec![why],
            ))
        }
    }
}

/// `diff --live` from the archive to the host, counted per category.
fn live_counts(archive: &Path, o: &DrillOptions) -> Result<Vec<LiveCount>, InspectError> {
    let rep = diff::live(archive, o.root, o.config, &diff::Options::default())?;
    // The differences come grouped by category, in catalog order.
    let mut by: Vec<LiveCount> = Vec::new();
    for d in &rep.differences {
        if by.last().is_none_or(|c| c.category != d.category) {
            by.push(LiveCount {
                category: d.category.clone(),
                ..LiveCount::default()
            });
        }
        let Some(c) = by.last_mut() else { continue };
        match d.change {
            diff::Change::Removed => c.create += 1,
            diff::Change::Changed => c.replace += 1,
            diff::Change::Added => c.host_only += 1,
        }
    }
    Ok(by)
}

/// After the drill: the report to the channels (never the pings), the metrics textfile. Failures here are
/// logged and shown in the report; they do not change the drill's exit code.
pub fn finish(config: &Config, log: &Log, r: &mut DrillReport) {
    let status = match r.exit_code {
        exit::OK => notify::Status::Ok,
        exit::WARNINGS => notify::Status::Warning,
        _ => notify::Status::Failed,
    };
    let started = Timestamp::from_second(r.started).unwrap_or(Timestamp::UNIX_EPOCH);
    let ended = started + std::time::Duration::from_millis(r.duration_ms);
    let run = notify::RunInfo {
        host: r.host.clone(),
        role: r.role.clone(),
        started,
        ended,
    };
    let mut rep = notify::Report::new(&run, status, r.exit_code);
    rep.run = "drill";
    rep.duration_ms = r.duration_ms;
    rep.error = r.error.clone();
    rep.archive = r.archive.as_ref().map(|p| ArchiveInfo {
        name: crate::store::file_name(p),
        path: p.display().to_string(),
        size: r.size,
        sha256: None,
        compression: String::new(),
        level: 0,
        encryption: None,
        entries: 0,
        files: 0,
        bytes: 0,
    });
    rep.set_problems(problem_lines(r));
    rep.redact(log.redactor());
    r.notifications = notify::send_drill_report(&config.notify, log, &rep);
    if let Some(path) = &config.metrics.textfile {
        let m = crate::metrics::Drill {
            ended: ended.as_second(),
            result: status as u8,
            duration_ms: r.duration_ms,
            checks_failed: r.failed_checks(),
            archive_age: r.age_seconds,
        };
        if let Err(e) = crate::metrics::write_drill(path, &m) {
            let why = format!("cannot write the metrics textfile {}: {e}", path.display());
            log.warn(&why);
            r.metrics_error = Some(why);
        }
    }
}

/// One line per failed check and warning: what the notification lists.
fn problem_lines(r: &DrillReport) -> Vec<String> {
    let failed = r
        .checks
        .iter()
        .filter(|c| c.result == Verdict::Failed || c.warning);
    let mut out: Vec<String> = failed
        .flat_map(|c| {
            let head = format!("{}: {}", c.name, c.detail);
            std::iter::once(head).chain(c.problems.iter().map(move |p| format!("{}: {p}", c.name)))
        })
        .collect();
    out.extend(r.live_error.iter().map(|e| format!("live comparison: {e}")));
    out
}
