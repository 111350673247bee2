//! Faults of a run (issue 16): warnings that ended in exit 0, modes under a loose umask, orphans left by a
//! killed retention, a `--dry-run` that notified on a config error, and a backup dir inside a collected tree.

use crate::notify::Sink;
use crate::util::*;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `backup --json`, which must end with warnings (exit 3, status "warning"): its stderr and its warnings as
/// JSON text.
#[track_caller]
fn backup_with_warnings(env: &Env) -> (String, String) {
    let r = env.run(&["--json", "backup"]);
    r.expect(3);
    let j = r.json();
    assert_eq!(
        (&j["status"], &j["exit_code"]),
        (&"warning".into(), &3.into())
    );
    (r.stderr(), j["warnings"].to_string())
}

#[test]
fn warnings_after_the_archive_mean_exit_3_with_the_reason_in_json() {
    // The disk full right after the archive: room for its one file, none for the sidecar or the verify state.
    let full = Env::new("pbs-node");
    let _fs = Tmpfs::mount(&full.backups, "size=3m,nr_inodes=2,mode=0700");
    let (_, w) = backup_with_warnings(&full);
    assert!(w.contains(".sha256") && w.contains("No space left"), "{w}");
    assert!(w.contains(".proxkeep-verify.json"), "{w}");
    // The archive itself is there and verifies.
    let archive = full.only_archive().display().to_string();
    full.run(&["verify", &archive]).expect(0);

    // A log dir that cannot be written (it used to end in exit 0).
    let read_only = Env::new("pbs-node");
    let _ro = Tmpfs::mount(&read_only.logs, "ro,size=1m");
    let (stderr, w) = backup_with_warnings(&read_only);
    assert!(w.contains("run log") && w.contains("Read-only"), "{w}");
    assert!(stderr.contains("warning: "), "{stderr}");
    read_only.only_archive();
}

/// proxkeep run under `umask 000`, in the test's directory.
fn run_umask_000(env: &Env, args: &[&str]) -> Run {
    let inner = env.cmd();
    let mut c = Command::new("sh");
    c.arg("-c").arg("umask 000; exec \"$@\"").arg("sh");
    c.current_dir(env.tmp.path());
    c.arg(inner.get_program()).args(inner.get_args()).args(args);
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    Run(c.output().unwrap())
}

fn mode(p: &Path) -> u32 {
    fs::symlink_metadata(p).unwrap().mode() & 0o7777
}

#[test]
fn under_umask_000_everything_created_has_an_explicit_mode() {
    let mut env = Env::new("pbs-node");
    let (backups, logs) = (env.path("b/deep/backups"), env.path("l/deep/logs"));
    let prom = env.path("prom/deep/textfile/proxkeep.prom");
    let lock = env.path("run/deep/proxkeep.lock");
    let nas = env.path("nas");
    fs::create_dir(&nas).unwrap();
    env.write_config(&format!(
        "[metrics]\ntextfile = \"{}\"\n[[secondary]]\nname = \"nas\"\npath = \"{}\"\nrequire_mount = false\n",
        prom.display(),
        nas.display()
    ));
    let text = fs::read_to_string(&env.config).unwrap();
    let text = text
        .replace(
            &env.backups.display().to_string(),
            &backups.display().to_string(),
        )
        .replace(&env.logs.display().to_string(), &logs.display().to_string())
        .replace(
            &env.lock_file().display().to_string(),
            &lock.display().to_string(),
        );
    fs::write(&env.config, text).unwrap();
    run_umask_000(&env, &["backup"]).expect(0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    run_umask_000(&env, &["backup"]).expect(0);

    // Nothing proxkeep created is writable by others, whatever the umask.
    let mut seen = 0;
    for top in ["b", "l", "prom", "run", "nas"] {
        for (rel, (kind, m, _)) in tree_state(&env.path(top)) {
            seen += 1;
            assert_eq!(m & 0o022, 0, "{top}/{rel} ({kind}) has mode {m:04o}");
        }
    }
    assert!(seen > 10, "{seen}");
    // The documented modes: backup and log dirs 0700 (with the parents created), archives, sidecars (here and
    // on the secondary), the verify state, run logs and the lock 0600, the metrics textfile 0644 in 0755
    // directories.
    for d in [&backups, &logs, &env.path("b/deep"), &env.path("l")] {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    let created = [&backups, &logs, &nas].map(|d| fs::read_dir(d).unwrap());
    for f in created.into_iter().flatten() {
        let p = f.unwrap().path();
        assert_eq!(mode(&p), 0o600, "{}", p.display());
    }
    assert_eq!(mode(&lock), 0o600);
    assert_eq!(mode(&prom), 0o644);
    for d in [
        prom.parent().unwrap(),
        &env.path("prom/deep"),
        &env.path("prom"),
    ] {
        assert_eq!(mode(d), 0o755, "{}", d.display());
    }

    // `extract` into a new directory (named relative to the working directory): it and the parents it makes
    // are 0700, the tree has the archive's modes.
    let out = env.path("x/deep/out");
    let archive = fs::read_dir(&backups).unwrap().flatten().map(|e| e.path());
    let archive = archive
        .filter(|p| p.extension().is_some_and(|e| e == "zst"))
        .last()
        .unwrap();
    run_umask_000(&env, &["extract", archive.to_str().unwrap(), "x/deep/out"]).expect(0);
    for d in [&out, &env.path("x/deep"), &env.path("x")] {
        assert_eq!(mode(d), 0o700, "{}", d.display());
    }
    for (rel, (kind, m, _)) in tree_state(&out) {
        assert_eq!(m & 0o002, 0, "x/deep/out/{rel} ({kind}) has mode {m:04o}");
    }
}

#[test]
fn the_next_run_sweeps_orphan_sidecars_of_proxkeeps_naming_only() {
    let env = Env::new("pbs-node");
    env.run(&["backup"]).expect(0);
    let first = env.only_archive();
    let first_sidecar = PathBuf::from(format!("{}.sha256", first.display()));
    assert!(first_sidecar.is_file());
    // What a kill -9 between removing an archive and its sidecar leaves, and files that are not ours.
    let orphan = env.backups.join("pbs1-pbs-20200101T000000Z.tar.zst.sha256");
    let other_host = env.backups.join("pve9-pve-20200101T000000Z.tar.xz.sha256");
    let foreign = [
        env.backups.join("notes.sha256"),
        env.backups
            .join("pbs1-pbs-20200101T000000Z.tar.zst.sha256.bak"),
        env.backups.join("pbs1-pbs-2020.tar.zst.sha256"),
    ];
    for p in foreign.iter().chain([&orphan, &other_host]) {
        fs::write(p, "0000  x\n").unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = env.run(&["backup"]);
    r.expect(0);
    assert!(!orphan.exists() && !other_host.exists());
    for p in &foreign {
        assert!(p.exists(), "{} was removed", p.display());
    }
    assert!(first.exists() && first_sidecar.exists());
    let archives: Vec<PathBuf> = env
        .archives()
        .into_iter()
        .filter(|a| a.extension().is_some_and(|e| e == "zst"))
        .collect();
    assert_eq!(archives.len(), 2, "{archives:?}");
    for a in archives {
        assert!(PathBuf::from(format!("{}.sha256", a.display())).is_file());
    }
    assert!(
        r.stderr().contains("orphan") && r.stderr().contains(&orphan.display().to_string()),
        "{}",
        r.stderr()
    );
}

#[test]
fn a_config_error_during_a_dry_run_notifies_nobody_and_writes_no_metrics() {
    let env = Env::new("pbs-node");
    let sink = Sink::start(env.tmp.path());
    let prom = env.path("textfile/proxkeep.prom");
    let good = fs::read_to_string(&env.config).unwrap();
    let u = sink.url();
    let notify = format!(
        "[metrics]\ntextfile = \"{}\"\n[[notify.ntfy]]\nurl = \"{u}/proxkeep-alerts\"\n[[notify.ping]]\nurl = \"{u}/ping/x\"\n",
        prom.display()
    );
    fs::write(
        &env.config,
        format!("{good}[compression]\nlevle = 5\n{notify}"),
    )
    .unwrap();
    let r = env.run(&["backup", "--dry-run"]);
    r.expect(2);
    assert!(r.stderr().contains("levle"), "{}", r.stderr());
    assert!(sink.requests().is_empty(), "{:?}", sink.requests());
    assert!(!prom.exists());
    // Without --dry-run the same config error does report (as before).
    env.run(&["backup"]).expect(2);
    assert!(!sink.requests().is_empty());
    assert!(prom.exists());
}

#[test]
fn the_backup_dir_log_dir_lock_and_secondaries_inside_a_collected_tree_are_never_collected() {
    let mut env = Env::new("pbs-node");
    let srv = env.root.join("srv");
    fs::create_dir_all(srv.join("data")).unwrap();
    fs::write(srv.join("data/keep.txt"), "kept\n").unwrap();
    let nas = srv.join("nas");
    fs::create_dir_all(&nas).unwrap();
    env.write_config(&format!(
        "[collect]\nextra_paths = [\"/srv\"]\n[[secondary]]\nname = \"nas\"\npath = \"{}\"\nrequire_mount = false\n",
        nas.display()
    ));
    let text = fs::read_to_string(&env.config).unwrap();
    let text = text
        .replace(
            &env.backups.display().to_string(),
            &srv.join("backups").display().to_string(),
        )
        .replace(
            &env.logs.display().to_string(),
            &srv.join("logs").display().to_string(),
        )
        .replace(
            &env.lock_file().display().to_string(),
            &srv.join("proxkeep.lock").display().to_string(),
        );
    fs::write(&env.config, text).unwrap();
    env.run(&["backup"]).expect(0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let j = env.run(&["--json", "backup"]).expect(0).json();
    let archive = PathBuf::from(j["archive"].as_str().unwrap());
    let index = index_of(&archive);
    let paths: Vec<&str> = index["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(paths.contains(&"srv/data/keep.txt"), "{paths:?}");
    for p in &paths {
        assert!(
            !["srv/backups", "srv/logs", "srv/proxkeep.lock", "srv/nas"]
                .iter()
                .any(|n| p.starts_with(n)),
            "{p} was collected"
        );
    }
    // `catalog` says so.
    let out = env.run(&["catalog"]).expect(0).stdout();
    for line in [
        "never collected: /srv/backups (backup_dir)",
        "never collected: /srv/logs (log_dir)",
        "never collected: /srv/proxkeep.lock (lock_file)",
        "never collected: /srv/nas (secondary nas)",
    ] {
        assert!(out.contains(line), "no {line:?} in\n{out}");
    }
    let j = env.run(&["--json", "catalog"]).expect(0).json();
    assert_eq!(j["never_collected"][0]["path"], "/srv/backups");
    // `--dir` elsewhere under a collected tree is left out too.
    let other = srv.join("other-dir");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let shown = other.display().to_string();
    env.run(&["backup", "--dir", &shown]).expect(0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let j = env
        .run(&["--json", "backup", "--dir", &shown])
        .expect(0)
        .json();
    let index = index_of(Path::new(j["archive"].as_str().unwrap()));
    let entries = index["entries"].as_array().unwrap();
    assert!(
        !entries.iter().any(|e| e["path"]
            .as_str()
            .unwrap_or("")
            .starts_with("srv/other-dir")),
        "{entries:?}"
    );
}

#[test]
fn a_backup_dir_that_is_the_root_itself_does_not_leave_everything_out() {
    let env = Env::new("pbs-node");
    let text = fs::read_to_string(&env.config).unwrap();
    let root = env.root.display().to_string();
    let text = text.replace(&env.backups.display().to_string(), &root);
    fs::write(&env.config, text).unwrap();
    let out = env.run(&["catalog"]).expect(0).stdout();
    assert!(!out.contains("never collected: / "), "{out}");
    let j = env.run(&["--json", "backup"]).expect(0).json();
    assert!(j["files"].as_u64().unwrap() > 5, "{j}");
}
