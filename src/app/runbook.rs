//! `proxkeep runbook`: the rebuild guide of one archive, rendered, on stdout or written to a file.

use crate::inspect::InspectError;
use crate::runbook::{self, Format, Runbook};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RunbookError {
    #[error(transparent)]
    Read(#[from] InspectError),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl RunbookError {
    pub fn exit_code(&self) -> i32 {
        match self {
            RunbookError::Read(e) => e.exit_code(),
            RunbookError::Write { .. } => crate::exit::FAILED,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub archive: PathBuf,
    pub format: Format,
    /// The file written (mode 0600, replaced atomically when it exists); `None`: the text is for stdout.
    pub out: Option<PathBuf>,
    pub bytes: usize,
    pub sections: Vec<String>,
    /// The guide itself, for `--json` without `--out`.
    #[serde(skip)]
    pub runbook: Runbook,
    /// The rendered guide.
    #[serde(skip)]
    pub text: String,
}

/// Read `archive`, build its guide and render it as `format`; with `out`, write it there (0600, atomically:
/// a runbook is regenerated, so an existing file is replaced, never left half-written). The guide's commands
/// name the archive by its file name, as `TIER:FILE` when it was fetched from tier `tier` (`remote:b2`).
pub fn run(
    archive: &Path,
    tier: Option<&str>,
    format: Format,
    out: Option<&Path>,
) -> Result<Report, RunbookError> {
    let contents = runbook::read(archive)?;
    let file = archive.file_name().unwrap_or_default().to_string_lossy();
    let name = match tier.map(|t| t.split_once(':').map_or(t, |(_, n)| n)) {
        Some(t) => format!("{t}:{file}"),
        None => file.into_owned(),
    };
    let rb = runbook::build(&contents, &name);
    let text = format.render(&rb);
    if let Some(path) = out {
        crate::fsx::write_atomic(path, text.as_bytes(), 0o600).map_err(|source| {
            RunbookError::Write {
                path: path.to_path_buf(),
                source,
            }
        })?;
    }
    Ok(Report {
        archive: archive.to_path_buf(),
        format,
        out: out.map(crate::app::absolute),
        bytes: text.len(),
        sections: rb.sections.iter().map(|s| s.title.clone()).collect(),
        runbook: rb,
        text,
    })
}
