//! One row per key of the reference tool's `backup.env` (../shared/docs/reference-features.md): where its
//! value goes in proxkeep.toml and how it is converted, or why it is not needed or not carried.
//!
//! A row's `target` is a dotted proxkeep key; a target under one of [`BLOCKS`] writes into that table (one
//! `[[secondary]]`, one `[[notify.webhook]]` per endpoint NAME, ...). A `*` in a row's key is an endpoint NAME.

use super::conv::*;
use super::{Carried, Skip, Val};

/// A table the import writes as a whole: `array` (`[[path]]`) or not; per_name: one per `*` NAME; `needs`:
/// keys without which it is left out (`a|b`: either).
pub struct Block {
    pub path: &'static str,
    pub array: bool,
    pub per_name: bool,
    pub needs: &'static [&'static str],
}

pub const BLOCKS: &[Block] = &[
    block("secondary", &["path"]),
    block("remote", &["target"]),
    block("notify.email", &["to"]),
    block("notify.telegram", &["bot_token", "chat_id"]),
    block("notify.gotify", &["url", "token"]),
    Block {
        per_name: true,
        ..block("notify.webhook", &["url"])
    },
    block("notify.ping", &["url"]),
    Block {
        array: false,
        ..block("encryption", &["recipients|recipients_file"])
    },
    Block {
        array: false,
        ..block("metrics", &["textfile"])
    },
];

const fn block(path: &'static str, needs: &'static [&'static str]) -> Block {
    Block {
        path,
        array: true,
        per_name: false,
        needs,
    }
}

pub type Conv = fn(&Val) -> Result<Carried, Skip>;

pub enum How {
    /// Written to the row's target.
    Conv(Conv),
    /// A `BACKUP_*` collector switch: `false` skips these catalog categories and excludes these paths.
    Off(&'static [&'static str], &'static [&'static str]),
    /// A source path the catalog collects at this standard place; another one goes to `collect.extra_paths`.
    Std(&'static str),
    /// A feature proxkeep does not have: `true` is not carried (why), `false` is not needed.
    IfTrue(&'static str),
    NotNeeded(&'static str),
    NotCarried(&'static str),
}

pub struct Row {
    pub key: &'static str,
    pub target: &'static str,
    /// A key that must be `true` for this one to be used (`SECONDARY_ENABLED`), or "".
    pub gate: &'static str,
    /// For a key with `*`: the key listing the NAMEs it may take, or "".
    pub names: &'static str,
    pub secret: bool,
    pub how: How,
}

impl Row {
    const fn on(self, gate: &'static str) -> Row {
        Row { gate, ..self }
    }
    const fn secret(self) -> Row {
        Row {
            secret: true,
            ..self
        }
    }
    const fn named(self) -> Row {
        Row {
            gate: "WEBHOOK_ENABLED",
            names: "WEBHOOK_ENDPOINTS",
            ..self
        }
    }
}

const fn row(key: &'static str, target: &'static str, how: How) -> Row {
    Row {
        key,
        target,
        gate: "",
        names: "",
        secret: false,
        how,
    }
}
const fn c(key: &'static str, target: &'static str, conv: Conv) -> Row {
    row(key, target, How::Conv(conv))
}
const fn off(
    key: &'static str,
    skip: &'static [&'static str],
    exclude: &'static [&'static str],
) -> Row {
    row(key, "", How::Off(skip, exclude))
}
const fn nn(key: &'static str, why: &'static str) -> Row {
    row(key, "", How::NotNeeded(why))
}
const fn nc(key: &'static str, why: &'static str) -> Row {
    row(key, "", How::NotCarried(why))
}
const fn if_true(key: &'static str, why: &'static str) -> Row {
    row(key, "", How::IfTrue(why))
}
const fn std(key: &'static str, path: &'static str) -> Row {
    row(key, "collect.extra_paths", How::Std(path))
}

const TG_POLL: &str = "delivery polling of the reference's relay bot";
const NO_BATCH: &str = "proxkeep removes what retention prunes one archive at a time";
const NO_PREFILTER: &str = "proxkeep stores files unchanged (no CRLF or JSON rewriting)";
const ONE_UPLOAD: &str = "proxkeep uploads the archive and its .sha256, then verifies them";
const VERIFIED: &str = "proxkeep verifies every upload itself";
const NO_COLOUR: &str = "proxkeep's output has no colours";
const NO_SCAN: &str =
    "port-scan and process scan: proxkeep does not scan for intruders (use a dedicated tool)";
const NO_SECURITY: &str = "the reference's integrity and permission scan; proxkeep comes from the package manager and writes its files with their modes itself";
const NO_OWNER: &str = "proxkeep keeps archives readable by root only; give another user access with an ACL on backup_dir";
const NO_VZDUMP: &str =
    "proxkeep backs up configuration, never vzdump archives (guests are vzdump's and PBS's job)";
const NO_PXAR: &str = "proxkeep does not scan datastore contents (PBS verify jobs do)";
const LOGS_LOCAL: &str = "proxkeep keeps run logs in log_dir only; copy them elsewhere with your own job if you need them there";
const NO_DAEMON: &str =
    "proxkeep has no daemon: proxkeep.timer starts each run, and each run pings notify.ping";
const RELAY: &str = "the reference's Cloudflare mail relay (a third-party service); proxkeep sends through sendmail or SMTP";
const WEBHOOK_RETRIES: &str = "proxkeep retries each channel within its retry_budget (30s)";
const DEAD: &str = "unused by the reference itself (a dead key)";

/// Every key of the reference's template (and its compiled-only keys), in the template's order. Exact keys are
/// looked up before keys with `*`, which are tried in order.
pub const ROWS: &[Row] = &[
    // General
    c("BACKUP_ENABLED", "", backup_enabled),
    nn(
        "PROFILING_ENABLED",
        "pprof profiling: proxkeep has no profiler endpoint",
    ),
    nn("USE_COLOR", NO_COLOUR),
    nn("COLORIZE_STEP_LOGS", NO_COLOUR),
    nn(
        "DEBUG_LEVEL",
        "proxkeep's run log has one level; add --json for machine-readable output",
    ),
    if_true(
        "DRY_RUN",
        "proxkeep has no dry-run setting: run `proxkeep backup --dry-run`",
    ),
    nn(
        "DISABLE_NETWORK_PREFLIGHT",
        "proxkeep has no network preflight: an unreachable remote or channel fails alone, within its timeout",
    ),
    nn(
        "TEMPLATE_VERSION",
        "the version of the reference's template",
    ),
    nn(
        "BASE_DIR",
        "the reference's install dir (only used to expand ${BASE_DIR})",
    ),
    // Security
    nn("SECURITY_CHECK_ENABLED", NO_SECURITY),
    nn("AUTO_UPDATE_HASHES", NO_SECURITY),
    nn("AUTO_FIX_PERMISSIONS", NO_SECURITY),
    nn("CONTINUE_ON_SECURITY_ISSUES", NO_SECURITY),
    nn("CHECK_NETWORK_SECURITY", NO_SCAN),
    nn("CHECK_FIREWALL", NO_SCAN),
    nn("CHECK_OPEN_PORTS", NO_SCAN),
    nn("SUSPICIOUS_PORTS", NO_SCAN),
    nn("PORT_WHITELIST", NO_SCAN),
    nn("SUSPICIOUS_PROCESSES", NO_SCAN),
    nn("SAFE_PROCESSES", NO_SCAN),
    nn("SAFE_BRACKET_PROCESSES", NO_SCAN),
    nn("SAFE_KERNEL_PROCESSES", NO_SCAN),
    nn(
        "SKIP_PERMISSION_CHECK",
        "proxkeep's preflight always probes the backup dir (`proxkeep check`)",
    ),
    nc("BACKUP_USER", NO_OWNER).on("SET_BACKUP_PERMISSIONS"),
    nc("BACKUP_GROUP", NO_OWNER).on("SET_BACKUP_PERMISSIONS"),
    if_true("SET_BACKUP_PERMISSIONS", NO_OWNER),
    // Disk and paths
    c("MIN_DISK_SPACE_PRIMARY_GB", "min_free_space", gib),
    nc(
        "MIN_DISK_SPACE_SECONDARY_GB",
        "proxkeep checks free space on the backup file system only; a full secondary fails that tier alone",
    ),
    nc(
        "MIN_DISK_SPACE_CLOUD_GB",
        "proxkeep checks free space on the backup file system only; a full remote fails that tier alone",
    ),
    nn(
        "LOCK_PATH",
        "proxkeep has its own lock_file (default /run/proxkeep.lock)",
    ),
    nn(
        "SECURE_ACCOUNT",
        "the reference's relay and cloud accounts; rclone remotes keep their own config",
    ),
    c("BACKUP_PATH", "backup_dir", path),
    c("LOG_PATH", "log_dir", log_path),
    std("PVE_CONFIG_PATH", "/etc/pve"),
    std("PVE_CLUSTER_PATH", "/var/lib/pve-cluster"),
    std("COROSYNC_CONFIG_PATH", "/etc/pve/corosync.conf"),
    std("VZDUMP_CONFIG_PATH", "/etc/vzdump.conf"),
    std("PBS_CONFIG_PATH", "/etc/proxmox-backup"),
    std("CEPH_CONFIG_PATH", "/etc/ceph"),
    nn(
        "PBS_DATASTORE_PATH",
        "extra datastore scan roots: proxkeep does not scan datastores (their config is in /etc/proxmox-backup)",
    ),
    c("SYSTEM_ROOT_PREFIX", "", root_prefix),
    if_true(
        "HOST_BACKUP_MODE",
        "back up a mounted host tree with `proxkeep --root DIR backup`",
    ),
    // Compression
    c("COMPRESSION_TYPE", "compression.algorithm", algorithm),
    c("COMPRESSION_LEVEL", "compression.level", level),
    c("COMPRESSION_THREADS", "compression.threads", count),
    c("COMPRESSION_MODE", "", compression_mode),
    nn(
        "ENABLE_DEDUPLICATION",
        "proxkeep stores every file as itself (no symlink dedup)",
    ),
    nn("ENABLE_PREFILTER", NO_PREFILTER),
    nn("PREFILTER_MAX_FILE_SIZE_MB", NO_PREFILTER),
    // Exclusions
    c("BACKUP_EXCLUDE_PATTERNS", "collect.exclude", globs),
    c("BACKUP_BLACKLIST", "collect.exclude", globs),
    c("CUSTOM_BACKUP_PATHS", "collect.extra_paths", paths),
    // Secondary
    c("SECONDARY_ENABLED", "secondary", enabled),
    c("SECONDARY_PATH", "secondary.path", path).on("SECONDARY_ENABLED"),
    nc("SECONDARY_LOG_PATH", LOGS_LOCAL).on("SECONDARY_ENABLED"),
    c("MAX_SECONDARY_BACKUPS", "secondary.keep_last", tier_count).on("SECONDARY_ENABLED"),
    c("FS_IO_TIMEOUT", "secondary.timeout", seconds).on("SECONDARY_ENABLED"),
    // Cloud
    c("CLOUD_ENABLED", "remote", enabled),
    c("CLOUD_REMOTE", "remote.target", remote_target).on("CLOUD_ENABLED"),
    c("CLOUD_REMOTE_PATH", "remote.target", remote_target).on("CLOUD_ENABLED"),
    nc("CLOUD_LOG_PATH", LOGS_LOCAL).on("CLOUD_ENABLED"),
    nn("CLOUD_UPLOAD_MODE", ONE_UPLOAD),
    nn("CLOUD_PARALLEL_MAX_JOBS", ONE_UPLOAD),
    nn("CLOUD_PARALLEL_VERIFICATION", ONE_UPLOAD),
    nn(
        "CLOUD_WRITE_HEALTHCHECK",
        "`proxkeep check` checks every remote",
    ),
    nn("CLOUD_VERIFY_CHECKSUM", VERIFIED),
    nn("CLOUD_VERIFY_DOWNLOAD", VERIFIED),
    nn("RCLONE_VERIFY_METHOD", VERIFIED),
    c("RCLONE_TIMEOUT_CONNECTION", "remote.flags", contimeout).on("CLOUD_ENABLED"),
    c("RCLONE_TIMEOUT_OPERATION", "remote.timeout", seconds).on("CLOUD_ENABLED"),
    c("RCLONE_BANDWIDTH_LIMIT", "remote.flags", bwlimit).on("CLOUD_ENABLED"),
    c("RCLONE_TRANSFERS", "remote.flags", transfers).on("CLOUD_ENABLED"),
    c("RCLONE_RETRIES", "remote.retries", count).on("CLOUD_ENABLED"),
    c("RCLONE_FLAGS", "remote.flags", words).on("CLOUD_ENABLED"),
    nn("CLOUD_BATCH_SIZE", NO_BATCH),
    nn("CLOUD_BATCH_PAUSE", NO_BATCH),
    c("MAX_CLOUD_BACKUPS", "remote.keep_last", tier_count).on("CLOUD_ENABLED"),
    // Retention
    c("RETENTION_POLICY", "retention", policy),
    c("MAX_LOCAL_BACKUPS", "retention.keep_last", local_count),
    c("RETENTION_DAILY", "retention.keep_last", gfs_daily),
    c("RETENTION_WEEKLY", "retention.keep_weekly", gfs),
    c("RETENTION_MONTHLY", "retention.keep_monthly", gfs),
    c("RETENTION_YEARLY", "retention.keep_yearly", gfs_yearly),
    // Bundle and encryption
    nn(
        "BUNDLE_ASSOCIATED_FILES",
        "proxkeep writes one archive with its .sha256 beside it (docs/format.md)",
    ),
    c("ENCRYPT_ARCHIVE", "encryption", enabled),
    c("AGE_RECIPIENT", "encryption.recipients", recipients).on("ENCRYPT_ARCHIVE"),
    c("AGE_RECIPIENT_FILE", "encryption.recipients_file", path).on("ENCRYPT_ARCHIVE"),
    // Telegram
    c("TELEGRAM_ENABLED", "notify.telegram", channel),
    c("BOT_TELEGRAM_TYPE", "notify.telegram", telegram_type).on("TELEGRAM_ENABLED"),
    c("TELEGRAM_BOT_TOKEN", "notify.telegram.bot_token", text)
        .on("TELEGRAM_ENABLED")
        .secret(),
    c("TELEGRAM_CHAT_ID", "notify.telegram.chat_id", chat_id).on("TELEGRAM_ENABLED"),
    nn("TELEGRAM_CONFIRM_DELIVERY", TG_POLL),
    nn("TELEGRAM_CONFIRM_TIMEOUT_SECONDS", TG_POLL),
    nn("TELEGRAM_CONFIRM_INTERVAL_SECONDS", TG_POLL),
    // Email
    c("EMAIL_ENABLED", "notify.email", channel),
    c("EMAIL_DELIVERY_METHOD", "notify.email.transport", delivery).on("EMAIL_ENABLED"),
    nn(
        "EMAIL_FALLBACK_SENDMAIL",
        "proxkeep sends through sendmail unless you configure SMTP",
    ),
    c("EMAIL_RECIPIENT", "notify.email.to", mail_to).on("EMAIL_ENABLED"),
    c("EMAIL_FROM", "notify.email.from", text).on("EMAIL_ENABLED"),
    nn("CLOUDFLARE_WORKER_URL", RELAY),
    nn("CLOUDFLARE_WORKER_TOKEN", RELAY).secret(),
    nn("CLOUDFLARE_HMAC_SECRET", RELAY).secret(),
    // Gotify
    c("GOTIFY_ENABLED", "notify.gotify", channel),
    c("GOTIFY_SERVER_URL", "notify.gotify.url", text).on("GOTIFY_ENABLED"),
    c("GOTIFY_TOKEN", "notify.gotify.token", text)
        .on("GOTIFY_ENABLED")
        .secret(),
    c("GOTIFY_PRIORITY_SUCCESS", "", priority).on("GOTIFY_ENABLED"),
    c("GOTIFY_PRIORITY_WARNING", "", priority).on("GOTIFY_ENABLED"),
    c("GOTIFY_PRIORITY_FAILURE", "", priority).on("GOTIFY_ENABLED"),
    // Webhooks: the global keys apply to every endpoint that does not set its own.
    c("WEBHOOK_ENABLED", "notify.webhook", channel),
    c("WEBHOOK_ENDPOINTS", "notify.webhook", endpoints).on("WEBHOOK_ENABLED"),
    c("WEBHOOK_FORMAT", "notify.webhook.format", webhook_format).on("WEBHOOK_ENABLED"),
    c("WEBHOOK_TIMEOUT", "notify.webhook.timeout", seconds).on("WEBHOOK_ENABLED"),
    nn("WEBHOOK_MAX_RETRIES", WEBHOOK_RETRIES),
    nn("WEBHOOK_RETRY_DELAY", WEBHOOK_RETRIES),
    c("WEBHOOK_*_URL", "notify.webhook.url", text)
        .named()
        .secret(),
    c("WEBHOOK_*_FORMAT", "notify.webhook.format", webhook_format).named(),
    c("WEBHOOK_*_METHOD", "notify.webhook.method", method).named(),
    c("WEBHOOK_*_HEADERS", "notify.webhook.headers", headers)
        .named()
        .secret(),
    c("WEBHOOK_*_AUTH_TYPE", "notify.webhook", auth_type).named(),
    c(
        "WEBHOOK_*_AUTH_TOKEN",
        "notify.webhook.headers",
        auth_header,
    )
    .named()
    .secret(),
    c("WEBHOOK_*_AUTH_USER", "notify.webhook.headers", auth_header)
        .named()
        .secret(),
    c("WEBHOOK_*_AUTH_PASS", "notify.webhook.headers", auth_header)
        .named()
        .secret(),
    c("WEBHOOK_*_AUTH_SECRET", "notify.webhook.hmac_secret", hmac)
        .named()
        .secret(),
    nc(
        "WEBHOOK_*_PRIORITY",
        "a Pushover priority: proxkeep has no Pushover format",
    )
    .named(),
    // Metrics
    c("METRICS_ENABLED", "metrics", enabled),
    c("METRICS_PATH", "metrics.textfile", textfile).on("METRICS_ENABLED"),
    // PVE collectors
    off(
        "BACKUP_CLUSTER_CONFIG",
        &["corosync"],
        &["/etc/pve/corosync.conf"],
    ),
    off(
        "BACKUP_PVE_FIREWALL",
        &[],
        &[
            "/etc/pve/firewall",
            "/etc/pve/nodes/*/host.fw",
            "/var/lib/pve-firewall",
        ],
    ),
    off("BACKUP_VZDUMP_CONFIG", &[], &["/etc/vzdump.conf"]),
    off(
        "BACKUP_PVE_ACL",
        &[],
        &[
            "/etc/pve/user.cfg",
            "/etc/pve/domains.cfg",
            "/etc/pve/priv/shadow.cfg",
            "/etc/pve/priv/token.cfg",
            "/etc/pve/priv/tfa.cfg",
        ],
    ),
    off(
        "BACKUP_PVE_JOBS",
        &[],
        &["/etc/pve/jobs.cfg", "/etc/pve/vzdump.cron"],
    ),
    nc(
        "BACKUP_PVE_SCHEDULES",
        "proxkeep's crontabs and timer list are categories cron and systemd, which hold more: skip those in collect.skip_categories if you must",
    ),
    nn(
        "BACKUP_PVE_REPLICATION",
        "proxkeep runs no replication reports (replication.cfg is in /etc/pve)",
    ),
    nn(
        "BACKUP_PVE_BACKUP_FILES",
        "proxkeep does not scan storages for vzdump files",
    ),
    off(
        "BACKUP_VM_CONFIGS",
        &[],
        &[
            "/etc/pve/qemu-server",
            "/etc/pve/lxc",
            "/etc/pve/nodes/*/qemu-server",
            "/etc/pve/nodes/*/lxc",
        ],
    ),
    nc(
        "PVESH_TIMEOUT",
        "proxkeep's commands.timeout (default 30s) bounds every inventory command, pvesh included",
    ),
    if_true("BACKUP_SMALL_PVE_BACKUPS", NO_VZDUMP),
    nn("MAX_PVE_BACKUP_SIZE", NO_VZDUMP),
    nn("PVE_BACKUP_INCLUDE_PATTERN", NO_VZDUMP),
    off("BACKUP_CEPH_CONFIG", &["ceph"], &[]),
    // PBS collectors: files of /etc/proxmox-backup (category pbs-config).
    off(
        "BACKUP_DATASTORE_CONFIGS",
        &[],
        &["/etc/proxmox-backup/datastore.cfg"],
    ),
    off(
        "BACKUP_PBS_S3_ENDPOINTS",
        &[],
        &["/etc/proxmox-backup/s3.cfg"],
    ),
    off(
        "BACKUP_PBS_NODE_CONFIG",
        &[],
        &["/etc/proxmox-backup/node.cfg"],
    ),
    off(
        "BACKUP_PBS_ACME_ACCOUNTS",
        &[],
        &["/etc/proxmox-backup/acme/accounts*"],
    ),
    off(
        "BACKUP_PBS_ACME_PLUGINS",
        &[],
        &["/etc/proxmox-backup/acme/plugins.cfg"],
    ),
    off(
        "BACKUP_PBS_METRIC_SERVERS",
        &[],
        &["/etc/proxmox-backup/metricserver.cfg"],
    ),
    off(
        "BACKUP_PBS_TRAFFIC_CONTROL",
        &[],
        &["/etc/proxmox-backup/traffic-control.cfg"],
    ),
    off(
        "BACKUP_PBS_NOTIFICATIONS",
        &[],
        &["/etc/proxmox-backup/notifications.cfg"],
    ),
    off(
        "BACKUP_PBS_NOTIFICATIONS_PRIV",
        &[],
        &["/etc/proxmox-backup/notifications-priv.cfg"],
    ),
    off(
        "BACKUP_USER_CONFIGS",
        &[],
        &[
            "/etc/proxmox-backup/user.cfg",
            "/etc/proxmox-backup/acl.cfg",
            "/etc/proxmox-backup/domains.cfg",
            "/etc/proxmox-backup/token.cfg",
            "/etc/proxmox-backup/shadow.json",
            "/etc/proxmox-backup/token.shadow",
            "/etc/proxmox-backup/tfa.json",
        ],
    ),
    off(
        "BACKUP_REMOTE_CONFIGS",
        &[],
        &["/etc/proxmox-backup/remote.cfg"],
    ),
    off("BACKUP_SYNC_JOBS", &[], &["/etc/proxmox-backup/sync.cfg"]),
    off(
        "BACKUP_VERIFICATION_JOBS",
        &[],
        &["/etc/proxmox-backup/verification.cfg"],
    ),
    off(
        "BACKUP_TAPE_CONFIGS",
        &[],
        &[
            "/etc/proxmox-backup/tape.cfg",
            "/etc/proxmox-backup/tape-job.cfg",
            "/etc/proxmox-backup/media-pool.cfg",
            "/etc/proxmox-backup/tape-encryption-keys.json",
        ],
    ),
    off(
        "BACKUP_PBS_NETWORK_CONFIG",
        &[],
        &["/etc/proxmox-backup/network.cfg"],
    ),
    off(
        "BACKUP_PRUNE_SCHEDULES",
        &[],
        &["/etc/proxmox-backup/prune.cfg"],
    ),
    if_true("PXAR_SCAN_ENABLE", NO_PXAR),
    nn("PXAR_SCAN_DS_CONCURRENCY", NO_PXAR),
    nn("PXAR_FILE_INCLUDE_PATTERN", NO_PXAR),
    nn("PXAR_FILE_EXCLUDE_PATTERN", NO_PXAR),
    // System collectors
    off(
        "BACKUP_NETWORK_CONFIGS",
        &[],
        &["/etc/network", "/etc/systemd/network"],
    ),
    off("BACKUP_APT_SOURCES", &[], &["/etc/apt"]),
    off("BACKUP_CRON_JOBS", &["cron"], &[]),
    off("BACKUP_SYSTEMD_SERVICES", &["systemd"], &[]),
    off("BACKUP_SSL_CERTS", &["ssl"], &[]),
    off("BACKUP_SYSCTL_CONFIG", &["sysctl"], &[]),
    off(
        "BACKUP_KERNEL_MODULES",
        &[],
        &["/etc/modules", "/etc/modules-load.d", "/etc/modprobe.d"],
    ),
    nc(
        "BACKUP_INSTALLED_PACKAGES",
        "proxkeep's package lists are command output of category apt, with the sources: skip apt, or set commands.run = \"never\" (all inventory commands)",
    ),
    off("BACKUP_SCRIPT_DIR", &["local-scripts"], &[]),
    off("BACKUP_CRITICAL_FILES", &["accounts"], &[]),
    off("BACKUP_SSH_KEYS", &["ssh"], &[]),
    off("BACKUP_ZFS_CONFIG", &["zfs"], &[]),
    off("BACKUP_ROOT_HOME", &["root-home"], &[]),
    off("BACKUP_CONFIG_FILE", &["proxkeep"], &[]),
    off("BACKUP_FIREWALL_RULES", &["firewall"], &[]),
    nn(
        "BACKUP_SCRIPT_REPOSITORY",
        "the reference's install dir; proxkeep comes from its package",
    ),
    // Scheduler and healthchecks
    nn(
        "SCHEDULER_MODE",
        "proxkeep.timer schedules the runs: `systemctl enable --now proxkeep.timer`",
    ),
    nc(
        "SCHEDULER_TIME",
        "set OnCalendar= in a drop-in: `systemctl edit proxkeep.timer`",
    ),
    nc(
        "MAX_RUN_DURATION",
        "the run watchdog is RuntimeMaxSec= of proxkeep.service: `systemctl edit proxkeep.service`",
    ),
    nn("DAEMON_OPT_OUT", NO_DAEMON),
    c("HEALTHCHECK_ENABLED", "notify.ping", enabled),
    c("HEALTHCHECK_MODE", "notify.ping", healthcheck_mode).on("HEALTHCHECK_ENABLED"),
    c("HEALTHCHECK_BACKUP_URL", "notify.ping.url", ping_url)
        .on("HEALTHCHECK_ENABLED")
        .secret(),
    c("HEALTHCHECK_BACKUP_ID", "notify.ping.url", ping_url)
        .on("HEALTHCHECK_ENABLED")
        .secret(),
    c("HEALTHCHECK_PING_ENDPOINT", "notify.ping.url", ping_url).on("HEALTHCHECK_ENABLED"),
    nc(
        "HEALTHCHECK_PING_KEY",
        "proxkeep pings one check URL: set notify.ping.url = \"<endpoint>/<ping key>/<slug>\"",
    )
    .secret(),
    nn("HEALTHCHECK_*", NO_DAEMON),
    // Dead keys
    nn("PBS_REPOSITORY", DEAD),
    nn("PBS_PASSWORD", DEAD).secret(),
    nn("PBS_FINGERPRINT", DEAD),
];

/// The row of `key`, and the NAME its `*` stands for ("" for an exact key).
pub fn row_of(key: &str) -> Option<(&'static Row, &str)> {
    if let Some(r) = ROWS.iter().find(|r| r.key == key) {
        return Some((r, ""));
    }
    ROWS.iter().find_map(|r| {
        let (pre, post) = r.key.split_once('*')?;
        let name = key.strip_prefix(pre)?.strip_suffix(post)?;
        (!name.is_empty()).then_some((r, name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_unique_and_their_categories_exist() {
        let names = crate::catalog::category_names();
        for (i, r) in ROWS.iter().enumerate() {
            assert!(ROWS[..i].iter().all(|o| o.key != r.key), "{} twice", r.key);
            if let How::Off(skip, exclude) = &r.how {
                assert!(
                    skip.iter().all(|s| names.contains(s)),
                    "{}: {skip:?}",
                    r.key
                );
                assert!(exclude.iter().all(|e| e.starts_with('/')), "{}", r.key);
            }
            let block = r.target.split('.').next().unwrap_or("");
            let known = BLOCKS.iter().any(|b| r.target.starts_with(b.path))
                || [
                    "",
                    "backup_dir",
                    "log_dir",
                    "min_free_space",
                    "compression",
                    "collect",
                    "retention",
                ]
                .contains(&block);
            assert!(known, "{}: {}", r.key, r.target);
        }
    }
}
