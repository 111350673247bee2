//! A review of the restore rewrites (issue 14) the way a rebuild night meets them: node rename and the
//! fstab/accounts/sudoers merges in one restore, its undo, a second run, a refused run, and files the
//! rewriters cannot read.

use crate::merge::{fixture, host_modes};
use crate::util::*;
use std::fs;
use std::path::{Path, PathBuf};

/// Every entry under `dir`: name, mode, owner, size, then every file's sha256.
fn tree_bytes(dir: &Path) -> String {
    sh_ok(&format!(
        "cd '{}' && find . -printf '%p %y %m %U %G %s %l\\n' | sort && find . -type f -exec sha256sum {{}} + | sort",
        dir.display()
    ))
}

/// A PVE node that is also the used host of tests/fixtures/merge/old (fstab, accounts, sudoers), backed up.
fn used_node() -> (Env, PathBuf) {
    let env = Env::new("pve-node");
    sh_ok(&format!(
        "cp -a '{}/.' '{}'",
        fixture("old/etc").display(),
        env.root.join("etc").display()
    ));
    host_modes(&env.root);
    make_config_db(&env.root);
    fix_mtimes(&env.root);
    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    (env, archive)
}

/// A fresh install (tests/fixtures/merge/new) named pve.
fn fresh(env: &Env, name: &str) -> PathBuf {
    let t = env.path(name);
    sh_ok(&format!(
        "cp -a '{}' '{}'",
        fixture("new").display(),
        t.display()
    ));
    host_modes(&t);
    fs::write(t.join("etc/hostname"), "pve\n").unwrap();
    fs::write(
        t.join("etc/hosts"),
        "127.0.0.1 localhost\n10.1.1.9 pve.lan pve\n",
    )
    .unwrap();
    t
}

fn restore(env: &Env, archive: &Path, target: &Path, extra: &[&str]) -> Run {
    let mut cmd = env.cmd();
    cmd.env("PROXKEEP_BLKID_FILE", fixture("new-blkid.txt"));
    cmd.args(["restore", archive.to_str().unwrap(), "--target"]);
    cmd.arg(target);
    Run(cmd.args(extra).output().unwrap())
}

fn safety_archives(env: &Env) -> Vec<PathBuf> {
    let all = env.archives().into_iter();
    all.filter(|p| p.to_string_lossy().contains("-restore-safety-"))
        .collect()
}

/// No password hash of either side in `text` (the fixtures' hashes hold FIXTURE).
#[track_caller]
fn no_secrets(text: &str) {
    for s in ["$y$", "$6$", "FIXTURE"] {
        assert!(!text.contains(s), "{s} printed:\n{text}");
    }
}

const SELECTED: &str = "storage-stack,accounts,network,pve-cluster,corosync";

#[test]
fn rename_and_merges_in_one_restore_undo_exactly_and_a_second_run_changes_nothing() {
    let (env, archive) = used_node();
    let target = fresh(&env, "new");
    let before = tree_bytes(&target);
    let map = ["--map-node", "due=nuovo", "--only", SELECTED];

    let r = restore(
        &env,
        &archive,
        &target,
        &[&map[..], &["--yes", "--json"]].concat(),
    );
    r.expect(0);
    no_secrets(&(r.stdout() + &r.stderr()));
    let doc = r.json();
    let rewritten: Vec<&str> = doc["plan"]["rewritten"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    for p in [
        "/etc/pve/corosync.conf",
        "/etc/hosts",
        "/etc/fstab",
        "/etc/shadow",
    ] {
        assert!(rewritten.contains(&p), "{p} not in {rewritten:?}");
    }
    let read = |rel: &str| fs::read_to_string(target.join(rel)).unwrap();
    assert_eq!(read("etc/hostname"), "nuovo\n");
    assert!(read("etc/passwd").contains("\nalice:x:1002:"));
    assert!(read("etc/fstab").contains("/mnt/nas-iso"));
    assert!(read("etc/fstab").starts_with(&fs::read_to_string(fixture("new/etc/fstab")).unwrap()));
    for copy in ["etc/pve/corosync.conf", "etc/corosync/corosync.conf"] {
        let c = read(copy);
        assert!(
            c.contains("name: nuovo") && c.contains("config_version: 5"),
            "{c}"
        );
    }
    let safety = safety_archives(&env);
    assert_eq!(safety.len(), 1);
    let after_first = tree_bytes(&target);

    // The same restore again: every step `same`, nothing merged or bumped twice, nothing written.
    let r = restore(
        &env,
        &archive,
        &target,
        &[&map[..], &["--dry-run", "--json"]].concat(),
    );
    let doc = r.expect(0).json();
    let steps = doc["steps"].as_array().unwrap();
    let other: Vec<_> = steps.iter().filter(|s| s["action"] != "same").collect();
    assert!(other.is_empty(), "{other:?}");
    let r = restore(&env, &archive, &target, &[&map[..], &["--yes"]].concat());
    assert!(
        r.expect(0).stdout().contains("nothing to do"),
        "{}",
        r.stdout()
    );
    assert_eq!(tree_bytes(&target), after_first);
    assert_eq!(safety_archives(&env), safety);

    // A run a merge blocks refuses with --yes: exit 2, not a byte written, no safety archive.
    let passwd = target.join("etc/passwd");
    let good = fs::read(&passwd).unwrap();
    fs::write(&passwd, b"root:x:0:0:r\xf6\xf6t:/root:/bin/bash\n").unwrap();
    let blocked = tree_bytes(&target);
    let r = restore(&env, &archive, &target, &["--only", "accounts", "--yes"]);
    r.expect(2);
    assert!(
        r.stderr().contains("/etc/passwd is not UTF-8"),
        "{}",
        r.stderr()
    );
    assert_eq!(tree_bytes(&target), blocked);
    assert_eq!(safety_archives(&env), safety);
    fs::write(&passwd, good).unwrap();

    // The undo puts back the fresh install byte for byte, modes and owners too, without merging or renaming
    // what it puts back (its own plan rewrites nothing).
    let r = restore(&env, &safety[0], &target, &["--dry-run", "--json"]);
    let doc = r.expect(0).json();
    assert!(
        doc.get("rewritten").is_none() && doc.get("notes").is_none(),
        "{doc}"
    );
    restore(&env, &safety[0], &target, &["--yes"]).expect(0);
    assert_eq!(tree_bytes(&target), before);
}

/// `n` bytes of comment lines, enough to take a file over the 256 KiB a rewriter reads.
fn padding(n: usize) -> String {
    "# padding line of a big file\n".repeat(n / 29 + 1)
}

#[test]
fn a_file_too_large_to_rename_in_is_named_not_restored_silently_unrenamed() {
    let env = Env::new("pve-node");
    for rel in ["etc/hosts", "etc/corosync/corosync.conf"] {
        let p = env.root.join(rel);
        let text = fs::read_to_string(&p).unwrap() + &padding(300 << 10);
        fs::write(&p, text).unwrap();
    }
    fix_mtimes(&env.root);
    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    let target = env.path("t");
    fs::create_dir_all(&target).unwrap();
    let r = restore(
        &env,
        &archive,
        &target,
        &[
            "--map-node",
            "due=nuovo",
            "--only",
            "network,corosync,pve-cluster",
            "--dry-run",
            "--json",
        ],
    );
    let doc = r.expect(0).json();
    let notes: Vec<&str> = doc["notes"]
        .as_array()
        .map(|n| n.iter().map(|n| n.as_str().unwrap()).collect())
        .unwrap_or_default();
    for f in ["/etc/hosts", "/etc/corosync/corosync.conf"] {
        assert!(
            notes
                .iter()
                .any(|n| n.starts_with(&format!("{f} is restored as it is"))
                    && n.contains("over 256 KiB")
                    && n.contains("due")
                    && n.contains("nuovo")),
            "no note names {f}: {notes:?}"
        );
    }
    // The small copy is renamed as ever.
    let rewritten = doc["rewritten"].to_string();
    assert!(rewritten.contains("/etc/pve/corosync.conf"), "{rewritten}");
    assert!(
        !rewritten.contains("/etc/corosync/corosync.conf"),
        "{rewritten}"
    );
}

/// The plan's notes of one `--dry-run --json` run.
fn notes_of(env: &Env, archive: &Path, target: &Path, only: &str) -> Vec<String> {
    let r = restore(
        env,
        archive,
        target,
        &["--only", only, "--dry-run", "--json"],
    );
    let doc = r.expect(0).json();
    let notes = doc["notes"].as_array().cloned().unwrap_or_default();
    notes
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_merge_note_is_shown_only_when_the_run_restores_that_file() {
    let (env, archive) = used_node();
    let target = fresh(&env, "new");
    let about = |notes: &[String], what: &str| notes.iter().any(|n| n.starts_with(what));
    // Neither fstab nor the accounts are restored: nothing is said about them (nor that the broken sudoers
    // file is "written disabled": it is not written).
    let notes = notes_of(&env, &archive, &target, "network");
    for what in ["fstab:", "accounts:", "sudoers:"] {
        assert!(!about(&notes, what), "{what} in {notes:?}");
    }
    let notes = notes_of(&env, &archive, &target, "storage-stack");
    assert!(about(&notes, "fstab:"), "{notes:?}");
    assert!(
        !about(&notes, "accounts:") && !about(&notes, "sudoers:"),
        "{notes:?}"
    );
    let notes = notes_of(&env, &archive, &target, "accounts");
    assert!(
        about(&notes, "accounts:") && about(&notes, "sudoers:"),
        "{notes:?}"
    );
    assert!(!about(&notes, "fstab:"), "{notes:?}");
}

#[test]
fn a_rename_after_a_plain_restore_is_refused_while_the_old_node_dir_still_holds_its_vmids() {
    // The night's first attempt restored without --map-node: the target has nodes/due with due's guests.
    let env = Env::new("pve-node");
    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    let target = env.path("t");
    fs::create_dir_all(&target).unwrap();
    restore(&env, &archive, &target, &["--yes"]).expect(0);
    let before = tree_bytes(&target);
    // Redone with the rename, due's guests would be under nodes/nuovo and still under nodes/due, which
    // nothing removes: the same VMID on two nodes.
    let r = restore(
        &env,
        &archive,
        &target,
        &["--map-node", "due=nuovo", "--yes"],
    );
    r.expect(2);
    let err = r.stderr();
    assert!(
        err.contains(
            "VMID 100: /etc/pve/nodes/due/qemu-server/100.conf (restored as /etc/pve/nodes/nuovo/qemu-server/100.conf) \
             and /etc/pve/nodes/due/qemu-server/100.conf (on the target)"
        ),
        "{err}"
    );
    assert_eq!(tree_bytes(&target), before);
}
