//! `proxkeep backup`: scan → preflight → lock → one streaming pass into an archive [`Session`] (hidden
//! partial file → read-back verification → rename → sidecar) → copies and retention. Nothing visible exists
//! until the archive has been verified.

use crate::archive::format::{COMMANDS_DIR, CONFIG_DB_PATH, CommandRecord, Kind, Totals, Warning};
use crate::archive::name::ArchiveName;
pub use crate::archive::session::warning_text;
use crate::archive::session::{self, Finished, Session, SessionError, Spec, index_entry};
use crate::archive::writer::EntryHeader;
use crate::collect::{self, CategoryCount, Plan};
use crate::config::{Compression, Config};
use crate::crypt::Seal;
use crate::fsx::create_private;
use crate::host::{HostFacts, Root};
use crate::output::{Level, Log};
use crate::preflight::{self, Check, RunLock};
use crate::units::format_size;
use crate::{pmxcfs, runner};
use jiff::Timestamp;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// Everything a run needs from the outside world.
pub struct Context<'a> {
    pub root: Root,
    pub config: Config,
    pub log: &'a Log,
    pub cancel: &'static AtomicBool,
}

#[derive(Debug, Clone, Default)]
pub struct BackupOptions {
    pub dry_run: bool,
    pub dir: Option<PathBuf>,
    pub compression: Option<Compression>,
    pub level: Option<i32>,
    /// Start time (injected so tests and naming do not depend on the wall clock).
    pub now: Option<Timestamp>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("preflight failed: {}", .0.iter().filter(|c| !c.ok).map(|c| c.line()).collect::<Vec<_>>().join("; "))]
    Preflight(Vec<Check>),
    #[error(transparent)]
    Locked(#[from] preflight::LockError),
    #[error("interrupted: the partial archive was removed")]
    Interrupted,
    #[error("{0}")]
    Invalid(String),
    #[error("backup failed: {0}")]
    Failed(String),
}

impl BackupError {
    pub fn exit_code(&self) -> i32 {
        match self {
            BackupError::Preflight(_) => crate::exit::PREFLIGHT,
            BackupError::Locked(preflight::LockError::Held { .. }) => crate::exit::LOCKED,
            BackupError::Locked(_) => crate::exit::PREFLIGHT,
            BackupError::Interrupted => crate::exit::INTERRUPTED,
            BackupError::Invalid(_) => crate::exit::USAGE,
            BackupError::Failed(_) => crate::exit::FAILED,
        }
    }
}

impl From<SessionError> for BackupError {
    fn from(e: SessionError) -> Self {
        match e {
            SessionError::Interrupted => BackupError::Interrupted,
            SessionError::Failed(why) => BackupError::Failed(why),
        }
    }
}

fn fail(what: &str, e: impl std::fmt::Display) -> BackupError {
    BackupError::Failed(format!("{what}: {e}"))
}

/// The run's result, as printed by `--json`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct BackupReport {
    pub status: &'static str,
    pub exit_code: i32,
    pub dry_run: bool,
    pub host: String,
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub archive: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub size: u64,
    pub compression: String,
    pub level: i32,
    /// `age: 1 recipient (x25519)`, `age: passphrase (scrypt)`; absent for a plain archive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
    pub entries: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    pub commands: usize,
    pub pve_tree_from_db: bool,
    pub duration_ms: u64,
    pub categories: Vec<CategoryCount>,
    /// What each exclude removed from the collection.
    pub excluded: Vec<collect::Excluded>,
    pub checks: Vec<Check>,
    pub warnings: Vec<Warning>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_file: Option<PathBuf>,
    /// Local directory, secondaries and remotes: copies and retention.
    pub tiers: Vec<crate::store::tier::TierReport>,
}

impl BackupReport {
    fn set_totals(&mut self, t: &Totals) {
        self.entries = t.entries;
        self.files = t.files;
        self.dirs = t.dirs;
        self.symlinks = t.symlinks;
        self.bytes = t.bytes;
    }
}

/// Warnings about where the backup's own key material lives: a passphrase file that this backup collects
/// travels inside the archive it locks (and is useless there), one that others can read is no secret.
/// An SSH private key whose `.pub` names one of the recipients, both collected, is the same mistake.
fn key_warnings(
    ctx: &Context,
    enc: &crate::config::EncryptionConfig,
    seal: Option<&Seal>,
    plan: &Plan,
) -> Vec<Warning> {
    let mut out = Vec::new();
    let type_and_key = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let ssh: Vec<String> = recipients(seal, false)
        .iter()
        .map(|r| type_and_key(r))
        .collect();
    for item in plan.items.iter().filter(|i| {
        !ssh.is_empty()
            && i.kind == Kind::File
            && i.size < 16 * 1024
            && i.host_path.extension().is_some_and(|e| e == "pub")
    }) {
        let Ok(text) = fs::read_to_string(ctx.root.path(&item.host_path)) else {
            continue;
        };
        let private = item.host_path.with_extension("");
        let key = type_and_key(&text);
        if ssh.contains(&key) && plan.items.iter().any(|i| i.host_path == private) {
            let message = format!(
                "is the SSH key of recipient {key}: the key travels with the lock \
                 (use a key kept off this host, or add it to [collect] exclude)"
            );
            out.push(Warning::at(private.display(), message));
        }
    }
    let Some(p) = &enc.passphrase_file else {
        return out;
    };
    if collects(plan, &ctx.root, p) {
        let message = "the passphrase file is collected by this backup: \
                       the key travels with the lock \
                       (keep it outside the collected paths, or add it to collect.exclude)";
        out.push(Warning::at(p.display(), message));
    }
    if let Some(w) = crate::crypt::loose_permissions(p, "passphrase file") {
        out.push(Warning::at(p.display(), w));
    }
    out
}

/// Whether `plan` collects the file `p` (a host path, or one under the root).
pub fn collects(plan: &Plan, root: &Root, p: &Path) -> bool {
    let is_p = |i: &collect::Item| i.host_path == p || root.path(&i.host_path) == p;
    plan.items.iter().any(|i| i.kind == Kind::File && is_p(i))
}

/// The recipients of `seal` as they print: the X25519 ones, or the others (SSH keys).
fn recipients(seal: Option<&Seal>, x25519: bool) -> Vec<String> {
    let Some(Seal::Recipients(rs)) = seal else {
        return Vec::new();
    };
    let chosen = rs.iter().filter(|r| (r.kind() == "x25519") == x25519);
    chosen.map(|r| format!("{r:?}")).collect()
}

/// Compression and level: the options', else the config's (a compression other than the configured one
/// without a level takes its own default level).
fn compression_level(
    config: &Config,
    opts: &BackupOptions,
) -> Result<(Compression, i32), BackupError> {
    let compression = opts.compression.unwrap_or(config.compression.algorithm);
    let level = match (opts.level, opts.compression) {
        (Some(l), _) => l,
        (None, Some(c)) if c != config.compression.algorithm => c.default_level(),
        _ => config.compression.level,
    };
    let range = compression.level_range();
    if !range.contains(&level) {
        let (lo, hi) = range.into_inner();
        let why = format!("level {level} is out of range {lo}..={hi} for {compression}");
        return Err(BackupError::Invalid(why));
    }
    Ok((compression, level))
}

/// Preflight, in order: directories → free space → writability. A dry run creates nothing. Free space and
/// writability are checked only once the directories passed, unless `always`.
/// Free space one more archive needs: twice this host's newest one, or the collected files for a first backup.
pub(super) fn needed_space(
    backup_dir: &Path,
    host: &str,
    plan: &collect::Plan,
) -> (u64, &'static str) {
    let last = crate::store::list(backup_dir, Some(host)).ok();
    last.and_then(|l| Some(l.first()?.size)).map_or_else(
        || (plan.bytes(), "estimate: size of the collected files"),
        |s| (s.saturating_mul(2), "2 × the last archive"),
    )
}

pub(super) fn preflight_checks(
    config: &Config,
    backup_dir: &Path,
    create: bool,
    needed: (u64, &str),
    always: bool,
) -> Vec<Check> {
    let mut checks = vec![
        preflight::directory("backup directory", backup_dir, create),
        preflight::directory("log directory", &config.log_dir, create),
    ];
    if always || checks.iter().all(|c| c.ok) {
        checks.push(preflight::free_space(
            backup_dir,
            config.min_free_space,
            needed.0,
            needed.1,
        ));
        if backup_dir.is_dir() {
            checks.push(preflight::writable(backup_dir));
        }
    }
    checks
}

/// The size guard: a configuration backup is tens of MiB; far more means something unintended was swept in.
/// Fails above `[collect] max_input_size`, naming the largest trees with the exclude line that drops each.
pub(super) fn input_size(plan: &Plan, max: u64) -> Check {
    let (bytes, limit) = (format_size(plan.bytes()), format_size(max));
    if plan.bytes() <= max {
        return Check::pass(
            "input size",
            format!("{bytes} to collect (max_input_size {limit})"),
        );
    }
    let mut detail =
        format!("{bytes} to collect, above [collect] max_input_size ({limit}); the largest:");
    for (path, b) in plan.largest(10) {
        let path = path.display().to_string();
        detail.push_str(&format!(
            "\n    {path}  {}  exclude = [{path:?}]",
            format_size(b)
        ));
    }
    let fix =
        "exclude what is not configuration ([collect] exclude) or raise [collect] max_input_size";
    Check::fail("input size", detail, fix)
}

pub fn run(ctx: &Context, opts: &BackupOptions) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    let log = ctx.log;
    let config = &ctx.config;
    let (compression, level) = compression_level(config, opts)?;
    let backup_dir = opts.dir.as_ref().unwrap_or(&config.backup_dir);
    // Recipients and passphrase are read before anything is written: a backup configured for encryption
    // never falls back to a plain archive.
    let seal = config
        .encryption
        .as_ref()
        .map(crate::config::EncryptionConfig::seal)
        .transpose();
    let seal = seal.map_err(|e| BackupError::Invalid(format!("[encryption]: {e}")))?;

    let facts = HostFacts::detect(&ctx.root);
    let (host, role, root) = (&facts.hostname, facts.role, ctx.root.dir().display());
    log.info(&format!("host {host} role {role} (root {root})"));
    let mut plan = collect::scan_with(&ctx.root, &facts, config, opts.dir.as_deref());
    if let Some(enc) = &config.encryption {
        plan.warnings
            .extend(key_warnings(ctx, enc, seal.as_ref(), &plan));
    }

    // Name: start time, bumped past any existing archive of the same second. The stem names the run log
    // too, so a same-second archive of another compression must not share it.
    let pick_name = || {
        session::free_name(
            opts.now.unwrap_or_else(Timestamp::now),
            |t| {
                ArchiveName::new(&facts.hostname, facts.role, t, compression)
                    .encrypted(seal.is_some())
            },
            |n| {
                backup_dir.join(n.to_string()).exists()
                    || config.log_dir.join(format!("{}.log", n.stem())).exists()
            },
        )
    };
    let (name, _) = pick_name()?;
    let needed = needed_space(backup_dir, &facts.hostname, &plan);

    let mut report = BackupReport {
        status: "ok",
        dry_run: opts.dry_run,
        host: facts.hostname.clone(),
        role: facts.role.to_string(),
        compression: compression.to_string(),
        level,
        encryption: seal.as_ref().map(|s| s.describe()),
        commands: plan.commands.len(),
        pve_tree_from_db: plan.pve_tree_from_db,
        categories: plan.counts(),
        excluded: plan.excluded.clone(),
        checks: preflight_checks(config, backup_dir, !opts.dry_run, needed, false),
        ..Default::default()
    };
    let guard = input_size(&plan, config.collect.max_input_size);
    if opts.dry_run && !guard.ok {
        report.status = "warning";
        report.exit_code = crate::exit::WARNINGS;
        plan.warnings.push(Warning {
            path: None,
            message: guard.line().trim_start_matches("✗ input size: ").into(),
        });
    } else {
        report.checks.push(guard);
    }
    if let Some(bad) = report.checks.iter().find(|c| !c.ok) {
        // For the run's log tail (notifications); stderr gets it once, as the run's error.
        log.record(Level::Error, &bad.line());
        return Err(BackupError::Preflight(report.checks));
    }
    for c in &report.checks {
        log.debug(&c.line());
    }

    if opts.dry_run {
        report.set_totals(&Totals::of(plan.items.iter().map(|i| (i.kind, i.size))));
        report.warnings = plan.warnings.clone();
        report.archive = Some(backup_dir.join(name.to_string()));
        report.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }

    let _lock = RunLock::acquire(&config.lock_file, &facts.hostname)?;
    // A run that held the lock until now may have taken that name (same second): named again, under the lock.
    let (name, time) = pick_name()?;
    // Warnings of the run itself (run log, sidecar, verify state, tiers) come after the archive's own.
    let mut run_warnings = Vec::new();
    report.log_file = start_run_log(ctx, &name, &facts, backup_dir, &mut run_warnings);
    if let Some(s) = &seal {
        log.info(&format!("encrypting with {}", s.describe()));
    }
    let spec = Spec {
        facts: &facts,
        root: ctx.root.dir(),
        purpose: "backup",
        categories: plan.categories.clone(),
        pve_tree_from_db: false,
        compression,
        level,
        threads: config.compression.threads,
        seal: seal.as_ref(),
        progress: true,
    };
    let result = write_archive(ctx, &plan, backup_dir, name.to_string(), time, spec);
    if let Err(e) = &result {
        log.error(&e.to_string());
        log.detach();
    }
    let done = result?;

    report.archive = Some(done.path.clone());
    report.sha256 = Some(done.sha256.clone());
    report.size = done.bytes;
    report.set_totals(&done.index.totals);
    report.warnings = done.index.warnings;
    report.warnings.append(&mut run_warnings);
    // Copies and retention: a tier failure is a warning, never a failure of the backup.
    let (host, name) = (&facts.hostname, done.name.clone());
    report.tiers = distribute(ctx, backup_dir, host, name, &done.sha256, time);
    log_tiers(log, &mut report);
    report.duration_ms = started.elapsed().as_millis() as u64;
    if !report.warnings.is_empty() {
        report.status = "warning";
        report.exit_code = crate::exit::WARNINGS;
    }
    log.info(&format!(
        "archive {} written and verified: {} ({} {}), {} entries ({} files, {}), {} warnings, {:.1} s",
        done.path.display(),
        format_size(report.size),
        compression,
        level,
        report.entries,
        report.files,
        format_size(report.bytes),
        report.warnings.len(),
        report.duration_ms as f64 / 1000.0
    ));
    log.detach();
    Ok(report)
}

/// Attach the run log (`<stem>.log` in the log directory), say the run starts, sweep dead runs' partials and
/// orphan sidecars. A run log that cannot be written is a warning of the run.
fn start_run_log(
    ctx: &Context,
    name: &ArchiveName,
    facts: &HostFacts,
    backup_dir: &Path,
    warnings: &mut Vec<Warning>,
) -> Option<PathBuf> {
    let log = ctx.log;
    let log_path = ctx.config.log_dir.join(format!("{}.log", name.stem()));
    let attached = match create_private(&log_path) {
        Ok(f) => {
            log.attach(f);
            true
        }
        Err(e) => {
            let (path, message) = (
                log_path.display().to_string(),
                format!("cannot write the run log: {e}"),
            );
            session::warn(log, warnings, Some(path), message);
            false
        }
    };
    let (version, host, role) = (env!("CARGO_PKG_VERSION"), &facts.hostname, facts.role);
    log.info(&format!(
        "proxkeep {version} backup of {host} ({role}) starting"
    ));
    for removed in preflight::sweep_partials(backup_dir) {
        let shown = removed.display();
        log.info(&format!("removed partial file of a run that died: {shown}"));
    }
    for removed in crate::store::sweep_orphans(backup_dir) {
        let shown = removed.display();
        log.info(&format!(
            "removed orphan sidecar (its archive is gone): {shown}"
        ));
    }
    attached.then_some(log_path)
}

/// Log what the tiers did; their errors and the damaged archives they keep become warnings of the run.
fn log_tiers(log: &Log, report: &mut BackupReport) {
    for t in &report.tiers {
        if let Some(e) = &t.error {
            let message = format!("tier {}: {e}", t.tier);
            session::warn(log, &mut report.warnings, None, message);
        } else {
            log.info(&format!(
                "tier {}: {} copied, {} removed by retention, {} archives ({})",
                t.tier,
                t.copied.len(),
                t.removed.len(),
                t.archives,
                format_size(t.bytes)
            ));
        }
        for r in &t.removed {
            log.info(&format!("tier {}: removed {r} (retention)", t.tier));
        }
        for d in &t.damaged {
            let tier = &t.tier;
            let message =
                format!("tier {tier}: {d} failed verification: kept and not counted by retention");
            session::warn(log, &mut report.warnings, None, message);
        }
    }
}

/// The pmxcfs snapshot, and the /etc/pve tree read from it when the mount was empty; what fails becomes a
/// warning.
fn pve_sources(
    ctx: &Context,
    plan: &Plan,
    backup_dir: &Path,
    warnings: &mut Vec<Warning>,
) -> (Option<pmxcfs::DbSnapshot>, Option<Vec<pmxcfs::TreeEntry>>) {
    let snapshot = plan.config_db.as_ref().and_then(|db| {
        match pmxcfs::snapshot(&ctx.root.path(db), backup_dir) {
            Ok(s) => {
                let size = format_size(s.size);
                ctx.log
                    .info(&format!("config.db snapshot: {} rows, {size}", s.rows));
                Some(s)
            }
            Err(e) => {
                let message = format!("config.db snapshot failed: {e}");
                session::warn(ctx.log, warnings, Some(db.display().to_string()), message);
                None
            }
        }
    });
    let tree = match (&snapshot, plan.pve_tree_from_db) {
        (Some(s), true) => pmxcfs::read_tree(s.file.path()),
        _ => return (snapshot, None),
    };
    let problem = match tree {
        Ok(t) if !t.is_empty() => return (snapshot, Some(t)),
        Ok(_) => "config.db holds no files: /etc/pve is empty in this backup".into(),
        Err(e) => format!("cannot rebuild /etc/pve from config.db: {e}"),
    };
    warnings.push(Warning::at("/etc/pve", problem));
    (snapshot, None)
}

fn write_archive(
    ctx: &Context,
    plan: &Plan,
    backup_dir: &Path,
    name: String,
    time: Timestamp,
    mut spec: Spec,
) -> Result<Finished, BackupError> {
    let (log, cancel, config) = (ctx.log, ctx.cancel, &ctx.config);
    for s in &plan.skipped {
        log.info(&format!(
            "skipped {} ({}): not a regular file, directory or symlink",
            s.path, s.kind
        ));
    }
    for w in &plan.warnings {
        log.warn(&warning_text(w));
    }
    let mut warnings = plan.warnings.clone();
    // The pmxcfs snapshot comes first: if /etc/pve must be rebuilt, its entries come from it.
    let (snapshot, db_tree) = pve_sources(ctx, plan, backup_dir, &mut warnings);
    spec.pve_tree_from_db = db_tree.is_some();
    // With X25519 recipients, watch the streamed files for the matching secret key (see below).
    let own_recipients = recipients(spec.seal, true);
    let mut s = Session::create(backup_dir, name, time, spec, log, cancel)?;
    s.index.absent = plan.absent.clone();
    s.index.skipped = plan.skipped.clone();
    s.index.warnings = warnings;

    let mut found_keys: Vec<(String, String)> = Vec::new();
    let found = (!own_recipients.is_empty()).then_some(&mut found_keys);
    let specs: Vec<runner::CommandSpec> = plan.commands.iter().map(|c| c.spec.clone()).collect();
    let run_opts = runner::RunOptions {
        timeout: config.commands.timeout,
        ..Default::default()
    };
    let results = std::thread::scope(|scope| -> Result<Vec<runner::CommandResult>, BackupError> {
        // Commands run while the files stream; their outputs are appended after the files.
        let cmds =
            scope.spawn(|| runner::run_all(&specs, config.commands.concurrency, &run_opts, cancel));
        let body = append_files(
            &mut s,
            &ctx.root,
            plan,
            &snapshot,
            db_tree.as_deref(),
            found,
        );
        if body.is_err() {
            // Stop the commands too (the flag is what SIGINT sets), so the run ends promptly.
            cancel.store(true, Ordering::Relaxed);
        }
        let results = cmds
            .join()
            .map_err(|_| fail("command runner", "panicked"))?;
        body.map(|()| results)
    })?;
    s.check_cancel()?;
    for (path, recipient) in &found_keys {
        if own_recipients.contains(recipient) {
            let message = format!(
                "holds the age identity of recipient {recipient}: the key travels with the lock \
                 (keep it off this host, or add it to [collect] exclude)"
            );
            s.warn(Some(path.clone()), message);
        }
    }
    append_commands(&mut s, log, plan, &results)?;
    let mut done = s.finish()?;

    // The read-back was a full verify: record it, so `list` shows the archive `ok` without reading it.
    let recorded = fs::metadata(&done.path).and_then(|md| {
        let totals = Some(done.index.totals.clone());
        let sha = Some(done.sha256.clone());
        let rec = crate::store::state::Record::new(&md, true, sha, 0, totals, "backup");
        crate::store::state::record(backup_dir, &done.name, rec)
    });
    if let Err(e) = recorded {
        let path = backup_dir.join(crate::store::state::STATE_FILE);
        let message = format!("cannot record the verification: {e}");
        session::warn(
            log,
            &mut done.index.warnings,
            Some(path.display().to_string()),
            message,
        );
    }
    Ok(done)
}

/// The files: /etc/pve from config.db (when rebuilt), the host's items, the config.db snapshot.
fn append_files(
    s: &mut Session,
    root: &Root,
    plan: &Plan,
    snapshot: &Option<pmxcfs::DbSnapshot>,
    db_tree: Option<&[pmxcfs::TreeEntry]>,
    found_keys: Option<&mut Vec<(String, String)>>,
) -> Result<(), BackupError> {
    for e in db_tree.unwrap_or_default() {
        s.check_cancel()?;
        append_db_entry(s, e)?;
        s.progress.advance(1, e.data.len() as u64);
    }
    collect::append_items(s, root, &plan.items, found_keys)?;
    collect::append_generated(s, root, plan)?;
    if let Some(snap) = snapshot {
        let opened = snap
            .file
            .reopen()
            .and_then(|f| Ok((f.metadata()?.len(), f)));
        let (size, f) = opened.map_err(|e| fail("config.db snapshot", e))?;
        s.append_internal(CONFIG_DB_PATH, "pve-cluster", "config.db-snapshot", f, size)?;
    }
    Ok(())
}

fn append_db_entry(s: &mut Session, e: &pmxcfs::TreeEntry) -> Result<(), SessionError> {
    let path = format!("etc/pve/{}", e.path);
    let kind = match e.kind {
        pmxcfs::NodeKind::Dir => Kind::Dir,
        pmxcfs::NodeKind::File => Kind::File,
    };
    let h = EntryHeader {
        path: path.as_bytes(),
        kind,
        mode: pmxcfs::default_mode(&e.path, e.kind),
        uid: pmxcfs::PMXCFS_UID,
        gid: pmxcfs::PMXCFS_GID,
        mtime: e.mtime,
        size: e.data.len() as u64,
        xattrs: &[],
    };
    s.write(|w| match kind {
        Kind::Dir => w.append_dir(&h),
        _ => w.append_bytes(&h, &e.data),
    })?;
    let sha = (kind != Kind::Dir).then(|| crate::archive::sha256_hex(&e.data));
    let entry = index_entry(&h, "pve-cluster", sha, None, Some("config.db"));
    s.push_entry(entry)
}

/// The commands' outputs and records, in plan order.
fn append_commands(
    s: &mut Session,
    log: &Log,
    plan: &Plan,
    results: &[runner::CommandResult],
) -> Result<(), BackupError> {
    for (pc, r) in plan.commands.iter().zip(results) {
        let cmd = pc.spec.display();
        let mut rec = CommandRecord {
            category: pc.category.clone(),
            command: cmd.clone(),
            status: if r.success() {
                "ok".into()
            } else {
                r.status.to_string()
            },
            duration_ms: r.duration.as_millis() as u64,
            output: None,
            stderr: r.stderr_tail(2000),
        };
        match &r.status {
            runner::Status::Absent => log.debug(&format!("command {cmd}: not installed")),
            runner::Status::Exited(_) | runner::Status::Signaled(_) | runner::Status::TimedOut => {
                let path = format!("{COMMANDS_DIR}/{}/{}", pc.category, pc.output);
                let size = r.stdout.len() as u64;
                s.append_internal(&path, &pc.category, "command", &r.stdout[..], size)?;
                rec.output = Some(path);
                if !r.success() {
                    let message = format!("command `{cmd}` {}: {}", r.status, r.stderr_tail(300));
                    s.warn(None, message);
                }
            }
            runner::Status::Cancelled => return Err(BackupError::Interrupted),
            runner::Status::SpawnFailed(e) => {
                s.warn(None, format!("command `{cmd}` could not start: {e}"))
            }
        }
        s.index.commands.push(rec);
    }
    Ok(())
}

/// Copy the new archive to every secondary and remote (and whatever they miss), prune them, then prune the
/// local directory.
fn distribute(
    ctx: &Context,
    backup_dir: &Path,
    host: &str,
    new_file: String,
    sha256: &str,
    now: Timestamp,
) -> Vec<crate::store::tier::TierReport> {
    use crate::store::tier;
    let tz = jiff::tz::TimeZone::system();
    let tiers = tier::tiers(&ctx.config, backup_dir, ctx.cancel);
    let mut local = tier::TierReport {
        tier: "local".into(),
        ..Default::default()
    };
    let local_list = match tiers[0].list(host) {
        Ok(l) => l,
        Err(e) => {
            local.error = Some(e.to_string());
            return vec![local];
        }
    };
    let mut reports = Vec::new();
    for t in &tiers[1..] {
        ctx.log.info(&format!("tier {}: copying", t.label()));
        let (list, new) = (&local_list, &new_file);
        let new = tier::NewArchive { file: new, sha256 };
        let synced = tier::sync_tier(t.as_ref(), list, backup_dir, new, host, now, &tz);
        reports.push(synced);
    }
    let mut verified = tier::recorded_verification(backup_dir);
    verified.insert(new_file.clone(), true);
    let local_tier = tiers[0].as_ref();
    match tier::prune(local_tier, host, &verified, now, &tz, false, &mut local) {
        Ok(_) => {
            local.ok = true;
            local.copied.push(new_file);
            local.last_copy = Some(now.as_second());
        }
        Err(e) => local.error = Some(e.to_string()),
    }
    reports.insert(0, local);
    reports
}
