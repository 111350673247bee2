//! `proxkeep check`: the preflight verdicts a backup would meet, without writing anything.

use crate::catalog;
use crate::config::Config;
use crate::host::{HostFacts, Root};
use crate::preflight::{self, Check, LockError, RunLock};
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
    let mut checks = vec![
        Check::pass(
            "host",
            format!("{} role {}{pve}", facts.hostname, facts.role),
        ),
        preflight::directory("backup directory", &config.backup_dir, false),
        preflight::directory("log directory", &config.log_dir, false),
        preflight::free_space(
            &config.backup_dir,
            config.min_free_space,
            0,
            "configured minimum",
        ),
    ];
    if config.backup_dir.is_dir() {
        checks.push(preflight::writable(&config.backup_dir));
    }
    if let Some(enc) = &config.encryption {
        // The recipients and passphrase files are read by every backup: catch a moved or broken one now.
        checks.push(
            match crate::crypt::Seal::new(
                &enc.recipients,
                enc.recipients_file.as_deref(),
                enc.passphrase_file.as_deref(),
            ) {
                Ok(seal) => Check::pass("encryption", seal.describe()),
                Err(e) => Check::fail(
                    "encryption",
                    e.to_string(),
                    "fix [encryption] (a backup stops rather than write a plain archive)",
                ),
            },
        );
    }
    checks.push(match RunLock::acquire(&config.lock_file, &facts.hostname) {
        Ok(_) => Check::pass("lock", format!("{} is free", config.lock_file.display())),
        Err(e @ LockError::Held { .. }) => Check::fail(
            "lock",
            e.to_string(),
            "wait for that run to finish (the lock frees itself when it ends)",
        ),
        Err(e) => Check::fail(
            "lock",
            e.to_string(),
            "make the lock file's directory writable or set lock_file",
        ),
    });
    if facts.role.has_pve() {
        let db = root.path(catalog::CONFIG_DB);
        checks.push(match crate::pmxcfs::db_version(&db) {
            Ok(v) => Check::pass(
                "config.db",
                format!("{} readable, version {v}", db.display()),
            ),
            Err(e) => Check::fail(
                "config.db",
                e.to_string(),
                "is pve-cluster installed? check /var/lib/pve-cluster",
            ),
        });
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
