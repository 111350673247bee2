//! pmxcfs `config.db`: consistent snapshots of the live database and the `/etc/pve` tree rebuilt from it.
//!
//! `/var/lib/pve-cluster/config.db` is the SQLite store behind the pmxcfs FUSE mount `/etc/pve`
//! (proxmox/pve-cluster `src/pmxcfs/database.c`). One table holds everything:
//!
//! ```sql
//! tree(inode INTEGER PRIMARY KEY, parent, version, writer, mtime, type, name TEXT, data BLOB)
//! ```
//!
//! * inode 0 is the `__version__` row carrying the db-wide version; it is not a file;
//! * `type` is 4 (`DT_DIR`, `data` NULL) or 8 (`DT_REG`);
//! * `parent` is the inode of a directory row, or 0 for entries directly under `/etc/pve`;
//! * names are unique per parent.
//!
//! pmxcfs runs the database in WAL mode and keeps writing to it, so [`snapshot`] copies it with SQLite's
//! online backup API (never a file copy, which would miss or tear the `-wal` content) and checks the copy
//! with `PRAGMA integrity_check`. When pmxcfs is down `/etc/pve` is empty; [`read_tree`] and [`extract`]
//! rebuild the tree from the rows, validating them as strictly as pmxcfs does on load (plus path safety).

mod db;
mod extract;
mod tree;

use std::io;
use std::path::{Path, PathBuf};

/// Owner and group pmxcfs shows for everything in `/etc/pve`: root, www-data.
pub const PMXCFS_UID: u32 = 0;
pub const PMXCFS_GID: u32 = 33;

/// Name of the inode-0 row that carries the db-wide version (pmxcfs `VERSIONFILENAME`).
const VERSION_NAME: &str = "__version__";

/// Everything that can go wrong reading, copying or extracting a pmxcfs database; every message names the db.
#[derive(Debug, thiserror::Error)]
pub enum PmxcfsError {
    #[error("cannot open pmxcfs database {}: {}", .0.display(), .1)]
    Open(PathBuf, #[source] rusqlite::Error),
    #[error("cannot read pmxcfs database {}: {}", .0.display(), .1)]
    Query(PathBuf, #[source] rusqlite::Error),
    #[error("{}: not a pmxcfs database (it has no `tree` table)", .0.display())]
    NotPmxcfs(PathBuf),
    #[error("cannot create a snapshot file for {} in {}: {source}", .db.display(), .tmp_dir.display())]
    TempFile {
        db: PathBuf,
        tmp_dir: PathBuf,
        source: io::Error,
    },
    #[error("online backup of {} failed: {}", .0.display(), .1)]
    Backup(PathBuf, #[source] rusqlite::Error),
    #[error("online backup of {} gave up: the database stayed busy/locked", .0.display())]
    Busy(PathBuf),
    #[error("integrity check of the snapshot of {} failed: {}", .0.display(), .1)]
    Integrity(PathBuf, String),
    #[error("snapshot of {}: cannot {}: {}", .0.display(), .1, .2)]
    Snapshot(PathBuf, &'static str, #[source] rusqlite::Error),
    #[error("snapshot of {}: journal_mode=DELETE was refused (sqlite answered {:?})", .0.display(), .1)]
    JournalMode(PathBuf, String),
    #[error("snapshot of {}: cannot read the size of {}: {}", .0.display(), .1.display(), .2)]
    SnapshotSize(PathBuf, PathBuf, #[source] io::Error),
    #[error("pmxcfs database {} has a broken tree: {}", .0.display(), .1)]
    Tree(PathBuf, TreeProblem),
    #[error("extracting {}: invalid node name {:?}: {}", .0.display(), .1, .2)]
    BadNodeName(PathBuf, String, &'static str),
    #[error("extracting {}: target directory {} is not empty", .0.display(), .1.display())]
    TargetNotEmpty(PathBuf, PathBuf),
    #[error("extracting {}: target {} is not a directory", .0.display(), .1.display())]
    TargetNotDir(PathBuf, PathBuf),
    #[error("extracting {}: refusing to go through or replace the symlink {}", .0.display(), .1.display())]
    Symlink(PathBuf, PathBuf),
    #[error("extracting {}: cannot {action} {}: {source}", .db.display(), .path.display())]
    Io {
        db: PathBuf,
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
}

/// A structural problem in the `tree` table; says which inode/name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TreeProblem {
    #[error("inode {inode}: column `{column}` {detail}")]
    BadValue {
        inode: i64,
        column: &'static str,
        detail: String,
    },
    #[error("inode {inode}: invalid name {name:?}: {reason}")]
    BadName {
        inode: u64,
        name: String,
        reason: &'static str,
    },
    #[error("inode {inode} ({name:?}): unknown type {kind} (expected 4 = directory or 8 = file)")]
    BadType { inode: u64, name: String, kind: i64 },
    #[error("inode {inode} ({name:?}) is a directory but carries {len} bytes of data")]
    DirWithData {
        inode: u64,
        name: String,
        len: usize,
    },
    #[error("inode 0 must be the `__version__` row, found the name {name:?}")]
    RootMisnamed { name: String },
    #[error("no `__version__` row (inode 0)")]
    MissingVersionRow,
    #[error("inode {inode} ({name:?}): parent directory inode {parent} is missing")]
    MissingParent {
        inode: u64,
        name: String,
        parent: u64,
    },
    #[error("inode {inode} ({name:?}): parent inode {parent} ({parent_name:?}) is not a directory")]
    ParentNotDir {
        inode: u64,
        name: String,
        parent: u64,
        parent_name: String,
    },
    #[error(
        "inode {inode}: duplicate name {name:?} in directory inode {parent} (also inode {other})"
    )]
    DuplicateName {
        inode: u64,
        name: String,
        parent: u64,
        other: u64,
    },
    #[error("inode {inode} ({name:?}) is part of a parent cycle (never reaches the top level)")]
    Cycle { inode: u64, name: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    Dir,
    File,
}

/// One row of the `tree` table placed in the tree rooted at `/etc/pve`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeEntry {
    /// Relative to `/etc/pve`, '/'-separated, no leading slash: `nodes/due/qemu-server/100.conf`.
    pub path: String,
    pub kind: NodeKind,
    pub mtime: i64,
    pub inode: u64,
    pub version: u64,
    /// File content; empty for directories.
    pub data: Vec<u8>,
}

pub use db::{DbSnapshot, check_integrity_of, db_version, snapshot};
pub use extract::{ExtractStats, extract};
pub use tree::read_tree;

/// Mode pmxcfs shows for a path (pve-docs pmxcfs.adoc "File Access Rights", pve-cluster `path_is_private`):
/// files 0640, directories 0755; `priv`, `nodes/<node>/priv` and everything below them 0600 / 0700.
pub fn default_mode(path: &str, kind: NodeKind) -> u32 {
    match (kind, path_is_private(path)) {
        (NodeKind::File, false) => 0o640,
        (NodeKind::Dir, false) => 0o755,
        (NodeKind::File, true) => 0o600,
        (NodeKind::Dir, true) => 0o700,
    }
}

fn query_err(db: &Path, source: rusqlite::Error) -> PmxcfsError {
    PmxcfsError::Query(db.to_path_buf(), source)
}

fn tree_err(db: &Path, problem: TreeProblem) -> PmxcfsError {
    PmxcfsError::Tree(db.to_path_buf(), problem)
}

fn bad_value(db: &Path, inode: i64, column: &'static str, detail: String) -> PmxcfsError {
    let problem = TreeProblem::BadValue {
        inode,
        column,
        detail,
    };
    tree_err(db, problem)
}

fn bad_name(db: &Path, inode: u64, name: String, reason: &'static str) -> PmxcfsError {
    let problem = TreeProblem::BadName {
        inode,
        name,
        reason,
    };
    tree_err(db, problem)
}

/// A usable single path component (row name or node name).
pub fn check_component(name: &str) -> Result<(), &'static str> {
    match name {
        "" => Err("empty name"),
        "." | ".." => Err("`.` and `..` are not allowed"),
        _ if name.contains('/') => Err("contains '/'"),
        _ if name.contains('\0') => Err("contains a NUL byte"),
        _ => Ok(()),
    }
}

/// pve-cluster `cfs-utils.c` `path_is_private`.
fn path_is_private(path: &str) -> bool {
    let path = path.trim_start_matches('/');
    let under =
        |p: &str, dir: &str| p == dir || p.strip_prefix(dir).is_some_and(|r| r.starts_with('/'));
    if under(path, "priv") {
        return true;
    }
    path.strip_prefix("nodes/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(_node, rest)| under(rest, "priv"))
}

#[cfg(test)]
mod tests {
    use super::extract::write_entries;
    use super::tree::tree_order;
    use super::*;
    use crate::fsx::timestamps;
    use rusqlite::{Connection, params};
    use rustix::fs::{AtFlags, Mode, OFlags};
    use std::collections::BTreeMap;
    use std::collections::HashMap;
    use std::fs::Permissions;
    use std::os::fd::AsFd;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::fs::PermissionsExt;

    const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS tree (inode INTEGER PRIMARY KEY NOT NULL, parent INTEGER NOT NULL CHECK(typeof(parent)=='integer'), version INTEGER NOT NULL CHECK(typeof(version)=='integer'), writer INTEGER NOT NULL CHECK(typeof(writer)=='integer'), mtime INTEGER NOT NULL CHECK(typeof(mtime)=='integer'), type INTEGER NOT NULL CHECK(typeof(type)=='integer'), name TEXT NOT NULL, data BLOB)";
    const T0: i64 = 1_767_225_600;

    fn mtime_of(inode: i64) -> i64 {
        T0 + inode * 61
    }

    fn new_db(path: &Path, wal: bool) -> Connection {
        let conn = Connection::open(path).unwrap();
        if wal {
            let mode: String = conn
                .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
                .unwrap();
            assert_eq!(mode, "wal");
        }
        conn.execute_batch(SCHEMA).unwrap();
        conn
    }

    fn ins(conn: &Connection, inode: i64, parent: i64, kind: i64, name: &str, data: Option<&[u8]>) {
        conn.execute(
            "INSERT INTO tree VALUES (?1, ?2, ?1, 0, ?3, ?4, ?5, ?6)",
            params![inode, parent, mtime_of(inode), kind, name, data],
        )
        .unwrap();
    }

    fn set_version(conn: &Connection, version: i64) {
        conn.execute(
            "INSERT OR REPLACE INTO tree VALUES (0, 0, ?1, 0, ?2, 8, '__version__', NULL)",
            params![version, T0 + 7],
        )
        .unwrap();
    }

    /// A small /etc/pve: nodes/due/qemu-server/100.conf, priv/authkey.key (binary), an empty file,
    /// and `nodes-x.cfg`, which a plain string sort would put between `nodes` and `nodes/due`.
    fn sample(conn: &Connection) {
        ins(conn, 1, 0, 4, "nodes", None);
        ins(conn, 2, 1, 4, "due", None);
        ins(conn, 3, 2, 4, "qemu-server", None);
        ins(
            conn,
            4,
            3,
            8,
            "100.conf",
            Some(&b"memory: 2048\ncores: 2\n"[..]),
        );
        ins(
            conn,
            5,
            0,
            8,
            "storage.cfg",
            Some(&b"dir: local\n\tpath /var/lib/vz\n"[..]),
        );
        ins(conn, 6, 0, 4, "priv", None);
        ins(
            conn,
            7,
            6,
            8,
            "authkey.key",
            Some(&[0u8, 0xff, 0x80, 10, 13][..]),
        );
        ins(conn, 8, 0, 8, "empty.cfg", None);
        ins(conn, 9, 0, 8, "nodes-x.cfg", Some(&b"x"[..]));
        ins(conn, 10, 2, 4, "priv", None);
        ins(conn, 11, 10, 8, "token", Some(&b"secret\n"[..]));
        set_version(conn, 11);
    }

    fn sample_db(dir: &Path) -> PathBuf {
        let path = dir.join("config.db");
        let conn = new_db(&path, true);
        sample(&conn);
        drop(conn);
        path
    }

    fn fixture_dir() -> Option<PathBuf> {
        let candidates = [
            std::env::var_os("PROXKEEP_PVE_FIXTURE").map(PathBuf::from),
            Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pve-node/etc/pve")),
            Some(PathBuf::from("/work/shared/fixtures/pve-node/etc/pve")),
        ];
        candidates.into_iter().flatten().find(|p| p.is_dir())
    }

    fn script() -> PathBuf {
        if let Some(p) = std::env::var_os("PROXKEEP_MAKE_CONFIG_DB") {
            return p.into();
        }
        let local =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/make_config_db.py");
        if local.is_file() {
            local
        } else {
            PathBuf::from("/work/main/tests/support/make_config_db.py")
        }
    }

    fn run_script(src: &Path, out: &Path) -> std::process::Output {
        std::process::Command::new("python3")
            .arg(script())
            .arg(src)
            .arg(out)
            .output()
            .expect("python3 runs")
    }

    /// Copy a directory tree (symlinks recreated, not followed); modes set to what pmxcfs shows and
    /// distinct mtimes, so a round trip can compare both.
    fn copy_fixture(src: &Path, dst: &Path) {
        fn copy(src: &Path, dst: &Path, rel: &str, counter: &mut i64) {
            std::fs::create_dir(dst).unwrap();
            let mut names: Vec<_> = std::fs::read_dir(src)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            for name in names {
                let s = src.join(&name);
                let d = dst.join(&name);
                let r = if rel.is_empty() {
                    name.clone()
                } else {
                    format!("{rel}/{name}")
                };
                let ft = std::fs::symlink_metadata(&s).unwrap().file_type();
                *counter += 1;
                if ft.is_symlink() {
                    std::os::unix::fs::symlink(std::fs::read_link(&s).unwrap(), &d).unwrap();
                } else if let Some(target) = materialised_link(&s, &r) {
                    std::os::unix::fs::symlink(target, &d).unwrap();
                } else if ft.is_dir() {
                    copy(&s, &d, &r, counter);
                    set_meta(&d, &r, NodeKind::Dir, T0 + *counter * 3600);
                } else {
                    std::fs::copy(&s, &d).unwrap();
                    set_meta(&d, &r, NodeKind::File, T0 + *counter * 3600);
                }
            }
        }
        fn set_meta(p: &Path, rel: &str, kind: NodeKind, mtime: i64) {
            std::fs::set_permissions(p, Permissions::from_mode(default_mode(rel, kind))).unwrap();
            rustix::fs::utimensat(
                rustix::fs::CWD,
                p,
                &timestamps(mtime),
                AtFlags::SYMLINK_NOFOLLOW,
            )
            .unwrap();
        }
        let mut counter = 0;
        copy(src, dst, "", &mut counter);
    }

    /// A pmxcfs virtual link that a copy without symlink support turned into a small file holding the
    /// link target (the shared fixture copy has `local` etc. as regular files); its target then.
    fn materialised_link(p: &Path, rel: &str) -> Option<String> {
        if !["local", "qemu-server", "lxc", "openvz"].contains(&rel) {
            return None;
        }
        let m = std::fs::symlink_metadata(p).ok()?;
        if !m.is_file() || m.len() > 255 {
            return None;
        }
        let target = String::from_utf8(std::fs::read(p).ok()?).ok()?;
        let target = target.trim_end_matches('\n');
        target.starts_with("nodes/").then(|| target.to_string())
    }

    #[derive(Debug, PartialEq, Eq)]
    enum Seen {
        Dir {
            mode: u32,
            mtime: i64,
        },
        File {
            mode: u32,
            mtime: i64,
            data: Vec<u8>,
        },
        Link(PathBuf),
    }

    /// Everything below `root` by relative path.
    fn scan(root: &Path) -> BTreeMap<String, Seen> {
        let mut out = BTreeMap::new();
        for e in walkdir::WalkDir::new(root).min_depth(1).follow_links(false) {
            let e = e.unwrap();
            let rel = e
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_str()
                .unwrap()
                .to_string();
            let m = std::fs::symlink_metadata(e.path()).unwrap();
            let seen = if m.file_type().is_symlink() {
                Seen::Link(std::fs::read_link(e.path()).unwrap())
            } else if m.is_dir() {
                Seen::Dir {
                    mode: m.mode() & 0o7777,
                    mtime: m.mtime(),
                }
            } else {
                Seen::File {
                    mode: m.mode() & 0o7777,
                    mtime: m.mtime(),
                    data: std::fs::read(e.path()).unwrap(),
                }
            };
            out.insert(rel, seen);
        }
        out
    }

    fn entries_as_seen(entries: &[TreeEntry]) -> BTreeMap<String, Seen> {
        entries
            .iter()
            .map(|e| {
                let mode = default_mode(&e.path, e.kind);
                let seen = match e.kind {
                    NodeKind::Dir => Seen::Dir {
                        mode,
                        mtime: e.mtime,
                    },
                    NodeKind::File => Seen::File {
                        mode,
                        mtime: e.mtime,
                        data: e.data.clone(),
                    },
                };
                (e.path.clone(), seen)
            })
            .collect()
    }

    fn tree_problem(err: PmxcfsError) -> TreeProblem {
        match err {
            PmxcfsError::Tree(_, problem) => problem,
            other => panic!("expected a tree problem, got {other:?}"),
        }
    }

    // ----- read_tree ------------------------------------------------------------------------------------

    #[test]
    fn read_tree_sample_order_and_content() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sample_db(tmp.path());
        let entries = read_tree(&db).unwrap();
        let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "empty.cfg",
                "nodes",
                "nodes/due",
                "nodes/due/priv",
                "nodes/due/priv/token",
                "nodes/due/qemu-server",
                "nodes/due/qemu-server/100.conf",
                "nodes-x.cfg",
                "priv",
                "priv/authkey.key",
                "storage.cfg",
            ]
        );
        let by_path: HashMap<&str, &TreeEntry> =
            entries.iter().map(|e| (e.path.as_str(), e)).collect();
        let conf = by_path["nodes/due/qemu-server/100.conf"];
        assert_eq!(conf.kind, NodeKind::File);
        assert_eq!(conf.data, b"memory: 2048\ncores: 2\n");
        assert_eq!((conf.inode, conf.version, conf.mtime), (4, 4, mtime_of(4)));
        assert_eq!(by_path["priv/authkey.key"].data, [0u8, 0xff, 0x80, 10, 13]);
        assert!(by_path["empty.cfg"].data.is_empty());
        assert_eq!(by_path["empty.cfg"].kind, NodeKind::File);
        assert_eq!(by_path["nodes/due"].kind, NodeKind::Dir);
        assert!(by_path["nodes/due"].data.is_empty());
        assert!(!paths.contains(&"__version__"));
        assert_eq!(db_version(&db).unwrap(), 11);
    }

    #[test]
    fn tree_order_puts_directories_before_their_children() {
        let mut v = vec!["a.conf", "a/b", "a-b", "a", "a/b/c", "a/b-c", "ab", "b"];
        v.sort_by(|a, b| tree_order(a, b));
        assert_eq!(
            v,
            ["a", "a/b", "a/b/c", "a/b-c", "a-b", "a.conf", "ab", "b"]
        );
    }

    #[test]
    fn read_tree_reproduces_the_fixture() {
        let Some(fixture) = fixture_dir() else {
            eprintln!("skipped: fixture directory not found (set PROXKEEP_PVE_FIXTURE)");
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("pve");
        copy_fixture(&fixture, &src);
        let db = tmp.path().join("config.db");
        let out = run_script(&src, &db);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let entries = read_tree(&db).unwrap();
        let mut expected = scan(&src);
        let links: Vec<String> = expected
            .iter()
            .filter(|(_, s)| matches!(s, Seen::Link(_)))
            .map(|(p, _)| p.clone())
            .collect();
        assert_eq!(links, ["local", "lxc", "openvz", "qemu-server"]);
        expected.retain(|_, s| !matches!(s, Seen::Link(_)));
        let files = expected
            .values()
            .filter(|s| matches!(s, Seen::File { .. }))
            .count();
        let dirs = expected
            .values()
            .filter(|s| matches!(s, Seen::Dir { .. }))
            .count();
        assert!(files > 100 && dirs > 10, "{files} files, {dirs} dirs");
        assert_eq!(entries_as_seen(&entries), expected);

        // The script's numbering rules: inode == version, 1..=n, and __version__ holds the max.
        assert!(entries.iter().all(|e| e.inode == e.version));
        let mut inodes: Vec<u64> = entries.iter().map(|e| e.inode).collect();
        inodes.sort();
        assert_eq!(inodes, (1..=entries.len() as u64).collect::<Vec<_>>());
        assert_eq!(db_version(&db).unwrap(), entries.len() as u64);
        let conn = Connection::open(&db).unwrap();
        let mode: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(conn);

        // A snapshot of it is the same tree.
        let snap = snapshot(&db, tmp.path()).unwrap();
        assert_eq!(snap.rows, entries.len() as u64 + 1);
        assert_eq!(read_tree(snap.file.path()).unwrap(), entries);

        // The script refuses to add to an existing db.
        let again = run_script(&src, &db);
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));
    }

    fn assert_problem(
        build: impl FnOnce(&Connection),
        check: impl FnOnce(&TreeProblem) -> bool,
        needle: &str,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config.db");
        let conn = new_db(&path, true);
        sample(&conn);
        build(&conn);
        drop(conn);
        let err = read_tree(&path).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains(needle), "{msg:?} lacks {needle:?}");
        let problem = tree_problem(err);
        assert!(check(&problem), "unexpected {problem:?}");
    }

    #[test]
    fn structural_errors_are_detected() {
        assert_problem(
            |c| ins(c, 20, 99, 8, "orphan.conf", Some(&b"x"[..])),
            |p| {
                matches!(
                    p,
                    TreeProblem::MissingParent {
                        inode: 20,
                        parent: 99,
                        ..
                    }
                )
            },
            "inode 20 (\"orphan.conf\"): parent directory inode 99 is missing",
        );
        assert_problem(
            |c| ins(c, 20, 0, 4, "firewall", Some(&b"data"[..])),
            |p| {
                matches!(
                    p,
                    TreeProblem::DirWithData {
                        inode: 20,
                        len: 4,
                        ..
                    }
                )
            },
            "inode 20 (\"firewall\") is a directory but carries 4 bytes",
        );
        assert_problem(
            |c| ins(c, 20, 1, 8, "..", Some(&b"x"[..])),
            |p| matches!(p, TreeProblem::BadName { inode: 20, name, .. } if name == ".."),
            "inode 20: invalid name \"..\"",
        );
        assert_problem(
            |c| ins(c, 20, 1, 4, ".", None),
            |p| matches!(p, TreeProblem::BadName { inode: 20, .. }),
            "inode 20: invalid name \".\"",
        );
        assert_problem(
            |c| ins(c, 20, 0, 8, "etc/passwd", Some(&b"x"[..])),
            |p| matches!(p, TreeProblem::BadName { inode: 20, reason, .. } if reason.contains('/')),
            "\"etc/passwd\"",
        );
        assert_problem(
            |c| ins(c, 20, 0, 8, "a\0b", Some(&b"x"[..])),
            |p| matches!(p, TreeProblem::BadName { inode: 20, .. }),
            "NUL",
        );
        assert_problem(
            |c| ins(c, 20, 0, 8, "", Some(&b"x"[..])),
            |p| matches!(p, TreeProblem::BadName { inode: 20, .. }),
            "empty name",
        );
        assert_problem(
            |c| ins(c, 20, 3, 8, "100.conf", Some(&b"other"[..])),
            |p| {
                matches!(
                    p,
                    TreeProblem::DuplicateName {
                        inode: 20,
                        parent: 3,
                        other: 4,
                        ..
                    }
                )
            },
            "inode 20: duplicate name \"100.conf\" in directory inode 3 (also inode 4)",
        );
        assert_problem(
            |c| {
                ins(c, 20, 21, 4, "loop-a", None);
                ins(c, 21, 20, 4, "loop-b", None);
            },
            |p| matches!(p, TreeProblem::Cycle { inode: 20 | 21, .. }),
            "parent cycle",
        );
        assert_problem(
            |c| ins(c, 20, 20, 4, "self", None),
            |p| matches!(p, TreeProblem::Cycle { inode: 20, .. }),
            "inode 20 (\"self\") is part of a parent cycle",
        );
        assert_problem(
            |c| ins(c, 20, 5, 8, "below-a-file", Some(&b"x"[..])),
            |p| {
                matches!(
                    p,
                    TreeProblem::ParentNotDir {
                        inode: 20,
                        parent: 5,
                        ..
                    }
                )
            },
            "parent inode 5 (\"storage.cfg\") is not a directory",
        );
        assert_problem(
            |c| ins(c, 20, 0, 10, "symlink", Some(&b"x"[..])),
            |p| {
                matches!(
                    p,
                    TreeProblem::BadType {
                        inode: 20,
                        kind: 10,
                        ..
                    }
                )
            },
            "unknown type 10",
        );
        assert_problem(
            |c| {
                c.execute("UPDATE tree SET name = 'root' WHERE inode = 0", [])
                    .unwrap();
            },
            |p| matches!(p, TreeProblem::RootMisnamed { name } if name == "root"),
            "inode 0 must be the `__version__` row",
        );
        assert_problem(
            |c| {
                c.execute("UPDATE tree SET version = -3 WHERE inode = 5", [])
                    .unwrap();
            },
            |p| {
                matches!(
                    p,
                    TreeProblem::BadValue {
                        inode: 5,
                        column: "version",
                        ..
                    }
                )
            },
            "inode 5: column `version` is negative (-3)",
        );
        assert_problem(
            |c| {
                c.execute(
                    "UPDATE tree SET name = CAST(X'66FF' AS TEXT) WHERE inode = 5",
                    [],
                )
                .unwrap();
            },
            |p| {
                matches!(
                    p,
                    TreeProblem::BadName {
                        inode: 5,
                        reason: "not valid UTF-8",
                        ..
                    }
                )
            },
            "not valid UTF-8",
        );
    }

    #[test]
    fn accepted_like_pmxcfs() {
        // A directory with a zero-length (non-NULL) blob and a db without a __version__ row both load in pmxcfs.
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config.db");
        let conn = new_db(&path, false);
        ins(&conn, 1, 0, 4, "nodes", Some(&b""[..]));
        ins(&conn, 2, 1, 8, "x.cfg", Some(&b"x"[..]));
        drop(conn);
        let entries = read_tree(&path).unwrap();
        assert_eq!(entries.len(), 2);
        assert!(matches!(
            tree_problem(db_version(&path).unwrap_err()),
            TreeProblem::MissingVersionRow
        ));
    }

    #[test]
    fn not_a_pmxcfs_db_or_missing() {
        let tmp = tempfile::tempdir().unwrap();
        let other = tmp.path().join("other.db");
        Connection::open(&other)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        let err = read_tree(&other).unwrap_err();
        assert!(matches!(err, PmxcfsError::NotPmxcfs { .. }), "{err:?}");
        assert!(err.to_string().contains("other.db"));
        assert!(matches!(
            snapshot(&other, tmp.path()).unwrap_err(),
            PmxcfsError::NotPmxcfs { .. }
        ));

        let missing = tmp.path().join("missing.db");
        let err = read_tree(&missing).unwrap_err();
        assert!(matches!(err, PmxcfsError::Open { .. }), "{err:?}");
        assert!(err.to_string().contains("missing.db"));
        assert!(snapshot(&missing, tmp.path()).is_err());
        assert!(!missing.exists(), "a read-only open must not create the db");

        let garbage = tmp.path().join("garbage.db");
        std::fs::write(&garbage, vec![0x5au8; 8192]).unwrap();
        let err = snapshot(&garbage, tmp.path()).unwrap_err();
        assert!(err.to_string().contains("garbage.db"), "{err}");
        // Nothing left behind in the directory but the two inputs (no snapshot file, no missing.db).
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }

    // ----- snapshot -------------------------------------------------------------------------------------

    fn header_journal_bytes(path: &Path) -> (u8, u8) {
        let b = std::fs::read(path).unwrap();
        (b[18], b[19])
    }

    #[test]
    fn snapshot_while_a_write_transaction_is_open() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sample_db(tmp.path());
        let out_dir = tmp.path().join("backup");
        std::fs::create_dir(&out_dir).unwrap();

        // Another connection (pmxcfs) holds a write transaction with uncommitted changes.
        let writer = Connection::open(&db).unwrap();
        writer.execute_batch("BEGIN IMMEDIATE").unwrap();
        ins(&writer, 12, 0, 8, "uncommitted.cfg", Some(&b"not yet"[..]));
        writer
            .execute("UPDATE tree SET data = X'00' WHERE inode = 5", [])
            .unwrap();
        set_version(&writer, 12);

        let snap = snapshot(&db, &out_dir).unwrap();
        let path = snap.file.path().to_path_buf();
        assert_eq!(path.parent().unwrap(), out_dir);
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
        assert_eq!(snap.rows, 12);
        assert_eq!(snap.size, std::fs::metadata(&path).unwrap().len());
        assert_eq!(
            header_journal_bytes(&path),
            (1, 1),
            "copy is in rollback-journal mode"
        );
        let names: Vec<_> = std::fs::read_dir(&out_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "no -wal/-shm beside the copy: {names:?}");

        let entries = read_tree(&path).unwrap();
        assert_eq!(entries, read_tree(&db).unwrap());
        assert!(entries.iter().all(|e| e.path != "uncommitted.cfg"));
        assert_eq!(db_version(&path).unwrap(), 11);

        writer.execute_batch("COMMIT").unwrap();
        let after = snapshot(&db, &out_dir).unwrap();
        assert_eq!(after.rows, 13);
        assert_eq!(db_version(after.file.path()).unwrap(), 12);

        drop(snap);
        assert!(!path.exists(), "snapshot file removed on drop");
    }

    #[test]
    fn snapshot_includes_committed_wal_content() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sample_db(tmp.path()); // closed: everything checkpointed into the main file
        let writer = Connection::open(&db).unwrap();
        writer.execute_batch("PRAGMA wal_autocheckpoint=0").unwrap();
        ins(
            &writer,
            12,
            0,
            8,
            "in-wal.cfg",
            Some(&b"only in the WAL\n"[..]),
        );
        set_version(&writer, 12);
        let wal = PathBuf::from(format!("{}-wal", db.display()));
        assert!(std::fs::metadata(&wal).unwrap().len() > 0);

        // A plain copy of the main file alone misses the committed change ...
        let plain = tmp.path().join("plain-copy.db");
        std::fs::copy(&db, &plain).unwrap();
        assert!(
            read_tree(&plain)
                .unwrap()
                .iter()
                .all(|e| e.path != "in-wal.cfg")
        );

        // ... the online backup has it, in a single self-contained file.
        let snap = snapshot(&db, tmp.path()).unwrap();
        assert_eq!(snap.rows, 13);
        let entries = read_tree(snap.file.path()).unwrap();
        let e = entries.iter().find(|e| e.path == "in-wal.cfg").unwrap();
        assert_eq!(e.data, b"only in the WAL\n");
        assert_eq!(db_version(snap.file.path()).unwrap(), 12);
        assert_eq!(header_journal_bytes(snap.file.path()), (1, 1));
        let copy = tmp.path().join("moved.db");
        std::fs::copy(snap.file.path(), &copy).unwrap();
        assert_eq!(read_tree(&copy).unwrap(), entries);
        drop(writer);
    }

    #[test]
    fn snapshot_reports_a_corrupted_db() {
        let tmp = tempfile::tempdir().unwrap();
        let db = tmp.path().join("config.db");
        let conn = Connection::open(&db).unwrap();
        conn.execute_batch("PRAGMA page_size=1024").unwrap();
        conn.execute_batch(SCHEMA).unwrap();
        let blob = vec![b'x'; 300];
        for i in 1..=300 {
            ins(&conn, i, 0, 8, &format!("{i}.conf"), Some(blob.as_slice()));
        }
        set_version(&conn, 300);
        drop(conn);
        assert!(snapshot(&db, tmp.path()).is_ok());

        // Garbage over one b-tree page in the middle of the file.
        let mut bytes = std::fs::read(&db).unwrap();
        assert!(bytes.len() > 40 * 1024);
        bytes[20 * 1024..21 * 1024].fill(0xa5);
        std::fs::write(&db, &bytes).unwrap();

        let err = snapshot(&db, tmp.path()).unwrap_err();
        let msg = err.to_string();
        match &err {
            PmxcfsError::Integrity(_, answer) => assert!(!answer.is_empty() && answer != "ok"),
            other => panic!("expected an integrity failure, got {other:?}"),
        }
        assert!(msg.contains("integrity check of the snapshot of"), "{msg}");
        assert!(msg.contains(&db.display().to_string()), "{msg}");
        assert!(
            msg.to_lowercase().contains("page"),
            "sqlite's answer is quoted: {msg}"
        );
        let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "the failed snapshot is cleaned up: {left:?}");
    }

    // ----- extract --------------------------------------------------------------------------------------

    #[test]
    fn extract_round_trip_of_the_fixture() {
        let Some(fixture) = fixture_dir() else {
            eprintln!("skipped: fixture directory not found (set PROXKEEP_PVE_FIXTURE)");
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("pve");
        copy_fixture(&fixture, &src);
        let db = tmp.path().join("config.db");
        let out = run_script(&src, &db);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );

        let target = tmp.path().join("staging/etc/pve");
        let stats = extract(&db, &target, Some("due")).unwrap();
        let source = scan(&src);
        let restored = scan(&target);
        assert_eq!(restored, source, "content, modes, mtimes and the 4 links");
        let count = |f: fn(&Seen) -> bool| source.values().filter(|s| f(s)).count() as u64;
        assert_eq!(stats.files, count(|s| matches!(s, Seen::File { .. })));
        assert_eq!(stats.dirs, count(|s| matches!(s, Seen::Dir { .. })));
        let bytes: u64 = source
            .values()
            .map(|s| match s {
                Seen::File { data, .. } => data.len() as u64,
                _ => 0,
            })
            .sum();
        assert_eq!(stats.bytes, bytes);
        assert_eq!(std::fs::metadata(&target).unwrap().mode() & 0o7777, 0o755);
        if rustix::process::geteuid().is_root() {
            for e in walkdir::WalkDir::new(&target) {
                let m = std::fs::symlink_metadata(e.unwrap().path()).unwrap();
                assert_eq!((m.uid(), m.gid()), (PMXCFS_UID, PMXCFS_GID));
            }
        }
    }

    #[test]
    fn extract_round_trip_of_the_sample() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sample_db(tmp.path());
        let target = tmp.path().join("out");
        std::fs::create_dir(&target).unwrap(); // existing and empty is fine
        let stats = extract(&db, &target, None).unwrap();
        assert_eq!(
            stats,
            ExtractStats {
                dirs: 5,
                files: 6,
                bytes: 22 + 29 + 5 + 1 + 7
            }
        );
        let entries = read_tree(&db).unwrap();
        assert_eq!(
            scan(&target),
            entries_as_seen(&entries),
            "no links without a node"
        );
        let m = std::fs::metadata(target.join("nodes/due/priv/token")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o600);
        assert_eq!(m.mtime(), mtime_of(11));
        let m = std::fs::metadata(target.join("nodes/due/priv")).unwrap();
        assert_eq!(m.mode() & 0o7777, 0o700);
        assert_eq!(m.mtime(), mtime_of(10));
    }

    #[test]
    fn extract_refuses_unsafe_targets() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sample_db(tmp.path());

        // Not empty.
        let full = tmp.path().join("full");
        std::fs::create_dir(&full).unwrap();
        std::fs::write(full.join("keep.txt"), b"mine").unwrap();
        let err = extract(&db, &full, None).unwrap_err();
        assert!(matches!(err, PmxcfsError::TargetNotEmpty(..)), "{err:?}");
        assert!(err.to_string().contains("not empty"));
        assert_eq!(std::fs::read(full.join("keep.txt")).unwrap(), b"mine");

        // A hidden file counts too.
        let hidden = tmp.path().join("hidden");
        std::fs::create_dir(&hidden).unwrap();
        std::fs::write(hidden.join(".x"), b"").unwrap();
        assert!(matches!(
            extract(&db, &hidden, None).unwrap_err(),
            PmxcfsError::TargetNotEmpty(..)
        ));

        // The target itself is a symlink (to an empty directory).
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        let err = extract(&db, &link, None).unwrap_err();
        assert!(matches!(err, PmxcfsError::Symlink(..)), "{err:?}");
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);

        // A file, not a directory.
        let file = tmp.path().join("file");
        std::fs::write(&file, b"").unwrap();
        assert!(matches!(
            extract(&db, &file, None).unwrap_err(),
            PmxcfsError::TargetNotDir(..)
        ));

        // Bad node names never reach the file system.
        for node in ["../x", "", "a/b", ".."] {
            let t = tmp.path().join("node-test");
            let err = extract(&db, &t, Some(node)).unwrap_err();
            assert!(
                matches!(err, PmxcfsError::BadNodeName(..)),
                "{node:?}: {err:?}"
            );
            assert!(!t.exists());
        }
    }

    #[test]
    fn extract_never_follows_a_symlink_on_the_way() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sample_db(tmp.path());
        let entries = read_tree(&db).unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir(&outside).unwrap();

        // A symlink appears where a directory of the tree goes (e.g. planted during the extraction).
        let staging = tmp.path().join("staging");
        std::fs::create_dir(&staging).unwrap();
        std::os::unix::fs::symlink(&outside, staging.join("nodes")).unwrap();
        let root =
            rustix::fs::open(&staging, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let err = write_entries(&db, &staging, root.as_fd(), &entries, false).unwrap_err();
        match &err {
            PmxcfsError::Symlink(_, path) => assert_eq!(path, &staging.join("nodes")),
            other => panic!("expected a symlink refusal, got {other:?}"),
        }
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);

        // A symlink where a file goes: not written through, the link target stays untouched.
        let staging2 = tmp.path().join("staging2");
        std::fs::create_dir(&staging2).unwrap();
        let victim = outside.join("victim");
        std::fs::write(&victim, b"original").unwrap();
        std::os::unix::fs::symlink(&victim, staging2.join("empty.cfg")).unwrap();
        let root =
            rustix::fs::open(&staging2, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let err = write_entries(&db, &staging2, root.as_fd(), &entries, false).unwrap_err();
        assert!(matches!(err, PmxcfsError::Symlink(..)), "{err:?}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"original");

        // A path that does not come from read_tree is refused component-wise.
        let staging3 = tmp.path().join("staging3");
        std::fs::create_dir(&staging3).unwrap();
        let root =
            rustix::fs::open(&staging3, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty()).unwrap();
        let evil = TreeEntry {
            path: "../outside/evil".into(),
            kind: NodeKind::File,
            mtime: T0,
            inode: 1,
            version: 1,
            data: b"x".to_vec(),
        };
        assert!(write_entries(&db, &staging3, root.as_fd(), &[evil], false).is_err());
        assert!(!outside.join("evil").exists());

        // A tree row named like a virtual link collides with it instead of being replaced.
        let path = tmp.path().join("with-local.db");
        let conn = new_db(&path, false);
        ins(&conn, 1, 0, 8, "local", Some(&b"x"[..]));
        set_version(&conn, 1);
        drop(conn);
        let err = extract(&path, &tmp.path().join("t4"), Some("due")).unwrap_err();
        assert!(err.to_string().contains("local"), "{err}");
    }

    #[test]
    fn default_mode_table() {
        use NodeKind::{Dir, File};
        let cases: &[(&str, NodeKind, u32)] = &[
            ("storage.cfg", File, 0o640),
            ("nodes", Dir, 0o755),
            ("nodes/due/qemu-server/100.conf", File, 0o640),
            ("nodes/due/qemu-server", Dir, 0o755),
            ("priv", Dir, 0o700),
            ("priv/authkey.key", File, 0o600),
            ("priv/lock", Dir, 0o700),
            ("priv/lock/ha_agent_due_lock", Dir, 0o700),
            ("priv/acme/default", File, 0o600),
            ("/priv/shadow.cfg", File, 0o600),
            ("nodes/due/priv", Dir, 0o700),
            ("nodes/due/priv/token", File, 0o600),
            ("nodes/due/pve-ssl.key", File, 0o640),
            ("nodes/priv", Dir, 0o755),
            ("nodes/priv/x.conf", File, 0o640),
            ("nodes/due/private", Dir, 0o755),
            ("privx", File, 0o640),
            ("private.cfg", File, 0o640),
            ("sdn/priv", Dir, 0o755),
            ("nodes/due/lxc/priv", Dir, 0o755),
        ];
        for &(path, kind, mode) in cases {
            assert_eq!(default_mode(path, kind), mode, "{path} {kind:?}");
        }
    }

    #[test]
    fn db_version_reads_the_version_row() {
        let tmp = tempfile::tempdir().unwrap();
        let db = sample_db(tmp.path());
        assert_eq!(db_version(&db).unwrap(), 11);
        let conn = Connection::open(&db).unwrap();
        conn.execute("UPDATE tree SET version = 4242 WHERE inode = 0", [])
            .unwrap();
        drop(conn);
        assert_eq!(db_version(&db).unwrap(), 4242);
    }
}
