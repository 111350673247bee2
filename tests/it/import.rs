//! `proxkeep config import`: the reference tool's backup.env (samples in tests/fixtures/reference-env, written
//! from ../shared/docs/reference-features.md) carried into a proxkeep.toml that `config check` accepts, with
//! one report line per key of the input, and no secret ever printed.

use crate::util::*;
use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn sample(name: &str) -> PathBuf {
    repo().join("tests/fixtures/reference-env").join(name)
}

/// The keys of a sample, as a shell would see them (a multi-line value's inner lines start with no KEY=).
fn keys_of(file: &Path) -> BTreeSet<String> {
    fs::read_to_string(file)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (key, _) = l.split_once('=')?;
            let key = key.trim();
            let ok = !key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            ok.then(|| key.to_string())
        })
        .collect()
}

/// `proxkeep [--json] config import INPUT --out OUT`.
fn run_import(env: &Env, json: bool, input: &Path, out: &Path) -> Run {
    let (input, out) = (input.to_str().unwrap(), out.to_str().unwrap());
    let args = ["--json", "config", "import", input, "--out", out];
    env.run(&args[usize::from(!json)..])
}

/// Imports `name` into a new file; checks what every import must give: exit 0, one line per key of the input
/// (in text and in JSON), the file 0600 and accepted by `config check`, no `s3cr3t` on stdout or stderr.
/// Returns the text report and the written config, parsed.
fn import(name: &str) -> (Vec<String>, toml::Table) {
    let env = Env::new("pve-node");
    let input = sample(name);
    let keys = keys_of(&input);
    let out = env.path("imported/proxkeep.toml");
    let run = run_import(&env, false, &input, &out);
    run.expect(0);
    let (stdout, stderr) = (run.stdout(), run.stderr());
    assert!(
        !stdout.contains("s3cr3t") && !stderr.contains("s3cr3t"),
        "{stdout}\n{stderr}"
    );
    let mut lines: Vec<String> = stdout.lines().map(str::to_string).collect();
    let last = lines.pop().unwrap();
    assert!(
        last.starts_with(&format!("wrote {}", out.display())),
        "{last}"
    );
    let reported: BTreeSet<String> = lines
        .iter()
        .map(|l| {
            let rest = ["carried ", "not needed ", "not carried "]
                .iter()
                .find_map(|p| l.strip_prefix(p))
                .unwrap_or_else(|| panic!("not a report line: {l}"));
            rest.split([' ', ':']).next().unwrap().to_string()
        })
        .collect();
    assert_eq!(lines.len(), keys.len(), "one line per key\n{stdout}");
    assert_eq!(reported, keys);
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let check = env.run(&["config", "check", out.to_str().unwrap()]);
    check.expect(0);

    // --json: the same report as data, values absent; the existing file is never replaced (exit 2).
    let out2 = env.path("second.toml");
    let json = run_import(&env, true, &input, &out2);
    json.expect(0);
    assert!(!json.stdout().contains("s3cr3t"), "{}", json.stdout());
    let doc = json.json();
    let entries = doc["keys"].as_array().unwrap();
    assert_eq!(entries.len(), keys.len());
    assert!(
        entries
            .iter()
            .all(|e| e["key"].is_string() && e["outcome"].is_string() && e.get("value").is_none())
    );
    assert_eq!(fs::read(&out).unwrap(), fs::read(&out2).unwrap());
    let before = fs::read(&out).unwrap();
    let again = run_import(&env, false, &input, &out);
    again.expect(2);
    assert!(again.stderr().contains("exists"), "{}", again.stderr());
    assert_eq!(fs::read(&out).unwrap(), before);

    let text = fs::read_to_string(&out).unwrap();
    (lines, text.parse::<toml::Table>().unwrap())
}

#[track_caller]
fn has(lines: &[String], want: &str) {
    assert!(
        lines.iter().any(|l| l.starts_with(want)),
        "no line `{want}` in\n{}",
        lines.join("\n")
    );
}

#[test]
fn import_of_the_reference_defaults() {
    let (lines, c) = import("default.env");
    // Every key of the sample is one of the table's (none reported as unknown).
    assert!(
        !lines.iter().any(|l| l.contains("not a key of")),
        "{lines:?}"
    );
    for want in [
        "carried BACKUP_PATH -> backup_dir",
        "carried LOG_PATH -> log_dir",
        "carried COMPRESSION_TYPE -> compression.algorithm",
        "carried COMPRESSION_LEVEL -> compression.level",
        "carried MIN_DISK_SPACE_PRIMARY_GB -> min_free_space",
        "carried MAX_LOCAL_BACKUPS -> retention.keep_last (",
        "carried BACKUP_EXCLUDE_PATTERNS -> collect.exclude",
        "carried BACKUP_CEPH_CONFIG -> collect.skip_categories",
        "carried BACKUP_FIREWALL_RULES -> collect.skip_categories",
        "not needed PROFILING_ENABLED: ",
        "not needed USE_COLOR: ",
        "not needed CHECK_OPEN_PORTS: port-scan",
        "not needed SECONDARY_PATH: SECONDARY_ENABLED is not true",
        "not needed TELEGRAM_BOT_TOKEN: TELEGRAM_ENABLED is not true",
        "not needed BACKUP_SSH_KEYS: true: ",
        "not needed CUSTOM_BACKUP_PATHS: empty",
        "not carried COMPRESSION_MODE: proxkeep has no modes",
        "not carried SCHEDULER_TIME: set OnCalendar=",
    ] {
        has(&lines, want);
    }
    assert_eq!(c["backup_dir"].as_str(), Some("/opt/proxsave/backup"));
    assert_eq!(c["compression"]["algorithm"].as_str(), Some("xz"));
    assert_eq!(c["compression"]["level"].as_integer(), Some(9));
    assert_eq!(c["min_free_space"].as_str(), Some("1GiB"));
    assert_eq!(c["retention"]["keep_last"].as_integer(), Some(15));
    assert_eq!(c["retention"]["keep_daily"].as_integer(), Some(0));
    let exclude: Vec<&str> = c["collect"]["exclude"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(exclude, ["*/cache/**", "/var/tmp/**"]);
    for absent in ["secondary", "remote", "notify", "encryption"] {
        assert!(c.get(absent).is_none(), "{absent}: {c:?}");
    }
}

#[test]
fn import_with_every_feature_on() {
    let (lines, c) = import("every-feature.env");
    // Every key of the sample is one of the table's (none reported as unknown).
    assert!(
        !lines.iter().any(|l| l.contains("not a key of")),
        "{lines:?}"
    );
    for secret in [
        "carried TELEGRAM_BOT_TOKEN -> notify.telegram.bot_token (secret, not shown)",
        "carried GOTIFY_TOKEN -> notify.gotify.token (secret, not shown)",
        "carried WEBHOOK_DISCORD_URL -> notify.webhook.url (secret, not shown)",
        "carried WEBHOOK_OPS_AUTH_TOKEN -> notify.webhook.headers (secret, not shown)",
        "carried WEBHOOK_TEAMS_AUTH_SECRET -> notify.webhook.hmac_secret (secret, not shown)",
        "carried HEALTHCHECK_BACKUP_URL -> notify.ping.url (secret, not shown)",
    ] {
        has(&lines, secret);
    }
    for want in [
        "carried SECONDARY_PATH -> secondary.path",
        "carried CLOUD_REMOTE -> remote.target",
        "carried CLOUD_REMOTE_PATH -> remote.target",
        "carried RCLONE_FLAGS -> remote.flags",
        "carried RCLONE_BANDWIDTH_LIMIT -> remote.flags",
        "carried RETENTION_WEEKLY -> retention.keep_weekly",
        "carried RETENTION_YEARLY -> retention.keep_yearly (0 means unlimited",
        "carried AGE_RECIPIENT -> encryption.recipients",
        "carried AGE_RECIPIENT_FILE -> encryption.recipients_file",
        "carried EMAIL_RECIPIENT -> notify.email.to",
        "carried EMAIL_FROM -> notify.email.from",
        "carried EMAIL_DELIVERY_METHOD -> notify.email.transport",
        "carried METRICS_PATH -> metrics.textfile (",
        "carried CUSTOM_BACKUP_PATHS -> collect.extra_paths",
        "carried BACKUP_BLACKLIST -> collect.exclude",
        "carried PBS_CONFIG_PATH -> collect.extra_paths (",
        "carried BACKUP_PVE_ACL -> collect.exclude",
        "carried BACKUP_TAPE_CONFIGS -> collect.exclude",
        "carried BACKUP_CRON_JOBS -> collect.skip_categories",
        "carried BACKUP_ROOT_HOME -> collect.skip_categories",
        "carried COMPRESSION_LEVEL -> compression.level (proxkeep's zstd levels end at 19)",
        "not needed GOTIFY_PRIORITY_SUCCESS: ",
        "not carried GOTIFY_PRIORITY_WARNING: ",
        "not carried WEBHOOK_TEAMS_FORMAT: proxkeep formats json, discord and slack, not teams",
        "not carried SECONDARY_LOG_PATH: ",
        "not carried BACKUP_SMALL_PVE_BACKUPS: ",
        "not needed HEALTHCHECK_ALIVE_URL: ",
        "not needed CLOUDFLARE_WORKER_TOKEN: ",
    ] {
        has(&lines, want);
    }

    assert_eq!(
        c["secondary"][0]["path"].as_str(),
        Some("/mnt/nas/proxsave")
    );
    assert_eq!(c["secondary"][0]["timeout"].as_str(), Some("45s"));
    let remote = &c["remote"][0];
    assert_eq!(remote["target"].as_str(), Some("b2:proxsave/backup"));
    assert_eq!(remote["timeout"].as_str(), Some("10m"));
    assert_eq!(remote["retries"].as_integer(), Some(5));
    let flags: Vec<&str> = remote["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for f in [
        "--contimeout",
        "--bwlimit",
        "8M",
        "--transfers",
        "--checkers=4",
        "--stats=0",
    ] {
        assert!(flags.contains(&f), "{f}: {flags:?}");
    }
    let r = &c["retention"];
    let keep = |k: &str| r[k].as_integer().unwrap();
    assert_eq!(
        [
            keep("keep_last"),
            keep("keep_weekly"),
            keep("keep_monthly"),
            keep("keep_yearly")
        ],
        [7, 4, 12, 1000]
    );
    assert_eq!(keep("keep_daily"), 0);
    let notify = &c["notify"];
    assert_eq!(
        notify["telegram"][0]["bot_token"].as_str(),
        Some("123456:TELEGRAM-s3cr3t-TOKEN")
    );
    assert_eq!(
        notify["telegram"][0]["chat_id"].as_integer(),
        Some(-1001234567890)
    );
    assert_eq!(
        notify["email"][0]["to"][0].as_str(),
        Some("admin@example.org")
    );
    assert_eq!(
        notify["gotify"][0]["token"].as_str(),
        Some("GOTIFY-s3cr3t-TOKEN")
    );
    assert_eq!(
        notify["ping"][0]["url"].as_str(),
        Some("https://hc-ping.com/HEALTHCHECK-s3cr3t-UUID")
    );
    let hooks = notify["webhook"].as_array().unwrap();
    let hook = |n: &str| {
        hooks
            .iter()
            .find(|h| h["name"].as_str() == Some(n))
            .unwrap()
    };
    assert_eq!(hook("discord")["format"].as_str(), Some("discord"));
    assert_eq!(hook("ops")["format"].as_str(), Some("json"));
    assert_eq!(hook("ops")["method"].as_str(), Some("PUT"));
    assert_eq!(
        hook("ops")["headers"]["Authorization"].as_str(),
        Some("Bearer OPS-BEARER-s3cr3t")
    );
    assert_eq!(hook("ops")["headers"]["X-Env"].as_str(), Some("prod"));
    assert_eq!(
        hook("teams")["hmac_secret"].as_str(),
        Some("HMAC-s3cr3t-KEY")
    );
    assert_eq!(hook("teams")["timeout"].as_str(), Some("20s"));
    assert_eq!(
        c["metrics"]["textfile"].as_str(),
        Some("/var/lib/prometheus/node-exporter/proxkeep.prom")
    );
    let skip: Vec<&str> = c["collect"]["skip_categories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(skip, ["cron", "root-home"]);
    assert!(
        c["encryption"]["recipients"][0]
            .as_str()
            .unwrap()
            .starts_with("age1")
    );
}

#[test]
fn import_with_odd_quoting() {
    let (lines, c) = import("odd-quoting.env");
    for want in [
        "carried BACKUP_PATH -> backup_dir",
        "not needed BASE_DIR: ",
        "not needed LOCK_PATH: ",
        "carried TELEGRAM_BOT_TOKEN -> notify.telegram.bot_token (secret, not shown)",
        "carried BACKUP_SSH_KEYS -> collect.skip_categories",
        "carried BACKUP_KERNEL_MODULES -> collect.exclude",
        "not carried LEGACY_ALIAS_KEY: not a key of the reference's template",
    ] {
        has(&lines, want);
    }
    assert_eq!(c["backup_dir"].as_str(), Some("/srv/ps/backup"));
    assert_eq!(c["log_dir"].as_str(), Some("/srv/ps/log # not a comment"));
    assert_eq!(c["compression"]["algorithm"].as_str(), Some("gzip"));
    assert_eq!(c["compression"]["level"].as_integer(), Some(7));
    assert_eq!(c["compression"]["threads"].as_integer(), Some(2));
    assert_eq!(c["secondary"][0]["path"].as_str(), Some("/mnt/usb disk/ps"));
    assert_eq!(c["secondary"][0]["keep_last"].as_integer(), Some(3));
    assert_eq!(
        c["remote"][0]["target"].as_str(),
        Some("s3:bucket/base/host/$HOSTNAME")
    );
    let flags = c["remote"][0]["flags"].as_array().unwrap();
    assert_eq!(flags.len(), 2, "{flags:?}");
    let tg = &c["notify"]["telegram"][0];
    assert_eq!(tg["bot_token"].as_str(), Some("987654:ODD\"QUOTED\"s3cr3t"));
    assert_eq!(tg["chat_id"].as_str(), Some("@backups_channel"));
    let strs = |v: &toml::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        strs(&c["collect"]["exclude"]),
        [
            "/var/cache/**",
            "*.tmp",
            "/etc/modules",
            "/etc/modules-load.d",
            "/etc/modprobe.d"
        ]
    );
    assert_eq!(
        strs(&c["collect"]["extra_paths"]),
        ["/etc/custom", "/usr/local/etc/app"]
    );
    assert_eq!(strs(&c["collect"]["skip_categories"]), ["ssh"]);
    // MAX_LOCAL_BACKUPS=0 keeps everything, in both tools: every keep_* is 0.
    let r = c["retention"].as_table().unwrap();
    assert!(
        [
            "keep_last",
            "keep_hourly",
            "keep_daily",
            "keep_weekly",
            "keep_monthly",
            "keep_yearly"
        ]
        .iter()
        .all(|k| r[*k].as_integer() == Some(0)),
        "{r:?}"
    );
}

#[test]
fn import_refuses_a_malformed_file_and_stdout() {
    let env = Env::new("");
    let bad = env.path("backup.env");
    let out = env.path("new.toml");
    // A line that is not KEY=value, a quote never closed: exit 2 naming file:line, nothing written.
    for (text, line) in [
        ("# ok\nBACKUP_PATH=/srv/b\nthis line is wrong\n", 3),
        ("A=1\nTELEGRAM_BOT_TOKEN=\"s3cr3t never closed\n", 2),
    ] {
        fs::write(&bad, text).unwrap();
        let r = run_import(&env, false, &bad, &out);
        r.expect(2);
        let err = r.stderr();
        assert!(
            err.contains(&format!("{}:{line}: ", bad.display())),
            "{err}"
        );
        assert!(!err.contains("s3cr3t") && !out.exists(), "{err}");
    }
    // The config would be printed, secrets and all: `-` is refused.
    fs::write(&bad, "TELEGRAM_BOT_TOKEN=s3cr3t\n").unwrap();
    let r = env.run(&["config", "import", bad.to_str().unwrap(), "--out", "-"]);
    r.expect(2);
    assert!(!r.stdout().contains("s3cr3t") && !r.stderr().contains("s3cr3t"));
    // Without --out: the --config path, like config init, and it exists here: refused, unchanged.
    let before = fs::read(&env.config).unwrap();
    env.run(&["config", "import", bad.to_str().unwrap()])
        .expect(2);
    assert_eq!(fs::read(&env.config).unwrap(), before);
}
