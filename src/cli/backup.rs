//! `check`, `catalog`, `config show`, `prune`, `backup`, `notify test`: the host-side commands' presenters.

use super::args::{BackupArgs, NotifyAction, NotifyCommand, PruneArgs};
use super::{Exit, ctx::Ctx, emit::Emit};
use anyhow::anyhow;
use proxkeep::app::after_run::Hooks;
use proxkeep::app::backup::{self, BackupError, BackupOptions, BackupReport};
use proxkeep::app::{self, catalog::CatalogReport, prune::PruneReport};
use proxkeep::catalog::{self, Source};
use proxkeep::collect::{self, Excluded};
use proxkeep::config;
use proxkeep::exit;
use proxkeep::host::HostFacts;
use proxkeep::notify::{self, RunInfo};
use proxkeep::preflight::Check;
use proxkeep::store::retention::{self, Decision};
use proxkeep::units::format_size;
use std::fmt::Display;
use std::io::{self, Write};
use std::path::Path;

pub fn check(ctx: &Ctx) -> Result<i32, Exit> {
    let report = app::check::run(&ctx.root, ctx.config()?);
    ctx.out
        .result(&report, |o| lines(o, report.checks.iter().map(Check::line)))?;
    Ok(report.exit_code())
}

fn lines(o: &mut dyn Write, lines: impl IntoIterator<Item = String>) -> io::Result<()> {
    lines.into_iter().try_for_each(|l| writeln!(o, "{l}"))
}

pub fn config_show(ctx: &Ctx) -> Result<i32, Exit> {
    let config = ctx.config()?;
    let text = config::render_redacted(config);
    if ctx.json() {
        // The same redacted rendering, as a JSON document.
        let value: toml::Value = toml::from_str(&text).map_err(Exit::failed)?;
        return ctx.out.json(&value).map(|()| exit::OK);
    }
    ctx.out.text(|o| {
        o.write_all(text.as_bytes())?;
        // Tiers show only the keys they set: say what each one keeps in the end.
        writeln!(o, "\n# effective retention per tier:")?;
        for (tier, p) in retention::tier_policies(config) {
            writeln!(o, "# {tier}: {}", p.describe())?;
        }
        Ok(())
    })?;
    Ok(exit::OK)
}

pub fn catalog(ctx: &Ctx) -> Result<i32, Exit> {
    let report = app::catalog::run(&ctx.root, ctx.config()?);
    ctx.out.result(&report, |o| catalog_text(&report, o))?;
    Ok(exit::OK)
}

fn removed_text(x: &Excluded) -> String {
    format!("{} entries, {}", x.entries, format_size(x.bytes))
}

fn catalog_text(r: &CatalogReport, out: &mut dyn Write) -> io::Result<()> {
    writeln!(out, "host {} role {}", r.host, r.role)?;
    for c in &r.categories {
        let found = match &c.found {
            Some(n) if c.active => format!(
                "{} files, {} dirs, {} links, {}, {} commands",
                n.files,
                n.dirs,
                n.symlinks,
                format_size(n.bytes),
                n.commands
            ),
            _ if c.active => "nothing found".into(),
            _ => format!("not collected on a {} host", r.role),
        };
        let (name, applies, description) = (c.name, c.applies, c.description);
        writeln!(out, "\n{name} ({applies:?}): {description}\n  {found}")?;
        for s in c.sources {
            let line = match s {
                Source::Path { path } => format!("path    {path}"),
                Source::Glob { pattern } => format!("glob    {pattern}"),
                Source::SmallDirs { pattern, max } => {
                    format!(
                        "glob    {pattern} (a directory over {} left out)",
                        format_size(*max)
                    )
                }
                Source::Listing { path, max } => {
                    format!(
                        "path    {path} (a file over {} listed, not stored)",
                        format_size(*max)
                    )
                }
                Source::Command {
                    output,
                    program,
                    args,
                } => format!("command {program} {} > {output}", args.join(" ")),
                Source::Pmxcfs => format!("pmxcfs  {} (online snapshot)", catalog::CONFIG_DB),
                Source::NamedIn { file, names } => format!("named   in {file} ({names:?})"),
                Source::Nics => "sysfs   /sys/class/net > nics.json".into(),
                Source::OwnConfig => {
                    "named   by proxkeep's config: recipients_file, rclone config (never passphrase_file)"
                        .into()
                }
            };
            writeln!(out, "    {line}")?;
        }
        for e in c.exclude {
            let removed = r
                .excluded
                .iter()
                .find(|x| x.from == c.name && x.exclude == *e);
            let why = if catalog::is_pmxcfs_virtual(e) {
                " (on purpose: pmxcfs writes it at run time, it is not in config.db)"
            } else {
                ""
            };
            writeln!(
                out,
                "    exclude {e}{why}{}",
                removed.map_or_else(String::new, |x| {
                    format!(" (removed {})", removed_text(x))
                })
            )?;
        }
        // Left out by size (a directory over its limit, a file listed instead of stored).
        let by_size = |x: &&Excluded| x.from == c.name && !c.exclude.contains(&x.exclude.as_str());
        for x in r.excluded.iter().filter(by_size) {
            writeln!(out, "    left out {} ({})", x.exclude, removed_text(x))?;
        }
    }
    for x in r.excluded.iter().filter(|x| x.from == collect::FROM_CONFIG) {
        writeln!(
            out,
            "\nexclude {} (config; removed {})",
            x.exclude,
            removed_text(x)
        )?;
    }
    writeln!(out, "\nextra: paths from [collect] extra_paths")?;
    for n in &r.never_collected {
        writeln!(out, "never collected: {} ({})", n.path.display(), n.why)?;
    }
    if r.commands_not_run > 0 {
        writeln!(
            out,
            "\n{} commands run only when --root is / (or with [commands] run = \"always\")",
            r.commands_not_run
        )?;
    }
    Ok(())
}

pub fn prune(ctx: &Ctx, a: &PruneArgs) -> Result<i32, Exit> {
    let dir = ctx.backup_dir(&a.dir)?;
    let report = app::prune::run(
        ctx.config()?,
        &dir,
        &ctx.hostname(),
        a.tier.as_deref(),
        a.dry_run,
        ctx.now,
        ctx.cancel,
    )
    .map_err(|e| Exit::usage(anyhow!(e)))?;
    for t in &report.tiers {
        if let Some(e) = &t.error {
            eprintln!("warning: tier {}: {e}", t.tier);
        }
    }
    if let Some(e) = &report.log_error {
        eprintln!("warning: cannot write the prune log {e}");
    }
    ctx.out.result(&report, |o| prune_text(&report, o))?;
    Ok(report.exit_code())
}

fn prune_text(r: &PruneReport, out: &mut dyn Write) -> io::Result<()> {
    for t in &r.tiers {
        let Some(plan) = &t.plan else { continue };
        let how = if r.dry_run { "dry run" } else { "pruned" };
        writeln!(out, "{} ({how}):", t.tier)?;
        writeln!(out, "  policy: {}", t.policy.describe())?;
        for p in plan.iter().chain(&t.safety) {
            let what = match &p.decision {
                Decision::Keep(why) => format!("keep    {why}"),
                Decision::Remove if r.dry_run => "remove  (would)".into(),
                Decision::Remove => "removed".into(),
                Decision::Damaged => "DAMAGED kept: failed verification, check it".into(),
            };
            writeln!(out, "  {}  {what}", p.archive)?;
        }
        if plan.is_empty() {
            writeln!(out, "  no archives of {}", r.host)?;
        }
        if !t.safety.is_empty() {
            writeln!(
                out,
                "  (restore-safety archives: keep_safety {})",
                t.policy.keep_safety
            )?;
        }
    }
    Ok(())
}

pub fn backup(ctx: &mut Ctx, a: &BackupArgs) -> Result<i32, Exit> {
    // Notifications and metrics: reported for every outcome, never changing the exit code.
    // A dry run reports to nobody, not even a config error (docs/monitoring.md).
    let reported = |e| if a.dry_run { e } else { config_failed(ctx, e) };
    let config = ctx.config().map_err(reported)?.clone();
    let log = ctx.log(notify::redactor(&config));
    ctx.out.redactor = Some(log.redactor().clone());
    let hooks = (!a.dry_run).then(|| Hooks::begin(&config));
    let bctx = backup::Context {
        root: ctx.root.clone(),
        config,
        log: &log,
        cancel: ctx.cancel,
    };
    let opts = BackupOptions {
        dry_run: a.dry_run,
        dir: a.dir.clone(),
        compression: a.compression,
        level: a.level,
        now: Some(ctx.now),
    };
    let result = backup::run(&bctx, &opts);
    let sent = hooks
        .map(|h| h.finish_backup(&bctx.config, &bctx.root, &log, &result))
        .unwrap_or_default();
    match result {
        Ok(report) => {
            let mut doc = serde_json::to_value(&report).map_err(Exit::failed)?;
            doc["notifications"] = serde_json::json!(sent);
            ctx.out
                .result(&doc, |o| match (a.dry_run, ctx.verbosity >= 0) {
                    (true, _) => dry_run_text(&report, o),
                    (false, true) => summary_text(&report, o),
                    (false, false) => Ok(()),
                })?;
            Ok(report.exit_code)
        }
        Err(e) => {
            let code = e.exit_code();
            let checks = match &e {
                BackupError::Preflight(c) => &c[..],
                _ => &[],
            };
            let extra = serde_json::json!({"status": "failed", "exit_code": code, "checks": checks, "notifications": sent});
            let extra = serde_json::from_str(&log.redactor().apply(&extra.to_string())).ok();
            let message = log.redactor().apply(&e.to_string());
            Err(Exit(code, anyhow!(message), extra))
        }
    }
}

/// `backup` could not load its config: tell whatever the readable part of the file names (channels, metrics
/// textfile), then hand the error back unchanged (exit 2). A file that does not parse at all names nobody.
fn config_failed(ctx: &Ctx, e: Exit) -> Exit {
    if let Some(config) = config::load_reporting_only(ctx.config_path.as_deref()) {
        let log = ctx.log(notify::redactor(&config));
        let message = log.redactor().apply(&format!("{:#}", e.1));
        Hooks::begin(&config).finish_config_error(&config, &ctx.root, &log, &message);
    }
    e
}

/// A row of the dry run's table: the category, then files, dirs, links, bytes and commands.
fn row(out: &mut dyn Write, name: &str, cells: [&dyn Display; 5]) -> io::Result<()> {
    let [f, d, l, b, c] = cells;
    writeln!(out, "{name:<16} {f:>7} {d:>6} {l:>6} {b:>10} {c:>9}")
}

fn dry_run_text(r: &BackupReport, out: &mut dyn Write) -> io::Result<()> {
    lines(out, r.checks.iter().map(Check::line))?;
    let archive = r.archive.as_deref().unwrap_or(Path::new(""));
    writeln!(out, "\nwould write {}", archive.display())?;
    let head: [&dyn Display; 5] = [&"files", &"dirs", &"links", &"bytes", &"commands"];
    row(out, "category", head)?;
    for c in &r.categories {
        let size = format_size(c.bytes);
        let n: [&dyn Display; 5] = [&c.files, &c.dirs, &c.symlinks, &size, &c.commands];
        row(out, &c.category, n)?;
    }
    let size = format_size(r.bytes);
    let n: [&dyn Display; 5] = [&r.files, &r.dirs, &r.symlinks, &size, &r.commands];
    row(out, "total", n)?;
    for x in &r.excluded {
        let (e, from) = (&x.exclude, &x.from);
        writeln!(out, "excluded {e} ({from}): {}", removed_text(x))?;
    }
    if r.pve_tree_from_db {
        writeln!(
            out,
            "/etc/pve is not mounted: its tree would be rebuilt from config.db"
        )?;
    }
    for w in &r.warnings {
        writeln!(out, "warning: {}", backup::warning_text(w))?;
    }
    Ok(())
}

fn summary_text(r: &BackupReport, out: &mut dyn Write) -> io::Result<()> {
    if let Some(a) = &r.archive {
        writeln!(out, "archive  {}", a.display())?;
    }
    let size = format_size(r.size);
    writeln!(out, "size     {size} ({} {})", r.compression, r.level)?;
    if let Some(e) = &r.encryption {
        writeln!(out, "encrypt  {e}")?;
    }
    writeln!(
        out,
        "entries  {} ({} files, {} dirs, {} links; {} of file data), {} command outputs",
        r.entries,
        r.files,
        r.dirs,
        r.symlinks,
        format_size(r.bytes),
        r.commands
    )?;
    if let Some(s) = &r.sha256 {
        writeln!(out, "sha256   {s}")?;
    }
    writeln!(
        out,
        "verified every entry read back against the index in {:.1} s",
        r.duration_ms as f64 / 1000.0
    )?;
    if !r.warnings.is_empty() {
        writeln!(out, "warnings {} (exit 3):", r.warnings.len())?;
        for w in r.warnings.iter().take(20) {
            writeln!(out, "  {}", backup::warning_text(w))?;
        }
    }
    if let Some(l) = &r.log_file {
        writeln!(out, "log      {}", l.display())?;
    }
    Ok(())
}

pub fn notify_test(ctx: &Ctx, cmd: &NotifyCommand) -> Result<i32, Exit> {
    let NotifyCommand::Notify {
        action: NotifyAction::Test { channel },
    } = cmd;
    let config = ctx.config()?;
    let names = config.notify.channel_names();
    if names.is_empty() {
        return Err(Exit::usage(anyhow!(
            "no notification channels are configured (add [[notify.email]], [[notify.ntfy]], ... to the config)"
        )));
    }
    // Results go to stdout; the log (stderr) only shows retries and details with -v.
    let verbosity = if ctx.verbosity > 0 { ctx.verbosity } else { -1 };
    let log = proxkeep::output::Log::new(verbosity, notify::redactor(config));
    let facts = HostFacts::detect(&ctx.root);
    let run = RunInfo {
        host: facts.hostname,
        role: facts.role.to_string(),
        started: ctx.now,
        ended: ctx.now,
    };
    let Some(results) = notify::test(config, &log, &run, channel.as_deref()) else {
        let (name, names) = (channel.as_deref().unwrap_or(""), names.join(", "));
        return Err(Exit::usage(anyhow!(
            "no channel named {name:?} (channels: {names})"
        )));
    };
    let out = Emit {
        redactor: Some(log.redactor().clone()),
        ..ctx.out.clone()
    };
    let doc = serde_json::json!({ "channels": results });
    out.result(&doc, |o| lines(o, results.iter().map(|d| d.line())))?;
    Ok(app::exit_if(results.iter().any(|d| !d.ok), exit::FAILED))
}
