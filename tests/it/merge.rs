//! Restoring onto a new install (issue 14, "fstab and accounts merge"): a backup of a used host
//! (tests/fixtures/merge/old, its `blkid` output from a stub) restored into a fresh install's tree
//! (tests/fixtures/merge/new, its devices from `PROXKEEP_BLKID_FILE`). The real `visudo` checks the
//! sudoers files; `blkid`, `lsblk`, `findmnt` and `lvm` are stand-ins (stubs printing fixture output).

use crate::util::*;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub fn fixture(rel: &str) -> PathBuf {
    repo().join("tests/fixtures/merge").join(rel)
}

/// Modes and owners as on a Debian host (git keeps only 644/755): shadow files 0640 root:shadow (GID 42,
/// fixed by base-passwd), sudoers 0440.
pub fn host_modes(root: &Path) {
    for (rel, mode, gid) in [
        ("etc/shadow", 0o640, 42),
        ("etc/gshadow", 0o640, 42),
        ("etc/sudoers", 0o440, 0),
    ] {
        let p = root.join(rel);
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
        std::os::unix::fs::chown(&p, Some(0), Some(gid)).unwrap();
    }
    for e in fs::read_dir(root.join("etc/sudoers.d")).unwrap() {
        fs::set_permissions(e.unwrap().path(), fs::Permissions::from_mode(0o440)).unwrap();
    }
}

/// Every category but the two this test is about: no other command runs.
const SKIP: &str = "\"pve-cluster\", \"corosync\", \"pve-host\", \"ceph\", \"pbs-config\", \"network\", \"zfs\", \
                    \"boot\", \"apt\", \"ssh\", \"cron\", \"systemd\", \"ssl\", \"firewall\", \"sysctl\", \"mail\", \
                    \"proxkeep\", \"root-home\", \"local-scripts\", \"inventory\"";

/// The old host's backup, and a fresh install's tree to restore into.
fn setup() -> (Env, PathBuf, PathBuf) {
    let mut env = Env::new("merge/old");
    host_modes(&env.root);
    // The CIFS mount's credentials file (fstab names it; backup collects it).
    fs::create_dir_all(env.root.join("etc/samba")).unwrap();
    fs::write(
        env.root.join("etc/samba/nas.cred"),
        "username=pve\npassword=FIXTURE-not-a-secret\n",
    )
    .unwrap();
    env.stub(
        "blkid",
        &format!("cat '{}'", fixture("old-blkid.txt").display()),
    );
    for stub in ["lsblk", "findmnt", "lvm"] {
        env.stub(stub, "echo '{}'");
    }
    env.write_config(&format!(
        "[collect]\nskip_categories = [{SKIP}]\n[commands]\nrun = \"always\"\n"
    ));
    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    let target = env.path("new");
    sh_ok(&format!(
        "cp -a '{}' '{}'",
        fixture("new").display(),
        target.display()
    ));
    host_modes(&target);
    (env, archive, target)
}

fn restore(env: &Env, archive: &Path, target: &Path, extra: &[&str]) -> Run {
    let mut cmd = env.cmd();
    cmd.env("PROXKEEP_BLKID_FILE", fixture("new-blkid.txt"));
    cmd.args([
        "restore",
        archive.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
    ]);
    Run(cmd.args(extra).output().unwrap())
}

/// No password hash of either side, nor any part of one, in `text`.
#[track_caller]
fn no_hashes(text: &str) {
    for h in ["$y$", "$6$", "FAKE", "SALT"] {
        assert!(
            !text.contains(h),
            "a password hash ({h}) was printed:\n{text}"
        );
    }
}

const MERGED_FSTAB: &str = "\
# <file system> <mount point> <type> <options> <dump> <pass>
/dev/pve/root / ext4 errors=remount-ro 0 1
UUID=E4F0-91AC /boot/efi vfat defaults 0 1
/dev/pve/swap none swap sw 0 0
proc /proc proc defaults 0 0
# Carried over from the backup by proxkeep restore (nofail added).
# data disk (WD Red 4 TB): ISO images and the \"data\" dir storage
UUID=c6f1d0a4-5e2b-4c3d-9a8f-7e6d5c4b3a21\t/mnt/data\text4\tdefaults,noatime,nofail\t0\t2
//nas.lan/pve-iso /mnt/nas-iso cifs credentials=/etc/samba/nas.cred,vers=3.0,uid=0,nofail 0 0
nas.lan:/export/vzdump /mnt/nas-vzdump nfs4 rw,hard,_netdev,nofail 0 0
/mnt/data/templates /var/lib/vz/template none bind,nofail 0 0
";

#[test]
fn a_used_host_restored_onto_a_fresh_install_merges_fstab_and_accounts_and_checks_sudoers() {
    let (env, archive, target) = setup();
    let before = tree_hash_of(&target);

    // The plan: held diffs against the merged content, and what was left out and why.
    let r = restore(&env, &archive, &target, &["--dry-run"]);
    r.expect(0);
    let out = r.stdout();
    no_hashes(&(out.clone() + &r.stderr()));
    assert_eq!(
        tree_hash_of(&target),
        before,
        "a dry run changed the target"
    );
    for expected in [
        // fstab: the diff adds the carried mounts to the new install's own.
        "--- /etc/fstab (target)",
        "+UUID=c6f1d0a4-5e2b-4c3d-9a8f-7e6d5c4b3a21\t/mnt/data\text4\tdefaults,noatime,nofail\t0\t2",
        "+/mnt/data/templates /var/lib/vz/template none bind,nofail 0 0",
        "fstab: /mnt/data (/dev/sdb1): /dev/sdb1 → UUID=c6f1d0a4-5e2b-4c3d-9a8f-7e6d5c4b3a21",
        "fstab: /mnt/usb (LABEL=offsite-usb) left out: no device with LABEL=offsite-usb on this host",
        "fstab: /mnt/scratch (UUID=0d9b7c66-2f4e-4b8a-9d55-6c1e0e7a3f10) left out: no device with UUID=",
        // accounts: conflicts named, the rest added; shadow's diff masks the hashes.
        "accounts: user admin (UID 1000) left out: UID 1000 is localadmin on this host",
        "accounts: user localadmin (UID 1001 in the archive) left out: this host has localadmin as UID 1000",
        "accounts: group admin (GID 1000) left out: GID 1000 is localadmin on this host",
        "users zabbix; groups zabbix",
        "+alice:x:1002:1002:Alice Example,,,:/home/alice:/bin/bash",
        "+alice:<hash>:19702:0:99999:7:::",
        "+bob:!<hash>:19850:0:99999:7:::",
        "-sudo:x:27:localadmin",
        "+sudo:x:27:localadmin,alice",
        "+pve-admins:x:1100:alice,bob",
        "/etc/passwd: merged: this host's accounts kept as they are; users added: alice, bob, pbs-sync",
        // sudoers: the broken file is left out, with visudo's own words.
        "sudoers: /etc/sudoers.d/pbs-sync left out: visudo rejects it: /etc/sudoers.d/pbs-sync:2:",
        "syntax error",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
    assert!(
        !out.contains("proxkeep-sudoers."),
        "visudo's temp file name leaked:\n{out}"
    );

    // The same in --json, hashes masked there too.
    let r = restore(&env, &archive, &target, &["--dry-run", "--json"]);
    r.expect(0);
    no_hashes(&r.stdout());
    let notes = r.json()["notes"].clone();
    let notes: Vec<&str> = notes
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes.iter().any(|n| n.starts_with("fstab: /mnt/usb")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.starts_with("sudoers: /etc/sudoers.d/pbs-sync")),
        "{notes:?}"
    );

    // Without naming them, the held files stay as they are (sudoers is not held: written once checked).
    let r = restore(&env, &archive, &target, &["--yes"]);
    r.expect(0);
    no_hashes(&(r.stdout() + &r.stderr()));
    for f in ["fstab", "passwd", "group", "shadow", "gshadow"] {
        assert_eq!(
            fs::read(target.join("etc").join(f)).unwrap(),
            fs::read(fixture("new/etc").join(f)).unwrap(),
            "/etc/{f} was written without being named"
        );
    }

    // Named: the merged files are written.
    let r = restore(
        &env,
        &archive,
        &target,
        &["--only", "storage-stack,accounts", "--yes"],
    );
    r.expect(0);
    no_hashes(&(r.stdout() + &r.stderr()));
    assert_eq!(
        fs::read_to_string(target.join("etc/fstab")).unwrap(),
        MERGED_FSTAB
    );
    let read = |f: &str| fs::read_to_string(target.join("etc").join(f)).unwrap();
    let new = |f: &str| fs::read_to_string(fixture("new/etc").join(f)).unwrap();
    assert_eq!(
        read("passwd").strip_prefix(&new("passwd")).unwrap(),
        "alice:x:1002:1002:Alice Example,,,:/home/alice:/bin/bash\n\
         bob:x:1003:1003:Bob Example,,,:/home/bob:/bin/bash\n\
         pbs-sync:x:1004:34:PBS pull sync:/var/lib/pbs-sync:/bin/sh\n"
    );
    // The new install's root password stays; the added users bring theirs.
    let shadow = read("shadow");
    assert!(shadow.starts_with(&new("shadow")), "{shadow}");
    assert!(
        shadow.contains("\nalice:$y$j9T$FIXTUREaliceSALT$") && !shadow.contains("FIXTUREoldroot")
    );
    let group = read("group");
    for line in [
        "sudo:x:27:localadmin,alice",
        "users:x:100:localadmin,alice,bob",
        "pve-admins:x:1100:alice,bob",
    ] {
        assert!(group.lines().any(|l| l == line), "{line} in\n{group}");
    }
    assert!(
        read("gshadow")
            .lines()
            .any(|l| l == "pve-admins:!:alice:alice,bob")
    );
    for f in ["shadow", "gshadow"] {
        let md = fs::metadata(target.join("etc").join(f)).unwrap();
        assert_eq!(
            (md.mode() & 0o7777, md.uid(), md.gid()),
            (0o640, 0, 42),
            "/etc/{f}"
        );
    }
    // sudoers: the accepted files as the archive has them; the rejected one disabled, and visudo accepts that.
    assert_eq!(
        read("sudoers"),
        fs::read_to_string(env.root.join("etc/sudoers")).unwrap()
    );
    assert_eq!(
        read("sudoers.d/pve-admins"),
        fs::read_to_string(env.root.join("etc/sudoers.d/pve-admins")).unwrap()
    );
    let disabled = read("sudoers.d/pbs-sync");
    assert!(
        disabled.starts_with("# proxkeep restore: this file from the backup is disabled"),
        "{disabled}"
    );
    assert!(disabled.lines().all(|l| l.starts_with('#')), "{disabled}");
    sh_ok(&format!(
        "{} -c -f '{}'",
        tool("visudo"),
        target.join("etc/sudoers.d/pbs-sync").display()
    ));

    // A second restore finds nothing left to merge.
    let r = restore(
        &env,
        &archive,
        &target,
        &["--only", "storage-stack,accounts", "--dry-run", "--json"],
    );
    r.expect(0);
    let steps = r.json()["steps"].clone();
    let writes: Vec<&serde_json::Value> = steps
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["action"] != "same")
        .collect();
    assert!(writes.is_empty(), "{writes:?}");
}

#[test]
fn without_a_device_list_no_disk_is_carried_and_what_cannot_be_merged_refuses() {
    let (env, archive, target) = setup();
    // blkid fails on this machine (the stub stands in): network and bind mounts only.
    env.stub("blkid", "echo 'blkid: cannot open /run/blkid' >&2; exit 4");
    let r = env.run(&[
        "restore",
        archive.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
        "--only",
        "storage-stack",
        "--yes",
    ]);
    r.expect(0);
    let out = r.stdout();
    assert!(
        out.contains("fstab: cannot list this host's block devices: blkid: exit 4"),
        "{out}"
    );
    assert!(
        out.contains(
            "fstab: /mnt/data (/dev/sdb1) left out: this host's block devices are unknown"
        ),
        "{out}"
    );
    let fstab = fs::read_to_string(target.join("etc/fstab")).unwrap();
    let carried: Vec<&str> = fstab
        .lines()
        .skip(6)
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        carried,
        ["/mnt/nas-iso", "/mnt/nas-vzdump", "/var/lib/vz/template"],
        "{fstab}"
    );

    // A list that cannot be read is a usage error: nothing is written.
    let mut cmd = env.cmd();
    cmd.env("PROXKEEP_BLKID_FILE", env.path("nope.txt"));
    cmd.args([
        "restore",
        archive.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
        "--dry-run",
    ]);
    let r = Run(cmd.output().unwrap());
    r.expect(2);
    assert!(
        r.stderr().contains("PROXKEEP_BLKID_FILE="),
        "{}",
        r.stderr()
    );

    // ... but only for a restore that writes the fstab: one of the network files needs no device list (and
    // runs neither blkid nor visudo).
    let mut cmd = env.cmd();
    cmd.env("PROXKEEP_BLKID_FILE", env.path("nope.txt"));
    cmd.args(["restore", archive.to_str().unwrap(), "--target"]);
    cmd.args([target.to_str().unwrap(), "--only", "network", "--dry-run"]);
    let r = Run(cmd.output().unwrap());
    r.expect(0);
    assert!(!r.stdout().contains("fstab"), "{}", r.stdout());

    // A passwd that is not UTF-8 is not merged: a run that would write the accounts refuses, naming it.
    fs::write(
        target.join("etc/passwd"),
        b"root:x:0:0:r\xf6\xf6t:/root:/bin/bash\n",
    )
    .unwrap();
    let r = restore(&env, &archive, &target, &["--only", "accounts", "--yes"]);
    r.expect(2);
    assert!(
        r.stderr().contains("/etc/passwd is not UTF-8 text"),
        "{}",
        r.stderr()
    );
    assert_eq!(
        fs::read(target.join("etc/passwd")).unwrap(),
        b"root:x:0:0:r\xf6\xf6t:/root:/bin/bash\n"
    );
    assert_eq!(
        fs::read(target.join("etc/shadow")).unwrap(),
        fs::read(fixture("new/etc/shadow")).unwrap()
    );
}

fn tree_hash_of(dir: &Path) -> String {
    sh_ok(&format!(
        "cd '{}' && find . -printf '%p %m %U %G %s\\n' | sort && find . -type f -exec sha256sum {{}} + | sort",
        dir.display()
    ))
}
