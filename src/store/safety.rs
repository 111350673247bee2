//! Restore-safety archives in a backup directory: found by their name, kept by `[retention] keep_safety`.

use crate::archive::name::parse_safety_file_name;
use crate::store::retention::{self, Candidate, Decision, Verified};
use jiff::Timestamp;
use std::collections::HashMap;
use std::path::Path;

/// A safety archive in a backup directory (its name says the host and time; see `archive::name::safety_file_name`).
#[derive(Debug, Clone)]
pub struct SafetyFile {
    pub file: String,
    pub host: String,
    pub time: Timestamp,
    pub size: u64,
    pub encrypted: bool,
}

/// The safety archives of `host` (of every host when `None`) in `dir`, newest first; regular files only.
pub fn list(dir: &Path, host: Option<&str>) -> std::io::Result<Vec<SafetyFile>> {
    let mut out: Vec<SafetyFile> = std::fs::read_dir(dir)?
        .flatten()
        .filter_map(|e| {
            let file = e.file_name().into_string().ok()?;
            let (h, time) = parse_safety_file_name(&file)?;
            let md = e.metadata().ok().filter(|md| md.is_file())?;
            let encrypted = file.ends_with(crate::archive::name::AGE_SUFFIX);
            host.is_none_or(|x| x == h).then_some(SafetyFile {
                file,
                host: h,
                time,
                size: md.len(),
                encrypted,
            })
        })
        .collect();
    out.sort_by(|a, b| (b.time, &b.file).cmp(&(a.time, &a.file)));
    Ok(out)
}

/// `[retention] keep_safety` on `host`'s safety archives in `dir`: the plan, newest first, and (unless
/// `dry_run`) the removals done. A directory that does not exist holds none.
pub fn prune(
    dir: &Path,
    host: &str,
    keep: u32,
    dry_run: bool,
) -> std::io::Result<Vec<(SafetyFile, Decision)>> {
    let found = match list(dir, Some(host)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        r => r?,
    };
    let verified = crate::store::tier::recorded_verification(dir);
    let cands: Vec<Candidate> = found
        .iter()
        .map(|f| Candidate {
            id: f.file.clone(),
            time: f.time,
            verified: Verified::from_record(verified.get(&f.file).copied()),
        })
        .collect();
    let mut by_id: HashMap<String, SafetyFile> =
        found.into_iter().map(|f| (f.file.clone(), f)).collect();
    let mut out = Vec::new();
    for (c, d) in retention::plan_safety(&cands, keep) {
        if d.is_remove() && !dry_run {
            crate::store::tier::remove_set(dir, &c.id)?;
        }
        out.extend(by_id.remove(&c.id).map(|f| (f, d)));
    }
    Ok(out)
}
