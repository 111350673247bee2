//! `proxkeep runbook`: a rebuild guide made from one archive, for a person at a console with a fresh install,
//! in the order the work must happen.
//!
//! [`read`] reads the archive once, sequentially, with the same reader as `show` and `cat` (nothing is
//! extracted): meta.json, index.json, the stored command outputs and the handful of files the guide quotes.
//! Secret files ([`crate::secrets::is_secret`]) are never kept: their values only seed a [`Redactor`], which
//! every text of the finished guide goes through. [`facts::build`] turns what was read into a [`Runbook`]
//! (pure); [`md`] and [`html`] render it (pure).

pub mod facts;
pub mod html;
pub mod md;
pub mod parse;
mod steps;
mod storage;

use crate::archive::format::{INDEX_PATH, Index, META_PATH, Meta, read_capped, self_cap};
use crate::archive::reader::{TarReader, problem};
use crate::inspect::InspectError;
use crate::output::Redactor;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;

pub use facts::build;

/// The guide: sections in the order the work must happen.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Runbook {
    pub title: String,
    /// File name of the archive the guide was made from.
    pub archive: String,
    pub sections: Vec<Section>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Section {
    pub title: String,
    pub blocks: Vec<Block>,
}

/// One piece of a section. Renderers map each to their own markup; nothing else decides layout.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Block {
    /// A sub-heading inside a section.
    Heading { text: String },
    /// A sentence or paragraph.
    Text { text: String },
    /// The archive holds no facts for this part ("no ZFS pools in this archive").
    Missing { text: String },
    /// Name/value pairs.
    Facts { pairs: Vec<(String, String)> },
    Table {
        head: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// Commands to type, one a line.
    Commands { lines: Vec<String> },
    /// Text quoted from a file or a command output, as it is.
    Quote { lines: Vec<String> },
    /// Where in the archive the facts above came from.
    From { paths: Vec<String> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Md,
    Html,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "md" | "markdown" => Ok(Format::Md),
            "html" => Ok(Format::Html),
            _ => Err(format!("unknown format {s:?} (md or html)")),
        }
    }
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::Md => "md",
            Format::Html => "html",
        }
    }

    pub fn render(self, r: &Runbook) -> String {
        match self {
            Format::Md => md::render(r),
            Format::Html => html::render(r),
        }
    }
}

/// What [`read`] took from an archive.
#[derive(Debug, Default)]
pub struct Contents {
    pub meta: Option<Meta>,
    pub index: Index,
    /// Archive path → bytes, for the files and command outputs the guide uses (never a secret file).
    pub files: BTreeMap<String, Vec<u8>>,
    /// Values of the archive's secret files: every text of the guide goes through it.
    pub secrets: Redactor,
}

impl Contents {
    pub fn text(&self, path: &str) -> Option<String> {
        self.files
            .get(path)
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }
}

/// Largest file kept (a stored command output or a config file); larger ones are left out.
const FILE_MAX: u64 = 8 << 20;
/// Largest secret file read for its values.
const SECRET_MAX: u64 = 256 << 10;

/// Whether the guide reads archive path `p`.
fn wanted(p: &str) -> bool {
    const EXACT: &[&str] = &[
        "etc/hostname",
        "etc/os-release",
        "etc/debian_version",
        "etc/pve/corosync.conf",
        "etc/corosync/corosync.conf",
        "etc/pve/storage.cfg",
        "etc/pve/ceph.conf",
        "etc/ceph/ceph.conf",
        "etc/apt/sources.list",
        "etc/fstab",
        "etc/iscsi/initiatorname.iscsi",
        "etc/multipath/wwids",
        "etc/network/interfaces",
        "etc/proxmox-backup/datastore.cfg",
        "var/lib/apt/extended_states",
    ];
    const UNDER: &[&str] = &[
        "proxkeep/commands/",
        "etc/apt/sources.list.d/",
        "etc/network/interfaces.d/",
    ];
    EXACT.contains(&p) || UNDER.iter().any(|u| p.starts_with(u))
}

/// Feed a secret file's values to `r`: every word of 10 characters or more that is not an address or a key
/// type, so that no quoted line can carry one.
pub fn learn_secrets(r: &mut Redactor, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let words = text.split(|c: char| c.is_whitespace() || "\"',:;={}[]()<>".contains(c));
    for w in words.filter(|w| w.chars().count() >= 10) {
        let address = w.parse::<std::net::IpAddr>().is_ok()
            || w.split_once('/')
                .is_some_and(|(a, _)| a.parse::<std::net::IpAddr>().is_ok());
        let key_type = w.starts_with("ssh-") || w.starts_with("ecdsa-");
        if !address && !key_type {
            r.add(w);
        }
    }
}

/// Meta, index and the wanted files of `archive`, read in one pass; each kept file is checked against its
/// hash in the index (a mismatch is damage, exit 6).
pub fn read(archive: &Path) -> Result<Contents, InspectError> {
    let io = |source| InspectError::Io {
        path: archive.to_path_buf(),
        source,
    };
    let mut reader = TarReader::open(archive).map_err(io)?;
    let offset = reader.offset.clone();
    let damaged = |path: Option<&[u8]>, why: String| InspectError::Damaged {
        archive: archive.to_path_buf(),
        problem: problem(path, why).at(Some(offset.load(std::sync::atomic::Ordering::Relaxed))),
    };
    let mut out = Contents::default();
    let mut index = None;
    let entries = reader
        .archive
        .entries()
        .map_err(|e| damaged(None, format!("archive stream is damaged: {e}")))?;
    for (i, entry) in entries.enumerate() {
        let mut entry =
            entry.map_err(|e| damaged(None, format!("archive stream is damaged: {e}")))?;
        let raw = entry.path_bytes().into_owned();
        let path = String::from_utf8_lossy(&raw).into_owned();
        let file = entry.header().entry_type().is_file();
        let broken = |e: std::io::Error| damaged(Some(&raw), format!("cannot read: {e}"));
        if path == META_PATH || path == INDEX_PATH {
            let cap = self_cap(&raw, entry.size(), i as u64).map_err(|w| damaged(Some(&raw), w))?;
            let data = read_capped(&mut entry, cap).map_err(broken)?;
            let bad = |e: serde_json::Error| damaged(Some(&raw), format!("cannot parse: {e}"));
            if path == META_PATH {
                out.meta = Some(serde_json::from_slice(&data).map_err(bad)?);
            } else {
                index = Some(serde_json::from_slice::<Index>(&data).map_err(bad)?);
            }
        } else if file && crate::secrets::is_secret(&path) && entry.size() <= SECRET_MAX {
            let data = read_capped(&mut entry, SECRET_MAX).map_err(broken)?;
            learn_secrets(&mut out.secrets, &data);
        } else if file && wanted(&path) && entry.size() <= FILE_MAX {
            let data = read_capped(&mut entry, FILE_MAX).map_err(broken)?;
            out.files.insert(path, data);
        }
    }
    let index = index.ok_or_else(|| damaged(None, "proxkeep/index.json is missing".into()))?;
    if out.meta.is_none() {
        return Err(damaged(None, "proxkeep/meta.json is missing".into()));
    }
    for (path, data) in &out.files {
        let listed = index.entries.iter().find(|e| e.path == *path);
        let sha = crate::fsx::hash_reader(&data[..]).map_err(io)?.0;
        if listed.and_then(|e| e.sha256.as_deref()) != Some(sha.as_str()) {
            let why = "content hash differs from the index, or the entry is not in it".to_string();
            return Err(damaged(Some(path.as_bytes()), why));
        }
    }
    out.index = index;
    Ok(out)
}

impl Runbook {
    /// Every text through `r` (values of the archive's secret files become `<redacted>`), and control
    /// characters escaped as in all text output (a name from the archive cannot drive a terminal).
    pub fn redact(&mut self, r: &Redactor) {
        let fix = |s: &mut String| *s = crate::output::esc_line(&r.apply(s)).into_owned();
        let all = |v: &mut Vec<String>| v.iter_mut().for_each(fix);
        fix(&mut self.title);
        for s in &mut self.sections {
            fix(&mut s.title);
            for b in &mut s.blocks {
                match b {
                    Block::Heading { text } | Block::Text { text } | Block::Missing { text } => {
                        fix(text)
                    }
                    Block::Facts { pairs } => pairs.iter_mut().for_each(|(k, v)| {
                        fix(k);
                        fix(v)
                    }),
                    Block::Table { head, rows } => {
                        all(head);
                        rows.iter_mut().for_each(all);
                    }
                    Block::Commands { lines } | Block::Quote { lines } => all(lines),
                    Block::From { paths } => all(paths),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_words_are_learned_but_not_addresses_or_key_types() {
        let mut r = Redactor::default();
        let file = "smtp: example\n  password somepassword\n10.10.10.2 ssh-ed25519 AAAAFIXTUREFAKEKEY0000\n\
                    {\"root@pam!t\":\"$5$FIXTURE3$FAKEFAKEFAKE\"}\nshort x\n";
        learn_secrets(&mut r, file.as_bytes());
        let out = r.apply("pw somepassword at 10.10.10.2 key AAAAFIXTUREFAKEKEY0000 $5$FIXTURE3$FAKEFAKEFAKE short");
        assert_eq!(
            out,
            "pw <redacted> at 10.10.10.2 key <redacted> <redacted> short"
        );
    }

    #[test]
    fn wanted_paths() {
        for p in [
            "proxkeep/commands/zfs/zpool-status.txt",
            "etc/apt/sources.list.d/pve.sources",
            "etc/network/interfaces.d/sdn",
            "etc/fstab",
        ] {
            assert!(wanted(p), "{p}");
        }
        for p in [
            "etc/pve/user.cfg",
            "etc/apt/auth.conf.d/x.conf",
            "etc/fstab2",
        ] {
            assert!(!wanted(p), "{p}");
        }
    }
}
