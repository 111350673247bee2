//! Prometheus textfile for node_exporter's textfile collector, written atomically after every run (failed
//! ones included). Hand-written: a dozen gauges do not need a registry, and the text format is small
//! (<https://prometheus.io/docs/instrumenting/exposition_formats/>). Every metric is documented in
//! docs/monitoring.md.
//!
//! Some values outlive a run: the previous file is read back so that `proxkeep_last_success_timestamp_seconds`
//! and the per-tier gauges of tiers this run did not reach keep their last known value.

use crate::notify::report::{Report, Status};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::path::Path;

/// Values carried over from the previous textfile.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Previous {
    pub last_success: Option<f64>,
    /// tier label → metric name → value
    pub tiers: BTreeMap<String, BTreeMap<String, f64>>,
    /// The `proxkeep_drill_*` families as they were (a backup run keeps them: only a drill writes them).
    pub drill: Vec<String>,
}

/// The families `proxkeep drill` writes ([`render_drill`]) share the textfile with the backup's.
const DRILL_PREFIX: &str = "proxkeep_drill_";

/// The metric a textfile line is about: the name of a `# HELP` / `# TYPE` line or of a sample.
fn metric_of(line: &str) -> &str {
    let rest = (line
        .strip_prefix("# HELP ")
        .or(line.strip_prefix("# TYPE ")))
    .unwrap_or(line);
    rest.split(['{', ' ']).next().unwrap_or_default()
}

/// The per-tier gauges (name, help), carried over from the previous file for tiers a run did not reach.
const TIER_GAUGES: [(&str, &str); 4] = [
    (
        "proxkeep_tier_archives",
        "This host's archives on the tier after the last run that reached it.",
    ),
    (
        "proxkeep_tier_bytes",
        "Bytes of this host's archives on the tier after the last run that reached it.",
    ),
    (
        "proxkeep_tier_last_copy_timestamp_seconds",
        "Unix time an archive was last copied to the tier (kept across runs).",
    ),
    (
        "proxkeep_tier_ok",
        "1 if the tier took part in the last run without error, 0 if it failed.",
    ),
];

/// Escape a label value: backslash, double quote and newline (the text format's only escapes).
pub fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

/// `{name="value",...}`, the values escaped.
fn labels(pairs: &[(&str, &str)]) -> String {
    let inner: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn unescape_label(v: &str) -> String {
    let mut out = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.extend(chars.next().map(|o| if o == 'n' { '\n' } else { o })),
            c => out.push(c),
        }
    }
    out
}

/// Read back what a previous [`render`] wrote (anything unparsable is ignored: it is only a memory).
pub fn parse_previous(text: &str) -> Previous {
    let mut p = Previous::default();
    let samples = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series, value.parse::<f64>().ok()?))
        });
    p.drill = text
        .lines()
        .filter(|l| metric_of(l).starts_with(DRILL_PREFIX))
        .map(String::from)
        .collect();
    for (series, value) in samples {
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let labels = labels.strip_suffix('}').unwrap_or(labels);
        if name == "proxkeep_last_success_timestamp_seconds" && value > 0.0 {
            p.last_success = Some(value);
        } else if TIER_GAUGES.iter().any(|(n, _)| *n == name) {
            // Our own files carry exactly one label here: tier="…".
            if let Some(v) = labels
                .strip_prefix("tier=\"")
                .and_then(|s| s.strip_suffix('"'))
            {
                p.tiers
                    .entry(unescape_label(v))
                    .or_default()
                    .insert(name.to_string(), value);
            }
        }
    }
    p
}

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, help: &str, samples: &[(String, String)]) {
        let _ = writeln!(self.0, "# HELP {name} {help}");
        let _ = writeln!(self.0, "# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(self.0, "{name}{labels} {value}");
        }
    }
    fn single(&mut self, name: &str, help: &str, value: impl ToString) {
        self.family(name, help, &[(String::new(), value.to_string())]);
    }
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// The textfile for a finished run. `notify_failures`: failed deliveries per configured channel.
pub fn render(r: &Report, notify_failures: &[(String, u32)], prev: &Previous) -> String {
    let mut o = Out(String::new());
    let help = "Unix time the last run started.";
    o.single("proxkeep_run_start_timestamp_seconds", help, r.started);
    let help = "Unix time the last run ended.";
    o.single("proxkeep_run_end_timestamp_seconds", help, r.ended);
    let help = "Wall time of the last run in seconds.";
    let secs = format!("{:.3}", r.duration_ms as f64 / 1000.0);
    o.single("proxkeep_run_duration_seconds", help, secs);
    let help =
        "Outcome of the last run: 0 ok, 1 warning (archive written, with warnings), 2 failed.";
    o.single("proxkeep_run_status", help, r.status as u8);
    let help = "Exit code of the last run (0 ok, 1 failed, 2 config, 3 warnings, 4 preflight, 5 locked, 130 interrupted).";
    o.single("proxkeep_run_exit_code", help, r.exit_code);
    let help = "Warnings and errors of the last run.";
    o.single("proxkeep_run_warnings", help, r.problems_total);
    let (bytes, files) = r.archive.as_ref().map_or((0, 0), |a| (a.size, a.files));
    let help = "Size in bytes of the archive the last run wrote (0 when it wrote none).";
    o.single("proxkeep_archive_bytes", help, bytes);
    let help = "Regular files in the archive the last run wrote (0 when it wrote none).";
    o.single("proxkeep_archive_files", help, files);
    // A run with warnings still wrote a verified archive: it counts as a success here.
    let last = (r.status != Status::Failed).then_some(r.ended as f64);
    let last = num(last.or(prev.last_success).unwrap_or(0.0));
    let help = "Unix time the last run that wrote a verified archive ended (0: never); kept across failed runs.";
    o.single("proxkeep_last_success_timestamp_seconds", help, last);

    // Per tier: this run's values, else the last known ones (a failed run or tier leaves them as they were).
    let mut tiers: BTreeMap<String, BTreeMap<String, f64>> = prev.tiers.clone();
    for t in &r.tiers {
        let e = tiers.entry(t.tier.clone()).or_default();
        e.insert("proxkeep_tier_ok".into(), f64::from(u8::from(t.ok)));
        if t.ok {
            e.insert("proxkeep_tier_archives".into(), t.archives as f64);
            e.insert("proxkeep_tier_bytes".into(), t.bytes as f64);
        }
        let name = "proxkeep_tier_last_copy_timestamp_seconds";
        e.extend(t.last_copy.map(|lc| (name.into(), lc as f64)));
    }
    for (name, help) in TIER_GAUGES {
        let samples: Vec<(String, String)> = tiers
            .iter()
            .filter_map(|(tier, m)| m.get(name).map(|v| (labels(&[("tier", tier)]), num(*v))))
            .collect();
        if !samples.is_empty() {
            o.family(name, help, &samples);
        }
    }
    if !notify_failures.is_empty() {
        let samples: Vec<(String, String)> = notify_failures
            .iter()
            .map(|(c, n)| (labels(&[("channel", c)]), n.to_string()))
            .collect();
        let help = "Notifications of the last run that could not be delivered, per channel.";
        o.family("proxkeep_notify_failures", help, &samples);
    }
    let info = labels(&[
        ("version", &r.version),
        ("host", &r.host),
        ("role", &r.role),
    ]);
    let help = "proxkeep version and the host it backs up.";
    o.family("proxkeep_info", help, &[(info, "1".into())]);
    for l in &prev.drill {
        let _ = writeln!(o.0, "{l}");
    }
    o.0
}

/// What one `proxkeep drill` run leaves in the textfile.
#[derive(Debug, Clone, PartialEq)]
pub struct Drill {
    /// Unix time the drill ended.
    pub ended: i64,
    /// 0 passed, 1 passed with warnings, 2 failed.
    pub result: u8,
    pub duration_ms: u64,
    pub checks_failed: usize,
    /// Age of the drilled archive in seconds (none when no archive was found).
    pub archive_age: Option<i64>,
}

/// The textfile after a drill: `prev_text` (the backup's families, untouched) with the `proxkeep_drill_*`
/// families replaced; the last success is kept from `prev_text` when this drill failed.
pub fn render_drill(d: &Drill, prev_text: &str) -> String {
    let others: Vec<&str> = prev_text
        .lines()
        .filter(|l| !metric_of(l).starts_with(DRILL_PREFIX))
        .collect();
    let mut o = Out(others.iter().map(|l| format!("{l}\n")).collect());
    let name = "proxkeep_drill_last_success_timestamp_seconds";
    let prev_success = prev_text
        .lines()
        .filter(|l| !l.starts_with('#') && metric_of(l) == name)
        .find_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok());
    let help = "Unix time the last drill ended.";
    o.single("proxkeep_drill_last_run_timestamp_seconds", help, d.ended);
    let success = (d.result < 2).then_some(d.ended as f64).or(prev_success);
    let help = "Unix time the last drill that restored its archive and passed its checks ended (0: never); kept across failed drills.";
    o.single(name, help, num(success.unwrap_or(0.0)));
    let help = "Outcome of the last drill: 0 passed, 1 passed with warnings, 2 failed.";
    o.single("proxkeep_drill_result", help, d.result);
    let help = "Wall time of the last drill in seconds.";
    let secs = format!("{:.3}", d.duration_ms as f64 / 1000.0);
    o.single("proxkeep_drill_duration_seconds", help, secs);
    let help = "Checks of the last drill that failed.";
    o.single("proxkeep_drill_checks_failed", help, d.checks_failed);
    if let Some(age) = d.archive_age {
        let help = "Age in seconds of the archive the last drill restored, when it was made.";
        o.single("proxkeep_drill_archive_age_seconds", help, age);
    }
    o.0
}

/// [`render_drill`] over the file at `path`, written atomically (0644), its directory created if missing.
pub fn write_drill(path: &Path, d: &Drill) -> io::Result<()> {
    let prev = std::fs::read_to_string(path).unwrap_or_default();
    if let Some(dir) = path.parent() {
        crate::fsx::create_dir_all(dir, 0o755)?;
    }
    crate::fsx::write_atomic(path, render_drill(d, &prev).as_bytes(), 0o644)
}

/// Render and write `path` atomically (0644: node_exporter runs as its own user), reading the previous file
/// first. The directory is created if missing (0755, with the parents it lacks).
pub fn write(path: &Path, r: &Report, notify_failures: &[(String, u32)]) -> io::Result<()> {
    let prev = std::fs::read_to_string(path)
        .map(|t| parse_previous(&t))
        .unwrap_or_default();
    if let Some(dir) = path.parent() {
        crate::fsx::create_dir_all(dir, 0o755)?;
    }
    let text = render(r, notify_failures, &prev);
    crate::fsx::write_atomic(path, text.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::report::{RunInfo, TierInfo};
    use jiff::Timestamp;

    fn run() -> RunInfo {
        RunInfo {
            host: "pve\"1".into(),
            role: "pve".into(),
            started: Timestamp::from_second(1_767_225_600).unwrap(),
            ended: Timestamp::from_second(1_767_225_610).unwrap(),
        }
    }

    fn tier(name: &str, ok: bool, archives: u64, last_copy: Option<i64>) -> TierInfo {
        TierInfo {
            tier: name.into(),
            ok,
            error: (!ok).then(|| "down".into()),
            copied: 0,
            removed: 0,
            damaged: 0,
            archives: if ok { archives } else { 0 },
            bytes: archives * 100,
            last_copy,
        }
    }

    #[test]
    fn success_then_failure_keeps_last_success_and_tiers() {
        let mut ok = Report::sample(&run());
        ok.test = false;
        ok.tiers = vec![
            tier("local", true, 3, None),
            tier("secondary:nas", true, 2, Some(1_767_225_609)),
        ];
        let first = render(&ok, &[("mail".into(), 0)], &Previous::default());
        assert!(first.ends_with('\n'));
        assert!(
            first.contains("proxkeep_last_success_timestamp_seconds 1767225610\n"),
            "{first}"
        );
        assert!(first.contains("proxkeep_tier_archives{tier=\"secondary:nas\"} 2\n"));
        assert!(first.contains("proxkeep_info{version=\""));
        assert!(
            first.contains("host=\"pve\\\"1\""),
            "label escaping: {first}"
        );
        assert!(first.contains("proxkeep_notify_failures{channel=\"mail\"} 0\n"));
        for name in [
            "proxkeep_run_start_timestamp_seconds",
            "proxkeep_run_end_timestamp_seconds",
            "proxkeep_run_duration_seconds",
            "proxkeep_run_status",
            "proxkeep_run_exit_code",
            "proxkeep_run_warnings",
            "proxkeep_archive_bytes",
            "proxkeep_archive_files",
        ] {
            assert!(first.contains(&format!("# HELP {name} ")), "{name}");
            assert!(first.contains(&format!("# TYPE {name} gauge\n")), "{name}");
        }

        let prev = parse_previous(&first);
        assert_eq!(prev.last_success, Some(1_767_225_610.0));
        let failed_run = RunInfo {
            started: Timestamp::from_second(1_767_312_000).unwrap(),
            ended: Timestamp::from_second(1_767_312_001).unwrap(),
            ..run()
        };
        let failed = Report::failed(&failed_run, 1, "backup failed: x".into(), vec![]);
        let second = render(&failed, &[("mail".into(), 1)], &prev);
        assert!(
            second.contains("proxkeep_last_success_timestamp_seconds 1767225610\n"),
            "{second}"
        );
        assert!(second.contains("proxkeep_run_status 2\n"));
        assert!(second.contains("proxkeep_run_exit_code 1\n"));
        assert!(second.contains("proxkeep_archive_bytes 0\n"));
        assert!(second.contains("proxkeep_tier_archives{tier=\"secondary:nas\"} 2\n"));
        assert!(second.contains(
            "proxkeep_tier_last_copy_timestamp_seconds{tier=\"secondary:nas\"} 1767225609\n"
        ));
        assert!(second.contains("proxkeep_notify_failures{channel=\"mail\"} 1\n"));

        // A failing tier: ok 0, last known archive count and copy time kept.
        let mut warn = ok.clone();
        warn.status = Status::Warning;
        warn.tiers = vec![
            tier("local", true, 4, None),
            tier("secondary:nas", false, 0, None),
        ];
        let third = render(&warn, &[], &parse_previous(&second));
        assert!(
            third.contains("proxkeep_tier_ok{tier=\"secondary:nas\"} 0\n"),
            "{third}"
        );
        assert!(third.contains("proxkeep_tier_archives{tier=\"secondary:nas\"} 2\n"));
        assert!(third.contains("proxkeep_tier_archives{tier=\"local\"} 4\n"));
        assert!(third.contains(
            "proxkeep_tier_last_copy_timestamp_seconds{tier=\"secondary:nas\"} 1767225609\n"
        ));
    }

    #[test]
    fn drill_and_backup_keep_each_others_families() {
        let mut ok = Report::sample(&run());
        ok.test = false;
        let backup = render(&ok, &[], &Previous::default());
        let passed = Drill {
            ended: 1_767_300_000,
            result: 0,
            duration_ms: 2500,
            checks_failed: 0,
            archive_age: Some(3600),
        };
        let first = render_drill(&passed, &backup);
        assert!(first.starts_with(&backup), "{first}");
        assert!(first.contains("proxkeep_drill_last_success_timestamp_seconds 1767300000\n"));
        assert!(first.contains("proxkeep_drill_duration_seconds 2.500\n"));
        assert!(first.contains("proxkeep_drill_archive_age_seconds 3600\n"));
        let failed = Drill {
            ended: 1_767_400_000,
            result: 2,
            checks_failed: 3,
            archive_age: None,
            ..passed
        };
        let second = render_drill(&failed, &first);
        assert!(second.contains("proxkeep_drill_last_success_timestamp_seconds 1767300000\n"));
        assert!(second.contains("proxkeep_drill_last_run_timestamp_seconds 1767400000\n"));
        assert!(second.contains("proxkeep_drill_checks_failed 3\n"));
        assert!(!second.contains("archive_age"), "{second}");
        assert_eq!(
            second.matches("# TYPE proxkeep_drill_result gauge").count(),
            1
        );
        // The next backup keeps the drill's families, once.
        let third = render(&ok, &[], &parse_previous(&second));
        assert!(
            third.contains("proxkeep_drill_checks_failed 3\n"),
            "{third}"
        );
        assert_eq!(third.matches("# HELP proxkeep_drill_result ").count(), 1);
        assert_eq!(third.matches("# HELP proxkeep_run_status ").count(), 1);
    }

    #[test]
    fn label_round_trip() {
        for v in ["plain", "a\"b", "back\\slash", "new\nline"] {
            assert_eq!(unescape_label(&escape_label(v)), v);
        }
        assert_eq!(
            parse_previous("garbage\n{\nproxkeep_last_success_timestamp_seconds x\n"),
            Previous::default()
        );
    }
}
