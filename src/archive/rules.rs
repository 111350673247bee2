//! Which archive entries a proxkeep archive may hold: pure checks on names and entry types, shared by
//! `verify` and `restore`/`extract` so an archive `verify` accepts is one `restore` accepts.
//!
//! The tar crate's `unpack_in` is not trusted for this (issue 4): every name is normalized and checked here,
//! every entry type outside file/dir/symlink is refused, and an entry below a symlink stored earlier in the
//! archive is refused. What is already on a restore target (a symlink where a directory is expected) is
//! checked component by component when the target is read and again when it is written
//! (`restore::target`).

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use tar::EntryType;

/// Why an archive entry is refused. The caller adds the entry's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Hostile {
    #[error("empty name")]
    Empty,
    #[error("absolute name: it would be written outside the target")]
    Absolute,
    #[error("`..` in the name: it would be written outside the target")]
    DotDot,
    #[error("NUL byte in the name")]
    Nul,
    #[error("passes through the symlink {0} stored earlier in the archive")]
    ThroughSymlink(String),
    #[error("symlink stored over the directory of earlier entries")]
    SymlinkOverDir,
    #[error("hard link to {target}: {}", if *.outside { "points outside the target" } else { "proxkeep archives never contain hard links" })]
    HardLink { target: String, outside: bool },
    #[error("{0}: proxkeep never stores or restores device nodes, FIFOs or sockets")]
    Special(&'static str),
    #[error("unsupported tar entry type {0:?}")]
    Unsupported(char),
    #[error("stored twice")]
    Duplicate,
}

/// Display form of raw path bytes (lossy for non-UTF-8 names; messages only).
pub fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

/// A relative name reduced to its normal components joined by `/`: empty and `.` components are dropped,
/// an absolute name, `..` anywhere or a NUL byte is refused. The result can only name something below the
/// directory it is joined to (as long as no component on disk is a symlink, which the writer checks).
pub fn normalize(raw: &[u8]) -> Result<Vec<u8>, Hostile> {
    if raw.first() == Some(&b'/') {
        return Err(Hostile::Absolute);
    }
    let mut out = Vec::with_capacity(raw.len());
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => continue,
            b".." => return Err(Hostile::DotDot),
            _ if c.contains(&0) => return Err(Hostile::Nul),
            _ => {
                if !out.is_empty() {
                    out.push(b'/');
                }
                out.extend_from_slice(c);
            }
        }
    }
    if out.is_empty() {
        Err(Hostile::Empty)
    } else {
        Ok(out)
    }
}

/// Proper ancestors of a normalized path, shortest first (`a`, `a/b` for `a/b/c`).
pub fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    path.iter()
        .enumerate()
        .filter(|(_, b)| **b == b'/')
        .map(move |(i, _)| &path[..i])
}

/// Split a normalized path into (parent, file name); the parent is empty at the top.
pub fn split(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|b| *b == b'/') {
        Some(i) => (&path[..i], &path[i + 1..]),
        None => (&[], path),
    }
}

/// Checks the entries of one archive in order. Stateful because "below a symlink stored earlier" and
/// "stored twice" depend on what came before.
///
/// The sets hold keyed 64-bit hashes of the paths, not the paths (a backup's read-back checks every entry,
/// and memory per entry counts at 200,000 files). The key is random per process, so an archive cannot be
/// made to collide on purpose, and a collision could only refuse an entry, never admit one.
#[derive(Debug, Default)]
pub struct Checker {
    keys: RandomState,
    seen: HashSet<u64>,
    symlinks: HashSet<u64>,
    /// Ancestors of every entry so far (created implicitly as directories by the writer).
    parents: HashSet<u64>,
}

impl Checker {
    pub fn check(
        &mut self,
        raw: &[u8],
        kind: EntryType,
        link: Option<&[u8]>,
    ) -> Result<Vec<u8>, Hostile> {
        let path = normalize(raw)?;
        match kind {
            EntryType::Regular
            | EntryType::Continuous
            | EntryType::Directory
            | EntryType::Symlink => {}
            EntryType::Link => {
                let target = link.unwrap_or_default();
                return Err(Hostile::HardLink {
                    target: show(target),
                    outside: normalize(target).is_err(),
                });
            }
            EntryType::Char => return Err(Hostile::Special("character device")),
            EntryType::Block => return Err(Hostile::Special("block device")),
            EntryType::Fifo => return Err(Hostile::Special("FIFO")),
            other => return Err(Hostile::Unsupported(other.as_byte() as char)),
        }
        let key = |p: &[u8]| self.keys.hash_one(p);
        if let Some(a) = ancestors(&path).find(|a| self.symlinks.contains(&key(a))) {
            return Err(Hostile::ThroughSymlink(show(a)));
        }
        let own = key(&path);
        if kind.is_symlink() && self.parents.contains(&own) {
            return Err(Hostile::SymlinkOverDir);
        }
        if !self.seen.insert(own) {
            return Err(Hostile::Duplicate);
        }
        self.parents.extend(ancestors(&path).map(key));
        if kind.is_symlink() {
            self.symlinks.insert(own);
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn normalize_table() {
        for (raw, want) in [
            (&b"etc/pve/storage.cfg"[..], Ok(&b"etc/pve/storage.cfg"[..])),
            (b"./etc//hosts", Ok(b"etc/hosts")),
            (b"etc/./x/", Ok(b"etc/x")),
            (b"/etc/shadow", Err(Hostile::Absolute)),
            (b"../x", Err(Hostile::DotDot)),
            (b"etc/../../x", Err(Hostile::DotDot)),
            (b"etc/..", Err(Hostile::DotDot)),
            (b"", Err(Hostile::Empty)),
            (b"./", Err(Hostile::Empty)),
            (b"a\0b", Err(Hostile::Nul)),
            (b"etc/..x", Ok(b"etc/..x")),
        ] {
            assert_eq!(normalize(raw), want.map(|w| w.to_vec()), "{}", show(raw));
        }
    }

    #[test]
    fn checker_refuses_hostile_entries() {
        let mut c = Checker::default();
        assert!(c.check(b"etc", EntryType::Directory, None).is_ok());
        assert!(
            c.check(b"etc/link", EntryType::Symlink, Some(b"/tmp/outside"))
                .is_ok()
        );
        assert_eq!(
            c.check(b"etc/link/evil", EntryType::Regular, None),
            Err(Hostile::ThroughSymlink("etc/link".into()))
        );
        assert_eq!(
            c.check(b"etc/link/a/b", EntryType::Directory, None),
            Err(Hostile::ThroughSymlink("etc/link".into()))
        );
        assert_eq!(
            c.check(b"etc", EntryType::Directory, None),
            Err(Hostile::Duplicate)
        );
        assert_eq!(
            c.check(b"./etc/link", EntryType::Regular, None),
            Err(Hostile::Duplicate)
        );
        assert_eq!(
            c.check(b"etc/hl", EntryType::Link, Some(b"/etc/shadow")),
            Err(Hostile::HardLink {
                target: "/etc/shadow".into(),
                outside: true
            })
        );
        assert_eq!(
            c.check(b"etc/hl", EntryType::Link, Some(b"etc/hosts")),
            Err(Hostile::HardLink {
                target: "etc/hosts".into(),
                outside: false
            })
        );
        assert_eq!(
            c.check(b"dev/sda", EntryType::Block, None),
            Err(Hostile::Special("block device"))
        );
        assert_eq!(
            c.check(b"dev/null", EntryType::Char, None),
            Err(Hostile::Special("character device"))
        );
        assert_eq!(
            c.check(b"x/fifo", EntryType::Fifo, None),
            Err(Hostile::Special("FIFO"))
        );
        assert_eq!(
            c.check(b"x/s", EntryType::new(b'S'), None),
            Err(Hostile::Unsupported('S'))
        );
        // A symlink stored over a directory that earlier entries went into.
        assert!(c.check(b"var/lib/x/file", EntryType::Regular, None).is_ok());
        assert_eq!(
            c.check(b"var/lib", EntryType::Symlink, Some(b"/")),
            Err(Hostile::SymlinkOverDir)
        );
        // The symlink's own target is never followed, so any target is fine for the link itself.
        assert!(
            c.check(
                b"root/.ssh/authorized_keys",
                EntryType::Symlink,
                Some(b"/etc/pve/priv/authorized_keys")
            )
            .is_ok()
        );
    }

    proptest! {
        /// Whatever the input, a normalized name has only normal components, so joining it to a directory
        /// stays below that directory.
        #[test]
        fn normalized_names_stay_below(parts in proptest::collection::vec(prop_oneof![
            Just("..".to_string()), Just(".".to_string()), Just(String::new()), "[a-z.]{1,4}"
        ], 0..6), absolute in any::<bool>()) {
            let raw = format!("{}{}", if absolute { "/" } else { "" }, parts.join("/"));
            match normalize(raw.as_bytes()) {
                Ok(n) => {
                    prop_assert!(!raw.starts_with('/'));
                    for c in n.split(|b| *b == b'/') {
                        prop_assert!(!c.is_empty() && c != b"." && c != b"..");
                    }
                    let joined = std::path::Path::new("/t").join(std::str::from_utf8(&n).unwrap());
                    prop_assert!(joined.starts_with("/t"));
                    prop_assert!(joined.components().all(|c| !matches!(c, std::path::Component::ParentDir)));
                }
                Err(Hostile::Absolute) => prop_assert!(raw.starts_with('/')),
                Err(Hostile::DotDot) => prop_assert!(parts.iter().any(|p| p == "..")),
                Err(Hostile::Empty) => prop_assert!(parts.iter().all(|p| p.is_empty() || p == ".")),
                Err(e) => prop_assert!(false, "unexpected {e:?}"),
            }
        }

        /// No sequence of entries gets an entry accepted below a symlink accepted before it.
        #[test]
        fn nothing_is_accepted_below_an_accepted_symlink(entries in proptest::collection::vec(
            ("[ab](/[ab]){0,3}", 0u8..3), 0..12)) {
            let mut c = Checker::default();
            let mut links: Vec<Vec<u8>> = Vec::new();
            for (p, k) in entries {
                let kind = [EntryType::Regular, EntryType::Directory, EntryType::Symlink][k as usize];
                if let Ok(n) = c.check(p.as_bytes(), kind, Some(b"/x")) {
                    for l in &links {
                        prop_assert!(!(n.starts_with(l) && n.get(l.len()) == Some(&b'/')));
                        prop_assert!(n != *l);
                    }
                    if kind.is_symlink() {
                        links.push(n);
                    }
                }
            }
        }
    }
}
