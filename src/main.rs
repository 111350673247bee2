//! The `proxkeep` binary: parse arguments, wire the library, map errors to the documented exit codes.

use clap::{Parser, Subcommand};
use proxkeep::app::backup::{self, BackupError, BackupOptions};
use proxkeep::config::{self, Compression};
use proxkeep::host::{HostFacts, Root};
use proxkeep::output::Log;
use proxkeep::{catalog, collect, exit, preflight};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

mod cli;
use cli::{Exit, Globals};

#[derive(Parser, Debug)]
#[command(
    name = "proxkeep",
    version,
    about = "Backup and restore of Proxmox VE / PBS host configuration"
)]
struct Cli {
    /// Config file [default: /etc/proxkeep/proxkeep.toml; a missing default file means built-in defaults]
    #[arg(long, global = true, env = "PROXKEEP_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Read the host from DIR instead of `/`
    #[arg(long, global = true, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Machine-readable result on stdout
    #[arg(long, global = true)]
    json: bool,
    /// More output (-vv for everything)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    /// Errors only
    #[arg(short, long, global = true)]
    quiet: bool,
    /// age identity file to read encrypted archives with (repeatable): AGE-SECRET-KEY-1… lines or an
    /// unprotected OpenSSH private key
    #[arg(long = "identity", short = 'i', global = true, value_name = "FILE")]
    identities: Vec<PathBuf>,
    /// File whose first line is the passphrase of passphrase-encrypted archives [default: the config's
    /// [encryption] passphrase_file]
    #[arg(long, global = true, value_name = "FILE")]
    passphrase_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Preflight only: one ✓/✗ line per check, with the fix
    Check,
    /// Write one verified archive of this host's configuration
    Backup {
        /// Run the checks and print what would be collected; write nothing
        #[arg(long)]
        dry_run: bool,
        /// Backup directory (overrides the config)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// zstd | xz | gzip | none
        #[arg(long)]
        compression: Option<Compression>,
        /// Compression level (zstd 1-19, xz 0-9, gzip 1-9)
        #[arg(long)]
        level: Option<i32>,
    },
    /// What would be collected on this host, by category
    Catalog,
    /// Inspect the configuration
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Apply the retention policy to every tier (or one), printing the plan with reasons
    Prune {
        /// Print the plan; remove nothing
        #[arg(long)]
        dry_run: bool,
        /// Only this tier: local, secondary:NAME or remote:NAME (or just NAME)
        #[arg(long, value_name = "NAME")]
        tier: Option<String>,
        /// Backup directory (overrides the config)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    #[command(flatten)]
    Inspect(cli::inspect::Commands),
    #[command(flatten)]
    Restore(cli::restore::Commands),
    #[command(flatten)]
    Notify(cli::notify::Commands),
    #[command(flatten)]
    Crypt(cli::crypt::Commands),
}

#[derive(Subcommand, Debug)]
enum ConfigAction {
    /// Effective config (defaults filled in), secrets redacted
    Show,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            return ExitCode::from(code as u8);
        }
    };
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
    // One flag for the whole process life: leaked so every layer can hold a plain &'static reference.
    let cancel: &'static AtomicBool = &**Box::leak(Box::new(flag));
    match run(&cli, cancel) {
        Ok(code) => ExitCode::from(code as u8),
        Err(Exit(code, e)) => {
            // A wrong key or damaged ciphertext is damage (6), a missing key a usage error (2), whichever
            // layer the error came through.
            let code = proxkeep::crypt::find(e.chain()).map_or(code, |c| c.exit_code());
            eprintln!("error: {}", error_text(&e));
            ExitCode::from(code as u8)
        }
    }
}

/// The error and its causes, each said once: many of our errors already quote their source in their own
/// text, which `{:#}` would repeat.
fn error_text(e: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if msg.is_empty() {
            msg = s;
        } else if !s.is_empty() && !msg.contains(&s) {
            msg.push_str(": ");
            msg.push_str(&s);
        }
    }
    msg
}

/// The keys read commands decrypt with: `--identity`/`--passphrase-file`, else the config's passphrase file
/// (so a host can verify its own passphrase-encrypted archives without flags).
fn install_keys(cli: &Cli) -> Result<(), Exit> {
    let from_config = if cli.identities.is_empty() && cli.passphrase_file.is_none() {
        globals(cli)
            .load_config()
            .ok()
            .and_then(|c| c.encryption)
            .and_then(|e| e.passphrase_file)
    } else {
        None
    };
    let passphrase = cli.passphrase_file.clone().or(from_config);
    if cli.identities.is_empty() && passphrase.is_none() {
        return Ok(());
    }
    let (keys, warnings) = proxkeep::crypt::Keys::load(&cli.identities, passphrase.as_deref())
        .map_err(|e| Exit(e.exit_code(), e.into()))?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    proxkeep::crypt::install(keys);
    Ok(())
}

fn usage(e: impl Into<anyhow::Error>) -> Exit {
    Exit::usage(e)
}

fn load_config(cli: &Cli) -> Result<config::Config, Exit> {
    globals(cli).load_config()
}

fn globals(cli: &Cli) -> Globals {
    Globals {
        config_path: cli.config.clone(),
        root: Root::new(cli.root.clone().unwrap_or_else(|| PathBuf::from("/"))),
        json: cli.json,
        verbosity: if cli.quiet { -1 } else { cli.verbose as i8 },
    }
}

fn run(cli: &Cli, cancel: &'static AtomicBool) -> Result<i32, Exit> {
    let verbosity = if cli.quiet { -1 } else { cli.verbose as i8 };
    let root = Root::new(cli.root.clone().unwrap_or_else(|| PathBuf::from("/")));
    if !root.dir().is_dir() {
        return Err(usage(anyhow::anyhow!(
            "--root {}: not a directory",
            root.dir().display()
        )));
    }
    if matches!(
        cli.command,
        Command::Inspect(_) | Command::Restore(_) | Command::Crypt(_)
    ) {
        install_keys(cli)?;
    }
    match &cli.command {
        Command::Crypt(c) => cli::crypt::run(c, &globals(cli)),
        Command::Inspect(c) => cli::inspect::run(c, &globals(cli), cancel),
        Command::Restore(c) => cli::restore::run(c, &globals(cli), cancel),
        Command::Notify(c) => cli::notify::run(c, &globals(cli)),
        Command::Config {
            action: ConfigAction::Show,
        } => {
            let config = load_config(cli)?;
            print!("{}", config::render_redacted(&config));
            Ok(exit::OK)
        }
        Command::Catalog => {
            let config = load_config(cli)?;
            let facts = HostFacts::detect(&root);
            let plan = collect::scan(&root, &facts, &config);
            print_catalog(cli.json, &facts, &plan).map_err(|e| Exit(exit::FAILED, e))?;
            Ok(exit::OK)
        }
        Command::Prune { dry_run, tier, dir } => {
            let config = load_config(cli)?;
            run_prune(
                cli,
                &config,
                &root,
                *dry_run,
                tier.as_deref(),
                dir.clone(),
                cancel,
            )
        }
        Command::Check => {
            let config = load_config(cli)?;
            let checks = run_checks(&root, &config);
            if cli.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&checks).unwrap_or_default()
                );
            } else {
                for c in &checks {
                    println!("{}", c.line());
                }
            }
            Ok(if checks.iter().all(|c| c.ok) {
                exit::OK
            } else {
                exit::PREFLIGHT
            })
        }
        Command::Backup {
            dry_run,
            dir,
            compression,
            level,
        } => {
            // Notifications and metrics (issue 7): reported for every outcome, never changing the exit code.
            let config = load_config(cli)
                .map_err(|e| cli::notify::backup_config_failed(&globals(cli), e))?;
            let log = Log::new(verbosity, proxkeep::notify::redactor(&config));
            let hooks = (!*dry_run).then(|| proxkeep::notify::Hooks::begin(&config));
            let ctx = backup::Context {
                root,
                config,
                log: &log,
                cancel,
            };
            let opts = BackupOptions {
                dry_run: *dry_run,
                dir: dir.clone(),
                compression: *compression,
                level: *level,
                now: std::env::var("PROXKEEP_NOW")
                    .ok()
                    .and_then(|s| s.parse().ok()),
            };
            let result = backup::run(&ctx, &opts);
            let sent = hooks
                .map(|h| h.finish_backup(&ctx.config, &ctx.root, &log, &result))
                .unwrap_or_default();
            let redact = |v: serde_json::Value| {
                log.redactor()
                    .apply(&serde_json::to_string_pretty(&v).unwrap_or_default())
            };
            match result {
                Ok(report) => {
                    if cli.json {
                        let mut v = serde_json::to_value(&report).unwrap_or_default();
                        v["notifications"] = serde_json::json!(sent);
                        println!("{}", redact(v));
                    } else if *dry_run {
                        print_dry_run(&report);
                    } else if verbosity >= 0 {
                        print_summary(&report);
                    }
                    Ok(report.exit_code)
                }
                Err(e) => {
                    let code = e.exit_code();
                    if cli.json {
                        let v = serde_json::json!({"status": "failed", "exit_code": code, "error": e.to_string(),
                            "checks": if let BackupError::Preflight(c) = &e { c.clone() } else { vec![] },
                            "notifications": sent});
                        println!("{}", redact(v));
                    }
                    Err(Exit(
                        code,
                        anyhow::anyhow!(log.redactor().apply(&e.to_string())),
                    ))
                }
            }
        }
    }
}

fn run_prune(
    cli: &Cli,
    config: &config::Config,
    root: &Root,
    dry_run: bool,
    only: Option<&str>,
    dir: Option<PathBuf>,
    cancel: &'static AtomicBool,
) -> Result<i32, Exit> {
    use proxkeep::tier::{self, TierReport};
    let dir = dir.unwrap_or_else(|| config.backup_dir.clone());
    let host = proxkeep::host::hostname(root);
    let now = std::env::var("PROXKEEP_NOW")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(jiff::Timestamp::now);
    let tz = jiff::tz::TimeZone::system();
    let tiers = tier::tiers(config, &dir, cancel);
    let selected: Vec<_> = tiers
        .iter()
        .filter(|t| {
            only.is_none_or(|o| {
                t.label() == o || t.label().split_once(':').is_some_and(|(_, n)| n == o)
            })
        })
        .collect();
    if selected.is_empty() {
        let names: Vec<String> = tiers.iter().map(|t| t.label()).collect();
        return Err(usage(anyhow::anyhow!(
            "no tier {:?} (tiers: {})",
            only.unwrap_or(""),
            names.join(", ")
        )));
    }
    let verified = tier::recorded_verification(&dir);
    let mut out = Vec::new();
    let mut failed = false;
    for t in selected {
        let mut rep = TierReport {
            tier: t.label(),
            ..Default::default()
        };
        let v = if t.label() == "local" {
            verified.clone()
        } else {
            Default::default()
        };
        let plan = t
            .ready()
            .and_then(|()| tier::prune(t.as_ref(), &host, &v, now, &tz, dry_run, &mut rep));
        match plan {
            Ok(plan) => {
                rep.ok = true;
                if !cli.json {
                    println!(
                        "{} ({}):",
                        t.label(),
                        if dry_run { "dry run" } else { "pruned" }
                    );
                    for (a, d) in &plan {
                        let what = match d {
                            proxkeep::retention::Decision::Keep(r) => format!("keep    {r}"),
                            proxkeep::retention::Decision::Remove if dry_run => {
                                "remove  (would)".to_string()
                            }
                            proxkeep::retention::Decision::Remove => "removed".to_string(),
                            proxkeep::retention::Decision::Damaged => {
                                "DAMAGED kept: failed verification, check it".into()
                            }
                        };
                        println!("  {}  {what}", a.file);
                    }
                    if plan.is_empty() {
                        println!("  no archives of {host}");
                    }
                }
                out.push(serde_json::json!({"tier": t.label(), "plan": plan.iter().map(|(a, d)| serde_json::json!({"archive": a.file, "decision": d})).collect::<Vec<_>>()}));
            }
            Err(e) => {
                failed = true;
                eprintln!("warning: tier {}: {e}", t.label());
                out.push(serde_json::json!({"tier": t.label(), "error": e.to_string()}));
            }
        }
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    }
    Ok(if failed { exit::WARNINGS } else { exit::OK })
}

fn run_checks(root: &Root, config: &config::Config) -> Vec<preflight::Check> {
    use preflight::Check;
    let facts = HostFacts::detect(root);
    let mut checks = vec![Check::pass(
        "host",
        format!(
            "{} role {}{}",
            facts.hostname,
            facts.role,
            match &facts.versions.pve {
                Some(v) => format!(", pve-manager {v}"),
                None => String::new(),
            }
        ),
    )];
    checks.push(preflight::directory(
        "backup directory",
        &config.backup_dir,
        false,
    ));
    checks.push(preflight::directory(
        "log directory",
        &config.log_dir,
        false,
    ));
    checks.push(preflight::free_space(
        &config.backup_dir,
        config.min_free_space,
        0,
        "configured minimum",
    ));
    if config.backup_dir.is_dir() {
        checks.push(preflight::writable(&config.backup_dir));
    }
    if let Some(enc) = &config.encryption {
        // The recipients and passphrase files are read by every backup: catch a moved or broken one now.
        checks.push(match enc.seal() {
            Ok(seal) => Check::pass("encryption", seal.describe()),
            Err(e) => Check::fail(
                "encryption",
                e.to_string(),
                "fix [encryption] (a backup stops rather than write a plain archive)",
            ),
        });
    }
    checks.push(
        match preflight::RunLock::acquire(&config.lock_file, &facts.hostname) {
            Ok(_) => Check::pass("lock", format!("{} is free", config.lock_file.display())),
            Err(e @ preflight::LockError::Held { .. }) => Check::fail(
                "lock",
                e.to_string(),
                "wait for that run to finish (the lock frees itself when it ends)",
            ),
            Err(e) => Check::fail(
                "lock",
                e.to_string(),
                "make the lock file's directory writable or set lock_file",
            ),
        },
    );
    if facts.role.has_pve() {
        let db = root.path(catalog::CONFIG_DB);
        checks.push(match proxkeep::pmxcfs::db_version(&db) {
            Ok(v) => Check::pass(
                "config.db",
                format!("{} readable, version {v}", db.display()),
            ),
            Err(e) => Check::fail(
                "config.db",
                e.to_string(),
                "is pve-cluster installed? check /var/lib/pve-cluster",
            ),
        });
        checks.push(if facts.pve_mounted {
            Check::pass("/etc/pve", "pmxcfs mounted")
        } else {
            Check::fail(
                "/etc/pve",
                "empty: pmxcfs is not mounted (the backup rebuilds the tree from config.db)",
                "systemctl start pve-cluster",
            )
        });
    }
    checks
}

fn print_catalog(json: bool, facts: &HostFacts, plan: &collect::Plan) -> anyhow::Result<()> {
    let counts = plan.counts();
    let mut out = std::io::stdout().lock();
    if json {
        let cats: Vec<serde_json::Value> = catalog::CATEGORIES
            .iter()
            .map(|c| {
                let count = counts.iter().find(|x| x.category == c.name);
                serde_json::json!({
                    "name": c.name, "description": c.description, "applies": c.applies,
                    "active": plan.categories.iter().any(|n| n == c.name),
                    "sources": c.sources, "exclude": c.exclude, "found": count,
                })
            })
            .collect();
        let v = serde_json::json!({
            "host": facts.hostname, "role": facts.role, "versions": facts.versions,
            "categories": cats, "held_on_restore": catalog::HELD_ON_RESTORE,
            "commands_run": plan.commands.len(), "commands_not_run": plan.commands_not_run,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&v)?)?;
        return Ok(());
    }
    writeln!(out, "host {} role {}", facts.hostname, facts.role)?;
    for c in catalog::CATEGORIES {
        let active = plan.categories.iter().any(|n| n == c.name);
        let count = counts.iter().find(|x| x.category == c.name);
        let found = match count {
            Some(n) if active => format!(
                "{} files, {} dirs, {} links, {}, {} commands",
                n.files,
                n.dirs,
                n.symlinks,
                config::format_size(n.bytes),
                n.commands
            ),
            _ if active => "nothing found".into(),
            _ => format!("not collected on a {} host", facts.role),
        };
        writeln!(
            out,
            "\n{} ({:?}): {}\n  {}",
            c.name, c.applies, c.description, found
        )?;
        for s in c.sources {
            let line = match s {
                catalog::Source::Path { path } => format!("path    {path}"),
                catalog::Source::Glob { pattern } => format!("glob    {pattern}"),
                catalog::Source::Command {
                    output,
                    program,
                    args,
                } => {
                    format!("command {program} {} > {output}", args.join(" "))
                }
                catalog::Source::Pmxcfs => {
                    format!("pmxcfs  {} (online snapshot)", catalog::CONFIG_DB)
                }
            };
            writeln!(out, "    {line}")?;
        }
        for e in c.exclude {
            writeln!(out, "    exclude {e}")?;
        }
    }
    writeln!(out, "\nextra: paths from [collect] extra_paths")?;
    if plan.commands_not_run > 0 {
        writeln!(
            out,
            "\n{} commands run only when --root is / (or with [commands] run = \"always\")",
            plan.commands_not_run
        )?;
    }
    Ok(())
}

fn print_dry_run(r: &backup::BackupReport) {
    for c in &r.checks {
        println!("{}", c.line());
    }
    println!(
        "\nwould write {}",
        r.archive
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    println!(
        "{:<16} {:>7} {:>6} {:>6} {:>10} {:>9}",
        "category", "files", "dirs", "links", "bytes", "commands"
    );
    for c in &r.categories {
        println!(
            "{:<16} {:>7} {:>6} {:>6} {:>10} {:>9}",
            c.category,
            c.files,
            c.dirs,
            c.symlinks,
            config::format_size(c.bytes),
            c.commands
        );
    }
    println!(
        "{:<16} {:>7} {:>6} {:>6} {:>10} {:>9}",
        "total",
        r.files,
        r.dirs,
        r.symlinks,
        config::format_size(r.bytes),
        r.commands
    );
    if r.pve_tree_from_db {
        println!("/etc/pve is not mounted: its tree would be rebuilt from config.db");
    }
}

fn print_summary(r: &backup::BackupReport) {
    if let Some(a) = &r.archive {
        println!("archive  {}", a.display());
    }
    println!(
        "size     {} ({} {})",
        config::format_size(r.size),
        r.compression,
        r.level
    );
    if let Some(e) = &r.encryption {
        println!("encrypt  {e}");
    }
    println!(
        "entries  {} ({} files, {} dirs, {} links; {} of file data), {} command outputs",
        r.entries,
        r.files,
        r.dirs,
        r.symlinks,
        config::format_size(r.bytes),
        r.commands
    );
    if let Some(s) = &r.sha256 {
        println!("sha256   {s}");
    }
    println!(
        "verified every entry read back against the index in {:.1} s",
        r.duration_ms as f64 / 1000.0
    );
    if !r.warnings.is_empty() {
        println!("warnings {} (exit 3):", r.warnings.len());
        for w in r.warnings.iter().take(20) {
            println!("  {}", backup::warning_text(w));
        }
    }
    if let Some(l) = &r.log_file {
        println!("log      {}", l.display());
    }
}
