//! NIC remap when restoring onto other hardware (issue 14): a host whose `/sys` is `tests/fixtures/sys/old`
//! (bond0 of eno1+eno2, vmbr0 on eno3, VLANs on eno3, eno2 pinned by a `.link` file) is backed up, then
//! restored with `--only network` into targets whose `/sys` is one of the other fixture trees (stand-ins for
//! sysfs, see tests/fixtures/README.md "sys").

use crate::util::*;
use std::fs;
use std::path::{Path, PathBuf};

const PIN: &str = "usr/local/lib/systemd/network/50-pve-eno2.link";
const PIN_TEXT: &str = "[Match]\nMACAddress=3c:ec:ef:00:00:02\nType=ether\n\n[Link]\nName=eno2\n";

fn put(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

fn read(root: &Path, rel: &str) -> String {
    fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The archived host: the pve-node fixture's interfaces plus VLAN 100 on eno3 (a comment names eno3 too), a
/// VLAN in interfaces.d, and the pin of eno2; its /sys is `old`.
fn old_host() -> (Env, PathBuf) {
    let env = Env::new("");
    materialize("sys/old", &env.root);
    let fixture = repo().join("tests/fixtures/pve-node/etc/network/interfaces");
    let mut ifaces = fs::read_to_string(fixture).unwrap();
    ifaces.push_str(
        "\n# VLAN 100 on eno3\nauto eno3.100\niface eno3.100 inet manual\n\n\
         source /etc/network/interfaces.d/*\n",
    );
    put(&env.root, "etc/network/interfaces", &ifaces);
    put(
        &env.root,
        "etc/network/interfaces.d/vlan200",
        "auto vlan200\niface vlan200 inet static\n\taddress 10.10.200.2/24\n\tvlan-raw-device eno3\n",
    );
    put(&env.root, PIN, PIN_TEXT);
    put(&env.root, "etc/hostname", "due\n");
    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    (env, archive)
}

/// A target whose /sys is the fixture tree `sys` (none: a plain directory), with a fresh install's interfaces.
fn target(env: &Env, sys: Option<&str>) -> PathBuf {
    let t = env.path(&format!("target-{}", sys.unwrap_or("plain")));
    match sys {
        Some(s) => materialize(&format!("sys/{s}"), &t),
        None => fs::create_dir_all(&t).unwrap(),
    }
    put(
        &t,
        "etc/network/interfaces",
        "auto lo\niface lo inet loopback\n\nauto vmbr0\niface vmbr0 inet static\n\taddress 10.10.10.2/24\n",
    );
    t
}

fn restore(env: &Env, archive: &Path, target: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "restore",
        archive.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
        "--only",
        "network",
        "--no-safety-backup",
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

/// The lines of the restored interfaces files that name NICs.
fn nic_lines(t: &Path) -> String {
    let text = read(t, "etc/network/interfaces") + &read(t, "etc/network/interfaces.d/vlan200");
    let keep = [
        "iface",
        "auto",
        "bond-slaves",
        "bridge-ports",
        "vlan-raw-device",
        "#",
    ];
    let lines = text.lines().map(str::trim).filter(|l| {
        keep.iter().any(|k| l.starts_with(k)) && !l.contains(" lo") && !l.contains("vmbr0")
    });
    lines.collect::<Vec<_>>().join("\n")
}

#[test]
fn same_hardware_renamed_nics_are_matched_by_permanent_mac() {
    let (env, archive) = old_host();
    let t = target(&env, Some("same-renamed"));
    let r = restore(&env, &archive, &t, &["--yes"]);
    let out = r.expect(0).stdout();
    assert!(
        out.contains("NIC eno1 → enp2s0f0 (matched by permanent MAC)"),
        "{out}"
    );
    assert!(
        out.contains("NIC eno3 → enp0s31f6 (matched by permanent MAC)"),
        "{out}"
    );
    // Named with --only, the rewritten file is written, and the plan shows what is written instead of the
    // archive's bytes.
    for want in [
        "+++ /etc/network/interfaces (archive, rewritten for this host)",
        "+      bond-slaves enp2s0f0 eno2",
    ] {
        assert!(out.contains(want), "no {want:?} in:\n{out}");
    }
    // eno2 is pinned by name: it keeps it (the pin applies at the next boot) and its pin is unchanged.
    assert!(
        out.contains("NIC eno2 → enp2s0f1 (matched by permanent MAC); pinned as eno2"),
        "{out}"
    );
    assert_eq!(
        nic_lines(&t),
        "iface enp2s0f0 inet manual\niface eno2 inet manual\niface enp0s31f6 inet manual\n\
         auto bond0\niface bond0 inet static\nbond-slaves enp2s0f0 eno2\nbridge-ports enp0s31f6\n\
         # VLAN 100 on eno3\nauto enp0s31f6.100\niface enp0s31f6.100 inet manual\n\
         auto vlan200\niface vlan200 inet static\nvlan-raw-device enp0s31f6"
    );
    assert_eq!(read(&t, PIN), PIN_TEXT);
}

#[test]
fn different_nics_in_the_same_slots_are_matched_by_pci_path_and_the_pin_moves() {
    let (env, archive) = old_host();
    let t = target(&env, Some("new-same-slots"));
    // The plan first, without --only: the mapping, and the held files' diffs show the rewritten content.
    let (a, target) = (archive.to_str().unwrap(), t.to_str().unwrap());
    let r = env.run(&["restore", a, "--target", target, "--dry-run"]);
    let out = r.expect(0).stdout();
    for want in [
        "NIC eno1 → enp2s0f0 (matched by PCI path)",
        "NIC eno2 → enp2s0f1 (matched by PCI path); pinned as eno2",
        "NIC eno3 → eno1 (matched by PCI path)",
        "+      bond-slaves enp2s0f0 eno2",
        "+iface eno1.100 inet manual",
        "+MACAddress=a0:36:9f:00:00:02",
    ] {
        assert!(out.contains(want), "{want}\n{out}");
    }
    let json = restore(&env, &archive, &t, &["--dry-run", "--json"])
        .expect(0)
        .json();
    let notes = json["notes"].as_array().unwrap_or_else(|| panic!("{json}"));
    assert!(
        notes.contains(&"NIC eno3 → eno1 (matched by PCI path)".into()),
        "{json}"
    );
    restore(&env, &archive, &t, &["--yes"]).expect(0);
    // eno1 of the archive is enp2s0f0 now, and the target's eno1 is the archive's eno3: renamed at once.
    assert_eq!(
        nic_lines(&t),
        "iface enp2s0f0 inet manual\niface eno2 inet manual\niface eno1 inet manual\n\
         auto bond0\niface bond0 inet static\nbond-slaves enp2s0f0 eno2\nbridge-ports eno1\n\
         # VLAN 100 on eno3\nauto eno1.100\niface eno1.100 inet manual\n\
         auto vlan200\niface vlan200 inet static\nvlan-raw-device eno1"
    );
    assert_eq!(
        read(&t, PIN),
        PIN_TEXT.replace("3c:ec:ef:00:00:02", "a0:36:9f:00:00:02")
    );
}

#[test]
fn an_unmatched_nic_refuses_the_restore_until_nic_names_its_replacement() {
    let (env, archive) = old_host();
    let t = target(&env, Some("unmatched"));
    let before = read(&t, "etc/network/interfaces");
    let blocker = |file: &str| {
        format!(
            "NIC eno2 (igb, 3c:ec:ef:00:00:02, pci-0000:02:00.1) has no match on this host and {file} \
             uses it: give --nic eno2=NEW (unmatched NICs of this host: enp6s0)"
        )
    };
    let blockers = [
        blocker("/etc/network/interfaces"),
        blocker(&format!("/{PIN}")),
    ];
    // --dry-run shows it and succeeds; a real run refuses, writing nothing.
    let out = restore(&env, &archive, &t, &["--dry-run"])
        .expect(0)
        .stdout();
    for b in &blockers {
        assert!(out.contains(b.as_str()), "{b}\n{out}");
    }
    assert!(
        out.contains("NIC eno1 → enp5s0 (matched by driver and order)"),
        "{out}"
    );
    assert!(
        out.contains("NIC eno3 → eno1 (matched by PCI path)"),
        "{out}"
    );
    let json = restore(&env, &archive, &t, &["--dry-run", "--json"])
        .expect(0)
        .json();
    let whys: Vec<&str> = json["blockers"]
        .as_array()
        .unwrap_or_else(|| panic!("{json}"))
        .iter()
        .map(|b| b["why"].as_str().unwrap())
        .collect();
    assert_eq!(whys, blockers);
    let r = restore(&env, &archive, &t, &["--yes"]);
    r.expect(2);
    assert!(r.stderr().contains(&blockers[0]), "{}", r.stderr());
    assert_eq!(read(&t, "etc/network/interfaces"), before);
    assert!(!t.join(PIN).exists());
    // --nic for a NIC the target does not have is a usage error.
    let r = restore(&env, &archive, &t, &["--yes", "--nic", "eno2=eth7"]);
    assert!(
        r.expect(2).stderr().contains("the target has no NIC eth7"),
        "{}",
        r.stderr()
    );
    // Named: written.
    let out = restore(&env, &archive, &t, &["--yes", "--nic", "eno2=enp6s0"])
        .expect(0)
        .stdout();
    assert!(
        out.contains("NIC eno2 → enp6s0 (matched by --nic); pinned as eno2"),
        "{out}"
    );
    assert!(
        nic_lines(&t).contains("bond-slaves enp5s0 eno2\nbridge-ports eno1"),
        "{}",
        nic_lines(&t)
    );
    assert_eq!(
        read(&t, PIN),
        PIN_TEXT.replace("3c:ec:ef:00:00:02", "00:e0:4c:00:00:01")
    );
}

#[test]
fn identical_hardware_changes_nothing_and_a_plain_directory_is_not_checked() {
    let (env, archive) = old_host();
    let t = target(&env, Some("old"));
    let out = restore(&env, &archive, &t, &["--yes"]).expect(0).stdout();
    assert!(!out.contains("NIC "), "{out}");
    assert_eq!(
        read(&t, "etc/network/interfaces"),
        read(&env.root, "etc/network/interfaces")
    );
    let t = target(&env, None);
    let out = restore(&env, &archive, &t, &["--yes"]).expect(0).stdout();
    assert_eq!(out.matches("NIC names not checked").count(), 1, "{out}");
    assert_eq!(
        read(&t, "etc/network/interfaces"),
        read(&env.root, "etc/network/interfaces")
    );
    assert_eq!(read(&t, PIN), PIN_TEXT);
}

#[test]
fn nic_notes_are_shown_only_when_the_run_restores_a_network_file() {
    let (env, archive) = old_host();
    let t = target(&env, Some("same-renamed"));
    let (a, target) = (archive.to_str().unwrap(), t.to_str().unwrap());
    let r = env.run(&[
        "restore",
        a,
        "--target",
        target,
        "--path",
        "/etc/hostname",
        "--dry-run",
    ]);
    let out = r.expect(0).stdout();
    assert!(!out.contains("NIC eno1"), "{out}");
    let r = env.run(&[
        "restore",
        a,
        "--target",
        target,
        "--only",
        "network",
        "--dry-run",
    ]);
    let out = r.expect(0).stdout();
    assert!(out.contains("NIC eno1 → enp2s0f0"), "{out}");
}
