//! `proxkeep notify test` (issue 7), and the glue that reports a `backup` whose config did not load.

use super::{Exit, Globals};
use clap::Subcommand;
use proxkeep::app::after_run::Hooks;
use proxkeep::config;
use proxkeep::host::HostFacts;
use proxkeep::notify::{self, RunInfo};
use proxkeep::output::Log;

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// Notification channels ([[notify.*]] in the config)
    Notify {
        #[command(subcommand)]
        action: Action,
    },
}

#[derive(Subcommand, Debug)]
pub enum Action {
    /// Send a sample report to every channel (ignoring `on`) and print each result; pings send a success ping
    Test {
        /// Only this channel (its `name`)
        #[arg(long, value_name = "NAME")]
        channel: Option<String>,
    },
}

pub fn run(cmd: &Commands, g: &Globals) -> Result<i32, Exit> {
    let Commands::Notify {
        action: Action::Test { channel },
    } = cmd;
    let config = g.load_config()?;
    let names = config.notify.channel_names();
    if names.is_empty() {
        return Err(Exit::usage(anyhow::anyhow!(
            "no notification channels are configured (add [[notify.email]], [[notify.ntfy]], ... to the config)"
        )));
    }
    // Results go to stdout; the log (stderr) only shows retries and details with -v.
    let log = Log::new(
        if g.verbosity > 0 { g.verbosity } else { -1 },
        notify::redactor(&config),
    );
    let facts = HostFacts::detect(&g.root);
    let now = jiff::Timestamp::now();
    let run = RunInfo {
        host: facts.hostname,
        role: facts.role.to_string(),
        started: now,
        ended: now,
    };
    let Some(results) = notify::test(&config, &log, &run, channel.as_deref()) else {
        return Err(Exit::usage(anyhow::anyhow!(
            "no channel named {:?} (channels: {})",
            channel.as_deref().unwrap_or(""),
            names.join(", ")
        )));
    };
    if g.json {
        let v = serde_json::json!({ "channels": results });
        println!(
            "{}",
            log.redactor()
                .apply(&serde_json::to_string_pretty(&v).unwrap_or_default())
        );
    } else {
        for d in &results {
            println!("{}", d.line());
        }
    }
    Ok(if results.iter().all(|d| d.ok) {
        proxkeep::exit::OK
    } else {
        proxkeep::exit::FAILED
    })
}

/// `backup` could not load its config: tell whatever the readable part of the file names (channels, metrics
/// textfile), then hand the error back unchanged (exit 2). A file that does not parse at all names nobody.
pub fn backup_config_failed(g: &Globals, e: Exit) -> Exit {
    if let Some(config) = config::load_reporting_only(g.config_path.as_deref()) {
        let log = Log::new(g.verbosity, notify::redactor(&config));
        let message = log.redactor().apply(&format!("{:#}", e.1));
        Hooks::begin(&config).finish_config_error(&config, &g.root, &log, &message);
    }
    e
}
