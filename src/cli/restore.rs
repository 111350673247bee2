//! `extract`, `restore`, `pmxcfs extract|restore` (issue 4): argument parsing, the typed confirmation, and
//! printing. Everything else is in `proxkeep::restore`.

use super::{Exit, Globals};
use anyhow::anyhow;
use clap::Subcommand;
use proxkeep::config;
use proxkeep::exit;
use proxkeep::host::{self, Root};
use proxkeep::output::{Log, Redactor};
use proxkeep::restore::apply::{ApplyOptions, Stop};
use proxkeep::restore::path::NodeMap;
use proxkeep::restore::plan::{Action, Step};
use proxkeep::restore::recovery::{self, RecoveryRequest};
use proxkeep::restore::{self, Execute, Mode, Outcome, Prepared, Request, RestoreError};
use proxkeep::runner::CommandSpec;
use proxkeep::units::{self, format_size};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Write everything in an archive into an empty or new DIR (never over existing files)
    Extract {
        /// A path, a file name in the backup directory, `latest` or `latest~N`
        archive: String,
        dir: PathBuf,
    },
    /// Put files from an archive back onto this host (or --target); shows the plan first
    Restore(RestoreArgs),
    /// The pmxcfs database: rebuild /etc/pve from a config.db, or put a backed-up config.db in place
    Pmxcfs {
        #[command(subcommand)]
        action: PmxcfsCommand,
    },
}

#[derive(clap::Args, Debug)]
pub struct RestoreArgs {
    /// A path, a file name in the backup directory, `latest` or `latest~N`
    archive: String,
    /// Only these categories (comma-separated, see `proxkeep catalog`); naming a category restores its held files
    #[arg(long, value_delimiter = ',', value_name = "CAT")]
    only: Vec<String>,
    /// Only host paths matching this glob (repeatable; a directory names its whole tree); adds to --only
    #[arg(long = "path", value_name = "GLOB")]
    paths: Vec<String>,
    /// Restore into DIR instead of the host [default: /, or --root]
    #[arg(long, value_name = "DIR")]
    target: Option<PathBuf>,
    /// Print the plan and write nothing
    #[arg(long)]
    dry_run: bool,
    /// Do not ask for confirmation (required without a terminal)
    #[arg(long)]
    yes: bool,
    /// Put /etc/pve/nodes/OLD into /etc/pve/nodes/NEW (host reinstalled under another name)
    #[arg(long, value_name = "OLD=NEW")]
    map_node: Option<String>,
    /// Do not write the safety archive of what gets replaced
    #[arg(long)]
    no_safety_backup: bool,
    /// Run the follow-up commands (ifreload -a, service restarts), each with --service-timeout
    #[arg(long)]
    apply_services: bool,
    /// Time each follow-up command may take before it is killed
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    service_timeout: String,
}

#[derive(Subcommand, Debug)]
pub enum PmxcfsCommand {
    /// Rebuild an /etc/pve tree from any config.db, offline, into an empty or new DIR
    Extract {
        config_db: PathBuf,
        dir: PathBuf,
        /// Also create pmxcfs' links (local, qemu-server, lxc, openvz) for this node
        #[arg(long, value_name = "NAME")]
        node: Option<String>,
    },
    /// Node recovery: stop pve-cluster, put the archive's config.db in place, start pve-cluster
    Restore {
        /// A path, a file name in the backup directory, `latest` or `latest~N`
        archive: String,
        /// Put the db under DIR/var/lib/pve-cluster instead (no service is touched then)
        #[arg(long, value_name = "DIR")]
        target: Option<PathBuf>,
        /// Restore even when this node is part of a quorate cluster
        #[arg(long)]
        force: bool,
        /// Do not ask for confirmation (required without a terminal)
        #[arg(long)]
        yes: bool,
        /// Time systemctl and pvecm may take before they are killed
        #[arg(long, value_name = "DURATION", default_value = "90s")]
        service_timeout: String,
    },
}

pub fn run(cmd: &Commands, g: &Globals, cancel: &AtomicBool) -> Result<i32, Exit> {
    match cmd {
        Commands::Extract { archive, dir } => extract(g, archive, dir, cancel),
        Commands::Restore(a) => restore_cmd(g, a, cancel),
        Commands::Pmxcfs {
            action:
                PmxcfsCommand::Extract {
                    config_db,
                    dir,
                    node,
                },
        } => pmxcfs_extract(g, config_db, dir, node.as_deref()),
        Commands::Pmxcfs {
            action:
                PmxcfsCommand::Restore {
                    archive,
                    target,
                    force,
                    yes,
                    service_timeout,
                },
        } => pmxcfs_restore(
            g,
            archive,
            target.as_deref(),
            *force,
            *yes,
            service_timeout,
            cancel,
        ),
    }
}

fn fail(e: RestoreError) -> Exit {
    Exit(e.exit_code(), anyhow::Error::new(e))
}

fn duration(s: &str) -> Result<Duration, Exit> {
    units::parse_duration(s).map_err(|e| Exit::usage(anyhow!("--service-timeout: {e}")))
}

fn now() -> jiff::Timestamp {
    std::env::var("PROXKEEP_NOW")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(jiff::Timestamp::now)
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// ARCHIVE → a path; `latest` means the newest archive of the host `--root` shows (`/` by default).
/// `NAME:ARCHIVE` names one on a configured remote (fetched with rclone; the copy lives as long as the
/// returned guard) or secondary.
fn resolve(
    g: &Globals,
    spec: &str,
    host_root: &Path,
) -> Result<(config::Config, PathBuf, proxkeep::store::tier::Resolved), Exit> {
    static NEVER: AtomicBool = AtomicBool::new(false);
    let config = g.load_config()?;
    let host = host::hostname(&Root::new(host_root));
    let resolved =
        proxkeep::store::tier::resolve_archive(spec, &config, &config.backup_dir, &host, &NEVER)
            .map_err(|e| Exit::usage(anyhow!(e)))?;
    let path = absolute(&resolved.path);
    Ok((config, path, resolved))
}

/// Typed confirmation on a terminal; `--yes` without one. Ctrl-C at the prompt ends the run.
fn confirm(what: &str, word: &str, yes: bool, cancel: &AtomicBool) -> Result<(), Exit> {
    if yes {
        return Ok(());
    }
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(Exit::failed(anyhow!(
            "no terminal to confirm on: pass --yes to {what} without asking (nothing was changed)"
        )));
    }
    eprint!("Type `{word}` to {what}, anything else to stop: ");
    let _ = std::io::stderr().flush();
    // Poll, so SIGINT/SIGTERM (which only set a flag) end the wait instead of being swallowed by a read.
    loop {
        if cancel.load(Ordering::Relaxed) {
            eprintln!();
            return Err(Exit(
                exit::INTERRUPTED,
                anyhow!("interrupted at the confirmation: nothing was changed"),
            ));
        }
        let mut fds = [rustix::event::PollFd::new(
            &stdin,
            rustix::event::PollFlags::IN,
        )];
        let timeout = rustix::fs::Timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        match rustix::event::poll(&mut fds, Some(&timeout)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => break,
            Err(e) => return Err(Exit::failed(anyhow!("reading the confirmation: {e}"))),
        }
    }
    let mut line = String::new();
    stdin
        .read_line(&mut line)
        .map_err(|e| Exit::failed(anyhow!("reading the confirmation: {e}")))?;
    if line.trim() == word {
        Ok(())
    } else {
        Err(Exit::failed(anyhow!("not confirmed: nothing was changed")))
    }
}

fn log_for(g: &Globals) -> Log {
    Log::new(g.verbosity, Redactor::default())
}

// ------------------------------------------------------------------------------------------------
// restore / extract

fn restore_cmd(g: &Globals, a: &RestoreArgs, cancel: &AtomicBool) -> Result<i32, Exit> {
    let started = Instant::now();
    let target = absolute(a.target.as_deref().unwrap_or(g.root.dir()));
    let is_host = same_dir(&target, g.root.dir());
    let timeout = duration(&a.service_timeout)?;
    let map_node = a
        .map_node
        .as_deref()
        .map(NodeMap::parse)
        .transpose()
        .map_err(|e| Exit::usage(anyhow!(e)))?;
    let (config, archive, _fetched) = resolve(g, &a.archive, g.root.dir())?;
    if !target.is_dir() {
        return Err(Exit::usage(anyhow!(
            "--target {}: not a directory",
            target.display()
        )));
    }
    let req = Request {
        archive,
        target: target.clone(),
        mode: Mode::Restore,
        only: a.only.clone(),
        paths: a.paths.clone(),
        map_node,
        pve: None,
    };
    let p = restore::prepare(&req, cancel).map_err(fail)?;
    if g.json && a.dry_run {
        println!(
            "{}",
            serde_json::to_string_pretty(&plan_json(&p)).unwrap_or_default()
        );
    } else if !g.json && g.verbosity >= 0 {
        print_plan(&p);
    }
    // Refused before asking anything (also for --dry-run: the plan cannot be carried out).
    restore::check_conflicts(&p.plan).map_err(fail)?;
    if a.dry_run {
        if !g.json {
            println!("\ndry run: nothing was written");
        }
        return Ok(exit::OK);
    }
    if !p.plan.changes() {
        if g.json {
            println!(
                "{}",
                serde_json::json!({"status": "ok", "plan": plan_json(&p), "changed": 0})
            );
        } else {
            println!("\nnothing to do: the target already matches the archive");
        }
        return Ok(exit::OK);
    }
    let writes = p.plan.writes().count() + p.plan.removals().count();
    confirm(
        &format!("write {writes} entries to {}", target.display()),
        "restore",
        a.yes,
        cancel,
    )?;
    let log = log_for(g);
    let how = execution(&config, a.no_safety_backup, false);
    let progress = log.progress();
    let outcome = restore::execute(&p, &how, &log, progress.as_ref(), cancel).map_err(fail)?;
    let mut code = finish_code(&outcome);
    let undo = outcome
        .safety_archive
        .as_ref()
        .map(|s| undo_command(g, s, &target));
    let mut applied = Vec::new();
    let mut services_note = None;
    if outcome.report.stopped.is_none() && a.apply_services {
        if is_host {
            applied = restore::run_follow_ups(&outcome.follow_ups, timeout, &log, cancel);
            if cancel.load(Ordering::Relaxed) {
                code = exit::INTERRUPTED;
                services_note = Some(
                    "interrupted while running the follow-up commands; every file was restored"
                        .to_string(),
                );
            } else if applied.iter().any(|x| !x.ok) {
                code = code.max(exit::WARNINGS);
            }
        } else {
            services_note = Some(format!(
                "--apply-services: not run, {} is not this host",
                target.display()
            ));
        }
    }
    if g.json {
        let v = serde_json::json!({
            "status": status_name(code), "exit_code": code, "archive": p.archive, "target": target,
            "plan": plan_json(&p), "outcome": &outcome, "undo": undo, "services": applied,
            "services_note": services_note, "duration_ms": started.elapsed().as_millis() as u64,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print_outcome(&outcome, undo.as_deref(), started);
        print_follow_ups(
            &outcome,
            &applied,
            services_note.as_deref(),
            a.apply_services,
        );
    }
    Ok(code)
}

fn execution(config: &config::Config, no_safety: bool, extract: bool) -> Execute {
    Execute {
        safety_dir: (!no_safety && !extract).then(|| absolute(&config.backup_dir)),
        encryption: config.encryption.clone(),
        lock_file: (!extract).then(|| config.lock_file.clone()),
        now: now(),
        apply: ApplyOptions {
            extract,
            ..ApplyOptions::default()
        },
    }
}

fn status_name(code: i32) -> &'static str {
    match code {
        exit::OK => "ok",
        exit::WARNINGS => "warning",
        exit::INTERRUPTED => "interrupted",
        _ => "failed",
    }
}

fn finish_code(o: &Outcome) -> i32 {
    match &o.report.stopped {
        None if o.report.warnings.is_empty() => exit::OK,
        None => exit::WARNINGS,
        Some(Stop::Interrupted) => exit::INTERRUPTED,
        Some(Stop::Damaged { .. }) => exit::DAMAGED,
        Some(Stop::Failed { .. }) => exit::FAILED,
    }
}

fn undo_command(g: &Globals, safety: &Path, target: &Path) -> String {
    let mut args: Vec<String> = Vec::new();
    if let Some(c) = &g.config_path {
        args.push("--config".into());
        args.push(absolute(c).display().to_string());
    }
    args.extend([
        "restore".into(),
        safety.display().to_string(),
        "--target".into(),
        target.display().to_string(),
    ]);
    CommandSpec::new(
        "proxkeep",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .display()
}

fn extract(g: &Globals, archive: &str, dir: &Path, cancel: &AtomicBool) -> Result<i32, Exit> {
    let started = Instant::now();
    let (config, archive, _fetched) = resolve(g, archive, g.root.dir())?;
    let req = Request {
        archive,
        target: absolute(dir),
        mode: Mode::Extract,
        only: Vec::new(),
        paths: Vec::new(),
        map_node: None,
        pve: Some(proxkeep::restore::plan::PveWrite::Plain),
    };
    let p = restore::prepare(&req, cancel).map_err(fail)?;
    let log = log_for(g);
    let progress = log.progress();
    let outcome = restore::execute(
        &p,
        &execution(&config, true, true),
        &log,
        progress.as_ref(),
        cancel,
    )
    .map_err(fail)?;
    let code = finish_code(&outcome);
    if g.json {
        let v = serde_json::json!({"status": status_name(code), "exit_code": code, "archive": p.archive, "dir": req.target,
            "outcome": &outcome, "duration_ms": started.elapsed().as_millis() as u64});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if g.verbosity >= 0 || code != exit::OK {
        print_outcome(&outcome, None, started);
    }
    Ok(code)
}

fn changes_text(s: &Step) -> String {
    match &s.action {
        Action::Replace(c) => {
            let names: Vec<String> = c
                .iter()
                .map(|c| {
                    serde_json::to_value(c)
                        .ok()
                        .and_then(|v| v.as_str().map(String::from))
                        .unwrap_or_default()
                })
                .collect();
            format!("  ({})", names.join(", "))
        }
        _ if s.implicit => "  (directory of what is restored)".into(),
        _ => String::new(),
    }
}

fn print_plan(p: &Prepared) {
    let mut out = std::io::stdout().lock();
    let m = &p.meta;
    let _ = writeln!(
        out,
        "archive  {} ({} {} of {}{})",
        p.archive.display(),
        m.purpose,
        m.role,
        m.host,
        if m.created.is_empty() {
            String::new()
        } else {
            format!(", {}", m.created)
        }
    );
    let _ = writeln!(out, "target   {}", p.target.dir.display());
    if p.is_safety_archive() {
        let _ = writeln!(
            out,
            "         a safety archive: restoring it undoes the restore that made it (nothing is held)"
        );
    }
    let counts = p.plan.counts();
    let _ = writeln!(
        out,
        "\n{:<16} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7}",
        "category", "create", "replace", "same", "held", "conflict", "remove"
    );
    let mut total = proxkeep::restore::plan::Counts {
        category: "total".into(),
        ..Default::default()
    };
    for c in &counts {
        let _ = writeln!(
            out,
            "{:<16} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7}",
            c.category, c.create, c.replace, c.same, c.held, c.conflict, c.remove
        );
        total.create += c.create;
        total.replace += c.replace;
        total.same += c.same;
        total.held += c.held;
        total.conflict += c.conflict;
        total.remove += c.remove;
    }
    let t = &total;
    let _ = writeln!(
        out,
        "{:<16} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7}",
        t.category, t.create, t.replace, t.same, t.held, t.conflict, t.remove
    );
    if p.plan.not_selected > 0 {
        let _ = writeln!(
            out,
            "({} entries not selected by --only/--path)",
            p.plan.not_selected
        );
    }
    let writes: Vec<&Step> = p
        .plan
        .steps
        .iter()
        .filter(|s| s.action.writes() || s.action == Action::Remove)
        .collect();
    if !writes.is_empty() {
        let _ = writeln!(out, "\nwill write {} entries:", writes.len());
        for s in writes {
            let _ = writeln!(
                out,
                "  {:<8} {}{}",
                s.action.name(),
                s.shown(),
                changes_text(s)
            );
        }
    }
    let held: Vec<&Step> = p
        .plan
        .steps
        .iter()
        .filter(|s| s.action == Action::Held)
        .collect();
    if !held.is_empty() {
        let _ = writeln!(
            out,
            "\nheld: hardware- or install-bound, differ from the target; name them with --only or --path to restore them:"
        );
        for s in held {
            let _ = writeln!(out, "  {}", s.shown());
            if let Some(d) = &s.diff {
                for line in d.lines() {
                    let _ = writeln!(out, "    {line}");
                }
            }
        }
    }
    let conflicts: Vec<&Step> = p.plan.conflicts().collect();
    if !conflicts.is_empty() {
        let _ = writeln!(
            out,
            "\nconflicts (nothing will be written while there are any):"
        );
        for s in conflicts {
            if let Action::Conflict(why) = &s.action {
                let _ = writeln!(out, "  {}: {why}", s.shown());
            }
        }
    }
}

fn plan_json(p: &Prepared) -> serde_json::Value {
    let steps: Vec<serde_json::Value> = p
        .plan
        .steps
        .iter()
        .map(|s| {
            let mut v = serde_json::json!({"path": s.shown(), "category": s.category, "kind": s.kind, "action": s.action.name()});
            match &s.action {
                Action::Replace(c) => v["changes"] = serde_json::json!(c),
                Action::Conflict(why) => v["reason"] = serde_json::json!(why),
                _ => {}
            }
            if s.implicit {
                v["implicit"] = serde_json::json!(true);
            }
            if let Some(d) = &s.diff {
                v["diff"] = serde_json::json!(d);
            }
            v
        })
        .collect();
    serde_json::json!({
        "purpose": p.meta.purpose, "host": p.meta.host, "target": p.target.dir,
        "counts": p.plan.counts(), "steps": steps, "not_selected": p.plan.not_selected,
        "internal": p.plan.internal,
    })
}

fn print_outcome(o: &Outcome, undo: Option<&str>, started: Instant) {
    let r = &o.report;
    let mut out = std::io::stdout().lock();
    if let Some(s) = &o.safety_archive {
        let _ = writeln!(out, "\nsafety   {}", s.display());
    }
    let _ = writeln!(
        out,
        "{}{} created, {} replaced, {} removed ({} of file data) in {:.1} s",
        if o.safety_archive.is_some() { "" } else { "\n" },
        r.created,
        r.replaced,
        r.removed,
        format_size(r.bytes),
        started.elapsed().as_secs_f64()
    );
    if let Some(stop) = &r.stopped {
        let head = match stop {
            Stop::Interrupted => "INTERRUPTED".to_string(),
            Stop::Damaged { .. } => format!("STOPPED, the archive is damaged: {stop}"),
            Stop::Failed { .. } => format!("STOPPED: {stop}"),
        };
        let _ = writeln!(
            out,
            "{head}\n{} entries were written, {} were not; every file is either its old or its new version, none is partial",
            r.done.len(),
            r.not_done
        );
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning: {w}");
    }
    if let Some(u) = undo {
        let _ = writeln!(out, "undo     {u}");
    }
}

fn print_follow_ups(o: &Outcome, applied: &[restore::Applied], note: Option<&str>, apply: bool) {
    if o.follow_ups.is_empty() {
        return;
    }
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "\nfollow-up for what was restored{}:",
        if apply {
            ""
        } else {
            " (run them, or restore with --apply-services)"
        }
    );
    for f in &o.follow_ups {
        let result = applied.iter().find(|a| {
            a.command
                == CommandSpec::new(
                    &f.command[0],
                    &f.command[1..]
                        .iter()
                        .map(String::as_str)
                        .collect::<Vec<_>>(),
                )
                .display()
        });
        let state = match result {
            Some(a) if a.ok => "  [done]".to_string(),
            Some(a) => format!(
                "  [FAILED: {}{}]",
                a.status,
                if a.stderr.is_empty() {
                    String::new()
                } else {
                    format!(": {}", a.stderr)
                }
            ),
            None if !f.automatic => "  [by hand]".to_string(),
            None => String::new(),
        };
        let _ = writeln!(out, "  {:<40} # {}{state}", f.display(), f.why);
    }
    if let Some(n) = note {
        let _ = writeln!(out, "{n}");
    }
}

// ------------------------------------------------------------------------------------------------
// pmxcfs

fn pmxcfs_extract(g: &Globals, db: &Path, dir: &Path, node: Option<&str>) -> Result<i32, Exit> {
    let e = |e: proxkeep::pmxcfs::PmxcfsError| fail(e.into());
    let stats = proxkeep::pmxcfs::extract(db, dir, node).map_err(e)?;
    if g.json {
        println!(
            "{}",
            serde_json::json!({"status": "ok", "dirs": stats.dirs, "files": stats.files, "bytes": stats.bytes, "dir": dir})
        );
        return Ok(exit::OK);
    }
    println!(
        "extracted {} directories, {} files ({}) into {}",
        stats.dirs,
        stats.files,
        format_size(stats.bytes),
        dir.display()
    );
    if node.is_none() {
        let nodes: Vec<String> = proxkeep::pmxcfs::read_tree(db)
            .map(|t| {
                t.into_iter()
                    .filter(|x| x.kind == proxkeep::pmxcfs::NodeKind::Dir)
                    .filter_map(|x| {
                        x.path
                            .strip_prefix("nodes/")
                            .filter(|n| !n.contains('/'))
                            .map(String::from)
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "pmxcfs' links (local, qemu-server, lxc, openvz) were not created: pass --node NAME (nodes in the db: {})",
            if nodes.is_empty() {
                "none".into()
            } else {
                nodes.join(", ")
            }
        );
    }
    Ok(exit::OK)
}

fn pmxcfs_restore(
    g: &Globals,
    archive: &str,
    target: Option<&Path>,
    force: bool,
    yes: bool,
    service_timeout: &str,
    cancel: &AtomicBool,
) -> Result<i32, Exit> {
    let target = absolute(target.unwrap_or(g.root.dir()));
    if !target.is_dir() {
        return Err(Exit::usage(anyhow!(
            "--target {}: not a directory",
            target.display()
        )));
    }
    let live = same_dir(&target, g.root.dir());
    let (config, archive, _fetched) = resolve(g, archive, g.root.dir())?;
    let req = RecoveryRequest {
        archive,
        target: target.clone(),
        live,
        force,
        service_timeout: duration(service_timeout)?,
        safety_dir: absolute(&config.backup_dir),
        lock_file: Some(config.lock_file.clone()),
        now: now(),
    };
    let staged = recovery::stage(&req, cancel).map_err(fail)?;
    let db = staged.db_dir.join("config.db");
    println!("archive  {}", req.archive.display());
    println!(
        "database version {}, {} entries, nodes: {}",
        staged.version,
        staged.entries,
        if staged.nodes.is_empty() {
            "none".into()
        } else {
            staged.nodes.join(", ")
        }
    );
    println!(
        "replaces {} (now: {})",
        db.display(),
        if staged.current.is_empty() {
            "absent".into()
        } else {
            staged.current.join(", ")
        }
    );
    match &staged.cluster {
        Some(c) => println!("cluster  {c:?}{}", if force { " (--force)" } else { "" }),
        None => println!("target is not this host: no service is stopped or started"),
    }
    if live {
        println!(
            "pve-cluster will be stopped, then started again (each step at most {})",
            service_timeout
        );
    }
    confirm(&format!("replace {}", db.display()), "restore", yes, cancel)?;
    let (nodes, hostname, has_corosync) = (
        staged.nodes.clone(),
        staged.hostname.clone(),
        staged.has_corosync,
    );
    let log = log_for(g);
    let swapped = recovery::swap(staged, &req, &log, cancel).map_err(fail)?;
    if g.json {
        let v = serde_json::json!({"status": "ok", "swapped": swapped, "next_steps": recovery::next_steps(&nodes, &hostname, has_corosync, live)});
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(exit::OK);
    }
    if let Some(s) = &swapped.safety_copy {
        println!(
            "safety   previous config.db files copied to {}",
            s.display()
        );
    }
    println!("replaced {} (mode 0600)", swapped.db.display());
    if swapped.stopped {
        println!("pve-cluster stopped and started again");
    }
    for w in &swapped.warnings {
        println!("warning: {w}");
    }
    println!("\nnext:");
    for s in recovery::next_steps(&nodes, &hostname, has_corosync, live) {
        println!("  - {s}");
    }
    Ok(if swapped.warnings.is_empty() {
        exit::OK
    } else {
        exit::WARNINGS
    })
}
