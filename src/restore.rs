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
pub mod merge;
pub mod netapply;
pub mod nic;
pub mod path;
pub mod plan;
pub mod recovery;
pub mod rename;
pub mod rewrite;
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
    /// `--nic OLD=NEW`: interface names for the NIC remap.
    pub nic: Vec<(String, String)>,
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
    /// Files written with other content than the archive's ([`rewrite`]), by archive path.
    pub rewritten: HashMap<Vec<u8>, Vec<u8>>,
    /// Per rewritten file (host path as shown, why), and the rewriters' notes and blockers.
    pub rewrites: Vec<(String, String)>,
    /// A rewriter's file notes only when this run has a step for one of their files.
    pub notes: Vec<String>,
    /// Only those whose file this run would write.
    pub blockers: Vec<rewrite::Blocker>,
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
    let mut scan = scan::scan(
        &req.archive,
        &|p, size| {
            !extract
                && size <= plan::DIFF_MAX
                && (held_rules.is_held(p) || rewrite::wants(rewrite::REWRITERS, p))
        },
        cancel,
    )?;
    let is_safety = scan.meta.purpose == safety::PURPOSE;
    let rewriting = !extract && !is_safety;
    let rules = Rules::new(
        req.only.clone(),
        req.paths.clone(),
        !extract && !is_safety,
        extract,
        pve,
    )
    .map_err(RestoreError::Usage)?;
    let mut wanted =
        plan::wanted_from_index(&scan.index, req.map_node.as_ref()).map_err(RestoreError::Usage)?;
    // Every entry is in `wanted` now: the parsed index entries, the largest thing a restore of many files
    // holds (about 400 bytes each), go before the plan is made.
    scan.index.entries = Vec::new();
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
                let content = rewriting && rewrite::wants(rewrite::REWRITERS, &w.archive_path);
                (&w.path, size, content || rules.is_held(&w.path))
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
    let mut done = Rewrites::default();
    if rewriting {
        let (w, o, c) = (&mut wanted, &mut observed, &mut scan.captured);
        done = rewrites(rewrite::REWRITERS, req, &rules, w, o, c)?;
    }
    let mut plan = plan::plan(&wanted, &observed, &rules, &scan.captured, &absent);
    // A rewritten file, held or written, is shown as a diff of the target's version against the rewritten
    // content (a held one replaces the plan's diff against the archive's content).
    for s in plan.steps.iter_mut() {
        let Some(w) = s.wanted.map(|i| &wanted[i]) else {
            continue;
        };
        let Some(new) = done.content.get(&w.archive_path) else {
            continue;
        };
        if !(s.action.writes() || s.action == plan::Action::Held) {
            continue;
        }
        match observed.get(&w.path) {
            Some(Observed::File {
                content: Some(c), ..
            }) => s.diff = Some(plan::file_diff(&w.path, Some(c), new, true)),
            None => s.diff = Some(plan::file_diff(&w.path, None, new, true)),
            // Too large to keep, or not a file: the step's line (and a held file's note) says what changes.
            _ => {}
        }
    }
    let written: std::collections::HashSet<&[u8]> = plan
        .writes()
        .filter_map(|s| Some(wanted[s.wanted?].archive_path.as_slice()))
        .collect();
    done.outcome
        .blockers
        .retain(|b| written.contains(b.archive_path.as_slice()));
    // Notes about files this run has no step for (not selected) are left out.
    let stepped: std::collections::HashSet<&[u8]> = plan
        .steps
        .iter()
        .filter_map(|s| Some(wanted[s.wanted?].archive_path.as_slice()))
        .collect();
    for n in std::mem::take(&mut done.outcome.file_notes) {
        let selected = n
            .archive_paths
            .iter()
            .any(|p| stepped.contains(p.as_slice()));
        if selected && !done.outcome.notes.contains(&n.text) {
            done.outcome.notes.push(n.text);
        }
    }
    // Only the rewritten files this run selected are worth naming.
    let planned: std::collections::HashSet<String> = plan.steps.iter().map(|s| s.shown()).collect();
    done.shown.retain(|(shown, _)| planned.contains(shown));
    Ok(Prepared {
        archive: req.archive.clone(),
        meta: scan.meta,
        wanted,
        plan,
        target,
        map_node: req.map_node.clone(),
        mode: req.mode,
        rewritten: done.content,
        rewrites: done.shown,
        notes: done.outcome.notes,
        blockers: done.outcome.blockers,
    })
}

#[derive(Debug, Default)]
struct Rewrites {
    content: HashMap<Vec<u8>, Vec<u8>>,
    shown: Vec<(String, String)>,
    outcome: rewrite::Outcome,
}

/// Run the rewriters over the captured archive bytes (checked against the index first) and the target's,
/// then make `wanted`, `observed` and `captured` describe the rewritten content, so the plan compares and
/// diffs what will really be written.
fn rewrites(
    rewriters: &[rewrite::Rewriter],
    req: &Request,
    rules: &Rules,
    wanted: &mut [Wanted],
    observed: &mut HashMap<Vec<u8>, Observed>,
    captured: &mut HashMap<Vec<u8>, Vec<u8>>,
) -> Result<Rewrites, RestoreError> {
    let by_archive: HashMap<Vec<u8>, usize> = wanted
        .iter()
        .enumerate()
        .map(|(i, w)| (w.archive_path.clone(), i))
        .collect();
    for (p, bytes) in captured
        .iter()
        .filter(|(p, _)| rewrite::wants(rewriters, p))
    {
        let w = by_archive.get(p).map(|&i| &wanted[i]);
        if let Some(expected) = w.and_then(|w| w.sha256.as_ref())
            && crate::archive::sha256_hex(bytes) != *expected
        {
            return Err(RestoreError::Damaged {
                archive: req.archive.display().to_string(),
                why: format!("/{}: its content does not match the index", path::show(p)),
            });
        }
    }
    let target: HashMap<Vec<u8>, Vec<u8>> = observed
        .iter()
        .filter_map(|(p, o)| match o {
            Observed::File {
                content: Some(c), ..
            } => Some((p.clone(), c.clone())),
            _ => None,
        })
        .collect();
    let paths: Vec<Vec<u8>> = wanted.iter().map(|w| w.archive_path.clone()).collect();
    let selected: Vec<Vec<u8>> = (wanted.iter())
        .filter(|w| rules.selects(&w.category, &w.path))
        .map(|w| w.archive_path.clone())
        .collect();
    let ctx = rewrite::Context {
        archive: captured,
        target: &target,
        paths: &paths,
        selected: &selected,
        root: &req.target,
        map_node: req.map_node.as_ref(),
        nic: &req.nic,
    };
    let outcome = rewrite::run_all(rewriters, &ctx).map_err(RestoreError::Usage)?;
    let mut done = Rewrites::default();
    for f in &outcome.files {
        let Some(w) = by_archive.get(&f.archive_path).map(|&i| &mut wanted[i]) else {
            continue;
        };
        if w.kind != Kind::File || captured.get(&f.archive_path) == Some(&f.content) {
            continue;
        }
        w.size = f.content.len() as u64;
        w.sha256 = Some(crate::archive::sha256_hex(&f.content));
        // The target's hash was taken only if its size matched the archive's original size.
        if let Some(Observed::File {
            size,
            sha256,
            content,
            ..
        }) = observed.get_mut(&w.path)
        {
            *sha256 = content
                .as_ref()
                .filter(|_| *size == w.size)
                .map(|c| crate::archive::sha256_hex(c));
        }
        captured.insert(f.archive_path.clone(), f.content.clone());
        done.content
            .insert(f.archive_path.clone(), f.content.clone());
        done.shown.push((w.shown(), f.why.clone()));
    }
    done.outcome = outcome;
    Ok(done)
}

/// A run that would write a file a rewriter blocks is refused as a whole (exit 2; `--dry-run` shows why).
pub fn check_blockers(p: &Prepared) -> Result<(), RestoreError> {
    if p.blockers.is_empty() {
        return Ok(());
    }
    let why: Vec<String> = p.blockers.iter().map(|b| b.why.clone()).collect();
    Err(RestoreError::Usage(format!(
        "refusing to restore, nothing was written: {}",
        why.join("; ")
    )))
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
    check_blockers(p)?;
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
        &p.rewritten,
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

#[cfg(test)]
mod tests {
    use super::*;
    use rewrite::{Outcome as Rewritten, Rewriter};

    fn upper(c: &rewrite::Context) -> Result<Rewritten, String> {
        let files = c.archive.iter().map(|(p, b)| rewrite::Rewritten {
            archive_path: p.clone(),
            content: b.to_ascii_uppercase(),
            why: "upper".into(),
        });
        Ok(Rewritten {
            files: files.collect(),
            ..Default::default()
        })
    }

    const UPPER: &[Rewriter] = &[Rewriter {
        name: "upper",
        wants: |p| p == b"etc/hostname",
        run: upper,
    }];

    fn req() -> Request {
        Request {
            archive: "a.tar.zst".into(),
            target: "/nonexistent".into(),
            mode: Mode::Restore,
            only: Vec::new(),
            paths: Vec::new(),
            map_node: None,
            nic: Vec::new(),
            pve: Some(PveWrite::Plain),
        }
    }

    fn wanted(content: &[u8]) -> Vec<Wanted> {
        let file = |p: &str, c: &[u8]| plan::tests::file(p, "network", c);
        vec![file("etc/hostname", content), file("etc/hosts", b"x")]
    }

    /// A target file owned by root, group `gid`, its content read (not hashed: the size decides that).
    fn on_target(c: &[u8], mode: u32, gid: u32) -> Observed {
        Observed::File {
            mode,
            uid: 0,
            gid,
            size: c.len() as u64,
            sha256: None,
            content: Some(c.to_vec()),
        }
    }

    /// [`rewrites`] for a restore of everything.
    fn rewrite_all(
        rewriters: &[rewrite::Rewriter],
        w: &mut [Wanted],
        observed: &mut HashMap<Vec<u8>, Observed>,
        captured: &mut HashMap<Vec<u8>, Vec<u8>>,
    ) -> Result<Rewrites, RestoreError> {
        let everything = Rules::new(Vec::new(), Vec::new(), false, false, PveWrite::Plain);
        rewrites(
            rewriters,
            &req(),
            &everything.unwrap(),
            w,
            observed,
            captured,
        )
    }

    #[test]
    fn a_rewrite_makes_the_plan_see_the_new_content() {
        let mut w = wanted(b"due\n");
        let target_file = |c: &[u8]| on_target(c, 0o644, 0);
        let mut observed = HashMap::from([(b"etc/hostname".to_vec(), target_file(b"DUE\n"))]);
        let mut captured = HashMap::from([(b"etc/hostname".to_vec(), b"due\n".to_vec())]);
        let done = rewrite_all(UPPER, &mut w, &mut observed, &mut captured).unwrap();
        let new = crate::archive::sha256_hex(b"DUE\n");
        assert_eq!((w[0].size, w[0].sha256.as_ref()), (4, Some(&new)));
        assert_eq!(
            w[1],
            wanted(b"due\n")[1],
            "a file no rewriter touched is as it was"
        );
        let Some(Observed::File { sha256, .. }) = observed.get(b"etc/hostname".as_slice()) else {
            panic!()
        };
        assert_eq!(
            sha256.as_ref(),
            Some(&new),
            "the target now counts as the same"
        );
        assert_eq!(
            captured[b"etc/hostname".as_slice()],
            b"DUE\n",
            "the diff shows the rewrite"
        );
        assert_eq!(done.content[b"etc/hostname".as_slice()], b"DUE\n");
        assert_eq!(done.shown, [("/etc/hostname".into(), "upper".into())]);
        // The plan over the rewritten entries: the target already has the rewritten content.
        let rules = Rules::new(Vec::new(), Vec::new(), false, false, PveWrite::Plain).unwrap();
        let p = plan::plan(&w[..1], &observed, &rules, &captured, &[]);
        assert_eq!(p.steps[0].action, plan::Action::Same);
    }

    #[test]
    fn a_rewritten_file_through_pmxcfs_is_compared_by_content_only() {
        const UPPER_PVE: &[Rewriter] = &[Rewriter {
            name: "upper",
            wants: |p| p == b"etc/pve/corosync.conf",
            run: upper,
        }];
        let path = b"etc/pve/corosync.conf".to_vec();
        let wanted = vec![Wanted {
            path: path.clone(),
            archive_path: path.clone(),
            category: "pve-cluster".into(),
            ..wanted(b"due\n").remove(0)
        }];
        // pmxcfs shows its own mode and owner (0640 root:www-data): never a reason to write.
        let pmxcfs = |c: &[u8]| on_target(c, 0o640, 33);
        let replace = plan::Action::Replace(vec![plan::Change::Content]);
        for (on_target, want) in [(&b"DUE\n"[..], plan::Action::Same), (b"due\n", replace)] {
            let mut w = wanted.clone();
            let mut observed = HashMap::from([(path.clone(), pmxcfs(on_target))]);
            let mut captured = HashMap::from([(path.clone(), b"due\n".to_vec())]);
            rewrite_all(UPPER_PVE, &mut w, &mut observed, &mut captured).unwrap();
            let rules = Rules::new(Vec::new(), Vec::new(), true, false, PveWrite::ThroughMount);
            let p = plan::plan(&w, &observed, &rules.unwrap(), &captured, &[]);
            assert_eq!(p.steps[0].action, want);
            assert!(p.steps[0].through_pmxcfs);
        }
    }

    #[test]
    fn archive_bytes_that_differ_from_the_index_are_damage_not_input() {
        let mut w = wanted(b"due\n");
        let mut captured = HashMap::from([(b"etc/hostname".to_vec(), b"tre\n".to_vec())]);
        let e = rewrite_all(UPPER, &mut w, &mut HashMap::new(), &mut captured).unwrap_err();
        assert!(matches!(e, RestoreError::Damaged { .. }), "{e}");
    }
}
