//! proxkeep's own configuration file (`/etc/proxkeep/proxkeep.toml`).
//!
//! Every key is optional; a missing file at the default location means built-in defaults.
//!
//! ```toml
//! backup_dir = "/var/backups/proxkeep"
//! log_dir = "/var/log/proxkeep"
//! lock_file = "/run/proxkeep.lock"
//! min_free_space = "1GiB"            # or integer bytes
//!
//! [compression]
//! algorithm = "zstd"                 # zstd | xz | gzip | none
//! level = 3                          # zstd 1..=19, xz 0..=9, gzip 1..=9, none 0
//! threads = 0                        # 0 = all cores
//!
//! [collect]
//! skip_categories = []               # catalog category names
//! extra_paths = []                   # absolute host paths
//! exclude = []                       # glob patterns on absolute host paths
//!
//! [commands]
//! run = "auto"                       # auto (only when the host root is "/") | always | never
//! timeout = "30s"                    # integer seconds or "500ms", "30s", "2m", "1h"
//! concurrency = 4                    # 1..=64
//! ```
//!
//! Parsing is done in three steps so that every error can name the file, line, column and key:
//! 1. the text is parsed into a span-carrying [`toml::de::DeTable`] (syntax errors);
//! 2. every key is checked against [`SCHEMA`], one list of known keys per section; unknown keys
//!    get a "did you mean" suggestion drawn from all known keys of all sections, so a key in the
//!    wrong section suggests its qualified name (`level` → `compression.level`);
//! 3. the table is deserialized into private `Raw*` structs (`deny_unknown_fields`, values wrapped
//!    in [`toml::Spanned`]) and validated semantically while converting to [`Config`].
//!
//! New sections only need an entry in [`SCHEMA`] and a matching `Raw*` struct; the
//! `schema_matches_serialized_config` test keeps the two in sync.

use std::fmt;
use std::ops::{Range, RangeInclusive};
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};

mod notify;
pub use notify::{
    ChatId, Common, EmailConfig, Event, GotifyConfig, HttpMethod, MailTransport, MetricsConfig,
    NotifyConfig, NtfyConfig, PingConfig, SmtpTls, TelegramConfig, WebhookConfig, WebhookFormat,
};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

pub use crate::archive::compression::Compression;

/// Where the configuration is read from when neither `--config` nor `$PROXKEEP_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/proxkeep/proxkeep.toml";

/// Replacement text for secret values in [`render_redacted`].
const REDACTED: &str = "<redacted>";

// ---------------------------------------------------------------------------------------------
// Enums
// ---------------------------------------------------------------------------------------------

/// Whether the command collectors (`pveversion`, `zpool status`, ...) are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunCommands {
    /// Only when the host root is `/` (commands would describe the wrong system otherwise).
    Auto,
    Always,
    Never,
}

impl RunCommands {
    /// Canonical lowercase name, as written in the config file.
    pub fn name(self) -> &'static str {
        match self {
            RunCommands::Auto => "auto",
            RunCommands::Always => "always",
            RunCommands::Never => "never",
        }
    }

    /// Whether commands should run when backing up the host mounted at `host_root`.
    pub fn enabled_for(self, host_root: &Path) -> bool {
        match self {
            RunCommands::Auto => host_root == Path::new("/"),
            RunCommands::Always => true,
            RunCommands::Never => false,
        }
    }
}

impl FromStr for RunCommands {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(RunCommands::Auto),
            "always" => Ok(RunCommands::Always),
            "never" => Ok(RunCommands::Never),
            _ => Err(format!("unknown value `{s}` (valid: auto, always, never)")),
        }
    }
}

impl fmt::Display for RunCommands {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

// ---------------------------------------------------------------------------------------------
// Config structs
// ---------------------------------------------------------------------------------------------

/// The effective configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Config {
    #[serde(serialize_with = "ser_path")]
    pub backup_dir: PathBuf,
    #[serde(serialize_with = "ser_path")]
    pub log_dir: PathBuf,
    #[serde(serialize_with = "ser_path")]
    pub lock_file: PathBuf,
    /// Bytes that must stay free on the backup file system.
    #[serde(serialize_with = "ser_size")]
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
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionConfig>,
}

/// `[encryption]`. Recipients are checked when the config is loaded; the two files are read by each backup.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EncryptionConfig {
    /// `age1…` and `ssh-ed25519 …` public keys, as written.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipients_file: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passphrase_file: Option<PathBuf>,
}

impl EncryptionConfig {
    /// What the backup encrypts with. Reads the recipients and passphrase files: their errors name the file
    /// (and line), never the passphrase.
    pub fn seal(&self) -> Result<crate::crypt::Seal, crate::crypt::CryptError> {
        use crate::crypt::{self, Seal};
        if let Some(p) = &self.passphrase_file {
            return crypt::read_passphrase_file(p).map(Seal::Passphrase);
        }
        let mut out = Vec::new();
        for r in &self.recipients {
            // Checked at load time already.
            out.push(crypt::parse_recipient(r).map_err(crypt::CryptError::Key)?);
        }
        if let Some(f) = &self.recipients_file {
            out.extend(crypt::read_recipients_file(f)?);
        }
        Ok(Seal::Recipients(out))
    }
}

pub use crate::store::retention::Policy;

/// Per-tier overrides of the `[retention]` keys.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyOverride {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_last: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_hourly: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_daily: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_weekly: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_monthly: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub keep_yearly: Option<u32>,
}

impl PolicyOverride {
    /// The default policy with the keys this tier sets replaced.
    pub fn apply(&self, base: &Policy) -> Policy {
        Policy {
            keep_last: self.keep_last.unwrap_or(base.keep_last),
            keep_hourly: self.keep_hourly.unwrap_or(base.keep_hourly),
            keep_daily: self.keep_daily.unwrap_or(base.keep_daily),
            keep_weekly: self.keep_weekly.unwrap_or(base.keep_weekly),
            keep_monthly: self.keep_monthly.unwrap_or(base.keep_monthly),
            keep_yearly: self.keep_yearly.unwrap_or(base.keep_yearly),
        }
    }
}

/// `[[secondary]]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecondaryConfig {
    pub name: String,
    #[serde(serialize_with = "ser_path")]
    pub path: PathBuf,
    /// The path must be a mount point, else the tier is skipped (default: true under /mnt and /media).
    pub require_mount: bool,
    /// Deadline for every file-system call on this tier (a dead NFS mount must not hang the run).
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    #[serde(flatten)]
    pub retention: PolicyOverride,
}

/// `[[remote]]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteConfig {
    pub name: String,
    /// rclone destination, `remote:path`.
    pub target: String,
    /// Extra rclone flags (`--bwlimit 8M`, ...).
    pub flags: Vec<String>,
    /// Timeout of every rclone call.
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// Attempts of a failed upload (with backoff).
    pub retries: u32,
    #[serde(flatten)]
    pub retention: PolicyOverride,
}

/// Retention used when `[retention]` is absent: the policy of the docs' example.
pub const DEFAULT_POLICY: Policy = Policy {
    keep_last: 3,
    keep_hourly: 0,
    keep_daily: 7,
    keep_weekly: 4,
    keep_monthly: 6,
    keep_yearly: 2,
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
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompressionConfig {
    pub algorithm: Compression,
    /// Always within `algorithm.level_range()` when produced by [`parse`].
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
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct CollectConfig {
    /// Catalog categories not to back up.
    pub skip_categories: Vec<String>,
    /// Additional absolute host paths to back up.
    #[serde(serialize_with = "ser_paths")]
    pub extra_paths: Vec<PathBuf>,
    /// Glob patterns (globset syntax) matched against absolute host paths.
    pub exclude: Vec<String>,
}

/// `[commands]`
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CommandsConfig {
    pub run: RunCommands,
    /// Per-command timeout; never zero when produced by [`parse`].
    #[serde(serialize_with = "ser_duration")]
    pub timeout: Duration,
    /// Commands run in parallel, 1..=64.
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

const CONCURRENCY_RANGE: RangeInclusive<i64> = 1..=64;

// ---------------------------------------------------------------------------------------------
// Errors and sources
// ---------------------------------------------------------------------------------------------

/// Where the effective configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// No file: built-in defaults.
    Default,
    File(PathBuf),
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::Default => f.write_str("built-in defaults"),
            ConfigSource::File(path) => write!(f, "{}", path.display()),
        }
    }
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

impl ConfigError {
    fn position(&self) -> (usize, usize) {
        match self {
            ConfigError::Read { .. } => (0, 0),
            ConfigError::Invalid { line, column, .. } => (*line, *column),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------------------------

/// One table of the config file.
struct Section {
    /// Dotted section path, `""` for the top level.
    path: &'static str,
    /// `[[path]]` (array of tables) rather than `[path]`.
    array: bool,
    /// Leaf keys allowed in this section (sub-sections are separate entries).
    keys: &'static [&'static str],
}

/// Every section and key the config file may contain. Intermediate tables of nested sections
/// (e.g. `notify` for `[[notify.gotify]]`) need no entry of their own.
const SCHEMA: &[Section] = &[
    Section {
        path: "",
        array: false,
        keys: &["backup_dir", "log_dir", "lock_file", "min_free_space"],
    },
    Section {
        path: "compression",
        array: false,
        keys: &["algorithm", "level", "threads"],
    },
    Section {
        path: "collect",
        array: false,
        keys: &["skip_categories", "extra_paths", "exclude"],
    },
    Section {
        path: "commands",
        array: false,
        keys: &["run", "timeout", "concurrency"],
    },
    Section {
        path: "retention",
        array: false,
        keys: KEEP_KEYS,
    },
    Section {
        path: "secondary",
        array: true,
        keys: &[
            "name",
            "path",
            "require_mount",
            "timeout",
            "keep_last",
            "keep_hourly",
            "keep_daily",
            "keep_weekly",
            "keep_monthly",
            "keep_yearly",
        ],
    },
    Section {
        path: "remote",
        array: true,
        keys: &[
            "name",
            "target",
            "flags",
            "timeout",
            "retries",
            "keep_last",
            "keep_hourly",
            "keep_daily",
            "keep_weekly",
            "keep_monthly",
            "keep_yearly",
        ],
    },
    Section {
        path: "metrics",
        array: false,
        keys: &["textfile"],
    },
    Section {
        path: "encryption",
        array: false,
        keys: &["recipients", "recipients_file", "passphrase_file"],
    },
    Section {
        path: "notify.email",
        array: true,
        keys: &[
            "name",
            "on",
            "timeout",
            "retry_budget",
            "ca_file",
            "to",
            "from",
            "transport",
            "sendmail",
            "host",
            "port",
            "tls",
            "username",
            "password",
        ],
    },
    Section {
        path: "notify.telegram",
        array: true,
        keys: &[
            "name",
            "on",
            "timeout",
            "retry_budget",
            "ca_file",
            "bot_token",
            "chat_id",
            "api_url",
        ],
    },
    Section {
        path: "notify.gotify",
        array: true,
        keys: &[
            "name",
            "on",
            "timeout",
            "retry_budget",
            "ca_file",
            "url",
            "token",
        ],
    },
    Section {
        path: "notify.ntfy",
        array: true,
        keys: &[
            "name",
            "on",
            "timeout",
            "retry_budget",
            "ca_file",
            "url",
            "token",
        ],
    },
    Section {
        path: "notify.webhook",
        array: true,
        keys: &[
            "name",
            "on",
            "timeout",
            "retry_budget",
            "ca_file",
            "url",
            "method",
            "format",
            "headers",
            "hmac_secret",
        ],
    },
    Section {
        path: "notify.ping",
        array: true,
        keys: &[
            "name",
            "url",
            "start",
            "warning_as_failure",
            "timeout",
            "retry_budget",
            "ca_file",
        ],
    },
];

const KEEP_KEYS: &[&str] = &[
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
];

fn schema_section(path: &str) -> Option<&'static Section> {
    SCHEMA.iter().find(|s| s.path == path)
}

/// `path` is a proper prefix of some section path (an implicit parent table).
fn is_container(path: &str) -> bool {
    SCHEMA.iter().any(|s| {
        s.path.len() > path.len()
            && s.path.starts_with(path)
            && s.path.as_bytes()[path.len()] == b'.'
    })
}

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Every qualified name a key could be: all section paths, their parents and all leaf keys.
fn qualified_names() -> Vec<String> {
    let mut names = Vec::new();
    for section in SCHEMA {
        let mut prefix = String::new();
        for part in section.path.split('.').filter(|p| !p.is_empty()) {
            prefix = join_key(&prefix, part);
            names.push(prefix.clone());
        }
        names.extend(section.keys.iter().map(|k| join_key(section.path, k)));
    }
    names.sort();
    names.dedup();
    names
}

/// Closest known qualified name for unknown `key` found in section `parent`. Same-section
/// candidates win ties; a key that exists verbatim elsewhere beats a near-miss here.
fn suggest_key(key: &str, parent: &str) -> Option<String> {
    qualified_names()
        .into_iter()
        .filter_map(|q| {
            let (q_parent, last) = q.rsplit_once('.').unwrap_or(("", q.as_str()));
            let distance = close_distance(key, last)?;
            Some((distance, q_parent != parent, q))
        })
        .min()
        .map(|(_, _, q)| q)
}

// ---------------------------------------------------------------------------------------------
// Edit distance
// ---------------------------------------------------------------------------------------------

fn normalize_name(s: &str) -> Vec<char> {
    s.chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// Distance between `word` and `candidate` if close enough to suggest: at most a third of the
/// longer name, clamped to 1..=3, and less than the length of `word`. Case and `-`/`_` are
/// ignored.
fn close_distance(word: &str, candidate: &str) -> Option<usize> {
    let (w, c) = (normalize_name(word), normalize_name(candidate));
    let distance = edit_distance(&w, &c);
    let limit = (w.len().max(c.len()) / 3).clamp(1, 3);
    (distance <= limit && distance < w.len().max(1)).then_some(distance)
}

/// Closest candidate to `word`, if close enough.
fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .filter_map(|c| close_distance(word, c).map(|d| (d, c)))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Location context for building [`ConfigError::Invalid`].
struct Ctx<'a> {
    text: &'a str,
    origin: &'a Path,
}

impl Ctx<'_> {
    /// 1-based line and column (in characters) of byte `offset`.
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (
            before.matches('\n').count() + 1,
            before[line_start..].chars().count() + 1,
        )
    }

    fn error(
        &self,
        span: Range<usize>,
        key: &str,
        message: String,
        suggestion: Option<String>,
    ) -> ConfigError {
        let (line, column) = self.line_col(span.start);
        ConfigError::Invalid {
            path: self.origin.to_path_buf(),
            line,
            column,
            key: key.to_owned(),
            message,
            suggestion,
        }
    }

    fn invalid(&self, span: Range<usize>, key: &str, detail: impl fmt::Display) -> ConfigError {
        self.error(
            span,
            key,
            format!("invalid value for `{key}`: {detail}"),
            None,
        )
    }

    fn syntax(&self, err: &toml::de::Error) -> ConfigError {
        let message = format!("TOML syntax error: {}", err.message());
        self.error(err.span().unwrap_or(0..0), "", message, None)
    }

    /// Checks every key of `table` (the section at `path`) against [`SCHEMA`].
    fn check_table(&self, table: &DeTable<'_>, path: &str, errors: &mut Vec<ConfigError>) {
        let keys = schema_section(path).map_or(&[][..], |s| s.keys);
        for (key, value) in table {
            let name: &str = key.get_ref();
            let full = join_key(path, name);
            match schema_section(&full) {
                Some(section) if section.array => match value.get_ref() {
                    DeValue::Array(items) => {
                        for item in items {
                            match item.get_ref() {
                                DeValue::Table(t) => self.check_table(t, &full, errors),
                                other => errors.push(self.invalid(
                                    item.span(),
                                    &full,
                                    format!(
                                        "expected tables ([[{full}]]), found {}",
                                        other.type_str()
                                    ),
                                )),
                            }
                        }
                    }
                    other => errors.push(self.invalid(
                        value.span(),
                        &full,
                        format!(
                            "expected an array of tables ([[{full}]]), found {}",
                            other.type_str()
                        ),
                    )),
                },
                Some(_) => self.check_subtable(value, &full, errors),
                None if is_container(&full) => self.check_subtable(value, &full, errors),
                None if keys.contains(&name) => {} // leaf: value checked when deserializing
                None => errors.push(self.error(
                    key.span(),
                    &full,
                    format!("unknown key `{full}`"),
                    suggest_key(name, path),
                )),
            }
        }
    }

    fn check_subtable(
        &self,
        value: &Spanned<DeValue<'_>>,
        full: &str,
        errors: &mut Vec<ConfigError>,
    ) {
        match value.get_ref() {
            DeValue::Table(t) => self.check_table(t, full, errors),
            other => errors.push(self.invalid(
                value.span(),
                full,
                format!("expected a table ([{full}]), found {}", other.type_str()),
            )),
        }
    }

    /// Maps a deserialization error to the key whose value it points at.
    fn serde_error(&self, err: &toml::de::Error, doc: &DeTable<'_>) -> ConfigError {
        let span = err.span().unwrap_or(0..0);
        let key = key_at(doc, "", &span).map_or_else(String::new, |(_, k)| k);
        let msg = match err.message() {
            // toml's wording for a non-string value where an enum is expected
            "wanted string or table" => "expected a string",
            other => other,
        };
        let suggestion = suggestion_from_serde_message(msg);
        let message = if key.is_empty() || msg.starts_with("unknown field") {
            msg.to_owned()
        } else {
            format!("invalid value for `{key}`: {msg}")
        };
        self.error(span, &key, message, suggestion)
    }
}

/// Dotted key (and its value span length) of the innermost value containing `span`.
fn key_at(table: &DeTable<'_>, path: &str, span: &Range<usize>) -> Option<(usize, String)> {
    let mut best: Option<(usize, String)> = None;
    let mut consider = |candidate: Option<(usize, String)>| {
        if let Some(c) = candidate
            && best.as_ref().is_none_or(|b| c.0 <= b.0)
        {
            best = Some(c);
        }
    };
    for (key, value) in table {
        let full = join_key(path, key.get_ref());
        let vspan = value.span();
        if vspan.start <= span.start && span.end <= vspan.end && vspan.start < vspan.end {
            consider(Some((vspan.len(), full.clone())));
        }
        match value.get_ref() {
            DeValue::Table(t) => consider(key_at(t, &full, span)),
            DeValue::Array(items) => {
                for item in items {
                    if let DeValue::Table(t) = item.get_ref() {
                        consider(key_at(t, &full, span));
                    }
                }
            }
            _ => {}
        }
    }
    best
}

/// Suggestion for serde's "unknown field `x`, expected one of `a`, `b`" and
/// "unknown variant `x`, expected ..." messages.
fn suggestion_from_serde_message(msg: &str) -> Option<String> {
    let rest = msg
        .strip_prefix("unknown field ")
        .or_else(|| msg.strip_prefix("unknown variant "))?;
    let mut quoted = rest.split('`').skip(1).step_by(2);
    let bad = quoted.next()?;
    closest(bad, quoted).map(str::to_owned)
}

/// Parses the config file `text` read from `origin` (used in error messages only).
/// `known_categories` are the names a `collect.skip_categories` entry must be one of.
pub fn parse(text: &str, origin: &Path, known_categories: &[&str]) -> Result<Config, ConfigError> {
    let cx = Ctx { text, origin };
    let doc = DeTable::parse(text).map_err(|e| cx.syntax(&e))?;

    let mut errors = Vec::new();
    cx.check_table(doc.get_ref(), "", &mut errors);
    if let Some(first) = errors.into_iter().min_by_key(ConfigError::position) {
        return Err(first);
    }

    let raw = RawConfig::deserialize(toml::de::Deserializer::from(doc.clone()))
        .map_err(|e| cx.serde_error(&e, doc.get_ref()))?;
    raw.validate(&cx, known_categories)
}

/// Loads the configuration. `explicit` is the path given by `--config` or `$PROXKEEP_CONFIG`
/// (a missing file is an error); `None` reads [`DEFAULT_CONFIG_PATH`], where a missing file
/// means built-in defaults.
pub fn load(
    explicit: Option<&Path>,
    known_categories: &[&str],
) -> Result<(Config, ConfigSource), ConfigError> {
    load_with_default(explicit, Path::new(DEFAULT_CONFIG_PATH), known_categories)
}

/// After [`load`] failed: only `[notify]` and `[metrics]`, when those sections are themselves valid, so a run
/// stopped by a config error can still tell the channels the file names. `None` when even they cannot be read
/// (missing file, TOML syntax error, error inside those sections): then nobody can be told, and the error
/// reaches only stderr (the journal) and the exit code 2.
pub fn load_reporting_only(explicit: Option<&Path>) -> Option<Config> {
    let path = explicit.unwrap_or(Path::new(DEFAULT_CONFIG_PATH));
    let text = std::fs::read_to_string(path).ok()?;
    let cx = Ctx {
        text: &text,
        origin: path,
    };
    let full = DeTable::parse(&text).ok()?;
    let span = full.span();
    let kept: DeTable<'_> = full
        .into_inner()
        .into_iter()
        .filter(|(k, _)| matches!(&**k.get_ref(), "notify" | "metrics"))
        .collect();
    let doc = Spanned::new(span, kept);
    let mut errors = Vec::new();
    cx.check_table(doc.get_ref(), "", &mut errors);
    if !errors.is_empty() {
        return None;
    }
    let raw = RawConfig::deserialize(toml::de::Deserializer::from(doc)).ok()?;
    raw.validate(&cx, &[]).ok()
}

fn load_with_default(
    explicit: Option<&Path>,
    default_path: &Path,
    known_categories: &[&str],
) -> Result<(Config, ConfigSource), ConfigError> {
    let path = explicit.unwrap_or(default_path);
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let config = parse(&text, path, known_categories)?;
            Ok((config, ConfigSource::File(path.to_path_buf())))
        }
        // A dangling symlink at the default path is an error, not "no config".
        Err(e)
            if explicit.is_none()
                && e.kind() == std::io::ErrorKind::NotFound
                && std::fs::symlink_metadata(path).is_err() =>
        {
            Ok((Config::default(), ConfigSource::Default))
        }
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Raw (deserialized, not yet validated) structs
// ---------------------------------------------------------------------------------------------

/// A TOML integer or string (sizes, durations).
enum IntOrStr {
    Int(i64),
    Str(String),
}

impl<'de> Deserialize<'de> for IntOrStr {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = IntOrStr;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an integer or a string")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<IntOrStr, E> {
                Ok(IntOrStr::Int(v))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<IntOrStr, E> {
                i64::try_from(v)
                    .map(IntOrStr::Int)
                    .map_err(|_| E::custom(format!("{v} is too large")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<IntOrStr, E> {
                Ok(IntOrStr::Str(v.to_owned()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    backup_dir: Option<Spanned<PathBuf>>,
    log_dir: Option<Spanned<PathBuf>>,
    lock_file: Option<Spanned<PathBuf>>,
    min_free_space: Option<Spanned<IntOrStr>>,
    compression: Option<RawCompression>,
    collect: Option<RawCollect>,
    commands: Option<RawCommands>,
    retention: Option<PolicyOverride>,
    secondary: Option<Vec<Spanned<RawSecondary>>>,
    remote: Option<Vec<Spanned<RawRemote>>>,
    notify: Option<notify::RawNotify>,
    metrics: Option<notify::RawMetrics>,
    encryption: Option<Spanned<RawEncryption>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncryption {
    recipients: Option<Vec<Spanned<String>>>,
    recipients_file: Option<Spanned<PathBuf>>,
    passphrase_file: Option<Spanned<PathBuf>>,
}

impl RawEncryption {
    fn validate(self, cx: &Ctx<'_>, span: Range<usize>) -> Result<EncryptionConfig, ConfigError> {
        let mut recipients = Vec::new();
        for (i, r) in self.recipients.unwrap_or_default().into_iter().enumerate() {
            let span = r.span();
            let r = r.into_inner();
            if let Err(why) = crate::crypt::parse_recipient(&r) {
                return Err(cx.invalid(span, &format!("recipients[{i}]"), why));
            }
            recipients.push(r.trim().to_string());
        }
        let recipients_file = self
            .recipients_file
            .map(|p| absolute_path(cx, p, "recipients_file"))
            .transpose()?;
        let passphrase_span = self.passphrase_file.as_ref().map(|p| p.span());
        let passphrase_file = self
            .passphrase_file
            .map(|p| absolute_path(cx, p, "passphrase_file"))
            .transpose()?;
        if let Some(span) = passphrase_span
            && (!recipients.is_empty() || recipients_file.is_some())
        {
            return Err(cx.invalid(
                span,
                "passphrase_file",
                "an age file is encrypted either to recipients or with a passphrase, not both",
            ));
        }
        if recipients.is_empty() && recipients_file.is_none() && passphrase_file.is_none() {
            return Err(cx.invalid(
                span,
                "encryption",
                "set `recipients`, `recipients_file` or `passphrase_file` (or remove [encryption])",
            ));
        }
        Ok(EncryptionConfig {
            recipients,
            recipients_file,
            passphrase_file,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecondary {
    name: Option<Spanned<String>>,
    path: Spanned<PathBuf>,
    require_mount: Option<bool>,
    timeout: Option<Spanned<IntOrStr>>,
    #[serde(flatten)]
    retention: PolicyOverride,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRemote {
    name: Option<Spanned<String>>,
    target: Spanned<String>,
    flags: Option<Vec<String>>,
    timeout: Option<Spanned<IntOrStr>>,
    retries: Option<u32>,
    #[serde(flatten)]
    retention: PolicyOverride,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCompression {
    algorithm: Option<Compression>,
    level: Option<Spanned<i64>>,
    threads: Option<u32>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCollect {
    skip_categories: Option<Vec<Spanned<String>>>,
    extra_paths: Option<Vec<Spanned<PathBuf>>>,
    exclude: Option<Vec<Spanned<String>>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCommands {
    run: Option<RunCommands>,
    timeout: Option<Spanned<IntOrStr>>,
    concurrency: Option<Spanned<i64>>,
}

impl RawConfig {
    fn validate(self, cx: &Ctx<'_>, known_categories: &[&str]) -> Result<Config, ConfigError> {
        let defaults = Config::default();
        let dir = |value: Option<Spanned<PathBuf>>, key: &str, default: PathBuf| {
            value.map_or(Ok(default), |v| absolute_path(cx, v, key))
        };
        let min_free_space = match self.min_free_space {
            None => defaults.min_free_space,
            Some(v) => {
                let span = v.span();
                match v.into_inner() {
                    IntOrStr::Int(n) => u64::try_from(n).map_err(|_| {
                        cx.invalid(span, "min_free_space", "size must not be negative")
                    })?,
                    IntOrStr::Str(s) => {
                        parse_size(&s).map_err(|e| cx.invalid(span, "min_free_space", e))?
                    }
                }
            }
        };
        Ok(Config {
            backup_dir: dir(self.backup_dir, "backup_dir", defaults.backup_dir)?,
            log_dir: dir(self.log_dir, "log_dir", defaults.log_dir)?,
            lock_file: dir(self.lock_file, "lock_file", defaults.lock_file)?,
            min_free_space,
            compression: self.compression.unwrap_or_default().validate(cx)?,
            collect: self
                .collect
                .unwrap_or_default()
                .validate(cx, known_categories)?,
            commands: self.commands.unwrap_or_default().validate(cx)?,
            retention: self
                .retention
                .map_or(DEFAULT_POLICY, |o| o.apply(&Policy::default())),
            secondary: validate_secondaries(cx, self.secondary.unwrap_or_default())?,
            remote: validate_remotes(cx, self.remote.unwrap_or_default())?,
            notify: self.notify.unwrap_or_default().validate(cx)?,
            metrics: self.metrics.unwrap_or_default().validate(cx)?,
            encryption: match self.encryption {
                Some(e) => {
                    let span = e.span();
                    Some(e.into_inner().validate(cx, span)?)
                }
                None => None,
            },
        })
    }
}

/// A positive duration given as integer seconds or a string like "30s".
fn duration_value(cx: &Ctx<'_>, v: Spanned<IntOrStr>, key: &str) -> Result<Duration, ConfigError> {
    let span = v.span();
    let d = match v.into_inner() {
        IntOrStr::Int(n) => Duration::from_secs(
            u64::try_from(n)
                .map_err(|_| cx.invalid(span.clone(), key, "duration must not be negative"))?,
        ),
        IntOrStr::Str(s) => parse_duration(&s).map_err(|e| cx.invalid(span.clone(), key, e))?,
    };
    if d.is_zero() {
        return Err(cx.invalid(span, key, "duration must be greater than zero"));
    }
    Ok(d)
}

fn tier_name(
    cx: &Ctx<'_>,
    v: Spanned<String>,
    key: &str,
    seen: &mut Vec<String>,
) -> Result<String, ConfigError> {
    let span = v.span();
    let name = v.into_inner();
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(cx.invalid(
            span,
            key,
            format!("`{name}`: use letters, digits, '-', '_' or '.'"),
        ));
    }
    if seen.contains(&name) {
        return Err(cx.invalid(span, key, format!("`{name}` is used by another tier")));
    }
    seen.push(name.clone());
    Ok(name)
}

fn validate_secondaries(
    cx: &Ctx<'_>,
    raw: Vec<Spanned<RawSecondary>>,
) -> Result<Vec<SecondaryConfig>, ConfigError> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for entry in raw {
        let span = entry.span();
        let r = entry.into_inner();
        let path = absolute_path(cx, r.path, "secondary.path")?;
        let default_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "root".into());
        let name = tier_name(
            cx,
            r.name
                .unwrap_or_else(|| Spanned::new(span.clone(), default_name)),
            "secondary.name",
            &mut seen,
        )?;
        let under_removable = path.starts_with("/mnt") || path.starts_with("/media");
        out.push(SecondaryConfig {
            name,
            require_mount: r.require_mount.unwrap_or(under_removable),
            timeout: match r.timeout {
                Some(t) => duration_value(cx, t, "secondary.timeout")?,
                None => Duration::from_secs(60),
            },
            path,
            retention: r.retention,
        });
    }
    Ok(out)
}

fn validate_remotes(
    cx: &Ctx<'_>,
    raw: Vec<Spanned<RawRemote>>,
) -> Result<Vec<RemoteConfig>, ConfigError> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for entry in raw {
        let span = entry.span();
        let r = entry.into_inner();
        let tspan = r.target.span();
        let target = r.target.into_inner();
        let Some((remote, _)) = target.split_once(':').filter(|(r, _)| !r.is_empty()) else {
            return Err(cx.invalid(
                tspan,
                "remote.target",
                format!("`{target}` is not an rclone `remote:path`"),
            ));
        };
        let default_name = remote.trim_start_matches(':').to_string();
        let name = tier_name(
            cx,
            r.name
                .unwrap_or_else(|| Spanned::new(span.clone(), default_name)),
            "remote.name",
            &mut seen,
        )?;
        out.push(RemoteConfig {
            name,
            target: target.trim_end_matches('/').to_string(),
            flags: r.flags.unwrap_or_default(),
            timeout: match r.timeout {
                Some(t) => duration_value(cx, t, "remote.timeout")?,
                None => Duration::from_secs(600),
            },
            retries: r.retries.unwrap_or(3).max(1),
            retention: r.retention,
        });
    }
    Ok(out)
}

/// An absolute path without `..` components (it is joined to the host root later).
fn absolute_path(cx: &Ctx<'_>, value: Spanned<PathBuf>, key: &str) -> Result<PathBuf, ConfigError> {
    let span = value.span();
    let path = value.into_inner();
    if !path.is_absolute() {
        let detail = format!("`{}` is not an absolute path", path.display());
        return Err(cx.invalid(span, key, detail));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        let detail = format!("`{}` must not contain `..`", path.display());
        return Err(cx.invalid(span, key, detail));
    }
    Ok(path)
}

impl RawCompression {
    fn validate(self, cx: &Ctx<'_>) -> Result<CompressionConfig, ConfigError> {
        let algorithm = self.algorithm.unwrap_or(Compression::Zstd);
        let level = match self.level {
            None => algorithm.default_level(),
            Some(v) => {
                let range = algorithm.level_range();
                let n = *v.get_ref();
                match i32::try_from(n) {
                    Ok(level) if range.contains(&level) => level,
                    _ => {
                        let detail = format!(
                            "{n} is out of range {}..={} for {algorithm}",
                            range.start(),
                            range.end()
                        );
                        return Err(cx.invalid(v.span(), "compression.level", detail));
                    }
                }
            }
        };
        Ok(CompressionConfig {
            algorithm,
            level,
            threads: self.threads.unwrap_or(0),
        })
    }
}

impl RawCollect {
    fn validate(
        self,
        cx: &Ctx<'_>,
        known_categories: &[&str],
    ) -> Result<CollectConfig, ConfigError> {
        const SKIP: &str = "collect.skip_categories";
        const EXCLUDE: &str = "collect.exclude";

        let mut skip_categories = Vec::new();
        for entry in self.skip_categories.unwrap_or_default() {
            let name = entry.get_ref();
            if !known_categories.contains(&name.as_str()) {
                let suggestion = closest(name, known_categories.iter().copied());
                let known = match suggestion {
                    Some(_) => String::new(),
                    None => format!(" (known categories: {})", known_categories.join(", ")),
                };
                let message =
                    format!("invalid value for `{SKIP}`: unknown category `{name}`{known}");
                return Err(cx.error(entry.span(), SKIP, message, suggestion.map(str::to_owned)));
            }
            skip_categories.push(entry.into_inner());
        }

        let extra_paths = self
            .extra_paths
            .unwrap_or_default()
            .into_iter()
            .map(|p| absolute_path(cx, p, "collect.extra_paths"))
            .collect::<Result<Vec<_>, _>>()?;

        let mut exclude = Vec::new();
        for entry in self.exclude.unwrap_or_default() {
            let pattern = entry.get_ref();
            if let Err(e) = globset::Glob::new(pattern) {
                let detail = format!("invalid glob `{pattern}`: {}", e.kind());
                return Err(cx.invalid(entry.span(), EXCLUDE, detail));
            }
            // Patterns are matched against absolute paths: one starting with a literal
            // character other than `/` can never match.
            if !pattern.starts_with(['/', '*', '?', '[', '{']) {
                let detail = format!(
                    "glob `{pattern}` can never match an absolute path; start it with `/` or `**/`"
                );
                return Err(cx.invalid(entry.span(), EXCLUDE, detail));
            }
            exclude.push(entry.into_inner());
        }

        Ok(CollectConfig {
            skip_categories,
            extra_paths,
            exclude,
        })
    }
}

impl RawCommands {
    fn validate(self, cx: &Ctx<'_>) -> Result<CommandsConfig, ConfigError> {
        const TIMEOUT: &str = "commands.timeout";
        let defaults = CommandsConfig::default();
        let timeout = match self.timeout {
            None => defaults.timeout,
            Some(v) => {
                let span = v.span();
                let timeout = match v.into_inner() {
                    IntOrStr::Int(n) => Duration::from_secs(u64::try_from(n).map_err(|_| {
                        cx.invalid(span.clone(), TIMEOUT, "timeout must not be negative")
                    })?),
                    IntOrStr::Str(s) => {
                        parse_duration(&s).map_err(|e| cx.invalid(span.clone(), TIMEOUT, e))?
                    }
                };
                if timeout.is_zero() {
                    return Err(cx.invalid(span, TIMEOUT, "timeout must be greater than zero"));
                }
                timeout
            }
        };
        let concurrency = match self.concurrency {
            None => defaults.concurrency,
            Some(v) => {
                let n = *v.get_ref();
                if !CONCURRENCY_RANGE.contains(&n) {
                    let detail = format!(
                        "{n} is out of range {}..={}",
                        CONCURRENCY_RANGE.start(),
                        CONCURRENCY_RANGE.end()
                    );
                    return Err(cx.invalid(v.span(), "commands.concurrency", detail));
                }
                n as usize // in 1..=64
            }
        };
        Ok(CommandsConfig {
            run: self.run.unwrap_or(defaults.run),
            timeout,
            concurrency,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Sizes and durations
// ---------------------------------------------------------------------------------------------

const SIZE_UNITS: &[(&[&str], u64)] = &[
    (&["", "b"], 1),
    (&["k", "kb"], 1000),
    (&["m", "mb"], 1000_u64.pow(2)),
    (&["g", "gb"], 1000_u64.pow(3)),
    (&["t", "tb"], 1000_u64.pow(4)),
    (&["p", "pb"], 1000_u64.pow(5)),
    (&["kib", "ki"], 1 << 10),
    (&["mib", "mi"], 1 << 20),
    (&["gib", "gi"], 1 << 30),
    (&["tib", "ti"], 1 << 40),
    (&["pib", "pi"], 1 << 50),
    (&["e", "eb"], 1000_u64.pow(6)),
    (&["eib", "ei"], 1 << 60),
];

/// Units used when rendering exact sizes into TOML (largest first within each family).
const SIZE_RENDER_UNITS: &[(&str, u64)] = &[
    ("EiB", 1 << 60),
    ("PiB", 1 << 50),
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("E", 1000_u64.pow(6)),
    ("P", 1000_u64.pow(5)),
    ("T", 1000_u64.pow(4)),
    ("G", 1000_u64.pow(3)),
    ("M", 1000_u64.pow(2)),
    ("k", 1000),
];

const NANOS: u128 = 1_000_000_000;
const DURATION_UNITS: &[(&[&str], u128)] = &[
    (&["ns", "nsec"], 1),
    (&["us", "µs", "usec"], 1_000),
    (&["ms", "msec", "millis"], 1_000_000),
    (&["s", "sec", "secs", "second", "seconds"], NANOS),
    (&["m", "min", "mins", "minute", "minutes"], 60 * NANOS),
    (&["h", "hr", "hrs", "hour", "hours"], 3600 * NANOS),
    (&["d", "day", "days"], 86400 * NANOS),
];

/// Splits a leading decimal number (`12`, `1.5`) off `s`: (integer digits, fraction digits, rest).
fn split_number(s: &str) -> Option<(&str, &str, &str)> {
    let int_end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    if int_end == 0 {
        return None;
    }
    let (int, rest) = s.split_at(int_end);
    let Some(after_dot) = rest.strip_prefix('.') else {
        return Some((int, "", rest));
    };
    let frac_end = after_dot
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(after_dot.len());
    if frac_end == 0 {
        return None;
    }
    Some((int, &after_dot[..frac_end], &after_dot[frac_end..]))
}

/// `int.frac * multiplier`, rounded down; `None` on overflow.
fn scale(int: &str, frac: &str, multiplier: u128) -> Option<u128> {
    let whole = int.parse::<u128>().ok()?.checked_mul(multiplier)?;
    // Digits beyond 18 are below any unit's resolution; dropping them keeps
    // `frac_value * multiplier` (< 10^18 * 8.64 * 10^13) far from overflowing.
    let frac = &frac[..frac.len().min(18)];
    if frac.is_empty() {
        return Some(whole);
    }
    let frac_value = frac.parse::<u128>().ok()?;
    let part = frac_value.checked_mul(multiplier)? / 10u128.pow(frac.len() as u32);
    whole.checked_add(part)
}

/// Parses a size: integer bytes (`"1048576"`) or a number with a unit: `k`/`K`/`KB`, `M`,
/// `G`, `T`, `P`, `E` (powers of 1000), `KiB` ... `EiB` (powers of 1024), `B`.
/// Units are case-insensitive, may be separated by spaces and the number may have a fraction
/// (`"1.5 GiB"`, rounded down to whole bytes).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let text = s.trim();
    let expected = "expected a number with an optional unit such as 512MiB, 1G or 2 GiB";
    let Some((int, frac, rest)) = split_number(text) else {
        return Err(format!("invalid size `{s}`: {expected}"));
    };
    let unit = rest.trim_start();
    let lower = unit.to_ascii_lowercase();
    let Some(&(_, multiplier)) = SIZE_UNITS
        .iter()
        .find(|(names, _)| names.contains(&lower.as_str()))
    else {
        return Err(format!(
            "invalid size `{s}`: unknown unit `{unit}` (valid: B, k, M, G, T, P, E, KiB, MiB, GiB, TiB, PiB, EiB)"
        ));
    };
    scale(int, frac, u128::from(multiplier))
        .and_then(|n| u64::try_from(n).ok())
        .ok_or_else(|| format!("invalid size `{s}`: too large"))
}

/// Human-readable size in binary units with one decimal: `"512 B"`, `"12.3 MiB"`.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut unit_index = 0;
    let mut divisor: u128 = 1024;
    loop {
        // Rounded to tenths of the unit.
        let tenths = (u128::from(bytes) * 10 + divisor / 2) / divisor;
        if tenths < 10240 || unit_index == UNITS.len() - 1 {
            return format!("{}.{} {}", tenths / 10, tenths % 10, UNITS[unit_index]);
        }
        unit_index += 1;
        divisor *= 1024;
    }
}

/// Exact TOML rendering of a size: `"1GiB"`, `"100M"`, or integer bytes.
fn size_to_toml(bytes: u64) -> toml::Value {
    let best = SIZE_RENDER_UNITS
        .iter()
        .filter(|&&(_, unit)| bytes != 0 && bytes.is_multiple_of(unit))
        .min_by_key(|&&(_, unit)| bytes / unit);
    match (best, i64::try_from(bytes)) {
        (Some(&(name, unit)), _) => toml::Value::String(format!("{}{name}", bytes / unit)),
        (None, Ok(n)) => toml::Value::Integer(n),
        (None, Err(_)) => toml::Value::String(format!("{bytes}B")),
    }
}

/// Parses a duration: a bare number of seconds (`"30"`) or one or more number-unit pairs
/// (`"500ms"`, `"30s"`, `"2m"`, `"1h"`, `"1h 30m"`, `"1.5h"`). Units: ns, us, ms, s, m (minutes),
/// h, d and long forms like `sec`, `minutes`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let mut rest = s.trim();
    let expected = "expected e.g. 500ms, 30s, 2m, 1h or a number of seconds";
    if rest.is_empty() {
        return Err(format!("invalid duration `{s}`: {expected}"));
    }
    let mut total: u128 = 0;
    let mut first = true;
    while !rest.is_empty() {
        let Some((int, frac, after)) = split_number(rest) else {
            return Err(format!("invalid duration `{s}`: {expected}"));
        };
        let after = after.trim_start();
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c.is_whitespace())
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let multiplier = if unit.is_empty() && first && next.trim().is_empty() {
            NANOS // a bare number is seconds
        } else {
            let lower = unit.to_lowercase();
            match DURATION_UNITS
                .iter()
                .find(|(names, _)| names.contains(&lower.as_str()))
            {
                Some(&(_, m)) => m,
                None if unit.is_empty() => {
                    return Err(format!("invalid duration `{s}`: missing unit; {expected}"));
                }
                None => {
                    return Err(format!(
                        "invalid duration `{s}`: unknown unit `{unit}` (valid: ns, us, ms, s, m, h, d)"
                    ));
                }
            }
        };
        total = scale(int, frac, multiplier)
            .and_then(|n| total.checked_add(n))
            .ok_or_else(|| format!("invalid duration `{s}`: too large"))?;
        rest = next.trim_start();
        first = false;
    }
    let secs =
        u64::try_from(total / NANOS).map_err(|_| format!("invalid duration `{s}`: too large"))?;
    Ok(Duration::new(secs, (total % NANOS) as u32))
}

/// Exact rendering of a duration with the largest unit that divides it: `"30s"`, `"2m"`.
fn duration_to_string(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    DURATION_UNITS
        .iter()
        .rev()
        .find(|&&(_, unit)| nanos.is_multiple_of(unit))
        .map(|&(names, unit)| format!("{}{}", nanos / unit, names[0]))
        .unwrap_or_else(|| format!("{nanos}ns"))
}

// ---------------------------------------------------------------------------------------------
// Serialization and redaction
// ---------------------------------------------------------------------------------------------

fn ser_path<S: Serializer>(path: &Path, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&path.to_string_lossy())
}

fn ser_paths<S: Serializer>(paths: &[PathBuf], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(paths.iter().map(|p| p.to_string_lossy()))
}

fn ser_size<S: Serializer>(bytes: &u64, s: S) -> Result<S::Ok, S::Error> {
    size_to_toml(*bytes).serialize(s)
}

fn ser_duration<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&duration_to_string(*d))
}

/// Whether the value of `key` inside the section at `section` (path segments) is secret.
fn is_secret_key(section: &[String], key: &str) -> bool {
    const NEEDLES: &[&str] = &[
        "password",
        "passphrase",
        "token",
        "secret",
        "key_file",
        "keyfile",
        "webhook_url",
        "api_key",
        "credential",
    ];
    let key = key.to_ascii_lowercase();
    let in_notify = section.first().is_some_and(|s| s == "notify");
    NEEDLES.iter().any(|n| key.contains(n))
        || (key == "url" && in_notify)
        // Webhook header values carry credentials (`Authorization = "Bearer ..."`).
        || (in_notify && section.last().is_some_and(|s| s == "headers"))
}

/// Replaces the values of secret keys anywhere in `value` by `"<redacted>"`.
fn redact(value: &mut toml::Value, section: &mut Vec<String>) {
    match value {
        toml::Value::Table(table) => {
            for (key, v) in table.iter_mut() {
                if is_secret_key(section, key) {
                    *v = toml::Value::String(REDACTED.to_owned());
                } else {
                    section.push(key.clone());
                    redact(v, section);
                    section.pop();
                }
            }
        }
        toml::Value::Array(items) => {
            for item in items {
                redact(item, section);
            }
        }
        _ => {}
    }
}

/// The effective configuration as TOML, every key included, secret values replaced by
/// `"<redacted>"`. Parsing the output yields the same [`Config`] (as long as nothing was
/// redacted).
pub fn render_redacted(config: &Config) -> String {
    let mut value = match toml::Value::try_from(config) {
        Ok(v) => v,
        Err(e) => return format!("# cannot render configuration: {e}\n"),
    };
    redact(&mut value, &mut Vec::new());
    toml::to_string(&value).unwrap_or_else(|e| format!("# cannot render configuration: {e}\n"))
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CATEGORIES: &[&str] = &["pve-cluster", "corosync", "network", "ssh", "pbs-config"];
    const ORIGIN: &str = "/etc/proxkeep/proxkeep.toml";

    fn parse_ok(text: &str) -> Config {
        parse(text, Path::new(ORIGIN), CATEGORIES).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    /// (line, column, key, suggestion, message) of an Invalid error.
    fn parse_err(text: &str) -> (usize, usize, String, Option<String>, String) {
        match parse(text, Path::new(ORIGIN), CATEGORIES) {
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
            },
            commands: CommandsConfig {
                run: RunCommands::Never,
                timeout: Duration::from_secs(120),
                concurrency: 8,
            },
            retention: Policy {
                keep_last: 2,
                keep_daily: 10,
                ..Policy::default()
            },
            secondary: vec![
                SecondaryConfig {
                    name: "proxkeep".into(),
                    path: "/mnt/nas/proxkeep".into(),
                    require_mount: true,
                    timeout: Duration::from_secs(60),
                    retention: PolicyOverride {
                        keep_daily: Some(30),
                        ..Default::default()
                    },
                },
                SecondaryConfig {
                    name: "usb".into(),
                    path: "/srv/usb".into(),
                    require_mount: true,
                    timeout: Duration::from_secs(5),
                    retention: PolicyOverride::default(),
                },
            ],
            remote: vec![RemoteConfig {
                name: "b2".into(),
                target: "b2:bucket/proxkeep".into(),
                flags: vec!["--bwlimit".into(), "8M".into()],
                timeout: Duration::from_secs(3600),
                retries: 5,
                retention: PolicyOverride::default(),
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
        assert_eq!(parse_ok("[retention]\n").retention, Policy::default());
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
        let err = parse("backup_dri = \"/x\"\n", Path::new(ORIGIN), CATEGORIES).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/proxkeep/proxkeep.toml:1:1: unknown key `backup_dri` (did you mean `backup_dir`?)"
        );
        let text = "\n\n\n\n\n[compression]\nlevel = 25\n";
        let err = parse(text, Path::new(ORIGIN), CATEGORIES).unwrap_err();
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
    fn serde_message_suggestions() {
        let msg = "unknown field `levl`, expected one of `algorithm`, `level`, `threads`";
        assert_eq!(suggestion_from_serde_message(msg).as_deref(), Some("level"));
        let msg = "unknown variant `alway`, expected `auto` or `always`";
        assert_eq!(
            suggestion_from_serde_message(msg).as_deref(),
            Some("always")
        );
        assert_eq!(suggestion_from_serde_message("invalid type: string"), None);
        assert_eq!(
            suggestion_from_serde_message("unknown field `q`, there are no fields"),
            None
        );
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
        let err = parse("a = \n", Path::new("/tmp/x.toml"), &[]).unwrap_err();
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

        match load_with_default(Some(&missing), Path::new("/nonexistent"), CATEGORIES) {
            Err(ConfigError::Read { path, source }) => {
                assert_eq!(path, missing);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
        let err = load_with_default(Some(&missing), &missing, CATEGORIES).unwrap_err();
        assert!(err.to_string().starts_with("cannot read config "), "{err}");

        let (config, source) = load_with_default(None, &missing, CATEGORIES).unwrap();
        assert_eq!((config, source), (Config::default(), ConfigSource::Default));

        let file = dir.path().join("proxkeep.toml");
        std::fs::write(&file, FULL).unwrap();
        let (config, source) = load(Some(&file), CATEGORIES).unwrap();
        assert_eq!(config, full_config());
        assert_eq!(source, ConfigSource::File(file.clone()));
        let (_, source) = load_with_default(None, &file, CATEGORIES).unwrap();
        assert_eq!(source, ConfigSource::File(file.clone()));

        std::fs::write(&file, "[compression]\nlevel = 0\n").unwrap();
        match load(Some(&file), CATEGORIES) {
            Err(ConfigError::Invalid { path, line, .. }) => assert_eq!((path, line), (file, 2)),
            other => panic!("{other:?}"),
        }

        // A directory (or any other read failure) at the default path is an error.
        let err = load_with_default(None, dir.path(), CATEGORIES).unwrap_err();
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
    fn redaction_of_synthetic_secrets() {
        let mut value: toml::Value = toml::from_str(
            r#"
            backup_dir = "/b"
            url = "https://top-level.example"
            [encryption]
            passphrase = "hunter2"
            key_file = "/etc/proxkeep/key"
            [[remote]]
            name = "pbs1"
            api_token_secret = "abc"
            Password = "pw"
            [[notify.gotify]]
            url = "https://gotify.example/?token=x"
            app_token = "t"
            priority = 5
            [[notify.webhook]]
            webhook_url = "https://hooks.example/secret"
            [smtp]
            secrets = { a = 1, b = 2 }
            "#,
        )
        .unwrap();
        redact(&mut value, &mut Vec::new());
        let get = |path: &[&str]| -> toml::Value {
            let mut v = &value;
            for p in path {
                v = match v {
                    toml::Value::Array(items) => &items[p.parse::<usize>().unwrap()],
                    other => &other[*p],
                };
            }
            v.clone()
        };
        let redacted = toml::Value::String(REDACTED.into());
        for path in [
            &["encryption", "passphrase"][..],
            &["encryption", "key_file"],
            &["remote", "0", "api_token_secret"],
            &["remote", "0", "Password"],
            &["notify", "gotify", "0", "url"],
            &["notify", "gotify", "0", "app_token"],
            &["notify", "webhook", "0", "webhook_url"],
            &["smtp", "secrets"],
        ] {
            assert_eq!(get(path), redacted, "{path:?}");
        }
        assert_eq!(get(&["backup_dir"]), toml::Value::String("/b".into()));
        assert_eq!(
            get(&["url"]),
            toml::Value::String("https://top-level.example".into())
        );
        assert_eq!(
            get(&["remote", "0", "name"]),
            toml::Value::String("pbs1".into())
        );
        assert_eq!(
            get(&["notify", "gotify", "0", "priority"]),
            toml::Value::Integer(5)
        );
    }

    /// Every key of the serialized Config appears in SCHEMA and vice versa, so the schema check
    /// and the `deny_unknown_fields` structs cannot drift apart.
    #[test]
    fn schema_matches_serialized_config() {
        fn walk(table: &toml::Table, path: &str, out: &mut Vec<(String, String)>) {
            for (key, value) in table {
                match value {
                    toml::Value::Table(t) => walk(t, &join_key(path, key), out),
                    _ => out.push((path.to_owned(), key.clone())),
                }
            }
        }
        // Optional keys are left out when unset: fill them so every key is seen.
        let mut config = Config::default();
        config.metrics.textfile = Some("/m.prom".into());
        config.encryption = Some(EncryptionConfig {
            recipients: vec!["age1...".into()],
            recipients_file: Some("/r".into()),
            passphrase_file: Some("/p".into()),
        });
        let value = toml::Table::try_from(config).unwrap();
        let mut serialized = Vec::new();
        walk(&value, "", &mut serialized);
        serialized.sort();
        let mut schema: Vec<(String, String)> = SCHEMA
            .iter()
            .filter(|s| !s.array)
            .flat_map(|s| s.keys.iter().map(|k| (s.path.to_owned(), (*k).to_owned())))
            .collect();
        schema.sort();
        assert_eq!(serialized, schema);
        // and every key in the schema parses
        for (section, key) in &schema {
            assert!(
                schema_section(section)
                    .unwrap()
                    .keys
                    .contains(&key.as_str())
            );
        }
    }

    #[test]
    fn suggestion_machinery() {
        let d = |a: &str, b: &str| edit_distance(&normalize_name(a), &normalize_name(b));
        assert_eq!(d("level", "level"), 0);
        assert_eq!(d("levle", "level"), 1);
        assert_eq!(d("backup_dri", "backup_dir"), 1);
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("Backup-Dir", "backup_dir"), 0);
        assert_eq!(closest("rum", ["run", "timeout"]), Some("run"));
        assert_eq!(closest("xyz", ["run"]), None);
        assert_eq!(closest("algo", ["algorithm"]), None);
        assert_eq!(
            suggest_key("concurency", "commands").as_deref(),
            Some("commands.concurrency")
        );
        assert_eq!(suggest_key("collect", "").as_deref(), Some("collect"));
        assert!(qualified_names().contains(&"compression.level".to_owned()));
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

        assert!(RunCommands::Auto.enabled_for(Path::new("/")));
        assert!(!RunCommands::Auto.enabled_for(Path::new("/mnt/host")));
        assert!(RunCommands::Always.enabled_for(Path::new("/mnt/host")));
        assert!(!RunCommands::Never.enabled_for(Path::new("/")));
        assert_eq!("never".parse::<RunCommands>(), Ok(RunCommands::Never));
        assert!("sometimes".parse::<RunCommands>().is_err());
    }

    #[test]
    fn sizes() {
        #[rustfmt::skip]
        let ok: &[(&str, u64)] = &[
            ("0", 0), ("1048576", 1_048_576), ("512B", 512), ("512 b", 512),
            ("10k", 10_000), ("10K", 10_000), ("10KB", 10_000), ("10kb", 10_000),
            ("100M", 100_000_000), ("1G", 1_000_000_000), ("2T", 2_000_000_000_000),
            ("1KiB", 1024), ("512MiB", 512 << 20), ("2 GiB", 2 << 30), ("1TiB", 1 << 40),
            ("1.5 KiB", 1536), ("0.5G", 500_000_000), ("  3 MiB  ", 3 << 20),
            ("1.0000000000000000000000000000000001 KiB", 1024),
            ("18446744073709551615", u64::MAX), ("15 PiB", 15 << 50),
        ];
        for &(s, n) in ok {
            assert_eq!(parse_size(s), Ok(n), "{s:?}");
        }
        for s in [
            "",
            "MiB",
            "-1",
            "1.",
            ".5G",
            "1..5G",
            "12 XB",
            "1 MiBs",
            "1e3",
            "18446744073709551616",
            "99999 PiB",
            "1 2",
        ] {
            assert!(parse_size(s).is_err(), "{s:?} parsed");
        }
        #[rustfmt::skip]
        let formatted: &[(u64, &str)] = &[
            (0, "0 B"), (512, "512 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
            (12_897_485, "12.3 MiB"), ((1 << 20) - 1, "1.0 MiB"), (1 << 30, "1.0 GiB"),
            (u64::MAX, "16.0 EiB"),
        ];
        for &(n, s) in formatted {
            assert_eq!(format_size(n), s, "{n}");
        }
        assert_eq!(size_to_toml(1 << 30), toml::Value::String("1GiB".into()));
        assert_eq!(
            size_to_toml(100_000_000),
            toml::Value::String("100M".into())
        );
        assert_eq!(size_to_toml(1_234_567), toml::Value::Integer(1_234_567));
        assert_eq!(size_to_toml(0), toml::Value::Integer(0));
    }

    #[test]
    fn durations() {
        #[rustfmt::skip]
        let ok: &[(&str, Duration)] = &[
            ("30", Duration::from_secs(30)), ("30s", Duration::from_secs(30)),
            ("2m", Duration::from_secs(120)), ("1h", Duration::from_secs(3600)),
            ("500ms", Duration::from_millis(500)), ("1h 30m", Duration::from_secs(5400)),
            ("1h30m", Duration::from_secs(5400)), ("1.5h", Duration::from_secs(5400)),
            ("2 minutes", Duration::from_secs(120)), ("1d", Duration::from_secs(86400)),
            ("250us", Duration::from_micros(250)), ("7ns", Duration::from_nanos(7)),
            ("0s", Duration::ZERO), (" 10 sec ", Duration::from_secs(10)),
        ];
        for &(s, d) in ok {
            assert_eq!(parse_duration(s), Ok(d), "{s:?}");
        }
        for s in [
            "",
            "s",
            "-5s",
            "5 parsecs",
            "1h 30",
            "1.s",
            "ten seconds",
            "99999999999999999999999d",
        ] {
            assert!(parse_duration(s).is_err(), "{s:?} parsed");
        }
        #[rustfmt::skip]
        let rendered: &[(Duration, &str)] = &[
            (Duration::from_secs(30), "30s"), (Duration::from_secs(120), "2m"),
            (Duration::from_secs(3600), "1h"), (Duration::from_millis(500), "500ms"),
            (Duration::from_millis(1500), "1500ms"), (Duration::from_secs(86400 * 2), "2d"),
            (Duration::ZERO, "0s"), (Duration::from_nanos(1), "1ns"),
        ];
        for &(d, s) in rendered {
            assert_eq!(duration_to_string(d), s);
        }
    }

    // (Sizes near u64::MAX round up to "16.0 EiB", which does not fit a u64 again.)
    proptest! {
        #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::default() })]
        #[test]
        fn plain_integers_parse(n in any::<u64>()) {
            prop_assert_eq!(parse_size(&n.to_string()), Ok(n));
        }

        #[test]
        fn unit_sizes_parse(k in 0u64..100_000, unit in 0usize..SIZE_RENDER_UNITS.len()) {
            let (name, multiplier) = SIZE_RENDER_UNITS[unit];
            let parsed = parse_size(&format!("{k} {name}"));
            match k.checked_mul(multiplier) {
                Some(n) => prop_assert_eq!(parsed, Ok(n)),
                None => prop_assert!(parsed.unwrap_err().contains("too large")),
            }
        }

        #[test]
        fn formatted_sizes_parse_back_closely(n in 0u64..=15 << 60) {
            let text = format_size(n);
            let back = parse_size(&text).unwrap();
            if n < 1024 {
                prop_assert_eq!(back, n);
            } else {
                // one decimal in a unit of at least 1 => relative error <= 5%
                let error = (i128::from(back) - i128::from(n)).unsigned_abs();
                prop_assert!(error * 20 <= u128::from(n), "{} -> {} -> {}", n, text, back);
            }
        }

        #[test]
        fn exact_sizes_round_trip(n in prop_oneof![any::<u64>(), (0u64..1 << 20).prop_map(|k| k << 20)]) {
            let back = match size_to_toml(n) {
                toml::Value::String(s) => parse_size(&s).unwrap(),
                toml::Value::Integer(i) => i as u64,
                other => panic!("{other:?}"),
            };
            prop_assert_eq!(back, n);
        }

        #[test]
        fn durations_round_trip(secs in 0u64..10_000_000_000, nanos in 0u32..1_000_000_000) {
            for d in [Duration::new(secs, nanos), Duration::from_secs(secs), Duration::from_millis(secs)] {
                prop_assert_eq!(parse_duration(&duration_to_string(d)), Ok(d));
            }
        }
    }
}
