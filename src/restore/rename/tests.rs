//! Table tests of the pure rename parts, and the rewriter entry.

use super::*;

fn map(spec: &str) -> NodeMap {
    NodeMap::parse(spec).unwrap()
}

const CLUSTER: &str = "\
logging {
  debug: off
}

nodelist {
  # the first node
  node {
    name: uno
    nodeid: 1
    ring0_addr: 10.10.10.1
    ring1_addr: fd00::1
  }
  node {
    nodeid: 2
    ring0_addr: unobis
    name: unobis
  }
}

totem {
  cluster_name: uno
  config_version: 4
}
";

#[test]
fn corosync_renames_the_node_block_only_and_bumps_the_version() {
    let r = corosync(CLUSTER.as_bytes(), &map("uno=nuovo")).unwrap();
    let want = CLUSTER
        .replace("    name: uno\n", "    name: nuovo\n")
        .replace("config_version: 4", "config_version: 5");
    assert_eq!(String::from_utf8(r.content).unwrap(), want);
    assert_eq!(r.keys, ["name"]);
    assert_eq!(r.version, (4, 5));
}

#[test]
fn corosync_table() {
    // (input, expected output or error), renaming uno → nuovo.
    let ok = |s: &str| Ok::<String, CorosyncError>(s.to_string());
    let cases: Vec<(&str, Result<String, CorosyncError>)> = vec![
        // Spacing variants, tabs, CRLF, name not first, a host-name ring address (with and without domain).
        (
            "nodelist {\r\n\tnode {\r\n\t\tring0_addr:uno\r\n\t\tname:   uno  \r\n\t}\r\n}\r\ntotem{\r\n config_version:\t9\r\n}\r\n",
            ok(
                "nodelist {\r\n\tnode {\r\n\t\tring0_addr:nuovo\r\n\t\tname:   nuovo  \r\n\t}\r\n}\r\ntotem{\r\n config_version:\t10\r\n}\r\n",
            ),
        ),
        (
            "nodelist {\n  node {\n    ring1_addr: UNO.example.com\n    name: uno\n    ring0_addr: 10.0.0.1\n  }\n}\ntotem {\n  config_version: 1\n}",
            ok(
                "nodelist {\n  node {\n    ring1_addr: nuovo.example.com\n    name: nuovo\n    ring0_addr: 10.0.0.1\n  }\n}\ntotem {\n  config_version: 2\n}",
            ),
        ),
        // Addresses are never names, even one that starts like the node's name.
        (
            "nodelist {\nnode {\nname: uno\nring0_addr: fe80::1%eth0\nring1_addr: 10.1.2.3\n}\n}\ntotem {\nconfig_version: 7\n}\n",
            ok(
                "nodelist {\nnode {\nname: nuovo\nring0_addr: fe80::1%eth0\nring1_addr: 10.1.2.3\n}\n}\ntotem {\nconfig_version: 8\n}\n",
            ),
        ),
        // Only the node named uno: another whose name contains it is left alone.
        (
            "nodelist {\nnode {\nname: unox\nring0_addr: unox\n}\n}\ntotem {\nconfig_version: 1\n}\n",
            Err(CorosyncError::NoNode("uno".into())),
        ),
        (
            "nodelist {\nnode {\nname: uno\n}\n}\ntotem {\ncluster_name: x\n}\n",
            Err(CorosyncError::NoVersion),
        ),
        // config_version outside totem does not count.
        (
            "config_version: 3\nnodelist {\nnode {\nname: uno\n}\n}\n",
            Err(CorosyncError::NoVersion),
        ),
        (
            "nodelist {\nnode {\nname: uno\n}\n}\ntotem {\nconfig_version: four\n}\n",
            Err(CorosyncError::BadVersion {
                line: 7,
                value: "four".into(),
            }),
        ),
        (
            "totem {\nconfig_version: 1\n}\n",
            Err(CorosyncError::NoNodelist),
        ),
        (
            "nodelist {\n}\n}\n",
            Err(CorosyncError::Unbalanced { line: 3 }),
        ),
        (
            "nodelist {\nnode {\nname: uno\n}\n",
            Err(CorosyncError::Unclosed { line: 1 }),
        ),
        // A name inside another section is not the nodelist's.
        (
            "other {\nnode {\nname: uno\n}\n}\nnodelist {\n}\ntotem {\nconfig_version: 1\n}\n",
            Err(CorosyncError::NoNode("uno".into())),
        ),
    ];
    for (input, want) in cases {
        let got = corosync(input.as_bytes(), &map("uno=nuovo"))
            .map(|c| String::from_utf8(c.content).unwrap());
        assert_eq!(got, want, "input:\n{input}");
    }
}

#[test]
fn hosts_table() {
    let m = map("uno=nuovo");
    let cases = [
        (
            "127.0.0.1 localhost\n10.0.0.1 uno.example.com uno\n",
            Some("127.0.0.1 localhost\n10.0.0.1 nuovo.example.com nuovo\n"),
        ),
        // Tabs, several spaces and a comment (untouched, even when it names the node).
        (
            "10.0.0.1\tUno.example.com\t  uno # uno lives here\n",
            Some("10.0.0.1\tnuovo.example.com\t  nuovo # uno lives here\n"),
        ),
        // Other names containing the node's name, and the address field, stay.
        ("10.0.0.2 unobis.example.com unobis x.uno.com\n", None),
        ("10.0.0.2 due\n# 10.0.0.1 uno\n", None),
        (
            "10.0.0.2 due\n10.0.0.1 unobis uno",
            Some("10.0.0.2 due\n10.0.0.1 unobis nuovo"),
        ),
    ];
    for (input, want) in cases {
        let got = hosts(input.as_bytes(), &m).map(|c| String::from_utf8(c).unwrap());
        assert_eq!(got.as_deref(), want, "input: {input:?}");
    }
    // A node named like an address part is never matched in the address field.
    assert_eq!(hosts(b"10.0.0.1 ten\n", &map("10=x")), None);
}

#[test]
fn hostname_table() {
    let m = map("uno=nuovo");
    let cases = [
        ("uno\n", Some("nuovo\n")),
        ("uno", Some("nuovo")),
        ("uno.example.com\n", Some("nuovo.example.com\n")),
        (
            "# set by the installer\nuno\n",
            Some("# set by the installer\nnuovo\n"),
        ),
        ("unobis\n", None),
        ("due\n", None),
        ("", None),
    ];
    for (input, want) in cases {
        let got = hostname(input.as_bytes(), &m).map(|c| String::from_utf8(c).unwrap());
        assert_eq!(got.as_deref(), want, "input: {input:?}");
    }
}

#[test]
fn host_names() {
    for ok in ["nuovo", "n-1", "A9"] {
        check_host_name(ok).unwrap();
    }
    for bad in ["", "-a", "a-", "a b", "a.b", "a_b", &"x".repeat(64)] {
        assert!(check_host_name(bad).is_err(), "{bad:?}");
    }
}

fn paths(v: &[&str]) -> Vec<Vec<u8>> {
    v.iter().map(|s| s.as_bytes().to_vec()).collect()
}

#[test]
fn guests_and_collisions() {
    assert_eq!(
        guest(b"etc/pve/nodes/uno/lxc/400.conf"),
        Some((&b"uno"[..], 400))
    );
    assert_eq!(
        guest(b"etc/pve/nodes/uno/qemu-server/300.conf"),
        Some((&b"uno"[..], 300))
    );
    for no in [
        "etc/pve/nodes/uno/qemu-server/x.conf",
        "etc/pve/nodes/uno/qemu-server/300.conf.tmp",
        "etc/pve/nodes/uno/firewall/300.conf",
        "etc/pve/nodes/uno/qemu-server/a/300.conf",
        "etc/pve/qemu-server/300.conf",
        "etc/pve/nodes/uno/lxc/.conf",
    ] {
        assert_eq!(guest(no.as_bytes()), None, "{no}");
    }
    let m = map("uno=nuovo");
    let archive = paths(&[
        "etc/pve/nodes/uno/qemu-server/300.conf",
        "etc/pve/nodes/uno/lxc/400.conf",
        "etc/pve/nodes/tre/lxc/300.conf",
        "etc/pve/nodes/due/qemu-server/100.conf",
    ]);
    let target = paths(&[
        "etc/pve/nodes/nuovo/qemu-server/400.conf",
        "etc/pve/nodes/old/qemu-server/400.conf",
        // The archive's own, seen again on the target: one clash, not two.
        "etc/pve/nodes/tre/lxc/300.conf",
        // The old node's dir on the target stays too.
        "etc/pve/nodes/uno/qemu-server/400.conf",
    ]);
    let blockers = collisions(&archive, &target, &m);
    let on: Vec<&[u8]> = blockers.iter().map(|b| &b.archive_path[..]).collect();
    assert_eq!(on, [&archive[0][..], &archive[1], &archive[1]]);
    let got: Vec<String> = blockers.into_iter().map(|b| b.why).collect();
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got[0].starts_with("VMID 300: /etc/pve/nodes/uno/qemu-server/300.conf (restored as \
        /etc/pve/nodes/nuovo/qemu-server/300.conf) and /etc/pve/nodes/tre/lxc/300.conf (in the archive)"), "{got:?}");
    assert!(
        got[1].contains("VMID 400")
            && got[1].contains("/etc/pve/nodes/old/qemu-server/400.conf (on the target)")
    );
    assert!(got[2].contains("and /etc/pve/nodes/uno/qemu-server/400.conf (on the target)"));
    assert!(collisions(&archive[1..2], &[], &m).is_empty());
}

#[test]
fn certificate_note_names_the_files_and_the_commands() {
    let m = map("uno=nuovo");
    assert_eq!(
        certificate_note(&paths(&["etc/pve/nodes/due/pve-ssl.pem"]), &m),
        None
    );
    let n = certificate_note(
        &paths(&[
            "etc/pve/nodes/uno/pve-ssl.pem",
            "etc/pve/nodes/uno/pve-ssl.key",
        ]),
        &m,
    )
    .unwrap();
    assert!(
        n.starts_with("/etc/pve/nodes/nuovo/pve-ssl.pem and pve-ssl.key were issued for uno"),
        "{n}"
    );
    assert!(
        n.contains("`pvecm updatecerts --force`, then `systemctl restart pveproxy`"),
        "{n}"
    );
    assert!(!n.contains("custom"));
    let n = certificate_note(&paths(&["etc/pve/nodes/uno/pveproxy-ssl.pem"]), &m).unwrap();
    assert!(
        n.starts_with("the custom certificate /etc/pve/nodes/nuovo/pveproxy-ssl.pem"),
        "{n}"
    );
}

#[test]
fn target_guests_lists_configs_below_the_target_only() {
    let t = tempfile::tempdir().unwrap();
    let nodes = t.path().join("etc/pve/nodes");
    for d in ["nuovo/qemu-server", "tre/lxc", "empty"] {
        std::fs::create_dir_all(nodes.join(d)).unwrap();
    }
    std::fs::write(nodes.join("nuovo/qemu-server/100.conf"), "").unwrap();
    std::fs::write(nodes.join("tre/lxc/102.conf"), "").unwrap();
    std::os::unix::fs::symlink("/etc", nodes.join("link")).unwrap();
    let (mut got, unread) = target_guests(t.path());
    got.sort();
    assert_eq!(
        got,
        paths(&[
            "etc/pve/nodes/nuovo/qemu-server/100.conf",
            "etc/pve/nodes/tre/lxc/102.conf"
        ])
    );
    assert!(
        unread.iter().all(|u| u.contains("/etc/pve/nodes/link")) && unread.len() == 2,
        "{unread:?}"
    );
    assert_eq!(target_guests(&t.path().join("none")), (vec![], vec![]));
}

#[test]
fn the_rewriter_entry() {
    let archive = std::collections::HashMap::from([
        (b"etc/pve/corosync.conf".to_vec(), b"totem {\n}\n".to_vec()),
        (b"etc/hostname".to_vec(), b"uno\n".to_vec()),
    ]);
    let paths = paths(&["etc/pve/nodes/uno/pve-ssl.pem"]);
    let (empty, m) = (Default::default(), map("uno=nuovo"));
    let ctx = |map_node| Context {
        archive: &archive,
        target: &empty,
        paths: &paths,
        selected: &paths,
        root: Path::new("/nonexistent"),
        map_node,
        nic: &[],
    };
    assert_eq!((REWRITER.run)(&ctx(None)), Ok(Outcome::default()));
    let out = (REWRITER.run)(&ctx(Some(&m))).unwrap();
    assert_eq!(out.files.len(), 1);
    assert_eq!(
        (&out.files[0].archive_path[..], &out.files[0].content[..]),
        (&b"etc/hostname"[..], &b"nuovo\n"[..])
    );
    // About corosync.conf: shown only when the run selects it.
    let note = &out.file_notes[0];
    assert_eq!(note.archive_paths, [b"etc/pve/corosync.conf"]);
    assert!(
        note.text
            .starts_with("/etc/pve/corosync.conf is restored as it is: it has no nodelist"),
        "{note:?}"
    );
    assert!(out.notes[0].contains("pvecm updatecerts --force"));
    let bad = map("uno=no_de");
    assert!(
        (REWRITER.run)(&ctx(Some(&bad)))
            .unwrap_err()
            .contains("not a valid host name")
    );
}
