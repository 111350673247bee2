//! After a backup run: the `/start` pings at its beginning; at its end the run's report, sent to the channels
//! that want it, and the Prometheus textfile.
//!
//! The lifecycle follows rustic's hooks: [`Hooks::begin`] before the backup (the `/start` pings go out on
//! their own threads, so a slow ping service never delays the backup), `Hooks::finish_*` after it, whatever
//! its outcome. Nothing here changes the backup's exit code: a failed delivery is logged (redacted), shown in
//! `--json`, and counted in `proxkeep_notify_failures`.

use crate::app::backup::{self, BackupError, BackupReport};
use crate::config::{Config, NotifyConfig};
use crate::host::{HostFacts, Root};
use crate::notify::report::{ArchiveInfo, Report, RunInfo, Status, TierInfo};
use crate::notify::{self, Delivery};
use crate::output::Log;
use jiff::Timestamp;
use std::thread::JoinHandle;

/// Before and after one backup run.
pub struct Hooks {
    started: Timestamp,
    start_pings: Vec<JoinHandle<Delivery>>,
}

impl Hooks {
    /// The run starts: note the time and send every `/start` ping in the background.
    pub fn begin(config: &Config) -> Hooks {
        Hooks {
            started: Timestamp::now(),
            start_pings: notify::start_pings(&config.notify),
        }
    }

    /// `proxkeep backup` ended with `outcome`. Host and role come from the backup report, or (for a run that
    /// failed early) from the host itself. Returns every delivery, start pings included.
    pub fn finish_backup(
        self,
        config: &Config,
        root: &Root,
        log: &Log,
        outcome: &Result<BackupReport, BackupError>,
    ) -> Vec<Delivery> {
        let report = match outcome {
            Ok(r) => backup_report(r, &self.run(r.host.clone(), r.role.clone())),
            Err(e) => error_report(e, &self.run_on(root)),
        };
        self.finish(config, log, report)
    }

    /// A run stopped by its configuration (exit 2); `config` is the part of it that could be read
    /// ([`crate::config::load_reporting_only`]).
    pub fn finish_config_error(
        self,
        config: &Config,
        root: &Root,
        log: &Log,
        message: &str,
    ) -> Vec<Delivery> {
        let report = Report::config_error(message, &self.run_on(root));
        self.finish(config, log, report)
    }

    fn run(&self, host: String, role: String) -> RunInfo {
        RunInfo {
            host,
            role,
            started: self.started,
            ended: Timestamp::now(),
        }
    }

    fn run_on(&self, root: &Root) -> RunInfo {
        let facts = HostFacts::detect(root);
        self.run(facts.hostname, facts.role.to_string())
    }

    /// Send `report`, write the metrics; appends to the run log when there is one.
    fn finish(self, config: &Config, log: &Log, mut report: Report) -> Vec<Delivery> {
        let reattached = log.reattach();
        report.redact(log.redactor());
        let mut out: Vec<Delivery> = self
            .start_pings
            .into_iter()
            .filter_map(|h| h.join().ok())
            .map(|d| notify::record(log, d))
            .collect();
        out.extend(notify::send_report(&config.notify, log, &report));
        if let Some(path) = &config.metrics.textfile {
            let failures = failures_by_channel(&config.notify, &out);
            let shown = path.display();
            match crate::metrics::write(path, &report, &failures) {
                Ok(()) => log.debug(&format!("metrics written to {shown}")),
                Err(e) => log.warn(&format!("cannot write the metrics textfile {shown}: {e}")),
            }
        }
        if reattached {
            log.detach();
        }
        out
    }
}

/// Failed deliveries per configured channel (0 for those that worked or were not due).
fn failures_by_channel(n: &NotifyConfig, d: &[Delivery]) -> Vec<(String, u32)> {
    n.channel_names()
        .into_iter()
        .map(|name| {
            let failed = d.iter().filter(|x| x.channel == name && !x.ok).count() as u32;
            (name, failed)
        })
        .collect()
}

/// The report of a run that wrote and verified an archive (status ok or warning).
pub fn backup_report(r: &BackupReport, run: &RunInfo) -> Report {
    let status = if r.warnings.is_empty() {
        Status::Ok
    } else {
        Status::Warning
    };
    let mut rep = Report::new(run, status, r.exit_code);
    rep.duration_ms = r.duration_ms;
    rep.archive = r.archive.as_ref().map(|p| ArchiveInfo {
        name: p.file_name().unwrap_or_default().to_string_lossy().into(),
        path: p.display().to_string(),
        size: r.size,
        sha256: r.sha256.clone(),
        compression: r.compression.clone(),
        level: r.level,
        encryption: r.encryption.clone(),
        entries: r.entries,
        files: r.files,
        bytes: r.bytes,
    });
    rep.set_tiers(
        r.tiers
            .iter()
            .map(|t| TierInfo {
                tier: t.tier.clone(),
                ok: t.ok && t.error.is_none(),
                error: t.error.clone(),
                copied: t.copied.len(),
                removed: t.removed.len(),
                damaged: t.damaged.len(),
                archives: t.archives,
                bytes: t.bytes,
                last_copy: t.last_copy,
            })
            .collect(),
    );
    rep.set_problems(r.warnings.iter().map(backup::warning_text).collect());
    rep.log_file = r.log_file.as_ref().map(|p| p.display().to_string());
    rep
}

/// The report of a run that ended without an archive: preflight (4), lock (5), failure (1), interrupted
/// (130), invalid (2).
pub fn error_report(e: &BackupError, run: &RunInfo) -> Report {
    let problems = match e {
        BackupError::Preflight(checks) => checks
            .iter()
            .filter(|c| !c.ok)
            .map(|c| c.line().replace("\n    ", " "))
            .collect(),
        other => vec![other.to_string()],
    };
    Report::failed(run, e.exit_code(), e.to_string(), problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::format::Warning;
    use crate::config::Event;
    use crate::notify::report::{MAX_PROBLEMS, SCHEMA, esc};
    use crate::output::Redactor;
    use crate::store::tier::TierReport;

    fn run() -> RunInfo {
        RunInfo {
            host: "pve1".into(),
            role: "pve".into(),
            started: Timestamp::from_second(1_767_225_600).unwrap(),
            ended: Timestamp::from_second(1_767_225_612).unwrap(),
        }
    }

    fn a_backup(warnings: usize) -> BackupReport {
        BackupReport {
            status: if warnings == 0 { "ok" } else { "warning" },
            exit_code: if warnings == 0 { 0 } else { 3 },
            dry_run: false,
            host: "pve1".into(),
            role: "pve".into(),
            archive: Some("/b/pve1-pve-20260101T000000Z.tar.zst".into()),
            sha256: Some("ab".repeat(32)),
            size: 2048,
            compression: "zstd".into(),
            level: 3,
            encryption: None,
            entries: 10,
            files: 7,
            dirs: 2,
            symlinks: 1,
            bytes: 4096,
            commands: 0,
            pve_tree_from_db: false,
            duration_ms: 1500,
            categories: vec![],
            excluded: vec![],
            checks: vec![],
            warnings: (0..warnings)
                .map(|i| Warning {
                    path: Some(format!("/etc/f{i}")),
                    message: format!("problem {i} with s3cr3t-token"),
                })
                .collect(),
            log_file: Some("/var/log/proxkeep/x.log".into()),
            tiers: vec![
                TierReport {
                    tier: "local".into(),
                    ok: true,
                    removed: vec!["a".into(), "b".into()],
                    archives: 3,
                    bytes: 6000,
                    ..Default::default()
                },
                TierReport {
                    tier: "secondary:nas".into(),
                    ok: false,
                    error: Some("/mnt/nas is not a mount point".into()),
                    ..Default::default()
                },
            ],
        }
    }

    #[test]
    fn warning_report_caps_problems_and_redacts() {
        let mut r = backup_report(&a_backup(14), &run());
        let mut red = Redactor::default();
        red.add("s3cr3t-token");
        r.redact(&red);
        assert_eq!(r.status, Status::Warning);
        assert_eq!(r.event, Event::Warning);
        assert_eq!(r.problems.len(), MAX_PROBLEMS);
        assert_eq!(r.problems_total, 14);
        assert_eq!(r.retention.removed, 2);
        assert_eq!(r.subject(), "[proxkeep] pve1: backup warning");
        let text = r.text();
        assert!(!text.contains("s3cr3t-token"), "{text}");
        assert!(text.contains("warnings (10 of 14)"), "{text}");
        assert!(text.contains("secondary:nas: FAILED: /mnt/nas is not a mount point"));
        assert!(text.contains("local: ok, 0 copied, 2 removed by retention"));
        assert!(text.contains("pve1-pve-20260101T000000Z.tar.zst"));
        let html = r.html();
        assert!(html.contains("<h3>Warnings (10 of 14)</h3>"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["schema"], SCHEMA);
        assert_eq!(json["archive"]["files"], 7);
        assert_eq!(json["tiers"][1]["ok"], false);
    }

    #[test]
    fn an_encrypted_archive_says_so_in_every_rendering() {
        let mut b = a_backup(0);
        b.encryption = Some("age: 1 recipient (x25519)".into());
        let r = backup_report(&b, &run());
        assert!(
            r.text().contains(", age: 1 recipient (x25519))"),
            "{}",
            r.text()
        );
        assert!(r.html().contains("age: 1 recipient (x25519)"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["archive"]["encryption"], "age: 1 recipient (x25519)");
        let plain = backup_report(&a_backup(0), &run());
        assert!(
            serde_json::to_value(&plain).unwrap()["archive"]
                .get("encryption")
                .is_none()
        );
    }

    #[test]
    fn failure_reports() {
        let e = BackupError::Failed("disk on fire".into());
        let r = error_report(&e, &run());
        assert_eq!(r.status, Status::Failed);
        assert_eq!(r.exit_code, 1);
        assert_eq!(r.duration_ms, 12_000);
        assert_eq!(r.subject(), "[proxkeep] pve1: backup FAILED");
        assert!(
            r.text()
                .contains("error        backup failed: disk on fire")
        );
        let c = Report::config_error("/etc/proxkeep/proxkeep.toml:3:1: unknown key", &run());
        assert_eq!(c.exit_code, 2);
        assert_eq!(
            Report::sample(&run()).subject(),
            "[proxkeep] pve1: backup ok (test)"
        );
    }

    #[test]
    fn html_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        let mut r = error_report(&BackupError::Failed("<script>".into()), &run());
        r.host = "h<1>".into();
        let html = r.html();
        assert!(
            !html.contains("<script>") && !html.contains("h<1>"),
            "{html}"
        );
    }
}
