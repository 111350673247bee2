//! The one place that prints a command's result to stdout: text or JSON (one document), redacted when asked,
//! and a closed stdout (`| head`) that ends the output quietly instead of a panic or an error.

use super::Exit;
use anyhow::anyhow;
use proxkeep::output::Redactor;
use rustix::event::{PollFd, PollFlags, Timespec, poll};
use serde::Serialize;
use std::io::{self, IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Set once stdout's reader went away: nothing more is written, and the process ends with its own code.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// Set once the one JSON document of the run is out; an error after it goes to stderr only.
static DOCUMENT: AtomicBool = AtomicBool::new(false);

pub fn stdout_closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

pub fn document_written() -> bool {
    DOCUMENT.load(Ordering::Relaxed)
}

pub fn is_closed_pipe(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<io::Error>())
        .any(|e| e.kind() == io::ErrorKind::BrokenPipe)
}

#[derive(Clone, Default)]
pub struct Emit {
    pub json: bool,
    pub redactor: Option<Redactor>,
}

impl Emit {
    /// The command's result: `value` as one JSON document with --json, else the text `text` writes.
    pub fn result<T: Serialize + ?Sized>(
        &self,
        value: &T,
        text: impl FnOnce(&mut dyn Write) -> io::Result<()>,
    ) -> Result<(), Exit> {
        if self.json {
            self.json(value)
        } else {
            self.text(text)
        }
    }

    /// One JSON document (pretty, redacted).
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) -> Result<(), Exit> {
        let doc = serde_json::to_string_pretty(value).map_err(Exit::failed)?;
        DOCUMENT.store(true, Ordering::Relaxed);
        self.write(format!("{doc}\n").as_bytes())
    }

    /// Text only (nothing with --json: the document carries it).
    pub fn text(&self, f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<(), Exit> {
        if self.json {
            return Ok(());
        }
        let mut buf = Vec::new();
        f(&mut buf).map_err(Exit::failed)?;
        self.write(&buf)
    }

    /// Text streamed as it is produced (ls of a big archive, cat): a closed reader stops the producer, which
    /// sees the BrokenPipe error.
    pub fn stream<T>(&self, f: impl FnOnce(&mut dyn Write) -> T) -> T {
        let stdout = io::stdout().lock();
        let mut out = Pipe(io::BufWriter::with_capacity(256 * 1024, stdout));
        let r = f(&mut out);
        let _ = out.flush();
        r
    }

    fn write(&self, bytes: &[u8]) -> Result<(), Exit> {
        let redacted = self
            .redactor
            .as_ref()
            .map(|r| r.apply(&String::from_utf8_lossy(bytes)));
        let bytes = redacted.as_ref().map_or(bytes, |t| t.as_bytes());
        let mut out = Pipe(io::stdout().lock());
        out.write_all(bytes)
            .and_then(|()| out.flush())
            .or_else(quiet_if_closed)
    }
}

/// stdout that remembers a closed reader, and writes nothing once it is gone.
struct Pipe<W: Write>(W);

impl<W: Write> Write for Pipe<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if stdout_closed() {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.0.write(buf).inspect_err(note_closed)
    }
    fn flush(&mut self) -> io::Result<()> {
        if stdout_closed() {
            return Ok(());
        }
        self.0.flush().inspect_err(note_closed)
    }
}

fn note_closed(e: &io::Error) {
    if e.kind() == io::ErrorKind::BrokenPipe {
        CLOSED.store(true, Ordering::Relaxed);
    }
}

fn quiet_if_closed(e: io::Error) -> Result<(), Exit> {
    if e.kind() == io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(Exit::failed(anyhow!("cannot write the output: {e}")))
    }
}

/// A typed confirmation on a terminal; `yes` skips it. Ctrl-C at the prompt ends the run (exit 130). Without
/// a terminal (cron, a pipe) and without `yes` it is a usage error (exit 2): the command line must say which;
/// `dry_run`: the command has `--dry-run` to suggest.
pub fn confirm(
    what: &str,
    word: &str,
    (yes, dry_run): (bool, bool),
    cancel: &AtomicBool,
) -> Result<(), Exit> {
    if yes {
        return Ok(());
    }
    let stdin = io::stdin();
    if !stdin.is_terminal() {
        let or = if dry_run {
            ", or --dry-run to only see the plan"
        } else {
            ""
        };
        return Err(Exit::usage(anyhow!(
            "no terminal to confirm on: pass --yes to {what} without asking{or} (nothing was changed)"
        )));
    }
    eprint!("Type `{word}` to {what}, anything else to stop: ");
    let _ = io::stderr().flush();
    match read_answer(cancel, None)? {
        Some(line) if line.trim() == word => Ok(()),
        _ => Err(Exit::failed(anyhow!("not confirmed: nothing was changed"))),
    }
}

/// One line typed on stdin (after a prompt), or `None` when `until` passes first. Polls, so SIGINT/SIGTERM
/// (which only set a flag) end the wait (exit 130) instead of being swallowed by a read.
pub fn read_answer(
    cancel: &AtomicBool,
    until: Option<std::time::Instant>,
) -> Result<Option<String>, Exit> {
    let stdin = io::stdin();
    let unread = |e: io::Error| Exit::failed(anyhow!("reading the confirmation: {e}"));
    loop {
        if cancel.load(Ordering::Relaxed) {
            eprintln!();
            let e = anyhow!("interrupted at the confirmation: nothing was changed");
            return Err(Exit::new(proxkeep::exit::INTERRUPTED, e));
        }
        if until.is_some_and(|u| std::time::Instant::now() >= u) {
            return Ok(None);
        }
        let mut fds = [PollFd::new(&stdin, PollFlags::IN)];
        let timeout = Timespec::try_from(Duration::from_millis(200)).ok();
        match poll(&mut fds, timeout.as_ref()) {
            Ok(0) | Err(rustix::io::Errno::INTR) => continue,
            Ok(_) => break,
            Err(e) => return Err(unread(e.into())),
        }
    }
    let mut line = String::new();
    stdin.read_line(&mut line).map_err(unread)?;
    Ok(Some(line))
}

/// A notice about an earlier run (a network restore rolled back), on stderr before the command's own output:
/// never part of stdout or its one JSON document.
pub fn notice(msg: &str) {
    eprintln!("notice: {}", proxkeep::output::esc_line(msg));
}
