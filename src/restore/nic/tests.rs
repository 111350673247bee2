use super::*;
use proptest::prelude::*;

/// A physical NIC: name, permanent MAC, PCI function (`02:00.0`), driver.
fn card(name: &str, mac: &str, pci: &str, driver: &str) -> Card {
    let some = |s: &str| (!s.is_empty()).then(|| s.to_string());
    Card {
        name: name.into(),
        kind: "physical".into(),
        mac: some(mac),
        permanent_mac: some(mac),
        device_path: some(pci).map(|p| format!("pci0000:00/0000:00:1c.0/0000:{p}")),
        id_path: some(pci).map(|p| format!("pci-0000:{p}")),
        driver: some(driver),
    }
}

fn pairs(m: &Matching) -> Vec<(&str, &str, Reason)> {
    m.pairs
        .iter()
        .map(|p| (p.old.as_str(), p.new.as_str(), p.reason))
        .collect()
}

fn given(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(o, n)| (o.to_string(), n.to_string()))
        .collect()
}

#[test]
fn matching_table() {
    use Reason::*;
    let old = [
        card("eno1", "3c:ec:ef:00:00:01", "02:00.0", "igb"),
        card("eno2", "3c:ec:ef:00:00:02", "02:00.1", "igb"),
        card("eno3", "3c:ec:ef:00:00:03", "03:00.0", "ixgbe"),
    ];
    type Want = (Vec<(&'static str, &'static str, Reason)>, Vec<&'static str>);
    type Case = (&'static str, Vec<Card>, Vec<(String, String)>, Want);
    let cases: Vec<Case> = vec![
        (
            "same hardware, renamed: by permanent MAC (case-insensitive)",
            vec![
                card("enp2s0f0", "3C:EC:EF:00:00:01", "02:00.0", "igb"),
                card("enp2s0f1", "3c:ec:ef:00:00:02", "02:00.1", "igb"),
                card("enp3s0", "3c:ec:ef:00:00:03", "03:00.0", "ixgbe"),
            ],
            vec![],
            (
                vec![
                    ("eno1", "enp2s0f0", PermanentMac),
                    ("eno2", "enp2s0f1", PermanentMac),
                    ("eno3", "enp3s0", PermanentMac),
                ],
                vec![],
            ),
        ),
        (
            "new cards in the same slots: by PCI path",
            vec![
                card("enp2s0f1", "aa:00:00:00:00:02", "02:00.1", "igb"),
                card("enp2s0f0", "aa:00:00:00:00:01", "02:00.0", "igb"),
                card("enp3s0", "aa:00:00:00:00:03", "03:00.0", "ice"),
            ],
            vec![],
            (
                vec![
                    ("eno1", "enp2s0f0", PciPath),
                    ("eno2", "enp2s0f1", PciPath),
                    ("eno3", "enp3s0", PciPath),
                ],
                vec![],
            ),
        ),
        (
            "other slots: by driver and PCI order; the ixgbe NIC has no partner",
            vec![
                card("enp6s0f1", "aa:00:00:00:00:02", "06:00.1", "igb"),
                card("enp6s0f0", "aa:00:00:00:00:01", "06:00.0", "igb"),
                card("enp7s0", "aa:00:00:00:00:03", "07:00.0", "ice"),
            ],
            vec![],
            (
                vec![
                    ("eno1", "enp6s0f0", DriverOrder),
                    ("eno2", "enp6s0f1", DriverOrder),
                ],
                vec!["eno3"],
            ),
        ),
        (
            "a MAC match wins over another NIC's slot; the rest by order",
            vec![
                card("x0", "aa:00:00:00:00:09", "02:00.0", "igb"),
                card("x1", "3c:ec:ef:00:00:01", "09:00.0", "igb"),
                card("x2", "aa:00:00:00:00:08", "03:00.0", "ixgbe"),
            ],
            vec![],
            (
                vec![
                    ("eno1", "x1", PermanentMac),
                    ("eno2", "x0", DriverOrder),
                    ("eno3", "x2", PciPath),
                ],
                vec![],
            ),
        ),
        (
            "--nic overrides, and the rest is matched around it",
            vec![
                card("a", "3c:ec:ef:00:00:01", "02:00.0", "igb"),
                card("b", "3c:ec:ef:00:00:02", "02:00.1", "igb"),
                card("c", "", "", "ice"),
            ],
            given(&[("eno1", "b"), ("eno3", "c")]),
            (
                vec![
                    ("eno1", "b", Given),
                    ("eno2", "a", DriverOrder),
                    ("eno3", "c", Given),
                ],
                vec![],
            ),
        ),
        (
            "no target NICs",
            vec![],
            vec![],
            (vec![], vec!["eno1", "eno2", "eno3"]),
        ),
    ];
    for (what, new, given, (want_pairs, want_unmatched)) in cases {
        let m = match_cards(&old, &new, &given).unwrap();
        assert_eq!(pairs(&m), want_pairs, "{what}");
        assert_eq!(m.unmatched, want_unmatched, "{what}");
    }
}

#[test]
fn only_physical_nics_are_matched() {
    let mut bond = card("bond0", "3c:ec:ef:00:00:01", "", "");
    bond.kind = "bond".into();
    let old = [
        bond.clone(),
        card("eno1", "3c:ec:ef:00:00:01", "02:00.0", "igb"),
    ];
    let new = [bond, card("enp2s0", "3c:ec:ef:00:00:01", "02:00.0", "igb")];
    let m = match_cards(&old, &new, &[]).unwrap();
    assert_eq!(pairs(&m), [("eno1", "enp2s0", Reason::PermanentMac)]);
}

#[test]
fn bad_nic_options_are_usage_errors() {
    let old = [card("eno1", "3c:ec:ef:00:00:01", "02:00.0", "igb")];
    let new = [card("enp2s0", "aa:00:00:00:00:01", "02:00.0", "igb")];
    for (g, want) in [
        (
            given(&[("eth9", "enp2s0")]),
            "the archive has no physical NIC eth9 (it has: eno1)",
        ),
        (
            given(&[("eno1", "eth9")]),
            "the target has no NIC eth9 (it has: enp2s0)",
        ),
        (
            given(&[("eno1", "enp2s0"), ("eno1", "enp2s0")]),
            "eno1 is given twice",
        ),
    ] {
        let e = match_cards(&old, &new, &g).unwrap_err();
        assert!(e.contains(want), "{e}");
    }
    // Unknown inventories check nothing.
    assert!(match_cards(&[], &[], &given(&[("eth9", "eth10")])).is_ok());
    for bad in [
        "eno1",
        "=x",
        "x=",
        "a b=c",
        "eno1=../x",
        "averyveryverylongname=x",
    ] {
        assert!(parse_pair(bad).is_err(), "{bad}");
    }
    assert_eq!(
        parse_pair("eno1=enp3s0").unwrap(),
        ("eno1".into(), "enp3s0".into())
    );
}

#[test]
fn renaming_is_whole_word_and_simultaneous() {
    let names = HashMap::from([("eno1", "enp3s0"), ("eno2", "eno1")]);
    let text = b"# eno1 is the uplink\nallow-hotplug eno1\niface eno1 inet manual\nauto eno12\n\
        iface eno1.100 inet manual\n    vlan-raw-device eno1\n    bond-slaves eno1 eno2\n\
        \tbond-primary eno2\n    bridge-ports veth-eno1 eno1\n";
    let got = rename_words(text, &names).unwrap();
    let want = "# eno1 is the uplink\nallow-hotplug enp3s0\niface enp3s0 inet manual\nauto eno12\n\
        iface enp3s0.100 inet manual\n    vlan-raw-device enp3s0\n    bond-slaves enp3s0 eno1\n\
        \tbond-primary eno1\n    bridge-ports veth-eno1 enp3s0\n";
    assert_eq!(String::from_utf8(got).unwrap(), want);
    assert_eq!(rename_words(b"auto eno12\n", &names), None);
    assert_eq!(rename_words(b"auto eno1", &HashMap::new()), None);
    // Not UTF-8 elsewhere on the line: the bytes stay.
    let got = rename_words(b"iface eno1 \xff\n", &names).unwrap();
    assert_eq!(got, b"iface enp3s0 \xff\n");
    assert!(uses(b"auto x\n bridge-ports eno1.5\n", "eno1"));
    let text =
        b"# enx0011223344.100\nauto enx0011223344.100 enx0011223344.2\niface enx0011223344.100\n";
    assert_eq!(too_long(text, &["enx0011223344"]), ["enx0011223344.100"]);
    assert!(too_long(text, &["enx001122334"]).is_empty());
    assert!(!uses(b"# eno1\nauto eno10\n", "eno1"));
}

const LINK: &[u8] =
    b"# pinned\n[Match]\nMACAddress=3C:EC:EF:00:00:01 aa:bb:cc:dd:ee:ff\nType=ether\n\n\
    [Link]\nName=nic0\nMACAddress=3c:ec:ef:00:00:01\n";

#[test]
fn link_pins_move_to_the_new_mac_and_keep_the_name() {
    let macs = HashMap::from([(
        "3c:ec:ef:00:00:01".to_string(),
        "52:54:00:00:00:01".to_string(),
    )]);
    let got = String::from_utf8(repin_link(LINK, &macs).unwrap()).unwrap();
    assert_eq!(
        got,
        "# pinned\n[Match]\nMACAddress=52:54:00:00:00:01 aa:bb:cc:dd:ee:ff\nType=ether\n\n\
         [Link]\nName=nic0\nMACAddress=3c:ec:ef:00:00:01\n"
    );
    assert_eq!(repin_link(LINK, &HashMap::new()), None);
    let p = pins(&[(b"etc/systemd/network/50-pve-nic0.link", LINK)]);
    assert_eq!(p.len(), 1);
    assert_eq!(p[0].name, "nic0");
    assert!(p[0].matches("3c:ec:ef:00:00:01"));
    // No Name=: not a pin.
    assert!(pins(&[(b"x.link", b"[Match]\nMACAddress=3c:ec:ef:00:00:01\n")]).is_empty());
}

fn input<'a>(old: Vec<Card>, new: Option<Vec<Card>>, interfaces: &'a [u8]) -> Input<'a> {
    Input {
        archive: Ok(old),
        target: new,
        given: &[],
        interfaces: vec![(b"etc/network/interfaces", interfaces)],
        links: vec![],
    }
}

const IFACES: &[u8] = b"auto eno1\niface eno1 inet manual\nauto vmbr0\niface vmbr0 inet static\n\
    \tbridge-ports eno1\n";

fn whys(b: &[Blocker]) -> Vec<(String, &str)> {
    b.iter()
        .map(|b| {
            (
                String::from_utf8_lossy(&b.archive_path).into_owned(),
                b.why.as_str(),
            )
        })
        .collect()
}

#[test]
fn remap_outcomes() {
    let old = vec![card("eno1", "3c:ec:ef:00:00:01", "02:00.0", "igb")];
    // Identical hardware: nothing, no noise.
    let r = remap(&input(old.clone(), Some(old.clone()), IFACES)).unwrap();
    assert_eq!(r, Outcome::default());
    // Renamed: a note and the rewritten file.
    let new = vec![card("enp2s0", "3c:ec:ef:00:00:01", "02:00.0", "igb")];
    let r = remap(&input(old.clone(), Some(new), IFACES)).unwrap();
    assert_eq!(
        r.note_texts(),
        ["NIC eno1 → enp2s0 (matched by permanent MAC)"]
    );
    assert!(r.blockers.is_empty());
    assert_eq!(r.files[0].why, "NICs renamed for this host: eno1 → enp2s0");
    let text = String::from_utf8(r.files[0].content.clone()).unwrap();
    assert!(
        text.contains("bridge-ports enp2s0\n") && !text.contains("eno1"),
        "{text}"
    );
    // A VLAN on the new name too long for the kernel: said.
    let new = vec![card("enx0011223344", "3c:ec:ef:00:00:01", "", "")];
    let r = remap(&input(
        old.clone(),
        Some(new),
        b"iface eno1.100 inet manual\n",
    ))
    .unwrap();
    assert!(
        r.note_texts()[1]
            .starts_with("/etc/network/interfaces names enx0011223344.100 after the remap: longer"),
        "{r:?}"
    );
    // Unmatched and used: a blocker naming it, tied to the file that uses it.
    let new = vec![card("enp9s0", "aa:00:00:00:00:01", "09:00.0", "ice")];
    let r = remap(&input(old.clone(), Some(new), IFACES)).unwrap();
    assert_eq!(
        whys(&r.blockers),
        [(
            "etc/network/interfaces".to_string(),
            "NIC eno1 (igb, 3c:ec:ef:00:00:01, pci-0000:02:00.0) has no match on this host and \
             /etc/network/interfaces uses it: give --nic eno1=NEW (unmatched NICs of this host: enp9s0)"
        )]
    );
    // Unmatched, not used: a note only.
    let r = remap(&input(old.clone(), Some(vec![]), b"auto lo\n")).unwrap();
    assert!(
        r.blockers.is_empty() && r.note_texts()[0].contains("no network file uses it"),
        "{r:?}"
    );
    // No /sys on the target: one note, nothing rewritten.
    let r = remap(&input(old.clone(), None, IFACES)).unwrap();
    assert!(r.files.is_empty() && r.blockers.is_empty());
    assert_eq!(r.note_texts().len(), 1);
    assert!(
        r.note_texts()[0].starts_with("NIC names not checked: the target has no /sys/class/net"),
        "{r:?}"
    );
    // Neither inventory: silent (a copy of a host without /sys restored into a directory); onto a host: why.
    let mut i = input(vec![], None, IFACES);
    i.archive = Err("the archive has no NIC inventory".into());
    assert_eq!(remap(&i).unwrap(), Outcome::default());
    i.target = Some(old.clone());
    let r = remap(&i).unwrap();
    assert_eq!(
        r.note_texts(),
        ["NIC names not checked: the archive has no NIC inventory"]
    );
    // No network file at all: nothing, and --nic has nothing to act on.
    let mut i = input(old, None, IFACES);
    i.interfaces.clear();
    assert_eq!(remap(&i).unwrap(), Outcome::default());
    let g = given(&[("eno1", "x")]);
    i.given = &g;
    assert!(remap(&i).unwrap_err().contains("no network files"));
}

#[test]
fn a_pinned_nic_keeps_its_name_and_the_pin_moves() {
    let old = vec![card("nic0", "3c:ec:ef:00:00:01", "02:00.0", "igb")];
    let new = vec![card("enp2s0", "52:54:00:00:00:01", "02:00.0", "igb")];
    let ifaces = b"auto nic0\niface nic0 inet manual\n";
    let mut i = input(old.clone(), Some(new.clone()), ifaces);
    i.links = vec![(b"usr/local/lib/systemd/network/50-pve-nic0.link", LINK)];
    let r = remap(&i).unwrap();
    assert!(r.blockers.is_empty(), "{r:?}");
    assert_eq!(r.files.len(), 1, "only the .link changes: {r:?}");
    assert_eq!(
        r.files[0].archive_path,
        b"usr/local/lib/systemd/network/50-pve-nic0.link"
    );
    let link = String::from_utf8(r.files[0].content.clone()).unwrap();
    assert!(link.contains("[Match]\nMACAddress=52:54:00:00:00:01 ") && link.contains("Name=nic0"));
    assert!(
        r.note_texts()[0].starts_with("NIC nic0 → enp2s0 (matched by PCI path); pinned as nic0"),
        "{r:?}"
    );
    // Unmatched: the .link and the interfaces file are each blocked.
    let mut i = input(old, Some(vec![]), ifaces);
    i.links = vec![(b"usr/local/lib/systemd/network/50-pve-nic0.link", LINK)];
    let blocked: Vec<String> = whys(&remap(&i).unwrap().blockers)
        .into_iter()
        .map(|b| b.0)
        .collect();
    assert_eq!(
        blocked,
        [
            "etc/network/interfaces",
            "usr/local/lib/systemd/network/50-pve-nic0.link"
        ]
    );
}

#[test]
fn two_nics_ending_with_one_name_are_blocked() {
    // nic0 is pinned and keeps its name; eno1 is matched to the NIC the target calls nic0 today.
    let old = vec![
        card("nic0", "3c:ec:ef:00:00:01", "02:00.0", "igb"),
        card("eno1", "3c:ec:ef:00:00:02", "03:00.0", "ice"),
    ];
    let new = vec![
        card("enp2s0", "3c:ec:ef:00:00:01", "02:00.0", "igb"),
        card("nic0", "3c:ec:ef:00:00:02", "03:00.0", "ice"),
    ];
    let mut i = input(
        old,
        Some(new),
        b"iface nic0 inet manual\niface eno1 inet manual\n",
    );
    i.links = vec![(b"etc/systemd/network/50-pve-nic0.link", LINK)];
    let r = remap(&i).unwrap();
    assert_eq!(
        whys(&r.blockers),
        [(
            "etc/network/interfaces".to_string(),
            "NICs eno1, nic0 would all be named nic0 after the remap: give --nic for them"
        )]
    );
}

#[test]
fn the_rewriter_wants_the_network_files_and_the_inventory() {
    let wants = REWRITER.wants;
    for p in [
        "proxkeep/commands/network/nics.json",
        "etc/network/interfaces",
        "etc/network/interfaces.d/vlans",
        "etc/systemd/network/10-lan0.link",
        "usr/local/lib/systemd/network/50-pve-nic0.link",
    ] {
        assert!(wants(p.as_bytes()), "{p}");
    }
    for p in [
        "etc/network/interfaces.d",
        "etc/network/if-up.d/x",
        "etc/systemd/network/10-lan0.network",
        "etc/systemd/network/sub/x.link",
        "etc/hosts",
    ] {
        assert!(!wants(p.as_bytes()), "{p}");
    }
}

fn arb_cards(prefix: &'static str) -> impl Strategy<Value = Vec<Card>> {
    // Small pools, so MACs, slots and drivers collide often.
    let one = (0u8..6, 0u8..5, 0u8..3, any::<bool>(), any::<bool>());
    proptest::collection::vec(one, 0..6).prop_map(move |v| {
        let mut seen = Vec::new();
        let mut out = Vec::new();
        for (i, (mac, slot, drv, has_mac, has_slot)) in v.into_iter().enumerate() {
            let mac = if has_mac {
                format!("00:00:00:00:00:0{mac}")
            } else {
                String::new()
            };
            // A permanent MAC is unique on one host.
            if !mac.is_empty() && seen.contains(&mac) {
                continue;
            }
            seen.push(mac.clone());
            let slot = if has_slot {
                format!("0{slot}:00.0")
            } else {
                String::new()
            };
            out.push(card(
                &format!("{prefix}{i}"),
                &mac,
                &slot,
                ["igb", "ice", "r8169"][drv as usize],
            ));
        }
        out
    })
}

proptest! {
    /// For any two inventories: the matching is one-to-one, every archive NIC is matched or named unmatched
    /// (once), and a permanent MAC present on the target always decides.
    #[test]
    fn matching_properties(old in arb_cards("o"), new in arb_cards("n")) {
        let m = match_cards(&old, &new, &[]).unwrap();
        let mut olds: Vec<&str> = m.pairs.iter().map(|p| p.old.as_str()).collect();
        olds.extend(m.unmatched.iter().map(String::as_str));
        olds.sort();
        let mut want: Vec<&str> = old.iter().map(|c| c.name.as_str()).collect();
        want.sort();
        prop_assert_eq!(olds, want);
        let mut news: Vec<&str> = m.pairs.iter().map(|p| p.new.as_str()).collect();
        news.sort();
        let n = news.len();
        news.dedup();
        prop_assert_eq!(news.len(), n, "a target NIC taken twice: {:?}", m);
        prop_assert!(news.iter().all(|n| new.iter().any(|c| c.name == *n)));
        for o in &old {
            if let Some(t) = new.iter().find(|t| o.same_mac(t)) {
                prop_assert!(m.pairs.contains(&Pair { old: o.name.clone(), new: t.name.clone(), reason: Reason::PermanentMac }), "{:?}", m);
            }
        }
    }
}

#[test]
fn the_hook_says_why_an_inventory_was_not_used() {
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(host.path().join("sys/class/net")).unwrap();
    let ifaces = (b"etc/network/interfaces".to_vec(), IFACES.to_vec());
    let run = |archive: &HashMap<Vec<u8>, Vec<u8>>, paths: &[Vec<u8>]| {
        let ctx = Context {
            archive,
            target: &HashMap::new(),
            paths,
            selected: paths,
            root: host.path(),
            map_node: None,
            nic: &[],
        };
        (REWRITER.run)(&ctx).unwrap().note_texts()
    };
    let broken = HashMap::from([ifaces.clone(), (INVENTORY.to_vec(), b"{".to_vec())]);
    let notes = run(&broken, &[]);
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].starts_with(
            "NIC names not checked: the archive's /proxkeep/commands/network/nics.json: invalid type"
        ),
        "{notes:?}"
    );
    let too_large = HashMap::from([ifaces]);
    let notes = run(&too_large, &[INVENTORY.to_vec()]);
    assert_eq!(
        notes,
        [
            "NIC names not checked: the archive's NIC inventory (/proxkeep/commands/network/nics.json) is larger than 256.0 KiB"
        ]
    );
}
