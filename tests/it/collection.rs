//! Collection on a real host (issue 12): excludes, the size guard.

use crate::util::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn put(root: &Path, rel: &str, len: usize) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, vec![b'x'; len]).unwrap();
}

/// A root home as on a developer's Debian host: config files beside caches and toolchains.
fn root_home(root: &Path) {
    put(root, "root/.bashrc", 10);
    put(root, "root/.config/tool/tool.conf", 20);
    put(root, "root/.cache/pip/a", 1000);
    put(root, "root/.cache/pip/b", 1000);
    put(root, "root/.cargo/registry/cache/c", 3000);
    put(root, "root/.old/notes.txt", 500);
    put(root, "root/.vimrc", 30);
    put(root, "etc/app/keep.conf", 5);
    put(root, "etc/app/tmp/drop.conf", 7);
}

fn stored(archive: &Path) -> Vec<String> {
    let index = index_of(archive);
    let entries = index["entries"].as_array().unwrap();
    entries
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect()
}

/// A JSON file of the archive, read with GNU tar.
fn json_in(archive: &Path, path: &str) -> serde_json::Value {
    let out = std::process::Command::new(tool("tar"))
        .arg("-xOf")
        .arg(archive)
        .arg(path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tar -xOf {path}: {err}");
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `keep` are all stored; no stored path contains one of `gone`.
fn stored_exactly(paths: &[String], keep: &[&str], gone: &[&str]) {
    for p in keep {
        assert!(paths.iter().any(|x| x == p), "{p} not stored: {paths:?}");
    }
    for g in gone {
        let bad: Vec<_> = paths.iter().filter(|x| x.contains(g)).collect();
        assert!(bad.is_empty(), "{g}: {bad:?}");
    }
}

/// The excluded entry of `from` (a category or "config") for `exclude`: (entries, bytes).
fn removed(report: &serde_json::Value, from: &str, exclude: &str) -> (u64, u64) {
    let found = report["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["from"] == from && x["exclude"] == exclude);
    let x = found.unwrap_or_else(|| panic!("no {from} {exclude} in {}", report["excluded"]));
    (x["entries"].as_u64().unwrap(), x["bytes"].as_u64().unwrap())
}

#[test]
fn excludes_name_paths_or_globs_from_catalog_and_config() {
    let mut env = Env::new("");
    root_home(&env.root);
    env.write_config(
        "[collect]\nextra_paths = [\"/etc/app\"]\nexclude = [\"/root/.old\", \"/etc/app/tmp\", \"/root/**/*.conf\", \"/root/.none\"]\n",
    );

    let dry = env.run(&["backup", "--dry-run", "--json"]);
    let dry = dry.expect(0).json();
    // The catalog's own excludes name directories: everything under them goes, counted.
    assert_eq!(removed(&dry, "root-home", "/root/.cache"), (4, 2000));
    assert_eq!(removed(&dry, "root-home", "/root/.cargo"), (4, 3000));
    // Config excludes: a directory path, a glob.
    assert_eq!(removed(&dry, "config", "/root/.old"), (2, 500));
    assert_eq!(removed(&dry, "config", "/etc/app/tmp"), (2, 7));
    assert_eq!(removed(&dry, "config", "/root/**/*.conf"), (1, 20));
    assert_eq!(removed(&dry, "config", "/root/.none"), (0, 0));
    let home = dry["categories"].as_array().unwrap().iter();
    let home = home.clone().find(|c| c["category"] == "root-home").unwrap();
    assert_eq!(home["bytes"], 40, "{home}");

    let text = env.run(&["backup", "--dry-run"]).expect(0).stdout();
    assert!(
        text.contains("excluded /root/.cache (root-home): 4 entries, 2.0 KiB"),
        "{text}"
    );

    env.run(&["backup"]).expect(0);
    let paths = stored(&env.only_archive());
    let keep = [
        "root/.bashrc",
        "root/.vimrc",
        "root/.config/tool",
        "etc/app/keep.conf",
    ];
    let gone = [
        "root/.cache",
        "root/.cargo",
        "root/.old",
        "etc/app/tmp",
        "tool.conf",
    ];
    stored_exactly(&paths, &keep, &gone);

    // catalog shows what each exclude removed, the same figures.
    let cat = env.run(&["catalog", "--json"]).expect(0).json();
    assert_eq!(removed(&cat, "root-home", "/root/.cache"), (4, 2000));
    assert_eq!(removed(&cat, "config", "/root/.old"), (2, 500));
    let text = env.run(&["catalog"]).expect(0).stdout();
    assert!(
        text.contains("exclude /root/.cache (removed 4 entries, 2.0 KiB)"),
        "{text}"
    );
    assert!(
        text.contains("exclude /root/.old (config; removed 2 entries, 500 B)"),
        "{text}"
    );
}

#[test]
fn size_guard_names_the_largest_directories_with_their_exclude_line() {
    let mut env = Env::new("");
    root_home(&env.root);
    put(&env.root, "root/.big/a", 300 << 10);
    put(&env.root, "root/.big/b", 300 << 10);
    put(&env.root, "root/.medium/x/y", 150 << 10);
    put(&env.root, "root/.medium/z", 1 << 10);
    env.write_config("[collect]\nmax_input_size = \"200KiB\"\n");

    // `check` warns, as --dry-run does (issue 12); only the backup refuses.
    let check = env.run(&["check"]);
    let text = check.expect(3).stdout();
    assert!(
        text.contains("! input size: 751.5 KiB to collect"),
        "{text}"
    );
    assert!(
        text.contains("above [collect] max_input_size (200.0 KiB)"),
        "{text}"
    );
    let big = text.find("/root/.big  600.0 KiB  exclude = [\"/root/.big\"]");
    // Descends into the directory that holds (nearly) all of its parent.
    let medium = text.find("/root/.medium/x  150.0 KiB  exclude = [\"/root/.medium/x\"]");
    assert!(big.unwrap() < medium.unwrap(), "{text}");

    // The dry run warns and shows the plan; the backup refuses before writing anything.
    let dry = env.run(&["backup", "--dry-run"]);
    let text = dry.expect(3).stdout();
    assert!(text.contains("warning: 751.5 KiB to collect"), "{text}");
    assert!(text.contains("exclude = [\"/root/.big\"]"), "{text}");
    assert!(text.contains("root-home"), "{text}");
    let json = env.run(&["backup", "--dry-run", "--json"]).expect(3).json();
    let warned = json["warnings"][0]["message"].as_str().unwrap();
    assert!(warned.contains("max_input_size"), "{json}");

    let run = env.run(&["backup"]);
    run.expect(4);
    let err = run.stderr();
    assert!(
        err.contains("/root/.big  600.0 KiB  exclude = [\"/root/.big\"]"),
        "{err}"
    );
    assert!(env.archives().is_empty());

    // Following the advice makes it fit.
    env.write_config(
        "[collect]\nmax_input_size = \"200KiB\"\nexclude = [\"/root/.big\", \"/root/.medium/x\"]\n",
    );
    env.run(&["check"]).expect(0);
    env.run(&["backup"]).expect(0);
    env.only_archive();
}

#[test]
fn size_guard_default_is_512_mib() {
    let env = Env::new("");
    let shown = env.run(&["config", "show", "--json"]).expect(0).json();
    assert_eq!(shown["collect"]["max_input_size"], "512MiB", "{shown}");
}

/// A sparse file of `len` bytes (a vendored binary, a big blob) with a marker at its start.
fn sparse(root: &Path, rel: &str, len: u64) {
    put(root, rel, 16);
    fs::OpenOptions::new()
        .write(true)
        .open(root.join(rel))
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn root_home_is_config_and_large_scripts_are_listed_not_stored() {
    let env = Env::new("");
    let r = &env.root;
    put(r, "root/.bashrc", 10);
    put(r, "root/.config/htop/htoprc", 10);
    put(r, "root/.local/bin/tool.sh", 10);
    put(r, "root/.local/lib/python3/site/big.py", 10);
    put(r, "root/.ansible/hosts", 10);
    sparse(r, "root/.ollama/models/blob", 17 << 20);
    put(r, "root/.ollama/id", 10);
    for junk in [
        "root/.cache/pip/x",
        "root/.vscode-server/bin/node",
        "root/.rustup/toolchains/x",
        "root/.npm/_cacache/x",
        "root/.local/share/Trash/files/x",
        "root/.bash_history",
        "root/.python_history",
    ] {
        put(r, junk, 10);
    }
    put(r, "home/alice/.ssh/authorized_keys", 10);
    put(r, "home/alice/notes.txt", 10);
    put(r, "usr/local/bin/backup.sh", 10);
    sparse(r, "usr/local/bin/vendored", 5 << 20);

    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    let paths = stored(&archive);
    let keep = [
        "root/.bashrc",
        "root/.config/htop/htoprc",
        "root/.local/bin/tool.sh",
        "root/.ansible/hosts",
        "home/alice/.ssh/authorized_keys",
        "usr/local/bin/backup.sh",
        "proxkeep/listed-files.json",
    ];
    let gone = [
        "root/.ollama",
        "root/.cache",
        "root/.vscode-server",
        "root/.rustup",
        "root/.npm",
        "root/.local/share/Trash",
        "root/.local/lib",
        "_history",
        "home/alice/notes.txt",
        "usr/local/bin/vendored",
    ];
    stored_exactly(&paths, &keep, &gone);
    // The vendored binary: path, size and SHA-256, not its bytes.
    let listed = json_in(&archive, "proxkeep/listed-files.json");
    assert_eq!(listed[0]["path"], "/usr/local/bin/vendored", "{listed}");
    assert_eq!(listed[0]["size"], 5 << 20);
    let sha = sha256_file(&r.join("usr/local/bin/vendored"));
    assert_eq!(listed[0]["sha256"], sha.as_str());
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    env.run(&["verify", archive.to_str().unwrap()]).expect(0);

    // catalog shows the default excludes and what was left out by size, with figures.
    let text = env.run(&["catalog"]).expect(0).stdout();
    for line in [
        "exclude /root/.vscode-server (removed 3 entries, 10 B)",
        "exclude /root/.*_history (removed 2 entries, 20 B)",
        "glob    /root/.* (a directory over 16.0 MiB left out)",
        "left out /root/.ollama (over 16.0 MiB) (4 entries, 17.0 MiB)",
        "path    /usr/local/bin (a file over 4.0 MiB listed, not stored)",
        "left out /usr/local/bin/vendored (listed with its SHA-256, not stored: over 4.0 MiB) (1 entries, 5.0 MiB)",
        "glob    /home/*/.ssh",
    ] {
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
    let dry = env.run(&["backup", "--dry-run", "--json"]).expect(0).json();
    assert_eq!(
        removed(&dry, "root-home", "/root/.ollama (over 16.0 MiB)"),
        (4, (17 << 20) + 10)
    );
}

#[test]
fn root_and_every_parent_of_a_collected_path_keep_their_metadata() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let env = Env::new("");
    let r = &env.root;
    put(r, "root/.bashrc", 10);
    put(r, "usr/local/bin/tool.sh", 10);
    for (dir, mode) in [("root", 0o700), ("usr/local", 0o750)] {
        fs::set_permissions(r.join(dir), fs::Permissions::from_mode(mode)).unwrap();
    }
    fix_mtimes(r);

    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    stored_exactly(&stored(&archive), &["root", "usr", "usr/local"], &[]);
    let target = env.path("target");
    fs::create_dir(&target).unwrap();
    let args = ["--path", "/", "--yes", "--no-safety-backup"];
    let (a, t) = (archive.to_str().unwrap(), target.to_str().unwrap());
    let mut cmd = vec!["restore", a, "--target", t];
    cmd.extend(args);
    env.run(&cmd).expect(0);
    for (dir, mode) in [("root", 0o700), ("usr", 0o755), ("usr/local", 0o750)] {
        let md = fs::symlink_metadata(target.join(dir)).unwrap();
        assert_eq!(md.mode() & 0o7777, mode, "{dir}");
        assert_eq!(md.mtime(), FIXTURE_MTIME, "{dir}");
    }
}

#[test]
fn catalog_gaps_are_collected() {
    let mut env = Env::new("gaps");
    // recipients_file outside /etc/proxkeep: collected because the config names it.
    let key = env.path("key.txt");
    let r = env.run(&["key", "generate", "--out", key.to_str().unwrap()]);
    let recipients = env.root.join("srv/keys/recipients.txt");
    fs::write(&recipients, r.expect(0).stdout()).unwrap();
    env.write_config(&format!(
        "[encryption]\nrecipients_file = \"{}\"\n",
        recipients.display()
    ));
    env.run(&["backup"]).expect(0);
    let plain = env.path("plain.tar.zst");
    let (a, p, k) = (
        env.only_archive(),
        plain.to_str().unwrap(),
        key.to_str().unwrap(),
    );
    env.run(&["decrypt", a.to_str().unwrap(), p, "-i", k])
        .expect(0);
    let keep = [
        "etc/proxkeep/proxkeep.toml",
        "srv/keys/recipients.txt",
        "etc/crypttab",
        "etc/keys/data.key",
        "etc/fstab",
        "etc/samba/nas.cred",
        "etc/iscsi/iscsid.conf",
        "var/lib/iscsi/nodes/iqn.2024-01.lan.nas:target1/10.0.0.5,3260,1/default",
        "etc/lvm/backup/pve",
        "etc/lvm/archive/pve_00006-1234567890.vg",
        "etc/auto.master",
        "etc/auto.nfs",
        "etc/multipath.conf",
        "etc/multipath/wwids",
        "etc/udev/rules.d/70-persistent-net.rules",
        "etc/systemd/network/10-lan0.link",
    ];
    stored_exactly(&stored(&plain), &keep, &["dev/urandom", "keyfile", "none"]);

    // passphrase_file is never collected, with a one-line warning why (exit 3).
    let pass = env.root.join("root/.proxkeep-passphrase");
    fs::set_permissions(&pass, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    env.write_config(&format!(
        "[encryption]\npassphrase_file = \"{}\"\n",
        pass.display()
    ));
    let dry = env.run(&["backup", "--dry-run", "--json"]).expect(0).json();
    let pass_rule = "/root/.proxkeep-passphrase";
    assert_eq!(removed(&dry, "passphrase_file", pass_rule), (1, 25));
    let run = env.run(&["backup"]);
    run.expect(3);
    let err = run.stderr();
    let warned: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("passphrase_file"))
        .collect();
    assert_eq!(warned.len(), 1, "{err}");
    assert!(warned[0].contains("not collected"), "{warned:?}");

    // The pmxcfs status files are left out on purpose, and catalog says so.
    let pve = Env::new("pve-node");
    let text = pve.run(&["catalog"]).expect(0).stdout();
    assert!(
        text.contains("exclude /etc/pve/.version (on purpose: pmxcfs writes it at run time"),
        "{text}"
    );
    assert!(text.contains("path    /etc/vzdump.conf"), "{text}");
    assert!(text.contains("named   in /etc/crypttab"), "{text}");
}

/// A /sys-like tree: a PCI NIC and a second one in a bond, the bond in a bridge, loopback.
pub(crate) fn fake_sys(root: &Path) {
    use std::os::unix::fs::symlink;
    let dev = root.join("sys/devices");
    let nic = |pci: &str, name: &str, mac: &str, driver: &str| {
        let d = dev.join(format!("pci0000:00/0000:00:1c.0/{pci}"));
        fs::create_dir_all(d.join("net").join(name)).unwrap();
        let drv = root.join("sys/bus/pci/drivers").join(driver);
        fs::create_dir_all(&drv).unwrap();
        symlink(
            format!("../../../../bus/pci/drivers/{driver}"),
            d.join("driver"),
        )
        .unwrap();
        let n = d.join("net").join(name);
        symlink(format!("../../../{pci}"), n.join("device")).unwrap();
        fs::write(n.join("address"), format!("{mac}\n")).unwrap();
        fs::write(n.join("addr_assign_type"), "0\n").unwrap();
        let link = format!("../../devices/pci0000:00/0000:00:1c.0/{pci}/net/{name}");
        symlink(link, root.join("sys/class/net").join(name)).unwrap();
        n
    };
    fs::create_dir_all(root.join("sys/class/net")).unwrap();
    let virt = |name: &str| {
        let n = dev.join("virtual/net").join(name);
        fs::create_dir_all(&n).unwrap();
        let link = format!("../../devices/virtual/net/{name}");
        symlink(link, root.join("sys/class/net").join(name)).unwrap();
        n
    };
    let eno1 = nic("0000:02:00.0", "eno1", "3c:ec:ef:00:00:01", "igb");
    let eno2 = nic("0000:02:00.1", "eno2", "3c:ec:ef:00:00:02", "igb");
    let bond0 = virt("bond0");
    let vmbr0 = virt("vmbr0");
    let lo = virt("lo");
    fs::write(lo.join("address"), "00:00:00:00:00:00\n").unwrap();
    // eno2 is a bond member: its address is the bond's, its permanent one is in bonding_slave.
    fs::write(eno2.join("address"), "3c:ec:ef:00:00:01\n").unwrap();
    fs::write(eno2.join("addr_assign_type"), "3\n").unwrap();
    fs::create_dir_all(eno2.join("bonding_slave")).unwrap();
    fs::write(
        eno2.join("bonding_slave/perm_hwaddr"),
        "3c:ec:ef:00:00:02\n",
    )
    .unwrap();
    for n in [&eno1, &eno2] {
        symlink("../../../../../virtual/net/bond0", n.join("master")).unwrap();
    }
    fs::create_dir_all(bond0.join("bonding")).unwrap();
    fs::write(bond0.join("bonding/slaves"), "eno1 eno2\n").unwrap();
    fs::write(bond0.join("address"), "3c:ec:ef:00:00:01\n").unwrap();
    fs::write(bond0.join("addr_assign_type"), "3\n").unwrap();
    symlink("../vmbr0", bond0.join("master")).unwrap();
    fs::create_dir_all(vmbr0.join("bridge")).unwrap();
    fs::create_dir_all(vmbr0.join("brif")).unwrap();
    symlink("../../bond0", vmbr0.join("brif/bond0")).unwrap();
    fs::write(vmbr0.join("address"), "3c:ec:ef:00:00:01\n").unwrap();
}

#[test]
fn nic_inventory_from_sys_class_net() {
    let env = Env::new("");
    put(&env.root, "etc/hostname", 4);
    fake_sys(&env.root);
    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    let nics = json_in(&archive, "proxkeep/commands/network/nics.json");
    let names: Vec<&str> = nics
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bond0", "eno1", "eno2", "vmbr0"], "{nics}");
    let eno2 = &nics[2];
    assert_eq!(eno2["kind"], "physical");
    assert_eq!(eno2["mac"], "3c:ec:ef:00:00:01");
    assert_eq!(eno2["permanent_mac"], "3c:ec:ef:00:00:02");
    assert_eq!(eno2["device_path"], "pci0000:00/0000:00:1c.0/0000:02:00.1");
    assert_eq!(eno2["id_path"], "pci-0000:02:00.1");
    assert_eq!(eno2["driver"], "igb");
    assert_eq!(eno2["master"], "bond0");
    assert_eq!(nics[1]["permanent_mac"], "3c:ec:ef:00:00:01");
    assert_eq!(nics[0]["kind"], "bond");
    assert_eq!(nics[0]["members"], serde_json::json!(["eno1", "eno2"]));
    assert_eq!(nics[0]["master"], "vmbr0");
    assert_eq!(nics[0]["permanent_mac"], serde_json::Value::Null);
    assert_eq!(nics[3]["kind"], "bridge");
    assert_eq!(nics[3]["members"], serde_json::json!(["bond0"]));
    env.run(&["verify", archive.to_str().unwrap()]).expect(0);
}

#[test]
fn an_empty_etc_pve_rebuilt_from_config_db_is_a_warning_with_the_reason() {
    let env = Env::new("pve-node");
    make_config_db(&env.root);
    fs::rename(env.root.join("etc/pve"), env.path("pve-away")).unwrap();
    fs::create_dir(env.root.join("etc/pve")).unwrap();
    let r = env.run(&["backup", "--json"]);
    let report = r.expect(3).json();
    assert_eq!(report["status"], "warning");
    let warnings = report["warnings"].as_array().unwrap();
    let pve = warnings.iter().find(|w| w["path"] == "/etc/pve");
    let message = pve.unwrap_or_else(|| panic!("{report}"))["message"]
        .as_str()
        .unwrap();
    assert!(message.contains("pmxcfs is not mounted"), "{message}");
    assert!(message.contains("rebuilt from config.db"), "{message}");
    // The archive says so too.
    let index = index_of(&env.only_archive());
    let stored = index["warnings"].as_array().unwrap();
    assert!(stored.iter().any(|w| w["path"] == "/etc/pve"), "{stored:?}");
}

/// Issue 12's bar: a real backup of the machine the tests run on (`--root /`, into a temp dir) stays under
/// `max_input_size` and warns about nothing but commands this machine cannot run (plain Debian in a container:
/// no pveversion, no systemd as PID 1).
#[test]
fn a_real_backup_of_this_machine_is_configuration_sized_and_clean() {
    let env = Env::new("");
    let r = Run(Command::new(bin())
        .args([
            "--config",
            &env.config.to_string_lossy(),
            "--root",
            "/",
            "--json",
            "backup",
        ])
        .env_remove("PROXKEEP_CONFIG")
        .output()
        .unwrap());
    let j = r.json();
    assert!(
        matches!(r.code(), 0 | 3),
        "exit {}: {}\n{}",
        r.code(),
        r.stdout(),
        r.stderr()
    );
    let max = 512u64 << 20;
    assert!(j["bytes"].as_u64().unwrap() < max, "{}", r.stdout());
    for w in j["warnings"].as_array().unwrap() {
        let m = w["message"].as_str().unwrap();
        assert!(
            m.starts_with("command `"),
            "a warning that is not a command's: {w}"
        );
    }
    let archive = PathBuf::from(j["archive"].as_str().unwrap());
    assert!(archive.starts_with(&env.backups), "{}", archive.display());
    env.run(&["verify", &archive.to_string_lossy()]).expect(0);
}
