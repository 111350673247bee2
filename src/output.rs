//! What a run tells people: log lines (stderr and the run log file), the progress line, and redaction of secrets.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A name (archive entry, path, link target) as text for a terminal, as GNU `ls -b` shows it: control characters
/// (C0, DEL, C1) become `\n`, `\r`, `\t`, `\a`, `\b`, `\v`, `\f` or octal (`\033` for ESC), a backslash `\\`,
/// and bytes that are not UTF-8 octal (`\351`). So a name can neither break a line nor move the cursor or
/// recolour the screen, and two different names never look the same. JSON output carries the exact name instead.
pub fn escape(bytes: &[u8]) -> Cow<'_, str> {
    escape_as(bytes, true)
}

/// [`escape`] of a text (a path already made lossy).
pub fn esc(text: &str) -> Cow<'_, str> {
    escape(text.as_bytes())
}

/// A message (which may quote names, perhaps already as Rust's `{:?}` does), inert: [`escape`] but a backslash
/// stays as it is, and a message's own line breaks stay, each continuation line indented, so that nothing in
/// it (a name with a newline included) can start a line of its own.
pub fn esc_line(text: &str) -> Cow<'_, str> {
    let mut lines = text.trim_end_matches('\n').split('\n');
    let first = escape_as(lines.next().unwrap_or_default().as_bytes(), false);
    let mut out: Option<String> = None;
    for line in lines {
        let o = out.get_or_insert_with(|| first.to_string());
        o.push('\n');
        if !line.starts_with(' ') {
            o.push_str("    ");
        }
        o.push_str(&escape_as(line.as_bytes(), false));
    }
    out.map_or(first, Cow::Owned)
}

fn escape_as(bytes: &[u8], backslash: bool) -> Cow<'_, str> {
    let plain = |c: char| !(c.is_control() || backslash && c == '\\');
    if let Ok(s) = std::str::from_utf8(bytes)
        && s.chars().all(plain)
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(bytes.len() + 16);
    let octal = |out: &mut String, b: u8| out.push_str(&format!("\\{b:03o}"));
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' if backslash => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\x07' => out.push_str("\\a"),
                '\x08' => out.push_str("\\b"),
                '\x0b' => out.push_str("\\v"),
                '\x0c' => out.push_str("\\f"),
                c if c.is_control() => c
                    .encode_utf8(&mut [0; 4])
                    .bytes()
                    .for_each(|b| octal(&mut out, b)),
                c => out.push(c),
            }
        }
        chunk.invalid().iter().for_each(|b| octal(&mut out, *b));
    }
    Cow::Owned(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    /// The log file's tag, the stderr prefix, and the least verbosity that shows the line on stderr.
    fn tag(self) -> (&'static str, &'static str, i8) {
        match self {
            Level::Debug => ("DEBUG", "debug: ", 1),
            Level::Info => ("INFO", "", 0),
            Level::Warn => ("WARN", "warning: ", 0),
            Level::Error => ("ERROR", "error: ", i8::MIN),
        }
    }
}

/// A poisoned lock still holds usable lines: a panic elsewhere must not silence the log.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Replaces known secret values with `<redacted>` in every line that leaves the process.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    pub fn add(&mut self, secret: impl Into<String>) {
        let s = secret.into();
        // Very short values would redact innocent text; they are not secrets worth the name anyway.
        if s.len() >= 4 && !self.secrets.contains(&s) {
            self.secrets.push(s);
            self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }
    pub fn apply(&self, text: &str) -> String {
        let mut out = text.to_string();
        for s in &self.secrets {
            if out.contains(s.as_str()) {
                out = out.replace(s.as_str(), "<redacted>");
            }
        }
        out
    }
}

/// The run's log: every line goes to the log file (when one is attached) and, by verbosity, to stderr.
#[derive(Default)]
pub struct Log {
    verbosity: i8,
    tty: bool,
    redactor: Redactor,
    file: Mutex<Option<File>>,
    /// Lines logged before the log file exists (preflight creates its directory).
    early: Mutex<Vec<String>>,
    /// The file `detach` let go of, so the notification step can append its own lines to the run log.
    detached: Mutex<Option<File>>,
    /// The last lines logged (redacted), for the dead-man ping's `/fail` body.
    tail: Mutex<VecDeque<String>>,
}

const TAIL_LINES: usize = 60;

impl Log {
    /// `verbosity`: -1 quiet (errors only), 0 normal, 1+ debug.
    pub fn new(verbosity: i8, redactor: Redactor) -> Self {
        Log {
            verbosity,
            tty: std::io::stderr().is_terminal(),
            redactor,
            ..Log::default()
        }
    }

    pub fn redactor(&self) -> &Redactor {
        &self.redactor
    }

    /// Start writing the log file (mode 0600); lines logged so far are written first.
    pub fn attach(&self, mut file: File) {
        for line in lock(&self.early).drain(..) {
            let _ = writeln!(file, "{line}");
        }
        *lock(&self.file) = Some(file);
    }

    /// Stop writing the log file and flush it to disk.
    pub fn detach(&self) {
        if let Some(f) = lock(&self.file).take() {
            let _ = f.sync_all();
            *lock(&self.detached) = Some(f);
        }
    }

    /// Resume writing the file the last [`detach`](Self::detach) closed, if any: what happens after the
    /// backup proper (notifications) belongs in the same run log.
    pub fn reattach(&self) -> bool {
        let file = lock(&self.detached).take();
        file.map(|f| self.attach(f)).is_some()
    }

    /// The last lines logged (at most [`TAIL_LINES`]), already redacted, oldest first.
    pub fn tail(&self) -> Vec<String> {
        lock(&self.tail).iter().cloned().collect()
    }

    pub fn log(&self, level: Level, msg: &str) {
        self.write(level, msg, true)
    }

    /// Into the run log and its tail only: for what the run's error says on stderr anyway.
    pub fn record(&self, level: Level, msg: &str) {
        self.write(level, msg, false)
    }

    fn write(&self, level: Level, msg: &str, show: bool) {
        // One entry per message, whatever a file name in it holds (see `esc_line`).
        let msg = esc_line(&self.redactor.apply(msg)).into_owned();
        let (tag, prefix, shown_from) = level.tag();
        let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ");
        let line = format!("{now} {tag:5} {msg}");
        {
            let mut tail = lock(&self.tail);
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line.clone());
        }
        match lock(&self.file).as_mut() {
            Some(f) => {
                let _ = writeln!(f, "{line}");
            }
            None => lock(&self.early).push(line),
        }
        if show && self.verbosity >= shown_from {
            let clear = if self.tty { "\r\x1b[K" } else { "" };
            eprintln!("{clear}{prefix}{msg}");
        }
    }

    pub fn info(&self, msg: &str) {
        self.log(Level::Info, msg)
    }
    pub fn warn(&self, msg: &str) {
        self.log(Level::Warn, msg)
    }
    pub fn error(&self, msg: &str) {
        self.log(Level::Error, msg)
    }
    pub fn debug(&self, msg: &str) {
        self.log(Level::Debug, msg)
    }

    /// A progress reporter fitting this log: a live line on a terminal, nothing otherwise.
    pub fn progress(&self) -> Box<dyn Progress> {
        if self.tty && self.verbosity >= 0 {
            Box::new(TermProgress::default())
        } else {
            Box::new(NoProgress)
        }
    }
}

/// Progress of a long operation; the core never depends on how (or whether) it is shown.
pub trait Progress: Send + Sync {
    fn phase(&self, _name: &str) {}
    fn advance(&self, _files: u64, _bytes: u64) {}
    fn finish(&self) {}
}

pub struct NoProgress;
impl Progress for NoProgress {}

/// One self-overwriting line on stderr, redrawn at most ten times a second.
#[derive(Default)]
pub struct TermProgress {
    files: AtomicU64,
    bytes: AtomicU64,
    state: Mutex<(String, Option<Instant>)>,
}

impl TermProgress {
    fn draw(&self, force: bool) {
        let mut st = lock(&self.state);
        let fresh =
            st.1.is_some_and(|t| t.elapsed() < Duration::from_millis(100));
        if !force && fresh {
            return;
        }
        st.1 = Some(Instant::now());
        let files = self.files.load(Ordering::Relaxed);
        let size = crate::units::format_size(self.bytes.load(Ordering::Relaxed));
        eprint!("\r\x1b[K{}: {files} files, {size}", st.0);
    }
}

impl Progress for TermProgress {
    fn phase(&self, name: &str) {
        lock(&self.state).0 = name.to_string();
        self.files.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        self.draw(true);
    }
    fn advance(&self, files: u64, bytes: u64) {
        self.files.fetch_add(files, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.draw(false);
    }
    fn finish(&self) {
        eprint!("\r\x1b[K");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_as_ls_b() {
        assert_eq!(escape(b"etc/hosts"), "etc/hosts");
        assert!(matches!(escape(b"etc/caf\xc3\xa9"), Cow::Borrowed(_)));
        assert_eq!(escape(b"a\nb\rc\td"), "a\\nb\\rc\\td");
        assert_eq!(escape(b"\x1b[31mred"), "\\033[31mred");
        assert_eq!(escape(b"del\x7f back\\slash"), "del\\177 back\\\\slash");
        assert_eq!(escape("c1\u{9b}x".as_bytes()), "c1\\302\\233x");
        assert_eq!(escape(b"caf\xe9.conf"), "caf\\351.conf");
        assert_eq!(esc("\x07\x08\x0b\x0c"), "\\a\\b\\v\\f");
        assert_eq!(esc_line("a \"\\u{1b}\" \x1b"), "a \"\\u{1b}\" \\033");
        // A message's line breaks stay; what follows one cannot start a line of its own.
        assert_eq!(esc_line("bad\n    fix: x"), "bad\n    fix: x");
        assert_eq!(
            esc_line("name a\nerror: forged\r"),
            "name a\n    error: forged\\r"
        );
    }

    #[test]
    fn redactor_replaces_longest_first_and_ignores_tiny() {
        let mut r = Redactor::default();
        r.add("abc");
        r.add("secret-token");
        r.add("secret-token-long");
        assert_eq!(
            r.apply("t=secret-token-long u=secret-token abc"),
            "t=<redacted> u=<redacted> abc"
        );
    }
}
