//! `restore --apply-network` and `network confirm|status|rollback`: the sequence on screen, the typed
//! confirmation with its deadline, the state. The journeys are in `proxkeep::app::network`.

use super::Exit;
use super::args::{NetworkAction, RestoreArgs};
use super::ctx::Ctx;
use super::emit::{confirm, read_answer};
use anyhow::anyhow;
use proxkeep::app::network::{
    self as journey, ApplyRequest, NetError, NetReport, Preview, When, Worker,
};
use proxkeep::app::restore::PlanDoc;
use proxkeep::exit;
use proxkeep::output::{Redactor, esc, esc_line};
use proxkeep::restore::Prepared;
use proxkeep::restore::netapply::{self, CONFIRM_WORD, Status};
use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

fn fail(e: NetError) -> Exit {
    Exit::new(e.exit_code(), e)
}

pub fn run(ctx: &Ctx, action: &NetworkAction) -> Result<i32, Exit> {
    let log = ctx.log(Redactor::default());
    let r = match action {
        NetworkAction::Confirm => journey::confirm(&ctx.root),
        NetworkAction::Status => journey::status(&ctx.root),
        NetworkAction::Rollback { at } => {
            if at.is_some() {
                // The worker: its session may end (SIGHUP) long before the deadline.
                let _ = signal_hook::flag::register(
                    signal_hook::consts::SIGHUP,
                    std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false)),
                );
            }
            let when = match at {
                Some(t) => When::At(*t),
                None => When::Now("rolled back by `proxkeep network rollback`".into()),
            };
            journey::rollback(&ctx.root, ctx.config()?, when, &log, ctx.cancel)
        }
    }
    .map_err(fail)?;
    ctx.out.result(&r, |o| report_text(&r, o))?;
    Ok(r.exit_code)
}

/// Said once, at the start of the next command after a rollback.
pub fn notice(ctx: &Ctx) {
    if let Some(n) = journey::take_notice(&ctx.root) {
        super::emit::notice(&n);
    }
}

fn duration(s: &str) -> Result<Duration, Exit> {
    proxkeep::units::parse_duration(s)
        .map_err(|e| Exit::usage(anyhow!("--rollback-after: {e}")))
        .and_then(|d| match d.as_secs() {
            0 => Err(Exit::usage(anyhow!("--rollback-after: at least 1s"))),
            _ => Ok(d),
        })
}

/// `--json` of `--apply-network`: the sequence (`--dry-run`) or what was done, with the plan it carries out
/// (its NIC notes, rewrites and blockers: the text shows that plan first).
#[derive(serde::Serialize)]
struct WithPlan<'a, T: serde::Serialize> {
    #[serde(flatten)]
    inner: &'a T,
    plan: PlanDoc,
}

/// `restore … --apply-network`, after the plan is shown and has no conflicts.
pub fn apply(ctx: &Ctx, a: &RestoreArgs, p: &Prepared, target: &Path) -> Result<i32, Exit> {
    let root = proxkeep::app::absolute(ctx.root.dir());
    if !super::restore::same_dir(target, &root) {
        return Err(Exit::usage(anyhow!(
            "--apply-network applies the network of the running host (--root {}, default /); --target {} is not it",
            root.display(),
            target.display()
        )));
    }
    let (files, dirs) = journey::from_plan(p).map_err(fail)?;
    let exe = std::env::current_exe()
        .map_err(|e| Exit::failed(anyhow!("cannot find this program: {e}")))?;
    let config_path = ctx.config_path.as_deref().map(proxkeep::app::absolute);
    let req = ApplyRequest {
        root: &ctx.root,
        archive: p.archive.display().to_string(),
        files,
        dirs,
        rollback_after: duration(&a.rollback_after)?,
        dns_name: a.dns_name.clone(),
        worker: Worker {
            exe,
            config: config_path,
        },
        config: ctx.config()?,
        now: ctx.now.as_second(),
    };
    if a.dry_run {
        let pv = journey::preview(&req);
        let doc = WithPlan {
            inner: &pv,
            plan: PlanDoc::new(p),
        };
        return ctx
            .out
            .result(&doc, |o| preview_text(&pv, o))
            .map(|()| exit::OK);
    }
    let n = req.files.len();
    let what = format!(
        "apply {n} network files with a rollback after {}",
        a.rollback_after
    );
    confirm(&what, "restore", (a.yes, true), ctx.cancel)?;
    let log = ctx.log(Redactor::default());
    let mut r = journey::apply(&req, &log).map_err(fail)?;
    let armed = r.state.as_ref().filter(|s| s.status == Status::Armed);
    if let Some(deadline) = armed.map(|s| s.deadline)
        && io::stdin().is_terminal()
        && !ctx.json()
    {
        ctx.out.text(|o| report_text(&r, o))?;
        r = keep_prompt(ctx, deadline, &log)?;
    }
    let doc = WithPlan {
        inner: &r,
        plan: PlanDoc::new(p),
    };
    ctx.out.result(&doc, |o| report_text(&r, o))?;
    Ok(r.exit_code)
}

/// The confirmation word in the same terminal, until the deadline; anything else rolls back now.
fn keep_prompt(ctx: &Ctx, deadline: i64, log: &proxkeep::output::Log) -> Result<NetReport, Exit> {
    let left = deadline - jiff::Timestamp::now().as_second();
    let until = Instant::now() + Duration::from_secs(left.max(0) as u64);
    eprint!(
        "Type `{CONFIRM_WORD}` before {} to keep the new network (else it is rolled back): ",
        netapply::show_time(deadline)
    );
    let _ = io::stderr().flush();
    let when = match read_answer(ctx.cancel, Some(until)) {
        Ok(Some(l)) if l.trim() == CONFIRM_WORD => {
            return journey::confirm(&ctx.root).map_err(fail);
        }
        // End of input: the terminal is gone (a dropped SSH session); the armed rollback does its work.
        Ok(Some(l)) if l.is_empty() => return journey::status(&ctx.root).map_err(fail),
        Ok(None) => When::At(deadline),
        Ok(Some(_)) => When::Now(format!("`{CONFIRM_WORD}` was not typed at the prompt")),
        Err(_) => When::Now("interrupted at the prompt".into()),
    };
    journey::rollback(&ctx.root, ctx.config()?, when, log, ctx.cancel).map_err(fail)
}

fn preview_text(pv: &Preview, o: &mut dyn Write) -> io::Result<()> {
    writeln!(o, "\n--apply-network (dry run: nothing was touched):")?;
    writeln!(o, "1. stage the new files beside the live ones:")?;
    for (live, staged) in &pv.staged {
        writeln!(o, "     {} -> {}", esc(staged), esc(live))?;
    }
    match &pv.syntax_check {
        Some(c) => writeln!(o, "   syntax check: {}", esc(c))?,
        None => writeln!(
            o,
            "   syntax check: none (the set has no /etc/network/interfaces)"
        )?,
    }
    writeln!(o, "   keep the live files for the rollback:")?;
    for (live, copy) in &pv.rollback_copies {
        match copy {
            Some(c) => writeln!(o, "     {} -> {}", esc(live), esc(c))?,
            None => writeln!(
                o,
                "     {} (does not exist: removed by a rollback)",
                esc(live)
            )?,
        }
    }
    writeln!(
        o,
        "2. arm the rollback ({}s): {}",
        pv.rollback_after_s,
        pv.mechanism.describe()
    )?;
    writeln!(o, "     {}", esc(&pv.arm_command))?;
    writeln!(o, "   state file {}", pv.state_file.display())?;
    writeln!(
        o,
        "3. move the staged files into place, then {}; health checks:",
        pv.apply_command
    )?;
    for c in &pv.checks {
        writeln!(o, "     {}", esc(c))?;
    }
    writeln!(
        o,
        "4. confirm with `proxkeep network confirm` (or type `{CONFIRM_WORD}` at the prompt); otherwise every file is put back and {} runs again",
        pv.apply_command
    )
}

fn report_text(r: &NetReport, o: &mut dyn Write) -> io::Result<()> {
    let Some(s) = &r.state else {
        return writeln!(o, "no network apply recorded ({})", r.state_file.display());
    };
    writeln!(o, "network  {} (from {})", s.status.name(), esc(&s.archive))?;
    for c in &s.checks {
        let mark = if c.ok { "ok  " } else { "FAIL" };
        let detail = if c.detail.is_empty() {
            String::new()
        } else {
            format!(": {}", esc_line(&c.detail))
        };
        writeln!(o, "  {mark} {}{detail}", esc(&c.check))?;
    }
    match s.status {
        Status::Armed => {
            writeln!(
                o,
                "rollback {} at {}",
                s.mechanism.describe(),
                netapply::show_time(s.deadline)
            )?;
            writeln!(o, "confirm with: proxkeep network confirm")?;
        }
        Status::Confirmed => writeln!(o, "kept: the rollback is disarmed and its copies removed")?,
        Status::RolledBack | Status::RollbackFailed => {
            let why = s.reason.as_deref().unwrap_or("unknown");
            writeln!(o, "rolled back: {}", esc_line(why))?;
        }
    }
    for n in &r.notes {
        writeln!(o, "{}", esc_line(n))?;
    }
    Ok(())
}
