//! The file as written, on its way to [`Config`], in three steps so that every error can name the file, line,
//! column and key:
//! 1. the text is parsed into a span-carrying [`DeTable`] (syntax errors);
//! 2. every key is checked against the keys the `Raw*` structs accept ([`sections`], learned from serde's
//!    `deny_unknown_fields` errors, so there is no second key list); the first unknown key in the file is
//!    reported with a "did you mean" drawn from all keys of all sections, so a key in the wrong section suggests
//!    its qualified name (`level` → `compression.level`);
//! 3. the table is deserialized into the `Raw*` structs (values wrapped in [`Spanned`]) and validated
//!    semantically while converting to [`Config`].

use std::fmt;
use std::ops::Range;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::notify::{RawMetrics, RawNotify};
use super::{
    Checks, CollectConfig, CommandsConfig, Compression, CompressionConfig, Config, ConfigError,
    DEFAULT_POLICY, EncryptionConfig, Policy, PolicyOverride, RemoteConfig, RunCommands,
    SecondaryConfig,
};
use crate::units::{parse_duration, parse_size};

pub(super) type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// Location context for building [`ConfigError::Invalid`].
pub(super) struct Ctx<'a> {
    pub(super) text: &'a str,
    pub(super) origin: &'a Path,
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

    pub(super) fn error(
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

    pub(super) fn invalid(
        &self,
        span: Range<usize>,
        key: &str,
        detail: impl fmt::Display,
    ) -> ConfigError {
        let message = format!("invalid value for `{key}`: {detail}");
        self.error(span, key, message, None)
    }

    pub(super) fn syntax(&self, err: &toml::de::Error) -> ConfigError {
        let message = format!("TOML syntax error: {}", err.message());
        self.error(err.span().unwrap_or(0..0), "", message, None)
    }

    /// Steps 2 and 3 (see the module doc) for the parsed document `doc`.
    pub(super) fn config(&self, doc: Spanned<DeTable<'_>>, checks: &Checks) -> Result<Config> {
        let mut errors = Vec::new();
        self.check_keys(doc.get_ref(), "", &mut errors);
        if let Some(first) = errors.into_iter().min_by_key(|e| match e {
            ConfigError::Invalid { line, column, .. } => (*line, *column),
            ConfigError::Read { .. } => (0, 0),
        }) {
            return Err(first);
        }
        let raw = RawConfig::deserialize(toml::de::Deserializer::from(doc.clone()))
            .map_err(|e| self.serde_error(&e, doc.get_ref()))?;
        raw.validate(self, checks)
    }

    /// Checks every key of `table` (the section at `path`) against [`sections`], and that sections are tables.
    fn check_keys(&self, table: &DeTable<'_>, path: &str, errors: &mut Vec<ConfigError>) {
        let keys = section(path).map_or(&[][..], |s| &s.keys[..]);
        for (key, value) in table {
            let name: &str = key.get_ref();
            let full = join_key(path, name);
            if !keys.iter().any(|k| k == name) {
                let suggestion = suggest_key(name, path);
                errors.push(self.error(
                    key.span(),
                    &full,
                    format!("unknown key `{full}`"),
                    suggestion,
                ));
                continue;
            }
            let Some(sub) = section(&full) else {
                continue; // a leaf: its value is checked when deserializing
            };
            let items: Vec<_> = match value.get_ref() {
                DeValue::Array(items) if sub.array => items.iter().collect(),
                DeValue::Table(_) if !sub.array => vec![value],
                other => {
                    let expected = match sub.array {
                        true => format!("an array of tables ([[{full}]])"),
                        false => format!("a table ([{full}])"),
                    };
                    let detail = format!("expected {expected}, found {}", other.type_str());
                    errors.push(self.invalid(value.span(), &full, detail));
                    continue;
                }
            };
            for item in items {
                match item.get_ref() {
                    DeValue::Table(t) => self.check_keys(t, &full, errors),
                    other => {
                        let detail =
                            format!("expected tables ([[{full}]]), found {}", other.type_str());
                        errors.push(self.invalid(item.span(), &full, detail));
                    }
                }
            }
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
        let message = match key.is_empty() {
            true => msg.to_owned(),
            false => format!("invalid value for `{key}`: {msg}"),
        };
        self.error(span, &key, message, suggestion)
    }
}

// Known keys and suggestions

/// One table of the config file.
pub(super) struct Section {
    /// Dotted section path, `""` for the top level.
    pub(super) path: String,
    /// `[[path]]` (array of tables) rather than `[path]`.
    pub(super) array: bool,
    /// Keys allowed in this section, sub-sections included.
    pub(super) keys: Vec<String>,
}

/// Every section of the file, learned from the `Raw*` structs themselves: a table holding only the key `"?"`
/// makes `deny_unknown_fields` list the fields it expected there, and a field that answers the same way when
/// given such a table (or an array of them) is a section.
pub(super) fn sections() -> &'static [Section] {
    static SECTIONS: OnceLock<Vec<Section>> = OnceLock::new();
    SECTIONS.get_or_init(|| {
        let mut out = Vec::new();
        learn(
            &mut Vec::new(),
            expected_fields(&[]).unwrap_or_default(),
            &mut out,
        );
        out
    })
}

fn learn(path: &mut Vec<(String, bool)>, keys: Vec<String>, out: &mut Vec<Section>) {
    for key in &keys {
        for array in [false, true] {
            path.push((key.clone(), array));
            if let Some(sub) = expected_fields(path) {
                learn(path, sub, out);
            }
            path.pop();
        }
    }
    let names: Vec<&str> = path.iter().map(|(k, _)| k.as_str()).collect();
    out.push(Section {
        path: names.join("."),
        array: path.last().is_some_and(|&(_, array)| array),
        keys,
    });
}

/// The fields serde expects in the table at `path` (each key with whether it is an array of tables), or `None`
/// when that is no table of `RawConfig`.
fn expected_fields(path: &[(String, bool)]) -> Option<Vec<String>> {
    let mut text = "\"?\" = 0".to_owned();
    for (key, array) in path.iter().rev() {
        text = match array {
            true => format!("{key} = [{{ {text} }}]"),
            false => format!("{key} = {{ {text} }}"),
        };
    }
    let err = toml::from_str::<RawConfig>(&text).err()?;
    let (bad, fields) = unknown_name(err.message())?;
    // Not "unknown variant `?`": that is an enum.
    let field = err.message().starts_with("unknown field") && bad == "?";
    field.then(|| fields.map(str::to_owned).collect())
}

fn section(path: &str) -> Option<&'static Section> {
    sections().iter().find(|s| s.path == path)
}

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// Closest known qualified name for unknown `key` found in section `parent`. Same-section
/// candidates win ties; a key that exists verbatim elsewhere beats a near-miss here.
pub(super) fn suggest_key(key: &str, parent: &str) -> Option<String> {
    sections()
        .iter()
        .flat_map(|s| s.keys.iter().map(move |k| (s.path.as_str(), k.as_str())))
        .filter_map(|(path, k)| Some((close_distance(key, k)?, path != parent, join_key(path, k))))
        .min()
        .map(|(_, _, q)| q)
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions), ignoring case and `-`/`_`.
pub(super) fn distance(a: &str, b: &str) -> usize {
    let normalize = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    strsim::osa_distance(&normalize(a), &normalize(b))
}

/// Distance between `word` and `candidate` if close enough to suggest: at most a third of the
/// longer name, clamped to 1..=3, and less than the length of `word`.
fn close_distance(word: &str, candidate: &str) -> Option<usize> {
    let d = distance(word, candidate);
    let (w, c) = (word.chars().count(), candidate.chars().count());
    let limit = (w.max(c) / 3).clamp(1, 3);
    (d <= limit && d < w.max(1)).then_some(d)
}

/// Closest candidate to `word`, if close enough.
pub(super) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .filter_map(|c| close_distance(word, c).map(|d| (d, c)))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
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

/// The name and the alternatives in serde's "unknown field `x`, expected one of `a`, `b`" (or "unknown variant").
fn unknown_name(msg: &str) -> Option<(&str, impl Iterator<Item = &str>)> {
    let rest = msg
        .strip_prefix("unknown field ")
        .or_else(|| msg.strip_prefix("unknown variant "))?;
    let mut quoted = rest.split('`').skip(1).step_by(2);
    Some((quoted.next()?, quoted))
}

/// Suggestion for serde's "unknown field" and "unknown variant" messages.
pub(super) fn suggestion_from_serde_message(msg: &str) -> Option<String> {
    let (bad, names) = unknown_name(msg)?;
    closest(bad, names).map(str::to_owned)
}

// Raw structs and their validation

/// A TOML integer or string (sizes, durations).
#[derive(Deserialize)]
#[serde(untagged, expecting = "an integer or a string")]
enum IntOrStr {
    Int(i64),
    Str(String),
}

/// Bytes: an integer or a size like "1GiB". (Checked while deserializing: toml's error gets the value's span.)
struct Size(u64);

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match IntOrStr::deserialize(d)? {
            IntOrStr::Int(n) => u64::try_from(n).map_err(|_| "size must not be negative".into()),
            IntOrStr::Str(s) => parse_size(&s),
        }
        .map(Size)
        .map_err(serde::de::Error::custom)
    }
}

/// A positive duration: integer seconds or a string like "30s".
pub(super) struct Positive(pub(super) Duration);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let d = match IntOrStr::deserialize(d)? {
            IntOrStr::Int(n) => (u64::try_from(n).map(Duration::from_secs))
                .map_err(|_| "duration must not be negative".into()),
            IntOrStr::Str(s) => parse_duration(&s),
        };
        match d {
            Ok(d) if d.is_zero() => Err("duration must be greater than zero".to_owned()),
            other => other,
        }
        .map(Positive)
        .map_err(serde::de::Error::custom)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    backup_dir: Option<Spanned<PathBuf>>,
    log_dir: Option<Spanned<PathBuf>>,
    lock_file: Option<Spanned<PathBuf>>,
    min_free_space: Option<Size>,
    compression: Option<RawCompression>,
    collect: Option<RawCollect>,
    commands: Option<RawCommands>,
    retention: Option<PolicyOverride>,
    secondary: Option<Vec<Spanned<RawSecondary>>>,
    remote: Option<Vec<Spanned<RawRemote>>>,
    notify: Option<RawNotify>,
    metrics: Option<RawMetrics>,
    encryption: Option<Spanned<RawEncryption>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEncryption {
    recipients: Option<Vec<Spanned<String>>>,
    recipients_file: Option<Spanned<PathBuf>>,
    passphrase_file: Option<Spanned<PathBuf>>,
}

/// A tier's struct with the `[retention]` keys spelled out: `flatten` would hide them from the field list of
/// `deny_unknown_fields` errors, which [`sections`] and the suggestions read.
macro_rules! raw_tier {
    ($name:ident { $($field:ident : $ty:ty),* $(,)? }) => {
        raw_tier!($name { $($field: $ty),* }
            keep_last keep_hourly keep_daily keep_weekly keep_monthly keep_yearly);
    };
    ($name:ident { $($field:ident : $ty:ty),* } $($keep:ident)*) => {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            $($field: $ty,)*
            $($keep: Option<u32>,)*
        }

        impl $name {
            fn retention(&self) -> PolicyOverride {
                PolicyOverride { $($keep: self.$keep),* }
            }
        }
    };
}

raw_tier!(RawSecondary {
    name: Option<Spanned<String>>,
    path: Spanned<PathBuf>,
    require_mount: Option<bool>,
    timeout: Option<Positive>,
});

raw_tier!(RawRemote {
    name: Option<Spanned<String>>,
    target: Spanned<String>,
    flags: Option<Vec<String>>,
    timeout: Option<Positive>,
    retries: Option<u32>,
});

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
    timeout: Option<Positive>,
    concurrency: Option<Spanned<i64>>,
}

impl RawConfig {
    fn validate(self, cx: &Ctx<'_>, checks: &Checks) -> Result<Config> {
        let defaults = Config::default();
        let dir = |value: Option<Spanned<PathBuf>>, key: &str, default: PathBuf| {
            value.map_or(Ok(default), |v| absolute_path(cx, v, key))
        };
        // Names are unique among the secondaries, and among the remotes.
        let (mut secondaries, mut remotes) = (Vec::new(), Vec::new());
        Ok(Config {
            backup_dir: dir(self.backup_dir, "backup_dir", defaults.backup_dir)?,
            log_dir: dir(self.log_dir, "log_dir", defaults.log_dir)?,
            lock_file: dir(self.lock_file, "lock_file", defaults.lock_file)?,
            min_free_space: self.min_free_space.map_or(defaults.min_free_space, |s| s.0),
            compression: self.compression.unwrap_or_default().validate(cx)?,
            collect: self.collect.unwrap_or_default().validate(cx, checks)?,
            commands: self.commands.unwrap_or_default().validate(cx)?,
            retention: self
                .retention
                .map_or(DEFAULT_POLICY, |o| o.apply(&Policy::default())),
            secondary: (self.secondary.unwrap_or_default().into_iter())
                .map(|s| secondary(cx, s, &mut secondaries))
                .collect::<Result<_, _>>()?,
            remote: (self.remote.unwrap_or_default().into_iter())
                .map(|r| remote(cx, r, &mut remotes))
                .collect::<Result<_, _>>()?,
            notify: self.notify.unwrap_or_default().validate(cx)?,
            metrics: self.metrics.unwrap_or_default().validate(cx)?,
            encryption: match self.encryption {
                Some(e) => {
                    let span = e.span();
                    Some(e.into_inner().validate(cx, span, checks)?)
                }
                None => None,
            },
        })
    }
}

impl RawEncryption {
    fn validate(
        self,
        cx: &Ctx<'_>,
        span: Range<usize>,
        checks: &Checks,
    ) -> Result<EncryptionConfig> {
        let mut recipients = Vec::new();
        for (i, r) in self.recipients.unwrap_or_default().into_iter().enumerate() {
            if let Err(why) = (checks.recipient)(r.get_ref()) {
                return Err(cx.invalid(r.span(), &format!("recipients[{i}]"), why));
            }
            recipients.push(r.into_inner().trim().to_string());
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

/// A tier or channel name: letters, digits, '-', '_' or '.', and not in `seen` (`taken` says by what).
pub(super) fn unique_name(
    cx: &Ctx<'_>,
    (span, name): (Range<usize>, String),
    key: &str,
    seen: &mut Vec<String>,
    taken: &str,
) -> Result<String> {
    let valid = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
    if name.is_empty() || !name.chars().all(valid) {
        let detail = format!("`{name}`: use letters, digits, '-', '_' or '.'");
        return Err(cx.invalid(span, key, detail));
    }
    if seen.contains(&name) {
        return Err(cx.invalid(span, key, format!("`{name}` is used by {taken}")));
    }
    seen.push(name.clone());
    Ok(name)
}

/// `name` as written, else `default` at the table's span.
pub(super) fn name_or(
    name: Option<Spanned<String>>,
    table: Range<usize>,
    default: String,
) -> (Range<usize>, String) {
    name.map_or((table, default), |n| (n.span(), n.into_inner()))
}

fn secondary(
    cx: &Ctx<'_>,
    entry: Spanned<RawSecondary>,
    seen: &mut Vec<String>,
) -> Result<SecondaryConfig> {
    let span = entry.span();
    let r = entry.into_inner();
    let retention = r.retention();
    let path = absolute_path(cx, r.path, "secondary.path")?;
    let default_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "root".into());
    let name = name_or(r.name, span, default_name);
    let under_removable = path.starts_with("/mnt") || path.starts_with("/media");
    Ok(SecondaryConfig {
        name: unique_name(cx, name, "secondary.name", seen, "another tier")?,
        require_mount: r.require_mount.unwrap_or(under_removable),
        timeout: r.timeout.map_or(Duration::from_secs(60), |t| t.0),
        path,
        retention,
    })
}

fn remote(cx: &Ctx<'_>, entry: Spanned<RawRemote>, seen: &mut Vec<String>) -> Result<RemoteConfig> {
    let span = entry.span();
    let r = entry.into_inner();
    let retention = r.retention();
    let tspan = r.target.span();
    let target = r.target.into_inner();
    let Some((remote, _)) = target.split_once(':').filter(|(r, _)| !r.is_empty()) else {
        let detail = format!("`{target}` is not an rclone `remote:path`");
        return Err(cx.invalid(tspan, "remote.target", detail));
    };
    let name = name_or(r.name, span, remote.trim_start_matches(':').to_string());
    Ok(RemoteConfig {
        name: unique_name(cx, name, "remote.name", seen, "another tier")?,
        target: target.trim_end_matches('/').to_string(),
        flags: r.flags.unwrap_or_default(),
        timeout: r.timeout.map_or(Duration::from_secs(600), |t| t.0),
        retries: r.retries.unwrap_or(3).max(1),
        retention,
    })
}

/// An absolute path without `..` components (it is joined to the host root later).
pub(super) fn absolute_path(cx: &Ctx<'_>, value: Spanned<PathBuf>, key: &str) -> Result<PathBuf> {
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
    fn validate(self, cx: &Ctx<'_>) -> Result<CompressionConfig> {
        let algorithm = self.algorithm.unwrap_or(Compression::Zstd);
        let range = algorithm.level_range();
        let level = match self.level {
            None => algorithm.default_level(),
            Some(v) => match i32::try_from(*v.get_ref()) {
                Ok(level) if range.contains(&level) => level,
                _ => {
                    let (start, end) = (range.start(), range.end());
                    let detail = format!(
                        "{} is out of range {start}..={end} for {algorithm}",
                        v.get_ref()
                    );
                    return Err(cx.invalid(v.span(), "compression.level", detail));
                }
            },
        };
        Ok(CompressionConfig {
            algorithm,
            level,
            threads: self.threads.unwrap_or(0),
        })
    }
}

impl RawCollect {
    fn validate(self, cx: &Ctx<'_>, checks: &Checks) -> Result<CollectConfig> {
        const SKIP: &str = "collect.skip_categories";
        const EXCLUDE: &str = "collect.exclude";
        let known = checks.categories;

        let mut skip_categories = Vec::new();
        for entry in self.skip_categories.unwrap_or_default() {
            let name = entry.get_ref();
            if !known.contains(&name.as_str()) {
                let suggestion = closest(name, known.iter().copied());
                let known = match suggestion {
                    Some(_) => String::new(),
                    None => format!(" (known categories: {})", known.join(", ")),
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
    fn validate(self, cx: &Ctx<'_>) -> Result<CommandsConfig> {
        let defaults = CommandsConfig::default();
        let concurrency = match self.concurrency {
            None => defaults.concurrency,
            Some(v) => match usize::try_from(*v.get_ref()) {
                Ok(n @ 1..=64) => n,
                _ => {
                    let detail = format!("{} is out of range 1..=64", v.get_ref());
                    return Err(cx.invalid(v.span(), "commands.concurrency", detail));
                }
            },
        };
        Ok(CommandsConfig {
            run: self.run.unwrap_or(defaults.run),
            timeout: self.timeout.map_or(defaults.timeout, |t| t.0),
            concurrency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn suggestion_machinery() {
        let d = distance;
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
        assert!(
            section("compression")
                .unwrap()
                .keys
                .contains(&"level".to_owned())
        );
    }

    /// Every key of the serialized Config is a key the `Raw*` structs accept and vice versa, so the
    /// rendering and the parsing cannot drift apart.
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
        let mut schema: Vec<(String, String)> = sections()
            .iter()
            .filter(|s| !s.array)
            .flat_map(|s| s.keys.iter().map(|k| (s.path.clone(), k.clone())))
            .filter(|(path, key)| section(&join_key(path, key)).is_none())
            .collect();
        schema.sort();
        assert_eq!(serialized, schema);
        // and every key in the schema parses
        for (path, key) in &schema {
            assert!(section(path).unwrap().keys.contains(key));
        }
    }
}
