//! Rewrites: content a restore writes *instead of* the archive's bytes, because the archive's file names
//! another machine (a renamed node in corosync.conf, other NIC names in `interfaces`, the new install's
//! fstab and accounts). Each rewriter is a pure function of the archive's bytes and the target's; `prepare`
//! runs them before planning, so the plan compares, diffs and counts the rewritten content, `apply` writes
//! it (atomically, with the archive entry's metadata) and the safety archive covers it like any replace.
//!
//! Rewriters run for `restore` only: `extract` gives the archive as it is, and a safety archive puts back
//! exactly what was there.

use crate::restore::merge;
use crate::restore::path::NodeMap;
use std::collections::HashMap;
use std::path::Path;

/// What a rewriter sees.
pub struct Context<'a> {
    /// Archive bytes (up to [`crate::restore::plan::DIFF_MAX`], checked against the index) of every file some
    /// rewriter's `wants` accepted (and of the held files), by normalized archive path
    /// (`etc/pve/corosync.conf`, `proxkeep/commands/network/nics.json`).
    pub archive: &'a HashMap<Vec<u8>, Vec<u8>>,
    /// The target's current bytes of the same files, by target path (missing: absent or too large).
    pub target: &'a HashMap<Vec<u8>, Vec<u8>>,
    /// Every archive path of the archive (normalized).
    pub paths: &'a [Vec<u8>],
    /// The archive paths this restore writes (`--only`, `--path`): a rewriter that only checks or merges files
    /// has nothing to do (no `blkid`, no `visudo`) when none of its files is among them.
    pub selected: &'a [Vec<u8>],
    /// The restore target directory (`/` on a live host): its /sys/class/net, etc.
    pub root: &'a Path,
    pub map_node: Option<&'a NodeMap>,
    /// `--nic OLD=NEW` pairs.
    pub nic: &'a [(String, String)],
}

/// New content for one archive file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewritten {
    pub archive_path: Vec<u8>,
    pub content: Vec<u8>,
    /// Shown in the plan next to the file: what was changed and why.
    pub why: String,
}

/// A reason the restore must not write `archive_path` yet (shown by `--dry-run`; a real run that would
/// write that file refuses, exit 2). Tied to a file, so a restore that does not select it is not blocked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Blocker {
    #[serde(skip)]
    pub archive_path: Vec<u8>,
    pub why: String,
}

/// A note about some archive files (e.g. why a mount of the archive's fstab is left out): shown with the plan
/// only when the run selects one of them (written, held or already the same), so a run that does not restore
/// them says nothing about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileNote {
    pub archive_paths: Vec<Vec<u8>>,
    pub text: String,
}

impl FileNote {
    pub fn new(archive_paths: &[&[u8]], text: String) -> FileNote {
        let archive_paths = archive_paths.iter().map(|p| p.to_vec()).collect();
        FileNote {
            archive_paths,
            text,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub files: Vec<Rewritten>,
    /// Shown with the plan (text and `--json`), e.g. the command that regenerates a node certificate.
    pub notes: Vec<String>,
    /// Notes shown only when the run selects their files.
    pub file_notes: Vec<FileNote>,
    pub blockers: Vec<Blocker>,
}

impl Outcome {
    /// Every note's text, the file notes' included (as a run that selects every file shows them).
    pub fn note_texts(&self) -> Vec<String> {
        let files = self.file_notes.iter().map(|n| n.text.clone());
        self.notes.iter().cloned().chain(files).collect()
    }
}

pub struct Rewriter {
    pub name: &'static str,
    /// Which archive files it needs the bytes of (normalized archive path).
    pub wants: fn(&[u8]) -> bool,
    /// `Err`: a usage error (exit 2); nothing is written.
    pub run: fn(&Context) -> Result<Outcome, String>,
}

/// Every rewriter, in the order they run. Two rewriters never rewrite the same file.
pub const REWRITERS: &[Rewriter] = &[
    crate::restore::rename::REWRITER,
    crate::restore::nic::REWRITER,
    merge::FSTAB_MERGE,
    merge::ACCOUNTS_MERGE,
    merge::SUDOERS_CHECK,
];

/// Whether any of `rewriters` wants the bytes of this archive path.
pub fn wants(rewriters: &[Rewriter], archive_path: &[u8]) -> bool {
    rewriters.iter().any(|r| (r.wants)(archive_path))
}

/// Run every rewriter; their outcomes joined. Fails on a rewriter's usage error, and when two rewriters
/// claim one file (a bug: one would silently win).
pub fn run_all(rewriters: &[Rewriter], ctx: &Context) -> Result<Outcome, String> {
    let mut out = Outcome::default();
    let mut by: HashMap<Vec<u8>, &str> = HashMap::new();
    for r in rewriters {
        let o = (r.run)(ctx)?;
        for f in &o.files {
            if let Some(other) = by.insert(f.archive_path.clone(), r.name) {
                return Err(format!(
                    "/{}: rewritten by both {other} and {}",
                    crate::output::escape(&f.archive_path),
                    r.name
                ));
            }
        }
        out.files.extend(o.files);
        out.notes.extend(o.notes);
        out.file_notes.extend(o.file_notes);
        out.blockers.extend(o.blockers);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx<'a>(
        archive: &'a HashMap<Vec<u8>, Vec<u8>>,
        target: &'a HashMap<Vec<u8>, Vec<u8>>,
    ) -> Context<'a> {
        Context {
            archive,
            target,
            paths: &[],
            selected: &[],
            root: Path::new("/nonexistent"),
            map_node: None,
            nic: &[],
        }
    }

    fn upper(c: &Context) -> Result<Outcome, String> {
        let files = c
            .archive
            .iter()
            .map(|(p, b)| Rewritten {
                archive_path: p.clone(),
                content: b.to_ascii_uppercase(),
                why: "upper".into(),
            })
            .collect();
        Ok(Outcome {
            files,
            notes: vec!["n".into()],
            ..Default::default()
        })
    }

    #[test]
    fn outcomes_are_joined_and_a_file_claimed_twice_is_an_error() {
        let archive = HashMap::from([(b"etc/a".to_vec(), b"x".to_vec())]);
        let target = HashMap::new();
        let one = Rewriter {
            name: "one",
            wants: |_| true,
            run: upper,
        };
        let two = Rewriter { name: "two", ..one };
        let out = run_all(&[one], &ctx(&archive, &target)).unwrap();
        assert_eq!(out.files[0].content, b"X");
        assert_eq!(out.notes, ["n"]);
        let one = Rewriter { name: "one", ..two };
        let e = run_all(&[one, two], &ctx(&archive, &target)).unwrap_err();
        assert!(e.contains("both one and two"), "{e}");
    }
}
