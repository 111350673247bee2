//! `proxkeep runbook` through the binary, on archives of the pve-node, pbs-node and dual fixtures: every
//! section with the fixture's facts, in Markdown and HTML; no secret of the fixture in either; the HTML
//! rendered by headless Chromium to a PNG that is not blank.
//!
//! The fixtures hold no command outputs, so the backup runs with stand-in commands on PATH (zpool, lvm,
//! blkid, apt-mark, pveversion, uname, hostname): their output is made up here and named as such.

use crate::util::*;
use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Stand-in `zpool`: one mirrored pool `tank` (status and list).
const ZPOOL_STAND_IN: &str = r#"case "$1" in
status) printf '  pool: tank\n state: ONLINE\nconfig:\n\n\tNAME                          STATE     READ WRITE CKSUM\n\ttank                          ONLINE       0     0     0\n\t  mirror-0                    ONLINE       0     0     0\n\t    /dev/disk/by-id/ata-STANDIN-A  ONLINE       0     0     0\n\t    /dev/disk/by-id/ata-STANDIN-B  ONLINE       0     0     0\n\nerrors: No known data errors\n' ;;
list) printf 'NAME    SIZE  GUID                 HEALTH\ntank   1.81T  4242424242424242424  ONLINE\n  mirror-0  1.81T  -  ONLINE\n' ;;
esac"#;

/// Stand-in `lvm fullreport`: the installer's `pve` group and a data group `standin-vg` with a thin pool.
const LVM_STAND_IN: &str = r#"printf '%s\n' '{"report":[{"vg":[{"vg_name":"pve","vg_size":"<100.00g"}],"pv":[{"pv_name":"/dev/sda3"}],"lv":[{"lv_name":"data","lv_attr":"twi-aotz--"},{"lv_name":"root","lv_attr":"-wi-ao----"}]},{"vg":[{"vg_name":"standin-vg","vg_size":"<2.00t"}],"pv":[{"pv_name":"/dev/sdb"}],"lv":[{"lv_name":"standin-thin","lv_attr":"twi-aotz--"}]}]}'"#;

/// A CIFS mount whose password sits inline in fstab, and an apt source with credentials in its URI: two
/// places a secret reaches a file the runbook quotes.
const FSTAB: &str = "UUID=3e6be9de-8139-11d1-9106-a43f08d823a6 / ext4 errors=remount-ro 0 1\n\
                     UUID=5a5a5a5a-0000-4000-8000-standin00001 /mnt/standin-data ext4 defaults,nofail 0 2\n\
                     //nas.lan/backup /mnt/nas cifs username=bk,password=fixture-fake-pbs-password 0 0\n";
const SECRET_SOURCE: &str =
    "deb https://bk:fixture-fake-bind-password@repo.example.net/debian trixie main\n";

/// An archive of `fixture` made with the stand-in commands; the env and the archive.
fn archive_of(fixture: &str) -> (Env, std::path::PathBuf) {
    let mut env = Env::new(fixture);
    env.stub("zpool", ZPOOL_STAND_IN);
    env.stub("lvm", LVM_STAND_IN);
    env.stub(
        "blkid",
        "printf '/dev/sdc1: UUID=\"5a5a5a5a-0000-4000-8000-standin00001\" TYPE=\"ext4\"\\n'",
    );
    env.stub(
        "apt-mark",
        "printf 'proxmox-ve\\npostfix\\nstandin-htop\\nstandin-vim\\n'",
    );
    env.stub("pveversion", "printf 'proxmox-ve: 9.0.0 (running kernel: 6.14.8-2-pve)\\npve-manager: 9.0.11 (running version: 9.0.11/standin)\\n'");
    env.stub(
        "uname",
        "echo 'Linux standin 6.14.8-2-pve #1 SMP x86_64 GNU/Linux'",
    );
    env.stub("hostname", "echo standin.example.com");
    // The NIC inventory comes from /sys/class/net under the root: the collection test's fake one.
    crate::collection::fake_sys(&env.root);
    fs::write(env.root.join("etc/fstab"), FSTAB).unwrap();
    let sources = env.root.join("etc/apt/sources.list.d/standin-private.list");
    fs::write(sources, SECRET_SOURCE).unwrap();
    env.write_config("[commands]\nrun = \"always\"\ntimeout = \"20s\"\n");
    let code = env.run(&["backup"]).code();
    assert!(code == 0 || code == 3, "backup exit {code}");
    let archive = env.only_archive();
    (env, archive)
}

/// Secret values in the fixture root: every word of 10 characters or more of each secret file (priv/,
/// keys, passwords, shadows, tokens, the corosync authkey), plus the two planted above.
fn secrets(root: &Path) -> Vec<String> {
    let mut out = vec![
        "fixture-fake-pbs-password".to_string(),
        "fixture-fake-bind-password".to_string(),
    ];
    let secret_name = |p: &str| {
        let name = p.rsplit('/').next().unwrap_or("");
        p.contains("/priv/")
            || [
                ".key",
                ".pw",
                ".cred",
                "shadow",
                "token",
                "authkey",
                "keyring",
                "tfa",
                "passphrase",
            ]
            .iter()
            .any(|n| name.contains(n))
    };
    let state = tree_state(root);
    let regular = state.iter().filter(|(_, (kind, ..))| kind == "file");
    for (f, _) in regular {
        let f = format!("/{f}");
        if !secret_name(&f) || f.ends_with(".pub") {
            continue;
        }
        let text = String::from_utf8_lossy(&fs::read(root.join(&f[1..])).unwrap()).into_owned();
        let words = text.split(|c: char| c.is_whitespace() || "\"',:;={}[]()<>".contains(c));
        out.extend(
            words
                .filter(|w| w.len() >= 10 && !w.contains("PLACEHOLDER"))
                .map(String::from),
        );
    }
    out.sort();
    out.dedup();
    out
}

fn assert_no_secrets(text: &str, secrets: &[String], what: &str) {
    for s in secrets {
        assert!(!text.contains(s.as_str()), "{what} shows the secret {s:?}");
    }
}

/// What every runbook must say about `fixture`, in either format (HTML escapes nothing these contain).
fn expected(fixture: &str) -> Vec<&'static str> {
    let mut want = vec![
        "1. What this node was",
        "2. Install",
        "3. Storage, before any restore",
        "4. Network",
        "5. Cluster",
        "6. Remaining restores, then checks",
        // pool names and vdev layout from the stored zpool output (stand-in)
        "Pool tank",
        "mirror-0 ONLINE",
        "zpool import -f -d /dev/disk/by-id tank",
        // LVM from the stored report (stand-in)
        "standin-vg",
        "standin-thin",
        "vgchange -ay standin-vg",
        // fstab with the UUID matched in blkid (stand-in)
        "UUID=5a5a5a5a-0000-4000-8000-standin00001",
        "/dev/sdc1",
        "password=&lt;redacted&gt;|password=<redacted>",
        // packages on top: apt-mark showmanual minus the base list
        "apt install standin-htop standin-vim",
        "deb https://repo.example.net/debian trixie main",
        "no Ceph configuration in this archive",
        "--only network --apply-network --dry-run",
        // the NIC inventory: eno2's permanent MAC (it is a bond member), PCI path and driver
        "3c:ec:ef:00:00:02",
        "igb",
        "0000:02:00.1",
    ];
    match fixture {
        "pbs-node" => want.extend([
            "pbs1",
            "deb https://enterprise.proxmox.com/debian/pbs bookworm pbs-enterprise",
            "192.0.2.20/24",
            "not a Proxmox VE node: no cluster",
            "path /mnt/datastore/store1",
            "proxmox-backup-manager datastore list",
            "--only pbs-config --dry-run",
        ]),
        _ => want.extend([
            "due",
            "deb http://download.proxmox.com/debian/pve trixie pve-no-subscription",
            "deb http://download.proxmox.com/debian/ceph-squid trixie no-subscription",
            "vmbr0",
            "bond0",
            "802.3ad",
            "testcluster",
            "uno",
            "tre",
            "10.10.10.1, 10.20.20.1",
            "pvecm add 10.10.10.3 --link0 10.10.10.2 --link1 10.20.20.2",
            "pvecm delnode due",
            "proxmox-ve: 9.0.0|9.0.11",
            "pvesm status",
            "qm list",
            "--only pve-host --dry-run",
        ]),
    }
    if fixture == "dual" {
        want.extend([
            "deb https://enterprise.proxmox.com/debian/pbs bookworm pbs-enterprise",
            "path /mnt/datastore/store1",
            "proxmox-backup-manager datastore list",
        ]);
    }
    want
}

fn check_facts(text: &str, fixture: &str, what: &str) {
    for want in expected(fixture) {
        let found = want.split('|').any(|w| text.contains(w));
        assert!(found, "{what} of {fixture} lacks {want:?}:\n{text}");
    }
}

/// Width, height and the share of pixels that are not (near) white, decoded from an 8-bit RGB/RGBA PNG.
fn png_ink(png: &[u8]) -> (u32, u32, f64) {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let (mut pos, mut idat) = (8, Vec::new());
    let (mut w, mut h, mut channels) = (0u32, 0u32, 0usize);
    while pos + 8 <= png.len() {
        let len = u32::from_be_bytes(png[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &png[pos + 4..pos + 8];
        let data = &png[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => {
                w = u32::from_be_bytes(data[0..4].try_into().unwrap());
                h = u32::from_be_bytes(data[4..8].try_into().unwrap());
                assert_eq!((data[8], data[12]), (8, 0), "8-bit, not interlaced");
                channels = match data[9] {
                    2 => 3,
                    6 => 4,
                    t => panic!("colour type {t}"),
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            _ => {}
        }
        pos += 12 + len;
    }
    let mut raw = Vec::new();
    flate2::read::ZlibDecoder::new(&idat[..])
        .read_to_end(&mut raw)
        .unwrap();
    let stride = w as usize * channels;
    assert_eq!(raw.len(), (stride + 1) * h as usize, "decoded size");
    let (mut prev, mut ink) = (vec![0u8; stride], 0u64);
    for row in raw.chunks(stride + 1) {
        let (filter, line) = (row[0], &row[1..]);
        let mut cur = vec![0u8; stride];
        for i in 0..stride {
            let a = if i >= channels {
                cur[i - channels] as i16
            } else {
                0
            };
            let b = prev[i] as i16;
            let c = if i >= channels {
                prev[i - channels] as i16
            } else {
                0
            };
            let pred = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => (a + b) / 2,
                4 => {
                    let p = a + b - c;
                    let (pa, pb, pc) = ((p - a).abs(), (p - b).abs(), (p - c).abs());
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                f => panic!("filter {f}"),
            };
            cur[i] = line[i].wrapping_add(pred as u8);
        }
        ink += cur
            .chunks(channels)
            .filter(|px| px[..3].iter().any(|v| *v < 200))
            .count() as u64;
        prev = cur;
    }
    (w, h, ink as f64 / (w as f64 * h as f64))
}

fn screenshot(html: &Path, env: &Env) -> Vec<u8> {
    let png = env.path("runbook.png");
    let profile = env.path("chromium-profile");
    sh_ok(&format!(
        "HOME='{}' {} --headless --no-sandbox --disable-gpu --user-data-dir='{}' --screenshot='{}' --window-size=1200,2000 'file://{}' 2>/dev/null",
        env.path("").display(),
        tool("chromium"),
        profile.display(),
        png.display(),
        html.display()
    ));
    fs::read(&png).unwrap()
}

/// Pages of the HTML printed to PDF by Chromium (the `/Count` of the page tree).
fn printed_pages(html: &Path, env: &Env) -> u32 {
    let pdf = env.path("runbook.pdf");
    sh_ok(&format!(
        "HOME='{}' {} --headless --no-sandbox --disable-gpu --user-data-dir='{}' --no-pdf-header-footer --print-to-pdf='{}' 'file://{}' 2>/dev/null",
        env.path("").display(),
        tool("chromium"),
        env.path("chromium-profile").display(),
        pdf.display(),
        html.display()
    ));
    let data = fs::read(&pdf).unwrap();
    assert!(data.starts_with(b"%PDF-"), "not a PDF");
    let text = String::from_utf8_lossy(&data);
    let tree = text.find("/Type /Pages").expect("no page tree in the PDF");
    let count = &text[tree..][text[tree..].find("/Count").expect("no /Count") + 6..];
    let digits: String = count
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap()
}

fn runbook_of(fixture: &str) {
    let (env, archive) = archive_of(fixture);
    let secrets = secrets(&env.root);
    assert!(secrets.len() > 3, "{secrets:?}");

    // Markdown on stdout, from the newest archive of this host (no ARCHIVE given).
    let md = env.run(&["runbook"]);
    md.expect(0);
    let md = md.stdout();
    check_facts(&md, fixture, "md");
    assert_no_secrets(&md, &secrets, "md");
    assert!(md.contains("<sub>from: `etc/network/interfaces`"), "{md}");

    // HTML into a file, 0600, by the archive's path.
    let out = env.path("runbook.html");
    env.run(&[
        "runbook",
        archive.to_str().unwrap(),
        "--format",
        "html",
        "--out",
        out.to_str().unwrap(),
    ])
    .expect(0);
    let mode = fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let html = fs::read_to_string(&out).unwrap();
    check_facts(&html, fixture, "html");
    assert_no_secrets(&html, &secrets, "html");
    let lower = html.to_ascii_lowercase();
    assert!(!lower.contains("<script"), "script in the html");
    for remote in [
        "src=\"http",
        "href=\"http",
        "src=http",
        "href=http",
        "url(",
        "@import",
        "<link",
        "<img",
        "<iframe",
    ] {
        assert!(!lower.contains(remote), "{remote} in the html");
    }
    assert!(lower.contains("@media print") && lower.contains("break-before: page"));

    // Rendered by a real browser: a valid PNG of the window size, with text on it.
    let png = screenshot(&out, &env);
    let (w, h, ink) = png_ink(&png);
    assert_eq!((w, h), (1200, 2000));
    assert!(
        ink > 0.01,
        "the page looks blank: {ink:.4} of the pixels are not white"
    );

    // Printed: a page break before each section (without them the PBS guide fits on four pages).
    let pages = printed_pages(&out, &env);
    assert!(pages >= 6, "{pages} printed pages for six sections");

    // Regenerated over the existing file: replaced atomically, still 0600.
    fs::write(&out, "old").unwrap();
    let r = env.run(&[
        "--json",
        "runbook",
        "latest",
        "--format",
        "md",
        "--out",
        out.to_str().unwrap(),
    ]);
    r.expect(0);
    assert_eq!(r.json()["sections"].as_array().unwrap().len(), 6);
    assert_eq!(fs::read_to_string(&out).unwrap(), md);
    assert_eq!(
        fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn runbook_of_the_pve_node() {
    runbook_of("pve-node");
}

#[test]
fn runbook_of_the_pbs_node() {
    runbook_of("pbs-node");
}

#[test]
fn runbook_of_a_dual_root() {
    runbook_of("dual");
}

#[test]
fn a_section_without_facts_says_so_and_a_damaged_archive_is_exit_6() {
    // No stand-ins and no commands: nothing stored about pools, LVM, NICs or packages.
    let env = Env::new("pbs-node");
    env.run(&["backup"]);
    let archive = env.only_archive();
    let md = env.run(&["runbook"]);
    md.expect(0);
    let md = md.stdout();
    for want in [
        "_no ZFS pools in this archive (no zpool output is stored)_",
        "_no LVM volume groups in this archive_",
        "_no /etc/fstab in this archive_",
        "_no iSCSI configuration in this archive_",
        "_no NIC inventory in this archive_|_the NIC inventory in this archive is empty",
        "_no package inventory in this archive",
    ] {
        assert!(
            want.split('|').any(|w| md.contains(w)),
            "{want:?} missing:\n{md}"
        );
    }
    let json = env.run(&["--json", "runbook"]);
    json.expect(0);
    assert_eq!(json.json()["sections"][0]["title"], "1. What this node was");

    // Cut off half way: the reader says where, exit 6.
    let data = fs::read(&archive).unwrap();
    let cut = env.path("cut.tar.zst");
    fs::write(&cut, &data[..data.len() / 2]).unwrap();
    let r = env.run(&["runbook", cut.to_str().unwrap()]);
    r.expect(6);
    assert!(r.stderr().contains("damaged"), "{}", r.stderr());
}

#[test]
fn a_runbook_of_a_remote_archive_names_it_on_that_remote() {
    tool("rclone");
    let mut env = Env::new("pbs-node");
    let loc = env.path("remote");
    fs::create_dir_all(&loc).unwrap();
    env.write_config(&format!(
        "[[remote]]\nname = \"loc\"\ntarget = \"loc:{}/archives\"\ntimeout = \"20s\"\n",
        loc.display()
    ));
    let with_remote = |args: &[&str]| {
        let mut c = env.cmd();
        c.env("RCLONE_CONFIG", "/dev/null")
            .env("RCLONE_CONFIG_LOC_TYPE", "local");
        Run(c.args(args).output().unwrap())
    };
    with_remote(&["backup"]).expect(0);
    let file = env.only_archive();
    let file = file.file_name().unwrap().to_str().unwrap();
    // Only the remote copy is left: the guide is made from the fetched one.
    fs::remove_file(env.only_archive()).unwrap();
    let r = with_remote(&["runbook", "loc:latest"]);
    r.expect(0);
    let md = r.stdout();
    assert!(
        md.contains(&format!(
            "proxkeep restore loc:{file} --only pbs-config --dry-run"
        )),
        "{md}"
    );
}

#[test]
fn a_runbook_of_an_encrypted_archive_needs_and_uses_the_identity() {
    let mut env = Env::new("pbs-node");
    let key = env.path("id.age");
    let r = env.run(&["key", "generate", "--out", key.to_str().unwrap()]);
    r.expect(0);
    let public = r.stdout().trim().to_string();
    env.write_config(&format!("[encryption]\nrecipients = [\"{public}\"]\n"));
    env.run(&["backup"]).expect(0);
    assert!(env.only_archive().to_string_lossy().ends_with(".age"));
    let without = env.run(&["runbook"]);
    assert_ne!(without.code(), 0, "{}", without.stdout());
    assert!(
        without.stderr().contains("encrypted: give --identity"),
        "{}",
        without.stderr()
    );
    let with = env.run(&["runbook", "-i", key.to_str().unwrap()]);
    with.expect(0);
    let md = with.stdout();
    assert!(md.contains("# Rebuild runbook for pbs1"), "{md}");
    assert!(md.contains("path /mnt/datastore/store1"), "{md}");
}
