//! `proxkeep check`: the preflight verdicts a backup would meet, without writing anything.

use crate::catalog;
use crate::config::Config;
use crate::host::{HostFacts, Root};
use crate::preflight::{Check, LockError, RunLock};
use serde::Serialize;

/// One verdict per check; the run fails (exit 4) when any failed.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct CheckReport {
    pub checks: Vec<Check>,
}

impl CheckReport {
    pub fn exit_code(&self) -> i32 {
        let warned = super::exit_if(self.checks.iter().any(|c| c.warning), crate::exit::WARNINGS);
        let failed = super::exit_if(self.checks.iter().any(|c| !c.ok), crate::exit::PREFLIGHT);
        failed.max(warned)
    }
}

pub fn run(root: &Root, config: &Config) -> CheckReport {
    let facts = HostFacts::detect(root);
    let pve = facts
        .versions
        .pve
        .as_ref()
        .map(|v| format!(", pve-manager {v}"))
        .unwrap_or_default();
    let host = format!("{} role {}{pve}", facts.hostname, facts.role);
    let mut checks = vec![Check::pass("host", host)];
    // Free space against what backup will want, not the configured minimum alone.
    let dir = &config.backup_dir;
    let plan = crate::collect::scan_with(root, &facts, config, None);
    let needed = super::backup::needed_space(dir, &facts.hostname, &plan);
    checks.extend(super::backup::preflight_checks(
        config, dir, false, needed, true,
    ));
    // Every other tier, as the copy after the backup will meet it.
    for tier in crate::store::tier::tiers(config, dir, &crate::store::tier::NEVER)
        .iter()
        .skip(1)
    {
        let probe = tier.probe(needed.0);
        let fix = probe.as_ref().err().map_or("", |e| e.fix());
        checks.push(verdict(&tier.label(), probe, fix));
    }
    // Too much to collect: `check` warns, as `backup --dry-run` does; only the backup itself refuses.
    let size = super::backup::input_size(&plan, config.collect.max_input_size);
    let warning = !size.ok;
    checks.push(Check {
        ok: true,
        warning,
        ..size
    });
    if let Some(enc) = &config.encryption {
        // The recipients and passphrase files are read by every backup: catch a moved or broken one now.
        let seal = enc.seal();
        let fix = "fix [encryption] (a backup stops rather than write a plain archive)";
        checks.push(verdict("encryption", seal.map(|s| s.describe()), fix));
    }
    checks.extend(retention_checks(config));
    let lock = RunLock::acquire(&config.lock_file, &facts.hostname);
    let fix = match &lock {
        Err(LockError::Held { .. }) => {
            "wait for that run to finish (the lock frees itself when it ends)"
        }
        _ => "make the lock file's directory writable or set lock_file",
    };
    let free = lock.map(|_| format!("{} is free", config.lock_file.display()));
    checks.push(verdict("lock", free, fix));
    if facts.role.has_pve() {
        let db = root.path(catalog::CONFIG_DB);
        let version = crate::pmxcfs::db_version(&db);
        let fix = "is pve-cluster installed? check /var/lib/pve-cluster";
        // A warning, as in the backup: it goes on without the database, and says so.
        checks.push(match version {
            Ok(v) => Check::pass(
                "config.db",
                format!("{} readable, version {v}", db.display()),
            ),
            Err(e) => Check::warn("config.db", e.to_string(), fix),
        });
        checks.push(if facts.pve_mounted {
            Check::pass("/etc/pve", "pmxcfs mounted")
        } else {
            Check::warn(
                "/etc/pve",
                "empty: pmxcfs is not mounted (the backup rebuilds the tree from config.db, with a warning)",
                "systemctl start pve-cluster",
            )
        });
    }
    CheckReport { checks }
}

/// Fewer than this many archives kept on a tier is a warning: one bad night away from having none.
const MIN_KEPT: u64 = 3;

/// The effective retention policy of every tier; a warning where it keeps fewer than [`MIN_KEPT`] archives.
fn retention_checks(config: &Config) -> Vec<Check> {
    crate::store::retention::tier_policies(config)
        .into_iter()
        .map(|(tier, p)| {
            let name = format!("retention {tier}");
            match p.keeps_at_most() {
                Some(n) if n < MIN_KEPT => Check::warn(
                    &name,
                    format!("keeps at most {n} archive(s) ({})", p.describe()),
                    format!("keep at least {MIN_KEPT}: raise keep_last or keep_daily in [retention] (or the tier's keep_*)"),
                ),
                _ => Check::pass(&name, p.describe()),
            }
        })
        .collect()
}

/// `name` passes with `detail`, or fails with the error and `fix`.
fn verdict(name: &str, detail: Result<String, impl std::fmt::Display>, fix: &str) -> Check {
    match detail {
        Ok(d) => Check::pass(name, d),
        Err(e) => Check::fail(name, e.to_string(), fix),
    }
}
