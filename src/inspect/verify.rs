//! `verify`: read an archive back completely, check its sidecar, record the result.

use super::InspectError;
use crate::archive::compression::Compression;
use crate::archive::format::Totals;
use crate::archive::name::ArchiveName;
use crate::archive::reader::{self, Problem};
use crate::crypt::{self, CryptError};
use crate::fsx::sha256_file;
use crate::store::{self, file_name, state};
use serde::Serialize;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Serialize)]
pub struct Verified {
    pub archive: PathBuf,
    pub name: String,
    pub ok: bool,
    pub compression: Compression,
    pub size: u64,
    pub entries: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// `absent`, `ok` or `mismatch` (the `<archive>.sha256` file beside it).
    pub sidecar: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totals: Option<Totals>,
    pub problems: Vec<Problem>,
    /// The result could not be recorded in the state file (the verification itself is unaffected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_error: Option<String>,
    /// Only the file's SHA-256 against its sidecar was checked: an encrypted archive and no key to read it.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sidecar_only: bool,
}

impl Verified {
    /// A result with nothing read: no entries, no hash, no totals.
    fn new(
        archive: &Path,
        name: String,
        compression: Compression,
        size: u64,
        sidecar: &'static str,
        problems: Vec<Problem>,
    ) -> Self {
        Verified {
            archive: archive.to_path_buf(),
            name,
            ok: problems.is_empty(),
            compression,
            size,
            sidecar,
            problems,
            ..Default::default()
        }
    }
}

/// An encrypted archive without a key: the file's SHA-256 against its sidecar still catches a cut-off or
/// bit-rotted file. `None` when there is no sidecar to compare with (then nothing can be checked).
fn verify_sidecar_only(
    archive: &Path,
    md: &fs::Metadata,
) -> Result<Option<Verified>, InspectError> {
    let name = file_name(archive);
    if !archive.with_file_name(format!("{name}.sha256")).exists() {
        return Ok(None);
    }
    let sha = sha256_file(archive).map_err(InspectError::io(archive))?;
    let mut problems = Vec::new();
    let sidecar = check_sidecar(archive, &name, Some(&sha), &mut problems);
    let compression = ArchiveName::parse(&name).map_or(Compression::None, |n| n.compression);
    Ok(Some(Verified {
        sha256: Some(sha),
        sidecar_only: true,
        ..Verified::new(archive, name, compression, md.len(), sidecar, problems)
    }))
}

/// Read `archive` back completely (see [`reader::verify`]), check its sidecar, and record the result in the
/// state file of its directory when it is named like a proxkeep archive.
pub fn verify(archive: &Path) -> Result<Verified, InspectError> {
    let md = fs::metadata(archive).map_err(InspectError::io(archive))?;
    let v = match reader::verify(archive) {
        Ok(v) => v,
        Err(e) => {
            let no_key = matches!(crypt::in_io(&e), Some(CryptError::NoKey));
            if no_key && let Some(v) = verify_sidecar_only(archive, &md)? {
                return Ok(v);
            }
            return Err(InspectError::io(archive)(e));
        }
    };
    let name = file_name(archive);
    let mut problems = v.problems.clone();
    let sidecar = check_sidecar(archive, &name, v.sha256.as_deref(), &mut problems);
    let totals = v.index.as_ref().map(|i| i.totals.clone());
    let mut out = Verified {
        entries: v.entries,
        sha256: v.sha256.clone(),
        totals: totals.clone(),
        ..Verified::new(archive, name, v.compression, md.len(), sidecar, problems)
    };
    if ArchiveName::parse(&out.name).is_some() {
        let dir = crate::fsx::dir_of(archive);
        let problems = out.problems.len() as u64;
        let rec = state::Record::new(&md, out.ok, v.sha256, problems, totals, "verify");
        if let Err(e) = state::record(dir, &out.name, rec) {
            let file = dir.join(state::STATE_FILE);
            let why = format!("cannot record the result in {}: {e}", file.display());
            out.record_error = Some(why);
        }
    }
    Ok(out)
}

/// Compare the `<archive>.sha256` file (when present) with the file's hash. Returns its state.
fn check_sidecar(
    archive: &Path,
    name: &str,
    actual: Option<&str>,
    problems: &mut Vec<Problem>,
) -> &'static str {
    let side_name = format!("{name}.sha256");
    let mut mismatch = |message: String| {
        problems.push(reader::problem(Some(side_name.as_bytes()), message));
        "mismatch"
    };
    let text = match fs::read_to_string(archive.with_file_name(&side_name)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return "absent",
        Err(e) => return mismatch(format!("cannot read: {e}")),
    };
    // `sha256sum -c` format: "<64 hex>  <name>" (or " *<name>" in binary mode).
    let mut words = text.split_whitespace();
    let claimed = words.next().unwrap_or("").to_ascii_lowercase();
    let names_it = words.next().map(|n| n.trim_start_matches('*')) == Some(name);
    if claimed.len() != 64 || !claimed.bytes().all(|b| b.is_ascii_hexdigit()) {
        return mismatch("not in `sha256sum -c` format".into());
    }
    if !names_it {
        return mismatch(format!("does not name {name}"));
    }
    match actual {
        Some(a) if a == claimed => "ok",
        Some(a) => mismatch(format!("says sha256 {claimed}, but the archive's is {a}")),
        // The stream broke before its end: that problem is already reported, and the file hash is unknown.
        None => "unchecked",
    }
}

/// Verify every proxkeep archive in `dir` (all hosts), newest first. An archive that cannot even be opened
/// is reported as damaged, and the others are still checked.
pub fn verify_dir(dir: &Path) -> Result<Vec<Verified>, InspectError> {
    let found = store::list(dir, None).map_err(InspectError::io(dir))?;
    let mut files: Vec<(String, Compression, u64)> = found
        .into_iter()
        .map(|l| (l.file, l.name.compression, l.size))
        .collect();
    // The restore-safety archives too (after the backups): an undo that does not read back is no undo.
    let safety = crate::store::safety::list(dir, None).map_err(InspectError::io(dir))?;
    files.extend(
        safety
            .into_iter()
            .map(|f| (f.file, Compression::Zstd, f.size)),
    );
    Ok(files
        .into_iter()
        .map(|(name, compression, size)| {
            let path = dir.join(&name);
            verify(&path).unwrap_or_else(|e| {
                let problems = vec![reader::problem(None, e.to_string())];
                Verified::new(&path, name, compression, size, "unchecked", problems)
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_states() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("h-pve-20260101T000000Z.tar");
        let name = "h-pve-20260101T000000Z.tar";
        let h = "a".repeat(64);
        let mut p = Vec::new();
        assert_eq!(check_sidecar(&a, name, Some(&h), &mut p), "absent");
        fs::write(
            d.path().join(format!("{name}.sha256")),
            format!("{h}  {name}\n"),
        )
        .unwrap();
        assert_eq!(check_sidecar(&a, name, Some(&h), &mut p), "ok");
        assert!(p.is_empty());
        assert_eq!(
            check_sidecar(&a, name, Some(&"b".repeat(64)), &mut p),
            "mismatch"
        );
        assert_eq!(
            p[0].path.as_deref(),
            Some(format!("{name}.sha256").as_str())
        );
        fs::write(
            d.path().join(format!("{name}.sha256")),
            format!("{h}  other.tar\n"),
        )
        .unwrap();
        assert_eq!(check_sidecar(&a, name, Some(&h), &mut p), "mismatch");
        fs::write(d.path().join(format!("{name}.sha256")), "garbage\n").unwrap();
        assert_eq!(check_sidecar(&a, name, Some(&h), &mut p), "mismatch");
    }
}
