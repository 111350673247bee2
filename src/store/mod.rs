//! Where archives are kept. Here: the local backup directory, which files are this host's archives, and what an
//! ARCHIVE argument names. Below: the verify state recorded beside them ([`state`]), the tiers they are copied to
//! ([`tier`]) and which of them retention keeps ([`retention`]).

pub mod retention;
pub mod safety;
pub mod state;
pub mod tier;

use crate::archive::name::{ArchiveName, is_safety_file_name};
use std::path::{Path, PathBuf};

/// One archive file, in a directory or on a tier.
#[derive(Debug, Clone)]
pub struct Listed {
    pub file: String,
    pub name: ArchiveName,
    pub size: u64,
}

/// Of (file name, size) pairs, the archives of `host` (of any host when `None`), newest first. Anything whose
/// name does not parse as a proxkeep archive is ignored, never an error.
pub fn archives(files: impl IntoIterator<Item = (String, u64)>, host: Option<&str>) -> Vec<Listed> {
    let mut out: Vec<Listed> = files
        .into_iter()
        .filter_map(|(file, size)| {
            let name = ArchiveName::parse(&file)?;
            host.is_none_or(|h| h == name.host)
                .then_some(Listed { file, name, size })
        })
        .collect();
    out.sort_by(|a, b| (b.name.time, &b.file).cmp(&(a.name.time, &a.file)));
    out
}

/// The archives in `dir` (see [`archives`]): regular files only.
pub fn list(dir: &Path, host: Option<&str>) -> std::io::Result<Vec<Listed>> {
    let files = std::fs::read_dir(dir)?.flatten().filter_map(|e| {
        let name = e.file_name().into_string().ok()?;
        let md = e.metadata().ok().filter(|md| md.is_file())?;
        Some((name, md.len()))
    });
    Ok(archives(files, host))
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    #[error("no archive {spec:?}: {why}")]
    NotFound { spec: String, why: String },
    #[error("cannot read backup directory {dir}: {source}")]
    Dir {
        dir: PathBuf,
        source: std::io::Error,
    },
}

/// Remove the sidecars (`<archive>.sha256`) in `dir` whose archive is gone, as a retention killed between the two
/// removals left them. Only sidecars of proxkeep's archive names (any host's, safety archives' too) are touched;
/// returns what was removed.
pub fn sweep_orphans(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let ours = |a: &str| ArchiveName::parse(a).is_some() || is_safety_file_name(a);
    let mut removed = Vec::new();
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(archive) = name.to_str().and_then(|n| n.strip_suffix(".sha256")) else {
            continue;
        };
        let is_file = e.file_type().is_ok_and(|t| t.is_file());
        if is_file
            && ours(archive)
            && crate::fsx::is_absent(&dir.join(archive))
            && std::fs::remove_file(e.path()).is_ok()
        {
            removed.push(e.path());
        }
    }
    removed
}

/// What an ARCHIVE argument names: a path, a file name in `dir`, `latest` or `latest~N` (this host's newest,
/// or the N-th before it).
pub fn resolve(spec: &str, dir: &Path, host: &str) -> Result<PathBuf, ResolveError> {
    let not_found = |why: String| ResolveError::NotFound {
        spec: spec.to_string(),
        why,
    };
    if let Some(n) = latest_offset(spec) {
        let all = list(dir, Some(host)).map_err(|source| ResolveError::Dir {
            dir: dir.to_path_buf(),
            source,
        })?;
        let Some(l) = all.get(n) else {
            let (len, dir) = (all.len(), dir.display());
            let why = format!("{len} archive(s) of host {host} in {dir}");
            return Err(not_found(why));
        };
        return Ok(dir.join(&l.file));
    }
    let as_path = Path::new(spec);
    if spec.contains('/') || as_path.exists() {
        let file = as_path.is_file().then(|| as_path.to_path_buf());
        return file.ok_or_else(|| not_found("no such file".into()));
    }
    let in_dir = dir.join(spec);
    let why = || not_found(format!("not a file in {}", dir.display()));
    in_dir.is_file().then_some(in_dir).ok_or_else(why)
}

/// The last component of `path` as text (empty for none): an archive's file name.
pub fn file_name(path: &Path) -> String {
    let name = path.file_name().unwrap_or_default();
    name.to_string_lossy().into_owned()
}

/// `latest` → 0, `latest~N` → N; anything else is not a `latest` spec.
pub fn latest_offset(spec: &str) -> Option<usize> {
    match spec.strip_prefix("latest")? {
        "" => Some(0),
        rest => rest.strip_prefix('~')?.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::compression::Compression;
    use crate::host::Role;

    #[test]
    fn list_and_resolve() {
        let d = tempfile::tempdir().unwrap();
        let mk = |host: &str, secs: i64| {
            let n = ArchiveName::new(
                host,
                Role::Pve,
                jiff::Timestamp::from_second(secs).unwrap(),
                Compression::Zstd,
            );
            std::fs::write(d.path().join(n.to_string()), b"x").unwrap();
            n.to_string()
        };
        let old = mk("pve1", 1_000);
        let new = mk("pve1", 2_000);
        mk("pve2", 3_000);
        std::fs::write(d.path().join("notes.txt"), b"x").unwrap();
        std::fs::create_dir(d.path().join("pve1-pve-20261128T031500Z.tar.zst")).unwrap();
        let l = list(d.path(), Some("pve1")).unwrap();
        assert_eq!(
            l.iter().map(|x| x.file.as_str()).collect::<Vec<_>>(),
            vec![new.as_str(), old.as_str()]
        );
        assert_eq!(list(d.path(), None).unwrap().len(), 3);
        assert_eq!(
            resolve("latest", d.path(), "pve1").unwrap(),
            d.path().join(&new)
        );
        assert_eq!(
            resolve("latest~1", d.path(), "pve1").unwrap(),
            d.path().join(&old)
        );
        assert!(resolve("latest~2", d.path(), "pve1").is_err());
        assert_eq!(resolve(&old, d.path(), "x").unwrap(), d.path().join(&old));
        let abs = d.path().join(&new);
        assert_eq!(
            resolve(abs.to_str().unwrap(), Path::new("/nonexistent"), "x").unwrap(),
            abs
        );
        assert!(resolve("nope.tar.zst", d.path(), "pve1").is_err());
        assert_eq!(latest_offset("latest~x"), None);
        assert_eq!(latest_offset("latestx"), None);
    }
}
