//! The restore journeys after the plan is shown and confirmed: `restore` (safety archive, writes, follow-ups),
//! `extract`, and `pmxcfs restore`. Each returns a report whose exit code it decides.

use crate::archive::format::Kind;
use crate::config::Config;
use crate::exit;
use crate::output::Log;
use crate::restore::apply::{ApplyOptions, Stop};
use crate::restore::plan::{Action, Counts};
use crate::restore::recovery::{self, RecoveryRequest, Staged, Swapped};
use crate::restore::{self, Applied, Execute, Outcome, Prepared, RestoreError};
use crate::runner::CommandSpec;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The plan as `--json` shows it.
#[derive(Debug, Serialize)]
pub struct PlanDoc {
    pub purpose: String,
    pub host: String,
    pub target: PathBuf,
    pub counts: Vec<Counts>,
    pub steps: Vec<StepDoc>,
    pub not_selected: u64,
    pub internal: u64,
    /// Files written with content adapted to this host (`{path, why}`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rewritten: Vec<RewriteDoc>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blockers: Vec<crate::restore::rewrite::Blocker>,
}

#[derive(Debug, Serialize)]
pub struct RewriteDoc {
    pub path: String,
    pub why: String,
}

#[derive(Debug, Serialize)]
pub struct StepDoc {
    pub path: String,
    pub category: String,
    pub kind: Kind,
    pub action: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changes: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub implicit: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

impl PlanDoc {
    pub fn new(p: &Prepared) -> PlanDoc {
        let steps = p
            .plan
            .steps
            .iter()
            .map(|s| StepDoc {
                path: s.shown(),
                category: s.category.clone(),
                kind: s.kind,
                action: s.action.name(),
                changes: match &s.action {
                    Action::Replace(c) => serde_json::to_value(c).ok(),
                    _ => None,
                },
                reason: match &s.action {
                    Action::Conflict(why) => Some(why.clone()),
                    _ => None,
                },
                implicit: s.implicit,
                diff: s.diff.clone(),
            })
            .collect();
        PlanDoc {
            purpose: p.meta.purpose.clone(),
            host: p.meta.host.clone(),
            target: p.target.dir.clone(),
            counts: p.plan.counts(),
            steps,
            not_selected: p.plan.not_selected,
            internal: p.plan.internal,
            rewritten: p
                .rewrites
                .iter()
                .map(|(path, why)| RewriteDoc {
                    path: path.clone(),
                    why: why.clone(),
                })
                .collect(),
            notes: p.notes.clone(),
            blockers: p.blockers.clone(),
        }
    }
}

/// What `restore` did.
#[derive(Debug, Serialize)]
pub struct RestoreReport {
    pub status: &'static str,
    pub exit_code: i32,
    pub archive: PathBuf,
    pub target: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<PlanDoc>,
    pub outcome: Outcome,
    /// The command that puts back what the restore replaced (from its safety archive).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undo: Option<String>,
    pub services: Vec<Applied>,
    pub services_note: Option<String>,
    /// Whether --apply-services was given (the follow-ups are shown as run or to run by hand).
    #[serde(skip)]
    pub apply_services: bool,
    /// The target is the running host (`/`): follow-ups may run here. Otherwise they are for the host the
    /// tree belongs to.
    pub live: bool,
    pub duration_ms: u64,
}

/// What `extract` did.
#[derive(Debug, Serialize)]
pub struct Extracted {
    pub status: &'static str,
    pub exit_code: i32,
    pub archive: PathBuf,
    pub dir: PathBuf,
    pub outcome: Outcome,
    pub duration_ms: u64,
}

pub fn status_name(code: i32) -> &'static str {
    match code {
        exit::OK => "ok",
        exit::WARNINGS => "warning",
        exit::INTERRUPTED => "interrupted",
        _ => "failed",
    }
}

/// The writes, with a progress bar, and the exit code they earn.
pub(crate) fn execute(
    p: &Prepared,
    how: &Execute,
    log: &Log,
    cancel: &AtomicBool,
) -> Result<(Outcome, i32), RestoreError> {
    let progress = log.progress();
    let o = restore::execute(p, how, log, progress.as_ref(), cancel)?;
    let code = match &o.report.stopped {
        None if o.report.warnings.is_empty() => exit::OK,
        None => exit::WARNINGS,
        Some(Stop::Interrupted) => exit::INTERRUPTED,
        Some(Stop::Damaged { .. }) => exit::DAMAGED,
        Some(Stop::Failed { .. }) => exit::FAILED,
    };
    Ok((o, code))
}

/// How a restore is carried out, beyond its plan.
pub struct RestoreOptions<'a> {
    pub config: &'a Config,
    /// `--config` as given, for the undo command.
    pub config_path: Option<&'a Path>,
    pub no_safety_backup: bool,
    /// `Some(timeout)`: run the automatic follow-ups (only when the target is this host).
    pub apply_services: Option<Duration>,
    /// The target is the running host (`/`), not a copy under `--root` or `--target`.
    pub target_is_host: bool,
    pub now: jiff::Timestamp,
}

fn execution(config: &Config, now: jiff::Timestamp, no_safety: bool, extract: bool) -> Execute {
    Execute {
        safety_dir: (!no_safety && !extract).then(|| super::absolute(&config.backup_dir)),
        encryption: config.encryption.clone(),
        keep_safety: config.retention.keep_safety,
        lock_file: (!extract).then(|| config.lock_file.clone()),
        now,
        apply: ApplyOptions {
            extract,
            ..ApplyOptions::default()
        },
    }
}

/// Safety archive, the writes, then (with `apply_services`, on this host) the follow-up commands.
pub fn restore(
    p: &Prepared,
    o: &RestoreOptions,
    log: &Log,
    cancel: &AtomicBool,
) -> Result<RestoreReport, RestoreError> {
    let started = Instant::now();
    let how = execution(o.config, o.now, o.no_safety_backup, false);
    let (outcome, mut code) = execute(p, &how, log, cancel)?;
    let undo = outcome
        .safety_archive
        .as_ref()
        .map(|s| undo_command(o.config_path, s, &p.target.dir));
    let (mut services, mut services_note) = (Vec::new(), None);
    if let (None, Some(timeout)) = (&outcome.report.stopped, o.apply_services) {
        if o.target_is_host {
            services = restore::run_follow_ups(&outcome.follow_ups, timeout, log, cancel);
            if cancel.load(Ordering::Relaxed) {
                code = exit::INTERRUPTED;
                services_note = Some(
                    "interrupted while running the follow-up commands; every file was restored"
                        .to_string(),
                );
            } else if services.iter().any(|x: &Applied| !x.ok) {
                code = code.max(exit::WARNINGS);
            }
        } else {
            let dir = p.target.dir.display();
            services_note = Some(format!("--apply-services: not run, {dir} is not this host"));
        }
    }
    Ok(RestoreReport {
        status: status_name(code),
        exit_code: code,
        archive: p.archive.clone(),
        target: p.target.dir.clone(),
        plan: Some(PlanDoc::new(p)),
        outcome,
        undo,
        services,
        services_note,
        apply_services: o.apply_services.is_some(),
        live: o.target_is_host,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

/// `extract`: everything into an empty or new directory; no safety archive, no lock, no follow-ups.
pub fn extract(
    p: &Prepared,
    config: &Config,
    now: jiff::Timestamp,
    log: &Log,
    cancel: &AtomicBool,
) -> Result<Extracted, RestoreError> {
    let started = Instant::now();
    let (outcome, code) = execute(p, &execution(config, now, true, true), log, cancel)?;
    Ok(Extracted {
        status: status_name(code),
        exit_code: code,
        archive: p.archive.clone(),
        dir: p.target.dir.clone(),
        outcome,
        duration_ms: started.elapsed().as_millis() as u64,
    })
}

fn undo_command(config_path: Option<&Path>, safety: &Path, target: &Path) -> String {
    let config = config_path.map(|c| super::absolute(c).display().to_string());
    let (safety, target) = (safety.display().to_string(), target.display().to_string());
    let mut args: Vec<&str> = Vec::new();
    if let Some(c) = &config {
        args.extend(["--config", c]);
    }
    args.extend(["restore", &safety, "--target", &target]);
    CommandSpec::new("proxkeep", &args).display()
}

/// What `pmxcfs restore` did.
#[derive(Debug, Serialize)]
pub struct PmxcfsRestored {
    pub status: &'static str,
    pub swapped: Swapped,
    pub next_steps: Vec<String>,
}

impl PmxcfsRestored {
    pub fn exit_code(&self) -> i32 {
        super::exit_if(!self.swapped.warnings.is_empty(), exit::WARNINGS)
    }
}

/// `pmxcfs restore` after confirmation: stop pve-cluster, swap the db in, start it, and what to do next.
pub fn pmxcfs_restore(
    staged: Staged,
    req: &RecoveryRequest,
    log: &Log,
    cancel: &AtomicBool,
) -> Result<PmxcfsRestored, RestoreError> {
    let s = &staged;
    let next_steps = recovery::next_steps(&s.nodes, &s.hostname, s.has_corosync, req.live);
    let swapped = recovery::swap(staged, req, log, cancel)?;
    Ok(PmxcfsRestored {
        status: "ok",
        swapped,
        next_steps,
    })
}
