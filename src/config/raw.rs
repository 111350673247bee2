//! The file as written, on its way to [`Config`], in three steps so that every error can name the file, line,
//! column and key:
//! 1. the text is parsed into a span-carrying [`DeTable`] (syntax errors);
//! 2. every key is checked against the keys the config types accept ([`sections`], learned from serde's
//!    `deny_unknown_fields` errors, so there is no second key list); the first unknown key in the file is
//!    reported with a "did you mean" drawn from all keys of all sections, so a key in the wrong section suggests
//!    its qualified name (`level` → `compression.level`);
//! 3. the table is deserialized into [`Config`] (each value checked on its own while deserializing, so toml's
//!    error carries its span), then [`Ctx::finish`] checks what depends on other keys, looking spans up in the
//!    document.

use std::fmt;
use std::ops::Range;
use std::path::{Component, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde::de::Visitor;
use serde::{Deserialize, Deserializer};
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::{Checks, Config, ConfigError, EncryptionConfig, Event};
use crate::units::{parse_duration, parse_size};

pub(super) type Result<T, E = ConfigError> = std::result::Result<T, E>;

/// The config file's bytes as text; not UTF-8 is an error at the first bad byte (line, and its byte column).
pub(super) fn utf8<'a>(bytes: &'a [u8], origin: &std::path::Path) -> Result<&'a str> {
    let e = match std::str::from_utf8(bytes) {
        Ok(text) => return Ok(text),
        Err(e) => e,
    };
    let at = e.valid_up_to();
    let before = &bytes[..at];
    let line_start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let text = std::str::from_utf8(before).unwrap_or_default();
    let (line, column) = Ctx { text, origin }.line_col(at);
    let byte_column = at - line_start + 1;
    let message = format!(
        "not UTF-8: byte 0x{:02x} at byte column {byte_column} (save the file as UTF-8)",
        bytes[at]
    );
    Err(ConfigError::Invalid {
        path: origin.to_path_buf(),
        line,
        column,
        key: String::new(),
        message,
        suggestion: None,
    })
}

/// Location context for building [`ConfigError::Invalid`].
pub(super) struct Ctx<'a> {
    pub(super) text: &'a str,
    pub(super) origin: &'a std::path::Path,
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
        let mut config = Config::deserialize(toml::de::Deserializer::from(doc.clone()))
            .map_err(|e| self.serde_error(&e, doc.get_ref()))?;
        let span = doc.span();
        let root = Spanned::new(span, DeValue::Table(doc.into_inner()));
        self.finish(&mut config, At(&root), checks)?;
        Ok(config)
    }

    /// Checks every key of `table` (the section at `path`) against [`sections`], and that sections are tables.
    fn check_keys(&self, table: &DeTable<'_>, path: &str, errors: &mut Vec<ConfigError>) {
        let keys = section(path).map_or(&[][..], |s| &s.keys[..]);
        for (key, value) in table {
            let name: &str = key.get_ref();
            let full = join_key(path, name);
            if !keys.iter().any(|k| k == name) {
                let suggestion = suggest_key(name, path);
                let message = format!("unknown key `{full}`");
                errors.push(self.error(key.span(), &full, message, suggestion));
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
        if let Some(field) = msg
            .strip_prefix("missing field `")
            .and_then(|f| f.strip_suffix('`'))
        {
            let key = join_key(&key, field);
            return self.error(span, &key, format!("`{key}` is required"), None);
        }
        let event = |w: &str| closest(w.split('`').next()?, Event::ALL.map(Event::name));
        let unknown_event = msg.strip_prefix("unknown event `").and_then(event);
        let suggestion = suggestion_from_serde_message(msg).or(unknown_event.map(str::to_owned));
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

/// Every section of the file, learned from the config types themselves: a table holding only the key `"?"`
/// makes `deny_unknown_fields` list the fields it expected there, and a field that answers the same way when
/// given such a table (or an array of them) is a section.
pub(super) fn sections() -> &'static [Section] {
    static SECTIONS: OnceLock<Vec<Section>> = OnceLock::new();
    SECTIONS.get_or_init(|| {
        let mut out = Vec::new();
        let top = expected_fields(&[]).unwrap_or_default();
        learn(&mut Vec::new(), top, &mut out);
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
/// when that is no table of `Config`.
fn expected_fields(path: &[(String, bool)]) -> Option<Vec<String>> {
    let mut text = "\"?\" = 0".to_owned();
    for (key, array) in path.iter().rev() {
        text = match array {
            true => format!("{key} = [{{ {text} }}]"),
            false => format!("{key} = {{ {text} }}"),
        };
    }
    let err = toml::from_str::<Config>(&text).err()?;
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

// Checked values

/// A place in the parsed document, for the spans of errors found after deserializing and for defaults that
/// depend on whether a key was written.
#[derive(Clone, Copy)]
pub(super) struct At<'a>(pub(super) &'a Spanned<DeValue<'a>>);

impl<'a> At<'a> {
    pub(super) fn key(self, key: &str) -> Option<At<'a>> {
        self.0.get_ref().get(key).map(At)
    }

    pub(super) fn nth(self, index: usize) -> Option<At<'a>> {
        self.0.get_ref().get(index).map(At)
    }

    pub(super) fn span(self) -> Range<usize> {
        self.0.span()
    }
}

/// The span of the value at `key` of `table`, else of `table` itself.
pub(super) fn span_of(table: Option<At<'_>>, key: &str) -> Range<usize> {
    table.map_or(0..0, |t| t.key(key).unwrap_or(t).span())
}

/// Deserializes a `T` and checks or converts it with `f`. (An error gets the span of the value of a table key.)
pub(super) fn checked<'de, D: Deserializer<'de>, T: Deserialize<'de>, U>(
    d: D,
    f: impl FnOnce(T) -> Result<U, String>,
) -> Result<U, D::Error> {
    f(T::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// Checks a string inside toml's value deserializer, so that an error gets the string's span even in an array.
pub(super) struct StrVisitor<F>(pub(super) F);

impl<T, F: FnOnce(&str) -> Result<T, String>> Visitor<'_> for StrVisitor<F> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<T, E> {
        (self.0)(s).map_err(E::custom)
    }
}

/// Strings checked (and converted) while deserializing; fields use them through [`one`], [`some`] and [`many`].
macro_rules! checked_str {
    ($($name:ident($ty:ty) = $check:expr;)*) => {$(
        pub(super) struct $name($ty);

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_str(super::raw::StrVisitor($check)).map($name)
            }
        }

        impl From<$name> for $ty {
            fn from(v: $name) -> $ty {
                v.0
            }
        }
    )*};
}

checked_str! {
    AbsPath(PathBuf) = absolute_path;
    Glob(String) = glob;
    Target(String) = target;
}

pub(super) use checked_str;

pub(super) fn one<'de, D: Deserializer<'de>, N: Deserialize<'de> + Into<T>, T>(
    d: D,
) -> Result<T, D::Error> {
    N::deserialize(d).map(Into::into)
}

pub(super) fn some<'de, D: Deserializer<'de>, N: Deserialize<'de> + Into<T>, T>(
    d: D,
) -> Result<Option<T>, D::Error> {
    one::<D, N, T>(d).map(Some)
}

pub(super) fn many<'de, D: Deserializer<'de>, N: Deserialize<'de> + Into<T>, T>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    Ok(Vec::<N>::deserialize(d)?
        .into_iter()
        .map(Into::into)
        .collect())
}

/// A TOML integer or string (sizes, durations).
#[derive(Deserialize)]
#[serde(untagged, expecting = "an integer or a string")]
enum IntOrStr {
    Int(i64),
    Str(String),
}

/// Bytes: an integer or a size like "1GiB".
pub(super) fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    checked(d, |v| match v {
        IntOrStr::Int(n) => u64::try_from(n).map_err(|_| "size must not be negative".into()),
        IntOrStr::Str(s) => parse_size(&s),
    })
}

/// A positive duration: integer seconds or a string like "30s".
pub(super) fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    checked(d, |v| {
        let d = match v {
            IntOrStr::Int(n) => (u64::try_from(n).map(Duration::from_secs))
                .map_err(|_| "duration must not be negative".to_owned())?,
            IntOrStr::Str(s) => parse_duration(&s)?,
        };
        match d.is_zero() {
            true => Err("duration must be greater than zero".into()),
            false => Ok(d),
        }
    })
}

/// `compression.level` as written, saturated: the range depends on the algorithm and is checked in
/// [`Ctx::finish`].
pub(super) fn level<'de, D: Deserializer<'de>>(d: D) -> Result<i32, D::Error> {
    let n = i64::deserialize(d)?;
    Ok(n.clamp(i32::MIN.into(), i32::MAX.into()) as i32)
}

pub(super) fn concurrency<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    checked(d, |n: i64| match usize::try_from(n) {
        Ok(n @ 1..=64) => Ok(n),
        _ => Err(format!("{n} is out of range 1..=64")),
    })
}

/// An absolute path without `..` components (it is joined to the host root later).
pub(super) fn absolute_path(s: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(s);
    if !path.is_absolute() {
        return Err(format!("`{s}` is not an absolute path"));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(format!("`{s}` must not contain `..`"));
    }
    Ok(path)
}

fn glob(pattern: &str) -> Result<String, String> {
    if let Err(e) = globset::Glob::new(pattern) {
        return Err(format!("invalid glob `{pattern}`: {}", e.kind()));
    }
    // Patterns are matched against absolute paths: one starting with a literal
    // character other than `/` can never match.
    if !pattern.starts_with(['/', '*', '?', '[', '{']) {
        return Err(format!(
            "glob `{pattern}` can never match an absolute path; start it with `/` or `**/`"
        ));
    }
    Ok(pattern.to_owned())
}

/// An rclone `remote:path`, without a trailing slash.
fn target(target: &str) -> Result<String, String> {
    match target.split_once(':') {
        Some((remote, _)) if !remote.is_empty() => Ok(target.trim_end_matches('/').to_owned()),
        _ => Err(format!("`{target}` is not an rclone `remote:path`")),
    }
}

impl Ctx<'_> {
    /// A tier's or channel's name: `default` unless its table sets one; letters, digits, '-', '_' or '.', and
    /// not in `seen` (`taken` says by what).
    pub(super) fn name(
        &self,
        table: Option<At<'_>>,
        name: &mut String,
        default: impl FnOnce() -> String,
        key: &str,
        seen: &mut Vec<String>,
        taken: &str,
    ) -> Result<()> {
        if table.and_then(|t| t.key("name")).is_none() {
            *name = default();
        }
        let span = span_of(table, "name");
        let valid = |c: char| c.is_ascii_alphanumeric() || "-_.".contains(c);
        if name.is_empty() || !name.chars().all(valid) {
            let detail = format!("`{name}`: use letters, digits, '-', '_' or '.'");
            return Err(self.invalid(span, key, detail));
        }
        if seen.contains(name) {
            return Err(self.invalid(span, key, format!("`{name}` is used by {taken}")));
        }
        seen.push(name.clone());
        Ok(())
    }

    /// What deserializing cannot check: values that depend on other keys or on [`Checks`], unique names, and
    /// defaults that depend on other keys.
    fn finish(&self, c: &mut Config, doc: At<'_>, checks: &Checks) -> Result<()> {
        let compression = doc.key("compression");
        let algorithm = c.compression.algorithm;
        match compression.and_then(|t| t.key("level")) {
            None => c.compression.level = algorithm.default_level(),
            Some(v) if !algorithm.level_range().contains(&c.compression.level) => {
                let written = i64::deserialize(ValueDeserializer::from(v.0.clone()));
                let written = written.unwrap_or_default();
                let (lo, hi) = algorithm.level_range().into_inner();
                let detail = format!("{written} is out of range {lo}..={hi} for {algorithm}");
                return Err(self.invalid(v.span(), "compression.level", detail));
            }
            Some(_) => {}
        }

        const SKIP: &str = "collect.skip_categories";
        let skip = doc.key("collect").and_then(|t| t.key("skip_categories"));
        let known = checks.categories;
        for (i, name) in c.collect.skip_categories.iter().enumerate() {
            if !known.contains(&name.as_str()) {
                let suggestion = closest(name, known.iter().copied());
                let known = match suggestion {
                    Some(_) => String::new(),
                    None => format!(" (known categories: {})", known.join(", ")),
                };
                let message =
                    format!("invalid value for `{SKIP}`: unknown category `{name}`{known}");
                let span = skip.and_then(|s| s.nth(i)).map_or(0..0, At::span);
                return Err(self.error(span, SKIP, message, suggestion.map(str::to_owned)));
            }
        }

        if let Some(e) = &mut c.encryption {
            self.encryption(e, doc.key("encryption"), checks)?;
        }

        let mut seen = Vec::new();
        for (i, s) in c.secondary.iter_mut().enumerate() {
            let table = doc.key("secondary").and_then(|t| t.nth(i));
            if table.and_then(|t| t.key("require_mount")).is_none() {
                s.require_mount = s.path.starts_with("/mnt") || s.path.starts_with("/media");
            }
            let path = &s.path;
            let default = || {
                path.file_name()
                    .map_or("root".into(), |n| n.to_string_lossy().into())
            };
            let key = "secondary.name";
            self.name(table, &mut s.name, default, key, &mut seen, "another tier")?;
        }
        let mut seen = Vec::new();
        for (i, r) in c.remote.iter_mut().enumerate() {
            let table = doc.key("remote").and_then(|t| t.nth(i));
            r.retries = r.retries.max(1);
            let target = &r.target;
            let default = || target.split_once(':').map_or("", |(r, _)| r).to_owned();
            let key = "remote.name";
            self.name(table, &mut r.name, default, key, &mut seen, "another tier")?;
        }
        c.notify.finish(self, doc.key("notify"))
    }

    fn encryption(
        &self,
        e: &mut EncryptionConfig,
        doc: Option<At<'_>>,
        checks: &Checks,
    ) -> Result<()> {
        let recipients = doc.and_then(|t| t.key("recipients"));
        for (i, r) in e.recipients.iter_mut().enumerate() {
            if let Err(why) = (checks.recipient)(r) {
                let span = recipients.and_then(|a| a.nth(i)).map_or(0..0, At::span);
                return Err(self.invalid(span, &format!("recipients[{i}]"), why));
            }
            *r = r.trim().to_owned();
        }
        let has_recipients = !e.recipients.is_empty() || e.recipients_file.is_some();
        if e.passphrase_file.is_some() && has_recipients {
            let span = span_of(doc, "passphrase_file");
            let why =
                "an age file is encrypted either to recipients or with a passphrase, not both";
            return Err(self.invalid(span, "passphrase_file", why));
        }
        if !has_recipients && e.passphrase_file.is_none() {
            let why =
                "set `recipients`, `recipients_file` or `passphrase_file` (or remove [encryption])";
            return Err(self.invalid(span_of(doc, ""), "encryption", why));
        }
        Ok(())
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
