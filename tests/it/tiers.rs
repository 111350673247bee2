//! Secondary copies, rclone remotes (real rclone, serving a real SFTP remote on loopback) and retention.

use crate::util::*;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn archives_in(dir: &Path) -> Vec<String> {
    files(dir)
        .into_iter()
        .filter(|n| n.ends_with(".tar.zst"))
        .collect()
}

/// `rclone serve sftp` on a free loopback port; killed on drop.
struct Sftp {
    child: Child,
    port: u16,
}

impl Sftp {
    fn start(dir: &Path) -> Sftp {
        let mut child = Command::new(tool("rclone"))
            .args(["serve", "sftp"])
            .arg(dir)
            .args([
                "--addr",
                "127.0.0.1:0",
                "--user",
                "u",
                "--pass",
                "p",
                "--dir-cache-time",
                "0s",
            ])
            .env("RCLONE_CONFIG", "/dev/null")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let port = loop {
            let line = lines.next().expect("rclone serve sftp exited").unwrap();
            if let Some(addr) = line.split("listening on ").nth(1) {
                break addr.trim().rsplit(':').next().unwrap().parse().unwrap();
            }
        };
        // Keep draining stderr so the server never blocks on it.
        std::thread::spawn(move || for _ in lines {});
        Sftp { child, port }
    }
}

impl Drop for Sftp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn obscured(p: &str) -> String {
    sh_ok(&format!("RCLONE_CONFIG=/dev/null rclone obscure '{p}'"))
        .trim()
        .to_string()
}

fn with_remote_env(cmd: &mut Command, port: u16, local_dir: &Path) {
    cmd.env("RCLONE_CONFIG", "/dev/null")
        .env("RCLONE_CONFIG_SF_TYPE", "sftp")
        .env("RCLONE_CONFIG_SF_HOST", "127.0.0.1")
        .env("RCLONE_CONFIG_SF_PORT", port.to_string())
        .env("RCLONE_CONFIG_SF_USER", "u")
        .env("RCLONE_CONFIG_SF_PASS", obscured("p"))
        .env("RCLONE_CONFIG_LOC_TYPE", "local");
    let _ = local_dir;
}

fn run_at(env: &Env, now: &str, port: u16, local_remote: &Path, args: &[&str]) -> Run {
    let mut c = env.cmd();
    c.env("PROXKEEP_NOW", now);
    with_remote_env(&mut c, port, local_remote);
    Run(c.args(args).output().unwrap())
}

#[test]
fn rclone_sftp_and_local_remotes_upload_verify_prune_and_catch_up() {
    tool("rclone");
    let mut env = Env::new("pbs-node");
    let served = env.path("sftp-root");
    let loc = env.path("loc-root");
    fs::create_dir_all(&served).unwrap();
    fs::create_dir_all(&loc).unwrap();
    env.write_config(&format!(
        "[retention]\nkeep_last = 10\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\nkeep_yearly = 0\n\
         [[remote]]\ntarget = \"sf:bk\"\nretries = 2\ntimeout = \"20s\"\n\
         [[remote]]\nname = \"loc\"\ntarget = \"loc:{}/archives\"\n",
        loc.display()
    ));
    let server = Sftp::start(&served);
    let r = run_at(
        &env,
        "2026-11-20T03:00:00Z",
        server.port,
        &loc,
        &["--json", "backup"],
    );
    r.expect(0);
    let first = archives_in(&env.backups);
    assert_eq!(archives_in(&served.join("bk")), first);
    assert_eq!(archives_in(&loc.join("archives")), first);
    assert!(files(&served.join("bk")).contains(&format!("{}.sha256", first[0])));
    assert_eq!(
        sha256_file(&served.join("bk").join(&first[0])),
        sha256_file(&env.backups.join(&first[0]))
    );

    // Server gone: the tier fails with a warning (exit 3), the local archive is kept.
    let port = server.port;
    drop(server);
    let r = run_at(
        &env,
        "2026-11-21T03:00:00Z",
        port,
        &loc,
        &["--json", "backup"],
    );
    r.expect(3);
    let tiers = r.json()["tiers"].clone();
    let sf = tiers
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tier"] == "remote:sf")
        .unwrap();
    assert_eq!(sf["ok"], false, "{tiers}");
    assert_eq!(archives_in(&env.backups).len(), 2);
    assert_eq!(archives_in(&served.join("bk")).len(), 1);

    // Server back: the next run uploads what is missing too.
    let server = Sftp::start(&served);
    run_at(&env, "2026-11-22T03:00:00Z", server.port, &loc, &["backup"]).expect(0);
    assert_eq!(archives_in(&served.join("bk")), archives_in(&env.backups));
    assert_eq!(archives_in(&served.join("bk")).len(), 3);

    // Every tier's archives, and a remote archive read back through rclone.
    let r = run_at(
        &env,
        "2026-11-22T03:30:00Z",
        server.port,
        &loc,
        &["list", "--tier", "all"],
    );
    r.expect(0);
    let out = r.stdout();
    for t in ["local", "remote:sf", "remote:loc"] {
        assert_eq!(
            out.lines().filter(|l| l.starts_with(t)).count(),
            3,
            "{t}:\n{out}"
        );
    }
    let r = run_at(
        &env,
        "2026-11-22T03:30:00Z",
        server.port,
        &loc,
        &["--json", "verify", "sf:latest"],
    );
    r.expect(0);
    assert!(r.stdout().contains("20261122T030000Z"), "{}", r.stdout());
    let first_name = first[0].clone();
    let r = run_at(
        &env,
        "2026-11-22T03:30:00Z",
        server.port,
        &loc,
        &["cat", &format!("loc:{first_name}"), "etc/hostname"],
    );
    r.expect(0);
    assert_eq!(r.stdout().trim(), "pbs1");

    // Restore straight from the remote.
    let target = env.path("restored");
    fs::create_dir_all(&target).unwrap();
    let t = target.to_string_lossy().into_owned();
    let r = run_at(
        &env,
        "2026-11-22T03:30:00Z",
        server.port,
        &loc,
        &[
            "restore",
            "sf:latest",
            "--target",
            &t,
            "--yes",
            "--no-safety-backup",
            "--only",
            "pbs-config",
        ],
    );
    r.expect(0);
    assert_eq!(
        fs::read(target.join("etc/proxmox-backup/datastore.cfg")).unwrap(),
        fs::read(env.root.join("etc/proxmox-backup/datastore.cfg")).unwrap()
    );

    // Prune on the remote with its own policy.
    let mut text = fs::read_to_string(&env.config).unwrap();
    text = text.replace("retries = 2\n", "retries = 2\nkeep_last = 1\n");
    fs::write(&env.config, text).unwrap();
    let r = run_at(
        &env,
        "2026-11-22T04:00:00Z",
        server.port,
        &loc,
        &["prune", "--tier", "sf", "--dry-run"],
    );
    r.expect(0);
    assert!(
        r.stdout().contains("keep    keep_last 1") && r.stdout().contains("remove  (would)"),
        "{}",
        r.stdout()
    );
    assert_eq!(archives_in(&served.join("bk")).len(), 3);
    run_at(
        &env,
        "2026-11-22T04:00:00Z",
        server.port,
        &loc,
        &["prune", "--tier", "remote:sf"],
    )
    .expect(0);
    let left = archives_in(&served.join("bk"));
    assert_eq!(
        left,
        vec![archives_in(&env.backups).last().unwrap().clone()]
    );
    assert!(
        !files(&served.join("bk"))
            .iter()
            .any(|f| f.ends_with(".sha256") && !f.starts_with(&left[0]))
    );
    assert_eq!(
        archives_in(&env.backups).len(),
        3,
        "local untouched by a remote prune"
    );
}

#[test]
fn a_secondary_that_is_not_mounted_is_skipped_and_a_mounted_one_gets_a_verified_copy() {
    let mut env = Env::new("pbs-node");
    let nas = env.path("nas");
    fs::create_dir_all(&nas).unwrap();
    env.write_config(&format!(
        "[[secondary]]\nname = \"nas\"\npath = \"{}\"\nrequire_mount = true\n",
        nas.display()
    ));
    let r = env.run(&["--json", "backup"]);
    r.expect(3);
    assert!(
        r.json()["warnings"]
            .to_string()
            .contains("not a mount point"),
        "{}",
        r.stdout()
    );
    assert!(
        files(&nas).is_empty(),
        "nothing may be written to an unmounted secondary"
    );
    assert_eq!(env.archives().len(), 1);

    sh_ok(&format!(
        "mount -t tmpfs -o size=16m proxkeep-nas '{}'",
        nas.display()
    ));
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = sh(&format!("umount -l '{}'", self.0.display()));
        }
    }
    let _u = Unmount(nas.clone());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.run(&["backup"]).expect(0);
    // Both archives are there now: the one the first run could not deliver, too.
    assert_eq!(archives_in(&nas), archives_in(&env.backups));
    assert_eq!(archives_in(&nas).len(), 2);
    for a in archives_in(&nas) {
        assert_eq!(
            sha256_file(&nas.join(&a)),
            sha256_file(&env.backups.join(&a))
        );
    }
    sh_ok(&format!(
        "cd '{}' && sha256sum -c --quiet *.sha256",
        nas.display()
    ));
    assert!(!files(&nas).iter().any(|f| f.ends_with(".partial")));
}

#[test]
fn local_retention_keeps_other_hosts_files_and_damaged_archives() {
    let mut env = Env::new("pbs-node");
    // keep_last only: a [retention] section overrides the defaults key by key, so the others are set to 0.
    env.write_config("[retention]\nkeep_last = 2\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\nkeep_yearly = 0\n");
    fs::create_dir_all(&env.backups).unwrap();
    // Another host sharing the folder, and a file that is not ours.
    fs::write(
        env.backups.join("pve9-pve-20200101T000000Z.tar.zst"),
        b"other host",
    )
    .unwrap();
    fs::write(env.backups.join("notes.txt"), b"mine").unwrap();
    let days = [
        "2026-11-01",
        "2026-11-02",
        "2026-11-03",
        "2026-11-04",
        "2026-11-05",
    ];
    for d in days {
        let mut c = env.cmd();
        c.env("PROXKEEP_NOW", format!("{d}T03:00:00Z"));
        Run(c.arg("backup").output().unwrap()).expect(0);
    }
    let ours: Vec<String> = archives_in(&env.backups)
        .into_iter()
        .filter(|a| a.starts_with("pbs1-"))
        .collect();
    assert_eq!(
        ours,
        vec![
            "pbs1-pbs-20261104T030000Z.tar.zst",
            "pbs1-pbs-20261105T030000Z.tar.zst"
        ]
    );
    assert!(
        env.backups
            .join("pve9-pve-20200101T000000Z.tar.zst")
            .exists()
    );
    assert!(env.backups.join("notes.txt").exists());
    // Sidecars and run logs of removed archives are gone with them.
    assert!(
        !env.backups
            .join("pbs1-pbs-20261101T030000Z.tar.zst.sha256")
            .exists()
    );
    assert!(!env.logs.join("pbs1-pbs-20261101T030000Z.log").exists());
    assert!(env.logs.join("pbs1-pbs-20261105T030000Z.log").exists());

    // An archive recorded as damaged is listed, never removed, and does not fill keep_last.
    // Damage the newest archive and let `verify` record it.
    let newest = env.backups.join("pbs1-pbs-20261105T030000Z.tar.zst");
    let len = fs::metadata(&newest).unwrap().len();
    sh_ok(&format!(
        "printf 'XXXXXXXX' | dd of='{}' bs=1 seek={} conv=notrunc status=none",
        newest.display(),
        len / 2
    ));
    env.run(&["verify", "pbs1-pbs-20261105T030000Z.tar.zst"])
        .expect(6);
    let mut c = env.cmd();
    c.env("PROXKEEP_NOW", "2026-11-06T03:00:00Z");
    let r = Run(c.args(["prune", "--dry-run"]).output().unwrap());
    r.expect(0);
    assert!(
        r.stdout()
            .contains("pbs1-pbs-20261105T030000Z.tar.zst  DAMAGED"),
        "{}",
        r.stdout()
    );
    assert!(
        r.stdout()
            .contains("pbs1-pbs-20261104T030000Z.tar.zst  keep    keep_last 1"),
        "{}",
        r.stdout()
    );
}

/// A secondary whose mount stopped answering (a FUSE file system that blocks every call, standing in for an NFS
/// mount whose server died): the tier fails within its deadline with a warning, the backup is kept, nothing hangs.
#[test]
fn a_hung_secondary_mount_fails_its_tier_within_the_deadline() {
    let mut env = Env::new("pbs-node");
    let mnt = env.path("dead-nfs");
    fs::create_dir_all(&mnt).unwrap();
    let fs_proc = Command::new("/usr/bin/python3")
        .arg(repo().join("tests/support/hang_fs.py"))
        .arg(&mnt)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    struct Dead(Child, PathBuf);
    impl Drop for Dead {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            let _ = sh(&format!("umount -l '{}'", self.1.display()));
        }
    }
    let mut dead = Dead(fs_proc, mnt.clone());
    let t = std::time::Instant::now();
    while !fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(&mnt.display().to_string())
    {
        if let Ok(Some(status)) = dead.0.try_wait() {
            let mut err = String::new();
            let _ = std::io::Read::read_to_string(dead.0.stderr.as_mut().unwrap(), &mut err);
            panic!(
                "hang_fs.py exited ({status}): {err} (needs Debian's python3-fusepy and /dev/fuse)"
            );
        }
        assert!(
            t.elapsed() < std::time::Duration::from_secs(20),
            "FUSE mount never appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    env.write_config(&format!(
        "[[secondary]]\nname = \"dead\"\npath = \"{}\"\nrequire_mount = true\ntimeout = \"2s\"\n",
        mnt.display()
    ));
    let started = std::time::Instant::now();
    let r = env.run(&["--json", "backup"]);
    // Not a timing test: a generous bound that only a hang would exceed.
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "the run hung on the dead mount"
    );
    r.expect(3);
    let warnings = r.json()["warnings"].to_string();
    assert!(
        warnings.contains("tier secondary:dead") && warnings.contains("no answer within 2 s"),
        "{warnings}"
    );
    assert_eq!(env.archives().len(), 1);
    drop(dead);
}

#[test]
fn check_tries_every_tier_as_the_copy_after_a_backup_will_meet_it() {
    tool("rclone");
    let mut env = Env::new("pbs-node");
    let (ok_dir, unmounted, tiny, loc) = (
        env.path("ok"),
        env.path("unmounted"),
        env.path("tiny"),
        env.path("loc"),
    );
    for d in [&ok_dir, &unmounted, &tiny, &loc] {
        fs::create_dir_all(d).unwrap();
    }
    sh_ok(&format!(
        "mount -t tmpfs -o size=64k proxkeep-tiny '{}'",
        tiny.display()
    ));
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = sh(&format!("umount -l '{}'", self.0.display()));
        }
    }
    let _u = Unmount(tiny.clone());
    let missing = env.path("missing");
    // A first backup's estimate is the collected files: 256 KiB more than the tiny tier holds.
    fs::create_dir_all(env.root.join("srv")).unwrap();
    fs::write(env.root.join("srv/big"), vec![7u8; 256 << 10]).unwrap();
    env.write_config(&format!(
        "[collect]\nextra_paths = [\"/srv\"]\n\
         [[secondary]]\nname = \"ok\"\npath = \"{}\"\n\
         [[secondary]]\nname = \"unmounted\"\npath = \"{}\"\nrequire_mount = true\n\
         [[secondary]]\nname = \"missing\"\npath = \"{}\"\n\
         [[secondary]]\nname = \"tiny\"\npath = \"{}\"\n\
         [[remote]]\nname = \"loc\"\ntarget = \"loc:{}/archives\"\ntimeout = \"20s\"\n\
         [[remote]]\nname = \"nowhere\"\ntarget = \"nowhere:bk\"\ntimeout = \"20s\"\n",
        ok_dir.display(),
        unmounted.display(),
        missing.display(),
        tiny.display(),
        loc.display()
    ));
    let mut c = env.cmd();
    with_remote_env(&mut c, 0, &loc);
    let r = Run(c.args(["--json", "check"]).output().unwrap());
    r.expect(4);
    let checks = r.json();
    let verdict = |name: &str| {
        let c = checks
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no check {name}: {checks}"));
        (
            c["ok"] == true,
            c["detail"].to_string(),
            c["fix"].to_string(),
        )
    };
    let (ok, detail, _) = verdict("secondary:ok");
    assert!(ok && detail.contains("writable"), "{detail}");
    let (ok, detail, fix) = verdict("secondary:unmounted");
    assert!(!ok && detail.contains("not a mount point"), "{detail}");
    assert!(fix.contains("require_mount"), "{fix}");
    let (ok, _, fix) = verdict("secondary:missing");
    assert!(!ok && fix.contains("writable directory"), "{fix}");
    // The estimate of the first archive (the collected files) does not fit into 64 KiB.
    let (ok, detail, _) = verdict("secondary:tiny");
    assert!(!ok && detail.contains("one more archive needs"), "{detail}");
    let (ok, detail, _) = verdict("remote:loc");
    assert!(ok && detail.contains("answers"), "{detail}");
    let (ok, _, fix) = verdict("remote:nowhere");
    assert!(!ok && fix.contains("rclone lsf"), "{fix}");
    // Text output: one ✗ line with its fix per failing tier.
    let mut c = env.cmd();
    with_remote_env(&mut c, 0, &loc);
    let text = Run(c.arg("check").output().unwrap());
    text.expect(4);
    assert_eq!(text.stdout().matches('✗').count(), 4, "{}", text.stdout());
}
