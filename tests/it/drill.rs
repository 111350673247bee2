//! `proxkeep drill` through the binary: a restore rehearsal on archives of the fixture hosts, a consistent one
//! and broken ones, checked for what it reports, its exit code, the metrics it leaves, and that it never
//! writes to the host root nor leaves its scratch directory behind.

use crate::util::{Env, make_config_db, sh_ok, sha256_file, tool, tree_state};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const T0: &str = "2026-11-30T03:00:00Z";
const T1: &str = "2026-11-30T04:00:00Z";
const UUID: &str = "0f3a7c2e-5d1b-4c8e-9a6f-2b7d4e1c8a90";

/// Every entry of the host root: kind, mode, link target and (for files) the SHA-256 of the content.
fn fingerprint(root: &Path) -> BTreeMap<String, String> {
    tree_state(root)
        .into_iter()
        .map(|(p, (kind, mode, target))| {
            let hash = (kind == "file").then(|| sha256_file(&root.join(&p)));
            (p, format!("{kind} {mode:o} {target:?} {hash:?}"))
        })
        .collect()
}

/// The pve-node root made complete as a real node's: its NICs under /sys/class/net, an fstab whose file
/// systems `blkid` (a stub: commands run) reports, and the textfile configured. Backed up at T0.
fn complete_pve_node() -> Env {
    let mut env = Env::new("pve-node");
    for nic in ["eno1", "eno2", "eno3", "bond0", "vmbr0"] {
        let d = env.root.join("sys/class/net").join(nic);
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("address"), "3c:ec:ef:00:00:01\n").unwrap();
    }
    let fstab = format!(
        "# <file system> <mount point> <type> <options> <dump> <pass>\n/dev/pve/root / ext4 errors=remount-ro 0 1\nUUID={UUID} /boot/efi vfat defaults 0 1\nproc /proc proc defaults 0 0\n"
    );
    fs::write(env.root.join("etc/fstab"), fstab).unwrap();
    env.stub(
        "blkid",
        &format!("printf '%s\\n' '/dev/sda2: UUID=\"{UUID}\" BLOCK_SIZE=\"512\" TYPE=\"vfat\" PARTUUID=\"aa-02\"'"),
    );
    let textfile = env.path("textfile/proxkeep.prom");
    env.write_config(&format!(
        "[commands]\nrun = \"always\"\n[metrics]\ntextfile = \"{}\"\n",
        textfile.display()
    ));
    backup(&env);
    env
}

/// A backup at T0 with only the stubs on PATH (no command of this machine describes the fixture host).
fn backup(env: &Env) -> PathBuf {
    let out = env
        .cmd()
        .env("PATH", &env.stubs)
        .env("PROXKEEP_NOW", T0)
        .args(["backup"])
        .output()
        .unwrap();
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 3)),
        "backup: {code:?}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    env.only_archive()
}

fn drill(env: &Env, args: &[&str]) -> crate::util::Run {
    let mut c = env.cmd();
    c.env("PROXKEEP_NOW", T1).arg("drill").args(args);
    crate::util::Run(c.output().unwrap())
}

fn check<'a>(doc: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    let checks = doc["checks"].as_array().unwrap();
    checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {doc:#}"))
}

fn scratch_dirs(env: &Env) -> Vec<String> {
    crate::util::files(&env.backups)
        .into_iter()
        .filter(|f| f.starts_with(".proxkeep-drill-"))
        .collect()
}

#[test]
fn a_consistent_archive_passes_every_check_and_leaves_the_host_and_no_scratch() {
    let env = complete_pve_node();
    let before = fingerprint(&env.root);
    let r = drill(&env, &["--json"]);
    r.expect(0);
    let doc = r.json();
    assert_eq!(doc["status"], "passed", "{doc:#}");
    for name in [
        "verify",
        "free-space",
        "restore",
        "pmxcfs",
        "guest-configs",
        "storage.cfg",
        "corosync.conf",
        "user.cfg",
        "symlinks",
        "interfaces",
        "fstab",
    ] {
        assert_eq!(check(&doc, name)["result"], "passed", "{name}: {doc:#}");
    }
    assert_eq!(doc["age_seconds"], 3600);
    assert_eq!(doc["host"], "due");
    assert!(doc["live"].is_array(), "{doc:#}");
    assert!(doc.get("scratch").is_none());
    assert_eq!(
        fingerprint(&env.root),
        before,
        "the drill changed the host root"
    );
    assert!(scratch_dirs(&env).is_empty(), "{:?}", scratch_dirs(&env));

    // The textfile: the backup's families and the drill's, accepted by promtool.
    let prom = env.path("textfile/proxkeep.prom");
    let out = Command::new(tool("promtool"))
        .args(["check", "metrics"])
        .stdin(fs::File::open(&prom).unwrap())
        .output()
        .unwrap();
    let text = fs::read_to_string(&prom).unwrap();
    assert!(out.status.success(), "promtool: {out:?}\n{text}");
    assert!(text.contains("proxkeep_run_status 0\n"), "{text}");
    // Ended at T1 plus the drill's duration.
    let t1 = 1_796_011_200;
    let success = text
        .lines()
        .find_map(|l| l.strip_prefix("proxkeep_drill_last_success_timestamp_seconds "))
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap();
    assert!(success >= t1 && success < t1 + 3600, "{text}");
    assert!(text.contains("proxkeep_drill_result 0\n"), "{text}");
    assert!(text.contains("proxkeep_drill_checks_failed 0\n"), "{text}");
    assert!(
        text.contains("proxkeep_drill_archive_age_seconds 3600\n"),
        "{text}"
    );

    // The text report says the same.
    let r = drill(&env, &[]);
    r.expect(0);
    let out = r.stdout();
    assert!(out.contains("✓ pmxcfs"), "{out}");
    assert!(
        out.contains("made     2026-11-30T03:00:00Z on due (role pve), 1 h 0 min ago"),
        "{out}"
    );
    assert!(out.contains("drill PASSED (exit 0)"), "{out}");
}

#[test]
fn keep_leaves_the_restored_tree_in_the_scratch_directory() {
    let env = complete_pve_node();
    let scratch = env.path("scratch");
    fs::create_dir_all(&scratch).unwrap();
    // The host moved on since the backup: one file changed, one gone (a restore would replace and create).
    fs::write(env.root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    fs::remove_file(env.root.join("etc/vzdump.conf")).unwrap();
    let r = drill(
        &env,
        &["--json", "--keep", "--scratch", scratch.to_str().unwrap()],
    );
    r.expect(0);
    let doc = r.json();
    let live = doc["live"].as_array().unwrap();
    let sum = |k: &str| live.iter().map(|c| c[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(
        (sum("create"), sum("replace"), sum("host_only")),
        (1, 1, 0),
        "{live:?}"
    );
    let kept = PathBuf::from(doc["scratch"].as_str().unwrap().to_string());
    assert!(kept.starts_with(&scratch), "{kept:?}");
    assert_eq!(
        fs::read(kept.join("root/etc/pve/storage.cfg")).unwrap(),
        fs::read(env.root.join("etc/pve/storage.cfg")).unwrap()
    );
    // Held files (fstab, interfaces) are restored too: the drill restores everything.
    assert!(kept.join("root/etc/fstab").is_file());
    let mode = fs::metadata(&kept).unwrap().permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o700
    );
    assert!(scratch_dirs(&env).is_empty());
}

#[test]
fn etc_pve_that_disagrees_with_config_db_fails_naming_the_paths() {
    let mut env = Env::new("pve-node");
    make_config_db(&env.root);
    // After the db was made: /etc/pve changes as if pmxcfs was caught mid-write.
    let storage = env.root.join("etc/pve/storage.cfg");
    let mut text = fs::read_to_string(&storage).unwrap();
    text.push_str("\ndir: late\n\tpath /srv/late\n");
    fs::write(&storage, text).unwrap();
    fs::write(
        env.root.join("etc/pve/nodes/due/qemu-server/999.conf"),
        "cores: 1\n",
    )
    .unwrap();
    let textfile = env.path("textfile/proxkeep.prom");
    env.write_config(&format!(
        "[metrics]\ntextfile = \"{}\"\n",
        textfile.display()
    ));
    backup(&env);
    // The drill's report goes to the channels like a backup's; never to a ping (its URL answers nothing).
    let saved = env.path("sendmail.eml");
    env.stub("sendmail", &format!("cat > '{}'", saved.display()));
    env.write_config(&format!(
        "[metrics]\ntextfile = \"{}\"\n[[notify.email]]\nto = [\"root@localhost\"]\n\
         [[notify.ping]]\nurl = \"http://127.0.0.1:9/ping\"\n",
        textfile.display()
    ));
    let before = fingerprint(&env.root);
    let r = drill(&env, &["--json"]);
    r.expect(6);
    let doc = r.json();
    assert_eq!(doc["status"], "failed");
    let sent = doc["notifications"].as_array().unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (&sent[0]["kind"], &sent[0]["ok"]),
        (&"email".into(), &true.into()),
        "{sent:?}"
    );
    let mail = fs::read_to_string(&saved).unwrap();
    assert!(
        mail.contains("Subject: [proxkeep] due: drill FAILED"),
        "{mail}"
    );
    assert!(
        mail.contains("/etc/pve/storage.cfg: content differs"),
        "{mail}"
    );
    let c = check(&doc, "pmxcfs");
    assert_eq!(c["result"], "failed", "{c:#}");
    let problems = c["problems"].to_string();
    assert!(
        problems.contains("/etc/pve/storage.cfg: content differs"),
        "{problems}"
    );
    assert!(
        problems.contains("/etc/pve/nodes/due/qemu-server/999.conf: in /etc/pve, not in config.db"),
        "{problems}"
    );
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("disagree on 2 paths"),
        "{c:#}"
    );
    assert_eq!(fingerprint(&env.root), before);
    assert!(scratch_dirs(&env).is_empty());
    let text = fs::read_to_string(&textfile).unwrap();
    assert!(text.contains("proxkeep_drill_result 2\n"), "{text}");
    assert!(text.contains("proxkeep_drill_checks_failed 1\n"), "{text}");
    assert!(
        text.contains("proxkeep_drill_last_success_timestamp_seconds 0\n"),
        "{text}"
    );

    let r = drill(&env, &[]);
    r.expect(6);
    assert!(r.stdout().contains("✗ pmxcfs"), "{}", r.stdout());
    assert!(
        r.stdout().contains("drill FAILED (exit 6)"),
        "{}",
        r.stdout()
    );
}

#[test]
fn a_truncated_archive_exits_6_and_a_failed_drill_keeps_the_last_success() {
    let env = complete_pve_node();
    drill(&env, &[]).expect(0);
    let prom = env.path("textfile/proxkeep.prom");
    let value = |text: &str, name: &str| -> String {
        let line = text.lines().find(|l| l.starts_with(&format!("{name} ")));
        line.unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_string()
    };
    let passed = fs::read_to_string(&prom).unwrap();
    let success = value(&passed, "proxkeep_drill_last_success_timestamp_seconds");
    assert_eq!(
        success.replace("last_success", "last_run"),
        value(&passed, "proxkeep_drill_last_run_timestamp_seconds")
    );
    let archive = env.only_archive();
    let len = fs::metadata(&archive).unwrap().len();
    sh_ok(&format!("truncate -s {} '{}'", len / 2, archive.display()));
    let r = drill(&env, &["--json", archive.to_str().unwrap()]);
    r.expect(6);
    let doc = r.json();
    assert_eq!(check(&doc, "verify")["result"], "failed", "{doc:#}");
    assert!(doc["checks"].as_array().unwrap().len() == 1, "{doc:#}");
    assert!(scratch_dirs(&env).is_empty());
    let text = fs::read_to_string(&prom).unwrap();
    assert!(text.contains("proxkeep_drill_result 2\n"), "{text}");
    // Kept from the drill before this one, which passed.
    assert_eq!(
        value(&text, "proxkeep_drill_last_success_timestamp_seconds"),
        success
    );
}

#[test]
fn a_pbs_archive_skips_the_pve_checks_with_the_reason() {
    let env = Env::new("pbs-node");
    backup(&env);
    let r = drill(&env, &["--json"]);
    let doc = r.json();
    for name in [
        "pmxcfs",
        "guest-configs",
        "storage.cfg",
        "corosync.conf",
        "user.cfg",
    ] {
        let c = check(&doc, name);
        assert_eq!(c["result"], "skipped", "{c:#}");
        assert!(c.get("warning").is_none(), "{c:#}");
        assert!(c["detail"].as_str().unwrap().starts_with("no "), "{c:#}");
    }
    assert_eq!(check(&doc, "restore")["result"], "passed");
    // No /sys/class/net in the fixture: the interfaces it names cannot be checked, a warning (exit 3).
    let i = check(&doc, "interfaces");
    assert_eq!(i["result"], "skipped");
    assert_eq!(i["warning"], true);
    r.expect(3);
}

#[test]
fn no_archive_to_drill_is_an_error_document_and_a_failed_drill_in_the_metrics() {
    let mut env = Env::new("pbs-node");
    let textfile = env.path("textfile/proxkeep.prom");
    env.write_config(&format!(
        "[metrics]\ntextfile = \"{}\"\n",
        textfile.display()
    ));
    let r = drill(&env, &["--json"]);
    r.expect(2);
    let doc = r.json();
    assert_eq!(doc["error"]["kind"], "usage", "{doc:#}");
    assert!(
        doc["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no archive of pbs1"),
        "{doc:#}"
    );
    let text = fs::read_to_string(&textfile).unwrap();
    assert!(text.contains("proxkeep_drill_result 2\n"), "{text}");
}

/// The shipped drill units pass `systemd-analyze verify` (ExecStart= on the built binary, the man pages on
/// MANPATH), the timer is weekly, and the service has exactly proxkeep.service's sandboxing.
#[test]
fn drill_units_verify_and_share_the_backup_service_hardening() {
    tool("systemd-analyze");
    let env = Env::new("");
    let (units, man) = (env.path("units"), env.path("man"));
    fs::create_dir_all(&units).unwrap();
    env.run(&["manpages", man.join("man1").to_str().unwrap()])
        .expect(0);
    let shipped = crate::util::repo().join("packaging/systemd");
    let read = |f: &str| fs::read_to_string(shipped.join(f)).unwrap();
    let (service, timer) = (read("proxkeep-drill.service"), read("proxkeep-drill.timer"));
    assert!(service.contains("\nExecStart=/usr/bin/proxkeep drill\n"));
    for line in [
        "OnCalendar=weekly",
        "Persistent=true",
        "RandomizedDelaySec=",
    ] {
        assert!(timer.lines().any(|l| l.starts_with(line)), "{line}");
    }
    let sandbox = |unit: &str| -> Vec<String> {
        let keys = [
            "NoNew",
            "Private",
            "Protect",
            "Restrict",
            "Lock",
            "SystemCall",
            "ReadWrite",
            "Logs",
            "UMask",
            "Nice",
            "IOScheduling",
            "CPUScheduling",
            "TimeoutStart",
            "SuccessExit",
        ];
        let lines = unit
            .lines()
            .filter(|l| keys.iter().any(|k| l.starts_with(k)));
        lines.map(String::from).collect()
    };
    assert_eq!(sandbox(&service), sandbox(&read("proxkeep.service")));
    let local = service.replace("/usr/bin/proxkeep", crate::util::bin().to_str().unwrap());
    fs::write(units.join("proxkeep-drill.service"), local).unwrap();
    fs::write(units.join("proxkeep-drill.timer"), timer).unwrap();
    let said = sh_ok(&format!(
        "cd '{}' && MANPATH='{}' systemd-analyze verify proxkeep-drill.service proxkeep-drill.timer 2>&1",
        units.display(),
        man.display()
    ));
    assert_eq!(said, "");
}

/// Without ARCHIVE the drill takes this host's newest archive on any tier: here only a secondary still has it.
#[test]
fn the_default_archive_is_the_newest_on_any_tier() {
    let mut env = Env::new("pbs-node");
    let usb = env.path("usb");
    fs::create_dir_all(&usb).unwrap();
    env.write_config(&format!(
        "[[secondary]]\nname = \"usb\"\npath = \"{}\"\n",
        usb.display()
    ));
    // The copy to the secondary runs coreutils: this backup has the whole PATH (no command runs: root is not /).
    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    let name = archive.file_name().unwrap().to_str().unwrap().to_string();
    assert!(usb.join(&name).is_file(), "{:?}", crate::util::files(&usb));
    fs::remove_file(&archive).unwrap();
    let r = drill(&env, &["--json"]);
    let doc = r.json();
    assert_eq!(doc["tier"], "secondary:usb", "{doc:#}");
    assert_eq!(doc["archive"], usb.join(&name).to_str().unwrap());
    assert_eq!(check(&doc, "restore")["result"], "passed", "{doc:#}");
    r.expect(3);
    // The same archive named on its tier.
    let r = drill(&env, &["--json", "usb:latest"]);
    assert_eq!(r.json()["tier"], "secondary:usb");
    assert!(
        crate::util::files(&usb)
            .iter()
            .all(|f| !f.starts_with(".proxkeep-drill-"))
    );
}

/// A scratch directory as a drill of `pid` left it: a copy of a secret, and a symlink out of it that the
/// removal must not follow.
fn dead_drill_scratch(dir: &Path, pid: u32, outside: &Path) -> PathBuf {
    let s = dir.join(format!(".proxkeep-drill-{pid}-Ab3xYz"));
    fs::create_dir_all(s.join("root/etc")).unwrap();
    fs::write(s.join("root/etc/shadow"), "root:$6$secret:19000::::::\n").unwrap();
    std::os::unix::fs::symlink(outside, s.join("root/etc/out")).unwrap();
    s
}

/// A drill killed with `kill -9` leaves its scratch directory (a copy of /etc, secrets included): the next
/// drill removes it, but not one whose drill still runs (a live proxkeep of that pid), nor a kept one.
#[test]
fn the_next_drill_removes_the_scratch_of_a_dead_drill_only() {
    let env = Env::new("pbs-node");
    backup(&env);
    let outside = env.path("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("precious"), "x").unwrap();
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let dead = dead_drill_scratch(&env.backups, gone.id(), &outside);
    // A running proxkeep: `cat` under that name, alive until its stdin closes.
    let bin = env.path("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy("/bin/cat", bin.join("proxkeep")).unwrap();
    let mut live = Command::new(bin.join("proxkeep"))
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let running = dead_drill_scratch(&env.backups, live.id(), &outside);
    let kept = env.backups.join("proxkeep-drill-kept-20261129T040000Z");
    fs::create_dir_all(kept.join("root/etc")).unwrap();
    // A symlink of the swept shape is not a directory proxkeep made: left alone.
    let link = env
        .backups
        .join(format!(".proxkeep-drill-{}-Qw3rty", gone.id()));
    std::os::unix::fs::symlink(&outside, &link).unwrap();
    let r = drill(&env, &["--json"]);
    let doc = r.json();
    drop(live.stdin.take());
    live.wait().unwrap();
    assert_eq!(
        doc["swept"],
        serde_json::json!([dead.to_str().unwrap()]),
        "{doc:#}"
    );
    assert!(!dead.exists());
    assert!(running.join("root/etc/shadow").is_file());
    assert!(kept.join("root/etc").is_dir());
    assert!(link.is_symlink() && outside.join("precious").is_file());
    // The backup's sweep of dead runs' leftovers takes them too, once their drill is gone.
    let mut c = env.cmd();
    c.env("PATH", &env.stubs)
        .env("PROXKEEP_NOW", T1)
        .arg("backup");
    let out = c.output().unwrap();
    assert!(matches!(out.status.code(), Some(0 | 3)), "{out:?}");
    assert!(!running.exists());
    assert!(kept.is_dir() && link.is_symlink());
}

/// `--keep` renames the finished scratch directory to a name no sweep takes; its path is in the report.
#[test]
fn a_kept_scratch_directory_is_renamed_and_survives_the_next_drill() {
    let env = Env::new("pbs-node");
    backup(&env);
    let r = drill(&env, &["--keep"]);
    let text = r.stdout();
    let kept = env.backups.join("proxkeep-drill-kept-20261130T040000Z");
    assert!(
        text.contains(&format!("scratch  kept: {}", kept.display())),
        "{text}"
    );
    let r = drill(&env, &["--json", "--keep"]);
    let again = env.backups.join("proxkeep-drill-kept-20261130T040000Z-2");
    assert_eq!(r.json()["scratch"], again.to_str().unwrap());
    drill(&env, &["--json"]);
    assert!(kept.join("root/etc").is_dir() && again.join("root/etc").is_dir());
    assert!(scratch_dirs(&env).is_empty(), "{:?}", scratch_dirs(&env));
}
