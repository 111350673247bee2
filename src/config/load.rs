//! Reading the configuration file: [`parse`] (checks by `raw`), [`load`] and its error type.

use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::DeTable;

use super::{Config, raw};

/// Where the configuration is read from when neither `--config` nor `$PROXKEEP_CONFIG` is given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/proxkeep/proxkeep.toml";

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

pub(super) fn load_with_default(
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
