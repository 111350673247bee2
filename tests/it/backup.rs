//! `proxkeep backup` end to end.

use crate::util::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Extract with GNU tar and compare with the fixture root: same entries, contents, modes and link targets.
fn assert_archive_reproduces_root(env: &Env, archive: &Path) {
    let out = env.path("extracted");
    gnu_extract(archive, &out);
    // Content: diff -r without following links (links compared by target).
    let diff = sh(&format!(
        "diff -r --no-dereference -x proxkeep -x 'config.db*' '{}' '{}'",
        env.root.display(),
        out.display()
    ));
    assert!(
        diff.status.success(),
        "diff -r:\n{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    let index = index_of(archive);
    let stored: std::collections::HashSet<&str> = index["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    // Parents of collected paths (etc, var, root) are stored too; a directory not in the index would be
    // created by tar: no mode to compare.
    let normalize = |mut m: std::collections::BTreeMap<String, (String, u32, Option<String>)>| {
        m.retain(|k, _| {
            !k.starts_with("var/lib/pve-cluster/config.db") && !k.starts_with("proxkeep")
        });
        for (k, v) in m.iter_mut() {
            if !stored.contains(k.as_str()) {
                assert_eq!(v.0, "dir", "{k} is not in the index");
                v.1 = 0;
            }
        }
        m
    };
    assert_eq!(
        normalize(tree_state(&out)),
        normalize(tree_state(&env.root)),
        "modes, kinds or link targets differ"
    );
    // Every file's content hash matches the index.
    let mut checked = 0;
    for e in index["entries"].as_array().unwrap() {
        if e["kind"] == "file" {
            let p = out.join(e["path"].as_str().unwrap());
            assert_eq!(
                sha256_file(&p),
                e["sha256"].as_str().unwrap(),
                "{}",
                p.display()
            );
            checked += 1;
        }
    }
    assert!(checked > 10);
}

fn check_backup_of(fixture: &str, role: &str) {
    let env = Env::new(fixture);
    if fixture != "pbs-node" {
        make_config_db(&env.root);
    }
    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    let name = archive.file_name().unwrap().to_string_lossy().into_owned();
    let host = if fixture == "pbs-node" { "pbs1" } else { "due" };
    assert!(
        name.starts_with(&format!("{host}-{role}-")) && name.ends_with(".tar.zst"),
        "{name}"
    );
    assert_eq!(fs::metadata(&archive).unwrap().mode() & 0o777, 0o600);

    // Real tools accept the archive.
    sh_ok(&format!("{} -t -q '{}'", tool("zstd"), archive.display()));
    sh_ok(&format!(
        "cd '{}' && {} -c --quiet '{name}.sha256'",
        env.backups.display(),
        tool("sha256sum")
    ));
    let listing = sh_ok(&format!("tar -tf '{}'", archive.display()));
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.first(), Some(&"proxkeep/meta.json"));
    assert_eq!(lines.last(), Some(&"proxkeep/index.json"));
    assert_archive_reproduces_root(&env, &archive);

    let meta = meta_of(&archive);
    assert_eq!(meta["role"], role);
    assert_eq!(meta["host"], host);
    assert_eq!(meta["format_version"], 1);
    if fixture != "pbs-node" {
        let db = env.path("extracted/proxkeep/pmxcfs/config.db");
        assert_eq!(
            sh_ok(&format!(
                "{} '{}' 'PRAGMA integrity_check'",
                tool("sqlite3"),
                db.display()
            ))
            .trim(),
            "ok"
        );
        let rows = sh_ok(&format!(
            "sqlite3 '{}' 'SELECT count(*) FROM tree'",
            db.display()
        ));
        assert_eq!(rows.trim(), "130");
    }
    // The run log exists, is private and names the archive.
    let log = env
        .logs
        .join(format!("{}.log", name.trim_end_matches(".tar.zst")));
    assert_eq!(fs::metadata(&log).unwrap().mode() & 0o777, 0o600);
    assert!(
        fs::read_to_string(&log)
            .unwrap()
            .contains("written and verified")
    );
}

#[test]
fn pve_node_archive_reproduces_the_fixture() {
    check_backup_of("pve-node", "pve");
}

#[test]
fn pbs_node_archive_reproduces_the_fixture() {
    check_backup_of("pbs-node", "pbs");
}

#[test]
fn dual_node_archive_reproduces_the_fixture() {
    check_backup_of("dual", "dual");
}

#[test]
fn every_compression_passes_its_own_tool() {
    let env = Env::new("pve-node");
    for (comp, ext, test_cmd) in [
        ("xz", "tar.xz", "xz -t"),
        ("gzip", "tar.gz", "gzip -t"),
        ("none", "tar", "tar -tf"),
    ] {
        let r = env.run(&["--json", "backup", "--compression", comp]);
        r.expect(0);
        let archive = r.json()["archive"].as_str().unwrap().to_string();
        assert!(archive.ends_with(ext), "{archive}");
        sh_ok(&format!("{test_cmd} '{archive}' >/dev/null"));
        sh_ok(&format!(
            "tar -xOf '{archive}' etc/pve/storage.cfg | cmp - '{}'",
            env.root.join("etc/pve/storage.cfg").display()
        ));
    }
    // Three runs (possibly in the same second): three archives, three run logs.
    assert_eq!(fs::read_dir(&env.logs).unwrap().count(), 3);
    // A level out of range is a usage error.
    env.run(&["backup", "--compression", "gzip", "--level", "12"])
        .expect(2);
}

#[test]
fn etc_pve_is_rebuilt_from_config_db_when_not_mounted() {
    let env = Env::new("pve-node");
    make_config_db(&env.root);
    let saved = env.path("pve-saved");
    fs::rename(env.root.join("etc/pve"), &saved).unwrap();
    fs::create_dir(env.root.join("etc/pve")).unwrap();
    // A node whose pmxcfs is down is not healthy: a warning (exit 3), and `check` says the same.
    env.run(&["check"]).expect(3);
    let r = env.run(&["backup"]);
    r.expect(3);
    assert!(
        r.stderr().contains("rebuilt from config.db"),
        "{}",
        r.stderr()
    );
    let archive = env.only_archive();
    assert_eq!(meta_of(&archive)["pve_tree_from_db"], true);
    let out = env.path("x");
    gnu_extract(&archive, &out);
    // Every regular file and dir of the original tree, byte for byte (pmxcfs does not store its symlinks).
    let diff = sh(&format!(
        "diff -r --no-dereference '{}' '{}'",
        saved.display(),
        out.join("etc/pve").display()
    ));
    let text = String::from_utf8_lossy(&diff.stdout).into_owned();
    let unexpected: Vec<&str> = text
        .lines()
        .filter(|l| {
            !["local", "qemu-server", "lxc", "openvz"]
                .iter()
                .any(|s| l.ends_with(&format!(": {s}")))
        })
        .collect();
    assert!(unexpected.is_empty(), "{text}");
    // Modes as pmxcfs shows them.
    let mode = |p: &str| fs::metadata(out.join(p)).unwrap().mode() & 0o777;
    assert_eq!(mode("etc/pve/storage.cfg"), 0o640);
    assert_eq!(mode("etc/pve/priv/shadow.cfg"), 0o600);
    assert_eq!(mode("etc/pve/priv"), 0o700);
    let index = index_of(&archive);
    let e = index["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "etc/pve/storage.cfg")
        .unwrap();
    assert_eq!(e["source"], "config.db");
}

#[test]
fn xattrs_long_and_non_utf8_names_and_special_files() {
    let mut env = Env::new("pve-node");
    let extra = env.root.join("srv/extra");
    fs::create_dir_all(&extra).unwrap();
    let long = "l".repeat(180);
    fs::write(extra.join(&long), b"long name").unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"caf\xe9.conf");
    fs::write(extra.join(odd), b"latin1 name").unwrap();
    fs::write(extra.join("tagged.conf"), b"with xattr").unwrap();
    sh_ok(&format!(
        "python3 -c \"import os; os.setxattr('{}', 'user.comment', b'kept')\"",
        extra.join("tagged.conf").display()
    ));
    sh_ok(&format!("mkfifo '{}'", extra.join("a.fifo").display()));
    env.write_config("[collect]\nextra_paths = [\"/srv/extra\"]\n");
    let r = env.run(&["--json", "backup"]);
    r.expect(0);
    let archive = env.only_archive();
    let out = env.path("x");
    gnu_extract(&archive, &out);
    let got = out.join("srv/extra");
    assert_eq!(fs::read(got.join(&long)).unwrap(), b"long name");
    assert_eq!(fs::read(got.join(odd)).unwrap(), b"latin1 name");
    let v = sh_ok(&format!(
        "python3 -c \"import os; print(os.getxattr('{}', 'user.comment').decode())\"",
        got.join("tagged.conf").display()
    ));
    assert_eq!(v.trim(), "kept");
    assert!(!got.join("a.fifo").exists());
    let index = index_of(&archive);
    let skipped = index["skipped"].as_array().unwrap();
    assert!(
        skipped
            .iter()
            .any(|s| s["path"] == "/srv/extra/a.fifo" && s["kind"] == "fifo"),
        "{skipped:?}"
    );
    let entries = index["entries"].as_array().unwrap();
    let tagged = entries
        .iter()
        .find(|e| e["path"] == "srv/extra/tagged.conf")
        .unwrap();
    assert_eq!(tagged["xattrs"][0], "user.comment");
    assert!(
        entries
            .iter()
            .any(|e| e["path_hex"].as_str() == Some(hexs(b"srv/extra/caf\xe9.conf").as_str()))
    );
    assert_eq!(r.json()["warnings"].as_array().unwrap().len(), 0);
}

fn hexs(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

use std::os::unix::ffi::OsStrExt;

#[test]
fn a_file_growing_while_read_is_cut_to_its_size_with_a_warning() {
    let mut env = Env::new("pve-node");
    let big = env.root.join("srv/grow/app.log");
    fs::create_dir_all(big.parent().unwrap()).unwrap();
    sh_ok(&format!(
        "head -c 64000000 /dev/urandom > '{}'",
        big.display()
    ));
    env.write_config("[collect]\nextra_paths = [\"/srv/grow\"]\n[compression]\nlevel = 1\n");
    // Append continuously while the backup runs.
    let mut writer = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while :; do head -c 4096 /dev/urandom >> '{}'; done",
            big.display()
        ))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let r = env.run(&["--json", "backup"]);
    let _ = writer.kill();
    let _ = writer.wait();
    r.expect(3);
    let warnings = r.json()["warnings"].to_string();
    assert!(warnings.contains("grew while being read"), "{warnings}");
    let archive = env.only_archive();
    sh_ok(&format!("zstd -t -q '{}'", archive.display()));
    let index = index_of(&archive);
    let e = index["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["path"] == "srv/grow/app.log")
        .unwrap()
        .clone();
    let stored = sh_ok(&format!(
        "tar -xOf '{}' srv/grow/app.log | sha256sum",
        archive.display()
    ));
    assert_eq!(
        stored.split_whitespace().next().unwrap(),
        e["sha256"].as_str().unwrap()
    );
    let size = sh_ok(&format!(
        "tar -xOf '{}' srv/grow/app.log | wc -c",
        archive.display()
    ));
    assert_eq!(
        size.trim().parse::<u64>().unwrap(),
        e["size"].as_u64().unwrap()
    );
}

#[test]
fn an_unreadable_file_is_a_warning_and_exit_3() {
    let mut env = Env::new("pbs-node");
    let secret = env.root.join("srv/locked/secret.key");
    fs::create_dir_all(secret.parent().unwrap()).unwrap();
    fs::write(&secret, b"x").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    env.write_config("[collect]\nextra_paths = [\"/srv/locked\"]\n");
    let euid = rustix_euid();
    let r = if euid == 0 {
        // root reads everything: run the backup as nobody so the file really is unreadable.
        env.write_config(&format!(
            "lock_file = \"{}\"\n[collect]\nextra_paths = [\"/srv/locked\"]\n",
            env.backups.join("proxkeep.lock").display()
        ));
        let text = fs::read_to_string(&env.config).unwrap();
        // write_config put its own lock_file first; keep only ours.
        let text: String = text
            .lines()
            .filter(|l| !l.starts_with("lock_file") || l.contains("backups"))
            .map(|l| format!("{l}\n"))
            .collect();
        fs::write(&env.config, text).unwrap();
        for p in [env.tmp.path().to_path_buf(), env.root.clone()] {
            fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        fs::set_permissions(&env.config, fs::Permissions::from_mode(0o644)).unwrap();
        for d in [&env.backups, &env.logs] {
            fs::create_dir_all(d).unwrap();
            fs::set_permissions(d, fs::Permissions::from_mode(0o777)).unwrap();
        }
        let mut c = Command::new(tool("setpriv"));
        c.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .arg(bin());
        c.arg("--config")
            .arg(&env.config)
            .arg("--root")
            .arg(&env.root)
            .args(["--json", "backup"]);
        Run(c.output().unwrap())
    } else {
        env.run(&["--json", "backup"])
    };
    r.expect(3);
    let warnings = r.json()["warnings"].as_array().unwrap().clone();
    assert!(
        warnings
            .iter()
            .any(|w| w["path"] == "/srv/locked/secret.key"
                && w["message"].as_str().unwrap().contains("unreadable")),
        "{warnings:?}"
    );
    let archive = env.only_archive();
    sh_ok(&format!("zstd -t -q '{}'", archive.display()));
}

fn rustix_euid() -> u32 {
    sh_ok("id -u").trim().parse().unwrap()
}

/// Start a backup that hangs in a stub command (so it holds the lock and has a partial file open).
fn start_hanging_backup(env: &mut Env, timeout: &str) -> std::process::Child {
    let pidfile = env.path("stub.pid");
    env.stub(
        "uname",
        &format!("echo $$ > '{}'; exec sleep 300", pidfile.display()),
    );
    env.write_config(&format!(
        "[commands]\nrun = \"always\"\ntimeout = \"{timeout}\"\n"
    ));
    let child = env
        .cmd()
        .args(["backup"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until it holds the lock and the partial exists.
    let t = Instant::now();
    while !(env.partials().iter().any(|p| p.ends_with(".partial")) && env.path("stub.pid").exists())
    {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "backup never started writing"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

fn kill_stub(env: &Env) {
    if let Ok(pid) = fs::read_to_string(env.path("stub.pid")) {
        let _ = sh(&format!("kill -9 {} 2>/dev/null", pid.trim()));
    }
}

#[test]
fn a_second_run_exits_5_and_names_the_holder() {
    let mut env = Env::new("pbs-node");
    let mut first = start_hanging_backup(&mut env, "60s");
    let r = env.run(&["backup"]);
    r.expect(5);
    assert!(
        r.stderr().contains(&format!("pid={}", first.id())),
        "{}",
        r.stderr()
    );
    let _ = first.kill();
    let _ = first.wait();
    kill_stub(&env);
}

#[test]
fn kill_9_mid_run_leaves_nothing_visible_and_the_next_run_sweeps_the_partial() {
    let mut env = Env::new("pve-node");
    make_config_db(&env.root);
    let mut first = start_hanging_backup(&mut env, "60s");
    sh_ok(&format!("kill -9 {}", first.id()));
    let _ = first.wait();
    kill_stub(&env);
    assert!(env.archives().is_empty());
    assert_eq!(
        env.partials()
            .iter()
            .filter(|p| p.ends_with(".partial"))
            .count(),
        1
    );
    // The config.db snapshot's temp file was left behind too.
    assert!(
        env.partials()
            .iter()
            .any(|p| p.starts_with(".proxkeep-db.")),
        "{:?}",
        env.partials()
    );
    env.write_config("");
    env.run(&["backup"]).expect(0);
    assert_eq!(env.archives().len(), 1);
    assert!(env.partials().is_empty(), "{:?}", env.partials());
}

#[test]
fn sigterm_removes_the_partial_releases_the_lock_and_exits_130() {
    let mut env = Env::new("pbs-node");
    let mut first = start_hanging_backup(&mut env, "60s");
    sh_ok(&format!("kill -TERM {}", first.id()));
    let status = first.wait().unwrap();
    kill_stub(&env);
    assert_eq!(status.code(), Some(130));
    assert!(env.archives().is_empty());
    assert!(env.partials().is_empty(), "{:?}", env.partials());
    env.write_config("");
    env.run(&["backup"]).expect(0);
}

#[test]
fn hanging_commands_are_killed_at_the_timeout() {
    let mut env = Env::new("pbs-node");
    let pidfile = env.path("hang.pid");
    env.stub(
        "proxmox-backup-manager",
        &format!("echo $$ >> '{}'; exec sleep 300", pidfile.display()),
    );
    env.stub("uname", "echo 'Linux pbs1 6.8.12-pve'");
    env.stub("ip", "echo '[{\"ifname\":\"lo\"}]'");
    env.write_config("[commands]\nrun = \"always\"\ntimeout = \"1s\"\nconcurrency = 8\n");
    let r = env.run(&["--json", "backup"]);
    r.expect(3);
    let warnings = r.json()["warnings"].to_string();
    assert!(warnings.contains("timed out"), "{warnings}");
    for pid in fs::read_to_string(&pidfile).unwrap().lines() {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "stub {pid} still running"
        );
    }
    let archive = env.only_archive();
    let uname = sh_ok(&format!(
        "tar -xOf '{}' proxkeep/commands/inventory/uname.txt",
        archive.display()
    ));
    assert_eq!(uname.trim(), "Linux pbs1 6.8.12-pve");
    let ip = sh_ok(&format!(
        "tar -xOf '{}' proxkeep/commands/network/ip-addr.json",
        archive.display()
    ));
    assert!(ip.contains("ifname"));
    let index = index_of(&archive);
    let cmds = index["commands"].as_array().unwrap();
    // Commands that are not installed are "absent", not warnings.
    assert!(
        cmds.iter().any(|c| c["status"] == "not installed"),
        "{cmds:?}"
    );
}

#[test]
fn a_full_disk_fails_with_exit_1_and_keeps_earlier_archives() {
    let mut env = Env::new("pbs-node");
    fs::create_dir_all(&env.backups).unwrap();
    sh_ok(&format!(
        "mount -t tmpfs -o size=3m,mode=0700 proxkeep-test '{}'",
        env.backups.display()
    ));
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = sh(&format!("umount -l '{}'", self.0.display()));
        }
    }
    let _u = Unmount(env.backups.clone());
    env.run(&["backup"]).expect(0);
    let first = env.only_archive();
    let before = sha256_file(&first);
    // Now add 6 MB that does not compress.
    let big = env.root.join("srv/big");
    fs::create_dir_all(&big).unwrap();
    sh_ok(&format!(
        "head -c 6000000 /dev/urandom > '{}'",
        big.join("blob").display()
    ));
    env.write_config("[collect]\nextra_paths = [\"/srv/big\"]\n");
    std::thread::sleep(Duration::from_millis(1100));
    let r = env.run(&["backup"]);
    r.expect(1);
    assert!(r.stderr().contains("No space left"), "{}", r.stderr());
    assert_eq!(env.archives(), vec![first.clone()]);
    assert_eq!(sha256_file(&first), before);
    assert!(env.partials().is_empty(), "{:?}", env.partials());
}

#[test]
fn a_config_typo_exits_2_naming_line_and_suggestion() {
    let env = Env::new("pbs-node");
    let mut text = fs::read_to_string(&env.config).unwrap();
    text.push_str("[compression]\nlevl = 5\n");
    let line = text.lines().position(|l| l.starts_with("levl")).unwrap() + 1;
    fs::write(&env.config, text).unwrap();
    let r = env.run(&["backup"]);
    r.expect(2);
    let err = r.stderr();
    assert!(err.contains(&format!("proxkeep.toml:{line}:")), "{err}");
    assert!(
        err.contains("`compression.levl`") && err.contains("did you mean `compression.level`"),
        "{err}"
    );
    assert!(env.archives().is_empty());
}

#[test]
fn dry_run_writes_nothing_not_even_the_lock() {
    let env = Env::new("pve-node");
    let r = env.run(&["backup", "--dry-run"]);
    r.expect(0);
    let out = r.stdout();
    assert!(
        out.contains("pve-cluster") && out.contains("network"),
        "{out}"
    );
    assert!(!env.backups.exists() && !env.logs.exists() && !env.lock_file().exists());
    let j = env.run(&["--json", "backup", "--dry-run"]).json();
    assert_eq!(j["dry_run"], true);
    assert!(j["files"].as_u64().unwrap() > 100);
}

#[test]
fn preflight_failure_exits_4() {
    let mut env = Env::new("pbs-node");
    fs::write(env.path("not-a-dir"), b"x").unwrap();
    let text = fs::read_to_string(&env.config).unwrap().replace(
        &format!("backup_dir = \"{}\"", env.backups.display()),
        &format!("backup_dir = \"{}\"", env.path("not-a-dir").display()),
    );
    fs::write(&env.config, text).unwrap();
    let r = env.run(&["backup"]);
    r.expect(4);
    assert!(r.stderr().contains("not a directory"), "{}", r.stderr());
    // An impossible free-space minimum fails too, with the fix.
    env.write_config("min_free_space = \"1000 TiB\"\n");
    let text = fs::read_to_string(&env.config)
        .unwrap()
        .replace("min_free_space = 0\n", "");
    fs::write(&env.config, text).unwrap();
    let r = env.run(&["backup"]);
    r.expect(4);
    assert!(r.stderr().contains("free space"), "{}", r.stderr());
}

#[test]
fn a_pve_node_without_its_config_db_is_a_warning_in_check_and_backup_alike() {
    let env = Env::new("pve-node");
    fs::remove_file(env.root.join("var/lib/pve-cluster/config.db")).unwrap();
    let check = env.run(&["check"]);
    check.expect(3);
    assert!(check.stdout().contains("! config.db"), "{}", check.stdout());
    let r = env.run(&["--json", "backup"]);
    r.expect(3);
    let warnings = r.json()["warnings"].to_string();
    assert!(
        warnings.contains("var/lib/pve-cluster/config.db")
            && warnings.contains("not in the backup"),
        "{warnings}"
    );
}
