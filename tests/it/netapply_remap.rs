//! `restore --apply-network` wired to the restore's rewriters (issue 14): an archive made on "old" hardware
//! (its nics.json from the sysfs stand-in tests/fixtures/sys/old) applied with Debian's real ifupdown2 in a
//! network namespace onto a root whose `<root>/sys` stand-in has the NICs under other names. ifupdown2 sees the
//! namespace's own sysfs while the remap reads `<root>/sys/class/net`: the namespace's veth carries the name the
//! stand-in gives the NIC, so both agree. The archived interfaces use eno2 (an igb port, 3c:ec:ef:00:00:02).

use crate::netapply::{Net, OLD, apply_and_wait, network_files, new_config};
use crate::util::*;

/// `text` (of [`OLD`] or [`new_config`], whose NIC is v0) with the NIC named `nic`.
fn named(text: &str, nic: &str) -> String {
    text.replace("v0", nic)
}

fn archived() -> String {
    named(&new_config("10.9.0.1", "static"), "eno2")
}

/// Apply in the namespace, expect it armed with every health check passed and the live interfaces naming
/// `nic`, confirm it from a second process, and check what ifreload brought up: vmbr0's address, and `nic`
/// (the veth) its bridge port.
fn applied_and_confirmed(net: &Net, nic: &str) {
    for f in ["apply.rc", "apply.out", "apply.err"] {
        let _ = std::fs::remove_file(net.env.path(f));
    }
    let tail = apply_and_wait(net, "600s", "confirmed|rolled-back");
    let child = net.spawn(&format!("{tail}ip -o link show master vmbr0 > ports.txt\n"));
    wait_for("the apply to end", 120, || {
        net.env.path("apply.rc").exists()
    });
    let out = net.out("apply.out");
    assert_eq!(
        net.out("apply.rc").trim(),
        "0",
        "{out}\n{}",
        net.out("apply.err")
    );
    let s = net.state().unwrap();
    assert_eq!(s["status"], "armed", "{s}");
    let checks = s["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 4, "{s}");
    assert!(checks.iter().all(|c| c["ok"] == true), "{s}");
    // The staged file went live as it was staged: with this host's name of the NIC, not the archive's.
    assert_eq!(
        net.interfaces(),
        named(&new_config("10.9.0.1", "static"), nic)
    );
    net.env.run(&["network", "confirm"]).expect(0);
    net.finish(child);
    assert!(
        net.out("addr.txt").contains("inet 10.9.0.2/24"),
        "{}",
        net.out("addr.txt")
    );
    let ports = net.out("ports.txt");
    assert!(ports.contains(&format!(": {nic}@")), "{ports}");
    assert_eq!(net.state().unwrap()["status"], "confirmed");
    assert!(!net.interfaces().contains("eno2"));
    net.no_leftovers();
    net.pid_gone(s["mechanism"]["pid"].as_u64().unwrap());
}

#[test]
fn nics_renamed_on_the_same_hardware_are_applied_under_their_new_names() {
    let nic = "enp2s0f1";
    let old = Some(["old", "same-renamed"]);
    let net = Net::with(&archived(), &named(OLD, nic), old, nic);
    applied_and_confirmed(&net, nic);
    // The plan printed before the apply names the mapping and shows the rewritten file.
    let out = net.out("apply.out");
    let mapping = out.find("NIC eno2 → enp2s0f1 (matched by permanent MAC)");
    let rewritten = out.find("+++ /etc/network/interfaces (archive, rewritten for this host)");
    let checks = out.find("default route");
    assert!(mapping.is_some() && rewritten.is_some(), "{out}");
    assert!(mapping < checks && checks.is_some(), "{out}");
    assert!(
        out.contains("/etc/network/interfaces: NICs renamed for this host: eno2 → enp2s0f1"),
        "{out}"
    );
}

#[test]
fn an_unmatched_nic_refuses_the_apply_before_staging_until_nic_names_it() {
    let nic = "enp6s0";
    let mut net = Net::with(
        &archived(),
        &named(OLD, nic),
        Some(["old", "unmatched"]),
        nic,
    );
    let blocker = "NIC eno2 (igb, 3c:ec:ef:00:00:02, pci-0000:02:00.1) has no match on this host and \
                   /etc/network/interfaces uses it: give --nic eno2=NEW (unmatched NICs of this host: enp6s0)";
    let before = network_files(&net.env.root);
    // In the namespace too: were the refusal missing, ifreload must not reach this machine.
    let cmd = net.apply_command("600s");
    let tail = format!("rc=0; {cmd} > apply.out 2> apply.err || rc=$?; echo $rc > apply.rc\n");
    net.finish(net.spawn(&tail));
    let err = net.out("apply.err");
    assert_eq!(net.out("apply.rc").trim(), "2", "{err}");
    assert!(err.contains(blocker), "{err}");
    // Nothing staged, nothing moved, nothing armed.
    assert_eq!(network_files(&net.env.root), before);
    assert!(!net.state_file().exists());
    let r = net.restore(false, &["--dry-run"]);
    let out = r.expect(0).stdout();
    assert!(out.contains(blocker), "{out}");
    assert!(out.contains("ifreload -a"), "{out}");
    let j = net.restore(true, &["--dry-run"]).expect(0).json();
    assert_eq!(j["plan"]["blockers"][0]["why"], blocker, "{j}");
    assert_eq!(j["apply_command"], "ifreload -a", "{j}");
    assert_eq!(network_files(&net.env.root), before);
    // The real apply's --json carries the plan it carried out, as the dry run's does.
    net.extra = " --nic eno2=enp6s0 --json".into();
    applied_and_confirmed(&net, nic);
    let out = net.out("apply.out");
    let j: serde_json::Value = serde_json::from_str(&out).expect(&out);
    let notes = j["plan"]["notes"].to_string();
    assert!(
        notes.contains("NIC eno2 → enp6s0 (matched by --nic)"),
        "{j}"
    );
    assert_eq!(j["status"], "armed", "{j}");
}

#[test]
fn hosts_selected_by_path_is_applied_renamed_by_map_node() {
    // The live interfaces are the archive's: the health checks see the network they expect.
    let config = new_config("10.9.0.1", "static");
    let mut net = Net::with(&config, &config, None, "v0");
    // --map-node wants the node in the archive's /etc/pve: backed up again with one.
    let root = net.env.root.clone();
    std::fs::create_dir_all(root.join("etc/pve/nodes/pve1")).unwrap();
    make_config_db(&root);
    std::fs::remove_file(&net.archive).unwrap();
    net.env.run(&["backup"]).expect(0);
    net.archive = net.env.only_archive();
    net.select = "--path /etc/hosts --map-node pve1=pve9".into();
    let a = net.archive.display().to_string();
    let args = [
        "--dry-run",
        "--path",
        "/etc/hosts",
        "--map-node",
        "pve1=pve9",
    ];
    let r = net
        .env
        .run(&[&["restore", &a, "--apply-network"], &args[..]].concat());
    let out = r.expect(0).stdout();
    assert!(
        out.contains("/etc/.hosts.proxkeep-new -> /etc/hosts"),
        "{out}"
    );
    assert!(!out.contains("/etc/hostname"), "{out}");
    applied_and_confirmed(&net, "v0");
    let hosts = std::fs::read_to_string(root.join("etc/hosts")).unwrap();
    assert_eq!(hosts, "127.0.0.1 localhost\n10.9.0.2 pve9\n");
    let hostname = std::fs::read_to_string(root.join("etc/hostname")).unwrap();
    assert_eq!(hostname, "pve1\n", "not selected");
}
