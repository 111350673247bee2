//! Where archives are kept. Here: the local backup directory, which files are this host's archives, and what an
//! ARCHIVE argument names. Below: the verify state recorded beside them ([`state`]), the tiers they are copied to
//! ([`tier`]) and which of them retention keeps ([`retention`]).

pub mod retention;
pub mod state;
pub mod tier;

use crate::archive::name::ArchiveName;
use std::path::{Path, PathBuf};

/// One archive file found in a directory.
#[derive(Debug, Clone)]
pub struct Listed {
    pub path: PathBuf,
    pub name: ArchiveName,
    pub size: u64,
}

/// Archives in `dir` (of `host` when given), newest first. Anything whose name does not parse as a proxkeep
/// archive is ignored, never an error.
pub fn list(dir: &Path, host: Option<&str>) -> std::io::Result<Vec<Listed>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let Ok(e) = e else { continue };
        let Some(name) = e.file_name().to_str().and_then(ArchiveName::parse) else {
            continue;
        };
        if host.is_some_and(|h| h != name.host) {
            continue;
        }
        let Ok(md) = e.metadata() else { continue };
        if !md.is_file() {
            continue;
        }
        out.push(Listed {
            path: e.path(),
            name,
            size: md.len(),
        });
    }
    out.sort_by(|a, b| {
        b.name
            .time
            .cmp(&a.name.time)
            .then_with(|| b.path.cmp(&a.path))
    });
    Ok(out)
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
        return all.get(n).map(|l| l.path.clone()).ok_or_else(|| {
            not_found(format!(
                "{} archive(s) of host {host} in {}",
                all.len(),
                dir.display()
            ))
        });
    }
    let as_path = Path::new(spec);
    if spec.contains('/') || as_path.exists() {
        return if as_path.is_file() {
            Ok(as_path.to_path_buf())
        } else {
            Err(not_found("no such file".into()))
        };
    }
    let in_dir = dir.join(spec);
    if in_dir.is_file() {
        Ok(in_dir)
    } else {
        Err(not_found(format!("not a file in {}", dir.display())))
    }
}

/// The last component of `path` as text (empty for none): an archive's file name.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
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
            l.iter()
                .map(|x| x.path.file_name().unwrap().to_str().unwrap())
                .collect::<Vec<_>>(),
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
