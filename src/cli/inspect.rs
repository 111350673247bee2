//! `list`, `show`, `ls`, `cat`, `verify`, `diff`: presenters only; the work is in `proxkeep::inspect`.

use super::args::{DiffArgs, InspectCommand};
use super::{Exit, ctx::Ctx, ctx::NEVER};
use anyhow::anyhow;
use base64::Engine as _;
use proxkeep::app::{exit_if, select_tiers};
use proxkeep::archive::format::{Kind, hex_decode};
use proxkeep::archive::reader::Problem;
use proxkeep::archive::session::warning_text;
use proxkeep::exit;
use proxkeep::inspect::table::{Align, local_time, render};
use proxkeep::inspect::{self, InspectError, State, diff};
use proxkeep::output::{esc, esc_line, escape};
use proxkeep::store::tier;
use proxkeep::units::format_size;
use serde::Serialize;
use std::borrow::Cow;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

pub fn run(ctx: &Ctx, cmd: &InspectCommand) -> Result<i32, Exit> {
    // main turns SIGINT/SIGTERM into a flag (a backup must clean up first). These commands only read, and the
    // state file is replaced atomically, so an interrupt simply ends them, with the documented 130.
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if ctx.cancel.load(Ordering::Relaxed) {
                    // No stdout flush here: the command may be blocked writing to it, holding its lock.
                    eprintln!("interrupted");
                    std::process::exit(exit::INTERRUPTED);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
        let result = run_command(ctx, cmd);
        done.store(true, Ordering::Relaxed);
        result
    })
}

fn run_command(ctx: &Ctx, cmd: &InspectCommand) -> Result<i32, Exit> {
    match cmd {
        InspectCommand::List {
            dir, tier: Some(t), ..
        } if t != "local" => list_tiers(ctx, dir, t),
        InspectCommand::List { dir, all_hosts, .. } => {
            let host = (!*all_hosts).then(|| ctx.hostname());
            list(ctx, &ctx.backup_dir(dir)?, host.as_deref())
        }
        InspectCommand::Show { archive, dir } => show(ctx, &ctx.resolve(archive, dir)?.path),
        InspectCommand::Ls {
            archive,
            prefix,
            dir,
        } => ls(ctx, &ctx.resolve(archive, dir)?.path, prefix.as_deref()),
        InspectCommand::Cat {
            archive,
            path,
            show_secrets,
            dir,
        } => cat(ctx, &ctx.resolve(archive, dir)?.path, path, *show_secrets),
        InspectCommand::Verify { all: true, dir, .. } => verify_all(ctx, &ctx.backup_dir(dir)?),
        InspectCommand::Verify { archive, dir, .. } => {
            let archive = archive.as_deref().unwrap_or("latest");
            verify_one(ctx, &ctx.resolve(archive, dir)?.path)
        }
        InspectCommand::Diff(a) => compare(ctx, a),
    }
}

fn compare(ctx: &Ctx, a: &DiffArgs) -> Result<i32, Exit> {
    let opts = diff::Options {
        patch: a.patch,
        show_secrets: a.show_secrets,
        internal: a.internal,
    };
    let from = ctx.resolve(&a.archive, &a.dir)?;
    let report = match (&a.archive2, a.live) {
        (Some(b), false) => diff::archives(&from.path, &ctx.resolve(b, &a.dir)?.path, &opts),
        _ => diff::live(&from.path, &ctx.root, ctx.config()?, &opts),
    }
    .map_err(fail)?;
    for w in &report.warnings {
        eprintln!("warning: {}", esc_line(&warning_text(w)));
    }
    ctx.out.result(&report, |o| diff_text(&report, &opts, o))?;
    Ok(exit_if(a.exit_code && !report.differences.is_empty(), 1))
}

fn fail(e: InspectError) -> Exit {
    match e {
        InspectError::Output(e) => Exit::failed(e),
        e => Exit::new(e.exit_code(), e),
    }
}

/// `columns`: the headers, space-separated; a `>` before one aligns its column right.
fn table(out: &mut dyn Write, columns: &str, rows: &[Vec<String>]) -> io::Result<()> {
    let (headers, align): (Vec<&str>, Vec<Align>) = columns
        .split(' ')
        .map(|c| match c.strip_prefix('>') {
            Some(c) => (c, Align::Right),
            None => (c, Align::Left),
        })
        .unzip();
    out.write_all(render(&headers, &align, rows).as_bytes())
}

/// Unix seconds in local time (empty when out of range).
fn local(secs: i64, format: &str) -> String {
    let t = jiff::Timestamp::from_second(secs);
    t.map(|t| local_time(t, format)).unwrap_or_default()
}

#[derive(Serialize)]
struct TierListing {
    tier: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    archives: Option<Vec<TierArchive>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

#[derive(Serialize)]
struct TierArchive {
    archive: String,
    time: i64,
    role: String,
    size: u64,
}

/// `list --tier`: this host's archives on each selected tier.
fn list_tiers(ctx: &Ctx, dir: &Option<PathBuf>, which: &str) -> Result<i32, Exit> {
    let (host, dir) = (ctx.hostname(), ctx.backup_dir(dir)?);
    let tiers = tier::tiers(ctx.config()?, &dir, &NEVER);
    let which = (which != "all").then_some(which);
    let selected = select_tiers(&tiers, which, "all, ").map_err(|e| Exit::usage(anyhow!(e)))?;
    let listings: Vec<TierListing> = selected
        .iter()
        .map(|t| {
            let listed = t.ready().and_then(|()| t.list(&host));
            let error = listed.as_ref().err().map(|e| e.to_string());
            if let Some(e) = &error {
                eprintln!("warning: tier {}: {e}", t.label());
            }
            let archive = |a: &proxkeep::store::Listed| TierArchive {
                archive: a.file.clone(),
                time: a.name.time.as_second(),
                role: a.name.role.to_string(),
                size: a.size,
            };
            let archives = listed.ok().map(|l| l.iter().map(archive).collect());
            TierListing {
                tier: t.label(),
                archives,
                error,
            }
        })
        .collect();
    ctx.out.result(&listings, |o| {
        let rows: Vec<Vec<String>> = listings
            .iter()
            .flat_map(|t| t.archives.iter().flatten().map(|a| (t.tier.clone(), a)))
            .map(|(tier, a)| {
                vec![
                    tier,
                    local(a.time, "%Y-%m-%d %H:%M:%S"),
                    a.role.clone(),
                    format_size(a.size),
                    a.archive.clone(),
                ]
            })
            .collect();
        table(o, "TIER TIME ROLE >SIZE ARCHIVE", &rows)
    })?;
    let unreachable = listings.iter().any(|t| t.error.is_some());
    Ok(exit_if(unreachable, exit::WARNINGS))
}

fn list(ctx: &Ctx, dir: &Path, host: Option<&str>) -> Result<i32, Exit> {
    let mut all = inspect::list(dir, host).map_err(fail)?;
    let safety = inspect::list_safety(dir, host).map_err(fail)?;
    let backups = all.len();
    all.extend(safety);
    let (archives, safety) = all.split_at(backups);
    ctx.out.result(&all, |out| {
        if archives.is_empty() {
            let whose = host.map(|h| format!(" of host {h}")).unwrap_or_default();
            writeln!(out, "no archives{whose} in {}", dir.display())?;
            return safety_text(safety, out);
        }
        let dash = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |n| n.to_string());
        let rows: Vec<Vec<String>> = archives
            .iter()
            .map(|a| {
                let c = esc(&a.compression);
                let c = a.level.map_or_else(|| c.to_string(), |l| format!("{c} {l}"));
                vec![
                    local_time(a.timestamp, "%Y-%m-%d %H:%M:%S"),
                    esc(&a.role).into(),
                    format_size(a.size),
                    if a.encrypted { format!("{c}, age") } else { c },
                    dash(a.files),
                    dash(a.warnings),
                    a.state.name().to_string(),
                    a.name.clone(),
                ]
            })
            .collect();
        let columns = "TIME ROLE >SIZE COMPRESSION >FILES >WARNINGS STATE ARCHIVE";
        table(out, columns, &rows)?;
        for a in archives.iter().filter(|a| a.state == State::Damaged) {
            writeln!(out, "damaged: {}: {}", a.name, esc_line(a.reason.as_deref().unwrap_or("")))?;
        }
        if archives.iter().any(|a| a.encrypted && a.purpose.is_none() && a.state != State::Damaged) {
            writeln!(out, "(age-encrypted archives: their details need --identity FILE or --passphrase-file FILE)")?;
        }
        if archives.iter().any(|a| a.files.is_none() && a.state != State::Damaged) {
            writeln!(out, "(files and warnings are known once an archive was read back: `proxkeep verify --all`)")?;
        }
        safety_text(safety, out)
    })?;
    Ok(exit::OK)
}

/// `list`'s own section for the restore-safety archives (the undo copies restores took), after the backups.
fn safety_text(safety: &[inspect::Listed], out: &mut dyn Write) -> io::Result<()> {
    if safety.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\nrestore-safety archives (what restores replaced; restore one to undo; [retention] keep_safety):"
    )?;
    let rows: Vec<Vec<String>> = safety
        .iter()
        .map(|a| {
            let time = local_time(a.timestamp, "%Y-%m-%d %H:%M:%S");
            vec![
                time,
                format_size(a.size),
                a.state.name().to_string(),
                a.name.clone(),
            ]
        })
        .collect();
    table(out, "TIME >SIZE STATE ARCHIVE", &rows)
}

fn show(ctx: &Ctx, path: &Path) -> Result<i32, Exit> {
    let s = inspect::show(path).map_err(fail)?;
    ctx.out
        .result(&s, |o| show_text(&s, ctx.verbosity > 0, o))?;
    Ok(exit::OK)
}

fn show_text(s: &inspect::Shown, verbose: bool, o: &mut dyn Write) -> io::Result<()> {
    let m = &s.meta;
    let created = local(m.created_unix, "%Y-%m-%d %H:%M:%S %Z");
    writeln!(o, "archive      {}", s.archive.display())?;
    let (size, c) = (format_size(s.size), &m.compression);
    writeln!(o, "size         {size} ({} {})", esc(&c.algorithm), c.level)?;
    if let Some(e) = &m.encryption {
        writeln!(o, "encryption   {}", esc(e))?;
    }
    writeln!(o, "host         {} (role {})", esc(&m.host), m.role)?;
    let v = &m.versions;
    let versions: Vec<String> = [
        ("pve", &v.pve),
        ("pbs", &v.pbs),
        ("debian", &v.debian),
        ("kernel", &v.kernel),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k} {v}")))
    .collect();
    if !versions.is_empty() {
        writeln!(o, "versions     {}", esc(&versions.join(", ")))?;
    }
    writeln!(o, "created      {created} ({})", esc(&m.created))?;
    let (tool, version, format) = (esc(&m.tool), esc(&m.tool_version), m.format_version);
    writeln!(o, "written by   {tool} {version} (format {format})")?;
    writeln!(o, "purpose      {}", esc(&m.purpose))?;
    if m.root != "/" {
        writeln!(o, "root         {}", esc(&m.root))?;
    }
    if m.pve_tree_from_db {
        writeln!(
            o,
            "/etc/pve     rebuilt from config.db (pmxcfs was not mounted)"
        )?;
    }
    // Categories that found nothing on this host go on one line, not as rows of zeros.
    let (full, empty): (Vec<_>, Vec<_>) = s
        .categories
        .iter()
        .partition(|c| c.files + c.dirs + c.symlinks + c.commands > 0);
    let row = |name: &str, fdl: [u64; 3], bytes, commands| {
        let [f, d, l] = fdl.map(|n| n.to_string());
        vec![name.to_string(), f, d, l, format_size(bytes), commands]
    };
    let mut rows: Vec<Vec<String>> = full
        .iter()
        .map(|c| {
            let cmds = match c.commands_failed {
                0 => c.commands.to_string(),
                n => format!("{} ({n} failed)", c.commands),
            };
            row(
                &esc(&c.category),
                [c.files, c.dirs, c.symlinks],
                c.bytes,
                cmds,
            )
        })
        .collect();
    let (t, cmds) = (&s.totals, s.commands.len().to_string());
    rows.push(row("total", [t.files, t.dirs, t.symlinks], t.bytes, cmds));
    writeln!(o)?;
    table(o, "CATEGORY >FILES >DIRS >LINKS >SIZE >COMMANDS", &rows)?;
    if !empty.is_empty() {
        let names: Vec<Cow<str>> = empty.iter().map(|c| esc(&c.category)).collect();
        writeln!(o, "nothing found: {}", names.join(", "))?;
    }
    writeln!(o, "\nwarnings     {}", s.warnings.len())?;
    for w in &s.warnings {
        writeln!(o, "  {}", esc_line(&warning_text(w)))?;
    }
    if !s.skipped.is_empty() {
        let n = s.skipped.len();
        writeln!(o, "not stored   {n} (sockets, FIFOs, devices)")?;
        for k in &s.skipped {
            writeln!(o, "  {} ({})", esc(&k.path), esc(&k.kind))?;
        }
    }
    if !s.absent.is_empty() {
        writeln!(
            o,
            "absent       {} catalog path(s) do not exist on this host",
            s.absent.len()
        )?;
        for a in s.absent.iter().filter(|_| verbose) {
            writeln!(o, "  {} ({})", esc(&a.path), esc(&a.category))?;
        }
    }
    Ok(())
}

fn type_char(kind: &str) -> char {
    match kind {
        "dir" => 'd',
        "symlink" => 'l',
        "hardlink" => 'h',
        "file" => '-',
        _ => '?',
    }
}

/// `rwxr-x---` from permission bits (setuid/setgid/sticky shown as ls does).
fn perm_string(mode: u32) -> String {
    let mut s: Vec<char> = "rwxrwxrwx"
        .chars()
        .enumerate()
        .map(|(i, c)| if mode & (0o400 >> i) != 0 { c } else { '-' })
        .collect();
    for (bit, pos, set, unset) in [
        (0o4000, 2, 's', 'S'),
        (0o2000, 5, 's', 'S'),
        (0o1000, 8, 't', 'T'),
    ] {
        if mode & bit != 0 {
            s[pos] = if s[pos] == '-' { unset } else { set };
        }
    }
    s.into_iter().collect()
}

fn ls(ctx: &Ctx, path: &Path, prefix: Option<&str>) -> Result<i32, Exit> {
    let mut entries = Vec::new();
    let r = if ctx.json() {
        inspect::ls(path, prefix, |e| {
            entries.push(e.clone());
            Ok(())
        })
    } else {
        // Streamed, so everything read before a damaged spot is out before the error.
        ctx.out
            .stream(|out| inspect::ls(path, prefix, |e| ls_line(e, out)))
    };
    let r = match r {
        Ok(0) if prefix.is_some() => Err(Exit::failed(anyhow!(
            "no entry under {:?} in {}",
            prefix.unwrap_or(""),
            path.display()
        ))),
        Ok(_) => Ok(exit::OK),
        Err(e) => Err(fail(e)),
    };
    if !ctx.json() {
        return r;
    }
    let doc = serde_json::json!({ "archive": path, "entries": entries });
    match r {
        Ok(code) => ctx.out.json(&doc).map(|()| code),
        // One document: the error, with what was read before it.
        Err(Exit(code, e, _)) => Err(Exit(code, e, Some(doc))),
    }
}

fn ls_line(e: &inspect::LsEntry, out: &mut dyn Write) -> io::Result<()> {
    let mode = u32::from_str_radix(&e.mode, 8).unwrap_or(0);
    let when = local(e.mtime, "%Y-%m-%d %H:%M");
    let link = e
        .target
        .as_ref()
        .map(|t| format!(" -> {}", esc(t)))
        .unwrap_or_default();
    let (kind, perm) = (type_char(e.kind), perm_string(mode));
    let raw = e.path_hex.as_deref().and_then(hex_decode);
    let path = raw.as_deref().map_or_else(|| esc(&e.path), escape);
    writeln!(
        out,
        "{kind}{perm} {:>5}/{:<5} {:>9} {when} {path}{link}",
        e.uid, e.gid, e.size
    )
}

fn cat(ctx: &Ctx, path: &Path, entry: &str, show_secrets: bool) -> Result<i32, Exit> {
    let norm = inspect::normalize_entry_path(entry);
    // Secrets go to files and pipes (that is what `cat` is for), but not onto a screen by accident.
    if proxkeep::secrets::is_secret(&norm) && !show_secrets && io::stdout().is_terminal() {
        return Err(Exit::usage(anyhow!(
            "{norm} holds secrets: not printing it to a terminal (redirect to a file, or add --show-secrets)"
        )));
    }
    if !ctx.json() {
        return ctx
            .out
            .stream(|out| inspect::cat(path, &norm, out))
            .map(|_| exit::OK)
            .map_err(fail);
    }
    let mut data = Vec::new();
    let r = inspect::cat(path, &norm, &mut data);
    let mut doc = serde_json::json!({ "archive": path, "path": norm, "size": data.len() });
    match String::from_utf8(data) {
        Ok(s) => doc["content"] = s.into(),
        Err(e) => doc["content_base64"] = base64(e.as_bytes()).into(),
    }
    match r {
        Ok(info) => {
            doc["sha256"] = info.sha256.into();
            ctx.out.json(&doc).map(|()| exit::OK)
        }
        Err(e) => Err(Exit(e.exit_code(), e.into(), Some(doc))),
    }
}

fn base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

fn problem_lines(out: &mut dyn Write, problems: &[Problem], limit: usize) -> io::Result<()> {
    for p in problems.iter().take(limit) {
        writeln!(out, "  {}", esc_line(&p.to_string()))?;
    }
    if problems.len() > limit {
        let more = problems.len() - limit;
        writeln!(out, "  … and {more} more (--json lists them all)")?;
    }
    Ok(())
}

fn warn_record(v: &inspect::Verified) {
    if let Some(e) = &v.record_error {
        eprintln!("warning: {e}");
    }
}

fn verify_one(ctx: &Ctx, path: &Path) -> Result<i32, Exit> {
    let v = inspect::verify(path).map_err(fail)?;
    warn_record(&v);
    ctx.out.result(&v, |out| {
        let sha = v.sha256.as_deref().unwrap_or("-");
        if !v.ok {
            let n = v.problems.len();
            writeln!(out, "DAMAGED  {}: {n} problem(s)", v.archive.display())?;
            return problem_lines(out, &v.problems, 50);
        }
        writeln!(out, "ok       {}", v.archive.display())?;
        if v.sidecar_only {
            writeln!(
                out,
                "sha256   {sha} matches its sidecar; the content was not checked: it is encrypted \
                 (--identity FILE or --passphrase-file FILE reads it back completely)"
            )
        } else {
            let (n, size, comp) = (v.entries, format_size(v.size), v.compression);
            writeln!(
                out,
                "entries  {n} ({size}, {comp}), every hash and header matches the index"
            )?;
            writeln!(out, "sha256   {sha} (sidecar {})", v.sidecar)
        }
    })?;
    Ok(exit_if(!v.ok, exit::DAMAGED))
}

fn verify_all(ctx: &Ctx, dir: &Path) -> Result<i32, Exit> {
    let all = inspect::verify_dir(dir).map_err(fail)?;
    all.iter().for_each(warn_record);
    let damaged = all.iter().filter(|v| !v.ok).count();
    ctx.out.result(&all, |out| {
        if all.is_empty() {
            return writeln!(out, "no archives in {}", dir.display());
        }
        let rows: Vec<Vec<String>> = all
            .iter()
            .map(|v| {
                let result = match (v.ok, v.sidecar_only) {
                    (true, true) => "ok (sha256 only: encrypted)".into(),
                    (true, false) => "ok".into(),
                    (false, _) => format!("DAMAGED ({})", v.problems.len()),
                };
                vec![
                    v.name.clone(),
                    format_size(v.size),
                    v.entries.to_string(),
                    v.sidecar.to_string(),
                    result,
                ]
            })
            .collect();
        table(out, "ARCHIVE >SIZE >ENTRIES SIDECAR RESULT", &rows)?;
        for v in all.iter().filter(|v| !v.ok) {
            writeln!(out, "\n{}:", v.name)?;
            problem_lines(out, &v.problems, 20)?;
        }
        let (n, ok) = (all.len(), all.len() - damaged);
        writeln!(out, "\n{n} archive(s): {ok} ok, {damaged} damaged")
    })?;
    Ok(exit_if(damaged > 0, exit::DAMAGED))
}

fn diff_text(r: &diff::Report, opts: &diff::Options, out: &mut dyn Write) -> io::Result<()> {
    if r.differences.is_empty() {
        let (from, to) = (esc(&r.from), esc(&r.to));
        return writeln!(out, "no differences between {from} and {to}");
    }
    writeln!(out, "--- {}\n+++ {}", esc(&r.from), esc(&r.to))?;
    let mut category = None;
    for d in &r.differences {
        if category != Some(&d.category) {
            writeln!(out, "\n{}", esc(&d.category))?;
            category = Some(&d.category);
        }
        let (mark, what) = match d.change {
            diff::Change::Added => ('+', "added"),
            diff::Change::Removed => ('-', "removed"),
            diff::Change::Changed => ('~', "changed"),
        };
        let details: Vec<String> = d
            .details
            .iter()
            .map(|x| esc(&x.to_string()).into())
            .collect();
        let path = escape(&d.raw);
        let secret = d.secret && d.change != diff::Change::Changed && !opts.show_secrets;
        let secret = if secret { " (secret)" } else { "" };
        let kind = match d.kind {
            Kind::File => "",
            Kind::Dir => " (dir)",
            Kind::Symlink => " (symlink)",
        };
        if details.is_empty() {
            writeln!(out, "  {mark} {path}{kind}: {what}{secret}")?;
        } else {
            writeln!(out, "  {mark} {path}{kind}: {}", details.join("; "))?;
        }
        if let Some(p) = &d.patch {
            // Unindented, so the output can be fed to `patch` / `git apply` as it is.
            write!(out, "{p}")?;
        } else if let Some(n) = d.patch_note.as_ref().filter(|_| !d.secret) {
            writeln!(out, "    ({})", esc_line(n))?;
        }
    }
    let (n, a, rm, c) = (r.differences.len(), r.added, r.removed, r.changed);
    writeln!(
        out,
        "\n{n} difference(s): {a} added, {rm} removed, {c} changed"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permissions_and_base64() {
        assert_eq!(perm_string(0o640), "rw-r-----");
        assert_eq!(perm_string(0o4755), "rwsr-xr-x");
        assert_eq!(perm_string(0o1777), "rwxrwxrwt");
        assert_eq!(perm_string(0o2640), "rw-r-S---");
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe]), "//4=");
    }
}
