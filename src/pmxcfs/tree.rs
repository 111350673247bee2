//! The rows of the `tree` table, validated as strictly as pmxcfs loads them, linked into paths.

use super::db::{open_ro, require_tree_table, value_kind};
use super::{
    NodeKind, PmxcfsError, TreeEntry, TreeProblem, VERSION_NAME, bad_name, bad_value,
    check_component, query_err, tree_err,
};
use rusqlite::Connection;
use rusqlite::types::ValueRef;
use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::Path;

const DT_DIR: i64 = 4;
const DT_REG: i64 = 8;
/// The query pmxcfs loads the db with (database.c), ordered so error reports are deterministic.
const LOAD_ALL: &str =
    "SELECT inode, parent, version, writer, mtime, type, name, data FROM tree ORDER BY inode";

/// All entries of the `tree` table as a tree rooted at `/etc/pve`, `__version__` excluded, sorted by path
/// with every directory directly before its children (bytewise, '/' lowest).
///
/// Fails on anything pmxcfs would refuse to load (unknown type, directory with data, missing or non-directory
/// parent, duplicate name in a directory, inode 0 not named `__version__`) and on what would make an unsafe
/// path (empty name, `.`, `..`, '/' or NUL in a name, parent cycles, non-UTF-8 names).
pub fn read_tree(db: &Path) -> Result<Vec<TreeEntry>, PmxcfsError> {
    let conn = open_ro(db)?;
    require_tree_table(&conn, db)?;
    let rows = load_rows(&conn, db)?;
    drop(conn);
    build_tree(rows).map_err(|problem| tree_err(db, problem))
}

/// One validated row (inode != 0).
#[derive(Debug)]
struct Row {
    inode: u64,
    parent: u64,
    version: u64,
    mtime: i64,
    kind: NodeKind,
    name: String,
    data: Vec<u8>,
}

/// Read all rows, checking each on its own (types, names, data). The `__version__` row is checked and dropped.
fn load_rows(conn: &Connection, db: &Path) -> Result<Vec<Row>, PmxcfsError> {
    let qerr = |source| query_err(db, source);
    let mut stmt = conn.prepare(LOAD_ALL).map_err(qerr)?;
    let mut rows = stmt.query([]).map_err(qerr)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(qerr)? {
        // INTEGER PRIMARY KEY is the rowid, always an integer; be defensive anyway (reported as inode -1).
        let inode_raw = match r.get_ref(0).map_err(qerr)? {
            ValueRef::Integer(i) => i,
            _ => -1,
        };
        let bad = |column, detail| bad_value(db, inode_raw, column, detail);
        let holds = |v: ValueRef<'_>, what: &str| format!("holds {}, not {what}", value_kind(v));
        let int = |idx: usize, column: &'static str| match r.get_ref(idx).map_err(qerr)? {
            ValueRef::Integer(i) => Ok(i),
            other => Err(bad(column, holds(other, "an integer"))),
        };
        let unsigned = |idx: usize, column: &'static str| {
            let v = int(idx, column)?;
            u64::try_from(v).map_err(|_| bad(column, format!("is negative ({v})")))
        };
        let inode = unsigned(0, "inode")?;
        let parent = unsigned(1, "parent")?;
        let version = unsigned(2, "version")?;
        int(3, "writer")?;
        let mtime = int(4, "mtime")?;
        let kind_raw = int(5, "type")?;
        let name = match r.get_ref(6).map_err(qerr)? {
            ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
            other => return Err(bad("name", holds(other, "text"))),
        };
        let name = String::from_utf8(name).map_err(|e| {
            let name = String::from_utf8_lossy(e.as_bytes()).into_owned();
            bad_name(db, inode, name, "not valid UTF-8")
        })?;
        let data = match r.get_ref(7).map_err(qerr)? {
            ValueRef::Null => Vec::new(),
            ValueRef::Text(b) | ValueRef::Blob(b) => b.to_vec(),
            other => return Err(bad("data", holds(other, "a blob"))),
        };

        // Same order of checks as pmxcfs' bdb_backend_load_index: name, type, data, then the root row.
        let kind = match kind_raw {
            DT_DIR => NodeKind::Dir,
            DT_REG => NodeKind::File,
            kind => return Err(tree_err(db, TreeProblem::BadType { inode, name, kind })),
        };
        if kind == NodeKind::Dir && !data.is_empty() {
            // pmxcfs refuses a directory with data; a zero-length blob counts as no data there too.
            let len = data.len();
            return Err(tree_err(db, TreeProblem::DirWithData { inode, name, len }));
        }
        if inode == 0 {
            if name != VERSION_NAME {
                return Err(tree_err(db, TreeProblem::RootMisnamed { name }));
            }
            continue;
        }
        if let Err(reason) = check_component(&name) {
            return Err(bad_name(db, inode, name, reason));
        }
        out.push(Row {
            inode,
            parent,
            version,
            mtime,
            kind,
            name,
            data,
        });
    }
    Ok(out)
}

/// Link the rows (sorted by inode) into paths and sort them.
fn build_tree(rows: Vec<Row>) -> Result<Vec<TreeEntry>, TreeProblem> {
    let index: HashMap<u64, usize> = rows.iter().enumerate().map(|(i, r)| (r.inode, i)).collect();

    for r in &rows {
        if r.parent == 0 {
            continue;
        }
        match index.get(&r.parent).map(|&p| &rows[p]) {
            None => {
                return Err(TreeProblem::MissingParent {
                    inode: r.inode,
                    name: r.name.clone(),
                    parent: r.parent,
                });
            }
            Some(p) if p.kind != NodeKind::Dir => {
                return Err(TreeProblem::ParentNotDir {
                    inode: r.inode,
                    name: r.name.clone(),
                    parent: r.parent,
                    parent_name: p.name.clone(),
                });
            }
            Some(_) => {}
        }
    }

    let mut seen: HashMap<(u64, &str), u64> = HashMap::with_capacity(rows.len());
    for r in &rows {
        if let Some(other) = seen.insert((r.parent, r.name.as_str()), r.inode) {
            return Err(TreeProblem::DuplicateName {
                inode: r.inode,
                name: r.name.clone(),
                parent: r.parent,
                other,
            });
        }
    }
    drop(seen);

    // Paths by walking up the parents; a row met twice on one walk is on a cycle.
    let mut paths: Vec<Option<String>> = vec![None; rows.len()];
    let mut visiting = vec![false; rows.len()];
    for start in 0..rows.len() {
        let mut chain = Vec::new();
        let mut cur = start;
        while paths[cur].is_none() {
            if visiting[cur] {
                return Err(TreeProblem::Cycle {
                    inode: rows[cur].inode,
                    name: rows[cur].name.clone(),
                });
            }
            visiting[cur] = true;
            chain.push(cur);
            match rows[cur].parent {
                0 => break,
                p => cur = index[&p],
            }
        }
        for &i in chain.iter().rev() {
            let (parent, name) = (rows[i].parent, &rows[i].name);
            paths[i] = Some(match parent {
                0 => name.clone(),
                p => format!("{}/{name}", paths[index[&p]].as_deref().unwrap_or_default()),
            });
        }
    }

    let mut entries: Vec<TreeEntry> = rows
        .into_iter()
        .zip(paths)
        .map(|(r, path)| TreeEntry {
            path: path.unwrap_or_default(),
            kind: r.kind,
            mtime: r.mtime,
            inode: r.inode,
            version: r.version,
            data: r.data,
        })
        .collect();
    entries.sort_by(|a, b| tree_order(&a.path, &b.path));
    Ok(entries)
}

/// Bytewise path order with '/' lowest: a directory comes directly before its children.
pub(super) fn tree_order(a: &str, b: &str) -> Ordering {
    let key = |c: u8| if c == b'/' { 0 } else { c };
    a.bytes().map(key).cmp(b.bytes().map(key))
}
