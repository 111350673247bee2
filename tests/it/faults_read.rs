//! Issue 16, the read side: a backup never reads through a symlink swapped in after its scan, `verify` applies
//! the entry rules `restore` applies, and the lock file is never written through a link or read half-written.

use crate::util::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

// ------------------------------------------------------------------------------------------------
// a directory replaced by a symlink while the backup runs

/// A FUSE mount of `tests/support/gate_fs.py`: its file's read waits for the test (unmounted on drop).
struct Gate {
    child: Child,
    mnt: PathBuf,
    signal: PathBuf,
    go: PathBuf,
}

impl Gate {
    fn mount(env: &Env, mnt: &Path) -> Gate {
        fs::create_dir_all(mnt).unwrap();
        let (signal, go) = (env.path("gate-reading"), env.path("gate-go"));
        let child = Command::new("/usr/bin/python3")
            .arg(repo().join("tests/support/gate_fs.py"))
            .args([mnt, &signal, &go])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut gate = Gate {
            child,
            mnt: mnt.to_path_buf(),
            signal,
            go,
        };
        let shown = mnt.display().to_string();
        wait_for("the FUSE mount", 60, || {
            if let Ok(Some(status)) = gate.child.try_wait() {
                panic!(
                    "gate_fs.py exited ({status}) (needs Debian's python3-fusepy and /dev/fuse)"
                );
            }
            fs::read_to_string("/proc/self/mountinfo")
                .unwrap()
                .contains(&shown)
        });
        gate
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        let _ = fs::write(&self.go, b"");
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = sh(&format!("umount -l '{}'", self.mnt.display()));
    }
}

#[test]
fn a_directory_swapped_for_a_symlink_during_the_backup_is_a_warning_not_outside_content() {
    let mut env = Env::new("");
    let d = env.root.join("srv/mut/d");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("inner.txt"), "inside\n").unwrap();
    let outside = env.path("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("inner.txt"), "OUTSIDE SECRET\n").unwrap();
    // /srv/gate comes first: the backup reads its file after the scan and before /srv/mut.
    env.write_config("[collect]\nextra_paths = [\"/srv/gate\", \"/srv/mut\"]\n");
    let gate = Gate::mount(&env, &env.root.join("srv/gate"));

    let run = env
        .cmd()
        .args(["--json", "backup"])
        .stdout(Stdio::piped())
        .spawn();
    let run = run.unwrap();
    wait_for("the backup's read of the gate file", 60, || {
        gate.signal.exists()
    });
    fs::rename(&d, env.root.join("srv/mut/d.was")).unwrap();
    symlink(&outside, &d).unwrap();
    fs::write(&gate.go, b"").unwrap();
    let r = Run(run.wait_with_output().unwrap());
    drop(gate);

    r.expect(3);
    let warnings = r.json()["warnings"].clone();
    let warning = warnings
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["path"] == "/srv/mut/d/inner.txt")
        .unwrap_or_else(|| panic!("no warning for the swapped path: {warnings}"));
    assert!(
        warning["message"]
            .as_str()
            .unwrap()
            .contains("never reads through a symlink"),
        "{warning}"
    );
    let archive = env.only_archive();
    let listing = sh_ok(&format!("tar -tvf '{}'", archive.display()));
    assert!(!listing.contains("srv/mut/d/inner.txt"), "{listing}");
    assert!(
        listing.contains("srv/mut/d -> "),
        "the link itself is stored: {listing}"
    );
    let found = sh_ok(&format!(
        "zstd -dc '{}' | grep -c 'OUTSIDE SECRET' || true",
        archive.display()
    ));
    assert_eq!(
        found.trim(),
        "0",
        "the outside file's content is in the archive"
    );
    // An archive its own restore accepts.
    env.run(&["verify", archive.to_str().unwrap()]).expect(0);
    let target = env.path("target");
    fs::create_dir_all(&target).unwrap();
    env.run(&[
        "restore",
        archive.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
        "--yes",
        "--path",
        "/",
    ])
    .expect(0);
    assert_eq!(
        fs::read_link(target.join("srv/mut/d")).unwrap(),
        outside,
        "restored as the link it was"
    );
}

// ------------------------------------------------------------------------------------------------
// verify applies restore's entry rules

/// Archives with a valid-looking meta.json and index.json (the index describes the tar entries exactly),
/// each holding one thing `restore` refuses, or nothing (`ok`, `setuid`).
const ARCHIVES: &str = r##"
import hashlib, io, json, sys, tarfile
from hostile_archive import entries, entry, info, meta
out, case, outside = sys.argv[1], sys.argv[2], sys.argv[3]
meta = meta()
with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as tf:
    m = json.dumps(meta).encode()
    t = info("proxkeep/meta.json", tarfile.REGTYPE, 0o600); t.size = len(m); tf.addfile(t, io.BytesIO(m))
    def file(name, data, mode=0o644, listed=1):
        t = info(name, tarfile.REGTYPE, mode); t.size = len(data); tf.addfile(t, io.BytesIO(data))
        for _ in range(listed):
            entry(name, "file", mode="%04o" % mode, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    def link(name, target):
        t = info(name, tarfile.SYMTYPE, 0o777); t.linkname = target; tf.addfile(t)
        entry(name, "symlink", mode="0777", target=target)
    def node(name, kind, **kw):
        t = info(name, kind)
        for k, v in kw.items():
            setattr(t, k, v)
        tf.addfile(t)
        entry(name, "file", sha256=hashlib.sha256(b"").hexdigest())
    file("etc/harmless.conf", b"ok\n")
    if case == "dotdot":
        file("../../escaped", b"evil\n")
    elif case == "absolute":
        file(outside + "/absolute", b"evil\n")
    elif case == "symlink-then-file":
        link("etc/link", outside)
        file("etc/link/through", b"evil\n")
    elif case == "symlink-over-dir":
        file("etc/d/f", b"x\n")
        link("etc/d", outside)
    elif case == "hardlink-out":
        node("etc/hard", tarfile.LNKTYPE, linkname=outside + "/victim")
    elif case == "hardlink-in":
        node("etc/hard", tarfile.LNKTYPE, linkname="etc/harmless.conf")
    elif case == "char-device":
        node("etc/null", tarfile.CHRTYPE, devmajor=1, devminor=3)
    elif case == "block-device":
        node("etc/sda", tarfile.BLKTYPE, devmajor=8, devminor=0)
    elif case == "fifo":
        node("etc/fifo", tarfile.FIFOTYPE)
    elif case == "duplicate-entry":
        file("etc/twice", b"one\n")
        file("etc/twice", b"two\n")
    elif case == "duplicate-by-dot":
        file("./etc/harmless.conf", b"again\n")
    elif case == "duplicate-index":
        file("etc/once", b"x\n", listed=2)
    elif case == "index-reordered":
        file("etc/a", b"a\n")
        file("etc/b", b"b\n")
        entries[-1], entries[-2] = entries[-2], entries[-1]
    elif case == "dir-with-size":
        t = info("etc/dir", tarfile.DIRTYPE, 0o755); tf.addfile(t)
        entry("etc/dir", "dir", mode="0755", size=10)
    elif case == "file-without-hash":
        file("etc/nohash", b"x\n")
        del entries[-1]["sha256"]
    elif case == "index-not-a-file":
        pass
    elif case == "setuid":
        file("usr/local/bin/tool", b"#!/bin/sh\n", mode=0o4755)
    idx = {"format_version": 1, "entries": entries,
           "totals": {"entries": len(entries), "files": 0, "dirs": 0, "symlinks": 0, "bytes": 0, "warnings": 0}}
    d = json.dumps(idx).encode()
    if case == "index-not-a-file":
        t = info("proxkeep/index.json", tarfile.DIRTYPE, 0o755); tf.addfile(t)
    else:
        t = info("proxkeep/index.json", tarfile.REGTYPE, 0o600); t.size = len(d); tf.addfile(t, io.BytesIO(d))
"##;

fn crafted(env: &Env, case: &str, outside: &Path) -> PathBuf {
    let out = env.path(&format!("{case}.tar"));
    // The pieces every crafted archive shares come from tests/support/hostile_archive.py.
    let status = Command::new(tool("python3"))
        .env("PYTHONPATH", repo().join("tests/support"))
        .arg("-c")
        .arg(ARCHIVES)
        .arg(&out)
        .arg(case)
        .arg(outside)
        .status()
        .unwrap();
    assert!(status.success(), "{case}");
    out
}

#[test]
fn verify_refuses_exactly_what_restore_refuses() {
    let env = Env::new("");
    let outside = env.path("outside");
    fs::create_dir_all(&outside).unwrap();
    let refused = [
        "dotdot",
        "absolute",
        "symlink-then-file",
        "symlink-over-dir",
        "hardlink-out",
        "hardlink-in",
        "char-device",
        "block-device",
        "fifo",
        "duplicate-entry",
        "duplicate-by-dot",
        "duplicate-index",
        "index-reordered",
        "dir-with-size",
        "file-without-hash",
        "index-not-a-file",
    ];
    for case in ["ok", "setuid"].iter().chain(&refused) {
        let archive = crafted(&env, case, &outside);
        let a = archive.to_str().unwrap();
        let verify = env.run(&["verify", a]);
        let target = env.path(&format!("target-{case}"));
        fs::create_dir_all(&target).unwrap();
        let t = target.to_str().unwrap();
        let restore = env.run(&["restore", a, "--target", t, "--yes", "--path", "/"]);
        let into = env.path(&format!("extract-{case}"));
        let extract = env.run(&["extract", a, into.to_str().unwrap()]);
        let shown = format!(
            "{case}: verify {} / restore {} / extract {}\n--- verify\n{}{}\n--- restore\n{}",
            verify.code(),
            restore.code(),
            extract.code(),
            verify.stdout(),
            verify.stderr(),
            restore.stderr()
        );
        let want = if refused.contains(case) { 6 } else { 0 };
        assert_eq!(
            (verify.code(), restore.code(), extract.code()),
            (want, want, want),
            "{shown}"
        );
        assert_eq!(fs::read_dir(&outside).unwrap().count(), 0, "{shown}");
    }
}

// ------------------------------------------------------------------------------------------------
// the lock file

#[test]
fn a_lock_file_that_is_a_symlink_or_not_a_regular_file_of_the_callers_is_refused() {
    let mut env = Env::new("pve-node");
    let victim = env.path("victim.conf");
    fs::write(&victim, "precious\n").unwrap();
    let lock = env.path("links/proxkeep.lock");
    fs::create_dir_all(lock.parent().unwrap()).unwrap();
    symlink(&victim, &lock).unwrap();
    let others = env.path("others.lock");
    fs::write(&others, "").unwrap();
    sh_ok(&format!("chown 65534:65534 '{}'", others.display()));
    let dir = env.path("dir.lock");
    fs::create_dir_all(&dir).unwrap();
    let fifo = env.path("fifo.lock");
    sh_ok(&format!("mkfifo '{}'", fifo.display()));
    let linked = env.path("linked.lock");
    fs::write(&linked, "").unwrap();
    fs::hard_link(&linked, env.path("second-name")).unwrap();
    for (path, why) in [
        (&lock, "it is a symlink"),
        (&others, "owned by uid 65534"),
        (&dir, "it is a directory"),
        (&fifo, "not a regular file"),
        (&linked, "2 hard links"),
    ] {
        // write_config puts its own lock_file first: replace it.
        env.write_config("");
        let text = fs::read_to_string(&env.config).unwrap();
        let text = text.replace(
            &env.lock_file().display().to_string(),
            &path.display().to_string(),
        );
        fs::write(&env.config, text).unwrap();
        for args in [&["backup"][..], &["--json", "check"]] {
            let r = env.run(args);
            let shown = format!("{args:?} {}: {}{}", path.display(), r.stdout(), r.stderr());
            assert_eq!(r.code(), 4, "{shown}");
            let said = format!("{}{}", r.stdout(), r.stderr());
            assert!(
                said.contains(&path.display().to_string()) && said.contains(why),
                "{shown}"
            );
        }
        assert!(env.archives().is_empty());
    }
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    assert!(
        fs::symlink_metadata(&lock)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(fs::metadata(&others).unwrap().len(), 0);
    assert_eq!(fs::metadata(&others).unwrap().uid(), 65534);
    // The lock file proxkeep creates itself: 0600, and it is usable.
    env.write_config("");
    env.run(&["backup"]).expect(0);
    let mode = fs::metadata(env.lock_file()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // restore takes the same lock, with the same rules.
    fs::remove_file(env.lock_file()).unwrap();
    symlink(&victim, env.lock_file()).unwrap();
    let target = env.path("target");
    fs::create_dir_all(&target).unwrap();
    let t = target.to_str().unwrap();
    let r = env.run(&["restore", "latest", "--target", t, "--yes", "--only", "ssh"]);
    r.expect(4);
    assert!(r.stderr().contains("it is a symlink"), "{}", r.stderr());
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious\n");
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
}

#[test]
fn every_lock_held_message_names_the_holder_pid() {
    let mut env = Env::new("");
    fs::create_dir_all(env.root.join("srv/small")).unwrap();
    for i in 0..20 {
        fs::write(env.root.join(format!("srv/small/f{i}")), format!("{i}\n")).unwrap();
    }
    env.write_config("[collect]\nextra_paths = [\"/srv/small\"]\n");
    let runs: Vec<Child> = (0..20)
        .map(|_| {
            env.cmd()
                .arg("backup")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let pids: Vec<u32> = runs.iter().map(Child::id).collect();
    let mut held = 0;
    for child in runs {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        match out.status.code() {
            Some(0) => {}
            Some(5) => {
                held += 1;
                let pid = err
                    .split("pid=")
                    .nth(1)
                    .and_then(|r| r.split_whitespace().next())
                    .and_then(|p| p.parse::<u32>().ok());
                assert!(
                    pid.is_some_and(|p| pids.contains(&p)),
                    "a lock held message without the holder's pid: {err}"
                );
            }
            other => panic!("exit {other:?}: {err}"),
        }
    }
    assert!(
        held > 0,
        "no run found the lock held: the test proves nothing"
    );
}
