//! Running external programs safely.
//!
//! Every command run through this module:
//!
//! * gets `/dev/null` (or a pipe fed by [`run_with_input`]) as stdin,
//!   `LC_ALL=C` in its environment and its own process group;
//! * has stdout and stderr drained concurrently on two threads, so a chatty
//!   child can never block on a full pipe, with each capture capped at
//!   [`RunOptions::max_output`] bytes (the rest is read and discarded);
//! * is bounded in time: on timeout or cancellation the whole process group
//!   gets `SIGTERM`, then `SIGKILL` after [`RunOptions::grace`];
//! * never leaves anything behind: once the command is over, whatever is still
//!   in its process group is `SIGKILL`ed, and if something outside the group
//!   (a process that called `setsid`) still holds the output pipes, the
//!   reader threads are abandoned after a bounded wait instead of blocking.
//!
//! Worst-case wall time of [`run`] is roughly
//! `timeout + grace + 2 × SETTLE` (`SETTLE` is one second).

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process_group};
use wait_timeout::ChildExt;

/// Longest interval between two looks at the cancel flag.
const POLL: Duration = Duration::from_millis(100);
/// How long to wait, after `SIGKILL`, for the child to be reaped and for the
/// output pipes to reach end-of-file.
const SETTLE: Duration = Duration::from_secs(1);
/// Size of one read from a child's pipe.
const READ_CHUNK: usize = 64 * 1024;

/// An external command: program, arguments and extra environment.
#[derive(Debug, Clone)]
pub struct CommandSpec {
    pub program: String,
    pub args: Vec<String>,
    /// Extra environment variables, applied after `LC_ALL=C` (so they may
    /// override it).
    pub env: Vec<(String, String)>,
}

impl CommandSpec {
    /// A command with the given arguments and no extra environment.
    pub fn new(program: impl Into<String>, args: &[&str]) -> Self {
        CommandSpec {
            program: program.into(),
            args: args.iter().map(|a| (*a).to_string()).collect(),
            env: Vec::new(),
        }
    }

    /// Shell-like rendering for messages, e.g. `ip -j addr`; words with
    /// special characters are single-quoted. The extra environment is left out
    /// on purpose (it may carry secrets).
    pub fn display(&self) -> String {
        let words = std::iter::once(&self.program).chain(&self.args);
        words.map(|w| quote(w)).collect::<Vec<_>>().join(" ")
    }
}

/// Quotes one word the way a POSIX shell would need it.
fn quote(word: &str) -> Cow<'_, str> {
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./=:,+@%".contains(&b));
    if plain {
        Cow::Borrowed(word)
    } else {
        Cow::Owned(format!("'{}'", word.replace('\'', r"'\''")))
    }
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Time allowed from start until the command is told to stop.
    pub timeout: Duration,
    /// Time between `SIGTERM` and `SIGKILL`; also how long output pipes may
    /// stay open after the command itself exited.
    pub grace: Duration,
    /// Maximum bytes kept per stream (stdout, stderr); the rest is discarded.
    pub max_output: usize,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            timeout: Duration::from_secs(30),
            grace: Duration::from_secs(2),
            max_output: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Exited on its own with this code.
    Exited(i32),
    /// Killed by this signal (not sent by us).
    Signaled(i32),
    /// Ran past its timeout and was killed.
    TimedOut,
    /// The cancel flag was set; the command was killed or never started.
    Cancelled,
    /// The program does not exist.
    Absent,
    /// The program could not be started (or waited for), with the reason.
    SpawnFailed(String),
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::Exited(code) => write!(f, "exit {code}"),
            Status::Signaled(sig) => write!(f, "killed by signal {sig}"),
            Status::TimedOut => f.write_str("timed out"),
            Status::Cancelled => f.write_str("cancelled"),
            Status::Absent => f.write_str("not installed"),
            Status::SpawnFailed(why) => write!(f, "could not start: {why}"),
        }
    }
}

/// Outcome and captured output of one command.
#[derive(Debug, Clone)]
pub struct CommandResult {
    pub status: Status,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
    /// Wall time from start to the end of [`run`].
    pub duration: Duration,
}

impl CommandResult {
    pub fn success(&self) -> bool {
        self.status == Status::Exited(0)
    }

    /// The last `max_chars` characters of stderr (lossy UTF-8), trimmed.
    pub fn stderr_tail(&self, max_chars: usize) -> String {
        let text = String::from_utf8_lossy(&self.stderr);
        let text = text.trim();
        let skip = text.chars().count().saturating_sub(max_chars);
        let start = text.char_indices().nth(skip).map_or(text.len(), |(i, _)| i);
        text[start..].trim_start().to_string()
    }
}

/// Runs one command to completion, timeout or cancellation.
pub fn run(spec: &CommandSpec, opts: &RunOptions, cancel: &AtomicBool) -> CommandResult {
    run_with_input(spec, None, opts, cancel)
}

/// Runs all `specs`, at most `concurrency` at a time (0 counts as 1), and
/// returns their results in input order. Once `cancel` is set, commands not
/// yet started come back as [`Status::Cancelled`] without being started.
pub fn run_all(
    specs: &[CommandSpec],
    concurrency: usize,
    opts: &RunOptions,
    cancel: &AtomicBool,
) -> Vec<CommandResult> {
    let next = AtomicUsize::new(0);
    let slots: Vec<OnceLock<CommandResult>> = specs.iter().map(|_| OnceLock::new()).collect();
    thread::scope(|scope| {
        for _ in 0..concurrency.clamp(1, specs.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(spec) = specs.get(i) else { break };
                    let _ = slots[i].set(run(spec, opts, cancel));
                }
            });
        }
    });
    let results = slots.into_iter().map(OnceLock::into_inner);
    results
        .collect::<Option<_>>()
        .expect("every command was run by a worker")
}

enum Stop {
    Timeout,
    Cancel,
    WaitFailed(io::Error),
}

/// Like [`run`], but feeds `input` (if any) to the command's stdin (written on
/// its own thread, then closed).
pub fn run_with_input(
    spec: &CommandSpec,
    input: Option<&[u8]>,
    opts: &RunOptions,
    cancel: &AtomicBool,
) -> CommandResult {
    let start = Instant::now();
    if cancel.load(Ordering::Relaxed) {
        return without_output(Status::Cancelled, start);
    }

    let mut cmd = Command::new(&spec.program);
    cmd.args(&spec.args)
        .env("LC_ALL", "C")
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(input.map_or_else(Stdio::null, |_| Stdio::piped()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return without_output(Status::Absent, start);
        }
        Err(e) => return without_output(Status::SpawnFailed(e.to_string()), start),
    };
    // `process_group(0)`: the child leads a new group whose id is its pid.
    let group = Pid::from_child(&child);

    let shared = Arc::new(Shared::default());
    if let Err(e) = start_io(&mut child, input, opts.max_output, &shared) {
        // Signal errors (ESRCH: the group is empty already) are of no interest here and below.
        let _ = kill_process_group(group, Signal::KILL);
        reap(child, SETTLE);
        wait_drained(&shared, Instant::now() + SETTLE, None);
        let why = format!("cannot start I/O thread: {e}");
        return collect(Status::SpawnFailed(why), &shared, start);
    }

    let status = match wait_child(&mut child, start.checked_add(opts.timeout), Some(cancel)) {
        Ok(exit) => {
            // The command is over. Its output pipes may still be held open by
            // something it left running; give that `grace`, then kill it.
            let linger = Instant::now() + opts.grace;
            if !wait_drained(&shared, linger, Some(cancel)) {
                let _ = kill_process_group(group, Signal::KILL);
                wait_drained(&shared, Instant::now() + SETTLE, None);
            }
            // Leftovers that closed their stdio are still leftovers.
            let _ = kill_process_group(group, Signal::KILL);
            exit_status(exit)
        }
        Err(stop) => {
            let _ = kill_process_group(group, Signal::TERM);
            // A cancel arriving while a timed-out command is given its grace
            // cuts the grace short; a cancelled command gets the full grace.
            let escalate = match stop {
                Stop::Timeout => Some(cancel),
                _ => None,
            };
            let exited = gone_within(&mut child, opts.grace, escalate);
            let _ = kill_process_group(group, Signal::KILL);
            if !exited {
                reap(child, SETTLE);
            }
            wait_drained(&shared, Instant::now() + SETTLE, None);
            match stop {
                Stop::Timeout => Status::TimedOut,
                Stop::Cancel => Status::Cancelled,
                Stop::WaitFailed(e) => Status::SpawnFailed(format!("waiting for it failed: {e}")),
            }
        }
    };
    collect(status, &shared, start)
}

fn exit_status(exit: ExitStatus) -> Status {
    match (exit.code(), exit.signal()) {
        (Some(code), _) => Status::Exited(code),
        (None, Some(sig)) => Status::Signaled(sig),
        (None, None) => Status::Exited(-1),
    }
}

/// Waits for the child to exit (and reaps it) until `deadline` (`None`: no limit) or until `stop` is set.
fn wait_child(
    child: &mut Child,
    deadline: Option<Instant>,
    stop: Option<&AtomicBool>,
) -> Result<ExitStatus, Stop> {
    loop {
        if stop.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            return Err(Stop::Cancel);
        }
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left.is_some_and(|l| l.is_zero()) {
            return Err(Stop::Timeout);
        }
        match child.wait_timeout(left.map_or(POLL, |l| l.min(POLL))) {
            Ok(Some(exit)) => return Ok(exit),
            Ok(None) => {}
            Err(e) => return Err(Stop::WaitFailed(e)),
        }
    }
}

/// Waits up to `limit` for the child to exit (and reaps it); returns whether
/// it did. Returns early when `escalate` is given and set.
fn gone_within(child: &mut Child, limit: Duration, escalate: Option<&AtomicBool>) -> bool {
    let waited = wait_child(child, Some(Instant::now() + limit), escalate);
    // A failed wait means there is nothing left to reap.
    !matches!(waited, Err(Stop::Timeout | Stop::Cancel))
}

/// Reaps a child that was sent `SIGKILL`; if it is still not gone after
/// `limit` (stuck in the kernel), a background thread reaps it later.
fn reap(mut child: Child, limit: Duration) {
    if gone_within(&mut child, limit, None) {
        return;
    }
    let _ = thread::Builder::new()
        .name("proxkeep-reap".into())
        .spawn(move || {
            let _ = child.wait();
        });
}

/// State shared between [`run`] and its reader threads.
#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// Index 0 is stdout, 1 is stderr.
    streams: [Capture; 2],
    /// Reader threads still running.
    open: usize,
    /// Set once the output was collected: readers stop at their next read.
    abandoned: bool,
}

#[derive(Default)]
struct Capture {
    buf: Vec<u8>,
    truncated: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Starts the stdout/stderr readers and, when there is input, the writer.
fn start_io(
    child: &mut Child,
    input: Option<&[u8]>,
    max_output: usize,
    shared: &Arc<Shared>,
) -> io::Result<()> {
    let stdout: ChildStdout = child.stdout.take().expect("stdout is piped");
    let stderr: ChildStderr = child.stderr.take().expect("stderr is piped");
    spawn_reader("proxkeep-stdout", stdout, 0, max_output, shared)?;
    spawn_reader("proxkeep-stderr", stderr, 1, max_output, shared)?;
    if let (Some(input), Some(mut stdin)) = (input, child.stdin.take()) {
        let input = input.to_vec();
        // Write errors (EPIPE: the child does not read it all) are fine.
        thread::Builder::new()
            .name("proxkeep-stdin".into())
            .spawn(move || {
                let _ = stdin.write_all(&input);
            })?;
    }
    Ok(())
}

fn spawn_reader(
    name: &str,
    src: impl Read + Send + 'static,
    index: usize,
    max_output: usize,
    shared: &Arc<Shared>,
) -> io::Result<()> {
    shared.lock().open += 1;
    let for_thread = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name(name.into())
        .spawn(move || drain(src, index, max_output, &for_thread));
    if spawned.is_err() {
        shared.lock().open -= 1;
    }
    spawned.map(drop)
}

/// Reader thread body: reads until end-of-file, keeping up to `max_output`
/// bytes.
fn drain(mut src: impl Read, index: usize, max_output: usize, shared: &Shared) {
    /// Marks the reader finished even if it unwinds.
    struct Finished<'a>(&'a Shared);
    impl Drop for Finished<'_> {
        fn drop(&mut self) {
            self.0.lock().open -= 1;
            self.0.changed.notify_all();
        }
    }
    let _finished = Finished(shared);

    let mut chunk = vec![0u8; READ_CHUNK];
    loop {
        let n = match src.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        let mut state = shared.lock();
        if state.abandoned {
            break; // dropping our end gives the writer EPIPE
        }
        let capture = &mut state.streams[index];
        let keep = n.min(max_output.saturating_sub(capture.buf.len()));
        capture.buf.extend_from_slice(&chunk[..keep]);
        if keep < n {
            capture.truncated = true;
        }
    }
}

/// Waits until both readers reached end-of-file (true) or until `deadline`
/// or until `cancel` is set (false).
fn wait_drained(shared: &Shared, deadline: Instant, cancel: Option<&AtomicBool>) -> bool {
    let mut state = shared.lock();
    loop {
        if state.open == 0 {
            return true;
        }
        if cancel.is_some_and(|flag| flag.load(Ordering::Relaxed)) {
            return false;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        state = shared
            .changed
            .wait_timeout(state, left.min(POLL))
            .unwrap_or_else(|e| e.into_inner())
            .0;
    }
}

fn without_output(status: Status, start: Instant) -> CommandResult {
    collect(status, &Shared::default(), start)
}

/// Takes the captured output (abandoning readers that are still blocked).
fn collect(status: Status, shared: &Shared, start: Instant) -> CommandResult {
    let mut state = shared.lock();
    state.abandoned = true;
    let [out, err] = std::mem::take(&mut state.streams);
    drop(state);
    CommandResult {
        status,
        stdout: out.buf,
        stderr: err.buf,
        stdout_truncated: out.truncated,
        stderr_truncated: err.truncated,
        duration: start.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(timeout_ms: u64, grace_ms: u64) -> RunOptions {
        RunOptions {
            timeout: Duration::from_millis(timeout_ms),
            grace: Duration::from_millis(grace_ms),
            ..RunOptions::default()
        }
    }

    fn sh(script: &str) -> CommandSpec {
        CommandSpec::new("/bin/sh", &["-c", script])
    }

    fn run_default(spec: &CommandSpec) -> CommandResult {
        run(spec, &opts(20_000, 1_000), &AtomicBool::new(false))
    }

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    /// True once `pid` is gone or a zombie (waits up to 3 s).
    fn process_gone(pid: u32) -> bool {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
                Err(_) => return true,
                Ok(stat) => {
                    let state = stat.rsplit(')').next().unwrap_or("").trim_start();
                    if state.starts_with('Z') || state.starts_with('X') {
                        return true;
                    }
                }
            }
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn exit_codes() {
        let r = run_default(&CommandSpec::new("true", &[]));
        assert_eq!(r.status, Status::Exited(0));
        assert!(r.success());
        let r = run_default(&CommandSpec::new("false", &[]));
        assert_eq!(r.status, Status::Exited(1));
        assert!(!r.success());
        let r = run_default(&sh("exit 42"));
        assert_eq!(r.status, Status::Exited(42));
    }

    #[test]
    fn killed_by_signal() {
        let r = run_default(&sh("kill -9 $$"));
        assert_eq!(r.status, Status::Signaled(9));
        assert_eq!(r.status.to_string(), "killed by signal 9");
    }

    #[test]
    fn stdout_and_stderr_captured_separately() {
        let r = run_default(&sh("echo out; echo err >&2; echo more"));
        assert_eq!(r.status, Status::Exited(0));
        assert_eq!(r.stdout, b"out\nmore\n");
        assert_eq!(r.stderr, b"err\n");
        assert!(!r.stdout_truncated && !r.stderr_truncated);
    }

    #[test]
    fn large_output_on_both_streams_does_not_deadlock() {
        let r = run_default(&sh(
            "head -c 10485760 /dev/zero >&2; head -c 10485760 /dev/zero; \
             yes | head -c 1000 >&2",
        ));
        assert_eq!(r.status, Status::Exited(0));
        assert_eq!(r.stdout.len(), 10 * 1024 * 1024);
        assert_eq!(r.stderr.len(), 10 * 1024 * 1024 + 1000);
        assert!(!r.stdout_truncated && !r.stderr_truncated);
    }

    #[test]
    fn environment_has_lc_all_c_and_extra_env() {
        let r = run_default(&sh("printf %s \"$LC_ALL\""));
        assert_eq!(r.stdout, b"C");
        let mut spec = sh("printf '%s' \"$PROXKEEP_TEST_VAR\"");
        spec.env
            .push(("PROXKEEP_TEST_VAR".into(), "hello world".into()));
        assert_eq!(run_default(&spec).stdout, b"hello world");
    }

    #[test]
    fn stdin_is_empty() {
        let r = run(
            &CommandSpec::new("cat", &[]),
            &opts(5_000, 500),
            &AtomicBool::new(false),
        );
        assert_eq!(r.status, Status::Exited(0));
        assert!(r.stdout.is_empty());
        assert!(r.duration < Duration::from_secs(2), "{:?}", r.duration);
    }

    #[test]
    fn missing_program_is_absent() {
        let r = run_default(&CommandSpec::new("proxkeep-no-such-program-xyz", &[]));
        assert_eq!(r.status, Status::Absent);
        assert!(!r.success());
        let r = run_default(&CommandSpec::new("/nonexistent/dir/prog", &["x"]));
        assert_eq!(r.status, Status::Absent);
        assert_eq!(r.status.to_string(), "not installed");
    }

    #[test]
    fn unexecutable_program_is_spawn_failure() {
        let r = run_default(&CommandSpec::new("/dev/null", &[]));
        match &r.status {
            Status::SpawnFailed(why) => assert!(!why.is_empty()),
            other => panic!("expected SpawnFailed, got {other:?}"),
        }
        assert!(r.status.to_string().starts_with("could not start: "));
    }

    #[test]
    fn timeout_kills_sleep() {
        let r = run(
            &CommandSpec::new("sleep", &["100"]),
            &opts(300, 1_000),
            &AtomicBool::new(false),
        );
        assert_eq!(r.status, Status::TimedOut);
        assert!(r.duration >= Duration::from_millis(300));
        // sleep dies on SIGTERM, so the grace is not used up.
        assert!(
            r.duration < Duration::from_millis(1_800),
            "{:?}",
            r.duration
        );
    }

    #[test]
    fn sigterm_ignoring_child_is_killed_after_grace() {
        let r = run(
            &sh("trap '' TERM; echo started; sleep 100"),
            &opts(300, 700),
            &AtomicBool::new(false),
        );
        assert_eq!(r.status, Status::TimedOut);
        assert_eq!(r.stdout, b"started\n");
        assert!(r.duration >= Duration::from_millis(950), "{:?}", r.duration);
        assert!(
            r.duration < Duration::from_millis(2_500),
            "{:?}",
            r.duration
        );
    }

    #[test]
    fn grandchildren_holding_pipes_do_not_hang_on_timeout() {
        let r = run(
            &sh("sleep 100 & sleep 100"),
            &opts(300, 500),
            &AtomicBool::new(false),
        );
        assert_eq!(r.status, Status::TimedOut);
        assert!(
            r.duration < Duration::from_millis(2_000),
            "{:?}",
            r.duration
        );
    }

    #[test]
    fn grandchildren_holding_pipes_after_exit_are_killed() {
        let r = run(
            &sh("sleep 100 & echo $!"),
            &opts(20_000, 300),
            &AtomicBool::new(false),
        );
        assert_eq!(r.status, Status::Exited(0));
        assert!(
            r.duration < Duration::from_millis(1_500),
            "{:?}",
            r.duration
        );
        let pid: u32 = String::from_utf8_lossy(&r.stdout).trim().parse().unwrap();
        assert!(process_gone(pid), "grandchild {pid} still running");
    }

    #[test]
    fn leftovers_with_closed_stdio_are_killed() {
        let r = run_default(&sh("sleep 100 >/dev/null 2>&1 & echo $!"));
        assert_eq!(r.status, Status::Exited(0));
        assert!(r.duration < Duration::from_millis(800), "{:?}", r.duration);
        let pid: u32 = String::from_utf8_lossy(&r.stdout).trim().parse().unwrap();
        assert!(process_gone(pid), "leftover {pid} still running");
    }

    #[test]
    fn escaped_grandchild_holding_pipe_is_abandoned() {
        if !std::path::Path::new("/usr/bin/setsid").exists() {
            eprintln!("setsid not available, skipping");
            return;
        }
        // `setsid` puts `sleep` in another session, out of reach of the group
        // kill; it keeps stdout open for 3 s.
        let r = run(
            &sh("/usr/bin/setsid sleep 3 & echo hi"),
            &opts(20_000, 200),
            &AtomicBool::new(false),
        );
        assert_eq!(r.status, Status::Exited(0));
        assert_eq!(r.stdout, b"hi\n");
        assert!(
            r.duration < Duration::from_millis(2_000),
            "{:?}",
            r.duration
        );
    }

    #[test]
    fn output_is_truncated_at_max_output() {
        let o = RunOptions {
            max_output: 100,
            ..opts(20_000, 500)
        };
        let cancel = AtomicBool::new(false);
        let r = run(&sh("head -c 1000000 /dev/zero; echo err >&2"), &o, &cancel);
        assert_eq!(r.status, Status::Exited(0));
        assert_eq!(r.stdout.len(), 100);
        assert!(r.stdout_truncated);
        assert_eq!(r.stderr, b"err\n");
        assert!(!r.stderr_truncated);
        // Exactly at the limit is not truncated.
        let r = run(&sh("head -c 100 /dev/zero"), &o, &cancel);
        assert_eq!(r.stdout.len(), 100);
        assert!(!r.stdout_truncated);
    }

    #[test]
    fn cancel_flag_stops_running_command() {
        let cancel = AtomicBool::new(false);
        let r = thread::scope(|s| {
            s.spawn(|| {
                thread::sleep(Duration::from_millis(300));
                cancel.store(true, Ordering::Relaxed);
            });
            run(
                &CommandSpec::new("sleep", &["100"]),
                &opts(30_000, 1_000),
                &cancel,
            )
        });
        assert_eq!(r.status, Status::Cancelled);
        assert!(
            r.duration < Duration::from_millis(1_500),
            "{:?}",
            r.duration
        );
        assert_eq!(r.status.to_string(), "cancelled");
    }

    #[test]
    fn cancel_flag_already_set_starts_nothing() {
        let cancel = AtomicBool::new(true);
        let r = run(&sh("echo should-not-run"), &opts(5_000, 500), &cancel);
        assert_eq!(r.status, Status::Cancelled);
        assert!(r.stdout.is_empty());
    }

    #[test]
    fn run_all_preserves_order() {
        let specs: Vec<CommandSpec> = (0..10)
            .map(|i| sh(&format!("sleep 0.{}; echo {i}", 9 - i)))
            .collect();
        let results = run_all(&specs, 4, &opts(20_000, 500), &AtomicBool::new(false));
        assert_eq!(results.len(), 10);
        for (i, r) in results.iter().enumerate() {
            assert_eq!(r.status, Status::Exited(0));
            assert_eq!(String::from_utf8_lossy(&r.stdout), format!("{i}\n"));
        }
        assert!(run_all(&[], 4, &RunOptions::default(), &AtomicBool::new(false)).is_empty());
    }

    #[test]
    fn run_all_runs_concurrently() {
        let specs = vec![CommandSpec::new("sleep", &["1"]); 8];
        let started = Instant::now();
        let results = run_all(&specs, 4, &opts(20_000, 500), &AtomicBool::new(false));
        let took = started.elapsed();
        assert!(results.iter().all(CommandResult::success));
        assert!(took >= Duration::from_millis(1_900), "{}", secs(took));
        assert!(took < Duration::from_millis(3_500), "{}", secs(took));
    }

    #[test]
    fn run_all_with_zero_concurrency_still_runs() {
        let specs = vec![CommandSpec::new("true", &[]); 3];
        let results = run_all(&specs, 0, &opts(5_000, 500), &AtomicBool::new(false));
        assert!(results.iter().all(CommandResult::success));
    }

    #[test]
    fn run_all_cancelled_marks_the_rest() {
        let cancel = AtomicBool::new(false);
        let specs = vec![CommandSpec::new("sleep", &["100"]); 6];
        let results = thread::scope(|s| {
            s.spawn(|| {
                thread::sleep(Duration::from_millis(300));
                cancel.store(true, Ordering::Relaxed);
            });
            run_all(&specs, 2, &opts(30_000, 500), &cancel)
        });
        assert_eq!(results.len(), 6);
        assert!(results.iter().all(|r| r.status == Status::Cancelled));
    }

    #[test]
    fn run_with_input_feeds_stdin() {
        let cancel = AtomicBool::new(false);
        let spec = CommandSpec::new("cat", &[]);
        let r = run_with_input(&spec, Some(b"hello\nworld"), &opts(5_000, 500), &cancel);
        assert_eq!(r.status, Status::Exited(0));
        assert_eq!(r.stdout, b"hello\nworld");
        // Larger than any pipe buffer, in both directions at once.
        let big: Vec<u8> = (0..4_000_000u32).map(|i| (i % 251) as u8).collect();
        let r = run_with_input(&spec, Some(&big), &opts(20_000, 500), &cancel);
        assert_eq!(r.status, Status::Exited(0));
        assert!(r.stdout == big);
        // A child that does not read its input still finishes.
        let r = run_with_input(
            &CommandSpec::new("true", &[]),
            Some(&big),
            &opts(5_000, 500),
            &cancel,
        );
        assert_eq!(r.status, Status::Exited(0));
    }

    #[test]
    fn status_display() {
        assert_eq!(Status::Exited(1).to_string(), "exit 1");
        assert_eq!(Status::Signaled(9).to_string(), "killed by signal 9");
        assert_eq!(Status::TimedOut.to_string(), "timed out");
        assert_eq!(Status::Cancelled.to_string(), "cancelled");
        assert_eq!(Status::Absent.to_string(), "not installed");
        assert_eq!(
            Status::SpawnFailed("Permission denied".into()).to_string(),
            "could not start: Permission denied"
        );
    }

    #[test]
    fn spec_display_quotes_like_a_shell() {
        assert_eq!(
            CommandSpec::new("ip", &["-j", "addr"]).display(),
            "ip -j addr"
        );
        assert_eq!(
            CommandSpec::new("sh", &["-c", "echo 'hi' $X", ""]).display(),
            r#"sh -c 'echo '\''hi'\'' $X' ''"#
        );
        assert_eq!(
            CommandSpec::new("rclone", &["copy", "/a b", "remote:x/y"]).display(),
            "rclone copy '/a b' remote:x/y"
        );
    }

    #[test]
    fn stderr_tail_takes_last_chars() {
        let mut r = without_output(Status::Exited(1), Instant::now());
        r.stderr = b"  first line\nsecond line\n\n".to_vec();
        assert_eq!(r.stderr_tail(100), "first line\nsecond line");
        assert_eq!(r.stderr_tail(4), "line");
        assert_eq!(r.stderr_tail(5), "line");
        assert_eq!(r.stderr_tail(0), "");
        r.stderr = "ünïcödé\u{fffd}\n".as_bytes().to_vec();
        assert_eq!(r.stderr_tail(3), "dé\u{fffd}");
        r.stderr = vec![b'a', 0xff, b'b'];
        assert_eq!(r.stderr_tail(10), "a\u{fffd}b");
    }

    #[test]
    fn defaults() {
        let o = RunOptions::default();
        assert_eq!(o.timeout, Duration::from_secs(30));
        assert_eq!(o.grace, Duration::from_secs(2));
        assert_eq!(o.max_output, 64 << 20);
    }
}
