//! `diff`: what changed between two archives, or between an archive and the host now.
//!
//! Both sides become lists of [`IndexEntry`] (an archive's index.json; for the live host, the same scan a backup
//! would do, with every file hashed) and [`compare`] is a pure function of the two lists. Content is read only
//! for `--patch`, in a second pass, and only for the files that differ.
//!
//! What is compared is what restoring would change: content, kind, mode, owner, symlink target, extended
//! attribute names. Mtimes are not: touching a file (or adding one to a directory) is not a configuration change.
//! The archive's own `proxkeep/` entries (command outputs, config.db snapshot) are left out unless asked for:
//! command outputs such as `pvesh get /cluster/resources` carry uptimes and so differ on every run.

use super::InspectError;
use crate::archive::format::{Index, IndexEntry, Kind, Warning, path_fields};
use crate::archive::session::index_entry;
use crate::archive::writer::EntryHeader;
use crate::collect;
use crate::config::Config;
use crate::fsx::hash_reader;
use crate::host::{HostFacts, Root};
use crate::output::escape;
use crate::secrets::is_secret;
use crate::store::file_name;
use serde::Serialize;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Files larger than this get no unified diff (config files are far smaller; a 40 MB log is not reviewed so).
pub const PATCH_LIMIT: u64 = 1 << 20;

#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Add unified diffs of text files.
    pub patch: bool,
    /// Show secret files' content (and hashes) too.
    pub show_secrets: bool,
    /// Compare the archive's own `proxkeep/` entries as well.
    pub internal: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Added,
    Removed,
    Changed,
}

/// A field's value on the old side and on the new.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FromTo<T> {
    pub from: T,
    pub to: T,
}

fn from_to<T>(from: T, to: T) -> FromTo<T> {
    FromTo { from, to }
}

/// One way an entry present on both sides differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "field", rename_all = "lowercase")]
pub enum Detail {
    Kind(FromTo<Kind>),
    /// Sizes and hashes are left out (`None`) for secrets unless `--show-secrets`.
    Content {
        #[serde(skip_serializing_if = "Option::is_none")]
        from_size: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        to_size: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        from_sha256: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        to_sha256: Option<String>,
    },
    Mode(FromTo<String>),
    Owner(FromTo<String>),
    Target(FromTo<Option<String>>),
    Xattrs(FromTo<Vec<String>>),
}

impl std::fmt::Display for Detail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
        match self {
            Detail::Kind(c) => write!(f, "kind {} → {}", c.from.name(), c.to.name()),
            Detail::Content {
                from_size: Some(a),
                to_size: Some(b),
                ..
            } if a != b => write!(f, "content ({a} → {b} bytes)"),
            Detail::Content {
                from_size: Some(_), ..
            } => write!(f, "content"),
            Detail::Content { .. } => write!(f, "content (secret: not shown)"),
            Detail::Mode(c) => write!(f, "mode {} → {}", c.from, c.to),
            Detail::Owner(c) => write!(f, "owner {} → {}", c.from, c.to),
            Detail::Target(c) => write!(f, "target {} → {}", opt(&c.from), opt(&c.to)),
            Detail::Xattrs(c) => {
                write!(f, "xattrs [{}] → [{}]", c.from.join(","), c.to.join(","))
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    #[serde(skip)]
    pub raw: Vec<u8>,
    pub category: String,
    pub change: Change,
    /// Kind on the side where the entry exists (the new side when both have it).
    pub kind: Kind,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<Detail>,
    pub secret: bool,
    /// Unified diff (`--patch`, text files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch: Option<String>,
    /// Why there is no patch although one was asked for (binary, too large, secret).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_note: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub added: usize,
    pub removed: usize,
    pub changed: usize,
    pub differences: Vec<Difference>,
    /// Live files that could not be read (left out of the comparison).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
}

/// Catalog order of a category (then `extra`, then unknown names): the order `diff` groups by.
fn category_rank(name: &str) -> (usize, String) {
    use crate::catalog::{CATEGORIES, EXTRA};
    let rank = CATEGORIES.iter().position(|c| c.name == name);
    let unknown = CATEGORIES.len() + usize::from(name != EXTRA);
    (rank.unwrap_or(unknown), name.to_string())
}

/// Differences from `a` (old) to `b` (new), grouped by category in catalog order, then by path.
pub fn compare(a: &[IndexEntry], b: &[IndexEntry], opts: &Options) -> Vec<Difference> {
    let keep = |e: &&IndexEntry| opts.internal || !e.path_bytes().starts_with(b"proxkeep/");
    let old: BTreeMap<Vec<u8>, &IndexEntry> =
        a.iter().filter(keep).map(|e| (e.path_bytes(), e)).collect();
    let new: BTreeMap<Vec<u8>, &IndexEntry> =
        b.iter().filter(keep).map(|e| (e.path_bytes(), e)).collect();
    let mut out = Vec::new();
    let mk = |raw: &[u8], e: &IndexEntry, change: Change, details: Vec<Detail>| {
        let (path, path_hex) = path_fields(raw);
        Difference {
            secret: is_secret(&path),
            path,
            path_hex,
            raw: raw.to_vec(),
            category: e.category.clone(),
            change,
            kind: e.kind,
            details,
            patch: None,
            patch_note: None,
        }
    };
    for (p, o) in &old {
        match new.get(p) {
            None => out.push(mk(p, o, Change::Removed, vec![])),
            Some(n) => {
                let show = opts.show_secrets || !is_secret(&path_fields(p).0);
                let details = details(o, n, show);
                if !details.is_empty() {
                    out.push(mk(p, n, Change::Changed, details));
                }
            }
        }
    }
    for (p, n) in &new {
        if !old.contains_key(p) {
            out.push(mk(p, n, Change::Added, vec![]));
        }
    }
    out.sort_by_cached_key(|d| (category_rank(&d.category), d.raw.clone()));
    out
}

fn details(o: &IndexEntry, n: &IndexEntry, show_content: bool) -> Vec<Detail> {
    let mut d = Vec::new();
    if o.kind != n.kind {
        d.push(Detail::Kind(from_to(o.kind, n.kind)));
    } else if o.kind == Kind::File && (o.sha256 != n.sha256 || o.size != n.size) {
        let shown = |v: &Option<String>| v.clone().filter(|_| show_content);
        d.push(Detail::Content {
            from_size: show_content.then_some(o.size),
            to_size: show_content.then_some(n.size),
            from_sha256: shown(&o.sha256),
            to_sha256: shown(&n.sha256),
        });
    }
    if o.mode_bits() != n.mode_bits() && o.kind != Kind::Symlink && n.kind != Kind::Symlink {
        d.push(Detail::Mode(from_to(o.mode.clone(), n.mode.clone())));
    }
    if (o.uid, o.gid) != (n.uid, n.gid) {
        let owner = |e: &IndexEntry| format!("{}:{}", e.uid, e.gid);
        d.push(Detail::Owner(from_to(owner(o), owner(n))));
    }
    if o.kind == Kind::Symlink && n.kind == Kind::Symlink && o.target != n.target {
        d.push(Detail::Target(from_to(o.target.clone(), n.target.clone())));
    }
    if o.xattrs != n.xattrs {
        d.push(Detail::Xattrs(from_to(o.xattrs.clone(), n.xattrs.clone())));
    }
    d
}

fn report(
    from: String,
    to: String,
    differences: Vec<Difference>,
    warnings: Vec<Warning>,
) -> Report {
    let count = |c: Change| differences.iter().filter(|d| d.change == c).count();
    Report {
        added: count(Change::Added),
        removed: count(Change::Removed),
        changed: count(Change::Changed),
        from,
        to,
        differences,
        warnings,
    }
}

/// A unified diff (3 lines of context) of two versions of a text, headed `--- from` and `+++ to`; `None` is an
/// absent side. `Err(note)` when a side is binary: a NUL byte, or (unless `lossy`) not UTF-8. `diff --patch`
/// and the restore plan's diffs of held files both come from here.
pub fn text_diff<'a>(
    from: &str,
    to: &str,
    old: Option<&'a [u8]>,
    new: Option<&'a [u8]>,
    lossy: bool,
) -> Result<String, &'static str> {
    let text = |b: Option<&'a [u8]>| -> Result<Cow<'a, str>, &'static str> {
        match b {
            None => Ok(Cow::Borrowed("")),
            Some(b) if b.contains(&0) => Err("binary content"),
            Some(b) if lossy => Ok(String::from_utf8_lossy(b)),
            Some(b) => std::str::from_utf8(b)
                .map(Cow::Borrowed)
                .map_err(|_| "binary content (not UTF-8)"),
        }
    };
    let (o, n) = (text(old)?, text(new)?);
    Ok(similar::TextDiff::from_lines(o.as_ref(), n.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(from, to)
        .to_string())
}

fn unified(path: &str, old: Option<&[u8]>, new: Option<&[u8]>) -> Result<String, &'static str> {
    let side = |b: Option<&[u8]>, ab: &str| match b {
        Some(_) => format!("{ab}/{path}"),
        None => "/dev/null".into(),
    };
    text_diff(&side(old, "a"), &side(new, "b"), old, new, false)
}

/// Which side's content a difference's patch needs: (old, new).
fn needs(d: &Difference) -> (bool, bool) {
    let content = |x: &Detail| matches!(x, Detail::Content { .. } | Detail::Kind(_));
    match d.change {
        _ if d.kind != Kind::File => (false, false),
        Change::Added => (false, true),
        Change::Removed => (true, false),
        Change::Changed if d.details.iter().any(content) => (true, true),
        Change::Changed => (false, false),
    }
}

/// File content by archive path; `None` for a file above [`PATCH_LIMIT`].
type Contents = HashMap<Vec<u8>, Option<Vec<u8>>>;

/// Content of some files of an archive (second pass over it).
pub fn archive_files(archive: &Path, wanted: &HashSet<Vec<u8>>) -> Result<Contents, InspectError> {
    let mut out = HashMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    let mut reader = super::open_tar(archive)?;
    let offset = reader.offset.clone();
    let broken = |e: io::Error| InspectError::broken(archive, None, &offset, "", e);
    for entry in reader.archive.entries().map_err(broken)? {
        let mut entry = entry.map_err(broken)?;
        let p = entry.path_bytes().into_owned();
        if !wanted.contains(&p) || entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        if entry.size() > PATCH_LIMIT {
            out.insert(p, None);
            continue;
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(broken)?;
        out.insert(p, Some(data));
        if out.len() == wanted.len() {
            break;
        }
    }
    Ok(out)
}

fn live_files(
    root: &Root,
    from_db: &HashMap<Vec<u8>, Vec<u8>>,
    wanted: &HashSet<Vec<u8>>,
) -> Contents {
    wanted
        .iter()
        .filter_map(|p| {
            if let Some(data) = from_db.get(p) {
                let small = data.len() as u64 <= PATCH_LIMIT;
                return Some((p.clone(), small.then(|| data.clone())));
            }
            let fs_path = root.path(std::ffi::OsStr::from_bytes(p));
            let md = fs::symlink_metadata(&fs_path).ok()?;
            if md.len() > PATCH_LIMIT {
                return Some((p.clone(), None));
            }
            fs::read(&fs_path).ok().map(|d| (p.clone(), Some(d)))
        })
        .collect()
}

fn attach_patches(diffs: &mut [Difference], opts: &Options, old: &Contents, new: &Contents) {
    for d in diffs.iter_mut() {
        let (need_old, need_new) = needs(d);
        if !need_old && !need_new {
            continue;
        }
        if d.secret && !opts.show_secrets {
            d.patch_note = Some("secret: content not shown (--show-secrets shows it)".into());
            continue;
        }
        let side = |m: &Contents, needed: bool| -> Result<Option<Vec<u8>>, String> {
            if !needed {
                return Ok(None);
            }
            match m.get(&d.raw) {
                Some(Some(data)) => Ok(Some(data.clone())),
                Some(None) => Err(format!("larger than {} KiB: no patch", PATCH_LIMIT / 1024)),
                None => Err("content could not be read".into()),
            }
        };
        match (side(old, need_old), side(new, need_new)) {
            (Ok(o), Ok(n)) => match unified(&escape(&d.raw), o.as_deref(), n.as_deref()) {
                Ok(p) => d.patch = Some(p),
                Err(note) => d.patch_note = Some(note.into()),
            },
            (Err(note), _) | (_, Err(note)) => d.patch_note = Some(note),
        }
    }
}

/// The paths whose content the patches need: (old side, new side).
fn wanted(diffs: &[Difference], opts: &Options) -> (HashSet<Vec<u8>>, HashSet<Vec<u8>>) {
    let side = |which: fn((bool, bool)) -> bool| {
        let shown = diffs.iter().filter(|d| !d.secret || opts.show_secrets);
        let needed = shown.filter(|d| which(needs(d)));
        needed.map(|d| d.raw.clone()).collect()
    };
    (side(|n| n.0), side(|n| n.1))
}

/// Archive `a` (old) against archive `b` (new).
pub fn archives(a: &Path, b: &Path, opts: &Options) -> Result<Report, InspectError> {
    let (_, ia) = super::read_meta_index(a)?;
    let (_, ib) = super::read_meta_index(b)?;
    let mut diffs = compare(&ia.entries, &ib.entries, opts);
    if opts.patch {
        let (wo, wn) = wanted(&diffs, opts);
        let old = archive_files(a, &wo)?;
        let new = archive_files(b, &wn)?;
        attach_patches(&mut diffs, opts, &old, &new);
    }
    Ok(report(file_name(a), file_name(b), diffs, Vec::new()))
}

/// Archive `a` against the host under `root` now: what a backup taken now would hold.
pub fn live(
    a: &Path,
    root: &Root,
    config: &Config,
    opts: &Options,
) -> Result<Report, InspectError> {
    let (_, ia) = super::read_meta_index(a)?;
    let host = live_entries(root, config);
    let old: Vec<IndexEntry> = ia
        .entries
        .into_iter()
        .filter(|e| !host.unreadable.contains(&e.path_bytes()))
        .collect();
    // The host has no `proxkeep/` entries: never compare them here.
    let opts_live = Options {
        internal: false,
        ..*opts
    };
    let mut diffs = compare(&old, &host.index.entries, &opts_live);
    if opts.patch {
        let (wo, wn) = wanted(&diffs, opts);
        let old = archive_files(a, &wo)?;
        let new = live_files(root, &host.from_db, &wn);
        attach_patches(&mut diffs, opts, &old, &new);
    }
    let to = format!("host {}", root.dir().display());
    Ok(report(file_name(a), to, diffs, host.index.warnings))
}

pub struct Live {
    pub index: Index,
    /// Paths that exist but could not be read: left out of the comparison on both sides.
    pub unreadable: HashSet<Vec<u8>>,
    /// Content of the /etc/pve files rebuilt from config.db (pmxcfs down), for patches.
    pub from_db: HashMap<Vec<u8>, Vec<u8>>,
}

/// What a backup of the host under `root` would hold now: the same scan, every file hashed. When /etc/pve is
/// empty (pmxcfs down), its tree comes from config.db, as in a backup.
pub fn live_entries(root: &Root, config: &Config) -> Live {
    let facts = HostFacts::detect(root);
    let plan = collect::scan(root, &facts, config);
    let mut index = Index::new();
    index.warnings = plan.warnings.clone();
    let mut unreadable = HashSet::new();
    let mut from_db = HashMap::new();
    if plan.pve_tree_from_db
        && let Some(db) = &plan.config_db
    {
        match db_tree(&root.path(db)) {
            Ok(entries) => {
                for (e, data) in entries {
                    if e.kind == Kind::File {
                        from_db.insert(e.path_bytes(), data);
                    }
                    index.entries.push(e);
                }
            }
            Err(e) => {
                let why = format!("cannot read the tree from config.db: {e}");
                index.warnings.push(Warning::at("/etc/pve", why));
            }
        }
    }
    for item in &plan.items {
        let raw = item.archive_path();
        match live_entry(&root.path(&item.host_path), item) {
            Ok(e) => index.entries.push(e),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {} // vanished since the scan: absent now
            Err(e) => {
                let why = format!("cannot read, left out of the comparison: {e}");
                index
                    .warnings
                    .push(Warning::at(item.host_path.display(), why));
                unreadable.insert(raw.to_vec());
            }
        }
    }
    Live {
        index,
        unreadable,
        from_db,
    }
}

/// The /etc/pve tree in config.db as index entries, each with its content.
fn db_tree(db: &Path) -> Result<Vec<(IndexEntry, Vec<u8>)>, crate::pmxcfs::PmxcfsError> {
    // Read a consistent copy, as the backup does, never the live WAL database directly.
    let tmp = tempfile::tempdir().map_err(|source| crate::pmxcfs::PmxcfsError::TempFile {
        db: db.to_path_buf(),
        tmp_dir: std::env::temp_dir(),
        source,
    })?;
    let snap = crate::pmxcfs::snapshot(db, tmp.path())?;
    let tree = crate::pmxcfs::read_tree(snap.file.path())?;
    Ok(tree
        .into_iter()
        .map(|t| {
            let kind = match t.kind {
                crate::pmxcfs::NodeKind::Dir => Kind::Dir,
                crate::pmxcfs::NodeKind::File => Kind::File,
            };
            let path = format!("etc/pve/{}", t.path);
            let h = EntryHeader {
                path: path.as_bytes(),
                kind,
                mode: crate::pmxcfs::default_mode(&t.path, t.kind),
                uid: crate::pmxcfs::PMXCFS_UID,
                gid: crate::pmxcfs::PMXCFS_GID,
                mtime: t.mtime,
                size: t.data.len() as u64,
                xattrs: &[],
            };
            let sha256 = (kind == Kind::File).then(|| crate::archive::sha256_hex(&t.data));
            let e = index_entry(&h, "pve-cluster", sha256, None, Some("config.db"));
            (e, t.data)
        })
        .collect())
}

fn live_entry(fs_path: &Path, item: &collect::Item) -> io::Result<IndexEntry> {
    let (md, sha256, target, xattrs) = if item.kind == Kind::File {
        let f = collect::open_no_follow(fs_path)?;
        let md = f.metadata()?;
        let sha256 = hash_reader(&f)?.0;
        (md, Some(sha256), None, collect::xattrs_fd(&f))
    } else {
        let md = fs::symlink_metadata(fs_path)?;
        let target = match item.kind {
            Kind::Symlink => Some(path_fields(fs::read_link(fs_path)?.as_os_str().as_bytes()).0),
            _ => None,
        };
        (md, None, target, collect::xattrs_path(fs_path))
    };
    let kind = match Kind::of_file(md.file_type()) {
        Some(Kind::File) | None => item.kind,
        Some(k) => k,
    };
    let h = collect::header(item, kind, &md, &xattrs);
    Ok(index_entry(&h, &item.category, sha256, target, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, cat: &str, sha: &str, mode: &str) -> IndexEntry {
        IndexEntry {
            path: path.into(),
            path_hex: None,
            category: cat.into(),
            kind: Kind::File,
            size: sha.len() as u64,
            mode: mode.into(),
            uid: 0,
            gid: 0,
            mtime: 1,
            sha256: Some(sha.into()),
            target: None,
            xattrs: vec![],
            source: None,
        }
    }

    #[test]
    fn compare_reports_each_kind_of_change_grouped_by_category() {
        let a = vec![
            file("etc/pve/storage.cfg", "pve-cluster", "aa", "0640"),
            file("etc/pve/qemu-server/100.conf", "pve-cluster", "bb", "0640"),
            file("etc/hosts", "network", "cc", "0644"),
            file("etc/pve/priv/shadow.cfg", "pve-cluster", "dd", "0600"),
            file(
                "proxkeep/commands/network/ip-addr.json",
                "network",
                "x1",
                "0600",
            ),
            IndexEntry {
                kind: Kind::Symlink,
                target: Some("nodes/a".into()),
                sha256: None,
                ..file("etc/pve/local", "pve-cluster", "", "0777")
            },
            file("etc/same", "network", "ee", "0644"),
        ];
        let mut b = a.clone();
        b[0].sha256 = Some("AA".into());
        b.remove(1); // 100.conf removed
        b[1].mode = "0600".into(); // etc/hosts
        b[2].sha256 = Some("DD".into()); // secret changed
        b[3].sha256 = Some("x2".into()); // command output changed
        b[4].target = Some("nodes/b".into());
        b[5].mtime = 99; // mtime only: not a change
        b.push(file(
            "etc/network/interfaces.d/vlan",
            "network",
            "ff",
            "0644",
        ));
        let d = compare(&a, &b, &Options::default());
        let got: Vec<(&str, &str, Change)> = d
            .iter()
            .map(|x| (x.category.as_str(), x.path.as_str(), x.change))
            .collect();
        assert_eq!(
            got,
            vec![
                ("pve-cluster", "etc/pve/local", Change::Changed),
                ("pve-cluster", "etc/pve/priv/shadow.cfg", Change::Changed),
                (
                    "pve-cluster",
                    "etc/pve/qemu-server/100.conf",
                    Change::Removed
                ),
                ("pve-cluster", "etc/pve/storage.cfg", Change::Changed),
                ("network", "etc/hosts", Change::Changed),
                ("network", "etc/network/interfaces.d/vlan", Change::Added),
            ]
        );
        assert_eq!(
            d[0].details,
            vec![Detail::Target(from_to(
                Some("nodes/a".into()),
                Some("nodes/b".into())
            ))]
        );
        assert!(d[1].secret);
        // A secret's change carries neither sizes nor hashes.
        assert_eq!(
            d[1].details,
            vec![Detail::Content {
                from_size: None,
                to_size: None,
                from_sha256: None,
                to_sha256: None
            }]
        );
        assert_eq!(
            d[4].details,
            vec![Detail::Mode(from_to("0644".into(), "0600".into()))]
        );
        assert_eq!(d[4].details[0].to_string(), "mode 0644 → 0600");
        // --show-secrets shows the hashes; --internal brings the command outputs in.
        let d = compare(
            &a,
            &b,
            &Options {
                show_secrets: true,
                internal: true,
                ..Default::default()
            },
        );
        assert!(
            d.iter()
                .any(|x| x.path == "proxkeep/commands/network/ip-addr.json")
        );
        let s = d
            .iter()
            .find(|x| x.path == "etc/pve/priv/shadow.cfg")
            .unwrap();
        assert!(matches!(&s.details[0], Detail::Content { to_sha256: Some(h), .. } if h == "DD"));
    }

    #[test]
    fn detail_json_is_flat() {
        let d = Detail::Mode(from_to("0644".into(), "0600".into()));
        assert_eq!(
            serde_json::to_string(&d).unwrap(),
            r#"{"field":"mode","from":"0644","to":"0600"}"#
        );
        let t = Detail::Target(from_to(None, Some("x".into())));
        assert_eq!(
            serde_json::to_string(&t).unwrap(),
            r#"{"field":"target","from":null,"to":"x"}"#
        );
    }

    #[test]
    fn unified_diffs_and_binary() {
        let p = unified("etc/hosts", Some(b"a\nb\nc\n"), Some(b"a\nB\nc\n")).unwrap();
        assert!(
            p.contains("--- a/etc/hosts") && p.contains("+++ b/etc/hosts"),
            "{p}"
        );
        assert!(p.contains("-b\n") && p.contains("+B\n"), "{p}");
        let added = unified("etc/x", None, Some(b"new\n")).unwrap();
        assert!(
            added.contains("--- /dev/null") && added.contains("+new"),
            "{added}"
        );
        assert_eq!(
            unified("x", Some(b"a\0b"), Some(b"c")),
            Err("binary content")
        );
    }

    #[test]
    fn patches_skip_secrets_unless_asked() {
        let a = vec![
            file("etc/pve/priv/shadow.cfg", "pve-cluster", "1", "0600"),
            file("etc/hosts", "network", "1", "0644"),
        ];
        let mut b = a.clone();
        b[0].sha256 = Some("2".into());
        b[1].sha256 = Some("2".into());
        let content = |s: &str| -> Contents {
            [
                (
                    b"etc/pve/priv/shadow.cfg".to_vec(),
                    Some(format!("root:{s}\n").into_bytes()),
                ),
                (b"etc/hosts".to_vec(), Some(format!("h {s}\n").into_bytes())),
            ]
            .into_iter()
            .collect()
        };
        let opts = Options {
            patch: true,
            ..Default::default()
        };
        let mut d = compare(&a, &b, &opts);
        let (wo, _) = wanted(&d, &opts);
        assert!(
            !wo.contains(b"etc/pve/priv/shadow.cfg".as_slice()),
            "a secret is not even read"
        );
        attach_patches(&mut d, &opts, &content("old"), &content("new"));
        let secret = d.iter().find(|x| x.secret).unwrap();
        assert!(secret.patch.is_none() && secret.patch_note.as_deref().unwrap().contains("secret"));
        let hosts = d.iter().find(|x| !x.secret).unwrap();
        assert!(hosts.patch.as_deref().unwrap().contains("+h new"));
        let opts = Options {
            patch: true,
            show_secrets: true,
            ..Default::default()
        };
        let mut d = compare(&a, &b, &opts);
        attach_patches(&mut d, &opts, &content("old"), &content("new"));
        assert!(
            d.iter()
                .find(|x| x.secret)
                .unwrap()
                .patch
                .as_deref()
                .unwrap()
                .contains("+root:new")
        );
    }
}
