//! `restore --map-node OLD=NEW`, end to end (issue 14): corosync.conf (both copies), /etc/hosts and
//! /etc/hostname, the certificate note, and VMIDs that would be on two nodes.

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

fn restore(env: &Env, archive: &Path, target: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "restore",
        archive.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

fn new_dir(env: &Env, name: &str) -> PathBuf {
    let p = env.path(name);
    fs::create_dir_all(&p).unwrap();
    p
}

/// Replace `from` by `to` in the file `rel` under `root`, which must contain it.
fn edit_file(root: &Path, rel: &str, from: &str, to: &str) {
    let p = root.join(rel);
    let text = fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{rel} has no {from:?}");
    fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

#[test]
fn map_node_rewrites_both_corosync_copies_and_bumps_config_version() {
    let (env, archive) = backup_with(|_| {});
    let target = new_dir(&env, "target");
    restore(&env, &archive, &target, &["--map-node", "due=nuovo", "--yes"]).expect(0);
    let original = fs::read_to_string(env.root.join(COPIES[0])).unwrap();
    let before = parse_corosync(&original);
    assert_eq!(before.version(), 4);
    for copy in COPIES {
        let text = fs::read_to_string(target.join(copy)).unwrap();
        let after = parse_corosync(&text);
        assert_eq!(after.names(), ["nuovo", "tre", "uno"], "{copy}");
        assert_eq!(after.version(), 5, "{copy}");
        let n = after.node("nuovo").unwrap();
        // The addresses are IPs: they stay; everything else of the block too.
        let mut want = before.node("due").unwrap().clone();
        want.insert("name".into(), "nuovo".into());
        assert_eq!(n, &want, "{copy}");
        for other in ["uno", "tre"] {
            assert_eq!(after.node(other), before.node(other), "{copy}");
        }
        // Byte for byte otherwise: exactly two lines differ.
        let changed: Vec<(&str, &str)> = original
            .lines()
            .zip(text.lines())
            .filter(|(a, b)| a != b)
            .collect();
        assert_eq!(
            changed,
            [
                ("    name: due", "    name: nuovo"),
                ("  config_version: 4", "  config_version: 5")
            ],
            "{copy}"
        );
        assert_eq!(original.lines().count(), text.lines().count());
    }
    assert!(target.join("etc/pve/nodes/nuovo/qemu-server/100.conf").is_file());

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
            edit_file(root, copy, "ring0_addr: 10.10.10.3", "ring0_addr: duet.example.com");
        }
    });
    let target = new_dir(&env, "target");
    restore(&env, &archive, &target, &["--map-node", "due=nuovo", "--yes"]).expect(0);
    for copy in COPIES {
        let after = parse_corosync(&fs::read_to_string(target.join(copy)).unwrap());
        let n = after.node("nuovo").unwrap();
        assert_eq!(n["ring0_addr"], "nuovo", "{copy}");
        assert_eq!(n["ring1_addr"], "10.20.20.2", "{copy}");
        assert_eq!(after.node("tre").unwrap()["ring0_addr"], "duet.example.com");
        assert_eq!(after.version(), 5);
    }
}
