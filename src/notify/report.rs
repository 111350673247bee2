//! The one report of a run, built once from the backup's outcome and rendered per channel (text, HTML, JSON,
//! short title). It is redacted when built, so no renderer can leak a secret that reached a warning or error.

use crate::config::Event;
use crate::output::Redactor;
use crate::units::format_size;
use jiff::Timestamp;
use serde::Serialize;
use std::fmt::Write as _;

/// Version of the webhook JSON document (docs/monitoring.md); bump on incompatible changes.
pub const SCHEMA: &str = "proxkeep.report/1";
/// Warnings and errors carried by the report; the rest are counted.
pub const MAX_PROBLEMS: usize = 10;

/// How a run went; the discriminant is `proxkeep_run_status` and indexes the per-status tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok = 0,
    Warning = 1,
    Failed = 2,
}

impl Status {
    pub fn event(self) -> Event {
        [Event::Success, Event::Warning, Event::Failure][self as usize]
    }
    /// As the subject line spells it: a failure must stand out in a list of nightly mails.
    pub fn word(self) -> &'static str {
        ["ok", "warning", "FAILED"][self as usize]
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
        let enc: String = self.encryption.iter().map(|e| format!(", {e}")).collect();
        let (size, level) = (format_size(self.size), self.level);
        format!("{size} ({} {level}{enc})", self.compression)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
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
    /// What ran: `backup`, or `drill` (a restore rehearsal, `proxkeep drill`).
    pub run: &'static str,
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
    /// The fields every report has; the constructors fill in the rest.
    pub fn new(run: &RunInfo, status: Status, exit_code: i32) -> Report {
        Report {
            schema: SCHEMA,
            run: "backup",
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

    /// A run that ended without an archive, with `error` and the `problems` behind it.
    pub fn failed(run: &RunInfo, exit_code: i32, error: String, problems: Vec<String>) -> Report {
        let mut rep = Report::new(run, Status::Failed, exit_code);
        rep.error = Some(error);
        rep.set_problems(problems);
        rep
    }

    /// Keeps the first [`MAX_PROBLEMS`] and counts all.
    pub fn set_problems(&mut self, all: Vec<String>) {
        self.problems_total = all.len();
        self.problems = all.into_iter().take(MAX_PROBLEMS).collect();
    }

    /// The tiers, and the retention over all of them.
    pub fn set_tiers(&mut self, tiers: Vec<TierInfo>) {
        self.retention = RetentionInfo {
            removed: tiers.iter().map(|t| t.removed).sum(),
            damaged: tiers.iter().map(|t| t.damaged).sum(),
        };
        self.tiers = tiers;
    }

    /// The config file did not load (exit 2): reported to the channels its valid part names.
    pub fn config_error(message: &str, run: &RunInfo) -> Report {
        let error = format!("configuration error: {message}");
        Report::failed(run, crate::exit::USAGE, error.clone(), vec![error])
    }

    /// What `proxkeep notify test` sends: plausible values in every field, marked as a test.
    pub fn sample(run: &RunInfo) -> Report {
        let mut rep = Report::new(run, Status::Ok, 0);
        rep.test = true;
        let time = run.started.strftime("%Y%m%dT%H%M%SZ");
        let name = format!("{}-{}-{time}.tar.zst", run.host, run.role);
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
        rep.set_tiers(vec![TierInfo {
            tier: "local".into(),
            ok: true,
            removed: 1,
            archives: 7,
            bytes: 8_641_969,
            ..TierInfo::default()
        }]);
        rep.set_problems(vec![
            "this is a test message from `proxkeep notify test`: no backup ran".into(),
        ]);
        rep
    }

    /// Replace every configured secret in every text field.
    pub fn redact(&mut self, r: &Redactor) {
        let fields = self.error.iter_mut().chain(&mut self.problems);
        let tiers = self.tiers.iter_mut().filter_map(|t| t.error.as_mut());
        let archive = self.archive.iter_mut().map(|a| &mut a.path);
        for s in fields.chain(tiers).chain(archive) {
            *s = r.apply(s);
        }
    }

    /// `[proxkeep] <host>: backup ok|warning|FAILED` (the subject line; `drill` for a drill).
    pub fn subject(&self) -> String {
        format!("[proxkeep] {}", self.title())
    }

    /// Short title for push channels (Gotify, ntfy).
    pub fn title(&self) -> String {
        let test = if self.test { " (test)" } else { "" };
        format!("{}: {} {}{test}", self.host, self.run, self.status.word())
    }

    fn seconds(&self) -> String {
        format!("{:.1} s", self.duration_ms as f64 / 1000.0)
    }

    /// One line: what a phone's lock screen shows.
    pub fn headline(&self) -> String {
        let (host, word, code) = (&self.host, self.status.word(), self.exit_code);
        let head = format!("{host}: {} {word} (exit {code})", self.run);
        match (&self.archive, &self.error) {
            (_, Some(e)) => format!("{head}: {e}"),
            (Some(a), None) => {
                let (size, secs) = (format_size(a.size), self.seconds());
                format!("{head}: {} ({size}), {} files, {secs}", a.name, a.files)
            }
            (None, None) => head,
        }
    }

    /// The facts both bodies show, in the text body's order.
    fn parts(&self) -> Vec<Part> {
        let word = self.status.word();
        let mut v = vec![
            Part::Row("status", format!("{word} (exit {})", self.exit_code)),
            Part::Row("host", format!("{} ({})", self.host, self.role)),
        ];
        if let Some(a) = &self.archive {
            let data = format_size(a.bytes);
            let files = format!("{} ({} entries, {data} of file data)", a.files, a.entries);
            v.extend([
                Part::Code("archive", a.name.clone()),
                Part::Row("size", a.size_line()),
                Part::Row("files", files),
            ]);
        }
        v.extend(self.error.iter().map(|e| Part::Row("error", e.clone())));
        v.push(Part::Row("duration", self.seconds()));
        if !self.tiers.is_empty() {
            let tiers = self.tiers.iter().map(tier_line).collect();
            let (removed, damaged) = (self.retention.removed, self.retention.damaged);
            v.push(Part::List("tiers".into(), tiers, "  "));
            let retention = format!("{removed} removed, {damaged} damaged kept");
            v.push(Part::Row("retention", retention));
        }
        if !self.problems.is_empty() {
            let label = ["warnings", "warnings", "errors"][self.status as usize];
            let (n, total) = (self.problems.len(), self.problems_total);
            let heading = format!("{label} ({n} of {total})");
            v.push(Part::List(heading, self.problems.clone(), "  - "));
        }
        v.extend(self.log_file.iter().map(|l| Part::Code("log", l.clone())));
        v.push(Part::Row("proxkeep", self.version.clone()));
        v
    }

    /// Plain-text body: mail, Telegram, ntfy, Gotify, Discord/Slack.
    pub fn text(&self) -> String {
        let mut s = format!("{}\n", self.headline());
        if self.test {
            s.push_str("(test message from `proxkeep notify test`: no backup ran)\n");
        }
        s.push('\n');
        for part in self.parts() {
            match part {
                Part::Row(k, v) | Part::Code(k, v) => {
                    let _ = writeln!(s, "{k:<13}{v}");
                }
                Part::List(heading, items, bullet) => {
                    let _ = writeln!(s, "{heading}");
                    for i in items {
                        let _ = writeln!(s, "{bullet}{i}");
                    }
                }
            }
        }
        s
    }

    /// HTML body of the mail: the same facts as the text, the rows in a table and the lists below it.
    pub fn html(&self) -> String {
        let colour = ["#1a7f37", "#9a6700", "#cf222e"][self.status as usize];
        let mut s = format!(
            "<!DOCTYPE html>\n<html><body style=\"font-family:sans-serif\">\n<h2 style=\"color:{colour}\">{}</h2>\n",
            esc(&self.title())
        );
        if self.test {
            s.push_str("<p><em>Test message from <code>proxkeep notify test</code>: no backup ran.</em></p>\n");
        }
        s.push_str("<table cellpadding=\"3\">\n");
        let parts = self.parts();
        for part in &parts {
            let (k, v) = match part {
                Part::Row(k, v) => (k, esc(v)),
                Part::Code(k, v) => (k, format!("<code>{}</code>", esc(v))),
                Part::List(..) => continue,
            };
            let _ = writeln!(s, "<tr><th align=\"left\">{k}</th><td>{v}</td></tr>");
        }
        s.push_str("</table>\n");
        for part in &parts {
            if let Part::List(heading, items, _) = part {
                let (first, rest) = heading.split_at(1);
                let _ = writeln!(s, "<h3>{}{}</h3>\n<ul>", first.to_uppercase(), esc(rest));
                for i in items {
                    let _ = writeln!(s, "<li>{}</li>", esc(i));
                }
                s.push_str("</ul>\n");
            }
        }
        s.push_str("</body></html>\n");
        s
    }
}

/// One fact of the bodies: a row (in HTML, as `<code>` for a `Code`), or a headed list.
enum Part {
    Row(&'static str, String),
    Code(&'static str, String),
    List(String, Vec<String>, &'static str),
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
    // `&` first: the other replacements bring their own.
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}
