//! The reference tool's `backup.env`: `KEY=value` lines, read the way its Go loader reads them (no shell):
//! `#` comment lines, an optional `export ` prefix, values unquoted (an inline comment starts at a `#` after
//! white space), in double quotes (`\"`, `\\`, `\$` escapes; may span lines) or in single quotes (literal; may
//! span lines). `${VAR}` and `$VAR` expand outside single quotes, from the keys above first, then `lookup`.
//! Errors name the line, never its text (it may hold a secret).

/// One `KEY=value` of the file, its value expanded; `line` is where the key is (1-based).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// A line that is not `KEY=value` (or a quote never closed, or a `${` without `}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct EnvError {
    pub line: usize,
    pub message: String,
}

/// Every key of `text` in the order of its first appearance, with the value of its last (as a shell would).
pub fn parse(text: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Vec<Entry>, EnvError> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out: Vec<Entry> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = i + 1;
        let err = |message: String| EnvError { line, message };
        let trimmed = lines[i].trim_start();
        i += 1;
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let body = trimmed.strip_prefix("export ").unwrap_or(trimmed);
        let Some((key, rest)) = body.split_once('=') else {
            return Err(err("not KEY=value, nor a # comment".into()));
        };
        let key = key.trim();
        let name_ok = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !name_ok {
            return Err(err("the part before = is not a variable name".into()));
        }
        let known = |name: &str| {
            out.iter()
                .find(|e| e.key == name)
                .map(|e| e.value.clone())
                .or_else(|| lookup(name))
        };
        let rest = rest.trim_start();
        let value = match rest.chars().next() {
            Some(q @ ('"' | '\'')) => {
                // The quoted text may go on over the next lines, up to the closing quote.
                let mut text = rest[1..].to_string();
                let close = loop {
                    if let Some(end) = closing(&text, q) {
                        break end;
                    }
                    let Some(next) = lines.get(i) else {
                        return Err(err(format!("the {q} opened here is never closed")));
                    };
                    text.push('\n');
                    text.push_str(next);
                    i += 1;
                };
                let after = text[close + 1..].trim_start();
                if !after.is_empty() && !after.starts_with('#') {
                    let message = format!("text after the closing {q} (other than a # comment)");
                    return Err(EnvError { line: i, message });
                }
                let inner = &text[..close];
                match q {
                    '\'' => inner.to_string(),
                    _ => expand(&unescape(inner), &known).map_err(err)?,
                }
            }
            _ => {
                let value = match rest.find(" #").or_else(|| rest.find("\t#")) {
                    Some(at) => &rest[..at],
                    None if rest.starts_with('#') => "",
                    None => rest,
                };
                expand(value.trim_end(), &known).map_err(err)?
            }
        };
        match out.iter_mut().find(|e| e.key == key) {
            Some(e) => e.value = value,
            None => out.push(Entry {
                key: key.to_string(),
                value,
                line,
            }),
        }
    }
    Ok(out)
}

/// Byte offset of the quote `q` that closes `text` (a backslash escapes it inside double quotes).
fn closing(text: &str, q: char) -> Option<usize> {
    let mut escaped = false;
    for (at, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if q == '"' => escaped = true,
            c if c == q => return Some(at),
            _ => {}
        }
    }
    None
}

/// Double-quote escapes: `\"`, `\\`, `\$` and `` \` `` lose their backslash (`\$` becomes a `$` that does not
/// expand: kept as the marker `\u{0}` until [`expand`]); any other backslash stays.
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some('$')) => {
                chars.next();
                out.push('\u{0}');
            }
            ('\\', Some(&n @ ('"' | '\\' | '`'))) => {
                chars.next();
                out.push(n);
            }
            _ => out.push(c),
        }
    }
    out
}

/// `${VAR}`, `${VAR:-default}` and `$VAR` replaced by `known(VAR)` (empty when unknown); `$` before anything
/// else stays; the marker of an escaped `$` becomes `$`.
fn expand(s: &str, known: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find(['$', '\u{0}']) {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if rest[at..].starts_with('\u{0}') {
            out.push('$');
            rest = after;
        } else if let Some(braced) = after.strip_prefix('{') {
            let end = braced
                .find('}')
                .ok_or_else(|| "`${` without its closing `}`".to_string())?;
            let (name, default) = match braced[..end].split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (&braced[..end], None),
            };
            let value = known(name).filter(|v| !v.is_empty() || default.is_none());
            out.push_str(&value.unwrap_or_else(|| default.unwrap_or("").to_string()));
            rest = &braced[end + 1..];
        } else {
            let len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if len == 0 || after.starts_with(|c: char| c.is_ascii_digit()) {
                out.push('$');
                rest = after;
            } else {
                out.push_str(&known(&after[..len]).unwrap_or_default());
                rest = &after[len..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Vec<(String, String)>, EnvError> {
        let lookup = |k: &str| (k == "BASE_DIR").then(|| "/opt/proxsave".to_string());
        parse(text, &lookup).map(|v| v.into_iter().map(|e| (e.key, e.value)).collect())
    }

    #[test]
    fn values() {
        let cases: &[(&str, &str)] = &[
            ("A=plain", "plain"),
            ("A=", ""),
            ("A=  spaced value  ", "spaced value"),
            ("export A=x", "x"),
            ("  A = x", "x"),
            ("A=x # comment", "x"),
            ("A=x\t# comment", "x"),
            ("A=# only a comment", ""),
            ("A=a#b", "a#b"),
            (
                "A=\"quoted # not a comment\" # comment",
                "quoted # not a comment",
            ),
            ("A='single $BASE_DIR \\n'", "single $BASE_DIR \\n"),
            (
                "A=\"esc \\\" \\\\ \\$BASE_DIR \\n\"",
                "esc \" \\ $BASE_DIR \\n",
            ),
            ("A=${BASE_DIR}/backup", "/opt/proxsave/backup"),
            ("A=$BASE_DIR/log", "/opt/proxsave/log"),
            ("A=\"$BASE_DIR\"", "/opt/proxsave"),
            ("A=${NOPE}x", "x"),
            ("A=${NOPE:-fallback}", "fallback"),
            ("A=${BASE_DIR:-fallback}", "/opt/proxsave"),
            ("A=cost $5 and $", "cost $5 and $"),
            ("A=\"two\nlines\"", "two\nlines"),
            ("A='a\n  b # c\n'", "a\n  b # c\n"),
        ];
        for (text, want) in cases {
            let got = parsed(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
            assert_eq!(got, vec![("A".to_string(), want.to_string())], "{text:?}");
        }
    }

    #[test]
    fn references_and_repeats() {
        let got = parsed("# c\n\nX=1\nY=${X}2\nX=3\nZ=$X$Y\n").unwrap();
        let want = [("X", "3"), ("Y", "12"), ("Z", "312")];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("A=1\nnot a pair\n", 2, "not KEY=value"),
            ("A=1\n\n9A=2\n", 3, "not a variable name"),
            ("A-B=1", 1, "not a variable name"),
            ("A=1\nB=\"open\nmore\n", 2, "never closed"),
            ("A='x' y", 1, "text after the closing"),
            ("A=\"x\ny\" z", 2, "text after the closing"),
            ("A=${B", 1, "without its closing"),
        ];
        for (text, line, message) in cases {
            let e = parsed(text).unwrap_err();
            assert_eq!(e.line, *line, "{text:?}: {e}");
            assert!(e.message.contains(message), "{text:?}: {e}");
        }
    }
}
