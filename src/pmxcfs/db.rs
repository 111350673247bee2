//! The database as SQLite sees it: a consistent snapshot of a live db, its integrity, its version row.

use super::{PmxcfsError, TreeProblem, VERSION_NAME, bad_value, query_err, tree_err};
use rusqlite::backup::{Backup, StepResult};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::fs::Permissions;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

/// How long [`snapshot`] retries a backup step that reports SQLITE_BUSY/SQLITE_LOCKED.
const BUSY_RETRIES: u32 = 200;
const BUSY_PAUSE: Duration = Duration::from_millis(50);
/// At most this many lines of a failed `PRAGMA integrity_check` go into the error message.
const INTEGRITY_LINES: usize = 10;

/// A consistent, self-contained copy of a config.db (journal_mode=DELETE, mode 0600, removed on drop).
#[derive(Debug)]
pub struct DbSnapshot {
    pub file: tempfile::NamedTempFile,
    pub size: u64,
    /// Rows in the `tree` table, the `__version__` row included.
    pub rows: u64,
}

/// Consistent copy of a (possibly live, WAL-mode) config.db into a new temp file created in `tmp_dir`.
///
/// The source is opened read-only and copied in one step of the online backup API (one read transaction,
/// so a writer committing meanwhile cannot tear or restart it; committed WAL content is included, open
/// write transactions are not). The copy must pass `PRAGMA integrity_check` and is switched to
/// `journal_mode=DELETE`, so the returned file is a single self-contained database.
pub fn snapshot(db: &Path, tmp_dir: &Path) -> Result<DbSnapshot, PmxcfsError> {
    let src = open_ro(db)?;
    let temp_err = |source| PmxcfsError::TempFile {
        db: db.to_path_buf(),
        tmp_dir: tmp_dir.to_path_buf(),
        source,
    };
    let file = tempfile::Builder::new()
        // `.proxkeep-*.<pid>.tmp`: the shape the next run sweeps if this process dies (kill -9).
        .prefix(".proxkeep-db.")
        .suffix(&format!(".{}.tmp", std::process::id()))
        .permissions(Permissions::from_mode(0o600))
        .tempfile_in(tmp_dir)
        .map_err(temp_err)?;
    // The create mode went through the umask; make it exactly 0600.
    file.as_file()
        .set_permissions(Permissions::from_mode(0o600))
        .map_err(temp_err)?;

    let snap_err =
        |step: &'static str| move |source| PmxcfsError::Snapshot(db.to_path_buf(), step, source);
    let mut dst = Connection::open_with_flags(
        file.path(),
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(snap_err("open the snapshot file"))?;
    copy_db(&src, &mut dst, db)?;
    drop(src);

    check_integrity(&dst, db)?;
    if !has_tree_table(&dst).map_err(snap_err("read the snapshot"))? {
        return Err(PmxcfsError::NotPmxcfs(db.to_path_buf()));
    }
    let rows: i64 = dst
        .query_row("SELECT count(*) FROM tree", [], |r| r.get(0))
        .map_err(snap_err("count the rows of the snapshot"))?;
    let answer: String = dst
        .query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0))
        .map_err(snap_err("switch the snapshot to journal_mode=DELETE"))?;
    if !answer.eq_ignore_ascii_case("delete") {
        return Err(PmxcfsError::JournalMode(db.to_path_buf(), answer));
    }
    dst.close()
        .map_err(|(_, source)| snap_err("close the snapshot")(source))?;

    let size = file
        .as_file()
        .metadata()
        .map_err(|e| PmxcfsError::SnapshotSize(db.to_path_buf(), file.path().to_path_buf(), e))?
        .len();
    Ok(DbSnapshot {
        file,
        size,
        rows: u64::try_from(rows).unwrap_or(0),
    })
}

/// `PRAGMA integrity_check` of a database file (read-only), e.g. one about to replace the live config.db.
pub fn check_integrity_of(db: &Path) -> Result<(), PmxcfsError> {
    check_integrity(&open_ro(db)?, db)
}

/// The db-wide version from the `__version__` row.
pub fn db_version(db: &Path) -> Result<u64, PmxcfsError> {
    let conn = open_ro(db)?;
    require_tree_table(&conn, db)?;
    let row = conn
        .query_row("SELECT version, name FROM tree WHERE inode = 0", [], |r| {
            let version = match r.get_ref(0)? {
                ValueRef::Integer(v) => Ok(v),
                other => Err(value_kind(other)),
            };
            let name = r.get_ref(1)?.as_bytes().unwrap_or_default();
            Ok((version, String::from_utf8_lossy(name).into_owned()))
        })
        .optional()
        .map_err(|source| query_err(db, source))?;
    let (version, name) = row.ok_or_else(|| tree_err(db, TreeProblem::MissingVersionRow))?;
    if name != VERSION_NAME {
        return Err(tree_err(db, TreeProblem::RootMisnamed { name }));
    }
    let bad = |detail: String| bad_value(db, 0, "version", detail);
    let version = version.map_err(|kind| bad(format!("holds {kind}, not an integer")))?;
    u64::try_from(version).map_err(|_| bad(format!("is negative ({version})")))
}

pub(super) fn open_ro(db: &Path) -> Result<Connection, PmxcfsError> {
    Connection::open_with_flags(
        db,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| PmxcfsError::Open(db.to_path_buf(), source))
}

fn has_tree_table(conn: &Connection) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'tree'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

pub(super) fn require_tree_table(conn: &Connection, db: &Path) -> Result<(), PmxcfsError> {
    if has_tree_table(conn).map_err(|source| query_err(db, source))? {
        Ok(())
    } else {
        Err(PmxcfsError::NotPmxcfs(db.to_path_buf()))
    }
}

/// Copy all pages in a single backup step: one read transaction on the source, so the copy is one
/// committed state of the database even while pmxcfs keeps writing.
fn copy_db(src: &Connection, dst: &mut Connection, db: &Path) -> Result<(), PmxcfsError> {
    let backup_err = |source| PmxcfsError::Backup(db.to_path_buf(), source);
    let backup = Backup::new(src, dst).map_err(backup_err)?;
    let mut retries = 0;
    loop {
        match backup.step(-1).map_err(backup_err)? {
            StepResult::Done => return Ok(()),
            StepResult::More => {}
            _ => {
                // Busy / Locked: a transient lock (e.g. WAL recovery); try again a bit later.
                retries += 1;
                if retries > BUSY_RETRIES {
                    return Err(PmxcfsError::Busy(db.to_path_buf()));
                }
                std::thread::sleep(BUSY_PAUSE);
            }
        }
    }
}

fn check_integrity(conn: &Connection, db: &Path) -> Result<(), PmxcfsError> {
    // Collect every line sqlite gives; on heavy damage it reports some lines and then fails a step with
    // SQLITE_CORRUPT, and both belong in the message.
    let mut lines = Vec::new();
    let outcome = (|| -> rusqlite::Result<()> {
        let mut stmt = conn.prepare("PRAGMA integrity_check")?;
        let mut rows = stmt.query([])?;
        while let Some(row) = rows.next()? {
            lines.push(match row.get_ref(0)? {
                ValueRef::Text(b) => String::from_utf8_lossy(b).into_owned(),
                other => value_kind(other).to_string(),
            });
        }
        Ok(())
    })();
    if outcome.is_ok() && lines.len() == 1 && lines[0] == "ok" {
        return Ok(());
    }
    let mut answer = lines[..lines.len().min(INTEGRITY_LINES)].join("; ");
    if lines.len() > INTEGRITY_LINES {
        answer.push_str(&format!("; ... ({} more)", lines.len() - INTEGRITY_LINES));
    }
    match outcome {
        Err(e) if answer.is_empty() => answer = e.to_string(),
        Err(e) => answer.push_str(&format!("; then: {e}")),
        Ok(()) if answer.is_empty() => answer = "no answer".to_string(),
        Ok(()) => {}
    }
    Err(PmxcfsError::Integrity(db.to_path_buf(), answer))
}

pub(super) fn value_kind(v: ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "an integer",
        ValueRef::Real(_) => "a real",
        ValueRef::Text(_) => "text",
        ValueRef::Blob(_) => "a blob",
    }
}
