//! `proxkeep backup`: scan → preflight → lock → one streaming pass into a hidden partial file → read-back
//! verification → rename → sidecar. Nothing visible exists until the archive has been verified.

use crate::archive::format::{
    self, COMMANDS_DIR, CONFIG_DB_PATH, CommandRecord, CompressionInfo, INDEX_PATH, Index,
    IndexEntry, Kind, META_PATH, Meta, Warning,
};
use crate::archive::name::ArchiveName;
use crate::archive::reader;
use crate::archive::writer::{ArchiveWriter, EntryHeader, ExactReader, ReadOutcome, is_cancelled};
use crate::collect::{self, CategoryCount, Item, Plan};
use crate::config::{Compression, Config};
use crate::fsx::{create_private, write_atomic};
use crate::host::{HostFacts, Root};
use crate::output::Log;
use crate::preflight::{self, Check, RunLock};
use crate::units::format_size;
use crate::{pmxcfs, runner};
use jiff::Timestamp;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
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

/// The run's result, as printed by `--json`.
#[derive(Debug, Clone, serde::Serialize)]
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
    pub checks: Vec<Check>,
    pub warnings: Vec<Warning>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_file: Option<PathBuf>,
    /// Local directory, secondaries and remotes: copies and retention.
    pub tiers: Vec<crate::store::tier::TierReport>,
}

/// The concurrent read-back; dropping it without `finish` (an error path) tells it to stop.
struct VerifierGuard {
    tx: Option<std::sync::mpsc::Sender<Index>>,
    handle: Option<std::thread::JoinHandle<io::Result<reader::Verification>>>,
    state: Arc<reader::FollowState>,
}

impl VerifierGuard {
    /// Hand over the end of the file and wait for the verdict. The verifier checks the entries against the
    /// archive's own index.json; that this is the index the writer wrote is checked by its hash, which spares
    /// holding a second copy of a large index in memory.
    fn finish(&mut self, index_sha256: String) -> io::Result<reader::Verification> {
        self.tx.take();
        self.state.done.store(true, Ordering::Release);
        let mut v = match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r?,
            _ => return Err(io::Error::other("the verifier thread failed")),
        };
        if v.index_sha256.as_deref() != Some(index_sha256.as_str()) {
            v.problems.push(reader::Problem {
                path: Some(INDEX_PATH.into()),
                offset: None,
                message: "differs from the index the backup wrote".into(),
            });
        }
        Ok(v)
    }
}

impl Drop for VerifierGuard {
    fn drop(&mut self) {
        self.state.abort.store(true, Ordering::Release);
        self.tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// Removes the partial file unless the archive was completed.
struct PartialGuard {
    path: PathBuf,
    armed: bool,
}
impl Drop for PartialGuard {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn fail(what: &str, e: impl std::fmt::Display) -> BackupError {
    BackupError::Failed(format!("{what}: {e}"))
}

/// Warnings about where the backup's own key material lives: a passphrase file that this backup collects
/// travels inside the archive it locks (and is useless there), one that others can read is no secret.
/// An SSH private key whose `.pub` names one of the recipients, both collected, is the same mistake.
fn key_warnings(
    ctx: &Context,
    enc: &crate::config::EncryptionConfig,
    seal: Option<&crate::crypt::Seal>,
    plan: &Plan,
) -> Vec<Warning> {
    let mut out = Vec::new();
    let type_and_key = |s: &str| s.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
    let ssh: Vec<String> = match seal {
        Some(crate::crypt::Seal::Recipients(rs)) => rs
            .iter()
            .filter(|r| r.kind() != "x25519")
            .map(|r| type_and_key(&format!("{r:?}")))
            .collect(),
        _ => Vec::new(),
    };
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
        if ssh.contains(&type_and_key(&text)) && plan.items.iter().any(|i| i.host_path == private) {
            out.push(Warning {
                path: Some(private.display().to_string()),
                message: format!(
                    "is the SSH key of recipient {}: the key travels with the lock \
                     (use a key kept off this host, or add it to [collect] exclude)",
                    type_and_key(&text)
                ),
            });
        }
    }
    let Some(p) = &enc.passphrase_file else {
        return out;
    };
    let collected = plan
        .items
        .iter()
        .any(|i| i.kind == Kind::File && (i.host_path == *p || ctx.root.path(&i.host_path) == *p));
    if collected {
        out.push(Warning {
            path: Some(p.display().to_string()),
            message:
                "the passphrase file is collected by this backup: the key travels with the lock \
                      (keep it outside the collected paths, or add it to collect.exclude)"
                    .into(),
        });
    }
    if let Some(w) = crate::crypt::loose_permissions(p, "passphrase file") {
        out.push(Warning {
            path: Some(p.display().to_string()),
            message: w,
        });
    }
    out
}

/// Size of this host's newest archive in `dir`, for the free-space estimate.
fn last_archive_size(dir: &Path, host: &str) -> Option<u64> {
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let n = ArchiveName::parse(e.file_name().to_str()?)?;
            if n.host == host {
                Some((n.time, e.metadata().ok()?.len()))
            } else {
                None
            }
        })
        .max_by_key(|(t, _)| *t)
        .map(|(_, size)| size)
}

pub fn run(ctx: &Context, opts: &BackupOptions) -> Result<BackupReport, BackupError> {
    let started = Instant::now();
    let log = ctx.log;
    let config = &ctx.config;
    let compression = opts.compression.unwrap_or(config.compression.algorithm);
    let level = match (opts.level, opts.compression) {
        (Some(l), _) => l,
        (None, Some(c)) if c != config.compression.algorithm => c.default_level(),
        _ => config.compression.level,
    };
    if !compression.level_range().contains(&level) {
        return Err(BackupError::Invalid(format!(
            "level {level} is out of range {}..={} for {compression}",
            compression.level_range().start(),
            compression.level_range().end()
        )));
    }
    let backup_dir = opts
        .dir
        .clone()
        .unwrap_or_else(|| config.backup_dir.clone());
    // Recipients and passphrase are read before anything is written: a backup configured for encryption
    // never falls back to a plain archive.
    let seal = match &config.encryption {
        Some(e) => Some(
            e.seal()
                .map_err(|e| BackupError::Invalid(format!("[encryption]: {e}")))?,
        ),
        None => None,
    };

    let facts = HostFacts::detect(&ctx.root);
    log.info(&format!(
        "host {} role {} (root {})",
        facts.hostname,
        facts.role,
        ctx.root.dir().display()
    ));
    let mut plan = collect::scan(&ctx.root, &facts, config);
    if let Some(enc) = &config.encryption {
        plan.warnings
            .extend(key_warnings(ctx, enc, seal.as_ref(), &plan));
    }
    if plan.pve_tree_from_db {
        log.warn("/etc/pve is empty (pmxcfs not mounted): its tree will be rebuilt from config.db");
    }

    // Name: start time, bumped past any existing archive of the same second.
    let mut time = opts.now.unwrap_or_else(Timestamp::now);
    let name = loop {
        let n = ArchiveName::new(&facts.hostname, facts.role, time, compression)
            .encrypted(seal.is_some());
        // The stem names the run log too, so a same-second archive of another compression must not share it.
        if !backup_dir.join(n.to_string()).exists()
            && !config.log_dir.join(format!("{}.log", n.stem())).exists()
        {
            break n;
        }
        time = Timestamp::from_second(n.time.as_second() + 1).map_err(|e| fail("time", e))?;
    };
    let needed = last_archive_size(&backup_dir, &facts.hostname).map_or_else(
        || (plan.bytes(), "estimate: size of the collected files"),
        |s| (s.saturating_mul(2), "2 × the last archive"),
    );

    let mut report = BackupReport {
        status: "ok",
        exit_code: 0,
        dry_run: opts.dry_run,
        host: facts.hostname.clone(),
        role: facts.role.to_string(),
        archive: None,
        sha256: None,
        size: 0,
        compression: compression.to_string(),
        level,
        encryption: seal.as_ref().map(|s| s.describe()),
        entries: 0,
        files: 0,
        dirs: 0,
        symlinks: 0,
        bytes: 0,
        commands: plan.commands.len(),
        pve_tree_from_db: plan.pve_tree_from_db,
        duration_ms: 0,
        categories: plan.counts(),
        checks: Vec::new(),
        warnings: Vec::new(),
        log_file: None,
        tiers: Vec::new(),
    };

    // Preflight, in order: directories → free space → writability → lock. A dry run creates nothing.
    let create = !opts.dry_run;
    let mut checks = vec![
        preflight::directory("backup directory", &backup_dir, create),
        preflight::directory("log directory", &config.log_dir, create),
    ];
    if checks.iter().all(|c| c.ok) {
        checks.push(preflight::free_space(
            &backup_dir,
            config.min_free_space,
            needed.0,
            needed.1,
        ));
        if backup_dir.is_dir() {
            checks.push(preflight::writable(&backup_dir));
        }
    }
    report.checks = checks.clone();
    if let Some(bad) = checks.iter().find(|c| !c.ok) {
        log.error(&bad.line());
        return Err(BackupError::Preflight(checks));
    }
    for c in &checks {
        log.debug(&c.line());
    }

    if opts.dry_run {
        report.files = plan.items.iter().filter(|i| i.kind == Kind::File).count() as u64;
        report.dirs = plan.items.iter().filter(|i| i.kind == Kind::Dir).count() as u64;
        report.symlinks = plan
            .items
            .iter()
            .filter(|i| i.kind == Kind::Symlink)
            .count() as u64;
        report.entries = plan.items.len() as u64;
        report.bytes = plan.bytes();
        report.warnings = plan.warnings.clone();
        report.archive = Some(backup_dir.join(name.to_string()));
        report.duration_ms = started.elapsed().as_millis() as u64;
        return Ok(report);
    }

    let _lock = RunLock::acquire(&config.lock_file, &facts.hostname)?;
    let log_path = config.log_dir.join(format!("{}.log", name.stem()));
    match create_private(&log_path) {
        Ok(f) => {
            log.attach(f);
            report.log_file = Some(log_path.clone());
        }
        Err(e) => log.warn(&format!(
            "cannot write the run log {}: {e}",
            log_path.display()
        )),
    }
    log.info(&format!(
        "proxkeep {} backup of {} ({}) starting",
        env!("CARGO_PKG_VERSION"),
        facts.hostname,
        facts.role
    ));
    for removed in preflight::sweep_partials(&backup_dir) {
        log.info(&format!(
            "removed partial file of a run that died: {}",
            removed.display()
        ));
    }

    if let Some(s) = &seal {
        log.info(&format!("encrypting with {}", s.describe()));
    }
    let result = write_archive(
        ctx,
        &facts,
        &plan,
        &backup_dir,
        &name,
        compression,
        level,
        seal.as_ref(),
        time,
        &mut report,
    );
    log.detach_on_error(&result);
    let (final_path, index) = result?;

    report.archive = Some(final_path.clone());
    report.entries = index.totals.entries;
    report.files = index.totals.files;
    report.dirs = index.totals.dirs;
    report.symlinks = index.totals.symlinks;
    report.bytes = index.totals.bytes;
    report.warnings = index.warnings.clone();
    // Copies and retention: a tier failure is a warning, never a failure of the backup.
    report.tiers = distribute(
        ctx,
        &backup_dir,
        &facts.hostname,
        &final_path,
        report.sha256.as_deref().unwrap_or(""),
        time,
    );
    for t in &report.tiers {
        if let Some(e) = &t.error {
            let w = Warning {
                path: None,
                message: format!("tier {}: {e}", t.tier),
            };
            log.warn(&warning_text(&w));
            report.warnings.push(w);
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
        for d in &t.damaged {
            log.warn(&format!(
                "tier {}: {d} failed verification: kept and not counted by retention",
                t.tier
            ));
        }
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    if !report.warnings.is_empty() {
        report.status = "warning";
        report.exit_code = crate::exit::WARNINGS;
    }
    log.info(&format!(
        "archive {} written and verified: {} ({} {}), {} entries ({} files, {}), {} warnings, {:.1} s",
        final_path.display(),
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

impl Log {
    fn detach_on_error<T>(&self, r: &Result<T, BackupError>) {
        if let Err(e) = r {
            self.error(&e.to_string());
            self.detach();
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn write_archive(
    ctx: &Context,
    facts: &HostFacts,
    plan: &Plan,
    backup_dir: &Path,
    name: &ArchiveName,
    compression: Compression,
    level: i32,
    seal: Option<&crate::crypt::Seal>,
    time: Timestamp,
    report: &mut BackupReport,
) -> Result<(PathBuf, Index), BackupError> {
    let started = Instant::now();
    let log = ctx.log;
    let cancel = ctx.cancel;
    let config = &ctx.config;
    let final_name = name.to_string();
    let final_path = backup_dir.join(&final_name);
    let partial_path = backup_dir.join(preflight::partial_name(&final_name));

    let mut index = Index::new();
    index.absent = plan.absent.clone();
    index.skipped = plan.skipped.clone();
    index.warnings = plan.warnings.clone();
    for s in &plan.skipped {
        log.info(&format!(
            "skipped {} ({}): not a regular file, directory or symlink",
            s.path, s.kind
        ));
    }
    for w in &plan.warnings {
        log.warn(&warning_text(w));
    }

    // The pmxcfs snapshot comes first: if /etc/pve must be rebuilt, its entries come from it.
    let snapshot = match &plan.config_db {
        Some(db) => match pmxcfs::snapshot(&ctx.root.path(db), backup_dir) {
            Ok(s) => {
                log.info(&format!(
                    "config.db snapshot: {} rows, {}",
                    s.rows,
                    format_size(s.size)
                ));
                Some(s)
            }
            Err(e) => {
                let w = Warning {
                    path: Some(db.display().to_string()),
                    message: format!("config.db snapshot failed: {e}"),
                };
                log.warn(&warning_text(&w));
                index.warnings.push(w);
                None
            }
        },
        None => None,
    };
    let db_tree = match (&snapshot, plan.pve_tree_from_db) {
        (Some(s), true) => match pmxcfs::read_tree(s.file.path()) {
            Ok(t) if !t.is_empty() => Some(t),
            Ok(_) => {
                index.warnings.push(Warning {
                    path: Some("/etc/pve".into()),
                    message: "config.db holds no files: /etc/pve is empty in this backup".into(),
                });
                None
            }
            Err(e) => {
                index.warnings.push(Warning {
                    path: Some("/etc/pve".into()),
                    message: format!("cannot rebuild /etc/pve from config.db: {e}"),
                });
                None
            }
        },
        _ => None,
    };

    // For an encrypted archive the read-back decrypts with a key of its own (see `Seal::encryptor`).
    let (encryptor, readback_keys) = match seal {
        Some(s) => {
            let (e, k) = s.encryptor().map_err(|e| fail("cannot start age", e))?;
            (Some(e), k)
        }
        None => (None, crate::crypt::Keys::default()),
    };
    let file = create_private(&partial_path)
        .map_err(|e| fail(&format!("cannot create {}", partial_path.display()), e))?;
    let mut guard = PartialGuard {
        path: partial_path.clone(),
        armed: true,
    };
    // The read-back runs alongside the writing: it reads the partial file as it grows, and checks it against the
    // index once the writer hands it over. It still reads what is on disk, not the bytes in memory.
    let follow = Arc::new(reader::FollowState::default());
    let verifier = {
        let src = File::open(&partial_path).map_err(|e| fail("read-back", e))?;
        let src = reader::Follow::new(src, follow.clone());
        let (tx, rx) = std::sync::mpsc::channel::<Index>();
        let handle = std::thread::spawn(move || {
            reader::verify_stream(Box::new(src), None, &readback_keys, move || rx.recv().ok())
        });
        VerifierGuard {
            tx: Some(tx),
            handle: Some(handle),
            state: follow.clone(),
        }
    };
    let mut verifier = verifier;
    let mut w = ArchiveWriter::new(
        file,
        compression,
        level,
        config.compression.threads,
        encryptor,
    )
    .map_err(|e| fail("cannot start the compressor", e))?;
    let to_err = |e: io::Error| {
        if is_cancelled(&e) {
            BackupError::Interrupted
        } else {
            fail(&format!("writing {}", partial_path.display()), e)
        }
    };

    let meta = Meta {
        format_version: format::FORMAT_VERSION,
        tool: "proxkeep".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        host: facts.hostname.clone(),
        role: facts.role,
        versions: facts.versions.clone(),
        created: time.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
        created_unix: time.as_second(),
        categories: plan.categories.clone(),
        compression: CompressionInfo {
            algorithm: compression.to_string(),
            level,
        },
        root: ctx.root.dir().display().to_string(),
        pve_tree_from_db: db_tree.is_some(),
        purpose: "backup".into(),
        encryption: seal.map(|s| s.describe()),
    };
    let meta_json = serde_json::to_vec_pretty(&meta).map_err(|e| fail("meta.json", e))?;
    w.append_bytes(
        &internal_header(META_PATH, meta_json.len(), time),
        &meta_json,
    )
    .map_err(to_err)?;

    // With X25519 recipients, watch the streamed files for the matching secret key (see below).
    let own_recipients: Vec<String> = match seal {
        Some(crate::crypt::Seal::Recipients(rs)) => rs
            .iter()
            .filter(|r| r.kind() == "x25519")
            .map(|r| format!("{r:?}"))
            .collect(),
        _ => Vec::new(),
    };
    let sniff = !own_recipients.is_empty();
    let mut found_keys: Vec<(String, String)> = Vec::new();
    let progress = log.progress();
    progress.phase("archiving");
    let specs: Vec<runner::CommandSpec> = plan.commands.iter().map(|c| c.spec.clone()).collect();
    let run_opts = runner::RunOptions {
        timeout: config.commands.timeout,
        ..Default::default()
    };

    let results = std::thread::scope(|scope| -> Result<Vec<runner::CommandResult>, BackupError> {
        // Commands run while the files stream; their outputs are appended after the files.
        let cmds =
            scope.spawn(|| runner::run_all(&specs, config.commands.concurrency, &run_opts, cancel));
        let body = (|| {
            if let Some(tree) = &db_tree {
                for e in tree {
                    check_cancel(cancel)?;
                    append_db_entry(&mut w, e, &mut index).map_err(to_err)?;
                    progress.advance(1, e.data.len() as u64);
                }
            }
            for item in &plan.items {
                check_cancel(cancel)?;
                let bytes = append_item(
                    &mut w,
                    &ctx.root,
                    item,
                    &mut index,
                    log,
                    cancel,
                    sniff.then_some(&mut found_keys),
                )
                .map_err(to_err)?;
                progress.advance(1, bytes);
            }
            if let Some(s) = &snapshot {
                append_file_as(
                    &mut w,
                    s.file.path(),
                    CONFIG_DB_PATH,
                    "pve-cluster",
                    "config.db-snapshot",
                    time,
                    &mut index,
                    cancel,
                )
                .map_err(to_err)?;
            }
            Ok(())
        })();
        if body.is_err() {
            // Stop the commands too (the flag is what SIGINT sets), so the run ends promptly.
            cancel.store(true, Ordering::Relaxed);
        }
        let results = cmds
            .join()
            .map_err(|_| fail("command runner", "panicked"))?;
        body.map(|()| results)
    })?;
    check_cancel(cancel)?;
    for (path, recipient) in &found_keys {
        if own_recipients.contains(recipient) {
            let w = Warning {
                path: Some(path.clone()),
                message: format!(
                    "holds the age identity of recipient {recipient}: the key travels with the lock \
                     (keep it off this host, or add it to [collect] exclude)"
                ),
            };
            log.warn(&warning_text(&w));
            index.warnings.push(w);
        }
    }

    for (pc, r) in plan.commands.iter().zip(&results) {
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
            runner::Status::Absent => {
                log.debug(&format!("command {cmd}: not installed"));
            }
            runner::Status::Exited(_) | runner::Status::Signaled(_) | runner::Status::TimedOut => {
                let path = format!("{COMMANDS_DIR}/{}/{}", pc.category, pc.output);
                let h = internal_header(&path, r.stdout.len(), time);
                let sha = crate::archive::sha256_hex(&r.stdout);
                w.append_bytes(&h, &r.stdout).map_err(to_err)?;
                index.entries.push(internal_entry(
                    &path,
                    &pc.category,
                    r.stdout.len() as u64,
                    sha,
                    time,
                    "command",
                ));
                rec.output = Some(path);
                if !r.success() {
                    let w = Warning {
                        path: None,
                        message: format!("command `{cmd}` {}: {}", r.status, r.stderr_tail(300)),
                    };
                    log.warn(&warning_text(&w));
                    index.warnings.push(w);
                }
            }
            runner::Status::Cancelled => return Err(BackupError::Interrupted),
            runner::Status::SpawnFailed(e) => {
                let w = Warning {
                    path: None,
                    message: format!("command `{cmd}` could not start: {e}"),
                };
                log.warn(&warning_text(&w));
                index.warnings.push(w);
            }
        }
        index.commands.push(rec);
    }

    index.compute_totals();
    let index_json = serde_json::to_vec(&index).map_err(|e| fail("index.json", e))?;
    w.append_bytes(
        &internal_header(INDEX_PATH, index_json.len(), time),
        &index_json,
    )
    .map_err(to_err)?;
    let index_sha = crate::archive::sha256_hex(&index_json);
    drop(index_json);
    progress.phase("finishing");
    let (_file, written) = w.finish().map_err(to_err)?;
    check_cancel(cancel)?;
    log.debug(&format!(
        "archive written ({} bytes) in {:.2} s",
        written.bytes,
        started.elapsed().as_secs_f64()
    ));

    progress.phase("verifying");
    let verify_start = Instant::now();
    let v = verifier
        .finish(index_sha)
        .map_err(|e| fail("read-back", e))?;
    progress.finish();
    log.debug(&format!(
        "read back and verified in {:.2} s",
        verify_start.elapsed().as_secs_f64()
    ));
    if !v.ok() {
        let shown: Vec<String> = v.problems.iter().take(5).map(|p| p.to_string()).collect();
        return Err(BackupError::Failed(format!(
            "read-back verification failed: {}",
            shown.join("; ")
        )));
    }
    if v.sha256.as_deref() != Some(written.sha256.as_str()) {
        return Err(BackupError::Failed(
            "read-back: the file on disk differs from the bytes written".into(),
        ));
    }
    check_cancel(cancel)?;

    fs::rename(&partial_path, &final_path).map_err(|e| fail("rename", e))?;
    guard.armed = false;
    File::open(backup_dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fail("fsync", e))?;
    let sidecar = backup_dir.join(format!("{final_name}.sha256"));
    if let Err(e) = write_atomic(
        &sidecar,
        format!("{}  {final_name}\n", written.sha256).as_bytes(),
        0o600,
    ) {
        // The sidecar is a convenience; nothing requires it.
        log.warn(&format!("cannot write {}: {e}", sidecar.display()));
    }
    // The read-back above was a full verify: record it, so `list` shows the archive `ok` without reading it.
    let totals = Some(index.totals.clone());
    let recorded = fs::metadata(&final_path).and_then(|md| {
        let rec = crate::store::state::Record::new(
            &md,
            true,
            Some(written.sha256.clone()),
            0,
            totals,
            "backup",
        );
        crate::store::state::record(backup_dir, &final_name, rec)
    });
    if let Err(e) = recorded {
        log.warn(&format!(
            "cannot record the verification in {}: {e}",
            crate::store::state::STATE_FILE
        ));
    }
    report.sha256 = Some(written.sha256);
    report.size = written.bytes;
    Ok((final_path, index))
}

fn check_cancel(cancel: &AtomicBool) -> Result<(), BackupError> {
    if cancel.load(Ordering::Relaxed) {
        Err(BackupError::Interrupted)
    } else {
        Ok(())
    }
}

pub fn warning_text(w: &Warning) -> String {
    match &w.path {
        Some(p) => format!("{p}: {}", w.message),
        None => w.message.clone(),
    }
}

pub(crate) fn internal_header(path: &str, size: usize, time: Timestamp) -> EntryHeader<'_> {
    EntryHeader {
        path: path.as_bytes(),
        kind: Kind::File,
        mode: 0o600,
        uid: 0,
        gid: 0,
        mtime: time.as_second(),
        size: size as u64,
        xattrs: &[],
    }
}

fn internal_entry(
    path: &str,
    category: &str,
    size: u64,
    sha256: String,
    time: Timestamp,
    source: &str,
) -> IndexEntry {
    IndexEntry {
        path: path.into(),
        path_hex: None,
        category: category.into(),
        kind: Kind::File,
        size,
        mode: "0600".into(),
        uid: 0,
        gid: 0,
        mtime: time.as_second(),
        sha256: Some(sha256),
        target: None,
        xattrs: vec![],
        source: Some(source.into()),
    }
}

#[allow(clippy::too_many_arguments)]
fn append_file_as(
    w: &mut ArchiveWriter,
    src: &Path,
    path: &str,
    category: &str,
    source: &str,
    time: Timestamp,
    index: &mut Index,
    cancel: &AtomicBool,
) -> io::Result<()> {
    let f = File::open(src)?;
    let size = f.metadata()?.len();
    let mut r = ExactReader::new(f, size, cancel);
    w.append_reader(&internal_header(path, size as usize, time), &mut r)?;
    let (sha, _) = r.finish()?;
    index
        .entries
        .push(internal_entry(path, category, size, sha, time, source));
    Ok(())
}

fn append_db_entry(
    w: &mut ArchiveWriter,
    e: &pmxcfs::TreeEntry,
    index: &mut Index,
) -> io::Result<()> {
    let path = format!("etc/pve/{}", e.path);
    let kind = match e.kind {
        pmxcfs::NodeKind::Dir => Kind::Dir,
        pmxcfs::NodeKind::File => Kind::File,
    };
    let mode = pmxcfs::default_mode(&e.path, e.kind);
    let h = EntryHeader {
        path: path.as_bytes(),
        kind,
        mode,
        uid: pmxcfs::PMXCFS_UID,
        gid: pmxcfs::PMXCFS_GID,
        mtime: e.mtime,
        size: e.data.len() as u64,
        xattrs: &[],
    };
    let sha = match kind {
        Kind::Dir => {
            w.append_dir(&h)?;
            None
        }
        _ => {
            w.append_bytes(&h, &e.data)?;
            Some(crate::archive::sha256_hex(&e.data))
        }
    };
    let size = h.size;
    let (uid, gid) = (h.uid, h.gid);
    index.entries.push(IndexEntry {
        path: path.clone(),
        path_hex: None,
        category: "pve-cluster".into(),
        kind,
        size,
        mode: format!("{mode:04o}"),
        uid,
        gid,
        mtime: e.mtime,
        sha256: sha,
        target: None,
        xattrs: vec![],
        source: Some("config.db".into()),
    });
    Ok(())
}

/// Append one host item. Problems with the *source* (vanished, unreadable, changed while read) become
/// warnings; an `Err` is a problem with the archive itself and ends the run.
/// `found_keys`: when given, the recipients of age secret keys seen in file contents are added, with the path.
pub(crate) fn append_item(
    w: &mut ArchiveWriter,
    root: &Root,
    item: &Item,
    index: &mut Index,
    log: &Log,
    cancel: &AtomicBool,
    found_keys: Option<&mut Vec<(String, String)>>,
) -> io::Result<u64> {
    let fs_path = root.path(&item.host_path);
    let host = item.host_path.display().to_string();
    let warn = |index: &mut Index, message: String| {
        let w = Warning {
            path: Some(host.clone()),
            message,
        };
        log.warn(&warning_text(&w));
        index.warnings.push(w);
    };
    let archive_path = item.archive_path();
    let (path_str, path_hex) = format::path_fields(archive_path);

    match item.kind {
        Kind::File => {
            let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
            let file = match OpenOptions::new()
                .read(true)
                .custom_flags(flags.bits() as i32)
                .open(&fs_path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    warn(index, "vanished during the backup".into());
                    return Ok(0);
                }
                Err(e) => {
                    warn(index, format!("unreadable, not stored: {e}"));
                    return Ok(0);
                }
            };
            let md = match file.metadata() {
                Ok(md) if md.is_file() => md,
                Ok(_) => {
                    warn(index, "changed type during the backup, not stored".into());
                    return Ok(0);
                }
                Err(e) => {
                    warn(index, format!("cannot stat, not stored: {e}"));
                    return Ok(0);
                }
            };
            let xattrs = collect::xattrs_fd(&file);
            // The header comes from fstat of the open file; exactly that many bytes are stored.
            let h = EntryHeader {
                path: archive_path,
                kind: Kind::File,
                mode: md.mode(),
                uid: md.uid(),
                gid: md.gid(),
                mtime: md.mtime(),
                size: md.len(),
                xattrs: &xattrs,
            };
            let mut sniffer = crate::crypt::IdentitySniffer::new(
                io::BufReader::with_capacity(256 * 1024, &file),
                found_keys.is_some(),
            );
            let mut r = ExactReader::new(&mut sniffer, md.len(), cancel);
            w.append_reader(&h, &mut r)?;
            let read_error = r.error.take();
            let (sha, outcome) = r.finish()?;
            if let Some(found) = found_keys {
                found.extend(sniffer.found.drain(..).map(|k| (host.clone(), k)));
            }
            match outcome {
                ReadOutcome::Exact => {}
                ReadOutcome::Shrunk { missing } => warn(
                    index,
                    format!(
                        "shrank while being read: {missing} missing bytes stored as zeros (size at open: {})",
                        md.len()
                    ),
                ),
                ReadOutcome::Grew => warn(
                    index,
                    format!(
                        "grew while being read: stored its first {} bytes (size at open)",
                        md.len()
                    ),
                ),
                ReadOutcome::ReadError => warn(
                    index,
                    format!(
                        "read error, the rest stored as zeros: {}",
                        read_error.map_or_else(String::new, |e| e.to_string())
                    ),
                ),
            }
            index.entries.push(IndexEntry {
                path: path_str,
                path_hex,
                category: item.category.clone(),
                kind: Kind::File,
                size: md.len(),
                mode: format!("{:04o}", md.mode() & 0o7777),
                uid: md.uid(),
                gid: md.gid(),
                mtime: md.mtime(),
                sha256: Some(sha),
                target: None,
                xattrs: xattrs.iter().map(|(k, _)| k.clone()).collect(),
                source: None,
            });
            Ok(md.len())
        }
        Kind::Dir | Kind::Symlink => {
            let md = match fs::symlink_metadata(&fs_path) {
                Ok(md) => md,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    warn(index, "vanished during the backup".into());
                    return Ok(0);
                }
                Err(e) => {
                    warn(index, format!("cannot stat, not stored: {e}"));
                    return Ok(0);
                }
            };
            let kind = if md.is_dir() {
                Kind::Dir
            } else if md.file_type().is_symlink() {
                Kind::Symlink
            } else {
                warn(index, "changed type during the backup, not stored".into());
                return Ok(0);
            };
            let xattrs = collect::xattrs_path(&fs_path);
            let h = EntryHeader {
                path: archive_path,
                kind,
                mode: md.mode(),
                uid: md.uid(),
                gid: md.gid(),
                mtime: md.mtime(),
                size: 0,
                xattrs: &xattrs,
            };
            let target = if kind == Kind::Symlink {
                let t = match fs::read_link(&fs_path) {
                    Ok(t) => t,
                    Err(e) => {
                        warn(index, format!("cannot read link, not stored: {e}"));
                        return Ok(0);
                    }
                };
                use std::os::unix::ffi::OsStrExt;
                let tb = t.as_os_str().as_bytes().to_vec();
                w.append_symlink(&h, &tb)?;
                Some(format::path_fields(&tb).0)
            } else {
                w.append_dir(&h)?;
                None
            };
            index.entries.push(IndexEntry {
                path: path_str,
                path_hex,
                category: item.category.clone(),
                kind,
                size: 0,
                mode: format!("{:04o}", md.mode() & 0o7777),
                uid: md.uid(),
                gid: md.gid(),
                mtime: md.mtime(),
                sha256: None,
                target,
                xattrs: xattrs.iter().map(|(k, _)| k.clone()).collect(),
                source: None,
            });
            Ok(0)
        }
    }
}

/// Copy the new archive to every secondary and remote (and whatever they miss), prune them, then prune the
/// local directory.
fn distribute(
    ctx: &Context,
    backup_dir: &Path,
    host: &str,
    archive: &Path,
    sha256: &str,
    time: Timestamp,
) -> Vec<crate::store::tier::TierReport> {
    use crate::store::tier;
    let tz = jiff::tz::TimeZone::system();
    let now = time;
    let tiers = tier::tiers(&ctx.config, backup_dir, ctx.cancel);
    let new_file = archive
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let local_list = match tiers[0].list(host) {
        Ok(l) => l,
        Err(e) => {
            return vec![tier::TierReport {
                tier: "local".into(),
                error: Some(e.to_string()),
                ..Default::default()
            }];
        }
    };
    let mut reports = Vec::new();
    for t in &tiers[1..] {
        ctx.log.info(&format!("tier {}: copying", t.label()));
        reports.push(tier::sync_tier(
            t.as_ref(),
            &local_list,
            backup_dir,
            &new_file,
            sha256,
            host,
            now,
            &tz,
        ));
    }
    let mut local = tier::TierReport {
        tier: "local".into(),
        ..Default::default()
    };
    let mut verified = tier::recorded_verification(backup_dir);
    verified.insert(new_file.clone(), true);
    match tier::prune(
        tiers[0].as_ref(),
        host,
        &verified,
        now,
        &tz,
        false,
        &mut local,
    ) {
        Ok(_) => {
            local.ok = true;
            local.copied.push(new_file);
            local.last_copy = Some(time.as_second());
        }
        Err(e) => local.error = Some(e.to_string()),
    }
    reports.insert(0, local);
    reports
}
