//! Issue 12, "Retention says what it does" and "Restore safety on a real host": the retention rule and what
//! prune/check say about it, no service command on a copy of a host, follow-ups for the host a tree belongs to,
//! restore-safety archives (name, when, list, verify, keep_safety), `--dir` on the restore commands, and what
//! an ARCHIVE argument that names nothing (or no archive) gets told.

use crate::util::*;
use std::fs;
use std::path::PathBuf;

/// The binary as a user runs it: the fixture root is a copy of a host, not the running one.
fn run_at(env: &Env, now: Option<&str>, args: &[&str]) -> Run {
    let mut c = env.cmd();
    c.env_remove("PROXKEEP_LIVE_ROOT");
    if let Some(now) = now {
        c.env("PROXKEEP_NOW", now);
    }
    Run(c.args(args).output().unwrap())
}

fn run(env: &Env, args: &[&str]) -> Run {
    run_at(env, None, args)
}

fn safety_names(env: &Env) -> Vec<String> {
    files(&env.backups)
        .into_iter()
        .filter(|n| n.contains("-restore-safety-") && !n.ends_with(".sha256"))
        .collect()
}

const ALL_ZERO: &str = "[retention]\nkeep_last = 0\nkeep_hourly = 0\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\nkeep_yearly = 0\n";

// ------------------------------------------------------------------------------------------------
// Retention

#[test]
fn a_retention_section_overrides_the_defaults_key_by_key_and_says_so() {
    let mut env = Env::new("pbs-node");
    env.write_config("[retention]\nkeep_daily = 14\n");
    fs::create_dir_all(&env.backups).unwrap();
    let r = run(&env, &["config", "show"]);
    r.expect(0);
    let out = r.stdout();
    for line in [
        "keep_last = 3",
        "keep_daily = 14",
        "keep_weekly = 4",
        "keep_monthly = 6",
        "keep_yearly = 2",
        "keep_safety = 5",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    env.write_config(&format!(
        "[retention]\nkeep_daily = 14\n[[secondary]]\nname = \"usb\"\npath = \"{}\"\nkeep_last = 1\n",
        env.path("usb").display()
    ));
    let r = run(&env, &["config", "show"]);
    let usb =
        "# secondary:usb: keep_last 1, keep_daily 14, keep_weekly 4, keep_monthly 6, keep_yearly 2";
    assert!(r.stdout().contains(usb), "{}", r.stdout());
    let r = run(&env, &["prune", "--dry-run", "--tier", "local"]);
    r.expect(0);
    assert!(
        r.stdout().contains(
            "policy: keep_last 3, keep_daily 14, keep_weekly 4, keep_monthly 6, keep_yearly 2"
        ),
        "{}",
        r.stdout()
    );
    let j = run(&env, &["--json", "prune", "--dry-run", "--tier", "local"]).json();
    assert_eq!(j[0]["policy"]["keep_last"], 3);
    assert_eq!(j[0]["policy"]["keep_daily"], 14);
}

#[test]
fn check_warns_when_the_effective_policy_keeps_fewer_than_three_archives() {
    let mut env = Env::new("pbs-node");
    let r = run(&env, &["check"]);
    assert!(
        r.stdout()
            .contains("✓ retention local: keep_last 3, keep_daily 7"),
        "{}",
        r.stdout()
    );
    let before = r.code();
    assert_ne!(before, 3, "{}", r.stdout());
    // The tier itself is there: `check` tries it too.
    fs::create_dir_all(env.path("usb")).unwrap();
    env.write_config(&format!(
        "{ALL_ZERO}\n[[secondary]]\nname = \"usb\"\npath = \"{}\"\nrequire_mount = false\nkeep_last = 2\n",
        env.path("usb").display()
    ));
    let r = run(&env, &["check"]);
    let out = r.stdout();
    assert!(out.contains("✓ retention local: every archive"), "{out}");
    assert!(
        out.contains("! retention secondary:usb: keeps at most 2 archive(s) (keep_last 2)"),
        "{out}"
    );
    assert!(out.contains("keep at least 3"), "{out}");
    // A warning: exit 3 unless something failed (exit 4) anyway.
    assert_eq!(r.code(), if before == 0 { 3 } else { before }, "{out}");
    let j = run(&env, &["--json", "check"]).json();
    let c = j
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "retention secondary:usb")
        .unwrap()
        .clone();
    assert_eq!(
        (c["ok"].clone(), c["warning"].clone()),
        (true.into(), true.into())
    );
}

#[test]
fn prune_names_every_archive_it_removes_on_stdout_and_a_backup_in_its_run_log() {
    let mut env = Env::new("pbs-node");
    env.write_config(ALL_ZERO);
    let days = ["2026-11-01", "2026-11-02", "2026-11-03"];
    for d in days {
        run_at(&env, Some(&format!("{d}T03:00:00Z")), &["backup"]).expect(0);
    }
    let archives: Vec<String> = env
        .archives()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(archives.len(), 3);
    env.write_config("[retention]\nkeep_last = 1\nkeep_daily = 0\nkeep_weekly = 0\nkeep_monthly = 0\nkeep_yearly = 0\n");
    for (args, says, left) in [
        (&["prune", "--dry-run"][..], "remove  (would)", 3),
        (&["prune"][..], "removed", 1),
    ] {
        let r = run(&env, args);
        r.expect(0);
        for a in &archives[..2] {
            assert!(
                r.stdout().contains(&format!("{a}  {says}")),
                "{}",
                r.stdout()
            );
        }
        assert_eq!(env.archives().len(), left);
    }
    // `prune`'s own run log names what it removed (the dry run wrote nothing there).
    let log = fs::read_to_string(env.logs.join("prune.log")).unwrap();
    for a in &archives[..2] {
        assert_eq!(
            log.matches(&format!("tier local: removed {a}")).count(),
            1,
            "{log}"
        );
    }
    // A backup prunes too: its run log names what retention removed.
    run_at(&env, Some("2026-11-04T03:00:00Z"), &["backup"]).expect(0);
    let log = files(&env.logs)
        .into_iter()
        .find(|n| n.contains("20261104T030000Z"))
        .unwrap();
    let log = fs::read_to_string(env.logs.join(log)).unwrap();
    assert!(
        log.contains(&format!("tier local: removed {} (retention)", archives[2])),
        "{log}"
    );
}

// ------------------------------------------------------------------------------------------------
// No command on a copy of a host

#[test]
fn pmxcfs_restore_under_a_root_copy_runs_no_command_and_prints_what_to_run() {
    let env = Env::new("pve-node");
    make_config_db(&env.root);
    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    let calls = env.path("calls.log");
    for cmd in ["systemctl", "pvecm"] {
        env.stub(cmd, &format!("echo \"{cmd} $*\" >> '{}'", calls.display()));
    }
    let r = run(
        &env,
        &["pmxcfs", "restore", archive.to_str().unwrap(), "--yes"],
    );
    r.expect(0);
    assert!(
        !calls.exists(),
        "{}",
        fs::read_to_string(&calls).unwrap_or_default()
    );
    let out = r.stdout();
    assert!(
        out.contains("is not the running host (/): no command is run here"),
        "{out}"
    );
    assert!(
        out.contains("systemctl stop pve-cluster; systemctl start pve-cluster"),
        "{out}"
    );
    assert!(!out.contains("pve-cluster will be stopped"), "{out}");
    assert!(
        !out.contains("pve-cluster stopped and started again"),
        "{out}"
    );
}

#[test]
fn restore_onto_a_copy_of_a_host_prints_follow_ups_for_the_host_it_belongs_to() {
    let env = Env::new("pve-node");
    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    let calls = env.path("calls.log");
    for cmd in ["ifreload", "systemctl"] {
        env.stub(cmd, &format!("echo \"{cmd} $*\" >> '{}'", calls.display()));
    }
    let target = env.path("target");
    fs::create_dir_all(&target).unwrap();
    // Onto the --root copy (no --target) and onto a --target: neither is the running host.
    let dirty = || {
        for dir in [&env.root, &target] {
            fs::create_dir_all(dir.join("etc/network")).unwrap();
            fs::write(dir.join("etc/network/interfaces"), b"auto lo\n").unwrap();
        }
    };
    let a = archive.to_str().unwrap();
    let t = target.to_str().unwrap();
    for args in [
        vec![
            "restore",
            a,
            "--only",
            "network",
            "--yes",
            "--apply-services",
        ],
        vec!["restore", a, "--only", "network", "--yes", "--target", t],
    ] {
        dirty();
        let r = run(&env, &args);
        r.expect(0);
        let out = r.stdout();
        assert!(
            out.contains(
                "is not the running host: nothing was run. On the host this tree belongs to, run:"
            ),
            "{out}"
        );
        assert!(out.contains("ifreload -a"), "{out}");
        assert!(!out.contains("follow-up for what was restored"), "{out}");
        assert!(
            !calls.exists(),
            "{}",
            fs::read_to_string(&calls).unwrap_or_default()
        );
        dirty();
        let j = run(&env, &[&args[..], &["--json"]].concat()).json();
        assert_eq!(j["live"], false);
    }
}

// ------------------------------------------------------------------------------------------------
// Safety archives

/// pve-node backed up (host "due"), and a target that looks like a fresh install (no hostname: "localhost").
fn fresh_target(env: &Env) -> (PathBuf, PathBuf) {
    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    let target = env.path("fresh");
    fs::create_dir_all(target.join("etc/network")).unwrap();
    (archive, target)
}

#[test]
fn safety_archives_are_named_after_the_archives_host_and_only_written_when_something_is_replaced() {
    let env = Env::new("pve-node");
    let (archive, target) = fresh_target(&env);
    let (a, t) = (archive.to_str().unwrap(), target.to_str().unwrap());
    // Only creates: nothing to save, no safety archive, no undo.
    let r = run(
        &env,
        &["restore", a, "--only", "network", "--yes", "--target", t],
    );
    r.expect(0);
    assert!(safety_names(&env).is_empty(), "{:?}", files(&env.backups));
    assert!(!r.stdout().contains("undo"), "{}", r.stdout());
    // Now one file differs: its current version is saved, under the archive's host name.
    fs::write(target.join("etc/network/interfaces"), b"fresh install\n").unwrap();
    let r = run(
        &env,
        &["restore", a, "--only", "network", "--yes", "--target", t],
    );
    r.expect(0);
    let s = safety_names(&env);
    assert_eq!(s.len(), 1, "{s:?}");
    assert!(s[0].starts_with("due-restore-safety-"), "{s:?}");
    assert!(r.stdout().contains("undo"), "{}", r.stdout());
}

#[test]
fn safety_archives_are_listed_verified_and_kept_by_keep_safety() {
    let mut env = Env::new("pve-node");
    env.write_config("[retention]\nkeep_safety = 2\n");
    let (archive, target) = fresh_target(&env);
    let (a, t) = (archive.to_str().unwrap(), target.to_str().unwrap());
    for (i, now) in [
        "2027-01-01T10:00:00Z",
        "2027-01-02T10:00:00Z",
        "2027-01-03T10:00:00Z",
    ]
    .iter()
    .enumerate()
    {
        fs::write(
            target.join("etc/network/interfaces"),
            format!("changed {i}\n"),
        )
        .unwrap();
        let args = ["restore", a, "--only", "network", "--yes", "--target", t];
        run_at(&env, Some(now), &args).expect(0);
    }
    // Only the newest two are left; the backup is untouched.
    assert_eq!(
        safety_names(&env),
        vec![
            "due-restore-safety-20270102T100000Z.tar.zst",
            "due-restore-safety-20270103T100000Z.tar.zst"
        ]
    );
    assert_eq!(env.archives().iter().filter(|p| p == &&archive).count(), 1);
    // `list`: their own section, and in --json with "safety": true.
    let r = run(&env, &["list"]);
    r.expect(0);
    let out = r.stdout();
    let section = out.find("restore-safety archives").expect(&out);
    assert!(
        out[section..].contains("due-restore-safety-20270103T100000Z.tar.zst"),
        "{out}"
    );
    assert!(
        out[..section].contains(&*archive.file_name().unwrap().to_string_lossy()),
        "{out}"
    );
    let j = run(&env, &["--json", "list"]).json();
    let safety: Vec<&serde_json::Value> = j
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["safety"] == true)
        .collect();
    assert_eq!(safety.len(), 2, "{j}");
    assert_eq!(safety[0]["host"], "due");
    // Read back when written, like a backup: `list` knows it is intact.
    assert_eq!(safety[0]["state"], "ok", "{j}");
    // `verify --all` reads them back too.
    let r = run(&env, &["verify", "--all"]);
    r.expect(0);
    assert!(
        r.stdout()
            .contains("due-restore-safety-20270102T100000Z.tar.zst"),
        "{}",
        r.stdout()
    );
    assert!(r.stdout().contains("3 archive(s): 3 ok"), "{}", r.stdout());
    // `prune` applies keep_safety too, and names what goes.
    env.write_config("[retention]\nkeep_safety = 1\n");
    let r = run(&env, &["prune", "--dry-run"]);
    assert!(
        r.stdout()
            .contains("due-restore-safety-20270102T100000Z.tar.zst  remove  (would)"),
        "{}",
        r.stdout()
    );
    run(&env, &["prune"]).expect(0);
    assert_eq!(
        safety_names(&env),
        vec!["due-restore-safety-20270103T100000Z.tar.zst"]
    );
    assert!(archive.exists());
}

// ------------------------------------------------------------------------------------------------
// --dir and ARCHIVE arguments

#[test]
fn dir_works_on_restore_extract_and_pmxcfs_restore() {
    let env = Env::new("pve-node");
    make_config_db(&env.root);
    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    let elsewhere = env.path("usb");
    fs::create_dir_all(&elsewhere).unwrap();
    let file = archive.file_name().unwrap().to_string_lossy().into_owned();
    fs::rename(&archive, elsewhere.join(&file)).unwrap();
    let d = elsewhere.to_str().unwrap();
    let target = env.path("target");
    fs::create_dir_all(&target).unwrap();
    let t = target.to_str().unwrap();
    let r = run(
        &env,
        &["restore", "latest", "--dir", d, "--target", t, "--dry-run"],
    );
    r.expect(0);
    assert!(r.stdout().contains(&file), "{}", r.stdout());
    let out = env.path("out");
    run(&env, &["extract", &file, out.to_str().unwrap(), "--dir", d]).expect(0);
    assert!(out.join("etc/hostname").is_file());
    let newroot = env.path("newroot");
    fs::create_dir_all(&newroot).unwrap();
    let args = [
        "pmxcfs",
        "restore",
        "latest",
        "--dir",
        d,
        "--target",
        newroot.to_str().unwrap(),
        "--yes",
    ];
    run(&env, &args).expect(0);
    assert!(newroot.join("var/lib/pve-cluster/config.db").is_file());
    // Without --dir, the configured (now empty) backup dir is used.
    run(
        &env,
        &["extract", "latest", env.path("out2").to_str().unwrap()],
    )
    .expect(2);
}

#[test]
fn an_archive_argument_that_names_nothing_here_says_where_to_look() {
    let env = Env::new("pbs-node");
    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    let file = archive.file_name().unwrap().to_string_lossy().into_owned();
    let host = fs::read_to_string(env.root.join("etc/hostname")).unwrap();
    let other = file.replacen(host.trim(), "otherhost", 1);
    fs::rename(&archive, env.backups.join(&other)).unwrap();
    // `latest` of this host: none, but another host's are there.
    for cmd in [
        vec!["show", "latest"],
        vec!["restore", "latest", "--dry-run"],
    ] {
        let r = run(&env, &cmd);
        r.expect(2);
        assert!(r.stderr().contains("only of otherhost"), "{}", r.stderr());
        assert!(r.stderr().contains("--all-hosts"), "{}", r.stderr());
    }
    // A near miss of a file name: the nearest one is suggested.
    let typo = &other[..other.len() - 1];
    let r = run(&env, &["show", typo]);
    r.expect(2);
    assert!(
        r.stderr().contains(&format!("did you mean `{other}`?")),
        "{}",
        r.stderr()
    );
}

#[test]
fn a_file_that_is_no_archive_at_all_is_a_usage_error_not_damage() {
    let env = Env::new("pbs-node");
    let notes = env.path("notes.txt");
    fs::write(&notes, b"just some notes\n").unwrap();
    let n = notes.to_str().unwrap();
    let out = env.path("out");
    for cmd in [
        vec!["show", n],
        vec!["ls", n],
        vec!["verify", n],
        vec!["restore", n, "--dry-run"],
        vec!["extract", n, out.to_str().unwrap()],
    ] {
        let r = run(&env, &cmd);
        r.expect(2);
        assert!(
            r.stderr().contains("is not a proxkeep archive"),
            "{cmd:?}: {}",
            r.stderr()
        );
    }
    // A file named like an archive whose bytes are not one: damaged (6), as before.
    fs::create_dir_all(&env.backups).unwrap();
    let named = env.backups.join("pbs1-pbs-20261128T031500Z.tar.zst");
    fs::write(&named, b"just some notes\n").unwrap();
    run(&env, &["show", named.to_str().unwrap()]).expect(6);
}
