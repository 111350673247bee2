//! The network journeys: `restore --apply-network` (stage, check, arm, apply, health checks), `network
//! confirm`, `network status` and `network rollback` (the worker that outlives the admin's session, and the
//! rollback by hand). The sequence and its state are decided in `restore::netapply`; this module does it.

use crate::config::Config;
use crate::exit;
use crate::fsx;
use crate::host::Root;
use crate::notify::report::{Report, RunInfo};
use crate::output::Log;
use crate::restore::netapply::{
    self, Check, CheckInputs, CheckResult, Due, FileState, Mechanism, State, Status,
};
use crate::restore::{Prepared, guard};
use crate::runner::{self, CommandSpec, RunOptions};
use serde::Serialize;
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use store::Store;

mod store;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{0}")]
    Usage(String),
    #[error("the new network files fail `{command}`; nothing was changed:\n{message}")]
    Syntax { command: String, message: String },
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{0}")]
    Failed(String),
}

impl NetError {
    pub fn exit_code(&self) -> i32 {
        match self {
            NetError::Usage(_) | NetError::Syntax { .. } => exit::USAGE,
            _ => exit::FAILED,
        }
    }
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> NetError {
    let path = path.to_path_buf();
    move |source| NetError::Io {
        action,
        path,
        source,
    }
}

/// One file the restore plan would write, with its content as apply would write it.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Host path (`/etc/network/interfaces`).
    pub path: String,
    pub content: Vec<u8>,
    pub mode: u32,
}

/// A directory the plan creates: host path and mode.
pub type NewDir = (String, u32);

/// How the rollback worker is started: this binary, with the same root and config.
#[derive(Debug, Clone)]
pub struct Worker {
    pub exe: PathBuf,
    pub config: Option<PathBuf>,
}

impl Worker {
    fn args(&self, root: &Path, deadline: i64) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        if let Some(c) = &self.config {
            a.extend(["--config".into(), c.display().to_string()]);
        }
        a.extend(["--root".into(), root.display().to_string()]);
        a.extend(["network", "rollback", "--at"].map(String::from));
        a.push(deadline.to_string());
        a
    }
}

pub struct ApplyRequest<'a> {
    pub root: &'a Root,
    pub archive: String,
    pub files: Vec<NewFile>,
    /// Directories the plan creates (host path, mode), made before the files go in.
    pub dirs: Vec<NewDir>,
    pub rollback_after: Duration,
    pub dns_name: String,
    pub worker: Worker,
    pub config: &'a Config,
    /// Unix seconds (for `--dry-run`'s preview; the apply arms with the real clock).
    pub now: i64,
}

/// What `--dry-run` shows: the whole sequence, nothing touched.
#[derive(Debug, Serialize)]
pub struct Preview {
    pub staged: Vec<(String, String)>,
    pub rollback_copies: Vec<(String, Option<String>)>,
    pub syntax_check: Option<String>,
    pub mechanism: Mechanism,
    pub arm_command: String,
    pub state_file: PathBuf,
    pub apply_command: String,
    pub checks: Vec<String>,
    pub rollback_after_s: u64,
}

fn mechanism() -> Mechanism {
    let pid1 = std::fs::read_to_string("/proc/1/comm").is_ok_and(|c| c.trim() == "systemd");
    let usable = Path::new("/run/systemd/system").is_dir();
    let run = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("systemd-run").is_file()));
    Mechanism::choose(pid1 && usable, run)
}

fn arm_command(m: &Mechanism, req: &ApplyRequest, deadline: i64) -> CommandSpec {
    let worker = req.worker.args(req.root.dir(), deadline);
    let exe = req.worker.exe.display().to_string();
    match m {
        Mechanism::Systemd { unit } => {
            let mut a = vec![
                format!("--unit={unit}"),
                format!("--on-active={}s", req.rollback_after.as_secs()),
                "--timer-property=AccuracySec=1s".into(),
                exe,
            ];
            a.extend(worker);
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            CommandSpec::new("systemd-run", &a)
        }
        Mechanism::Detached { .. } => {
            let a: Vec<&str> = worker.iter().map(String::as_str).collect();
            CommandSpec::new(exe, &a)
        }
    }
}

fn display(argv: &[String]) -> String {
    let a: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    CommandSpec::new(&argv[0], &a).display()
}

fn host_path(root: &Root, p: &str) -> String {
    root.path(p).display().to_string()
}

fn check_inputs<'a>(
    req: &'a ApplyRequest,
    live: &'a Option<String>,
    coro: &'a Option<String>,
) -> CheckInputs<'a> {
    let new = req.files.iter().find(|f| f.path == netapply::INTERFACES);
    CheckInputs {
        interfaces: new
            .and_then(|f| std::str::from_utf8(&f.content).ok())
            .or(live.as_deref()),
        corosync: coro.as_deref(),
        node: "",
        dns_name: &req.dns_name,
        pmxcfs: None,
    }
}

fn checks(req: &ApplyRequest, pmxcfs_before: bool) -> Vec<Check> {
    let root = req.root;
    let live = root.read_text(netapply::INTERFACES);
    let coro = root
        .read_text("/etc/pve/corosync.conf")
        .or_else(|| root.read_text("/etc/corosync/corosync.conf"));
    let node = crate::host::hostname(root);
    let mut i = check_inputs(req, &live, &coro);
    i.node = &node;
    i.pmxcfs = pmxcfs_before.then(|| host_path(root, "/etc/pve"));
    netapply::checks(&i)
}

fn pmxcfs_running(root: &Root) -> bool {
    guard::pmxcfs_mounted(&fsx::mounts(), &host_path(root, "/etc/pve"))
}

fn has_interfaces(req: &ApplyRequest) -> bool {
    req.files.iter().any(|f| f.path == netapply::INTERFACES)
}

pub fn preview(req: &ApplyRequest) -> Preview {
    let root = req.root;
    let m = mechanism();
    let deadline = req.now + req.rollback_after.as_secs() as i64;
    let staged = req.files.iter();
    let staged = staged.map(|f| (f.path.clone(), netapply::staged_name(&f.path)));
    let copies = req.files.iter().map(|f| {
        let live = !fsx::is_absent(&root.path(&f.path));
        (
            f.path.clone(),
            live.then(|| netapply::rollback_name(&f.path)),
        )
    });
    let syntax = has_interfaces(req).then(|| {
        display(&netapply::syntax_check(&host_path(
            root,
            &netapply::staged_name(netapply::INTERFACES),
        )))
    });
    Preview {
        staged: staged.collect(),
        rollback_copies: copies.collect(),
        syntax_check: syntax,
        arm_command: arm_command(&m, req, deadline).display(),
        mechanism: m,
        state_file: root.path(netapply::STATE_PATH),
        apply_command: display(&netapply::reload()),
        checks: checks(req, pmxcfs_running(root))
            .iter()
            .map(Check::name)
            .collect(),
        rollback_after_s: req.rollback_after.as_secs(),
    }
}

fn opts(secs: u64) -> RunOptions {
    RunOptions {
        timeout: Duration::from_secs(secs),
        ..RunOptions::default()
    }
}

fn run(argv: &[String], secs: u64) -> Result<String, String> {
    let a: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
    let spec = CommandSpec::new(&argv[0], &a);
    // Never cancelled: a rollback runs to its end whatever signal came.
    let r = runner::run(&spec, &opts(secs), &AtomicBool::new(false));
    if r.success() {
        return Ok(String::from_utf8_lossy(&r.stdout).into_owned());
    }
    let tail = r.stderr_tail(2000);
    let out = if tail.is_empty() {
        String::from_utf8_lossy(&r.stdout).trim().to_string()
    } else {
        tail
    };
    Err(format!(
        "`{}`: {}{}",
        spec.display(),
        r.status,
        if out.is_empty() {
            String::new()
        } else {
            format!(": {out}")
        }
    ))
}

/// What `--apply-network` did (or `network confirm`, `network rollback`, `network status` found).
#[derive(Debug, Serialize)]
pub struct NetReport {
    pub status: &'static str,
    pub exit_code: i32,
    pub state_file: PathBuf,
    pub state: Option<State>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl NetReport {
    fn of(root: &Root, state: Option<State>, notes: Vec<String>) -> NetReport {
        let code = match state.as_ref().map(|s| s.status) {
            Some(Status::RolledBack | Status::RollbackFailed) => exit::FAILED,
            _ => exit::OK,
        };
        NetReport {
            status: state.as_ref().map_or("none", |s| s.status.name()),
            exit_code: code,
            state_file: root.path(netapply::STATE_PATH),
            state,
            notes,
        }
    }
}

fn remove_if_there(p: &Path) -> Result<(), NetError> {
    match std::fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err("remove", p)(e)),
        _ => Ok(()),
    }
}

/// Stage every new file and make the directories they need; returns the directories made.
fn stage(req: &ApplyRequest) -> Result<Vec<String>, NetError> {
    let mut made = Vec::new();
    for (dir, mode) in &req.dirs {
        let p = req.root.path(dir);
        if fsx::is_absent(&p) {
            fsx::create_dir_all(&p, *mode).map_err(io_err("create", &p))?;
            made.push(dir.clone());
        }
    }
    for f in &req.files {
        let p = req.root.path(netapply::staged_name(&f.path));
        fsx::write_atomic(&p, &f.content, f.mode).map_err(io_err("stage", &p))?;
    }
    Ok(made)
}

fn unstage(req: &ApplyRequest, made: &[String]) {
    for f in &req.files {
        let _ = remove_if_there(&req.root.path(netapply::staged_name(&f.path)));
    }
    made.iter()
        .rev()
        .for_each(|d| drop(std::fs::remove_dir(req.root.path(d))));
}

/// A copy of each live file beside it (content and mode); `None` where there is none.
fn keep_live(root: &Root, files: &[NewFile]) -> Result<Vec<FileState>, NetError> {
    let mut out = Vec::new();
    for f in files {
        let live = root.path(&f.path);
        let rollback = match std::fs::symlink_metadata(&live) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(io_err("inspect", &live)(e)),
            Ok(m) if !m.is_file() => {
                return Err(NetError::Usage(format!(
                    "{} is not a plain file: not applied",
                    live.display()
                )));
            }
            Ok(m) => {
                use std::os::unix::fs::PermissionsExt;
                let copy = netapply::rollback_name(&f.path);
                let data = std::fs::read(&live).map_err(io_err("read", &live))?;
                let to = root.path(&copy);
                fsx::write_atomic(&to, &data, m.permissions().mode() & 0o7777)
                    .map_err(io_err("write", &to))?;
                Some(copy)
            }
        };
        out.push(FileState {
            path: f.path.clone(),
            rollback,
        });
    }
    Ok(out)
}

/// The worker's stderr: the run log (`<log_dir>/network.log`), or nowhere when it cannot be opened.
fn worker_log(config: &Config) -> Stdio {
    let path = config.log_dir.join("network.log");
    let _ = fsx::append_private(&path, b"");
    let f = std::fs::OpenOptions::new().append(true).open(&path);
    f.map_or_else(|_| Stdio::null(), Stdio::from)
}

/// Start the rollback worker (or the systemd timer); the pid of a detached worker.
fn arm(m: &Mechanism, req: &ApplyRequest, deadline: i64) -> Result<Mechanism, NetError> {
    let spec = arm_command(m, req, deadline);
    match m {
        Mechanism::Systemd { .. } => {
            let mut argv = vec![spec.program.clone()];
            argv.extend(spec.args.clone());
            run(&argv, 30)
                .map_err(|e| NetError::Failed(format!("cannot arm the rollback: {e}")))?;
            Ok(m.clone())
        }
        Mechanism::Detached { .. } => {
            let mut cmd = Command::new(&spec.program);
            cmd.args(&spec.args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(worker_log(req.config));
            // A session of its own: the admin's SSH session ending (SIGHUP to its process group and session)
            // does not reach it.
            // SAFETY: setsid is async-signal-safe, and nothing else runs between fork and exec.
            unsafe {
                cmd.pre_exec(|| rustix::process::setsid().map(drop).map_err(io::Error::from));
            }
            let child = cmd.spawn().map_err(|e| {
                NetError::Failed(format!(
                    "cannot start the rollback worker {}: {e}",
                    spec.display()
                ))
            })?;
            Ok(Mechanism::Detached {
                pid: Some(child.id()),
            })
        }
    }
}

/// Apply the new network files with a timed rollback (see the module docs). Returns the state as armed
/// (checks passed) or rolled back (`ifreload` or a check failed).
pub fn apply(req: &ApplyRequest, log: &Log) -> Result<NetReport, NetError> {
    let store = Store::new(req.root);
    let _lock = store.lock()?;
    if let Some(s) = store.read()?.filter(|s| s.status == Status::Armed) {
        let deadline = netapply::show_time(s.deadline);
        return Err(NetError::Usage(format!(
            "a network apply is still armed (rolled back at {deadline} unless confirmed): run `proxkeep network confirm` or `proxkeep network rollback` first"
        )));
    }
    let made = stage(req)?;
    if has_interfaces(req) {
        let staged = host_path(req.root, &netapply::staged_name(netapply::INTERFACES));
        let argv = netapply::syntax_check(&staged);
        if let Err(message) = run(&argv, 60) {
            unstage(req, &made);
            return Err(NetError::Syntax {
                command: display(&argv),
                message,
            });
        }
    }
    let files = keep_live(req.root, &req.files).inspect_err(|_| unstage(req, &made))?;
    let pmxcfs_before = pmxcfs_running(req.root);
    // The real clock: the worker and the timer measure the window with it.
    let now = unix_now();
    let deadline = now + req.rollback_after.as_secs() as i64;
    let mut state = State {
        status: Status::Armed,
        archive: req.archive.clone(),
        armed_at: now,
        deadline,
        mechanism: mechanism(),
        files,
        created_dirs: made,
        checks: Vec::new(),
        reason: None,
        ended_at: None,
        reported: false,
    };
    store.write(&state)?;
    state.mechanism = match arm(&state.mechanism, req, deadline) {
        Ok(m) => m,
        Err(e) => {
            // Nothing was moved yet: take back what this run made.
            unstage(req, &state.created_dirs);
            let copies = state.files.iter().filter_map(|f| f.rollback.as_ref());
            copies.for_each(|c| drop(remove_if_there(&req.root.path(c))));
            let _ = remove_if_there(&store.path);
            return Err(e);
        }
    };
    store.write(&state)?;
    log.info(&format!(
        "network rollback armed: {}, deadline {}",
        state.mechanism.describe(),
        netapply::show_time(deadline)
    ));
    if let Some(why) = go_live(req, &mut state, &store, pmxcfs_before)? {
        roll_back(req.root, req.config, &mut state, why, false, log)?;
    }
    Ok(NetReport::of(req.root, Some(state), Vec::new()))
}

/// Move the staged files into place, `ifreload -a`, the health checks (each recorded as it ends); why the
/// new network must be rolled back, if it must.
fn go_live(
    req: &ApplyRequest,
    state: &mut State,
    store: &Store,
    pmxcfs_before: bool,
) -> Result<Option<String>, NetError> {
    for f in &req.files {
        let from = req.root.path(netapply::staged_name(&f.path));
        let to = req.root.path(&f.path);
        if let Err(e) = std::fs::rename(&from, &to) {
            return Ok(Some(format!(
                "cannot move {} into place: {e}",
                to.display()
            )));
        }
    }
    if let Err(e) = run(&netapply::reload(), 120) {
        return Ok(Some(e));
    }
    for c in checks(req, pmxcfs_before) {
        let argv = c.command();
        let r = run(&argv, 15).and_then(|out| match c.passes(&out) {
            true => Ok(()),
            false => Err(format!("`{}`: no", display(&argv))),
        });
        state.checks.push(CheckResult {
            check: c.name(),
            ok: r.is_ok(),
            detail: r.err().unwrap_or_default(),
        });
        store.write(state)?;
    }
    let failed = state.checks.iter().find(|c| !c.ok);
    Ok(failed.map(|c| format!("health check failed: {}: {}", c.check, c.detail)))
}

fn unix_now() -> i64 {
    jiff::Timestamp::now().as_second()
}

/// Put every file back as it was, `ifreload -a`, record why; the caller holds the lock.
fn roll_back(
    root: &Root,
    config: &Config,
    state: &mut State,
    why: String,
    worker: bool,
    log: &Log,
) -> Result<(), NetError> {
    let mut failed = Vec::new();
    for f in &state.files {
        let live = root.path(&f.path);
        let r = match &f.rollback {
            // No copy while still armed: an earlier rollback put it back and was stopped before it
            // recorded so (only proxkeep makes and removes these copies).
            Some(copy) => match std::fs::rename(root.path(copy), &live) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                r => r.map_err(io_err("put back", &live)),
            },
            None => remove_if_there(&live),
        };
        if let Err(e) = r {
            failed.push(e.to_string());
        }
    }
    state
        .created_dirs
        .iter()
        .rev()
        .for_each(|d| drop(std::fs::remove_dir(root.path(d))));
    // The `ifreload` of a rollback that was stopped may still hold ifupdown2's lock: up to three tries.
    let mut reload = run(&netapply::reload(), 120);
    for _ in 0..2 {
        if reload.is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_secs(3));
        reload = run(&netapply::reload(), 120);
    }
    if let Err(e) = reload {
        failed.push(e);
    }
    let (status, reason) = if failed.is_empty() {
        (Status::RolledBack, why)
    } else {
        (
            Status::RollbackFailed,
            format!("{why}; the rollback failed: {}", failed.join("; ")),
        )
    };
    (state.status, state.reason, state.ended_at) = (status, Some(reason.clone()), Some(unix_now()));
    if !worker {
        disarm(&state.mechanism);
    }
    log.warn(&format!("network restore rolled back: {reason}"));
    // Told first: once the state file says so, the run log and the channels have it too.
    told(root, config, log, state);
    Store::new(root).write(state)
}

/// The run log line and the notification channels.
fn told(root: &Root, config: &Config, log: &Log, state: &State) {
    let line = state.notice().unwrap_or_default();
    let path = config.log_dir.join("network.log");
    let text = format!("{} {line}\n", jiff::Timestamp::now());
    if let Err(e) = fsx::append_private(&path, text.as_bytes()) {
        log.warn(&format!("cannot write {}: {e}", path.display()));
    }
    let facts = crate::host::HostFacts::detect(root);
    let started =
        jiff::Timestamp::from_second(state.armed_at).unwrap_or_else(|_| jiff::Timestamp::now());
    let run = RunInfo {
        host: facts.hostname,
        role: facts.role.to_string(),
        started,
        ended: jiff::Timestamp::now(),
    };
    let report = Report::failed(&run, exit::FAILED, line.clone(), vec![line]);
    for d in crate::notify::send_report(&config.notify, log, &report) {
        if !d.ok {
            log.warn(&d.line());
        }
    }
}

/// Stop the other side: the timer, or the detached worker (only if it is one: its command line says so).
fn disarm(m: &Mechanism) {
    match m {
        Mechanism::Systemd { unit } => {
            let argv = [
                "systemctl",
                "stop",
                &format!("{unit}.timer"),
                &format!("{unit}.service"),
            ]
            .map(String::from);
            let _ = run(&argv, 30);
        }
        Mechanism::Detached { pid: Some(pid) } if *pid != std::process::id() => {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let ours = cmdline.windows(17).any(|w| w == b"network\0rollback\0");
            if let (true, Some(p)) = (ours, rustix::process::Pid::from_raw(*pid as i32)) {
                let _ = rustix::process::kill_process(p, rustix::process::Signal::TERM);
            }
        }
        Mechanism::Detached { .. } => {}
    }
}

/// `network confirm`: keep the new network; the rollback copies go.
pub fn confirm(root: &Root) -> Result<NetReport, NetError> {
    let store = Store::new(root);
    let _lock = store.lock()?;
    let Some(mut state) = store.read()? else {
        return Err(NetError::Usage(format!(
            "nothing to confirm: no network apply recorded ({})",
            store.path.display()
        )));
    };
    match state.status {
        Status::Armed => {}
        Status::Confirmed => {
            return Ok(NetReport::of(
                root,
                Some(state),
                vec!["already confirmed".into()],
            ));
        }
        _ => {
            let why = state.notice().unwrap_or_default();
            return Err(NetError::Failed(format!("too late to confirm: {why}")));
        }
    }
    state.status = Status::Confirmed;
    state.ended_at = Some(unix_now());
    store.write(&state)?;
    disarm(&state.mechanism);
    for copy in state.files.iter().filter_map(|f| f.rollback.as_ref()) {
        remove_if_there(&root.path(copy))?;
    }
    Ok(NetReport::of(root, Some(state), Vec::new()))
}

/// `network rollback`: at a time (the worker: wait until then, and roll back unless confirmed first), or now.
/// When `rollback` rolls back.
#[derive(Debug, Clone)]
pub enum When {
    /// At this Unix time unless confirmed first (the worker, or the prompt whose deadline passed).
    At(i64),
    /// Now, for this reason.
    Now(String),
}

pub fn rollback(
    root: &Root,
    config: &Config,
    when: When,
    log: &Log,
    cancel: &AtomicBool,
) -> Result<NetReport, NetError> {
    let store = Store::new(root);
    loop {
        let lock = store.lock()?;
        let Some(mut state) = store.read()? else {
            return Err(NetError::Usage(format!(
                "nothing to roll back: no network apply recorded ({})",
                store.path.display()
            )));
        };
        let due = match &when {
            When::At(_) => netapply::due(&state, unix_now()),
            When::Now(why) if state.status == Status::Armed => Due::RollBack(why.clone()),
            When::Now(_) => Due::Done,
        };
        match due {
            Due::Done => {
                return Ok(NetReport::of(
                    root,
                    Some(state),
                    vec!["nothing armed: nothing was done".into()],
                ));
            }
            Due::RollBack(why) => {
                let timed = matches!(when, When::At(_));
                roll_back(root, config, &mut state, why, timed, log)?;
                return Ok(NetReport::of(root, Some(state), Vec::new()));
            }
            Due::Wait(_) => {
                drop(lock);
                if cancel.load(Ordering::Relaxed) {
                    return Ok(NetReport::of(
                        root,
                        Some(state),
                        vec!["stopped before the deadline".into()],
                    ));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

/// `network status`.
pub fn status(root: &Root) -> Result<NetReport, NetError> {
    let state = Store::new(root).read()?;
    // Armed past its deadline: the timer or worker is gone (a reboot ends both), nothing will roll it back.
    let overdue = state
        .as_ref()
        .is_some_and(|s| netapply::overdue(s, unix_now()));
    let note = "armed, but its deadline passed a minute ago and nothing rolled it back (a reboot ends the timer and \
                the worker): keep it with `proxkeep network confirm` or undo it with `proxkeep network rollback`";
    let mut r = NetReport::of(
        root,
        state,
        overdue.then(|| note.to_string()).into_iter().collect(),
    );
    r.exit_code = exit::OK;
    Ok(r)
}

/// The rollback notice, once: the first command after a rollback says it, later ones do not.
pub fn take_notice(root: &Root) -> Option<String> {
    let store = Store::new(root);
    if fsx::is_absent(&store.path) {
        return None;
    }
    // Never waits: while an apply or a rollback holds the lock, the news is not out yet anyway.
    let _lock = store
        .lock_how(rustix::fs::FlockOperation::NonBlockingLockExclusive)
        .ok()?;
    let mut state = store.read().ok()??;
    let notice = state.notice().filter(|_| !state.reported)?;
    state.reported = true;
    store.write(&state).ok()?;
    Some(notice)
}

/// The files and directories the plan would write, with their content read from the archive.
pub fn from_plan(p: &Prepared) -> Result<(Vec<NewFile>, Vec<NewDir>), NetError> {
    use crate::archive::format::Kind;
    let kind = |k: Kind| match k {
        Kind::File => "file",
        Kind::Dir => "dir",
        Kind::Symlink => "symlink",
    };
    let writes: Vec<_> = p.plan.writes().collect();
    let shown: Vec<(String, &str, &str)> = writes
        .iter()
        .map(|s| (s.shown(), s.category.as_str(), kind(s.kind)))
        .collect();
    let removals = p
        .plan
        .removals()
        .map(|s| (s.shown(), s.category.as_str(), "removal"));
    let all: Vec<_> = shown.iter().cloned().chain(removals).collect();
    netapply::refuse_selection(all.iter().map(|(p, c, k)| (p.as_str(), *c, *k)))
        .map_err(NetError::Usage)?;
    let (mut files, mut dirs) = (Vec::new(), Vec::new());
    for s in writes {
        let Some(w) = s.wanted.map(|i| &p.wanted[i]) else {
            continue;
        };
        if w.kind == Kind::Dir {
            dirs.push((s.shown(), w.mode));
            continue;
        }
        // What restore would write: the rewritten content (NIC remap, node rename) where there is one.
        let mut content = Vec::new();
        match p.rewritten.get(&w.archive_path) {
            Some(c) => content.clone_from(c),
            None => {
                let archive_path = crate::restore::path::show(&w.archive_path);
                crate::inspect::cat(&p.archive, &archive_path, &mut content).map_err(|e| {
                    NetError::Failed(format!(
                        "reading {archive_path} from {}: {e}",
                        p.archive.display()
                    ))
                })?;
            }
        }
        files.push(NewFile {
            path: s.shown(),
            content,
            mode: w.mode,
        });
    }
    Ok((files, dirs))
}
