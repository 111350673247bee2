//! `list`, `show`, `ls`, `cat`, `verify`, `diff` (issue 3): argument parsing and printing only; the work is in
//! `proxkeep::inspect`.

use super::{Exit, Globals};
use clap::Subcommand;
use proxkeep::archive::reader::Problem;
use proxkeep::config::format_size;
use proxkeep::exit;
use proxkeep::inspect::table::{Align, local_time, render};
use proxkeep::inspect::{self, InspectError, State, diff};
use proxkeep::tier;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// This host's archives, newest first, with their state (reads only each archive's meta.json)
    List {
        /// Backup directory (overrides the config)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Archives of every host in the directory, not only this one's
        #[arg(long)]
        all_hosts: bool,
        /// Also (or only) other tiers: `all`, `local`, `secondary:NAME`, `remote:NAME` or just NAME
        #[arg(long, value_name = "TIER")]
        tier: Option<String>,
    },
    /// What an archive is: meta.json, per-category counts and sizes, warnings
    Show {
        /// A path, a file name in the backup dir, `latest` or `latest~N`
        archive: String,
        /// Backup directory (overrides the config)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Entries of an archive with mode, owner, size and mtime
    Ls {
        /// A path, a file name in the backup dir, `latest` or `latest~N`
        archive: String,
        /// Only this path and what is below it (`etc/pve`)
        #[arg(value_name = "PATH-PREFIX")]
        prefix: Option<String>,
        /// Backup directory (overrides the config)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// One file's exact bytes to stdout
    Cat {
        /// A path, a file name in the backup dir, `latest` or `latest~N`
        archive: String,
        /// Path in the archive (`etc/pve/storage.cfg`)
        path: String,
        /// Print a secret file (keys, passwords, tokens) to a terminal too
        #[arg(long)]
        show_secrets: bool,
        /// Backup directory (overrides the config)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// Read archives back completely and check every entry; exit 6 on any damage
    Verify {
        /// A path, a file name in the backup dir, `latest` (the default) or `latest~N`
        archive: Option<String>,
        /// Every archive in the backup dir (all hosts), as a table
        #[arg(long, conflicts_with = "archive")]
        all: bool,
        /// Backup directory (overrides the config)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// What changed between two backups, or between a backup and the host now (--live)
    Diff {
        /// The older side: a path, a file name in the backup dir, `latest` or `latest~N`
        archive: String,
        /// The newer side
        #[arg(required_unless_present = "live", conflicts_with = "live")]
        archive2: Option<String>,
        /// Compare with the host under --root (default /) as a backup now would see it
        #[arg(long)]
        live: bool,
        /// Unified diffs of changed text files
        #[arg(long)]
        patch: bool,
        /// Show content and hashes of secret files (keys, passwords, tokens, priv/)
        #[arg(long)]
        show_secrets: bool,
        /// Exit 1 when there are differences (like `git diff --exit-code`)
        #[arg(long)]
        exit_code: bool,
        /// Compare the archives' own proxkeep/ entries (command outputs, config.db snapshot) too
        #[arg(long)]
        internal: bool,
        /// Backup directory (overrides the config)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

pub fn run(cmd: &Commands, g: &Globals, cancel: &AtomicBool) -> Result<i32, Exit> {
    // main turns SIGINT/SIGTERM into a flag (a backup must clean up first). These commands only read, and the
    // state file is replaced atomically, so an interrupt simply ends them, with the documented 130.
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                if cancel.load(Ordering::Relaxed) {
                    // No stdout flush here: the command may be blocked writing to it, holding its lock.
                    eprintln!("interrupted");
                    std::process::exit(exit::INTERRUPTED);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
        let result = run_command(cmd, g);
        done.store(true, Ordering::Relaxed);
        result
    })
}

fn run_command(cmd: &Commands, g: &Globals) -> Result<i32, Exit> {
    let config = g.load_config()?;
    let host = proxkeep::host::hostname(&g.root);
    let dir_of = |d: &Option<PathBuf>| d.clone().unwrap_or_else(|| config.backup_dir.clone());
    match cmd {
        Commands::List {
            dir,
            all_hosts,
            tier: Some(t),
        } if t != "local" => {
            let _ = all_hosts;
            list_tiers(g, &config, &dir_of(dir), &host, t)
        }
        Commands::List { dir, all_hosts, .. } => {
            list(g, &dir_of(dir), (!*all_hosts).then_some(host.as_str()))
        }
        Commands::Show { archive, dir } => {
            let path = resolve(&config, &dir_of(dir), &host, archive)?;
            let path = &path.path;
            show(g, &path)
        }
        Commands::Ls {
            archive,
            prefix,
            dir,
        } => {
            let path = resolve(&config, &dir_of(dir), &host, archive)?;
            let path = &path.path;
            ls(g, &path, prefix.as_deref())
        }
        Commands::Cat {
            archive,
            path: entry,
            show_secrets,
            dir,
        } => {
            let path = resolve(&config, &dir_of(dir), &host, archive)?;
            let path = &path.path;
            cat(g, &path, entry, *show_secrets)
        }
        Commands::Verify { archive, all, dir } => {
            let dir = dir_of(dir);
            if *all {
                verify_all(g, &dir)
            } else {
                let path = resolve(&config, &dir, &host, archive.as_deref().unwrap_or("latest"))?;
                let path = &path.path;
                verify_one(g, &path)
            }
        }
        Commands::Diff {
            archive,
            archive2,
            live,
            patch,
            show_secrets,
            exit_code,
            internal,
            dir,
        } => {
            let opts = diff::Options {
                patch: *patch,
                show_secrets: *show_secrets,
                internal: *internal,
            };
            let a = resolve(&config, &dir_of(dir), &host, archive)?;
            let a = &a.path;
            let report = match (archive2, live) {
                (Some(b), false) => {
                    diff::archives(a, &resolve(&config, &dir_of(dir), &host, b)?.path, &opts)
                }
                _ => diff::live(&a, &g.root, &config, &opts),
            }
            .map_err(fail)?;
            print_diff(g, &report, &opts).map_err(output)?;
            Ok(if *exit_code && !report.differences.is_empty() {
                1
            } else {
                exit::OK
            })
        }
    }
}

/// An ARCHIVE argument: local (path, name, `latest~N`) or `NAME:ARCHIVE` on a configured remote or secondary.
fn resolve(
    config: &proxkeep::config::Config,
    dir: &Path,
    host: &str,
    spec: &str,
) -> Result<tier::Resolved, Exit> {
    static NEVER: AtomicBool = AtomicBool::new(false);
    tier::resolve_archive(spec, config, dir, host, &NEVER)
        .map_err(|e| Exit(exit::USAGE, anyhow::anyhow!(e)))
}

/// `list --tier`: this host's archives on each selected tier.
fn list_tiers(
    g: &Globals,
    config: &proxkeep::config::Config,
    dir: &Path,
    host: &str,
    which: &str,
) -> Result<i32, Exit> {
    static NEVER: AtomicBool = AtomicBool::new(false);
    let tiers = tier::tiers(config, dir, &NEVER);
    let selected: Vec<_> = tiers
        .iter()
        .filter(|t| {
            which == "all"
                || t.label() == which
                || t.label().split_once(':').is_some_and(|(_, n)| n == which)
        })
        .collect();
    if selected.is_empty() {
        let names: Vec<String> = tiers.iter().map(|t| t.label()).collect();
        return Err(Exit(
            exit::USAGE,
            anyhow::anyhow!("no tier {which:?} (tiers: all, {})", names.join(", ")),
        ));
    }
    let mut rows = Vec::new();
    let mut json = Vec::new();
    let mut failed = false;
    for t in selected {
        match t.ready().and_then(|()| t.list(host)) {
            Ok(list) => {
                for a in &list {
                    rows.push(vec![
                        t.label(),
                        local_time(a.name.time, "%Y-%m-%d %H:%M:%S"),
                        a.name.role.to_string(),
                        format_size(a.size),
                        a.file.clone(),
                    ]);
                }
                json.push(serde_json::json!({"tier": t.label(), "archives": list.iter().map(|a| serde_json::json!({
                    "archive": a.file, "time": a.name.time.as_second(), "role": a.name.role, "size": a.size})).collect::<Vec<_>>()}));
            }
            Err(e) => {
                failed = true;
                eprintln!("warning: tier {}: {e}", t.label());
                json.push(serde_json::json!({"tier": t.label(), "error": e.to_string()}));
            }
        }
    }
    if g.json {
        json_line(&json)?;
    } else {
        let headers = ["TIER", "TIME", "ROLE", "SIZE", "ARCHIVE"];
        let align = [
            Align::Left,
            Align::Left,
            Align::Left,
            Align::Right,
            Align::Left,
        ];
        write!(io::stdout().lock(), "{}", render(&headers, &align, &rows)).map_err(output)?;
    }
    Ok(if failed { exit::WARNINGS } else { exit::OK })
}

fn fail(e: InspectError) -> Exit {
    match e {
        InspectError::Output(e) => output(e),
        e => Exit(e.exit_code(), e.into()),
    }
}

/// A reader that went away (`proxkeep ls latest | head`) ends the command quietly, as it would end `cat`:
/// with the status of a process killed by SIGPIPE, which Rust ignores by default.
fn output(e: io::Error) -> Exit {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(128 + 13);
    }
    Exit(
        exit::FAILED,
        anyhow::anyhow!("cannot write the output: {e}"),
    )
}

fn json_line(v: &impl serde::Serialize) -> Result<(), Exit> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v).map_err(|e| output(e.into()))?;
    writeln!(out).map_err(output)
}

// ------------------------------------------------------------------------------------------------

fn list(g: &Globals, dir: &Path, host: Option<&str>) -> Result<i32, Exit> {
    let archives = inspect::list(dir, host).map_err(fail)?;
    if g.json {
        json_line(&archives)?;
        return Ok(exit::OK);
    }
    let mut out = io::stdout().lock();
    if archives.is_empty() {
        let whose = host.map(|h| format!(" of host {h}")).unwrap_or_default();
        writeln!(out, "no archives{whose} in {}", dir.display()).map_err(output)?;
        return Ok(exit::OK);
    }
    let dash = |v: Option<u64>| v.map_or_else(|| "-".to_string(), |n| n.to_string());
    let rows: Vec<Vec<String>> = archives
        .iter()
        .map(|a| {
            vec![
                local_time(a.timestamp, "%Y-%m-%d %H:%M:%S"),
                a.role.clone(),
                format_size(a.size),
                {
                    let c = a.level.map_or_else(
                        || a.compression.clone(),
                        |l| format!("{} {l}", a.compression),
                    );
                    if a.encrypted { format!("{c}, age") } else { c }
                },
                dash(a.files),
                dash(a.warnings),
                a.state.name().to_string(),
                a.name.clone(),
            ]
        })
        .collect();
    let headers = [
        "TIME",
        "ROLE",
        "SIZE",
        "COMPRESSION",
        "FILES",
        "WARNINGS",
        "STATE",
        "ARCHIVE",
    ];
    let align = [
        Align::Left,
        Align::Left,
        Align::Right,
        Align::Left,
        Align::Right,
        Align::Right,
        Align::Left,
        Align::Left,
    ];
    write!(out, "{}", render(&headers, &align, &rows)).map_err(output)?;
    for a in archives.iter().filter(|a| a.state == State::Damaged) {
        writeln!(
            out,
            "damaged: {}: {}",
            a.name,
            a.reason.as_deref().unwrap_or("")
        )
        .map_err(output)?;
    }
    if archives
        .iter()
        .any(|a| a.encrypted && a.purpose.is_none() && a.state != State::Damaged)
    {
        writeln!(
            out,
            "(age-encrypted archives: their details need --identity FILE or --passphrase-file FILE)"
        )
        .map_err(output)?;
    }
    if archives
        .iter()
        .any(|a| a.files.is_none() && a.state != State::Damaged)
    {
        writeln!(
            out,
            "(files and warnings are known once an archive was read back: `proxkeep verify --all`)"
        )
        .map_err(output)?;
    }
    Ok(exit::OK)
}

fn show(g: &Globals, path: &Path) -> Result<i32, Exit> {
    let s = inspect::show(path).map_err(fail)?;
    if g.json {
        json_line(&s)?;
        return Ok(exit::OK);
    }
    let m = &s.meta;
    let mut o = String::new();
    use std::fmt::Write as _;
    let created = jiff::Timestamp::from_second(m.created_unix)
        .map(|t| local_time(t, "%Y-%m-%d %H:%M:%S %Z"))
        .unwrap_or_default();
    let _ = writeln!(o, "archive      {}", s.archive.display());
    let _ = writeln!(
        o,
        "size         {} ({} {})",
        format_size(s.size),
        m.compression.algorithm,
        m.compression.level
    );
    if let Some(e) = &m.encryption {
        let _ = writeln!(o, "encryption   {e}");
    }
    let _ = writeln!(o, "host         {} (role {})", m.host, m.role);
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
        let _ = writeln!(o, "versions     {}", versions.join(", "));
    }
    let _ = writeln!(o, "created      {created} ({})", m.created);
    let _ = writeln!(
        o,
        "written by   {} {} (format {})",
        m.tool, m.tool_version, m.format_version
    );
    let _ = writeln!(o, "purpose      {}", m.purpose);
    if m.root != "/" {
        let _ = writeln!(o, "root         {}", m.root);
    }
    if m.pve_tree_from_db {
        let _ = writeln!(
            o,
            "/etc/pve     rebuilt from config.db (pmxcfs was not mounted)"
        );
    }
    // Categories that found nothing on this host go on one line, not as rows of zeros.
    let (full, empty): (Vec<_>, Vec<_>) = s
        .categories
        .iter()
        .partition(|c| c.files + c.dirs + c.symlinks + c.commands > 0);
    let rows: Vec<Vec<String>> = full
        .iter()
        .map(|c| {
            let cmds = if c.commands_failed > 0 {
                format!("{} ({} failed)", c.commands, c.commands_failed)
            } else {
                c.commands.to_string()
            };
            vec![
                c.category.clone(),
                c.files.to_string(),
                c.dirs.to_string(),
                c.symlinks.to_string(),
                format_size(c.bytes),
                cmds,
            ]
        })
        .chain(std::iter::once(vec![
            "total".into(),
            s.totals.files.to_string(),
            s.totals.dirs.to_string(),
            s.totals.symlinks.to_string(),
            format_size(s.totals.bytes),
            s.commands.len().to_string(),
        ]))
        .collect();
    let _ = writeln!(o);
    let align = [
        Align::Left,
        Align::Right,
        Align::Right,
        Align::Right,
        Align::Right,
        Align::Right,
    ];
    o.push_str(&render(
        &["CATEGORY", "FILES", "DIRS", "LINKS", "SIZE", "COMMANDS"],
        &align,
        &rows,
    ));
    if !empty.is_empty() {
        let names: Vec<&str> = empty.iter().map(|c| c.category.as_str()).collect();
        let _ = writeln!(o, "nothing found: {}", names.join(", "));
    }
    let _ = writeln!(o, "\nwarnings     {}", s.warnings.len());
    for w in &s.warnings {
        let _ = writeln!(o, "  {}", proxkeep::app::backup::warning_text(w));
    }
    if !s.skipped.is_empty() {
        let _ = writeln!(
            o,
            "not stored   {} (sockets, FIFOs, devices)",
            s.skipped.len()
        );
        for k in &s.skipped {
            let _ = writeln!(o, "  {} ({})", k.path, k.kind);
        }
    }
    if !s.absent.is_empty() {
        let _ = writeln!(
            o,
            "absent       {} catalog path(s) do not exist on this host",
            s.absent.len()
        );
        if g.verbosity > 0 {
            for a in &s.absent {
                let _ = writeln!(o, "  {} ({})", a.path, a.category);
            }
        }
    }
    io::stdout()
        .lock()
        .write_all(o.as_bytes())
        .map_err(output)?;
    Ok(exit::OK)
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

fn ls(g: &Globals, path: &Path, prefix: Option<&str>) -> Result<i32, Exit> {
    if g.json {
        let mut entries = Vec::new();
        let r = inspect::ls(path, prefix, |e| {
            entries.push(e.clone());
            Ok(())
        });
        let damaged = r.as_ref().err().map(|e| e.to_string());
        json_line(&serde_json::json!({ "archive": path, "entries": entries, "error": damaged }))?;
        return r.map(|_| exit::OK).map_err(fail);
    }
    let mut out = BufWriter::new(io::stdout().lock());
    let r = inspect::ls(path, prefix, |e| {
        let mode = u32::from_str_radix(&e.mode, 8).unwrap_or(0);
        let when = jiff::Timestamp::from_second(e.mtime)
            .map(|t| local_time(t, "%Y-%m-%d %H:%M"))
            .unwrap_or_default();
        let link = e
            .target
            .as_ref()
            .map(|t| format!(" -> {t}"))
            .unwrap_or_default();
        writeln!(
            out,
            "{}{} {:>5}/{:<5} {:>9} {when} {}{link}",
            type_char(e.kind),
            perm_string(mode),
            e.uid,
            e.gid,
            e.size,
            e.path
        )
    });
    // Everything read before a damaged spot is out before the error.
    out.flush().map_err(output)?;
    match r {
        Ok(0) if prefix.is_some() => Err(Exit(
            exit::FAILED,
            anyhow::anyhow!(
                "no entry under {:?} in {}",
                prefix.unwrap_or(""),
                path.display()
            ),
        )),
        Ok(_) => Ok(exit::OK),
        Err(e) => Err(fail(e)),
    }
}

fn cat(g: &Globals, path: &Path, entry: &str, show_secrets: bool) -> Result<i32, Exit> {
    let norm = inspect::normalize_entry_path(entry);
    // Secrets go to files and pipes (that is what `cat` is for), but not onto a screen by accident.
    if proxkeep::secrets::is_secret(&norm) && !show_secrets && io::stdout().is_terminal() {
        return Err(Exit::usage(anyhow::anyhow!(
            "{norm} holds secrets: not printing it to a terminal (redirect to a file, or add --show-secrets)"
        )));
    }
    if g.json {
        let mut data = Vec::new();
        let r = inspect::cat(path, &norm, &mut data);
        let mut v = serde_json::json!({ "archive": path, "path": norm, "size": data.len() });
        match std::str::from_utf8(&data) {
            Ok(s) => v["content"] = s.into(),
            Err(_) => v["content_base64"] = base64(&data).into(),
        }
        match &r {
            Ok(info) => v["sha256"] = info.sha256.clone().into(),
            Err(e) => v["error"] = e.to_string().into(),
        }
        json_line(&v)?;
        return r.map(|_| exit::OK).map_err(fail);
    }
    let mut out = BufWriter::with_capacity(256 * 1024, io::stdout().lock());
    let r = inspect::cat(path, &norm, &mut out);
    out.flush().map_err(output)?;
    r.map(|_| exit::OK).map_err(fail)
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len().div_ceil(3) * 4);
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

fn problem_lines(problems: &[Problem], limit: usize) -> Vec<String> {
    let mut v: Vec<String> = problems
        .iter()
        .take(limit)
        .map(|p| format!("  {p}"))
        .collect();
    if problems.len() > limit {
        v.push(format!(
            "  … and {} more (--json lists them all)",
            problems.len() - limit
        ));
    }
    v
}

fn warn_record(v: &inspect::Verified) {
    if let Some(e) = &v.record_error {
        eprintln!("warning: {e}");
    }
}

fn verify_one(g: &Globals, path: &Path) -> Result<i32, Exit> {
    let v = inspect::verify(path).map_err(fail)?;
    warn_record(&v);
    let code = if v.ok { exit::OK } else { exit::DAMAGED };
    if g.json {
        json_line(&v)?;
        return Ok(code);
    }
    let mut out = io::stdout().lock();
    let comp = v.compression.to_string();
    if v.ok && v.sidecar_only {
        writeln!(out, "ok       {}", v.archive.display()).map_err(output)?;
        writeln!(
            out,
            "sha256   {} matches its sidecar; the content was not checked: it is encrypted \
             (--identity FILE or --passphrase-file FILE reads it back completely)",
            v.sha256.as_deref().unwrap_or("-"),
        )
        .map_err(output)?;
    } else if v.ok {
        writeln!(out, "ok       {}", v.archive.display()).map_err(output)?;
        writeln!(
            out,
            "entries  {} ({}, {comp}), every hash and header matches the index",
            v.entries,
            format_size(v.size)
        )
        .map_err(output)?;
        writeln!(
            out,
            "sha256   {} (sidecar {})",
            v.sha256.as_deref().unwrap_or("-"),
            v.sidecar
        )
        .map_err(output)?;
    } else {
        writeln!(
            out,
            "DAMAGED  {}: {} problem(s)",
            v.archive.display(),
            v.problems.len()
        )
        .map_err(output)?;
        for l in problem_lines(&v.problems, 50) {
            writeln!(out, "{l}").map_err(output)?;
        }
    }
    Ok(code)
}

fn verify_all(g: &Globals, dir: &Path) -> Result<i32, Exit> {
    let all = inspect::verify_dir(dir).map_err(fail)?;
    all.iter().for_each(warn_record);
    let damaged = all.iter().filter(|v| !v.ok).count();
    let code = if damaged > 0 { exit::DAMAGED } else { exit::OK };
    if g.json {
        json_line(&all)?;
        return Ok(code);
    }
    let mut out = io::stdout().lock();
    if all.is_empty() {
        writeln!(out, "no archives in {}", dir.display()).map_err(output)?;
        return Ok(code);
    }
    let rows: Vec<Vec<String>> = all
        .iter()
        .map(|v| {
            vec![
                v.name.clone(),
                format_size(v.size),
                v.entries.to_string(),
                v.sidecar.to_string(),
                if v.ok && v.sidecar_only {
                    "ok (sha256 only: encrypted)".into()
                } else if v.ok {
                    "ok".into()
                } else {
                    format!("DAMAGED ({})", v.problems.len())
                },
            ]
        })
        .collect();
    let align = [
        Align::Left,
        Align::Right,
        Align::Right,
        Align::Left,
        Align::Left,
    ];
    write!(
        out,
        "{}",
        render(
            &["ARCHIVE", "SIZE", "ENTRIES", "SIDECAR", "RESULT"],
            &align,
            &rows
        )
    )
    .map_err(output)?;
    for v in all.iter().filter(|v| !v.ok) {
        writeln!(out, "\n{}:", v.name).map_err(output)?;
        for l in problem_lines(&v.problems, 20) {
            writeln!(out, "{l}").map_err(output)?;
        }
    }
    writeln!(
        out,
        "\n{} archive(s): {} ok, {damaged} damaged",
        all.len(),
        all.len() - damaged
    )
    .map_err(output)?;
    Ok(code)
}

fn print_diff(g: &Globals, r: &diff::Report, opts: &diff::Options) -> io::Result<()> {
    for w in &r.warnings {
        eprintln!("warning: {}", proxkeep::app::backup::warning_text(w));
    }
    let mut out = BufWriter::new(io::stdout().lock());
    if g.json {
        serde_json::to_writer_pretty(&mut out, r)?;
        writeln!(out)?;
        return out.flush();
    }
    if r.differences.is_empty() {
        writeln!(out, "no differences between {} and {}", r.from, r.to)?;
        return out.flush();
    }
    writeln!(out, "--- {}\n+++ {}", r.from, r.to)?;
    let mut category = None;
    for d in &r.differences {
        if category != Some(&d.category) {
            writeln!(out, "\n{}", d.category)?;
            category = Some(&d.category);
        }
        let (mark, what) = match d.change {
            diff::Change::Added => ('+', "added"),
            diff::Change::Removed => ('-', "removed"),
            diff::Change::Changed => ('~', "changed"),
        };
        let details: Vec<String> = d.details.iter().map(|x| x.to_string()).collect();
        let secret = if d.secret && d.change != diff::Change::Changed && !opts.show_secrets {
            " (secret)"
        } else {
            ""
        };
        let kind = if d.kind == proxkeep::archive::format::Kind::File {
            String::new()
        } else {
            format!(" ({})", kind_word(d.kind))
        };
        if details.is_empty() {
            writeln!(out, "  {mark} {}{kind}: {what}{secret}", d.path)?;
        } else {
            writeln!(out, "  {mark} {}{kind}: {}", d.path, details.join("; "))?;
        }
        if let Some(p) = &d.patch {
            // Unindented, so the output can be fed to `patch` / `git apply` as it is.
            write!(out, "{p}")?;
        } else if let Some(n) = d.patch_note.as_ref().filter(|_| !d.secret) {
            writeln!(out, "    ({n})")?;
        }
    }
    writeln!(
        out,
        "\n{} difference(s): {} added, {} removed, {} changed",
        r.differences.len(),
        r.added,
        r.removed,
        r.changed
    )?;
    out.flush()
}

fn kind_word(k: proxkeep::archive::format::Kind) -> &'static str {
    match k {
        proxkeep::archive::format::Kind::File => "file",
        proxkeep::archive::format::Kind::Dir => "dir",
        proxkeep::archive::format::Kind::Symlink => "symlink",
    }
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
