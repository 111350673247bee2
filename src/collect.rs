//! Turning the catalog into a concrete, ordered list of what to store: the scan.
//!
//! The scan only looks at metadata (lstat), so it is cheap; `--dry-run` prints it, preflight sizes the free-space
//! check from it, and the archive writer then streams the items in exactly this order.

use crate::archive::format::{Absent, IndexEntry, Kind, Skipped, Warning};
use crate::archive::session::{Session, SessionError, index_entry};
use crate::archive::writer::{EntryHeader, ExactReader, ReadOutcome};
use crate::catalog::{self, Category, Source};
use crate::config::Config;
use crate::host::{HostFacts, Root};
use crate::runner::CommandSpec;
use crate::units::format_size;
use globset::{Glob, GlobBuilder, GlobMatcher};
use rustix::fs::OFlags;
use std::collections::{HashMap, HashSet};
use std::fs::{self, Metadata, OpenOptions};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

mod append;
mod walk;
pub use append::{
    LISTED_PATH, append_generated, append_item, append_items, header, open_beneath, open_no_follow,
    xattrs_fd, xattrs_path,
};

/// One file, directory or symlink to store.
#[derive(Debug, Clone)]
pub struct Item {
    /// Absolute host path (`/etc/pve/storage.cfg`).
    pub host_path: PathBuf,
    /// Shared by the items of a category (a 200,000-file scan holds one copy of each name).
    pub category: Arc<str>,
    pub kind: Kind,
    /// Size of a file at scan time, 0 for the rest (the writer re-reads it from the open file).
    pub size: u64,
}

impl Item {
    /// Path inside the archive: the host path without its leading `/`.
    pub fn archive_path(&self) -> &[u8] {
        let b = self.host_path.as_os_str().as_bytes();
        b.strip_prefix(b"/").unwrap_or(b)
    }
}

#[derive(Debug, Clone)]
pub struct PlannedCommand {
    pub category: String,
    pub output: String,
    pub spec: CommandSpec,
}

/// Everything a backup of this host will contain.
#[derive(Debug, Default)]
pub struct Plan {
    /// Categories that apply to this host and are not skipped, in catalog order.
    pub categories: Vec<String>,
    pub items: Vec<Item>,
    pub commands: Vec<PlannedCommand>,
    /// Commands left out because they run only on the real root (see `commands.run`).
    pub commands_not_run: usize,
    /// Host path of config.db when the pve-cluster category is active and the file exists.
    pub config_db: Option<PathBuf>,
    /// /etc/pve is empty (pmxcfs not mounted) while config.db exists: the tree comes from the db.
    pub pve_tree_from_db: bool,
    pub absent: Vec<Absent>,
    pub skipped: Vec<Skipped>,
    pub warnings: Vec<Warning>,
    /// What each exclude removed, in the order first met.
    pub excluded: Vec<Excluded>,
    /// Directories stored only because a collected path is under them (`/root`, `/etc`).
    pub parents: HashSet<PathBuf>,
    /// The category and interfaces of [`Source::Nics`], when the root has a `/sys/class/net`.
    pub nics: Option<(String, Vec<crate::host::Nic>)>,
    /// Files over their source's size limit: listed in [`LISTED_PATH`] with size and SHA-256, not stored.
    pub listed: Vec<Item>,
    /// proxkeep's own paths under the root, left out wherever they are.
    pub never_collected: Vec<NeverCollected>,
}

/// A path proxkeep writes itself (backup dir, log dir, lock file, secondary tier): never collected, so a
/// backup dir inside a collected tree does not hold the previous archives.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NeverCollected {
    /// Host path (`/root/backups`).
    pub path: PathBuf,
    /// The config key that names it: `backup_dir`, `log_dir`, `lock_file`, `secondary NAME`, `--dir`.
    pub why: String,
}

/// proxkeep's own paths that lie under `root`, as host paths; `dir` is a `--dir` given for this run.
fn own_paths(root: &Root, config: &Config, dir: Option<&Path>) -> Vec<NeverCollected> {
    // The root as given and as resolved: config paths may name either.
    let bases = [
        Some(root.dir().to_path_buf()),
        fs::canonicalize(root.dir()).ok(),
    ];
    let named = [
        (Some(config.backup_dir.as_path()), "backup_dir".to_string()),
        (dir, "--dir".into()),
        (Some(&config.log_dir), "log_dir".into()),
        (Some(&config.lock_file), "lock_file".into()),
    ];
    let secondaries = config
        .secondary
        .iter()
        .map(|s| (Some(s.path.as_path()), format!("secondary {}", s.name)));
    let mut out: Vec<NeverCollected> = Vec::new();
    for (p, why) in named.into_iter().chain(secondaries) {
        let under = |p: &Path| {
            bases
                .iter()
                .flatten()
                .find_map(|b| Some(p.strip_prefix(b).ok()?.to_path_buf()))
        };
        // The root itself (a backup dir of `/`) would leave out everything: it is not one of these.
        let Some(rel) = p.and_then(under).filter(|r| !r.as_os_str().is_empty()) else {
            continue;
        };
        let path = Path::new("/").join(rel);
        if !out.iter().any(|n| n.path == path) {
            out.push(NeverCollected { path, why });
        }
    }
    out
}

/// Per-category counts for `--dry-run` and `catalog`.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CategoryCount {
    pub category: String,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    pub bytes: u64,
    pub commands: u64,
    pub absent: u64,
}

impl Plan {
    pub fn bytes(&self) -> u64 {
        self.items.iter().map(|i| i.size).sum()
    }

    pub fn counts(&self) -> Vec<CategoryCount> {
        let mut out = Vec::new();
        for c in &self.categories {
            slot(&mut out, c);
        }
        for item in &self.items {
            let c = slot(&mut out, &item.category);
            match item.kind {
                Kind::File => {
                    c.files += 1;
                    c.bytes += item.size;
                }
                Kind::Dir => c.dirs += 1,
                Kind::Symlink => c.symlinks += 1,
            }
        }
        for c in &self.commands {
            slot(&mut out, &c.category).commands += 1;
        }
        for a in &self.absent {
            slot(&mut out, &a.category).absent += 1;
        }
        out
    }
}

impl Plan {
    /// The `n` largest collected trees by file bytes, largest first: stored directories not inside another
    /// stored one (and files outside any; parents stored only as such do not count), each narrowed to the
    /// subdirectory that holds nearly all of it.
    pub fn largest(&self, n: usize) -> Vec<(PathBuf, u64)> {
        let dirs: HashSet<&Path> = (self.items.iter())
            .filter(|i| i.kind == Kind::Dir && !self.parents.contains(&i.host_path))
            .map(|i| i.host_path.as_path())
            .collect();
        let mut size: HashMap<&Path, u64> = HashMap::new();
        let mut children: HashMap<&Path, Vec<&Path>> = HashMap::new();
        let mut tops = Vec::new();
        for item in &self.items {
            let p = item.host_path.as_path();
            if self.parents.contains(p) {
                continue;
            }
            match p.parent().filter(|d| dirs.contains(d)) {
                Some(d) if item.kind == Kind::Dir => children.entry(d).or_default().push(p),
                Some(_) => {}
                None => tops.push(p),
            }
            for a in p.ancestors().filter(|a| *a == p || dirs.contains(a)) {
                *size.entry(a).or_default() += item.size;
            }
        }
        let bytes = |p: &Path| size.get(p).copied().unwrap_or(0);
        let mut out: Vec<(PathBuf, u64)> = (tops.into_iter())
            .map(|mut d| {
                let kids = |d: &Path| children.get(d).into_iter().flatten().copied();
                while let Some(c) = kids(d).find(|c| bytes(c) * 10 >= bytes(d) * 9) {
                    d = c;
                }
                (d.to_path_buf(), bytes(d))
            })
            .filter(|(_, b)| *b > 0)
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out.truncate(n);
        out
    }
}

fn slot<'a>(out: &'a mut Vec<CategoryCount>, category: &str) -> &'a mut CategoryCount {
    let i = out.iter().position(|c| c.category == category);
    let i = i.unwrap_or_else(|| {
        let category = category.to_string();
        out.push(CategoryCount {
            category,
            ..Default::default()
        });
        out.len() - 1
    });
    &mut out[i]
}

/// What one exclude removed from the collection.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Excluded {
    pub exclude: String,
    /// The category whose catalog entry names it, or `config` for `[collect] exclude`.
    pub from: String,
    /// Files, directories and links left out, everything under an excluded directory included.
    pub entries: u64,
    /// File bytes left out.
    pub bytes: u64,
}

/// Where a configured exclude comes from, in [`Excluded::from`].
pub const FROM_CONFIG: &str = "config";

/// The excludes of one category: its own, then the configured ones. Each names a path (a file, or a
/// directory and everything under it) or is a glob over absolute host paths.
struct Excludes {
    rules: Vec<(String, &'static str, GlobMatcher)>,
}

/// Where the passphrase file's exclusion comes from, in [`Excluded::from`].
pub const FROM_PASSPHRASE: &str = "passphrase_file";

/// A host path for `p`, a path on the host or one under the root (`--root DIR`).
fn host_path(root: &Root, p: &Path) -> PathBuf {
    p.strip_prefix(root.dir())
        .map_or_else(|_| p.to_path_buf(), |rel| Path::new("/").join(rel))
}

/// The excludes of every category: `[collect] exclude`, and the passphrase file (never collected: the key
/// must not travel inside the archive it opens).
fn global_excludes(root: &Root, config: &Config) -> Vec<(String, &'static str)> {
    let configured = config
        .collect
        .exclude
        .iter()
        .map(|e| (e.clone(), FROM_CONFIG));
    let pass = config
        .encryption
        .as_ref()
        .and_then(|e| e.passphrase_file.as_ref());
    let pass = pass.map(|p| {
        (
            globset::escape(&host_path(root, p).to_string_lossy()),
            FROM_PASSPHRASE,
        )
    });
    configured.chain(pass).collect()
}

/// The files proxkeep's config names (see [`Source::OwnConfig`]), as host paths.
fn own_config_files(root: &Root, config: &Config) -> Vec<PathBuf> {
    let recipients = config
        .encryption
        .as_ref()
        .and_then(|e| e.recipients_file.as_ref());
    let rclone = (!config.remote.is_empty()).then(|| {
        std::env::var_os("RCLONE_CONFIG").map_or_else(
            || PathBuf::from("/root/.config/rclone/rclone.conf"),
            PathBuf::from,
        )
    });
    let paths = recipients.cloned().into_iter().chain(rclone);
    paths.map(|p| host_path(root, &p)).collect()
}

impl Excludes {
    fn new(
        category: &'static str,
        cat_excludes: &[&str],
        global: &[(String, &'static str)],
    ) -> Excludes {
        let own = cat_excludes.iter().map(|p| (*p, category));
        let configured = global.iter().map(|(p, from)| (p.as_str(), *from));
        // Config globs were validated at load time; catalog globs by a unit test.
        let rules = own
            .chain(configured)
            .filter_map(|(pat, from)| {
                let g = GlobBuilder::new(pat).literal_separator(true).build().ok()?;
                Some((pat.to_string(), from, g.compile_matcher()))
            })
            .collect();
        Excludes { rules }
    }

    /// The first rule matching `host` itself.
    fn matching(&self, host: &Path) -> Option<usize> {
        self.rules.iter().position(|r| r.2.is_match(host))
    }

    /// The first rule matching `host` or one of its parent directories.
    fn covering(&self, host: &Path) -> Option<usize> {
        host.ancestors().find_map(|p| self.matching(p))
    }
}
struct Scanner<'a> {
    root: &'a Root,
    seen: HashSet<PathBuf>,
    /// Rules of every category (see [`global_excludes`]).
    global: Vec<(String, &'static str)>,
    /// Paths already counted in `plan.excluded`.
    excluded: HashSet<PathBuf>,
    /// The category names given to items so far.
    names: Vec<Arc<str>>,
    plan: Plan,
}

/// Scan the host: which categories apply, which files exist, which commands will run.
pub fn scan(root: &Root, facts: &HostFacts, config: &Config) -> Plan {
    scan_with(root, facts, config, None)
}

/// [`scan`] for a run that writes to `dir` (`--dir`), which is left out too.
pub fn scan_with(root: &Root, facts: &HostFacts, config: &Config, dir: Option<&Path>) -> Plan {
    let never_collected = own_paths(root, config, dir);
    let mut s = Scanner {
        root,
        seen: HashSet::new(),
        global: global_excludes(root, config),
        excluded: HashSet::new(),
        names: Vec::new(),
        plan: Plan {
            never_collected,
            ..Plan::default()
        },
    };
    let (pve, pbs) = (facts.role.has_pve(), facts.role.has_pbs());
    let run_commands = match config.commands.run {
        crate::config::RunCommands::Always => true,
        crate::config::RunCommands::Never => false,
        crate::config::RunCommands::Auto => root.is_system_root(),
    };
    let skip = |name: &str| config.collect.skip_categories.iter().any(|s| s == name);
    // Every configured exclude is shown, the ones that removed nothing too (a typo shows as 0).
    s.plan.excluded = (config.collect.exclude.iter())
        .map(|e| Excluded {
            exclude: e.clone(),
            from: FROM_CONFIG.into(),
            ..Default::default()
        })
        .collect();

    for cat in catalog::CATEGORIES {
        if !cat.applies_to(pve, pbs) || skip(cat.name) {
            continue;
        }
        s.plan.categories.push(cat.name.to_string());
        s.category(cat, config, run_commands, facts);
    }
    if !skip(catalog::EXTRA) && !config.collect.extra_paths.is_empty() {
        s.plan.categories.push(catalog::EXTRA.to_string());
        let ex = Excludes::new(catalog::EXTRA, &[], &s.global);
        for p in &config.collect.extra_paths {
            s.path(catalog::EXTRA, p, &ex);
        }
    }
    s.add_parents();
    let pass = s
        .plan
        .excluded
        .iter()
        .find(|x| x.from == FROM_PASSPHRASE && x.entries > 0);
    if let Some(x) = pass {
        let why = "passphrase_file is not collected: a key inside the archive travels with the lock it opens";
        s.plan.warnings.push(Warning::at(&x.exclude, why));
    }
    if s.plan.pve_tree_from_db {
        // Not absent: its content comes from config.db.
        s.plan.absent.retain(|a| a.path != "/etc/pve");
        let why = "empty (pmxcfs is not mounted): its tree is rebuilt from config.db, \
                   not read from a running pve-cluster (start it for a live copy)";
        s.plan.warnings.push(Warning::at("/etc/pve", why));
    }
    s.plan
}

/// Whether `host` is (under) one of proxkeep's own paths.
fn never(own: &[NeverCollected], host: &Path) -> bool {
    own.iter().any(|n| host.starts_with(&n.path))
}

/// Whether `c` is a directory on the file system `dev` (a mount point below is not entered).
fn dir_on(c: &walk::Child, dev: u64) -> bool {
    matches!(&c.node, Ok(n) if n.file_type == rustix::fs::FileType::Directory && n.dev == dev)
}

impl Scanner<'_> {
    fn category(&mut self, cat: &Category, config: &Config, run_commands: bool, facts: &HostFacts) {
        let ex = Excludes::new(cat.name, cat.exclude, &self.global);
        for src in cat.sources {
            match src {
                Source::Path { path } => self.path(cat.name, Path::new(path), &ex),
                Source::Glob { pattern } => self.glob(cat.name, pattern, &ex, None),
                Source::SmallDirs { pattern, max } => self.glob(cat.name, pattern, &ex, Some(*max)),
                Source::Listing { path, max } => {
                    let start = self.plan.items.len();
                    self.path(cat.name, Path::new(path), &ex);
                    self.list_large(start, *max);
                }
                Source::NamedIn { file, names } => {
                    let text = fs::read(self.root.path(file)).unwrap_or_default();
                    for named in names.paths(&String::from_utf8_lossy(&text)) {
                        self.path(cat.name, Path::new(&named), &ex);
                    }
                }
                Source::Nics if self.root.path("/sys/class/net").is_dir() => {
                    self.plan.nics = Some((cat.name.into(), crate::host::nics(self.root)));
                }
                Source::Nics => {}
                Source::OwnConfig => {
                    for own in own_config_files(self.root, config) {
                        self.path(cat.name, &own, &ex);
                    }
                }
                Source::Command { .. } if !run_commands => self.plan.commands_not_run += 1,
                Source::Command {
                    output,
                    program,
                    args,
                } => self.plan.commands.push(PlannedCommand {
                    category: cat.name.to_string(),
                    output: output.to_string(),
                    spec: CommandSpec::new(*program, args),
                }),
                Source::Pmxcfs => {
                    if self.root.path(catalog::CONFIG_DB).is_file() {
                        self.plan.config_db = Some(PathBuf::from(catalog::CONFIG_DB));
                        self.plan.pve_tree_from_db = !facts.pve_mounted;
                    } else {
                        // A PVE node without its cluster database: the backup goes on, but the admin must
                        // hear of it (and `check` says the same).
                        let message = "missing: this PVE node's cluster configuration database is not in the backup";
                        self.plan
                            .warnings
                            .push(Warning::at(catalog::CONFIG_DB, message));
                        self.plan.absent.push(Absent {
                            category: cat.name.into(),
                            path: catalog::CONFIG_DB.into(),
                        });
                    }
                }
            }
        }
    }

    fn path(&mut self, category: &str, host: &Path, ex: &Excludes) {
        if never(&self.plan.never_collected, host) {
            return;
        }
        let fs_path = self.root.path(host);
        if let Some(rule) = ex.covering(host) {
            return self.exclude(ex, rule, host, &fs_path);
        }
        match std::fs::symlink_metadata(&fs_path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.plan.absent.push(Absent {
                    category: category.into(),
                    path: host.display().to_string(),
                });
            }
            Err(e) => self.stat_failed(host, e),
            Ok(md) if md.is_dir() => self.tree(category, host, &fs_path, &md, ex),
            Ok(md) => self.add(category, host.to_path_buf(), &md),
        }
    }

    /// Every parent directory of a collected path is stored too, before its first child, so a restore into
    /// an empty target recreates `/root` 0700 rather than with a default mode. A parent that is not a
    /// directory (a symlink) is not stored.
    fn add_parents(&mut self) {
        for item in std::mem::take(&mut self.plan.items) {
            // A known parent had its own parents seen to when it was met (or will, when it comes later).
            let known = |p: &Path| p.parent().is_none() || self.seen.contains(p);
            let parent_known = item.host_path.parent().is_none_or(known);
            let parents: Vec<PathBuf> = (item.host_path.ancestors().skip(1))
                .filter(|a| !parent_known && !known(a))
                .map(Path::to_path_buf)
                .collect();
            for dir in parents.into_iter().rev() {
                match fs::symlink_metadata(self.root.path(&dir)) {
                    Ok(md) if md.is_dir() => {
                        self.plan.parents.insert(dir.clone());
                        self.add(&item.category, dir, &md);
                    }
                    Ok(_) => {}
                    Err(e) => self.stat_failed(&dir, e),
                }
            }
            self.plan.items.push(item);
        }
    }

    /// Count what `rule` leaves out at `host` (a whole tree for a directory), once per path.
    fn exclude(&mut self, ex: &Excludes, rule: usize, host: &Path, fs_path: &Path) {
        if !self.excluded.insert(host.to_path_buf()) {
            return;
        }
        let (exclude, from, _) = &ex.rules[rule];
        let x = self.left_out(exclude, from);
        let walker = walkdir::WalkDir::new(fs_path).same_file_system(true);
        for md in walker
            .into_iter()
            .flatten()
            .filter_map(|e| e.metadata().ok())
        {
            x.entries += 1;
            x.bytes += if md.is_file() { md.len() } else { 0 };
        }
    }

    /// The [`Excluded`] record of `exclude` from `from`, created empty when new.
    fn left_out(&mut self, exclude: &str, from: &str) -> &mut Excluded {
        let excluded = &mut self.plan.excluded;
        let i = excluded
            .iter()
            .position(|x| x.exclude == exclude && x.from == from);
        let i = i.unwrap_or_else(|| {
            excluded.push(Excluded {
                exclude: exclude.into(),
                from: from.into(),
                ..Default::default()
            });
            excluded.len() - 1
        });
        &mut excluded[i]
    }

    /// Items added since `start`: a tree whose files total more than `max` is taken back out, named.
    fn bound_tree(&mut self, start: usize, category: &str, host: &Path, max: u64) {
        let added = &self.plan.items[start..];
        let bytes: u64 = added.iter().map(|i| i.size).sum();
        if bytes <= max {
            return;
        }
        let entries = added.len() as u64;
        for item in self.plan.items.drain(start..) {
            self.seen.remove(&item.host_path);
        }
        let why = format!("{} (over {})", host.display(), format_size(max));
        let x = self.left_out(&why, category);
        x.entries += entries;
        x.bytes += bytes;
    }

    /// Files added since `start` that are over `max`: moved to `plan.listed`, named.
    fn list_large(&mut self, start: usize, max: u64) {
        let large = |i: &Item| i.kind == Kind::File && i.size > max;
        let (listed, kept) = self.plan.items.drain(start..).partition(large);
        let kept: Vec<Item> = kept;
        self.plan.items.extend(kept);
        for item in &listed {
            let what = format!(
                "listed with its SHA-256, not stored: over {}",
                format_size(max)
            );
            let why = format!("{} ({what})", item.host_path.display());
            let x = self.left_out(&why, &item.category);
            x.entries += 1;
            x.bytes += item.size;
        }
        self.plan.listed.extend(listed);
    }

    fn stat_failed(&mut self, host: &Path, e: impl std::fmt::Display) {
        let warning = Warning::at(host.display(), format!("cannot stat: {e}"));
        self.plan.warnings.push(warning);
    }

    /// `host`, a directory at `fs_path` (`md` its lstat), and everything below it on the same file system:
    /// depth first, names in byte order.
    fn tree(&mut self, category: &str, host: &Path, fs_path: &Path, md: &Metadata, ex: &Excludes) {
        if !catalog::is_pmxcfs_virtual(&host.to_string_lossy()) {
            self.add(category, host.to_path_buf(), md);
        }
        self.walk(category, host, fs_path, md.dev(), ex);
    }

    /// What is below the directory `dir` (at `dir_fs`), on the file system `dev`.
    fn walk(&mut self, category: &str, dir: &Path, dir_fs: &Path, dev: u64, ex: &Excludes) {
        let (children, error) = walk::read_sorted(dir_fs, dir);
        if let Some(e) = error {
            let message = format!("cannot read directory: {e}");
            self.plan.warnings.push(Warning::at(dir.display(), message));
        }
        for child in children {
            if never(&self.plan.never_collected, &child.host_path) {
                continue;
            }
            if let Some(rule) = ex.matching(&child.host_path) {
                self.exclude(ex, rule, &child.host_path, &dir_fs.join(child.name()));
                continue;
            }
            // The directory to enter next (its host path and its path under the root).
            let sub =
                dir_on(&child, dev).then(|| (child.host_path.clone(), dir_fs.join(child.name())));
            let host_path = child.host_path;
            let virtual_file = catalog::is_pmxcfs_virtual(&host_path.to_string_lossy());
            let node = match child.node {
                Ok(node) => node,
                Err(_) if virtual_file => continue,
                Err(e) => {
                    self.stat_failed(&host_path, e);
                    continue;
                }
            };
            if !virtual_file {
                self.add_as(
                    category,
                    host_path,
                    walk::kind_of(node.file_type),
                    node.size,
                );
            }
            if let Some((sub, sub_fs)) = sub {
                self.walk(category, &sub, &sub_fs, dev, ex);
            }
        }
    }

    /// The paths matching `pattern`; with `dir_max`, a matching directory holding more file bytes is left out.
    fn glob(&mut self, category: &str, pattern: &str, ex: &Excludes, dir_max: Option<u64>) {
        let Ok(glob) = GlobBuilder::new(pattern)
            .literal_separator(true)
            .build()
            .map(|g: Glob| g.compile_matcher())
        else {
            return;
        };
        // Walk from the longest literal prefix, only as deep as the pattern reaches.
        let comps: Vec<&str> = pattern.split('/').filter(|c| !c.is_empty()).collect();
        let literal = comps
            .iter()
            .take_while(|c| !c.contains(['*', '?', '[', '{']))
            .count();
        let base: PathBuf = std::iter::once("/")
            .chain(comps[..literal].iter().copied())
            .collect();
        let depth = comps.len() - literal;
        let fs_base = self.root.path(&base);
        if !fs_base.is_dir() {
            return;
        }
        for e in walkdir::WalkDir::new(&fs_base)
            .min_depth(depth)
            .max_depth(depth)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .flatten()
        {
            let rel = e.path().strip_prefix(&fs_base).unwrap_or(Path::new(""));
            let host = base.join(rel);
            if !glob.is_match(&host) || self.seen.contains(&host) {
                continue;
            }
            let start = self.plan.items.len();
            self.path(category, &host, ex);
            if let Some(max) = dir_max.filter(|_| e.file_type().is_dir()) {
                self.bound_tree(start, category, &host, max);
            }
        }
    }

    fn add(&mut self, category: &str, host_path: PathBuf, md: &std::fs::Metadata) {
        let kind = walk::kind_of(rustix::fs::FileType::from_raw_mode(md.mode()));
        self.add_as(category, host_path, kind, md.len());
    }

    /// Add an item of `kind` (`Err`: the name of a type not stored) unless an earlier category owns it.
    fn add_as(&mut self, category: &str, host_path: PathBuf, kind: Result<Kind, &str>, size: u64) {
        if !self.seen.insert(host_path.clone()) {
            return; // an earlier category owns it
        }
        let kind = match kind {
            Ok(kind) => kind,
            Err(what) => {
                self.plan.skipped.push(Skipped {
                    path: host_path.display().to_string(),
                    kind: what.into(),
                });
                return;
            }
        };
        let category = match self.names.iter().find(|n| ***n == *category) {
            Some(name) => name.clone(),
            None => {
                self.names.push(category.into());
                self.names[self.names.len() - 1].clone()
            }
        };
        self.plan.items.push(Item {
            host_path,
            category,
            kind,
            size: if kind == Kind::File { size } else { 0 },
        });
    }
}

#[cfg(test)]
mod tests;
