//! The one report of a run, built once from the backup's outcome and rendered per channel (text, HTML, JSON,
//! short title). It is redacted when built, so no renderer can leak a secret that reached a warning or error.

use crate::app::backup::{self, BackupError, BackupReport};
use crate::config::{Event, format_size};
use crate::output::Redactor;
use jiff::Timestamp;
use serde::Serialize;
use std::fmt::Write as _;

/// Version of the webhook JSON document (docs/monitoring.md); bump on incompatible changes.
pub const SCHEMA: &str = "proxkeep.report/1";
/// Warnings and errors carried by the report; the rest are counted.
pub const MAX_PROBLEMS: usize = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Failed,
}

impl Status {
    pub fn event(self) -> Event {
        match self {
            Status::Ok => Event::Success,
            Status::Warning => Event::Warning,
            Status::Failed => Event::Failure,
        }
    }
    /// As the subject line spells it: a failure must stand out in a list of nightly mails.
    pub fn word(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Failed => "FAILED",
        }
    }
    /// `proxkeep_run_status`: 0 ok, 1 warning, 2 failed.
    pub fn code(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Failed => 2,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ArchiveInfo {
    pub name: String,
    pub path: String,
    pub size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub compression: String,
    pub level: i32,
    /// How the archive is encrypted (`age: 1 recipient (x25519)`); absent for a plain archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    pub entries: u64,
    pub files: u64,
    /// Bytes of file data before compression.
    pub bytes: u64,
}

impl ArchiveInfo {
    /// `1.2 MiB (zstd 3)`, `1.2 MiB (zstd 3, age: 1 recipient (x25519))`.
    fn size_line(&self) -> String {
        let enc = self
            .encryption
            .as_ref()
            .map(|e| format!(", {e}"))
            .unwrap_or_default();
        format!(
            "{} ({} {}{enc})",
            format_size(self.size),
            self.compression,
            self.level
        )
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TierInfo {
    /// `local`, `secondary:NAME` or `remote:NAME`.
    pub tier: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub copied: usize,
    /// Removed by retention in this run.
    pub removed: usize,
    /// Kept because they failed verification.
    pub damaged: usize,
    pub archives: u64,
    pub bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_copy: Option<i64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RetentionInfo {
    /// Archives removed by retention over all tiers.
    pub removed: usize,
    /// Archives kept over all tiers because they failed verification.
    pub damaged: usize,
}

/// Everything a channel may say about a run. Serialized as the webhook's `json` body.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub status: Status,
    /// `success`, `warning` or `failure`: the `on` value that selects this report.
    pub event: Event,
    pub exit_code: i32,
    pub host: String,
    pub role: String,
    pub version: String,
    /// Unix seconds.
    pub started: i64,
    pub ended: i64,
    pub duration_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<ArchiveInfo>,
    /// Why the run failed (failed runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub tiers: Vec<TierInfo>,
    pub retention: RetentionInfo,
    /// The first warnings and errors (at most [`MAX_PROBLEMS`]).
    pub problems: Vec<String>,
    pub problems_total: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_file: Option<String>,
    /// Sent by `proxkeep notify test`: not a real run.
    pub test: bool,
}

/// Who ran, and when: known even when the backup never started.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub host: String,
    pub role: String,
    pub started: Timestamp,
    pub ended: Timestamp,
}

impl Report {
    fn base(run: &RunInfo, status: Status, exit_code: i32) -> Report {
        Report {
            schema: SCHEMA,
            status,
            event: status.event(),
            exit_code,
            host: run.host.clone(),
            role: run.role.clone(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started: run.started.as_second(),
            ended: run.ended.as_second(),
            duration_ms: run.ended.duration_since(run.started).as_millis().max(0) as u64,
            archive: None,
            error: None,
            tiers: Vec::new(),
            retention: RetentionInfo::default(),
            problems: Vec::new(),
            problems_total: 0,
            log_file: None,
            test: false,
        }
    }

    fn set_problems(&mut self, all: Vec<String>) {
        self.problems_total = all.len();
        self.problems = all.into_iter().take(MAX_PROBLEMS).collect();
    }

    /// A run that wrote and verified an archive (status ok or warning).
    pub fn from_backup(r: &BackupReport, run: &RunInfo) -> Report {
        let status = if r.warnings.is_empty() {
            Status::Ok
        } else {
            Status::Warning
        };
        let mut rep = Report::base(run, status, r.exit_code);
        rep.host = r.host.clone();
        rep.role = r.role.clone();
        rep.duration_ms = r.duration_ms;
        rep.archive = r.archive.as_ref().map(|p| ArchiveInfo {
            name: p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
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
        rep.tiers = r
            .tiers
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
            .collect();
        rep.retention = RetentionInfo {
            removed: rep.tiers.iter().map(|t| t.removed).sum(),
            damaged: rep.tiers.iter().map(|t| t.damaged).sum(),
        };
        rep.set_problems(r.warnings.iter().map(backup::warning_text).collect());
        rep.log_file = r.log_file.as_ref().map(|p| p.display().to_string());
        rep
    }

    /// A run that ended without an archive: preflight (4), lock (5), failure (1), interrupted (130), invalid (2).
    pub fn from_error(e: &BackupError, run: &RunInfo) -> Report {
        let mut rep = Report::base(run, Status::Failed, e.exit_code());
        rep.error = Some(e.to_string());
        let problems = match e {
            BackupError::Preflight(checks) => checks
                .iter()
                .filter(|c| !c.ok)
                .map(|c| c.line().replace("\n    ", " "))
                .collect(),
            other => vec![other.to_string()],
        };
        rep.set_problems(problems);
        rep
    }

    /// The config file did not load (exit 2): reported to the channels its valid part names.
    pub fn config_error(message: &str, run: &RunInfo) -> Report {
        let mut rep = Report::base(run, Status::Failed, crate::exit::USAGE);
        rep.error = Some(format!("configuration error: {message}"));
        rep.set_problems(vec![format!("configuration error: {message}")]);
        rep
    }

    /// What `proxkeep notify test` sends: plausible values in every field, marked as a test.
    pub fn sample(run: &RunInfo) -> Report {
        let mut rep = Report::base(run, Status::Ok, 0);
        rep.test = true;
        let name = format!(
            "{}-{}-{}.tar.zst",
            run.host,
            run.role,
            run.started.strftime("%Y%m%dT%H%M%SZ")
        );
        rep.archive = Some(ArchiveInfo {
            path: format!("/var/backups/proxkeep/{name}"),
            name,
            size: 1_234_567,
            sha256: None,
            compression: "zstd".into(),
            level: 3,
            encryption: None,
            entries: 512,
            files: 420,
            bytes: 8_765_432,
        });
        rep.tiers = vec![TierInfo {
            tier: "local".into(),
            ok: true,
            error: None,
            copied: 0,
            removed: 1,
            damaged: 0,
            archives: 7,
            bytes: 8_641_969,
            last_copy: None,
        }];
        rep.retention = RetentionInfo {
            removed: 1,
            damaged: 0,
        };
        rep.set_problems(vec![
            "this is a test message from `proxkeep notify test`: no backup ran".into(),
        ]);
        rep
    }

    /// Replace every configured secret in every text field.
    pub fn redact(&mut self, r: &Redactor) {
        let f = |s: &mut String| *s = r.apply(s);
        if let Some(e) = &mut self.error {
            f(e);
        }
        for p in &mut self.problems {
            f(p);
        }
        for t in &mut self.tiers {
            if let Some(e) = &mut t.error {
                f(e);
            }
        }
        if let Some(a) = &mut self.archive {
            f(&mut a.path);
        }
    }

    /// `[proxkeep] <host>: backup ok|warning|FAILED` (the subject line).
    pub fn subject(&self) -> String {
        let test = if self.test { " (test)" } else { "" };
        format!(
            "[proxkeep] {}: backup {}{test}",
            self.host,
            self.status.word()
        )
    }

    /// Short title for push channels (Gotify, ntfy).
    pub fn title(&self) -> String {
        let test = if self.test { " (test)" } else { "" };
        format!("{}: backup {}{test}", self.host, self.status.word())
    }

    /// One line: what a phone's lock screen shows.
    pub fn headline(&self) -> String {
        match (&self.archive, &self.error) {
            (_, Some(e)) => format!(
                "{}: backup FAILED (exit {}): {e}",
                self.host, self.exit_code
            ),
            (Some(a), None) => format!(
                "{}: backup {} (exit {}): {} ({}), {} files, {:.1} s",
                self.host,
                self.status.word(),
                self.exit_code,
                a.name,
                format_size(a.size),
                a.files,
                self.duration_ms as f64 / 1000.0
            ),
            (None, None) => format!(
                "{}: backup {} (exit {})",
                self.host,
                self.status.word(),
                self.exit_code
            ),
        }
    }

    /// Plain-text body: mail, Telegram, ntfy, Gotify, Discord/Slack.
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "{}", self.headline());
        if self.test {
            let _ = writeln!(
                s,
                "(test message from `proxkeep notify test`: no backup ran)"
            );
        }
        let _ = writeln!(s);
        let _ = writeln!(
            s,
            "status       {} (exit {})",
            self.status.word(),
            self.exit_code
        );
        let _ = writeln!(s, "host         {} ({})", self.host, self.role);
        if let Some(a) = &self.archive {
            let _ = writeln!(s, "archive      {}", a.name);
            let _ = writeln!(s, "size         {}", a.size_line());
            let _ = writeln!(
                s,
                "files        {} ({} entries, {} of file data)",
                a.files,
                a.entries,
                format_size(a.bytes)
            );
        }
        if let Some(e) = &self.error {
            let _ = writeln!(s, "error        {e}");
        }
        let _ = writeln!(s, "duration     {:.1} s", self.duration_ms as f64 / 1000.0);
        if !self.tiers.is_empty() {
            let _ = writeln!(s, "tiers");
            for t in &self.tiers {
                let _ = writeln!(s, "  {}", tier_line(t));
            }
            let _ = writeln!(
                s,
                "retention    {} removed, {} damaged kept",
                self.retention.removed, self.retention.damaged
            );
        }
        if !self.problems.is_empty() {
            let label = if self.status == Status::Failed {
                "errors"
            } else {
                "warnings"
            };
            let _ = writeln!(
                s,
                "{label} ({} of {})",
                self.problems.len(),
                self.problems_total
            );
            for p in &self.problems {
                let _ = writeln!(s, "  - {p}");
            }
        }
        if let Some(l) = &self.log_file {
            let _ = writeln!(s, "log          {l}");
        }
        let _ = writeln!(s, "proxkeep     {}", self.version);
        s
    }

    /// HTML body of the mail (the text part carries the same facts).
    pub fn html(&self) -> String {
        let colour = match self.status {
            Status::Ok => "#1a7f37",
            Status::Warning => "#9a6700",
            Status::Failed => "#cf222e",
        };
        let mut s = String::new();
        let _ = write!(
            s,
            "<!DOCTYPE html>\n<html><body style=\"font-family:sans-serif\">\n<h2 style=\"color:{colour}\">{}</h2>\n",
            esc(&self.title())
        );
        if self.test {
            s.push_str("<p><em>Test message from <code>proxkeep notify test</code>: no backup ran.</em></p>\n");
        }
        s.push_str("<table cellpadding=\"3\">\n");
        let mut row = |k: &str, v: String| {
            let _ = writeln!(
                s,
                "<tr><th align=\"left\">{}</th><td>{}</td></tr>",
                esc(k),
                v
            );
        };
        row(
            "status",
            format!("{} (exit {})", esc(self.status.word()), self.exit_code),
        );
        row("host", format!("{} ({})", esc(&self.host), esc(&self.role)));
        if let Some(a) = &self.archive {
            row("archive", format!("<code>{}</code>", esc(&a.name)));
            row("size", esc(&a.size_line()));
            row(
                "files",
                esc(&format!(
                    "{} ({} entries, {} of file data)",
                    a.files,
                    a.entries,
                    format_size(a.bytes)
                )),
            );
        }
        if let Some(e) = &self.error {
            row("error", esc(e));
        }
        row(
            "duration",
            format!("{:.1} s", self.duration_ms as f64 / 1000.0),
        );
        if !self.tiers.is_empty() {
            row(
                "retention",
                esc(&format!(
                    "{} removed, {} damaged kept",
                    self.retention.removed, self.retention.damaged
                )),
            );
        }
        if let Some(l) = &self.log_file {
            row("log", format!("<code>{}</code>", esc(l)));
        }
        row("proxkeep", esc(&self.version));
        s.push_str("</table>\n");
        if !self.tiers.is_empty() {
            s.push_str("<h3>Tiers</h3>\n<ul>\n");
            for t in &self.tiers {
                let _ = writeln!(s, "<li>{}</li>", esc(&tier_line(t)));
            }
            s.push_str("</ul>\n");
        }
        if !self.problems.is_empty() {
            let _ = writeln!(
                s,
                "<h3>{} ({} of {})</h3>\n<ul>",
                if self.status == Status::Failed {
                    "Errors"
                } else {
                    "Warnings"
                },
                self.problems.len(),
                self.problems_total
            );
            for p in &self.problems {
                let _ = writeln!(s, "<li>{}</li>", esc(p));
            }
            s.push_str("</ul>\n");
        }
        s.push_str("</body></html>\n");
        s
    }
}

fn tier_line(t: &TierInfo) -> String {
    match &t.error {
        Some(e) => format!("{}: FAILED: {e}", t.tier),
        None => format!(
            "{}: ok, {} copied, {} removed by retention, {} damaged; {} archives, {}",
            t.tier,
            t.copied,
            t.removed,
            t.damaged,
            t.archives,
            format_size(t.bytes)
        ),
    }
}

/// HTML escaping for text and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::format::Warning;
    use crate::tier::TierReport;

    fn run() -> RunInfo {
        RunInfo {
            host: "pve1".into(),
            role: "pve".into(),
            started: Timestamp::from_second(1_767_225_600).unwrap(),
            ended: Timestamp::from_second(1_767_225_612).unwrap(),
        }
    }

    fn backup_report(warnings: usize) -> BackupReport {
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
        let mut r = Report::from_backup(&backup_report(14), &run());
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
        let mut b = backup_report(0);
        b.encryption = Some("age: 1 recipient (x25519)".into());
        let r = Report::from_backup(&b, &run());
        assert!(
            r.text().contains(", age: 1 recipient (x25519))"),
            "{}",
            r.text()
        );
        assert!(r.html().contains("age: 1 recipient (x25519)"));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(json["archive"]["encryption"], "age: 1 recipient (x25519)");
        let plain = Report::from_backup(&backup_report(0), &run());
        assert!(
            serde_json::to_value(&plain).unwrap()["archive"]
                .get("encryption")
                .is_none()
        );
    }

    #[test]
    fn failure_reports() {
        let e = BackupError::Failed("disk on fire".into());
        let r = Report::from_error(&e, &run());
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
        let mut r = Report::from_error(&BackupError::Failed("<script>".into()), &run());
        r.host = "h<1>".into();
        let html = r.html();
        assert!(
            !html.contains("<script>") && !html.contains("h<1>"),
            "{html}"
        );
    }
}
