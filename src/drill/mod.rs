//! `drill`: what a restore rehearsal checks, pure over a restored tree and the archive's own facts (its
//! `config.db` snapshot, NIC inventory and `blkid` output). The journey (verify, restore into scratch, the
//! live comparison, metrics, notifications) is `crate::app::drill`.

pub mod checks;

use crate::archive::format::{
    COMMANDS_DIR, CONFIG_DB_PATH, INDEX_PATH, Index, META_PATH, Meta, read_capped, self_cap,
};
use crate::archive::reader::TarReader;
use serde::Serialize;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Passed,
    Failed,
    Skipped,
}

/// One check of the drill: what was checked (or why it was not), and every problem, each naming its path.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub result: Verdict,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
    /// Skipped although it should have run: what it needs is missing from the archive (a warning, exit 3).
    /// A check with nothing to check (no `/etc/pve` in a PBS archive) is skipped without one.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub warning: bool,
}

impl Check {
    pub fn passed(name: &'static str, detail: impl Into<String>) -> Check {
        Check {
            name,
            result: Verdict::Passed,
            detail: detail.into(),
            problems: Vec::new(),
            warning: false,
        }
    }
    /// Nothing to check here.
    pub fn skipped(name: &'static str, why: impl Into<String>) -> Check {
        Check {
            result: Verdict::Skipped,
            ..Check::passed(name, why)
        }
    }
    /// Should have run, but the archive lacks what it needs.
    pub fn missing(name: &'static str, why: impl Into<String>) -> Check {
        Check {
            warning: true,
            ..Check::skipped(name, why)
        }
    }
    pub fn failed(name: &'static str, detail: impl Into<String>, problems: Vec<String>) -> Check {
        Check {
            result: Verdict::Failed,
            problems,
            ..Check::passed(name, detail)
        }
    }
    /// Passed when `problems` is empty, else failed with them.
    pub fn from_problems(name: &'static str, detail: String, problems: Vec<String>) -> Check {
        match problems.is_empty() {
            true => Check::passed(name, detail),
            false => Check::failed(name, detail, problems),
        }
    }
}

/// What the archive says about the host beyond its files, read in one pass.
#[derive(Debug, Default)]
pub struct Facts {
    pub meta: Option<Meta>,
    pub index: Option<Index>,
    /// The `config.db` snapshot, written to a file (SQLite reads files).
    pub config_db: Option<PathBuf>,
    /// `nics.json`: the interface names, or why it could not be read.
    pub nics: Option<Result<Vec<String>, String>>,
    /// `blkid`'s stored output.
    pub blkid: Option<String>,
}

impl Facts {
    /// Why the archive holds no `blkid` output: the command's recorded status (`not installed`, `exit 2`),
    /// or that commands were not run for this backup.
    pub fn blkid_status(&self) -> String {
        let rec = self.index.as_ref().and_then(|i| {
            (i.commands.iter()).find(|c| c.command.split_whitespace().next() == Some("blkid"))
        });
        match rec {
            Some(r) => format!("blkid: {}", r.status),
            None => "commands were not run for this backup (the host root was not /)".into(),
        }
    }
}

/// Internal files above this are not read into memory (a NIC inventory or blkid output is a few KiB).
const FACT_MAX: u64 = 16 << 20;

#[derive(serde::Deserialize)]
struct NicName {
    name: String,
}

/// One pass over `archive`: meta, index, and the facts; the `config.db` snapshot goes to `db_out` (0600).
pub fn read_facts(archive: &Path, db_out: &Path) -> io::Result<Facts> {
    let mut reader = TarReader::open(archive)?;
    let mut facts = Facts::default();
    let is_fact = |p: &str, name: &str| {
        p.strip_prefix(COMMANDS_DIR)
            .is_some_and(|r| r.ends_with(&format!("/{name}")))
    };
    let bad =
        |p: &str, why: String| io::Error::new(io::ErrorKind::InvalidData, format!("{p}: {why}"));
    for (i, entry) in reader.archive.entries()?.enumerate() {
        let mut entry = entry?;
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        if path == META_PATH || path == INDEX_PATH {
            let cap =
                self_cap(path.as_bytes(), entry.size(), i as u64).map_err(|w| bad(&path, w))?;
            let data = read_capped(&mut entry, cap)?;
            let parse = |e: serde_json::Error| bad(&path, e.to_string());
            match path == META_PATH {
                true => facts.meta = Some(serde_json::from_slice(&data).map_err(parse)?),
                false => facts.index = Some(serde_json::from_slice(&data).map_err(parse)?),
            }
        } else if path == CONFIG_DB_PATH {
            let mut out = crate::fsx::create_private(db_out)?;
            io::copy(&mut entry, &mut out)?;
            facts.config_db = Some(db_out.to_path_buf());
        } else if is_fact(&path, "nics.json") {
            let data = read_capped(&mut entry, FACT_MAX)?;
            let names = serde_json::from_slice::<Vec<NicName>>(&data)
                .map(|v| v.into_iter().map(|n| n.name).collect())
                .map_err(|e| format!("{path}: {e}"));
            facts.nics = Some(names);
        } else if is_fact(&path, "blkid.txt") {
            let mut text = String::new();
            entry.take(FACT_MAX).read_to_string(&mut text)?;
            facts.blkid = Some(text);
        }
    }
    Ok(facts)
}
