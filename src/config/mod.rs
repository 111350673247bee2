//! proxkeep's own configuration file (`/etc/proxkeep/proxkeep.toml`).
//!
//! Every key is optional; a missing file at the default location means built-in defaults. README.md shows
//! the keys with their defaults.
//!
//! This module holds the effective configuration and its loading; `raw` parses and checks the file (every
//! error names the file, line, column and key), `notify` holds the `[[notify.*]]` channels and `[metrics]`,
//! `redact` renders the effective configuration for `config show`.
//!
//! config sits below the modules that use it and imports none of them: what only they can check (the catalog's
//! category names, the syntax of an age recipient) comes in through [`Checks`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use toml::Spanned;
use toml::de::DeTable;

pub mod import;
mod notify;
mod raw;
mod redact;
pub mod template;
use raw::{AbsPath, Glob, Target, many, one, some};

pub use notify::{
    Channel, ChatId, Common, EmailConfig, Event, GotifyConfig, HttpMethod, MailTransport,
    MetricsConfig, NotifyConfig, NtfyConfig, PingConfig, SmtpTls, TelegramConfig, WebhookConfig,
    WebhookFormat,
};
pub use redact::render_redacted;

pub use crate::archive::compression::Compression;

/// Where the configuration is read from when neither `--config` nor `$PROXKEEP_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/proxkeep/proxkeep.toml";

/// Whether the command collectors (`pveversion`, `zpool status`, ...) are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunCommands {
    /// Only when the host root is `/` (commands would describe the wrong system otherwise).
    Auto,
    Always,
    Never,
}

/// The effective configuration. (Paths serialize as strings: they come from TOML text, so they are UTF-8.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    #[serde(deserialize_with = "one::<_, AbsPath, _>")]
    pub backup_dir: PathBuf,
    #[serde(deserialize_with = "one::<_, AbsPath, _>")]
    pub log_dir: PathBuf,
    #[serde(deserialize_with = "one::<_, AbsPath, _>")]
    pub lock_file: PathBuf,
    /// Bytes that must stay free on the backup file system.
    #[serde(serialize_with = "ser_size", deserialize_with = "raw::size")]
    pub min_free_space: u64,
    pub compression: CompressionConfig,
    pub collect: CollectConfig,
    pub commands: CommandsConfig,
    /// `[retention]`: the default policy of every tier.
    pub retention: Policy,
    /// `[[secondary]]`: mounted local copies (NAS, USB disk).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secondary: Vec<SecondaryConfig>,
    /// `[[remote]]`: rclone remotes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remote: Vec<RemoteConfig>,
    /// `[[notify.*]]`: who hears about each run (src/config/notify.rs).
    #[serde(skip_serializing_if = "NotifyConfig::is_empty")]
    pub notify: NotifyConfig,
    /// `[metrics]`: the Prometheus textfile.
    pub metrics: MetricsConfig,
    /// `[encryption]`: age recipients or passphrase; `None` writes plain archives.
    pub encryption: Option<EncryptionConfig>,
}

/// `[encryption]`. Recipients are checked when the config is loaded ([`Checks::recipient`]); the two files are
/// read by each backup (`seal`, in crypt).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionConfig {
    /// `age1…` and `ssh-ed25519 …` public keys, as written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    #[serde(deserialize_with = "some::<_, AbsPath, _>")]
    pub recipients_file: Option<PathBuf>,
    #[serde(deserialize_with = "some::<_, AbsPath, _>")]
    pub passphrase_file: Option<PathBuf>,
}

impl EncryptionConfig {
    /// What this table encrypts with (backups and safety archives alike): the recipients and passphrase
    /// files are read here.
    pub fn seal(&self) -> Result<crate::crypt::Seal, crate::crypt::CryptError> {
        let (file, passphrase) = (
            self.recipients_file.as_deref(),
            self.passphrase_file.as_deref(),
        );
        crate::crypt::Seal::new(&self.recipients, file, passphrase)
    }
}

/// How many archives a tier keeps per rule (`[retention]`); the rules themselves are in `retention`. A key the
/// section does not name keeps its built-in default ([`DEFAULT_POLICY`]): the section overrides key by key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default = "default_policy", deny_unknown_fields)]
pub struct Policy {
    pub keep_last: u32,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
    /// Restore-safety archives kept per host (local backup dir only; 0 keeps them all).
    pub keep_safety: u32,
}

fn default_policy() -> Policy {
    DEFAULT_POLICY
}

/// A tier's struct: its own keys, then the `[retention]` keys it may override, spelled out (`flatten` would
/// hide them from the field list of `deny_unknown_fields` errors, which the key check and the suggestions
/// read). The tier's name defaults to a part of another key: `Ctx::finish` sets it.
macro_rules! tier {
    ($(#[$doc:meta])* $name:ident { $($body:tt)* }) => {
        tier!($(#[$doc])* $name { $($body)* }
            keep_last keep_hourly keep_daily keep_weekly keep_monthly keep_yearly);
    };
    ($(#[$doc:meta])* $name:ident { $($body:tt)* } $($keep:ident)*) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct $name {
            #[serde(default)]
            pub name: String,
            $($body)*
            $(pub $keep: Option<u32>,)*
        }

        impl $name {
            /// `base` with the keys this tier sets replaced.
            pub fn policy(&self, base: &Policy) -> Policy {
                Policy { $($keep: self.$keep.unwrap_or(base.$keep),)* ..*base }
            }
        }
    };
}

tier!(
    /// `[[secondary]]`
    SecondaryConfig {
        #[serde(deserialize_with = "one::<_, AbsPath, _>")]
        pub path: PathBuf,
        /// The path must be a mount point, else the tier is skipped (default: true under /mnt and /media).
        #[serde(default)]
        pub require_mount: bool,
        /// Deadline for every file-system call on this tier (a dead NFS mount must not hang the run).
        #[serde(
            default = "secs::<60>",
            serialize_with = "ser_duration",
            deserialize_with = "raw::positive"
        )]
        pub timeout: Duration,
    }
);

tier!(
    /// `[[remote]]`
    RemoteConfig {
        /// rclone destination, `remote:path`.
        #[serde(deserialize_with = "one::<_, Target, _>")]
        pub target: String,
        /// Extra rclone flags (`--bwlimit 8M`, ...).
        #[serde(default)]
        pub flags: Vec<String>,
        /// Timeout of every rclone call.
        #[serde(
            default = "secs::<600>",
            serialize_with = "ser_duration",
            deserialize_with = "raw::positive"
        )]
        pub timeout: Duration,
        /// Attempts of a failed upload (with backoff).
        #[serde(default = "three")]
        pub retries: u32,
    }
);

fn secs<const N: u64>() -> Duration {
    Duration::from_secs(N)
}

fn three() -> u32 {
    3
}

/// Retention used when `[retention]` is absent: the policy of the docs' example.
pub const DEFAULT_POLICY: Policy = Policy {
    keep_last: 3,
    keep_hourly: 0,
    keep_daily: 7,
    keep_weekly: 4,
    keep_monthly: 6,
    keep_yearly: 2,
    keep_safety: 5,
};

impl Default for Config {
    fn default() -> Self {
        Config {
            backup_dir: PathBuf::from("/var/backups/proxkeep"),
            log_dir: PathBuf::from("/var/log/proxkeep"),
            lock_file: PathBuf::from("/run/proxkeep.lock"),
            min_free_space: 1 << 30,
            compression: CompressionConfig::default(),
            collect: CollectConfig::default(),
            commands: CommandsConfig::default(),
            retention: DEFAULT_POLICY,
            secondary: Vec::new(),
            remote: Vec::new(),
            notify: NotifyConfig::default(),
            metrics: MetricsConfig::default(),
            encryption: None,
        }
    }
}

/// `[compression]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompressionConfig {
    pub algorithm: Compression,
    /// Always within `algorithm.level_range()` when produced by [`parse`].
    #[serde(deserialize_with = "raw::level")]
    pub level: i32,
    /// Worker threads; 0 = all cores.
    pub threads: u32,
}

impl Default for CompressionConfig {
    fn default() -> Self {
        CompressionConfig {
            algorithm: Compression::Zstd,
            level: Compression::Zstd.default_level(),
            threads: 0,
        }
    }
}

/// `[collect]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectConfig {
    /// Catalog categories not to back up.
    pub skip_categories: Vec<String>,
    /// Additional absolute host paths to back up.
    #[serde(deserialize_with = "many::<_, AbsPath, _>")]
    pub extra_paths: Vec<PathBuf>,
    /// Paths (a directory: everything under it) or glob patterns (globset syntax) over absolute host paths.
    #[serde(deserialize_with = "many::<_, Glob, _>")]
    pub exclude: Vec<String>,
    /// Bytes of files a backup may collect: above it `backup` refuses, `check` fails, `--dry-run` warns.
    #[serde(serialize_with = "ser_size", deserialize_with = "raw::size")]
    pub max_input_size: u64,
}

impl Default for CollectConfig {
    fn default() -> Self {
        CollectConfig {
            skip_categories: Vec::new(),
            extra_paths: Vec::new(),
            exclude: Vec::new(),
            max_input_size: 512 << 20,
        }
    }
}

/// `[commands]`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CommandsConfig {
    pub run: RunCommands,
    /// Per-command timeout; never zero when produced by [`parse`].
    #[serde(serialize_with = "ser_duration", deserialize_with = "raw::positive")]
    pub timeout: Duration,
    /// Commands run in parallel, 1..=64.
    #[serde(deserialize_with = "raw::concurrency")]
    pub concurrency: usize,
}

impl Default for CommandsConfig {
    fn default() -> Self {
        CommandsConfig {
            run: RunCommands::Auto,
            timeout: Duration::from_secs(30),
            concurrency: 4,
        }
    }
}

/// What [`parse`] checks on behalf of modules config does not import: the catalog's category names
/// (`collect.skip_categories`) and crypt's recipient parser (`[encryption] recipients`).
#[derive(Clone, Copy)]
pub struct Checks<'a> {
    pub categories: &'a [&'a str],
    pub recipient: fn(&str) -> Result<(), String>,
}

impl Checks<'_> {
    /// No categories known, every recipient accepted.
    pub const NONE: Checks<'static> = Checks {
        categories: &[],
        recipient: |_| Ok(()),
    };
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// Syntax error, unknown key or bad value. `line` and `column` are 1-based (column counts
    /// characters); `key` is the dotted key path (`compression.level`), empty for syntax errors.
    #[error("{}:{line}:{column}: {message}{}", .path.display(), suggestion_suffix(.suggestion.as_deref()))]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        key: String,
        message: String,
        suggestion: Option<String>,
    },
}

fn suggestion_suffix(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean `{s}`?)"))
}

/// Parses the config file `text` read from `origin` (used in error messages only).
pub fn parse(text: &str, origin: &Path, checks: &Checks) -> Result<Config, ConfigError> {
    let cx = raw::Ctx { text, origin };
    let doc = DeTable::parse(text).map_err(|e| cx.syntax(&e))?;
    cx.config(doc, checks)
}

/// Loads the configuration. `explicit` is the path given by `--config` or `$PROXKEEP_CONFIG`
/// (a missing file is an error); `None` reads [`DEFAULT_CONFIG_PATH`], where a missing file
/// means built-in defaults.
pub fn load(explicit: Option<&Path>, checks: &Checks) -> Result<Config, ConfigError> {
    load_with_default(explicit, Path::new(DEFAULT_CONFIG_PATH), checks)
}

/// After [`load`] failed: only `[notify]` and `[metrics]`, when those sections are themselves valid, so a run
/// stopped by a config error can still tell the channels the file names. `None` when even they cannot be read
/// (missing file, TOML syntax error, error inside those sections): then nobody can be told, and the error
/// reaches only stderr (the journal) and the exit code 2.
pub fn load_reporting_only(explicit: Option<&Path>) -> Option<Config> {
    let path = explicit.unwrap_or(Path::new(DEFAULT_CONFIG_PATH));
    let text = std::fs::read_to_string(path).ok()?;
    let full = DeTable::parse(&text).ok()?;
    let span = full.span();
    let kept: DeTable<'_> = full
        .into_inner()
        .into_iter()
        .filter(|(k, _)| matches!(&**k.get_ref(), "notify" | "metrics"))
        .collect();
    let cx = raw::Ctx {
        text: &text,
        origin: path,
    };
    cx.config(Spanned::new(span, kept), &Checks::NONE).ok()
}

fn load_with_default(
    explicit: Option<&Path>,
    default_path: &Path,
    checks: &Checks,
) -> Result<Config, ConfigError> {
    let path = explicit.unwrap_or(default_path);
    match std::fs::read(path) {
        Ok(bytes) => parse(raw::utf8(&bytes, path)?, path, checks),
        // A dangling symlink at the default path is an error, not "no config".
        Err(e)
            if explicit.is_none()
                && e.kind() == std::io::ErrorKind::NotFound
                && std::fs::symlink_metadata(path).is_err() =>
        {
            Ok(Config::default())
        }
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn ser_size<S: Serializer>(bytes: &u64, s: S) -> Result<S::Ok, S::Error> {
    crate::units::size_to_toml(*bytes).serialize(s)
}

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::units::duration_to_string(*d))
}

#[cfg(test)]
mod tests {
    use super::redact::REDACTED;
    use super::*;

    const CATEGORIES: &[&str] = &["pve-cluster", "corosync", "network", "ssh", "pbs-config"];
    const CHECKS: Checks = Checks {
        categories: CATEGORIES,
        recipient: |_| Ok(()),
    };
    const ORIGIN: &str = "/etc/proxkeep/proxkeep.toml";

    fn parse_ok(text: &str) -> Config {
        parse(text, Path::new(ORIGIN), &CHECKS).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    /// (line, column, key, suggestion, message) of an Invalid error.
    fn parse_err(text: &str) -> (usize, usize, String, Option<String>, String) {
        match parse(text, Path::new(ORIGIN), &CHECKS) {
            Ok(c) => panic!("{text:?} parsed: {c:?}"),
            Err(ConfigError::Invalid {
                path,
                line,
                column,
                key,
                message,
                suggestion,
            }) => {
                assert_eq!(path, Path::new(ORIGIN));
                (line, column, key, suggestion, message)
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn defaults_for_empty_text() {
        for text in [
            "",
            "\n\n",
            "# only a comment\n",
            "[compression]\n[collect]\n[commands]\n",
        ] {
            assert_eq!(parse_ok(text), Config::default(), "{text:?}");
        }
        let d = Config::default();
        assert_eq!(d.backup_dir, Path::new("/var/backups/proxkeep"));
        assert_eq!(d.log_dir, Path::new("/var/log/proxkeep"));
        assert_eq!(d.lock_file, Path::new("/run/proxkeep.lock"));
        assert_eq!(d.min_free_space, 1_073_741_824);
        assert_eq!(d.compression.algorithm, Compression::Zstd);
        assert_eq!(d.compression.level, 3);
        assert_eq!(d.compression.threads, 0);
        assert!(d.collect.skip_categories.is_empty());
        assert!(d.collect.extra_paths.is_empty());
        assert!(d.collect.exclude.is_empty());
        assert_eq!(d.commands.run, RunCommands::Auto);
        assert_eq!(d.commands.timeout, Duration::from_secs(30));
        assert_eq!(d.commands.concurrency, 4);
    }

    const FULL: &str = r#"
backup_dir = "/srv/backups"
log_dir = "/srv/log"
lock_file = "/run/lock/proxkeep.lock"
min_free_space = "512MiB"

[compression]
algorithm = "xz"
level = 9
threads = 2

[collect]
skip_categories = ["ssh", "network"]
extra_paths = ["/opt/tool/etc", "/root/scripts"]
exclude = ["/etc/pve/**/*.tmp", "**/*.bak"]

[commands]
run = "never"
timeout = "2m"
concurrency = 8

[retention]
keep_last = 2
keep_daily = 10

[[secondary]]
path = "/mnt/nas/proxkeep"
keep_daily = 30

[[secondary]]
name = "usb"
path = "/srv/usb"
require_mount = true
timeout = "5s"

[[remote]]
target = "b2:bucket/proxkeep/"
flags = ["--bwlimit", "8M"]
retries = 5
timeout = "1h"

[metrics]
textfile = "/var/lib/prometheus/node-exporter/proxkeep.prom"
"#;

    fn full_config() -> Config {
        Config {
            backup_dir: "/srv/backups".into(),
            log_dir: "/srv/log".into(),
            lock_file: "/run/lock/proxkeep.lock".into(),
            min_free_space: 512 << 20,
            compression: CompressionConfig {
                algorithm: Compression::Xz,
                level: 9,
                threads: 2,
            },
            collect: CollectConfig {
                skip_categories: vec!["ssh".into(), "network".into()],
                extra_paths: vec!["/opt/tool/etc".into(), "/root/scripts".into()],
                exclude: vec!["/etc/pve/**/*.tmp".into(), "**/*.bak".into()],
                max_input_size: 512 << 20,
            },
            commands: CommandsConfig {
                run: RunCommands::Never,
                timeout: Duration::from_secs(120),
                concurrency: 8,
            },
            retention: Policy {
                keep_last: 2,
                keep_daily: 10,
                ..DEFAULT_POLICY
            },
            secondary: vec![
                SecondaryConfig {
                    name: "proxkeep".into(),
                    path: "/mnt/nas/proxkeep".into(),
                    require_mount: true,
                    timeout: Duration::from_secs(60),
                    keep_last: None,
                    keep_hourly: None,
                    keep_daily: Some(30),
                    keep_weekly: None,
                    keep_monthly: None,
                    keep_yearly: None,
                },
                SecondaryConfig {
                    name: "usb".into(),
                    path: "/srv/usb".into(),
                    require_mount: true,
                    timeout: Duration::from_secs(5),
                    keep_last: None,
                    keep_hourly: None,
                    keep_daily: None,
                    keep_weekly: None,
                    keep_monthly: None,
                    keep_yearly: None,
                },
            ],
            remote: vec![RemoteConfig {
                name: "b2".into(),
                target: "b2:bucket/proxkeep".into(),
                flags: vec!["--bwlimit".into(), "8M".into()],
                timeout: Duration::from_secs(3600),
                retries: 5,
                keep_last: None,
                keep_hourly: None,
                keep_daily: None,
                keep_weekly: None,
                keep_monthly: None,
                keep_yearly: None,
            }],
            notify: NotifyConfig::default(),
            metrics: MetricsConfig {
                textfile: Some("/var/lib/prometheus/node-exporter/proxkeep.prom".into()),
            },
            encryption: None,
        }
    }

    #[test]
    fn tier_errors_name_the_key() {
        let e = parse_err("[[secondary]]\npath = \"relative\"\n");
        assert!(format!("{e:?}").contains("secondary.path"), "{e:?}");
        let e = parse_err("[[remote]]\ntarget = \"nocolon\"\n");
        assert!(format!("{e:?}").contains("remote.target"), "{e:?}");
        let e = parse_err("[[remote]]\ntarget = \"a:x\"\n[[remote]]\ntarget = \"a:y\"\n");
        assert!(format!("{e:?}").contains("used by another tier"), "{e:?}");
        let e = parse_err("[[secondary]]\npath = \"/mnt/x\"\nkeep_dialy = 3\n");
        assert!(format!("{e:?}").contains("keep_daily"), "{e:?}");
        assert_eq!(parse_ok("").retention, DEFAULT_POLICY);
        // A present section overrides the defaults key by key: an empty one changes nothing.
        assert_eq!(parse_ok("[retention]\n").retention, DEFAULT_POLICY);
        let daily = parse_ok("[retention]\nkeep_daily = 14\n").retention;
        assert_eq!((daily.keep_daily, daily.keep_last), (14, 3));
    }

    #[test]
    fn every_key_parsed() {
        assert_eq!(parse_ok(FULL), full_config());
    }

    #[test]
    fn alternative_value_forms() {
        let c = parse_ok(
            "min_free_space = 1000\n[compression]\nalgorithm = \"gz\"\n[commands]\ntimeout = 45\nrun = \"always\"\n",
        );
        assert_eq!(c.min_free_space, 1000);
        assert_eq!(c.compression.algorithm, Compression::Gzip);
        assert_eq!(c.compression.level, 6, "level defaults per algorithm");
        assert_eq!(c.commands.timeout, Duration::from_secs(45));
        assert_eq!(c.commands.run, RunCommands::Always);
        // Dotted keys and inline tables are ordinary TOML.
        let c = parse_ok("compression.level = 5\ncommands = { concurrency = 1 }\n");
        assert_eq!(c.compression.level, 5);
        assert_eq!(c.commands.concurrency, 1);
    }

    #[test]
    fn unknown_keys_with_suggestions() {
        #[rustfmt::skip]
        let cases: &[(&str, usize, usize, &str, Option<&str>)] = &[
            // text, line, column, key, suggestion
            ("backup_dir = \"/b\"\n\nbackup_dri = \"/x\"\n", 3, 1, "backup_dri", Some("backup_dir")),
            ("  Log_Dir = \"/x\"\n", 1, 3, "Log_Dir", Some("log_dir")),
            ("min-free-space = 1\n", 1, 1, "min-free-space", Some("min_free_space")),
            ("[compression]\nalgorithm = \"xz\"\nlevle = 5\n", 3, 1, "compression.levle", Some("compression.level")),
            ("[commands]\ntimout = 5\n", 2, 1, "commands.timout", Some("commands.timeout")),
            ("[collect]\nskip_category = []\n", 2, 1, "collect.skip_category", Some("collect.skip_categories")),
            ("compression.levle = 5\n", 1, 13, "compression.levle", Some("compression.level")),
            // wrong level / wrong section
            ("level = 3\n", 1, 1, "level", Some("compression.level")),
            ("[commands]\nthreads = 2\n", 2, 1, "commands.threads", Some("compression.threads")),
            ("[compression]\nbackup_dir = \"/x\"\n", 2, 1, "compression.backup_dir", Some("backup_dir")),
            ("[collect]\nexclude = []\ntimeout = 3\n", 3, 1, "collect.timeout", Some("commands.timeout")),
            // unknown sections
            ("[compresion]\nlevel = 3\n", 1, 2, "compresion", Some("compression")),
            ("[commands.extra]\n", 1, 11, "commands.extra", None),
            // nothing close
            ("frobnicate = 1\n", 1, 1, "frobnicate", None),
            ("x = 1\n", 1, 1, "x", None),
        ];
        for &(text, line, column, key, suggestion) in cases {
            let (l, c, k, s, m) = parse_err(text);
            assert_eq!(
                (l, c, k.as_str(), s.as_deref()),
                (line, column, key, suggestion),
                "{text:?}"
            );
            assert_eq!(m, format!("unknown key `{key}`"));
        }
    }

    #[test]
    fn error_display() {
        let err = parse("backup_dri = \"/x\"\n", Path::new(ORIGIN), &CHECKS).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/proxkeep/proxkeep.toml:1:1: unknown key `backup_dri` (did you mean `backup_dir`?)"
        );
        let text = "\n\n\n\n\n[compression]\nlevel = 25\n";
        let err = parse(text, Path::new(ORIGIN), &CHECKS).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/proxkeep/proxkeep.toml:7:9: invalid value for `compression.level`: 25 is out of range 1..=19 for zstd"
        );
    }

    #[test]
    fn earliest_error_is_reported() {
        let (line, _, key, _, _) = parse_err("[commands]\nzzz = 1\n[collect]\naaa = 2\n");
        assert_eq!((line, key.as_str()), (2, "commands.zzz"));
        let (line, _, key, _, _) = parse_err("bbb = 1\naaa = 1\n");
        assert_eq!((line, key.as_str()), (1, "bbb"));
    }

    #[test]
    fn levels_per_algorithm() {
        for algorithm in Compression::ALL {
            let range = algorithm.level_range();
            for level in [*range.start(), algorithm.default_level(), *range.end()] {
                let text = format!("[compression]\nalgorithm = \"{algorithm}\"\nlevel = {level}\n");
                assert_eq!(parse_ok(&text).compression.level, level);
            }
            let text = format!("[compression]\nalgorithm = \"{algorithm}\"\n");
            assert_eq!(parse_ok(&text).compression.level, algorithm.default_level());
            assert!(range.contains(&algorithm.default_level()));
        }
        #[rustfmt::skip]
        let bad: &[(&str, i64, &str)] = &[
            ("zstd", 0, "0 is out of range 1..=19 for zstd"),
            ("zstd", 20, "20 is out of range 1..=19 for zstd"),
            ("xz", -1, "-1 is out of range 0..=9 for xz"),
            ("xz", 10, "10 is out of range 0..=9 for xz"),
            ("gzip", 0, "0 is out of range 1..=9 for gzip"),
            ("gzip", 10, "10 is out of range 1..=9 for gzip"),
            ("none", 1, "1 is out of range 0..=0 for none"),
            ("zstd", 99_999_999_999, "99999999999 is out of range 1..=19 for zstd"),
        ];
        for &(algorithm, level, detail) in bad {
            // level before algorithm: the range still follows the algorithm
            let text = format!("[compression]\nlevel = {level}\nalgorithm = \"{algorithm}\"\n");
            let (line, column, key, _, message) = parse_err(&text);
            assert_eq!(
                (line, column, key.as_str()),
                (2, 9, "compression.level"),
                "{text}"
            );
            assert_eq!(
                message,
                format!("invalid value for `compression.level`: {detail}")
            );
        }
    }

    #[test]
    fn bad_values() {
        #[rustfmt::skip]
        let cases: &[(&str, usize, usize, &str, &str)] = &[
            // text, line, column, key, part of message
            ("min_free_space = \"12 XB\"\n", 1, 18, "min_free_space", "unknown unit `XB`"),
            ("min_free_space = \"lots\"\n", 1, 18, "min_free_space", "invalid size `lots`"),
            ("min_free_space = -5\n", 1, 18, "min_free_space", "must not be negative"),
            ("min_free_space = \"99999999 PiB\"\n", 1, 18, "min_free_space", "too large"),
            ("min_free_space = 1.5\n", 1, 18, "min_free_space", "an integer or a string"),
            ("[commands]\ntimeout = \"5 parsecs\"\n", 2, 11, "commands.timeout", "unknown unit `parsecs`"),
            ("[commands]\ntimeout = \"0s\"\n", 2, 11, "commands.timeout", "greater than zero"),
            ("[commands]\ntimeout = 0\n", 2, 11, "commands.timeout", "greater than zero"),
            ("[commands]\ntimeout = -3\n", 2, 11, "commands.timeout", "must not be negative"),
            ("[commands]\ntimeout = \"\"\n", 2, 11, "commands.timeout", "invalid duration"),
            ("[commands]\nconcurrency = 0\n", 2, 15, "commands.concurrency", "0 is out of range 1..=64"),
            ("[commands]\nconcurrency = 65\n", 2, 15, "commands.concurrency", "65 is out of range 1..=64"),
            ("[commands]\nrun = true\n", 2, 7, "commands.run", "expected a string"),
            ("[compression]\nlevel = \"high\"\n", 2, 9, "compression.level", "invalid type"),
            ("[compression]\nthreads = -1\n", 2, 11, "compression.threads", "u32"),
            ("backup_dir = 3\n", 1, 14, "backup_dir", "invalid type"),
            ("backup_dir = \"relative/dir\"\n", 1, 14, "backup_dir", "not an absolute path"),
            ("lock_file = \"\"\n", 1, 13, "lock_file", "not an absolute path"),
            ("[collect]\nextra_paths = [\"/ok\", \"etc/x\"]\n", 2, 23, "collect.extra_paths", "`etc/x` is not an absolute path"),
            ("[collect]\nextra_paths = [\"/etc/../root\"]\n", 2, 16, "collect.extra_paths", "must not contain `..`"),
            ("[collect]\nextra_paths = \"/etc\"\n", 2, 15, "collect.extra_paths", "invalid type"),
            ("[collect]\nexclude = [\"/etc/[abc\"]\n", 2, 12, "collect.exclude", "invalid glob `/etc/[abc`"),
            ("[collect]\nexclude = [\"/a/{b,c\"]\n", 2, 12, "collect.exclude", "invalid glob"),
            ("[collect]\nexclude = [\"etc/foo\"]\n", 2, 12, "collect.exclude", "can never match"),
            ("compression = \"zstd\"\n", 1, 15, "compression", "expected a table ([compression]), found string"),
            ("[[commands]]\nrun = \"auto\"\n", 1, 1, "commands", "expected a table"),
        ];
        for &(text, line, column, key, needle) in cases {
            let (l, c, k, _, m) = parse_err(text);
            assert_eq!((l, c, k.as_str()), (line, column, key), "{text:?}: {m}");
            assert!(
                m.starts_with(&format!("invalid value for `{key}`: ")),
                "{text:?}: {m}"
            );
            assert!(m.contains(needle), "{text:?}: {m}");
        }
    }

    #[test]
    fn bad_enum_value_suggests_variant() {
        let (line, column, key, suggestion, message) =
            parse_err("[compression]\nalgorithm = \"zsdt\"\n");
        assert_eq!(
            (line, column, key.as_str()),
            (2, 13, "compression.algorithm")
        );
        assert_eq!(suggestion.as_deref(), Some("zstd"));
        assert!(message.contains("unknown variant `zsdt`"), "{message}");
        let (_, _, key, suggestion, _) = parse_err("[commands]\nrun = \"nevr\"\n");
        assert_eq!(
            (key.as_str(), suggestion.as_deref()),
            ("commands.run", Some("never"))
        );
        let (_, _, _, suggestion, _) = parse_err("[compression]\nalgorithm = \"lz4\"\n");
        assert_eq!(suggestion, None);
    }

    #[test]
    fn categories() {
        let c = parse_ok("[collect]\nskip_categories = [\"pve-cluster\", \"ssh\"]\n");
        assert_eq!(c.collect.skip_categories, ["pve-cluster", "ssh"]);

        let (line, column, key, suggestion, message) =
            parse_err("[collect]\nskip_categories = [\"ssh\", \"pve_clustr\"]\n");
        assert_eq!(
            (line, column, key.as_str()),
            (2, 27, "collect.skip_categories")
        );
        assert_eq!(suggestion.as_deref(), Some("pve-cluster"));
        assert_eq!(
            message,
            "invalid value for `collect.skip_categories`: unknown category `pve_clustr`"
        );

        let (_, _, _, suggestion, message) =
            parse_err("[collect]\nskip_categories = [\"everything\"]\n");
        assert_eq!(suggestion, None);
        assert!(
            message.contains("known categories: pve-cluster, corosync"),
            "{message}"
        );
    }

    #[test]
    fn syntax_errors_have_a_line() {
        #[rustfmt::skip]
        let cases: &[(&str, usize)] = &[
            ("backup_dir = \"/x\"\nlog_dir = /var/log\n", 2),
            ("a = 1\n\n[compression\nlevel = 3\n", 3),
            ("backup_dir = \"/a\"\nbackup_dir = \"/b\"\n", 2),
            ("\n\nlevel = \n", 3),
        ];
        for &(text, line) in cases {
            let (l, _, key, suggestion, message) = parse_err(text);
            assert_eq!(l, line, "{text:?}: {message}");
            assert_eq!((key.as_str(), suggestion), ("", None));
            assert!(message.starts_with("TOML syntax error: "), "{message}");
        }
        let err = parse("a = \n", Path::new("/tmp/x.toml"), &Checks::NONE).unwrap_err();
        assert!(err.to_string().starts_with("/tmp/x.toml:1:"), "{err}");
    }

    #[test]
    fn columns_count_characters() {
        let text = "# äöü\n[collect]\nextra_paths = [\"/ä\", \"ü\"]\n";
        let (line, column, _, _, _) = parse_err(text);
        assert_eq!((line, column), (3, 22));
    }

    #[test]
    fn load_sources() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");

        match load_with_default(Some(&missing), Path::new("/nonexistent"), &CHECKS) {
            Err(ConfigError::Read { path, source }) => {
                assert_eq!(path, missing);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
        let err = load_with_default(Some(&missing), &missing, &CHECKS).unwrap_err();
        assert!(err.to_string().starts_with("cannot read config "), "{err}");

        let config = load_with_default(None, &missing, &CHECKS).unwrap();
        assert_eq!(config, Config::default());

        // Not UTF-8: the line and the byte column of the first bad byte.
        let file = dir.path().join("latin1.toml");
        std::fs::write(&file, b"# ok\nbackup_dir = \"/srv/caf\xe9\"\n").unwrap();
        match load(Some(&file), &CHECKS) {
            Err(ConfigError::Invalid {
                line,
                column,
                message,
                ..
            }) => {
                assert_eq!((line, column), (2, 23), "{message}");
                assert!(message.contains("byte 0xe9 at byte column 23"), "{message}");
            }
            other => panic!("{other:?}"),
        }

        let file = dir.path().join("proxkeep.toml");
        std::fs::write(&file, FULL).unwrap();
        let config = load(Some(&file), &CHECKS).unwrap();
        assert_eq!(config, full_config());
        let config = load_with_default(None, &file, &CHECKS).unwrap();
        assert_eq!(config, full_config());

        std::fs::write(&file, "[compression]\nlevel = 0\n").unwrap();
        match load(Some(&file), &CHECKS) {
            Err(ConfigError::Invalid { path, line, .. }) => assert_eq!((path, line), (file, 2)),
            other => panic!("{other:?}"),
        }

        // A directory (or any other read failure) at the default path is an error.
        let err = load_with_default(None, dir.path(), &CHECKS).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }

    #[test]
    fn render_round_trips() {
        let mut odd = full_config();
        odd.min_free_space = 1_234_567;
        odd.commands.timeout = Duration::from_millis(1500);
        odd.compression = CompressionConfig {
            algorithm: Compression::None,
            level: 0,
            threads: 0,
        };
        for config in [Config::default(), full_config(), odd] {
            let text = render_redacted(&config);
            assert_eq!(parse_ok(&text), config, "{text}");
            assert!(!text.contains(REDACTED));
        }
        let text = render_redacted(&Config::default());
        for line in [
            "backup_dir = \"/var/backups/proxkeep\"",
            "min_free_space = \"1GiB\"",
            "[compression]",
            "algorithm = \"zstd\"",
            "level = 3",
            "skip_categories = []",
            "timeout = \"30s\"",
            "run = \"auto\"",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn compression_and_run_helpers() {
        let table = [
            (Compression::Zstd, "zstd", "tar.zst", 3, 1..=19),
            (Compression::Xz, "xz", "tar.xz", 6, 0..=9),
            (Compression::Gzip, "gzip", "tar.gz", 6, 1..=9),
            (Compression::None, "none", "tar", 0, 0..=0),
        ];
        for (c, name, ext, level, range) in table {
            assert_eq!(
                (c.name(), c.extension(), c.default_level()),
                (name, ext, level)
            );
            assert_eq!(c.level_range(), range);
            assert_eq!(c.to_string(), name);
            assert_eq!(name.parse::<Compression>(), Ok(c));
        }
        assert_eq!("gz".parse::<Compression>(), Ok(Compression::Gzip));
        assert_eq!("ZSTD".parse::<Compression>(), Ok(Compression::Zstd));
        let err = "lz4".parse::<Compression>().unwrap_err();
        assert!(
            err.contains("zstd") && err.contains("gzip") && err.contains("none"),
            "{err}"
        );

        let run = |v: &str| toml::Value::from(v).try_into::<RunCommands>().ok();
        assert_eq!(run("never"), Some(RunCommands::Never));
        assert_eq!(run("sometimes"), None);
    }
}
