//! `restore` and `extract`: read the archive first, plan purely, write last.
//!
//! ```text
//! scan (pass 1: names, types, meta, index) ─► observe the target ─► plan (pure) ─► print / --dry-run
//!    ─► confirm ─► safety archive (written and verified) ─► apply (pass 2: hash-checked, atomic writes)
//!    ─► summary, follow-up commands (run with --apply-services)
//! ```
//!
//! `pmxcfs restore` (the documented offline config.db swap) lives in [`recovery`].

pub mod apply;
pub mod guard;
pub mod netapply;
pub mod path;
pub mod plan;
pub mod recovery;
pub mod safety;
pub mod scan;
pub mod target;

use crate::archive::format::{FORMAT_VERSION, Kind, Meta};
use crate::output::{Log, Progress};
use crate::preflight::{LockError, RunLock};
use crate::runner::{self, CommandSpec};
use apply::{ApplyOptions, ApplyReport};
use path::NodeMap;
use plan::{FollowUp, Observed, Plan, PveWrite, Rules, Wanted};
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use target::Target;

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Resolve(#[from] crate::store::ResolveError),
    #[error("{0}")]
    Usage(String),
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("refusing {archive}: entry {entry:?}: {why}; nothing was written")]
    Hostile {
        archive: String,
        entry: String,
        why: path::Hostile,
    },
    #[error("{archive} is damaged: {why}; nothing was written")]
    Damaged { archive: String, why: String },
    #[error("{archive} is not a proxkeep archive: {why}")]
    NotProxkeep { archive: String, why: String },
    #[error(
        "{archive} has format version {version}; this proxkeep reads up to version {FORMAT_VERSION}: use a newer proxkeep"
    )]
    TooNew { archive: String, version: u32 },
    #[error("refusing to restore: {0}")]
    Refused(String),
    #[error("safety archive not written, nothing was changed: {0}")]
    Safety(String),
    #[error(transparent)]
    Locked(#[from] LockError),
    #[error("interrupted before anything was written: nothing was changed")]
    Interrupted,
    #[error(transparent)]
    Pmxcfs(#[from] crate::pmxcfs::PmxcfsError),
    #[error("{0}")]
    Service(String),
}

impl RestoreError {
    pub fn io(action: &'static str, path: &Path, source: io::Error) -> RestoreError {
        RestoreError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    pub fn exit_code(&self) -> i32 {
        use crate::exit;
        match self {
            RestoreError::Resolve(_) | RestoreError::Usage(_) => exit::USAGE,
            RestoreError::Hostile { .. }
            | RestoreError::Damaged { .. }
            | RestoreError::NotProxkeep { .. } => exit::DAMAGED,
            RestoreError::Locked(LockError::Held { .. }) => exit::LOCKED,
            RestoreError::Locked(_) => exit::PREFLIGHT,
            RestoreError::Interrupted => exit::INTERRUPTED,
            _ => exit::FAILED,
        }
    }
}

/// `restore` writes what is selected onto a host tree; `extract` writes everything into an empty directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Restore,
    Extract,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub archive: PathBuf,
    pub target: PathBuf,
    pub mode: Mode,
    pub only: Vec<String>,
    pub paths: Vec<String>,
    pub map_node: Option<NodeMap>,
    /// How `/etc/pve` may be written; `None` decides from the target and the live mounts
    /// ([`guard::pve_verdict`]).
    pub pve: Option<PveWrite>,
}

/// Everything known before the first write.
#[derive(Debug)]
pub struct Prepared {
    pub archive: PathBuf,
    pub meta: Meta,
    pub wanted: Vec<Wanted>,
    pub plan: Plan,
    pub target: Target,
    pub map_node: Option<NodeMap>,
    pub mode: Mode,
}

impl Prepared {
    /// A safety archive being restored: it undoes an earlier restore, so nothing in it is held.
    pub fn is_safety_archive(&self) -> bool {
        self.meta.purpose == safety::PURPOSE
    }
}

/// Open (and for `extract`, create) the target and check it suits the mode; whether it is empty.
fn open_target(req: &Request) -> Result<(Target, bool), RestoreError> {
    if req.mode == Mode::Extract {
        match std::fs::symlink_metadata(&req.target) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // 0700 whatever the umask: the tree may hold secrets.
                crate::fsx::create_dir_all(&req.target, 0o700)
                    .map_err(|e| RestoreError::io("create", &req.target, e))?;
            }
            Err(e) => return Err(RestoreError::io("inspect", &req.target, e)),
            Ok(m) if m.file_type().is_symlink() => {
                return Err(RestoreError::Refused(format!(
                    "{} is a symlink; extract into a real directory",
                    req.target.display()
                )));
            }
            Ok(_) => {}
        }
    }
    let t = Target::open(&req.target)
        .map_err(|e| RestoreError::io("open the target directory", &req.target, e))?;
    let empty = t
        .is_empty()
        .map_err(|e| RestoreError::io("list", &req.target, e))?;
    if req.mode == Mode::Extract && !empty {
        return Err(RestoreError::Refused(format!(
            "{} is not empty: extract only writes into an empty or new directory, never over existing files",
            req.target.display()
        )));
    }
    Ok((t, empty))
}

/// Pass 1, the target's state, and the plan. Writes nothing (`extract` may create its empty directory).
pub fn prepare(req: &Request, cancel: &AtomicBool) -> Result<Prepared, RestoreError> {
    let names = crate::catalog::category_names();
    if let Some(c) = req.only.iter().find(|c| !names.contains(&c.as_str())) {
        let names = names.join(", ");
        let why = format!("--only {c}: no such category (categories: {names})");
        return Err(RestoreError::Usage(why));
    }
    let (target, empty) = open_target(req)?;
    let extract = req.mode == Mode::Extract;
    let pve = req.pve.unwrap_or_else(|| {
        let root = crate::host::Root::new(&req.target);
        let mounted = guard::pmxcfs_mounted(&crate::fsx::mounts(), "/etc/pve");
        guard::pve_verdict(root.is_system_root(), mounted)
    });
    // The archive says whether it is a safety archive only in meta.json; held files are captured (for
    // their diffs) by name in pass 1 either way.
    let held_rules =
        Rules::new(Vec::new(), Vec::new(), true, false, pve).map_err(RestoreError::Usage)?;
    let scan = scan::scan(
        &req.archive,
        &|p, size| !extract && size <= plan::DIFF_MAX && held_rules.is_held(p),
        cancel,
    )?;
    let is_safety = scan.meta.purpose == safety::PURPOSE;
    let rules = Rules::new(
        req.only.clone(),
        req.paths.clone(),
        !extract && !is_safety,
        extract,
        pve,
    )
    .map_err(RestoreError::Usage)?;
    let wanted =
        plan::wanted_from_index(&scan.index, req.map_node.as_ref()).map_err(RestoreError::Usage)?;
    if let Some(m) = &req.map_node {
        let old = format!("etc/pve/nodes/{}", m.old);
        if !wanted.iter().any(|w| w.archive_path == old.as_bytes()) {
            let nodes: Vec<String> = wanted
                .iter()
                .filter_map(|w| w.archive_path.strip_prefix(b"etc/pve/nodes/"))
                .filter(|n| !n.contains(&b'/'))
                .map(path::show)
                .collect();
            return Err(RestoreError::Usage(format!(
                "--map-node: the archive has no /etc/pve/nodes/{} (it has: {})",
                m.old,
                if nodes.is_empty() {
                    "none".into()
                } else {
                    nodes.join(", ")
                }
            )));
        }
    }
    let absent = safety::absent_paths(&scan.meta, &scan.index);
    let mut observed: HashMap<Vec<u8>, Observed> = HashMap::new();
    if !empty {
        let mut walker = target.walker();
        let from_archive = wanted
            .iter()
            .filter(|w| !w.internal() || rules.include_internal)
            .map(|w| {
                let size = (w.kind == Kind::File).then_some(w.size);
                (&w.path, size, rules.is_held(&w.path))
            });
        for (p, size, held) in from_archive.chain(absent.iter().map(|(_, p)| (p, None, false))) {
            if cancel.load(Ordering::Relaxed) {
                return Err(RestoreError::Interrupted);
            }
            let o = target::observe(&mut walker, p, size, held);
            if o != Observed::Missing {
                observed.insert(p.clone(), o);
            }
        }
    }
    let plan = plan::plan(&wanted, &observed, &rules, &scan.captured, &absent);
    Ok(Prepared {
        archive: req.archive.clone(),
        meta: scan.meta,
        wanted,
        plan,
        target,
        map_node: req.map_node.clone(),
        mode: req.mode,
    })
}

#[derive(Debug, Clone)]
pub struct Execute {
    /// Where the safety archive goes (`None`: `--no-safety-backup`, or `extract`).
    pub safety_dir: Option<PathBuf>,
    /// `[encryption]` of the config: the safety archive holds the same secrets as a backup.
    pub encryption: Option<crate::config::EncryptionConfig>,
    /// `[retention] keep_safety`: safety archives of the host kept after a new one is written.
    pub keep_safety: u32,
    /// The run lock (a restore must not race a backup); `None` for `extract`.
    pub lock_file: Option<PathBuf>,
    pub now: jiff::Timestamp,
    pub apply: ApplyOptions,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub safety_archive: Option<PathBuf>,
    pub report: ApplyReport,
    pub follow_ups: Vec<FollowUp>,
}

/// Safety archive, then the writes. Refuses a plan with conflicts (nothing is written then).
pub fn execute(
    p: &Prepared,
    how: &Execute,
    log: &Log,
    progress: &dyn Progress,
    cancel: &AtomicBool,
) -> Result<Outcome, RestoreError> {
    check_conflicts(&p.plan)?;
    let host = || crate::host::hostname(&crate::host::Root::new(&p.target.dir));
    let _lock = how
        .lock_file
        .as_ref()
        .map(|l| RunLock::acquire(l, &host()))
        .transpose()?;
    let mut safety_archive = None;
    let (created, changed): (Vec<&plan::Step>, Vec<_>) = p
        .plan
        .steps
        .iter()
        .filter(|s| s.action.changes())
        .partition(|s| s.action == plan::Action::Create);
    // Nothing replaced or removed: there is nothing to save.
    if let Some(dir) = &how.safety_dir
        && !changed.is_empty()
    {
        progress.phase("safety archive");
        safety_archive = Some(safety::write(
            &p.meta.host,
            &p.target.dir,
            &changed,
            &created,
            dir,
            how.encryption.as_ref(),
            how.now,
            log,
            cancel,
        )?);
        // `[retention] keep_safety`: older safety archives of this host go, so they never pile up.
        match crate::store::safety::prune(dir, &p.meta.host, how.keep_safety, false) {
            Ok(plan) => plan
                .iter()
                .filter(|(_, d)| d.is_remove())
                .for_each(|(f, _)| {
                    log.info(&format!(
                        "removed safety archive {} (keep_safety {})",
                        f.file, how.keep_safety
                    ))
                }),
            Err(e) => log.warn(&format!("keep_safety: {}: {e}", dir.display())),
        }
    }
    if cancel.load(Ordering::Relaxed) {
        return Err(RestoreError::Interrupted);
    }
    let report = apply::apply(
        &p.archive,
        &p.target,
        &p.wanted,
        &p.plan,
        p.map_node.as_ref(),
        &how.apply,
        cancel,
        progress,
    );
    let follow_ups = if p.mode == Mode::Restore {
        plan::follow_ups(report.done.iter().map(|d| d.path.as_str()))
    } else {
        Vec::new()
    };
    Ok(Outcome {
        safety_archive,
        report,
        follow_ups,
    })
}

/// A plan with conflicts is refused as a whole, with every reason (nothing is written then).
pub fn check_conflicts(plan: &Plan) -> Result<(), RestoreError> {
    let conflicts: Vec<String> = plan
        .conflicts()
        .filter_map(|s| match &s.action {
            plan::Action::Conflict(why) => Some(format!("{}: {why}", s.shown())),
            _ => None,
        })
        .collect();
    if conflicts.is_empty() {
        return Ok(());
    }
    let mut msg = String::new();
    if plan.pve_refused > 0 {
        msg.push_str(
            "/etc/pve is not mounted (pmxcfs is down): files written there would be hidden by the mount and never \
             reach config.db. Start pve-cluster and restore again (files are then written through pmxcfs), or \
             put the whole database back with `proxkeep pmxcfs restore ARCHIVE`; to restore the rest, leave \
             /etc/pve out with --only/--path. ",
        );
    }
    let (n, shown) = (conflicts.len(), first_of(&conflicts, 10));
    msg.push_str(&format!("{n} entries cannot be written safely: {shown}"));
    Err(RestoreError::Refused(msg))
}

fn first_of(items: &[String], n: usize) -> String {
    let mut s = items[..items.len().min(n)].join("; ");
    if items.len() > n {
        s.push_str(&format!("; and {} more", items.len() - n));
    }
    s
}

/// The result of one follow-up command run by `--apply-services`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Applied {
    pub command: String,
    pub status: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stderr: String,
}

/// Run the automatic follow-ups in order, each with `timeout` (then SIGTERM, then SIGKILL to its process
/// group: a hanging `ifreload` never hangs the restore). Stops at the first failure or on cancel.
pub fn run_follow_ups(
    follow_ups: &[FollowUp],
    timeout: Duration,
    log: &Log,
    cancel: &AtomicBool,
) -> Vec<Applied> {
    let opts = recovery::run_opts(timeout);
    let mut out = Vec::new();
    for f in follow_ups.iter().filter(|f| f.automatic) {
        let args: Vec<&str> = f.command[1..].iter().map(String::as_str).collect();
        let spec = CommandSpec::new(&f.command[0], &args);
        log.info(&format!("running {}", spec.display()));
        let r = runner::run(&spec, &opts, cancel);
        let ok = r.success();
        let status = match &r.status {
            runner::Status::TimedOut => recovery::killed(timeout),
            s => s.to_string(),
        };
        out.push(Applied {
            command: spec.display(),
            status,
            ok,
            stderr: r.stderr_tail(500),
        });
        if !ok {
            break;
        }
    }
    out
}
