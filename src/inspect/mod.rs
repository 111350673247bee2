//! Knowing what you have without extracting anything: `list`, `show`, `ls`, `cat`, `verify` (and `diff`, in
//! [`diff`]). Everything reads archives sequentially with the same reader as the backup's read-back.
//!
//! Commands that stream (`ls`, `cat`) hand out everything they could read before a damaged spot and only then
//! fail with [`InspectError::Damaged`]: on a broken archive the readable part is exactly what an admin needs.

pub mod diff;
mod list;
mod read;
pub mod table;
mod verify;

pub use list::{Listed, State, list, list_safety};
use read::read_meta_index;
pub use read::{CatInfo, CategorySummary, LsEntry, Shown, cat, ls, show};
pub use verify::{Verified, verify, verify_dir};

use crate::archive::reader::{Problem, TarReader};
use crate::store::ResolveError;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error("cannot read {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{} is damaged: {problem}", archive.display())]
    Damaged { archive: PathBuf, problem: Problem },
    #[error("no entry {path:?} in {}", archive.display())]
    NoEntry { archive: PathBuf, path: String },
    #[error("{path} is a {kind} in {}, not a file{}", archive.display(), target.as_ref().map(|t| format!(" (-> {t})")).unwrap_or_default())]
    NotAFile {
        archive: PathBuf,
        path: String,
        kind: &'static str,
        target: Option<String>,
    },
    #[error("cannot write the output: {0}")]
    Output(io::Error),
}

impl InspectError {
    pub fn exit_code(&self) -> i32 {
        match self {
            InspectError::Resolve(_) => crate::exit::USAGE,
            InspectError::Damaged { .. } => crate::exit::DAMAGED,
            _ => crate::exit::FAILED,
        }
    }

    fn io(path: &Path) -> impl FnOnce(io::Error) -> InspectError + '_ {
        move |source| InspectError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn damaged(
        archive: &Path,
        path: Option<&[u8]>,
        offset: Option<u64>,
        message: impl Into<String>,
    ) -> InspectError {
        InspectError::Damaged {
            archive: archive.to_path_buf(),
            problem: crate::archive::reader::problem(path, message).at(offset),
        }
    }

    /// The stream broke where the decoder is now: "archive stream is damaged{what}: {e}".
    fn broken(
        archive: &Path,
        path: Option<&[u8]>,
        offset: &AtomicU64,
        what: &str,
        e: impl std::fmt::Display,
    ) -> InspectError {
        let at = Some(offset.load(Ordering::Relaxed));
        let message = format!("archive stream is damaged{what}: {e}");
        Self::damaged(archive, path, at, message)
    }
}

fn open_tar(archive: &Path) -> Result<TarReader, InspectError> {
    TarReader::open(archive).map_err(InspectError::io(archive))
}

/// Archive path as given on the command line (`/etc/pve/x`, `./etc/pve/x/`) → as stored (`etc/pve/x`).
pub fn normalize_entry_path(p: &str) -> String {
    let mut s = p.trim_start_matches('/');
    while let Some(rest) = s.strip_prefix("./") {
        s = rest.trim_start_matches('/');
    }
    s.trim_end_matches('/').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_paths() {
        assert_eq!(
            normalize_entry_path("/etc/pve/storage.cfg"),
            "etc/pve/storage.cfg"
        );
        assert_eq!(normalize_entry_path("./etc/pve/"), "etc/pve");
        assert_eq!(normalize_entry_path(".//etc"), "etc");
    }
}
