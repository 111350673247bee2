//! The fault suite that stays (issue 16): kill -9 at several points of a backup, SIGTERM/SIGINT, full and
//! read-only backup dirs, concurrent runs, files changing while read, hostile archives with a valid-looking
//! index, hostile restore targets. Every case also asserts that nothing outside its sandbox changed: the
//! directories a run must not touch are fingerprinted (kind, mode, owner, link target, content hash) before
//! and compared after.

use crate::util::{
    Env, Run, Tmpfs, bin, finished, index_of, repo, sh, sh_ok, sha256_file, spawn, tool, wait_for,
};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

// ------------------------------------------------------------------------------------------------
// sandbox helpers

/// Every entry under `dir` (nothing when it does not exist), except the subtrees in `skip`: kind, mode,
/// owner and, for files, the content hash and mtime; for symlinks the target.
fn fingerprint(dir: &Path, skip: &[PathBuf]) -> BTreeMap<String, String> {
    fn walk(base: &Path, dir: &Path, skip: &[PathBuf], out: &mut BTreeMap<String, String>) {
        let Ok(rd) = fs::read_dir(dir) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if skip.contains(&p) {
                continue;
            }
            let md = fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let own = format!("{:o} {}:{}", md.mode(), md.uid(), md.gid());
            let what = if md.is_symlink() {
                format!("link -> {}", fs::read_link(&p).unwrap().display())
            } else if md.is_dir() {
                walk(base, &p, skip, out);
                format!("dir {own}")
            } else {
                format!("file {own} {} {}", md.mtime(), sha256_file(&p))
            };
            out.insert(rel, what);
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, skip, &mut out);
    out
}

/// Directories a case must leave exactly as they were.
struct Untouched(Vec<(PathBuf, Vec<PathBuf>, BTreeMap<String, String>)>);

impl Untouched {
    fn new(dirs: &[(&Path, &[PathBuf])]) -> Untouched {
        Untouched(
            dirs.iter()
                .map(|(d, skip)| (d.to_path_buf(), skip.to_vec(), fingerprint(d, skip)))
                .collect(),
        )
    }

    #[track_caller]
    fn check(&self, case: &str) {
        for (dir, skip, before) in &self.0 {
            let after = fingerprint(dir, skip);
            if &after != before {
                let changed: Vec<_> = before
                    .keys()
                    .chain(after.keys())
                    .filter(|k| before.get(*k) != after.get(*k))
                    .take(10)
                    .collect();
                panic!("{case}: {} changed: {changed:?}", dir.display());
            }
        }
    }
}

/// A directory with files in it that no case may write to: what hostile entries aim at.
fn outside(env: &Env) -> PathBuf {
    let o = env.path("outside");
    fs::create_dir_all(o.join("sub")).unwrap();
    fs::write(o.join("victim"), b"victim\n").unwrap();
    fs::write(o.join("sub/victim"), b"victim too\n").unwrap();
    o
}

/// Hashes of the visible archives and sidecars in the backup dir.
fn archive_hashes(env: &Env) -> BTreeMap<String, String> {
    fs::read_dir(&env.backups)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .map(|n| {
            let h = sha256_file(&env.backups.join(&n));
            (n, h)
        })
        .collect()
}

#[track_caller]
fn assert_kept(env: &Env, earlier: &BTreeMap<String, String>, case: &str) {
    let now = archive_hashes(env);
    for (name, hash) in earlier {
        assert_eq!(now.get(name), Some(hash), "{case}: earlier {name} changed");
    }
}

/// A command stub that blocks until `release` exists in the env (so the run holds the lock with its
/// partial file open), recording each call's pid in `stub.pids`.
fn blocking_stub(env: &mut Env, name: &str) {
    let (pids, release) = (env.path("stub.pids"), env.path("release"));
    env.stub(
        name,
        &format!(
            "echo $$ >> '{}'; while [ ! -e '{}' ]; do sleep 0.02; done; echo stub",
            pids.display(),
            release.display()
        ),
    );
}

/// A pbs-node env with one archive (its hashes), the root and an outside dir fingerprinted, and a config
/// whose next backups block in the `uname` command until `release` exists.
fn blocking_env() -> (Env, BTreeMap<String, String>, Untouched) {
    let mut env = Env::new("pbs-node");
    env.run(&["backup"]).expect(0);
    let earlier = archive_hashes(&env);
    let out = outside(&env);
    let untouched = Untouched::new(&[(&env.root, &[]), (&out, &[])]);
    blocking_stub(&mut env, "uname");
    env.write_config("[commands]\nrun = \"always\"\ntimeout = \"60s\"\n");
    (env, earlier, untouched)
}

fn stub_calls(env: &Env) -> usize {
    fs::read_to_string(env.path("stub.pids"))
        .map(|s| s.lines().count())
        .unwrap_or(0)
}

/// The partial file of the run with this pid (the name ends in `.<pid>.partial`), if it exists.
fn partial_of(env: &Env, pid: u32) -> Option<PathBuf> {
    let end = format!(".{pid}.partial");
    let name = env.partials().into_iter().find(|p| p.ends_with(&end))?;
    Some(env.backups.join(name))
}

// ------------------------------------------------------------------------------------------------
// backup: interruptions

/// The one 20,000-file tree of the suite: 20 directories of 1,000 small files, all different.
fn twenty_thousand_files(env: &Env) {
    for d in 0..20 {
        let dir = env.root.join(format!("srv/many/d{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..1000 {
            fs::write(dir.join(format!("f{f:04}.conf")), format!("{d} {f}\n")).unwrap();
        }
    }
}

#[test]
fn kill_9_at_several_points_of_a_20k_file_backup_keeps_earlier_archives_and_the_next_run_sweeps() {
    let mut env = Env::new("pbs-node");
    twenty_thousand_files(&env);
    let config = "[collect]\nextra_paths = [\"/srv/many\"]\n[compression]\nlevel = 1\n";
    env.write_config(config);
    env.run(&["backup"]).expect(0);
    let earlier = archive_hashes(&env);
    let first_size = fs::metadata(env.only_archive()).unwrap().len();
    let out = outside(&env);
    let untouched = Untouched::new(&[(&env.root, &[]), (&out, &[])]);

    let lock = env.lock_file();
    type Reached<'a> = &'a dyn Fn(&Env, u32, usize) -> bool;
    let points: [(&str, Reached); 4] = [
        ("holding the lock", &|_, pid, _| {
            fs::read_to_string(&lock).is_ok_and(|s| s.contains(&format!("pid={pid} ")))
        }),
        ("partial file created", &|e, pid, _| {
            partial_of(e, pid).is_some()
        }),
        ("partial file half written", &|e, pid, _| {
            partial_of(e, pid)
                .and_then(|p| fs::metadata(p).ok())
                .is_some_and(|m| m.len() >= first_size / 2)
        }),
        ("new archive visible", &|e, _, n| e.archives().len() > n),
    ];
    for (point, reached) in points {
        let before = env.archives();
        let mut child = spawn(&env, "kill9", &["backup"]);
        let pid = child.id();
        wait_for(point, 120, || {
            reached(&env, pid, before.len()) || child.try_wait().unwrap().is_some()
        });
        let _ = child.kill();
        let status = child.wait().unwrap();
        // The first two points come long before the end of a 20k-file run: the kill really hit them.
        if point != "partial file half written" && point != "new archive visible" {
            assert_eq!(status.signal(), Some(9), "{point}: the run ended first");
        }
        assert_kept(&env, &earlier, point);
        // What became visible was renamed only after its read-back: it verifies.
        for a in env.archives().iter().filter(|a| !before.contains(a)) {
            env.run(&["verify", a.to_str().unwrap()]).expect(0);
        }
        untouched.check(point);
    }

    // Killed while a command runs (files streaming, partial open): deterministic, the stub blocks.
    blocking_stub(&mut env, "uname");
    env.write_config(&format!(
        "{config}[commands]\nrun = \"always\"\ntimeout = \"60s\"\n"
    ));
    let before = env.archives();
    let mut child = spawn(&env, "kill9", &["backup"]);
    let pid = child.id();
    wait_for("the stub command", 120, || {
        (stub_calls(&env) == 1 && partial_of(&env, pid).is_some())
            || child.try_wait().unwrap().is_some()
    });
    let _ = child.kill();
    let _ = child.wait();
    fs::write(env.path("release"), b"").unwrap();
    assert_eq!(
        env.archives(),
        before,
        "killed in a command: nothing new visible"
    );
    assert!(partial_of(&env, pid).is_some(), "{:?}", env.partials());
    assert_kept(&env, &earlier, "in a command");

    // The next run: exit 0, every partial of the killed runs swept, every archive verifies.
    env.write_config(config);
    env.run(&["backup"]).expect(0);
    assert!(env.partials().is_empty(), "{:?}", env.partials());
    assert_kept(&env, &earlier, "next run");
    env.run(&["verify", "--all"]).expect(0);
    untouched.check("next run");
}

#[test]
fn sigterm_and_sigint_end_a_backup_with_130_no_partial_and_the_lock_released() {
    let (mut env, earlier, untouched) = blocking_env();
    for (n, sig) in ["TERM", "INT"].into_iter().enumerate() {
        let mut child = spawn(&env, sig, &["--json", "backup"]);
        let pid = child.id();
        wait_for("the stub command", 120, || {
            (stub_calls(&env) == n + 1 && partial_of(&env, pid).is_some())
                || child.try_wait().unwrap().is_some()
        });
        sh_ok(&format!("kill -{sig} {}", child.id()));
        let r = finished(&env, sig, child);
        r.expect(130);
        let j = r.json();
        assert_eq!(j["error"]["kind"], "interrupted", "{sig}: {j}");
        assert!(env.partials().is_empty(), "{sig}: {:?}", env.partials());
        assert_eq!(archive_hashes(&env), earlier, "{sig}");
        untouched.check(sig);
    }
    // The lock was released: the next run goes through.
    fs::write(env.path("release"), b"").unwrap();
    env.write_config("");
    env.run(&["backup"]).expect(0);
    assert_kept(&env, &earlier, "after the signals");
}

// ------------------------------------------------------------------------------------------------
// backup: full, read-only, concurrent

#[test]
fn a_full_backup_dir_at_1_3_and_20_mib_fails_cleanly_and_keeps_earlier_archives() {
    for (size, mib) in [("1m", 1), ("3m", 3), ("20m", 20)] {
        let mut env = Env::new("pbs-node");
        let _fs = Tmpfs::mount(&env.backups, &format!("size={size},mode=0700"));
        env.run(&["backup"]).expect(0);
        let earlier = archive_hashes(&env);
        // More than the file system holds, and it does not compress.
        let big = env.root.join("srv/big");
        fs::create_dir_all(&big).unwrap();
        sh_ok(&format!(
            "head -c {} /dev/urandom > '{}'",
            (mib + 1) << 20,
            big.join("blob").display()
        ));
        env.write_config("[collect]\nextra_paths = [\"/srv/big\"]\n[compression]\nlevel = 1\n");
        let out = outside(&env);
        let untouched = Untouched::new(&[(&env.root, &[]), (&out, &[])]);
        let r = env.run(&["backup"]);
        r.expect(1);
        assert!(
            r.stderr().contains("No space left"),
            "{size}: {}",
            r.stderr()
        );
        assert_eq!(archive_hashes(&env), earlier, "{size}");
        assert!(env.partials().is_empty(), "{size}: {:?}", env.partials());
        untouched.check(size);
        // All the space came back: without the blob the next run fits again.
        fs::remove_dir_all(&big).unwrap();
        env.run(&["backup"]).expect(0);
        assert_kept(&env, &earlier, size);
    }
}

#[test]
fn a_full_backup_dir_stops_a_restore_before_anything_is_replaced() {
    let env = Env::new("pbs-node");
    let _fs = Tmpfs::mount(&env.backups, "size=1m,mode=0700");
    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    // The target differs in one file, so the restore needs a safety archive, and the backup dir is full.
    let target = env.path("target");
    crate::util::materialize("pbs-node", &target);
    sh_ok(&format!(
        "head -c 2000000 /dev/urandom > '{}'",
        target.join("etc/hosts").display()
    ));
    let _ = sh(&format!(
        "head -c 2000000 /dev/zero > '{}'",
        env.backups.join("filler").display()
    ));
    let earlier = archive_hashes(&env);
    let out = outside(&env);
    let untouched = Untouched::new(&[(&env.root, &[]), (&out, &[]), (&target, &[])]);
    let (r, _) = unpack(&env, "restore", &archive, &target);
    r.expect(1);
    assert!(
        r.stderr()
            .contains("safety archive not written, nothing was changed")
            && r.stderr().contains("No space left"),
        "{}",
        r.stderr()
    );
    assert_eq!(archive_hashes(&env), earlier);
    assert!(env.partials().is_empty(), "{:?}", env.partials());
    untouched.check("restore with a full backup dir");
}

#[test]
fn a_read_only_backup_dir_fails_preflight_and_changes_nothing() {
    let env = Env::new("pbs-node");
    let _fs = Tmpfs::mount(&env.backups, "size=4m,mode=0700");
    env.run(&["backup"]).expect(0);
    sh_ok(&format!("mount -o remount,ro '{}'", env.backups.display()));
    let all = fingerprint(&env.backups, &[]);
    let out = outside(&env);
    let untouched = Untouched::new(&[(&env.root, &[]), (&out, &[])]);
    let r = env.run(&["--json", "backup"]);
    r.expect(4);
    assert_eq!(r.json()["error"]["kind"], "preflight", "{}", r.stdout());
    assert!(
        r.stderr().contains("Read-only file system") && r.stderr().contains("remount"),
        "{}",
        r.stderr()
    );
    assert_eq!(fingerprint(&env.backups, &[]), all);
    untouched.check("read-only");
}

#[test]
fn five_concurrent_runs_one_wins_the_others_report_the_lock() {
    // The winner blocks in a command until released, so every other run meets the lock, whatever the order.
    let (env, earlier, untouched) = blocking_env();
    let mut children: Vec<(String, Child)> = (0..5)
        .map(|i| {
            let tag = format!("run{i}");
            let c = spawn(&env, &tag, &["--json", "backup"]);
            (tag, c)
        })
        .collect();
    let mut losers = Vec::new();
    wait_for("four runs to give up", 120, || {
        let mut i = 0;
        while i < children.len() {
            if children[i].1.try_wait().unwrap().is_some() {
                let (tag, c) = children.remove(i);
                losers.push(finished(&env, &tag, c));
            } else {
                i += 1;
            }
        }
        losers.len() >= 4
    });
    assert_eq!(losers.len(), 4);
    for r in &losers {
        r.expect(5);
        assert_eq!(r.json()["error"]["kind"], "locked", "{}", r.stdout());
        assert!(r.stderr().contains("lock"), "{}", r.stderr());
    }
    wait_for("the winner's command", 120, || stub_calls(&env) == 1);
    fs::write(env.path("release"), b"").unwrap();
    let (tag, winner) = children.pop().unwrap();
    // 3 where a real command of the catalog fails on this machine (systemctl without systemd).
    let code = finished(&env, &tag, winner).code();
    assert!(code == 0 || code == 3, "winner exit {code}");
    assert_eq!(stub_calls(&env), 1, "only the winner ran its commands");
    assert_eq!(env.archives().len(), 2);
    assert!(env.partials().is_empty(), "{:?}", env.partials());
    assert_kept(&env, &earlier, "concurrent");
    env.run(&["verify", "--all"]).expect(0);
    untouched.check("concurrent");
}

#[test]
fn files_deleted_growing_or_replaced_while_read_are_warnings_and_the_archive_verifies() {
    let mut env = Env::new("pbs-node");
    let churn = env.root.join("srv/churn");
    for d in ["gone", "swap"] {
        fs::create_dir_all(churn.join(d)).unwrap();
    }
    for i in 0..50 {
        fs::write(churn.join(format!("gone/f{i:02}")), b"here\n").unwrap();
        fs::write(churn.join(format!("swap/f{i:02}")), b"short\n").unwrap();
    }
    sh_ok(&format!(
        "head -c 16000000 /dev/urandom > '{}'",
        churn.join("grow.log").display()
    ));
    env.write_config("[collect]\nextra_paths = [\"/srv/churn\"]\n[compression]\nlevel = 1\n");
    let out = outside(&env);
    let untouched = Untouched::new(&[(&out, &[])]);
    // Three loops keep the changes going for as long as the backup runs: one appends to the log, one
    // deletes and recreates files, one replaces files (rename over) with content of another size.
    let churners: Vec<Child> = [
        "while :; do head -c 4096 /dev/urandom >> grow.log; done",
        "while :; do for f in gone/*; do rm -f $f; echo back > $f; done; done",
        "n=0; while :; do n=$((n+1)); for f in swap/f*; do \
         head -c $((n % 2 * 5000 + 10)) /dev/urandom > swap/.new; mv swap/.new $f; done; done",
    ]
    .iter()
    .map(|script| {
        Command::new("sh")
            .arg("-c")
            .arg(script)
            .current_dir(&churn)
            .spawn()
            .unwrap()
    })
    .collect();
    let r = env.run(&["--json", "backup"]);
    for mut c in churners {
        let _ = c.kill();
        let _ = c.wait();
    }
    r.expect(3);
    let j = r.json();
    let warnings = j["warnings"].as_array().unwrap();
    assert!(
        warnings.iter().any(|w| w["path"] == "/srv/churn/grow.log"
            && w["message"]
                .as_str()
                .unwrap()
                .contains("grew while being read")),
        "{warnings:?}"
    );
    // Warnings only about what changed, each naming its path.
    for w in warnings {
        let p = w["path"].as_str().unwrap_or_default();
        assert!(p.starts_with("/srv/churn/"), "{w}");
    }
    let archive = env.only_archive();
    env.run(&["verify", archive.to_str().unwrap()]).expect(0);
    // Every stored version is one whole version: GNU tar's bytes hash to the index's SHA-256.
    let x = env.path("x");
    fs::create_dir_all(&x).unwrap();
    sh_ok(&format!(
        "tar -xf '{}' -C '{}' srv",
        archive.display(),
        x.display()
    ));
    let index = index_of(&archive);
    let mut checked = 0;
    for e in index["entries"].as_array().unwrap() {
        let p = e["path"].as_str().unwrap();
        if p.starts_with("srv/churn/") && e["kind"] == "file" {
            assert_eq!(
                sha256_file(&x.join(p)),
                e["sha256"].as_str().unwrap(),
                "{p}"
            );
            checked += 1;
        }
    }
    assert!(checked > 50, "{checked}");
    untouched.check("churn");
}

// ------------------------------------------------------------------------------------------------
// hostile archives

fn hostile(env: &Env, case: &str, outside: &Path) -> PathBuf {
    let ext = if case.starts_with("bomb") {
        "tar.zst"
    } else {
        "tar"
    };
    let out = env.path(&format!("{case}.{ext}"));
    let status = Command::new(tool("python3"))
        .arg(repo().join("tests/support/hostile_archive.py"))
        .arg(&out)
        .arg(case)
        .arg(outside)
        .status()
        .unwrap();
    assert!(status.success(), "{case}");
    out
}

/// `restore --target` or `extract` into `target`, under `/usr/bin/time` for the peak RSS (KiB).
fn unpack(env: &Env, cmd: &str, archive: &Path, target: &Path) -> (Run, u64) {
    let (a, t) = (archive.to_str().unwrap(), target.to_str().unwrap());
    let args: Vec<&str> = if cmd == "restore" {
        vec!["restore", a, "--target", t, "--yes", "--path", "/"]
    } else {
        vec!["extract", a, t]
    };
    let rss = env.path("rss");
    let mut c = Command::new(tool("time"));
    c.arg("-f").arg("%M").arg("-o").arg(&rss).arg(bin());
    c.arg("--config")
        .arg(&env.config)
        .arg("--root")
        .arg(&env.root);
    let r = Run(c.args(&args).output().unwrap());
    let kib = fs::read_to_string(&rss).unwrap();
    (r, kib.lines().last().unwrap().trim().parse().unwrap())
}

const HOSTILE_CASES: &[(&str, &str, &str)] = &[
    ("dotdot", "../../escaped", "`..` in the name"),
    ("absolute", "/absolute", "absolute name"),
    (
        "symlink",
        "etc/link/victim",
        "passes through the symlink etc/link",
    ),
    ("hardlink", "etc/hard", "points outside the target"),
    ("device", "etc/node", "character device"),
    ("block", "etc/node", "block device"),
    ("fifo", "etc/node", "FIFO"),
    ("dup-tar", "etc/harmless.conf", "stored twice"),
    ("dup-index", "index lists 2 entries", "holds 1"),
    ("bomb-lying", "etc/bomb", "differs from the index"),
];

#[test]
fn hostile_archives_are_refused_and_nothing_outside_the_target_changes() {
    let env = Env::new("");
    let out = outside(&env);
    // Targets two levels down, so `../../escaped` would land in the sandbox where it is seen.
    let jail = env.path("jail");
    let untouched = Untouched::new(&[(&out, &[]), (&env.root, &[]), (&jail, &[jail.join("x")])]);
    for &(case, entry, why) in HOSTILE_CASES {
        let archive = hostile(&env, case, &out);
        // The archive really holds what the case says (GNU tar lists it).
        let listing = sh_ok(&format!("tar -tvf '{}'", archive.display()));
        let named = if case == "dup-index" {
            "etc/harmless.conf"
        } else {
            entry
        };
        assert!(
            listing.contains(named.trim_start_matches('/')),
            "{case}: {listing}"
        );
        for cmd in ["restore", "extract"] {
            let target = jail.join(format!("x/{case}-{cmd}"));
            fs::create_dir_all(&target).unwrap();
            let (r, kib) = unpack(&env, cmd, &archive, &target);
            r.expect(6);
            let err = r.stderr();
            assert!(
                err.contains(entry) && err.contains(why) && err.contains("nothing was written"),
                "{case} {cmd}: {err}"
            );
            assert_eq!(
                fs::read_dir(&target).unwrap().count(),
                0,
                "{case} {cmd}: something was written"
            );
            // A 256 MiB entry is streamed, never held: the peak stays far below it.
            assert!(kib < 64 * 1024, "{case} {cmd}: peak RSS {kib} KiB");
            untouched.check(&format!("{case} {cmd}"));
        }
        // An archive restore refuses is one verify refuses.
        env.run(&["verify", archive.to_str().unwrap()]).expect(6);
        untouched.check(&format!("{case} verify"));
    }
    assert!(!env.path("escaped").exists() && !jail.join("escaped").exists());
}

#[test]
fn a_setuid_entry_keeps_its_bits_only_with_its_own_owner_and_only_inside_the_target() {
    let env = Env::new("");
    let out = outside(&env);
    let untouched = Untouched::new(&[(&out, &[]), (&env.root, &[])]);
    let archive = hostile(&env, "setuid", &out);
    for cmd in ["restore", "extract"] {
        let target = env.path(&format!("t-{cmd}"));
        fs::create_dir_all(&target).unwrap();
        let (r, _) = unpack(&env, cmd, &archive, &target);
        r.expect(0);
        // The bits go only onto a file of the owner the archive names (root restores owners).
        let md = fs::symlink_metadata(target.join("etc/suid")).unwrap();
        assert_eq!(
            (md.mode() & 0o7777, md.uid(), md.gid()),
            (0o6755, 1000, 1000),
            "{cmd}"
        );
        untouched.check(cmd);
    }
    // Not root: the owner cannot be set, so the bits are dropped (as GNU tar does for a non-root user),
    // never left on a file of the extracting user.
    let target = env.path("t-nobody");
    fs::create_dir(&target).unwrap();
    sh_ok(&format!(
        "chmod 0755 '{}' && chmod 0644 '{}' '{}' && chown 65534:65534 '{}'",
        env.tmp.path().display(),
        env.config.display(),
        archive.display(),
        target.display()
    ));
    let r = Run(Command::new(tool("setpriv"))
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
        .arg(bin())
        .arg("--config")
        .arg(&env.config)
        .arg("--root")
        .arg(&env.root)
        .args([
            "extract",
            archive.to_str().unwrap(),
            target.to_str().unwrap(),
        ])
        .output()
        .unwrap());
    r.expect(0);
    let md = fs::symlink_metadata(target.join("etc/suid")).unwrap();
    assert_eq!((md.mode() & 0o7777, md.uid()), (0o755, 65534), "not root");
    untouched.check("not root");
}

#[test]
fn a_zstd_bomb_that_fills_the_target_stops_with_no_partial_file() {
    let env = Env::new("");
    let out = outside(&env);
    let untouched = Untouched::new(&[(&out, &[]), (&env.root, &[])]);
    let archive = hostile(&env, "bomb", &out);
    // 256 MiB of zeros in a few KiB: a 16 MiB target cannot hold it.
    let small = env.path("small");
    let _fs = Tmpfs::mount(&small, "size=16m,mode=0700");
    for cmd in ["restore", "extract"] {
        let target = small.join(cmd);
        fs::create_dir_all(&target).unwrap();
        let (r, kib) = unpack(&env, cmd, &archive, &target);
        r.expect(1);
        let out = r.stdout();
        assert!(
            out.contains("No space left") && out.contains("none is partial"),
            "{cmd}: {out}\n{}",
            r.stderr()
        );
        assert!(kib < 64 * 1024, "{cmd}: peak RSS {kib} KiB");
        let files = sh_ok(&format!("find '{}' -type f", target.display()));
        assert_eq!(files, "", "{cmd}: files left");
        untouched.check(cmd);
    }
    // What the failed attempts used came back.
    let used = sh_ok(&format!(
        "df --output=used -B1 '{}' | tail -1",
        small.display()
    ));
    assert!(used.trim().parse::<u64>().unwrap() < 1 << 20, "{used}");
}

// ------------------------------------------------------------------------------------------------
// hostile restore targets

#[test]
fn restore_targets_with_symlinked_parents_are_refused_or_replaced_never_followed() {
    let env = Env::new("pbs-node");
    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    let a = archive.to_str().unwrap();
    let out = outside(&env);
    let untouched = Untouched::new(&[(&out, &[]), (&env.root, &[])]);
    let restore = |target: &Path| {
        env.run(&[
            "restore",
            a,
            "--target",
            target.to_str().unwrap(),
            "--yes",
            "--path",
            "/",
            "--no-safety-backup",
        ])
    };
    // A directory of the archive is a symlink to outside on the target, at two depths: refused.
    for (n, parent) in ["etc/proxmox-backup", "etc/apt/sources.list.d"]
        .into_iter()
        .enumerate()
    {
        let target = env.path(&format!("t{n}"));
        let link = target.join(parent);
        fs::create_dir_all(link.parent().unwrap()).unwrap();
        symlink(&out, &link).unwrap();
        let before = fingerprint(&target, &[]);
        let r = restore(&target);
        r.expect(1);
        assert!(
            r.stderr().contains(&format!(
                "passes through the symlink /{parent} on the target"
            )),
            "{}",
            r.stderr()
        );
        assert_eq!(
            fingerprint(&target, &[]),
            before,
            "{parent}: target changed"
        );
        untouched.check(parent);
    }
    // A file of the archive is a symlink to an outside file: the link is replaced, its target untouched.
    let target = env.path("t-file");
    fs::create_dir_all(target.join("etc")).unwrap();
    symlink(out.join("victim"), target.join("etc/hosts")).unwrap();
    restore(&target).expect(0);
    let hosts = target.join("etc/hosts");
    assert!(fs::symlink_metadata(&hosts).unwrap().is_file());
    assert_eq!(
        fs::read(&hosts).unwrap(),
        fs::read(env.root.join("etc/hosts")).unwrap()
    );
    untouched.check("file symlink");
    // extract into a symlink to a directory: refused before anything is written.
    let link = env.path("t-link");
    symlink(&out, &link).unwrap();
    let r = env.run(&["extract", a, link.to_str().unwrap()]);
    r.expect(1);
    assert!(r.stderr().contains("is a symlink"), "{}", r.stderr());
    untouched.check("extract into a symlink");
}
