//! `proxkeep prune`: the retention policy applied to every tier (or one), each decision with its reason.

use crate::config::Config;
use crate::store::retention::Decision;
use crate::store::tier;
use jiff::Timestamp;
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::AtomicBool;

#[derive(Debug, Serialize)]
pub struct TierPrune {
    pub tier: String,
    /// The effective policy of the tier (`[retention]` with the tier's own keys).
    pub policy: crate::config::Policy,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Vec<Pruned>>,
    /// Local tier only: the restore-safety archives under `[retention] keep_safety`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub safety: Vec<Pruned>,
    /// The tier could not be pruned (unreachable remote, unmounted disk): a warning, the others go on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Pruned {
    pub archive: String,
    pub decision: Decision,
}

#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct PruneReport {
    pub tiers: Vec<TierPrune>,
    #[serde(skip)]
    pub dry_run: bool,
    #[serde(skip)]
    pub host: String,
    /// `prune.log` could not be written (the removals were done): a warning.
    #[serde(skip)]
    pub log_error: Option<String>,
}

impl PruneReport {
    pub fn exit_code(&self) -> i32 {
        let unreachable = self.tiers.iter().any(|t| t.error.is_some());
        super::exit_if(
            unreachable || self.log_error.is_some(),
            crate::exit::WARNINGS,
        )
    }
}

/// `only` selects one tier by label (`secondary:NAME`) or bare name; `Err` names the tiers there are.
pub fn run(
    config: &Config,
    dir: &Path,
    host: &str,
    only: Option<&str>,
    dry_run: bool,
    now: Timestamp,
    cancel: &'static AtomicBool,
) -> Result<PruneReport, String> {
    let tz = jiff::tz::TimeZone::system();
    let tiers = tier::tiers(config, dir, cancel);
    let selected = super::select_tiers(&tiers, only, "")?;
    let verified = tier::recorded_verification(dir);
    let pruned = |(a, decision): (crate::store::Listed, _)| Pruned {
        archive: a.file,
        decision,
    };
    let tiers = selected.into_iter().map(|t| {
        let mut rep = tier::TierReport {
            tier: t.label(),
            ..Default::default()
        };
        let v = (t.label() == "local").then(|| verified.clone());
        let v = v.unwrap_or_default();
        let plan = t
            .ready()
            .and_then(|()| tier::prune(t, host, &v, now, &tz, dry_run, &mut rep));
        let mut error = plan.as_ref().err().map(|e| e.to_string());
        let mut safety = Vec::new();
        if t.label() == "local" && plan.is_ok() {
            let keep = config.retention.keep_safety;
            match crate::store::safety::prune(dir, host, keep, dry_run) {
                Ok(p) => {
                    safety = p
                        .into_iter()
                        .map(|(f, decision)| Pruned {
                            archive: f.file,
                            decision,
                        })
                        .collect()
                }
                Err(e) => error = Some(format!("restore-safety archives: {e}")),
            }
        }
        TierPrune {
            tier: t.label(),
            policy: t.policy(),
            safety,
            error,
            plan: plan.ok().map(|p| p.into_iter().map(pruned).collect()),
        }
    });
    let mut report = PruneReport {
        tiers: tiers.collect(),
        dry_run,
        host: host.to_string(),
        log_error: None,
    };
    if !dry_run {
        let log = config.log_dir.join("prune.log");
        let logged = log_removals(&log, &report, now);
        report.log_error = logged.err().map(|e| format!("{}: {e}", log.display()));
    }
    Ok(report)
}

/// `prune`'s run log: a line per archive it removed, appended to `<log_dir>/prune.log` (0600, never through a
/// symlink). Nothing removed, nothing written.
fn log_removals(log: &Path, report: &PruneReport, now: Timestamp) -> std::io::Result<()> {
    let removed = report.tiers.iter().flat_map(|t| {
        let all = t.plan.iter().flatten().chain(&t.safety);
        all.filter(|p| p.decision.is_remove())
            .map(move |p| format!("{now} tier {}: removed {}\n", t.tier, p.archive))
    });
    let lines: String = removed.collect();
    if lines.is_empty() {
        return Ok(());
    }
    crate::fsx::append_private(log, lines.as_bytes())
}
