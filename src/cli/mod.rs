//! The binary's side: arguments (`args`), what every command needs resolved once (`ctx`), the one place that
//! prints (`emit`), and one presenter per command group. No decisions: those are in `proxkeep::app`.

pub mod args;
mod backup;
pub mod ctx;
mod drill;
pub mod emit;
mod inspect;
mod keys;
mod network;
mod package;
mod restore;
mod runbook;

use args::{Cli, Command};
use ctx::Ctx;
use std::sync::atomic::AtomicBool;

/// An error with the exit code it maps to, and (for `--json`) fields the error document carries besides
/// `error`.
pub struct Exit(pub i32, pub anyhow::Error, pub Option<serde_json::Value>);

impl Exit {
    pub fn new(code: i32, e: impl Into<anyhow::Error>) -> Exit {
        Exit(code, e.into(), None)
    }
    pub fn usage(e: impl Into<anyhow::Error>) -> Exit {
        Exit::new(proxkeep::exit::USAGE, e)
    }
    pub fn failed(e: impl Into<anyhow::Error>) -> Exit {
        Exit::new(proxkeep::exit::FAILED, e)
    }
}

/// Run the parsed command; `Ok` is the exit code of a command that ran to its end (warnings included).
pub fn run(cli: &Cli, cancel: &'static AtomicBool) -> Result<i32, Exit> {
    let mut ctx = Ctx::new(cli, cancel)?;
    if matches!(
        cli.command,
        Command::Inspect(_)
            | Command::Restore(_)
            | Command::Keys(_)
            | Command::Drill(_)
            | Command::Runbook(_)
    ) {
        keys::install(cli, &ctx)?;
    }
    ctx.warn_unprivileged(&cli.command)?;
    // The rollback worker is not the admin's next command: it leaves the news to that one.
    if !matches!(
        &cli.command,
        Command::Network {
            action: args::NetworkAction::Rollback { at: Some(_) }
        }
    ) {
        network::notice(&ctx);
    }
    match &cli.command {
        Command::Check => backup::check(&ctx),
        Command::Catalog => backup::catalog(&ctx),
        Command::Config {
            action: args::ConfigAction::Show,
        } => backup::config_show(&ctx),
        Command::Config {
            action: args::ConfigAction::Init { role, out },
        } => package::config_init(&ctx, role.as_deref(), out.as_deref()),
        Command::Config {
            action: args::ConfigAction::Check { file },
        } => package::config_check(&mut ctx, file),
        Command::Config {
            action: args::ConfigAction::Import { file, out },
        } => package::config_import(&ctx, file, out.as_deref()),
        Command::Prune(a) => backup::prune(&ctx, a),
        Command::Drill(a) => drill::drill(&ctx, a),
        Command::Backup(a) => backup::backup(&mut ctx, a),
        Command::Notify(c) => backup::notify_test(&ctx, c),
        Command::Inspect(c) => inspect::run(&ctx, c),
        Command::Restore(c) => restore::run(&ctx, c),
        Command::Keys(c) => keys::run(&ctx, c),
        Command::Network { action } => network::run(&ctx, action),
        Command::Runbook(a) => runbook::run(&ctx, a),
        Command::Completions { shell } => package::completions(&ctx, *shell),
        Command::Manpages { dir } => package::manpages(&ctx, dir),
    }
}
