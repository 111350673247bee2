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
        super::exit_if(self.checks.iter().any(|c| !c.ok), crate::exit::PREFLIGHT)
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
    let needed = (0, "configured minimum");
    let dir = &config.backup_dir;
    checks.extend(super::backup::preflight_checks(
        config, dir, false, needed, true,
    ));
    let plan = crate::collect::scan(root, &facts, config);
    let max = config.collect.max_input_size;
    checks.push(super::backup::input_size(&plan, max));
    if let Some(enc) = &config.encryption {
        // The recipients and passphrase files are read by every backup: catch a moved or broken one now.
        let seal = super::backup::seal(enc);
        let fix = "fix [encryption] (a backup stops rather than write a plain archive)";
        checks.push(verdict("encryption", seal.map(|s| s.describe()), fix));
    }
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
        let readable = version.map(|v| format!("{} readable, version {v}", db.display()));
        let fix = "is pve-cluster installed? check /var/lib/pve-cluster";
        checks.push(verdict("config.db", readable, fix));
        checks.push(if facts.pve_mounted {
            Check::pass("/etc/pve", "pmxcfs mounted")
        } else {
            Check::fail(
                "/etc/pve",
                "empty: pmxcfs is not mounted (the backup rebuilds the tree from config.db)",
                "systemctl start pve-cluster",
            )
        });
    }
    CheckReport { checks }
}

/// `name` passes with `detail`, or fails with the error and `fix`.
fn verdict(name: &str, detail: Result<String, impl std::fmt::Display>, fix: &str) -> Check {
    match detail {
        Ok(d) => Check::pass(name, d),
        Err(e) => Check::fail(name, e.to_string(), fix),
    }
}
