//! The effective configuration's sections: the structs [`parse`](super::parse) fills, with their built-in
//! defaults (README.md shows them).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

use super::raw::{self, AbsPath, Glob, Target, many, one, some};
use super::{MetricsConfig, NotifyConfig};
use crate::archive::compression::Compression;

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

/// `[encryption]`. Recipients are checked when the config is loaded ([`Checks::recipient`](super::Checks::recipient)); the two files are
/// read by each backup and safety archive ([`EncryptionConfig::seal`]).
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

pub(super) fn secs<const N: u64>() -> Duration {
    Duration::from_secs(N)
}

pub(super) fn three() -> u32 {
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
    /// Always within `algorithm.level_range()` when produced by [`parse`](super::parse).
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
    /// Per-command timeout; never zero when produced by [`parse`](super::parse).
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

pub(super) fn ser_size<S: Serializer>(bytes: &u64, s: S) -> Result<S::Ok, S::Error> {
    crate::units::size_to_toml(*bytes).serialize(s)
}

pub(super) fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::units::duration_to_string(*d))
}
