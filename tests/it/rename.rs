//! `restore --map-node OLD=NEW`, end to end (issue 14): corosync.conf (both copies), /etc/hosts and
//! /etc/hostname, the certificate note, and VMIDs that would be on two nodes.

use crate::restore::{new_dir, restore};
use crate::util::*;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// What a corosync.conf says, read by a checker of its own (not proxkeep's code): every `node { }` of the
/// nodelist as its keys, and the totem section's keys.
#[derive(Debug, Default)]
struct Corosync {
    nodes: Vec<BTreeMap<String, String>>,
    totem: BTreeMap<String, String>,
}

fn parse_corosync(text: &str) -> Corosync {
    let mut conf = Corosync::default();
    let mut path: Vec<String> = Vec::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "}" {
            assert!(path.pop().is_some(), "unbalanced }} in:\n{text}");
            continue;
        }
        if let Some(section) = line.strip_suffix('{') {
            let section = section.trim().to_string();
            if path == ["nodelist"] && section == "node" {
                conf.nodes.push(BTreeMap::new());
            }
            path.push(section);
            continue;
        }
        let (k, v) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("not key: value: {raw:?}"));
        let (k, v) = (k.trim().to_string(), v.trim().to_string());
        match path.iter().map(String::as_str).collect::<Vec<_>>()[..] {
            ["nodelist", "node"] => {
                conf.nodes.last_mut().unwrap().insert(k, v);
            }
            ["totem"] => {
                conf.totem.insert(k, v);
            }
            _ => {}
        }
    }
    assert!(path.is_empty(), "unclosed sections {path:?}");
    conf
}

impl Corosync {
    fn node(&self, name: &str) -> Option<&BTreeMap<String, String>> {
        self.nodes.iter().find(|n| n["name"] == name)
    }
    fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.nodes.iter().map(|n| n["name"].as_str()).collect();
        v.sort();
        v
    }
    fn version(&self) -> u64 {
        self.totem["config_version"].parse().unwrap()
    }
}

const COPIES: [&str; 2] = ["etc/pve/corosync.conf", "etc/corosync/corosync.conf"];

/// A pve-node env, with `edit` applied to its root before the backup (config.db rebuilt after it).
fn backup_with(edit: impl FnOnce(&Path)) -> (Env, PathBuf) {
    let env = Env::new("pve-node");
    edit(&env.root);
    make_config_db(&env.root);
    fix_mtimes(&env.root);
    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    (env, archive)
}

/// Replace `from` by `to` in the file `rel` under `root`, which must contain it.
fn edit_file(root: &Path, rel: &str, from: &str, to: &str) {
    let p = root.join(rel);
    let text = fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{rel} has no {from:?}");
    fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

/// Restore with `--map-node due=nuovo` and `more`.
fn mapped(env: &Env, archive: &Path, target: &Path, more: &[&str]) -> Run {
    restore(
        env,
        archive,
        target,
        &[&["--map-node", "due=nuovo"], more].concat(),
    )
}

/// `archive` restored into a new target with `--map-node due=nuovo`.
fn renamed(env: &Env, archive: &Path) -> PathBuf {
    let target = new_dir(env, "target");
    mapped(env, archive, &target, &["--yes"]).expect(0);
    target
}

#[test]
fn map_node_rewrites_both_corosync_copies_and_bumps_config_version() {
    let (env, archive) = backup_with(|_| {});
    let original = fs::read_to_string(env.root.join(COPIES[0])).unwrap();
    let before = parse_corosync(&original);
    assert_eq!(before.version(), 4);
    // The archive's own node (due), and another member of its cluster (uno).
    for old in ["due", "uno"] {
        let target = new_dir(&env, old);
        let map = format!("{old}=nuovo");
        restore(&env, &archive, &target, &["--map-node", &map, "--yes"]).expect(0);
        for copy in COPIES {
            let text = fs::read_to_string(target.join(copy)).unwrap();
            let after = parse_corosync(&text);
            let mut names: Vec<&str> = ["uno", "due", "tre"]
                .map(|n| if n == old { "nuovo" } else { n })
                .to_vec();
            names.sort();
            assert_eq!(after.names(), names, "{copy}");
            assert_eq!(after.version(), 5, "{copy}");
            // The addresses are IPs: they stay; everything else of the block too.
            let mut want = before.node(old).unwrap().clone();
            want.insert("name".into(), "nuovo".into());
            assert_eq!(after.node("nuovo").unwrap(), &want, "{copy}");
            for other in ["uno", "due", "tre"].into_iter().filter(|n| *n != old) {
                assert_eq!(after.node(other), before.node(other), "{copy}");
            }
            // Byte for byte otherwise: exactly two lines differ.
            let changed: Vec<(&str, &str)> = original
                .lines()
                .zip(text.lines())
                .filter(|(a, b)| a != b)
                .collect();
            let name = format!("    name: {old}");
            let want = [
                (name.as_str(), "    name: nuovo"),
                ("  config_version: 4", "  config_version: 5"),
            ];
            assert_eq!(changed, want, "{copy}");
            assert_eq!(original.lines().count(), text.lines().count());
        }
        assert!(target.join("etc/pve/nodes/nuovo/qemu-server").is_dir());
        assert!(!target.join("etc/pve/nodes").join(old).exists());
    }

    // Without --map-node, both copies are the archive's bytes.
    let plain = new_dir(&env, "plain");
    restore(&env, &archive, &plain, &["--yes"]).expect(0);
    for copy in COPIES {
        assert_eq!(fs::read(plain.join(copy)).unwrap(), original.as_bytes());
    }
}

#[test]
fn a_ring_address_that_is_the_host_name_is_renamed_too() {
    let (env, archive) = backup_with(|root| {
        for copy in COPIES {
            edit_file(root, copy, "ring0_addr: 10.10.10.2", "ring0_addr: due");
            // A name containing the node's name is another node: never touched.
            edit_file(
                root,
                copy,
                "ring0_addr: 10.10.10.3",
                "ring0_addr: duet.example.com",
            );
        }
    });
    let target = renamed(&env, &archive);
    for copy in COPIES {
        let after = parse_corosync(&fs::read_to_string(target.join(copy)).unwrap());
        let n = after.node("nuovo").unwrap();
        assert_eq!(n["ring0_addr"], "nuovo", "{copy}");
        assert_eq!(n["ring1_addr"], "10.20.20.2", "{copy}");
        assert_eq!(after.node("tre").unwrap()["ring0_addr"], "duet.example.com");
        assert_eq!(after.version(), 5);
    }
    // The plan says what changed.
    let out = mapped(&env, &archive, &new_dir(&env, "dry"), &["--dry-run"])
        .expect(0)
        .stdout();
    let why = "/etc/pve/corosync.conf: node due is nuovo in the nodelist (name, ring0_addr), config_version 4 → 5";
    assert!(out.contains(why), "{out}");
}

const CERT_NOTE: &str = "/etc/pve/nodes/nuovo/pve-ssl.pem and pve-ssl.key were issued for due: once the host is \
                         named nuovo, regenerate them with `pvecm updatecerts --force`, then `systemctl restart pveproxy`";

const FRESH_HOSTS: &str = "127.0.0.1 localhost\n10.10.10.9 pve.lan pve\n";

#[test]
fn hosts_and_hostname_are_shown_renamed_and_written_only_with_only_network() {
    let (env, archive) = backup_with(|root| {
        // Another host whose name contains the node's: never renamed.
        edit_file(
            root,
            "etc/hosts",
            "10.10.10.2 due.example.com due\n",
            "10.10.10.2 due.example.com due\n10.10.10.4 duet.example.com duet\n",
        );
    });
    let archived_hosts = fs::read_to_string(env.root.join("etc/hosts")).unwrap();
    // A fresh install: its own hosts and hostname.
    let fresh = |name: &str| {
        let t = new_dir(&env, name);
        fs::create_dir_all(t.join("etc")).unwrap();
        fs::write(t.join("etc/hosts"), FRESH_HOSTS).unwrap();
        fs::write(t.join("etc/hostname"), "pve\n").unwrap();
        t
    };
    let target = fresh("target");
    let out = mapped(&env, &archive, &target, &["--dry-run"])
        .expect(0)
        .stdout();
    for want in [
        "--- /etc/hosts (target)",
        "+++ /etc/hosts (archive, rewritten for this host)",
        "-10.10.10.9 pve.lan pve",
        "+10.10.10.2 nuovo.example.com nuovo",
        "+10.10.10.4 duet.example.com duet",
        "--- /etc/hostname (target)",
        "-pve",
        "+nuovo",
        "/etc/hosts: host name due → nuovo",
        "/etc/hostname: due → nuovo",
        "/etc/pve/corosync.conf: node due is nuovo in the nodelist (name), config_version 4 → 5",
        "/etc/corosync/corosync.conf: node due is nuovo in the nodelist (name), config_version 4 → 5",
        CERT_NOTE,
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }
    assert!(!out.contains("due.example.com"), "{out}");

    // The same in --json: exact values.
    let r = mapped(&env, &archive, &target, &["--dry-run", "--json"]);
    let doc = r.expect(0).json();
    assert_eq!(doc["notes"], serde_json::json!([CERT_NOTE]), "{doc}");
    let rewritten: Vec<&str> = doc["rewritten"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect();
    assert_eq!(rewritten.len(), 4, "{doc}");
    for p in [
        "/etc/hosts",
        "/etc/hostname",
        "/etc/pve/corosync.conf",
        "/etc/corosync/corosync.conf",
    ] {
        assert!(rewritten.contains(&p), "{p} in {rewritten:?}");
    }

    // A full restore holds them (the fresh install's stay); --only network writes them renamed, --path one
    // alone; without --map-node, the archive's own and no note.
    let renamed = archived_hosts.replace(
        "10.10.10.2 due.example.com due\n",
        "10.10.10.2 nuovo.example.com nuovo\n",
    );
    let map: &[&str] = &["--map-node", "due=nuovo"];
    let cases: [(&[&str], &[&str], &str, &str); 4] = [
        (map, &[], "pve\n", FRESH_HOSTS),
        (map, &["--only", "network"], "nuovo\n", &renamed),
        (map, &["--path", "/etc/hostname"], "nuovo\n", FRESH_HOSTS),
        (&[], &["--only", "network"], "due\n", &archived_hosts),
    ];
    for (i, (map, only, hostname, hosts)) in cases.into_iter().enumerate() {
        let t = fresh(&format!("t{i}"));
        let r = restore(&env, &archive, &t, &[map, only, &["--yes"]].concat());
        let out = r.expect(0).stdout();
        let read = |rel: &str| fs::read_to_string(t.join(rel)).unwrap();
        assert_eq!(read("etc/hostname"), hostname, "{map:?} {only:?}");
        assert_eq!(read("etc/hosts"), hosts, "{map:?} {only:?}");
        assert_eq!(out.contains("pvecm updatecerts"), !map.is_empty(), "{out}");
    }
}

/// The names of every file under `dir` (relative), sorted.
fn tree(dir: &Path) -> Vec<String> {
    let out = sh_ok(&format!("cd '{}' && find . | sort", dir.display()));
    out.lines().map(String::from).collect()
}

#[test]
fn a_vmid_on_two_nodes_after_the_rename_is_refused_naming_both() {
    // In the archive: VM 300 of uno copied under due.
    let (env, archive) = backup_with(|root| {
        let n = root.join("etc/pve/nodes");
        fs::copy(
            n.join("uno/qemu-server/300.conf"),
            n.join("due/qemu-server/300.conf"),
        )
        .unwrap();
    });
    let target = new_dir(&env, "target");
    let err = mapped(&env, &archive, &target, &["--yes"])
        .expect(2)
        .stderr();
    assert!(
        err.contains(
            "VMID 300: /etc/pve/nodes/due/qemu-server/300.conf (restored as /etc/pve/nodes/nuovo/qemu-server/300.conf) \
             and /etc/pve/nodes/uno/qemu-server/300.conf (in the archive)"
        ),
        "{err}"
    );
    assert!(err.contains("nothing was written"), "{err}");
    assert_eq!(tree(&target), ["."]);
    // --dry-run shows it; a restore that writes no guest config is not blocked.
    let out = mapped(&env, &archive, &target, &["--dry-run"])
        .expect(0)
        .stdout();
    assert!(
        out.contains("blocked (")
            && out.contains("VMID 300: /etc/pve/nodes/due/qemu-server/300.conf"),
        "{out}"
    );
    mapped(&env, &archive, &target, &["--only", "network", "--yes"]).expect(0);
    // Without --map-node nothing moves: no clash to refuse.
    let plain = new_dir(&env, "plain");
    restore(&env, &archive, &plain, &["--yes"]).expect(0);

    // On the target: a node dir that stays (not the new node's) with one of due's VMIDs.
    let (env, archive) = backup_with(|_| {});
    let target = new_dir(&env, "target");
    for (dir, file) in [
        ("etc/pve/nodes/nuovo/qemu-server", "101.conf"),
        ("etc/pve/nodes/old/lxc", "100.conf"),
    ] {
        fs::create_dir_all(target.join(dir)).unwrap();
        fs::write(target.join(dir).join(file), "").unwrap();
    }
    let before = tree(&target);
    let r = mapped(&env, &archive, &target, &["--yes", "--json"]);
    r.expect(2);
    let doc = r.json();
    let blockers = doc["plan"]["blockers"].as_array().unwrap();
    assert_eq!(blockers.len(), 1, "{doc}");
    assert_eq!(
        blockers[0]["why"],
        "VMID 100: /etc/pve/nodes/due/qemu-server/100.conf (restored as /etc/pve/nodes/nuovo/qemu-server/100.conf) \
         and /etc/pve/nodes/old/lxc/100.conf (on the target): a VMID must be on one node only; rename or leave out \
         one of them"
    );
    assert_eq!(tree(&target), before);
}
