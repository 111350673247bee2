//! Every command line proxkeep takes (clap derive), in one place.

use clap::{Parser, Subcommand};
use proxkeep::archive::compression::Compression;
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "proxkeep",
    version,
    about = "Backup and restore of Proxmox VE / PBS host configuration"
)]
pub struct Cli {
    /// Config file [default: /etc/proxkeep/proxkeep.toml; a missing default file means built-in defaults]
    #[arg(long, global = true, env = "PROXKEEP_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Read the host from DIR instead of `/`
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Machine-readable result on stdout
    #[arg(long, global = true)]
    pub json: bool,
    /// More output (-vv for everything)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Errors only
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// age identity file to read encrypted archives with (repeatable): AGE-SECRET-KEY-1… lines or an
    /// unprotected OpenSSH private key
    #[arg(long = "identity", short = 'i', global = true, value_name = "FILE")]
    pub identities: Vec<PathBuf>,
    /// File whose first line is the passphrase of passphrase-encrypted archives [default: the config's
    /// [encryption] passphrase_file]
    #[arg(long, global = true, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Preflight only: one ✓/✗ line per check, with the fix
    Check,
    /// Write one verified archive of this host's configuration
    Backup(BackupArgs),
    /// What would be collected on this host, by category, and what never is (proxkeep's own paths)
    Catalog,
    /// Inspect the configuration
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Apply the retention policy to every tier (or one), printing the plan with reasons
    Prune(PruneArgs),
    /// Restore rehearsal: verify an archive, restore it into a scratch directory, check the restored tree,
    /// compare it with the host; never touches the host
    Drill(DrillArgs),
    #[command(flatten)]
    Inspect(InspectCommand),
    #[command(flatten)]
    Restore(RestoreCommand),
    #[command(flatten)]
    Notify(NotifyCommand),
    #[command(flatten)]
    Keys(KeyCommand),
    /// A network restore applied with --apply-network: confirm it, see it, or roll it back
    Network {
        #[command(subcommand)]
        action: NetworkAction,
    },
    /// A rebuild guide from one archive, in the order the work must happen: install, storage, network,
    /// cluster, the remaining restores, the checks
    Runbook(RunbookArgs),
    /// Shell completion script on stdout: `proxkeep completions bash > /etc/bash_completion.d/proxkeep`
    Completions {
        #[arg(value_enum)]
        shell: CompletionShell,
    },
    /// Write the man pages (proxkeep.1 and one page per subcommand) into DIR, as the .deb installs them
    Manpages {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// Run the checks and print what would be collected; write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Backup directory (overrides the config)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// zstd | xz | gzip | none
    #[arg(long)]
    pub compression: Option<Compression>,
    /// Compression level (zstd 1-19, xz 0-9, gzip 1-9)
    #[arg(long)]
    pub level: Option<i32>,
}

#[derive(clap::Args, Debug)]
pub struct RunbookArgs {
    /// A path, a file name in the backup dir, `latest` (the default) or `latest~N`
    pub archive: Option<String>,
    /// md (Markdown) or html (one self-contained file that prints cleanly)
    #[arg(long, default_value = "md", value_name = "md|html")]
    pub format: proxkeep::runbook::Format,
    /// Write the runbook to FILE (0600; an existing file is replaced atomically) instead of stdout
    #[arg(long, value_name = "FILE")]
    pub out: Option<std::path::PathBuf>,
    /// Backup directory (overrides the config)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    /// Print the plan; remove nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Only this tier: local, secondary:NAME or remote:NAME (or just NAME)
    #[arg(long, value_name = "NAME")]
    pub tier: Option<String>,
    /// Backup directory (overrides the config)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct DrillArgs {
    /// A path, a file name in the backup dir, `latest`, `latest~N`, or `NAME:ARCHIVE` on a secondary or
    /// remote tier [default: this host's newest archive on any tier]
    pub archive: Option<String>,
    /// Make the scratch directory (0700) in DIR [default: the backup directory]
    #[arg(long, value_name = "DIR")]
    pub scratch: Option<PathBuf>,
    /// Leave the scratch directory with the restored tree in place (its path is printed)
    #[arg(long)]
    pub keep: bool,
    /// Backup directory (overrides the config)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Effective config (defaults filled in), secrets redacted
    Show,
    /// Write the commented config template: every key at its default, one line of explanation each
    Init {
        /// The host's role the template is for [default: detected under --root]
        #[arg(long, value_parser = ["pve", "pbs", "dual", "linux"])]
        role: Option<String>,
        /// Where to write it (never over an existing file; `-` for stdout) [default: the --config path, or
        /// /etc/proxkeep/proxkeep.toml]
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Validate a config file without running anything (exit 2 with file:line:column on an error)
    Check {
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Write proxkeep.toml from the reference tool's backup.env, one report line per key of it
    Import {
        /// The reference tool's backup.env (e.g. /opt/proxsave/configs/backup.env)
        #[arg(value_name = "FILE")]
        file: PathBuf,
        /// Where to write the new config (never over an existing file; 0600) [default: the --config path, or
        /// /etc/proxkeep/proxkeep.toml]
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum InspectCommand {
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
    Diff(DiffArgs),
}

#[derive(clap::Args, Debug)]
pub struct DiffArgs {
    /// The older side: a path, a file name in the backup dir, `latest` or `latest~N`
    pub archive: String,
    /// The newer side
    #[arg(required_unless_present = "live", conflicts_with = "live")]
    pub archive2: Option<String>,
    /// Compare with the host under --root (default /) as a backup now would see it
    #[arg(long)]
    pub live: bool,
    /// Unified diffs of changed text files
    #[arg(long)]
    pub patch: bool,
    /// Show content and hashes of secret files (keys, passwords, tokens, priv/)
    #[arg(long)]
    pub show_secrets: bool,
    /// Exit 1 when there are differences (like `git diff --exit-code`)
    #[arg(long)]
    pub exit_code: bool,
    /// Compare the archives' own proxkeep/ entries (command outputs, config.db snapshot) too
    #[arg(long)]
    pub internal: bool,
    /// Backup directory (overrides the config)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum RestoreCommand {
    /// Write everything in an archive into an empty or new DIR (never over existing files)
    Extract {
        /// A path, a file name in the backup directory, `latest` or `latest~N`
        archive: String,
        dir: PathBuf,
        /// Backup directory ARCHIVE is looked up in (overrides the config)
        #[arg(long = "dir", value_name = "DIR")]
        backup_dir: Option<PathBuf>,
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
    pub archive: String,
    /// Only these categories (comma-separated, see `proxkeep catalog`); naming a category restores its held files
    #[arg(long, value_delimiter = ',', value_name = "CAT")]
    pub only: Vec<String>,
    /// Only host paths matching this glob (repeatable; a directory names its whole tree); adds to --only
    #[arg(long = "path", value_name = "GLOB")]
    pub paths: Vec<String>,
    /// Restore into DIR instead of the host [default: /, or --root]
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,
    /// Print the plan and write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation (required without a terminal)
    #[arg(long)]
    pub yes: bool,
    /// Restore node OLD as NEW (host reinstalled under another name): /etc/pve/nodes, corosync.conf, hosts, hostname
    #[arg(long, value_name = "OLD=NEW")]
    pub map_node: Option<String>,
    /// The archive's NIC OLD is NEW on this host (repeatable): overrides the automatic NIC matching
    #[arg(long = "nic", value_name = "OLD=NEW", value_parser = proxkeep::restore::nic::parse_pair)]
    pub nic: Vec<(String, String)>,
    /// Do not write the safety archive of what gets replaced
    #[arg(long)]
    pub no_safety_backup: bool,
    /// Run the follow-up commands (ifreload -a, service restarts), each with --service-timeout; only when the
    /// target is / (the running host)
    #[arg(long)]
    pub apply_services: bool,
    /// Backup directory ARCHIVE is looked up in (overrides the config; the safety archive still goes to
    /// the configured one)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Time each follow-up command may take before it is killed
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub service_timeout: String,
    /// Apply the selected network files now (ifreload -a) with a timed rollback: staged, syntax-checked,
    /// health-checked, and put back unless confirmed (`proxkeep network confirm`) within --rollback-after
    #[arg(long)]
    pub apply_network: bool,
    /// With --apply-network: time to confirm the new network before it is rolled back
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "180s",
        requires = "apply_network"
    )]
    pub rollback_after: String,
    /// With --apply-network: the name the DNS health check resolves (`getent hosts NAME`; empty: no DNS check)
    #[arg(
        long,
        value_name = "NAME",
        default_value = "download.proxmox.com",
        requires = "apply_network"
    )]
    pub dns_name: String,
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
    /// Node recovery: stop pve-cluster, put the archive's config.db in place, start pve-cluster (services
    /// only when the target is /)
    Restore(PmxcfsRestoreArgs),
}

#[derive(clap::Args, Debug)]
pub struct PmxcfsRestoreArgs {
    /// A path, a file name in the backup directory, `latest` or `latest~N`
    pub archive: String,
    /// Put the db under DIR/var/lib/pve-cluster instead (no service is touched then)
    #[arg(long, value_name = "DIR")]
    pub target: Option<PathBuf>,
    /// Restore even when this node is part of a quorate cluster
    #[arg(long)]
    pub force: bool,
    /// Do not ask for confirmation (required without a terminal)
    #[arg(long)]
    pub yes: bool,
    /// Time systemctl and pvecm may take before they are killed
    #[arg(long, value_name = "DURATION", default_value = "90s")]
    pub service_timeout: String,
    /// Backup directory ARCHIVE is looked up in (overrides the config)
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// age keys for encrypted archives
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Write the plain archive (.tar.zst, ...) out of an encrypted one (needs --identity or --passphrase-file)
    Decrypt {
        /// A path, a file name in the backup dir, `latest` or `latest~N`
        archive: String,
        /// Output file (never replaced), or a directory to write `<archive name without .age>` into
        out: PathBuf,
        /// Backup directory (overrides the config)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyAction {
    /// New X25519 identity; prints its public recipient (`age1…`) for `[encryption] recipients`
    Generate {
        /// Write the identity to FILE (mode 0600, never replaced) instead of standard output
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum NotifyCommand {
    /// Notification channels ([[notify.*]] in the config)
    Notify {
        #[command(subcommand)]
        action: NotifyAction,
    },
}

#[derive(Subcommand, Debug)]
pub enum NotifyAction {
    /// Send a sample report to every channel (ignoring `on`) and print each result; pings send a success ping
    Test {
        /// Only this channel (its `name`)
        #[arg(long, value_name = "NAME")]
        channel: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum NetworkAction {
    /// Keep the network applied by `restore --apply-network` (disarms the rollback, removes its copies)
    Confirm,
    /// The armed rollback, or the last confirmed or rolled-back network apply, with its health checks
    Status,
    /// Put the previous network files back now and run `ifreload -a` (what the timer does at the deadline)
    Rollback {
        /// Internal (the rollback worker): wait until this Unix time, then roll back unless confirmed
        #[arg(long, hide = true, value_name = "UNIX-SECONDS")]
        at: Option<i64>,
    },
}
