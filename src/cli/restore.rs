//! `extract`, `restore`, `pmxcfs extract|restore`: the plan on screen, the typed confirmation, the outcome.
//! The journeys are in `proxkeep::app::restore`.

use super::Exit;
use super::args::{PmxcfsCommand, PmxcfsRestoreArgs, RestoreArgs, RestoreCommand};
use super::ctx::Ctx;
use super::emit::confirm;
use anyhow::anyhow;
use proxkeep::app::absolute;
use proxkeep::app::restore::{
    self as journey, PlanDoc, PmxcfsRestored, RestoreOptions, RestoreReport,
};
use proxkeep::exit;
use proxkeep::output::{Redactor, esc, esc_line};
use proxkeep::restore::apply::Stop;
use proxkeep::restore::path::NodeMap;
use proxkeep::restore::plan::{Action, PveWrite, Step};
use proxkeep::restore::recovery::{self, RecoveryRequest, Staged};
use proxkeep::restore::{self, Mode, Outcome, Prepared, Request, RestoreError};
use proxkeep::runner::CommandSpec;
use proxkeep::units::format_size;
use serde::Serialize;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub fn run(ctx: &Ctx, cmd: &RestoreCommand) -> Result<i32, Exit> {
    match cmd {
        RestoreCommand::Extract {
            archive,
            dir,
            backup_dir,
        } => extract(ctx, archive, dir, backup_dir),
        RestoreCommand::Restore(a) => restore_cmd(ctx, a),
        RestoreCommand::Pmxcfs { action } => match action {
            PmxcfsCommand::Extract {
                config_db,
                dir,
                node,
            } => pmxcfs_extract(ctx, config_db, dir, node.as_deref()),
            PmxcfsCommand::Restore(a) => pmxcfs_restore(ctx, a),
        },
    }
}

fn fail(e: RestoreError) -> Exit {
    Exit::new(e.exit_code(), e)
}

fn duration(s: &str) -> Result<Duration, Exit> {
    proxkeep::units::parse_duration(s).map_err(|e| Exit::usage(anyhow!("--service-timeout: {e}")))
}

pub(super) fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Whether `target` is the running host, where service commands may run: only `/`. A copy of a host under
/// `--root DIR` or `--target DIR` is never treated as live. `PROXKEEP_LIVE_ROOT=DIR` (the tests' stub
/// commands) names one more directory to treat as the running host.
fn is_live(target: &Path) -> bool {
    let test_root = std::env::var_os("PROXKEEP_LIVE_ROOT").map(PathBuf::from);
    same_dir(target, Path::new("/")) || test_root.is_some_and(|r| same_dir(target, &r))
}

fn target_dir(ctx: &Ctx, target: Option<&Path>) -> Result<PathBuf, Exit> {
    let target = absolute(target.unwrap_or(ctx.root.dir()));
    if !target.is_dir() {
        let dir = target.display();
        return Err(Exit::usage(anyhow!("--target {dir}: not a directory")));
    }
    Ok(target)
}

fn restore_cmd(ctx: &Ctx, a: &RestoreArgs) -> Result<i32, Exit> {
    let timeout = duration(&a.service_timeout)?;
    let map_node = a
        .map_node
        .as_deref()
        .map(NodeMap::parse)
        .transpose()
        .map_err(|e| Exit::usage(anyhow!(e)))?;
    let resolved = ctx.resolve(&a.archive, &a.dir)?;
    let target = target_dir(ctx, a.target.as_deref())?;
    let req = Request {
        archive: absolute(&resolved.path),
        target: target.clone(),
        mode: Mode::Restore,
        only: a.only.clone(),
        paths: a.paths.clone(),
        map_node,
        nic: a.nic.clone(),
        pve: None,
    };
    let p = restore::prepare(&req, ctx.cancel).map_err(fail)?;
    if ctx.verbosity >= 0 {
        ctx.out.text(|o| plan_text(&p, o))?;
    }
    // Refused before asking anything (also for --dry-run: the plan cannot be carried out).
    restore::check_conflicts(&p.plan).map_err(|e| {
        let plan = serde_json::json!({ "plan": PlanDoc::new(&p) });
        Exit(e.exit_code(), e.into(), Some(plan))
    })?;
    // A rewriter's blocker (an unmatched NIC, ...) refuses a real run; --dry-run shows it in the plan.
    if !a.dry_run {
        restore::check_blockers(&p).map_err(|e| {
            let plan = serde_json::json!({ "plan": PlanDoc::new(&p) });
            Exit(e.exit_code(), e.into(), Some(plan))
        })?;
    }
    if a.apply_network {
        return super::network::apply(ctx, a, &p, &target);
    }
    if a.dry_run {
        let text = |o: &mut dyn Write| writeln!(o, "\ndry run: nothing was written");
        return ctx.out.result(&PlanDoc::new(&p), text).map(|()| exit::OK);
    }
    if !p.plan.changes() {
        let doc = serde_json::json!({"status": "ok", "plan": PlanDoc::new(&p), "changed": 0});
        let text = |o: &mut dyn Write| {
            writeln!(o, "\nnothing to do: the target already matches the archive")
        };
        return ctx.out.result(&doc, text).map(|()| exit::OK);
    }
    let writes = p.plan.writes().count() + p.plan.removals().count();
    let what = format!("write {writes} entries to {}", target.display());
    confirm(&what, "restore", (a.yes, true), ctx.cancel)?;
    let opts = RestoreOptions {
        config: ctx.config()?,
        config_path: ctx.config_path.as_deref(),
        no_safety_backup: a.no_safety_backup,
        apply_services: a.apply_services.then_some(timeout),
        target_is_host: is_live(&target),
        now: ctx.now,
    };
    let report =
        journey::restore(&p, &opts, &ctx.log(Redactor::default()), ctx.cancel).map_err(fail)?;
    ctx.out.result(&report, |o| {
        outcome_text(
            &report.outcome,
            report.duration_ms,
            report.undo.as_deref(),
            o,
        )?;
        follow_ups_text(&report, o)
    })?;
    Ok(report.exit_code)
}

fn extract(
    ctx: &Ctx,
    archive: &str,
    dir: &Path,
    backup_dir: &Option<PathBuf>,
) -> Result<i32, Exit> {
    let resolved = ctx.resolve(archive, backup_dir)?;
    let req = Request {
        archive: absolute(&resolved.path),
        target: absolute(dir),
        mode: Mode::Extract,
        only: Vec::new(),
        paths: Vec::new(),
        map_node: None,
        nic: Vec::new(),
        pve: Some(PveWrite::Plain),
    };
    let p = restore::prepare(&req, ctx.cancel).map_err(fail)?;
    let log = ctx.log(Redactor::default());
    let r = journey::extract(&p, ctx.config()?, ctx.now, &log, ctx.cancel).map_err(fail)?;
    if ctx.json() || ctx.verbosity >= 0 || r.exit_code != exit::OK {
        ctx.out
            .result(&r, |o| outcome_text(&r.outcome, r.duration_ms, None, o))?;
    }
    Ok(r.exit_code)
}

fn changes_text(s: &Step) -> String {
    match &s.action {
        Action::Replace(c) => {
            // The names --json gives them.
            let name = |c| serde_json::to_value(c).ok()?.as_str().map(String::from);
            let names: Vec<String> = c.iter().map(|c| name(c).unwrap_or_default()).collect();
            format!("  ({})", names.join(", "))
        }
        _ if s.implicit => "  (directory of what is restored)".into(),
        _ => String::new(),
    }
}

/// A row of the plan's table: the category, then create, replace, same, held, conflict and remove.
fn counts_row(o: &mut dyn Write, name: &str, n: [&dyn std::fmt::Display; 6]) -> io::Result<()> {
    let [create, replace, same, held, conflict, remove] = n;
    writeln!(
        o,
        "{name:<16} {create:>7} {replace:>7} {same:>7} {held:>7} {conflict:>8} {remove:>7}"
    )
}

fn plan_text(p: &Prepared, o: &mut dyn Write) -> io::Result<()> {
    let m = &p.meta;
    let created = if m.created.is_empty() {
        String::new()
    } else {
        format!(", {}", esc(&m.created))
    };
    writeln!(
        o,
        "archive  {} ({} {} of {}{created})",
        p.archive.display(),
        esc(&m.purpose),
        m.role,
        esc(&m.host)
    )?;
    writeln!(o, "target   {}", p.target.dir.display())?;
    if p.is_safety_archive() {
        writeln!(
            o,
            "         a safety archive: restoring it undoes the restore that made it (nothing is held)"
        )?;
    }
    writeln!(o)?;
    let head = ["create", "replace", "same", "held", "conflict", "remove"];
    counts_row(o, "category", head.each_ref().map(|h| h as _))?;
    let mut total = [0u64; 6];
    for c in &p.plan.counts() {
        let n = [c.create, c.replace, c.same, c.held, c.conflict, c.remove];
        total.iter_mut().zip(n).for_each(|(t, n)| *t += n);
        counts_row(o, &esc(&c.category), n.each_ref().map(|n| n as _))?;
    }
    counts_row(o, "total", total.each_ref().map(|n| n as _))?;
    if p.plan.not_selected > 0 {
        let n = p.plan.not_selected;
        writeln!(o, "({n} entries not selected by --only/--path)")?;
    }
    let steps = |f: fn(&Action) -> bool| -> Vec<&Step> {
        p.plan.steps.iter().filter(|s| f(&s.action)).collect()
    };
    let writes = steps(Action::changes);
    if !writes.is_empty() {
        writeln!(o, "\nwill write {} entries:", writes.len())?;
        for s in writes {
            let (action, shown) = (s.action.name(), s.shown_text());
            writeln!(o, "  {action:<8} {shown}{}", changes_text(s))?;
            // Rewritten files: what will be written instead of the archive's content.
            for line in s.diff.iter().flat_map(|d| d.lines()) {
                writeln!(o, "    {line}")?;
            }
        }
    }
    let held = steps(|a| *a == Action::Held);
    if !held.is_empty() {
        writeln!(
            o,
            "\nheld: hardware- or install-bound, differ from the target; name them with --only or --path to restore them:"
        )?;
        for s in held {
            writeln!(o, "  {}", s.shown_text())?;
            for line in s.diff.iter().flat_map(|d| d.lines()) {
                writeln!(o, "    {line}")?;
            }
        }
    }
    if !p.rewrites.is_empty() {
        writeln!(
            o,
            "\nrewritten for this host (the archive's content adapted):"
        )?;
        for (shown, why) in &p.rewrites {
            writeln!(o, "  {}: {}", esc(shown), esc_line(why))?;
        }
    }
    for (head, lines) in [
        ("notes:", &p.notes),
        (
            "blocked (a run without --dry-run refuses until this is resolved):",
            &p.blockers.iter().map(|b| b.why.clone()).collect(),
        ),
    ] {
        if !lines.is_empty() {
            writeln!(o, "\n{head}")?;
            lines
                .iter()
                .try_for_each(|l| writeln!(o, "  {}", esc_line(l)))?;
        }
    }
    let conflicts: Vec<&Step> = p.plan.conflicts().collect();
    if !conflicts.is_empty() {
        writeln!(
            o,
            "\nconflicts (nothing will be written while there are any):"
        )?;
        for s in conflicts {
            if let Action::Conflict(why) = &s.action {
                writeln!(o, "  {}: {}", s.shown_text(), esc_line(why))?;
            }
        }
    }
    Ok(())
}

fn outcome_text(
    o: &Outcome,
    duration_ms: u64,
    undo: Option<&str>,
    out: &mut dyn Write,
) -> io::Result<()> {
    let r = &o.report;
    if let Some(s) = &o.safety_archive {
        writeln!(out, "\nsafety   {}", s.display())?;
    }
    writeln!(
        out,
        "{}{} created, {} replaced, {} removed ({} of file data) in {:.1} s",
        if o.safety_archive.is_some() { "" } else { "\n" },
        r.created,
        r.replaced,
        r.removed,
        format_size(r.bytes),
        duration_ms as f64 / 1000.0
    )?;
    if let Some(stop) = &r.stopped {
        let head = match stop {
            Stop::Interrupted => "INTERRUPTED".to_string(),
            Stop::Damaged { .. } => format!(
                "STOPPED, the archive is damaged: {}",
                esc_line(&stop.to_string())
            ),
            Stop::Failed { .. } => format!("STOPPED: {}", esc_line(&stop.to_string())),
        };
        let (done, not_done) = (r.done.len(), r.not_done);
        writeln!(
            out,
            "{head}\n{done} entries were written, {not_done} were not; every file is either its old or its new version, none is partial"
        )?;
    }
    for w in &r.warnings {
        writeln!(out, "warning: {}", esc_line(w))?;
    }
    if let Some(u) = undo {
        writeln!(out, "undo     {u}")?;
    }
    Ok(())
}

fn follow_ups_text(report: &RestoreReport, out: &mut dyn Write) -> io::Result<()> {
    let follow_ups = &report.outcome.follow_ups;
    if follow_ups.is_empty() {
        return Ok(());
    }
    if !report.live {
        writeln!(
            out,
            "\n{} is not the running host: nothing was run. On the host this tree belongs to, run:",
            report.target.display()
        )?;
    } else {
        let how = if report.apply_services {
            ""
        } else {
            " (run them, or restore with --apply-services)"
        };
        writeln!(out, "\nfollow-up for what was restored{how}:")?;
    }
    for f in follow_ups {
        let args: Vec<&str> = f.command[1..].iter().map(String::as_str).collect();
        let shown = CommandSpec::new(&f.command[0], &args).display();
        let state = match report.services.iter().find(|a| a.command == shown) {
            Some(a) if a.ok => "  [done]".to_string(),
            Some(a) if a.stderr.is_empty() => format!("  [FAILED: {}]", a.status),
            Some(a) => format!("  [FAILED: {}: {}]", a.status, a.stderr),
            None if !f.automatic => "  [by hand]".to_string(),
            None => String::new(),
        };
        writeln!(out, "  {:<40} # {}{state}", f.display(), f.why)?;
    }
    if let Some(n) = &report.services_note {
        writeln!(out, "{n}")?;
    }
    Ok(())
}

#[derive(Serialize)]
struct PmxcfsExtracted<'a> {
    status: &'static str,
    #[serde(flatten)]
    stats: proxkeep::pmxcfs::ExtractStats,
    dir: &'a Path,
}

fn pmxcfs_extract(ctx: &Ctx, db: &Path, dir: &Path, node: Option<&str>) -> Result<i32, Exit> {
    let stats = proxkeep::pmxcfs::extract(db, dir, node).map_err(|e| fail(e.into()))?;
    let doc = PmxcfsExtracted {
        status: "ok",
        stats,
        dir,
    };
    ctx.out.result(&doc, |o| {
        let size = format_size(stats.bytes);
        writeln!(o, "extracted {} directories, {} files ({size}) into {}", stats.dirs, stats.files, dir.display())?;
        if node.is_some() {
            return Ok(());
        }
        let nodes: Vec<String> = proxkeep::pmxcfs::read_tree(db)
            .map(|t| {
                t.into_iter()
                    .filter(|x| x.kind == proxkeep::pmxcfs::NodeKind::Dir)
                    .filter_map(|x| x.path.strip_prefix("nodes/").filter(|n| !n.contains('/')).map(|n| esc(n).into_owned()))
                    .collect()
            })
            .unwrap_or_default();
        let nodes = listed(&nodes, "none");
        writeln!(
            o,
            "pmxcfs' links (local, qemu-server, lxc, openvz) were not created: pass --node NAME (nodes in the db: {nodes})"
        )
    })?;
    Ok(exit::OK)
}

fn pmxcfs_restore(ctx: &Ctx, a: &PmxcfsRestoreArgs) -> Result<i32, Exit> {
    let target = target_dir(ctx, a.target.as_deref())?;
    let live = is_live(&target);
    let resolved = ctx.resolve(&a.archive, &a.dir)?;
    let config = ctx.config()?;
    let req = RecoveryRequest {
        archive: absolute(&resolved.path),
        target,
        live,
        force: a.force,
        service_timeout: duration(&a.service_timeout)?,
        safety_dir: absolute(&config.backup_dir),
        lock_file: Some(config.lock_file.clone()),
        now: ctx.now,
    };
    let staged = recovery::stage(&req, ctx.cancel).map_err(fail)?;
    ctx.out
        .text(|o| staged_text(&staged, &req, &a.service_timeout, o))?;
    let what = format!("replace {}", staged.db_dir.join("config.db").display());
    confirm(&what, "restore", (a.yes, false), ctx.cancel)?;
    let done = journey::pmxcfs_restore(staged, &req, &ctx.log(Redactor::default()), ctx.cancel)
        .map_err(fail)?;
    ctx.out.result(&done, |o| restored_text(&done, o))?;
    Ok(done.exit_code())
}

/// `v` joined by commas, or `none` when it is empty.
fn listed<S: AsRef<str>>(v: &[S], none: &str) -> String {
    let v: Vec<&str> = v.iter().map(AsRef::as_ref).collect();
    if v.is_empty() {
        none.into()
    } else {
        v.join(", ")
    }
}

fn staged_text(
    staged: &Staged,
    req: &RecoveryRequest,
    timeout: &str,
    o: &mut dyn Write,
) -> io::Result<()> {
    writeln!(o, "archive  {}", req.archive.display())?;
    writeln!(
        o,
        "database version {}, {} entries, nodes: {}",
        staged.version,
        staged.entries,
        listed(&staged.nodes, "none")
    )?;
    writeln!(
        o,
        "replaces {} (now: {})",
        staged.db_dir.join("config.db").display(),
        listed(&staged.current, "absent")
    )?;
    let force = if req.force { " (--force)" } else { "" };
    match &staged.cluster {
        Some(c) => writeln!(o, "cluster  {c:?}{force}")?,
        None => {
            let t = req.target.display();
            writeln!(
                o,
                "target   {t} is not the running host (/): no command is run here"
            )?;
            writeln!(
                o,
                "on the host this tree belongs to, pve-cluster must be stopped before its config.db is replaced and started after: systemctl stop pve-cluster; systemctl start pve-cluster"
            )?;
        }
    }
    if req.live {
        writeln!(
            o,
            "pve-cluster will be stopped, then started again (each step at most {timeout})"
        )?;
    }
    Ok(())
}

fn restored_text(done: &PmxcfsRestored, o: &mut dyn Write) -> io::Result<()> {
    let s = &done.swapped;
    if let Some(c) = s.safety_copy.as_ref().map(|c| c.display()) {
        writeln!(o, "safety   previous config.db files copied to {c}")?;
    }
    writeln!(o, "replaced {} (mode 0600)", s.db.display())?;
    if s.stopped {
        writeln!(o, "pve-cluster stopped and started again")?;
    }
    for w in &s.warnings {
        writeln!(o, "warning: {w}")?;
    }
    writeln!(o, "\nnext:")?;
    for step in &done.next_steps {
        writeln!(o, "  - {step}")?;
    }
    Ok(())
}
