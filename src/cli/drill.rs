//! `drill`: which archive, then the report (text or `--json`). The journey is `proxkeep::app::drill`.

use super::Exit;
use super::args::DrillArgs;
use super::ctx::{Ctx, NEVER};
use anyhow::anyhow;
use proxkeep::app::drill::{self as journey, DrillOptions, DrillReport};
use proxkeep::drill::Verdict;
use proxkeep::exit;
use proxkeep::output::esc_line;
use proxkeep::units::format_size;
use std::io::{self, Write};
use std::time::Instant;

pub fn drill(ctx: &Ctx, a: &DrillArgs) -> Result<i32, Exit> {
    let started = Instant::now();
    let config = ctx.config()?;
    let log = ctx.log(proxkeep::notify::redactor(config));
    let dir = ctx.backup_dir(&a.dir)?;
    let host = ctx.hostname();
    let spec = match &a.archive {
        Some(s) => Ok(s.clone()),
        None => {
            let mut warnings = Vec::new();
            let spec = journey::newest_archive(config, &dir, &host, &NEVER, &mut warnings);
            warnings.iter().for_each(|w| log.warn(w));
            spec.map_err(|e| Exit::usage(anyhow!(e)))
        }
    };
    // A fetched copy lives as long as `resolved`.
    let resolved = spec.and_then(|s| ctx.resolve(&s, &a.dir));
    let mut report = match &resolved {
        Ok(r) => {
            let opts = DrillOptions {
                config,
                root: &ctx.root,
                scratch_in: a.scratch.clone().unwrap_or(dir),
                keep: a.keep,
                now: ctx.now,
                started,
            };
            journey::run(&r.path, r.tier.clone(), &opts, &log, ctx.cancel)
        }
        Err(Exit(code, e, _)) => DrillReport::failed_early(&host, ctx.now, *code, e.to_string()),
    };
    journey::finish(config, &log, &mut report);
    if let Some(e) = &report.error {
        // No drill ran to its checks: the error document, with what is known.
        let doc = serde_json::to_value(&report).map_err(Exit::failed)?;
        ctx.out.text(|o| text(&report, o))?;
        return Err(Exit(report.exit_code, anyhow!(e.clone()), Some(doc)));
    }
    ctx.out.result(&report, |o| text(&report, o))?;
    Ok(report.exit_code)
}

/// `3 d 4 h`, `5 h 10 min`, `42 s`: an archive's age.
fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min", s / 60),
        3600..86400 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86400, s % 86400 / 3600),
    }
}

fn text(r: &DrillReport, o: &mut dyn Write) -> io::Result<()> {
    if let Some(a) = &r.archive {
        let from = r
            .tier
            .as_ref()
            .map(|t| format!(" (from {t})"))
            .unwrap_or_default();
        writeln!(o, "archive  {}{from}", a.display())?;
    }
    if let (Some(created), Some(secs)) = (&r.created, r.age_seconds) {
        let (host, role, ago) = (esc_line(&r.host), &r.role, age(secs));
        writeln!(
            o,
            "made     {} on {host} (role {role}), {ago} ago",
            esc_line(created)
        )?;
    }
    if !r.checks.is_empty() {
        writeln!(o)?;
    }
    for c in &r.checks {
        let mark = match (c.result, c.warning) {
            (Verdict::Failed, _) => "✗",
            (_, true) => "!",
            (Verdict::Passed, false) => "✓",
            (Verdict::Skipped, false) => "-",
        };
        let skipped = if c.result == Verdict::Skipped {
            "skipped: "
        } else {
            ""
        };
        writeln!(o, "{mark} {:<14} {skipped}{}", c.name, esc_line(&c.detail))?;
        for p in c.problems.iter().take(20) {
            writeln!(o, "    {}", esc_line(p))?;
        }
        if c.problems.len() > 20 {
            writeln!(
                o,
                "    … and {} more (--json lists them all)",
                c.problems.len() - 20
            )?;
        }
    }
    live_text(r, o)?;
    if let Some(s) = &r.scratch {
        writeln!(o, "\nscratch  kept: {}", s.display())?;
    }
    for s in &r.swept {
        let s = s.to_string_lossy();
        writeln!(o, "scratch  removed (its drill died): {}", esc_line(&s))?;
    }
    let word = match r.exit_code {
        exit::OK => "PASSED",
        exit::WARNINGS => "PASSED with warnings",
        exit::INTERRUPTED => "INTERRUPTED",
        _ => "FAILED",
    };
    let secs = r.duration_ms as f64 / 1000.0;
    let size = format_size(r.size);
    writeln!(
        o,
        "\ndrill {word} (exit {}) in {secs:.1} s ({size} archive)",
        r.exit_code
    )
}

fn live_text(r: &DrillReport, o: &mut dyn Write) -> io::Result<()> {
    if let Some(e) = &r.live_error {
        writeln!(o, "\nlive host: not compared: {}", esc_line(e))?;
    }
    let Some(live) = &r.live else {
        return Ok(());
    };
    if live.is_empty() {
        return writeln!(o, "\nlive host: a restore would change nothing now");
    }
    writeln!(o, "\nlive host: what a restore would change now")?;
    writeln!(
        o,
        "  {:<16} {:>7} {:>8} {:>10}",
        "category", "create", "replace", "host-only"
    )?;
    for c in live {
        let name = esc_line(&c.category);
        writeln!(
            o,
            "  {name:<16} {:>7} {:>8} {:>10}",
            c.create, c.replace, c.host_only
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages() {
        assert_eq!(super::age(-5), "0 s");
        assert_eq!(super::age(59), "59 s");
        assert_eq!(super::age(3599), "59 min");
        assert_eq!(super::age(3600 * 5 + 600), "5 h 10 min");
        assert_eq!(super::age(86400 * 3 + 7200), "3 d 2 h");
    }
}
