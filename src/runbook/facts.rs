//! What the archive says, turned into the guide's six sections (pure: [`Contents`] in, [`Runbook`] out).
//! Every fact cites the archive path it came from; a part without facts says so instead of vanishing.

use super::parse::{self, Cluster, Iface};
use super::{Block, Contents, Runbook, Section};
use crate::host::Role;

/// Packages a fresh install marks manually installed, left out of "installed on top". Kept short and
/// stated in the guide: a package missing here only shows up in the list and is harmless to install again;
/// the exact comparison is the `comm` line the guide prints, run on the fresh install.
pub const BASE_PACKAGES: &[&str] = &[
    "proxmox-ve",
    "proxmox-backup-server",
    "proxmox-default-kernel",
    "proxmox-backup",
    "postfix",
    "open-iscsi",
    "chrony",
    "ksm-control-daemon",
    "systemd-boot",
    "grub-pc",
    "grub-efi-amd64",
    "zfsutils-linux",
    "ifupdown2",
    "openssh-server",
    "locales",
    "console-setup",
    "keyboard-configuration",
    "linux-image-amd64",
];

const CMD: &str = "proxkeep/commands";

pub(super) fn text(t: impl Into<String>) -> Block {
    Block::Text { text: t.into() }
}
pub(super) fn missing(t: impl Into<String>) -> Block {
    Block::Missing { text: t.into() }
}
pub(super) fn heading(t: &str) -> Block {
    Block::Heading { text: t.into() }
}
pub(super) fn from(paths: &[&str]) -> Block {
    Block::From {
        paths: paths.iter().map(|p| p.to_string()).collect(),
    }
}
pub(super) fn commands(lines: &[String]) -> Block {
    Block::Commands {
        lines: lines.to_vec(),
    }
}
pub(super) fn table(head: &[&str], rows: Vec<Vec<String>>) -> Block {
    Block::Table {
        head: head.iter().map(|h| h.to_string()).collect(),
        rows,
    }
}

/// What the sections share: the archive's contents and facts several of them need.
pub(super) struct Ctx<'a> {
    pub c: &'a Contents,
    pub archive: &'a str,
    pub host: String,
    pub role: Role,
    pub cluster: Option<(Cluster, &'static str)>,
    pub ifaces: Vec<(Iface, String)>,
}

impl Ctx<'_> {
    pub(super) fn out(&self, category: &str, name: &str) -> (String, Option<String>) {
        let p = format!("{CMD}/{category}/{name}");
        let t = self.c.text(&p);
        (p, t)
    }
    pub(super) fn pve(&self) -> bool {
        matches!(self.role, Role::Pve | Role::Dual)
    }
    pub(super) fn pbs(&self) -> bool {
        matches!(self.role, Role::Pbs | Role::Dual)
    }
    /// The dry run, then the real one.
    pub(super) fn restore(&self, args: &str) -> Vec<String> {
        let a = self.archive;
        vec![
            format!("proxkeep restore {a} {args} --dry-run"),
            format!("proxkeep restore {a} {args}"),
        ]
    }
    /// Entries of `category` that a restore puts back (not proxkeep's own command outputs).
    pub(super) fn count(&self, category: &str) -> usize {
        let entries = self.c.index.entries.iter();
        entries
            .filter(|e| e.category == category && !e.path.starts_with("proxkeep/"))
            .count()
    }
    pub(super) fn has(&self, category: &str) -> bool {
        self.count(category) > 0
    }
}

/// `s` as one shell word: as it is when it is made of safe characters (proxkeep's own archive names), else
/// in single quotes.
fn shell_word(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "._-+:@%/=,~".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The guide for `c` (read from the archive file named `archive`).
pub fn build(c: &Contents, archive: &str) -> Runbook {
    let word = shell_word(archive);
    let archive = word.as_str();
    let meta = c.meta.as_ref();
    let host = meta.map_or_else(|| "unknown".into(), |m| m.host.clone());
    let cluster = [("etc/pve/corosync.conf"), ("etc/corosync/corosync.conf")]
        .into_iter()
        .find_map(|p| Some((parse::corosync(&c.text(p)?)?, p)));
    let mut ifaces = Vec::new();
    let iface_files = c
        .files
        .keys()
        .filter(|p| *p == "etc/network/interfaces" || p.starts_with("etc/network/interfaces.d/"));
    for p in iface_files {
        let parsed = parse::interfaces(&c.text(p).unwrap_or_default());
        ifaces.extend(parsed.into_iter().map(|i| (i, p.clone())));
    }
    let cx = Ctx {
        c,
        archive,
        role: meta.map_or(Role::Linux, |m| m.role),
        host: host.clone(),
        cluster,
        ifaces,
    };
    let mut r = Runbook {
        title: format!("Rebuild runbook for {host}"),
        archive: archive.to_string(),
        sections: vec![
            node(&cx),
            install(&cx),
            super::storage::section(&cx),
            network(&cx),
            super::steps::cluster(&cx),
            super::steps::restores(&cx),
        ],
    };
    r.redact(&c.secrets);
    r
}

/// Versions: meta.json first, then the stored command outputs.
fn versions(cx: &Ctx) -> Vec<(String, String, String)> {
    let v =
        cx.c.meta
            .as_ref()
            .map(|m| m.versions.clone())
            .unwrap_or_default();
    let (pvever_p, pvever) = cx.out("pve-host", "pveversion.txt");
    let (uname_p, uname) = cx.out("inventory", "uname.txt");
    let os = cx.c.text("etc/os-release");
    let mut out = Vec::new();
    let mut add = |k: &str, v: Option<String>, src: &str| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            out.push((k.to_string(), v, src.to_string()));
        }
    };
    let from_pveversion = pvever
        .as_deref()
        .and_then(|t| parse::pveversion(t, "pve-manager"));
    match v.pve {
        Some(p) => add("Proxmox VE", Some(p), "proxkeep/meta.json"),
        None => add("Proxmox VE", from_pveversion, &pvever_p),
    }
    add("Proxmox Backup Server", v.pbs, "proxkeep/meta.json");
    match (
        v.debian,
        os.as_deref()
            .and_then(|t| parse::os_release(t, "PRETTY_NAME")),
    ) {
        (d, Some(pretty)) => add(
            "Debian",
            Some(format!("{pretty} ({})", d.unwrap_or_default()).replace(" ()", "")),
            "etc/os-release",
        ),
        (d, None) => add("Debian", d, "proxkeep/meta.json"),
    }
    let meta = "proxkeep/meta.json".to_string();
    let kernel = v.kernel.map(|k| (k, meta)).or_else(|| {
        let k = uname
            .as_deref()
            .and_then(|u| u.split_whitespace().nth(2).map(str::to_string));
        k.map(|k| (k, uname_p))
    });
    let kernel = kernel.or_else(|| {
        let k = pvever.as_deref().and_then(parse::running_kernel);
        k.map(|k| (k, pvever_p.clone()))
    });
    if let Some((k, src)) = kernel {
        add("Kernel", Some(k), &src);
    }
    out
}

fn node(cx: &Ctx) -> Section {
    let mut blocks = Vec::new();
    let mut pairs = vec![("Host".to_string(), cx.host.clone())];
    let mut cited = vec!["proxkeep/meta.json".to_string()];
    let (fqdn_p, fqdn) = cx.out("inventory", "hostname-f.txt");
    if let Some(f) = fqdn.map(|f| f.trim().to_string()).filter(|f| !f.is_empty()) {
        pairs.push(("FQDN".into(), f));
        cited.push(fqdn_p);
    }
    pairs.push(("Role".into(), cx.role.name().to_string()));
    let created =
        cx.c.meta
            .as_ref()
            .map(|m| m.created.clone())
            .unwrap_or_default();
    pairs.push(("Archive made".into(), created));
    let versions = versions(cx);
    for (k, v, src) in &versions {
        pairs.push((k.clone(), v.clone()));
        cited.push(src.to_string());
    }
    blocks.push(Block::Facts { pairs });
    if versions.is_empty() {
        blocks.push(missing("no versions in this archive (meta.json has none and no pveversion or uname output is stored)"));
    }
    cited.sort();
    cited.dedup();
    blocks.push(Block::From { paths: cited });
    match (&cx.cluster, cx.pve()) {
        (Some((cl, p)), _) => {
            blocks.push(heading("Cluster"));
            blocks.push(text(format!(
                "Member of cluster {} ({} nodes).",
                cl.name,
                cl.members.len()
            )));
            let rows = cl.members.iter().map(|m| {
                let me = if m.name == cx.host { "this node" } else { "" };
                vec![
                    m.name.clone(),
                    m.nodeid.clone(),
                    m.addrs.join(", "),
                    me.into(),
                ]
            });
            blocks.push(table(
                &["node", "nodeid", "addresses", "note"],
                rows.collect(),
            ));
            blocks.push(from(&[p]));
        }
        (None, true) => blocks.push(missing(
            "no corosync.conf in this archive: a single node, not a cluster member",
        )),
        (None, false) => blocks.push(missing("not a Proxmox VE node: no cluster")),
    }
    Section {
        title: "1. What this node was".into(),
        blocks,
    }
}

fn iso(cx: &Ctx) -> String {
    let v = versions(cx);
    let get = |k: &str| v.iter().find(|(n, ..)| n == k).map(|(_, v, _)| v.clone());
    let minor = |s: String| {
        let s = s.split('/').nth(1).map(str::to_string).unwrap_or(s);
        s.split('.').take(2).collect::<Vec<_>>().join(".")
    };
    let ver = |k, name: &str| match get(k) {
        Some(v) => format!("the {name} {} ISO (this node ran {v})", minor(v.clone())),
        None => format!("the {name} ISO (its version is not recorded in this archive)"),
    };
    match cx.role {
        Role::Pve => ver("Proxmox VE", "Proxmox VE"),
        Role::Pbs => ver("Proxmox Backup Server", "Proxmox Backup Server"),
        Role::Dual => format!(
            "{}, then `apt install proxmox-backup-server` ({})",
            ver("Proxmox VE", "Proxmox VE"),
            get("Proxmox Backup Server").map_or("version not recorded".into(), |v| format!(
                "this node ran {v}"
            ))
        ),
        Role::Linux => match get("Debian") {
            Some(d) => format!("Debian: {d}"),
            None => "Debian (its release is not recorded in this archive)".into(),
        },
    }
}

fn install(cx: &Ctx) -> Section {
    let mut cited = vec!["proxkeep/meta.json".to_string()];
    cited.extend(versions(cx).into_iter().map(|(.., src)| src));
    cited.sort();
    cited.dedup();
    let mut blocks = vec![
        text(format!("Install {}.", iso(cx))),
        Block::From { paths: cited },
    ];
    let mgmt = cx.ifaces.iter().find(|(i, _)| !i.gateway.is_empty());
    if let Some((i, p)) = mgmt {
        blocks.push(text(format!(
            "In the installer: host name {}, management interface {} address {} gateway {}.",
            cx.host,
            i.name,
            i.addresses.first().cloned().unwrap_or_default(),
            i.gateway
        )));
        blocks.push(from(&["proxkeep/meta.json", p]));
    }
    blocks.push(heading("Repositories"));
    let mut rows = Vec::new();
    let sources =
        cx.c.files.iter().filter(|(p, _)| {
            *p == "etc/apt/sources.list" || p.starts_with("etc/apt/sources.list.d/")
        });
    for (p, data) in sources {
        let lines = parse::apt_sources(p, &String::from_utf8_lossy(data));
        rows.extend(lines.into_iter().map(|l| vec![l, p.clone()]));
    }
    if rows.is_empty() {
        blocks.push(missing("no apt sources in this archive"));
    } else {
        blocks.push(text(
            "The archived apt sources (credentials in URIs left out):",
        ));
        blocks.push(table(&["repository", "from"], rows));
        let mut cmds = cx.restore("--only apt");
        cmds.extend(["apt update".to_string(), "apt full-upgrade".to_string()]);
        blocks.push(text(
            "Put them (and the keyrings and apt config) back, then bring the install up to date:",
        ));
        blocks.push(commands(&cmds));
    }
    blocks.push(heading("Packages installed on top"));
    blocks.extend(packages(cx));
    Section {
        title: "2. Install".into(),
        blocks,
    }
}

fn packages(cx: &Ctx) -> Vec<Block> {
    let (manual_p, manual) = cx.out("apt", "apt-manual.txt");
    let (dpkg_p, dpkg) = cx.out("apt", "dpkg-list.txt");
    let states = cx.c.text("var/lib/apt/extended_states");
    let a = cx.archive;
    let base = BASE_PACKAGES.join(", ");
    let (list, how, cited): (Vec<String>, String, Vec<String>) = match (manual, dpkg, states) {
        (Some(m), ..) => (
            m.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect(),
            "`apt-mark showmanual` as stored at backup time".into(),
            vec![manual_p.clone()],
        ),
        (None, Some(d), Some(s)) => {
            let auto = parse::extended_states_auto(&s);
            let l = parse::dpkg_installed(&d)
                .into_iter()
                .filter(|p| !auto.contains(p));
            (
                l.collect(),
                "installed packages (`dpkg -l`) minus those apt's extended_states marks automatic"
                    .into(),
                vec![dpkg_p.clone(), "var/lib/apt/extended_states".into()],
            )
        }
        (None, Some(d), None) => {
            let n = parse::dpkg_installed(&d).len();
            return vec![
                text(format!(
                    "The archive holds the dpkg inventory ({n} installed packages) but not which of them were installed by hand, so no list is made. Compare on the fresh install (lists what the archive had that the fresh install lacks):"
                )),
                commands(&[format!(
                    "comm -13 <(dpkg-query -W -f='${{Package}}\\n' | sort) <(proxkeep cat {a} {dpkg_p} | awk '/^ii/{{print $2}}' | sed 's/:.*//' | sort)"
                )]),
                from(&[&dpkg_p]),
            ];
        }
        (None, None, _) => {
            return vec![missing(
                "no package inventory in this archive (neither apt-mark showmanual nor dpkg -l output is stored)",
            )];
        }
    };
    let extra: Vec<String> = list
        .into_iter()
        .filter(|p| !BASE_PACKAGES.contains(&p.as_str()))
        .filter(|p| {
            !p.starts_with("proxmox-kernel-")
                && !p.starts_with("pve-kernel-")
                && !p.starts_with("linux-image-")
        })
        .collect();
    let mut blocks = vec![text(format!(
        "How this list was made: {how}, minus the packages a fresh install already marks manual ({base}, and kernel images). A package that list misses is harmless to install again."
    ))];
    if extra.is_empty() {
        blocks.push(missing("no packages installed on top of the base install"));
    } else {
        blocks.push(commands(&[format!("apt install {}", extra.join(" "))]));
    }
    blocks.push(text("The exact difference, run on the fresh install:"));
    let src = cited.first().cloned().unwrap_or_default();
    blocks.push(commands(&[format!(
        "comm -23 <(proxkeep cat {a} {src} | sort) <(apt-mark showmanual | sort)"
    )]));
    blocks.push(Block::From { paths: cited });
    blocks
}

fn network(cx: &Ctx) -> Section {
    let mut blocks = Vec::new();
    if cx.ifaces.is_empty() {
        blocks.push(missing("no /etc/network/interfaces in this archive"));
    } else {
        let rows = cx.ifaces.iter().map(|(i, _)| {
            vec![
                i.name.clone(),
                i.kind.clone(),
                if i.auto { "auto".into() } else { String::new() },
                i.method.clone(),
                i.addresses.join(", "),
                i.gateway.clone(),
                i.members.clone(),
                i.settings.join(", "),
            ]
        });
        let head = [
            "interface",
            "kind",
            "start",
            "method",
            "address",
            "gateway",
            "ports / slaves / raw device",
            "settings",
        ];
        blocks.push(table(&head, rows.collect()));
        let mut files: Vec<&str> = cx.ifaces.iter().map(|(_, p)| p.as_str()).collect();
        files.dedup();
        blocks.push(from(&files));
    }
    blocks.push(heading("NIC inventory"));
    let (nics_p, nics) = cx.out("network", "nics.json");
    match nics.as_deref().and_then(parse::nics) {
        Some(rows) if !rows.is_empty() => {
            blocks.push(text("Match these to the new machine's ports by permanent MAC or PCI path (`ip -br link`, `ethtool -P NAME`):"));
            blocks.push(table(
                &[
                    "name",
                    "kind",
                    "permanent MAC",
                    "PCI path",
                    "driver",
                    "member of",
                ],
                rows,
            ));
            blocks.push(from(&[&nics_p]));
        }
        Some(_) => blocks.push(missing(format!(
            "the NIC inventory in this archive is empty ({nics_p})"
        ))),
        None => blocks.push(missing("no NIC inventory in this archive")),
    }
    blocks.push(heading("Restore"));
    blocks.push(text("From the console (the network goes down on the way); the plan shows the interface renames before anything is applied:"));
    let a = cx.archive;
    blocks.push(commands(&[
        format!("proxkeep restore {a} --only network --apply-network --dry-run"),
        format!("proxkeep restore {a} --only network --apply-network"),
    ]));
    Section {
        title: "4. Network".into(),
        blocks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(role: &str, files: &[(&str, &str)]) -> Contents {
        let meta = serde_json::json!({
            "format_version": 1, "tool": "proxkeep", "tool_version": "0", "host": "n1", "role": role,
            "created": "2026-01-01T00:00:00Z", "created_unix": 0, "categories": ["network", "boot"],
            "compression": {"algorithm": "zstd", "level": 3}
        });
        let mut c = Contents {
            meta: Some(serde_json::from_value(meta).unwrap()),
            ..Contents::default()
        };
        for (p, t) in files {
            c.files.insert(p.to_string(), t.as_bytes().to_vec());
        }
        c
    }

    fn texts(r: &Runbook) -> String {
        serde_json::to_string(r).unwrap()
    }

    #[test]
    fn archive_names_are_one_shell_word_and_names_cannot_drive_a_terminal() {
        assert_eq!(
            shell_word("due-pve-20261130T070425Z.tar.zst"),
            "due-pve-20261130T070425Z.tar.zst"
        );
        assert_eq!(shell_word("my backup's.tar"), "'my backup'\\''s.tar'");
        let c = contents(
            "pbs",
            &[("etc/network/interfaces", "iface eno1\x1b[31m inet manual\n")],
        );
        let md = super::super::md::render(&build(&c, "a b.tar.zst"));
        assert!(
            md.contains("proxkeep restore 'a b.tar.zst' --only network"),
            "{md}"
        );
        assert!(
            md.contains("eno1\\\\033[31m") && !md.contains('\x1b'),
            "{md}"
        );
    }

    #[test]
    fn parts_without_facts_say_so() {
        let r = build(&contents("pve", &[]), "a.tar.zst");
        let titles: Vec<&str> = r.sections.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "1. What this node was",
                "2. Install",
                "3. Storage, before any restore",
                "4. Network",
                "5. Cluster",
                "6. Remaining restores, then checks"
            ]
        );
        let all = texts(&r);
        for want in [
            "no versions in this archive",
            "no corosync.conf in this archive: a single node",
            "no apt sources in this archive",
            "no package inventory in this archive",
            "no ZFS pools in this archive (no zpool output is stored)",
            "no LVM volume groups in this archive",
            "no /etc/fstab in this archive",
            "no iSCSI configuration in this archive",
            "no multipath configuration in this archive",
            "no Ceph configuration in this archive",
            "no storage.cfg in this archive",
            "no /etc/network/interfaces in this archive",
            "no NIC inventory in this archive",
            "proxkeep pmxcfs restore a.tar.zst",
            "no other categories in this archive",
        ] {
            assert!(all.contains(want), "{want:?} not in {all}");
        }
        let pbs = texts(&build(&contents("pbs", &[]), "a.tar.zst"));
        assert!(pbs.contains("not a Proxmox VE node: no cluster and no pmxcfs to restore"));
        assert!(pbs.contains("no datastore.cfg in this archive"));
        assert!(!pbs.contains("pvesm status"));
    }

    #[test]
    fn facts_cite_their_files_and_secrets_are_redacted() {
        let mut c = contents(
            "pve",
            &[
                (
                    "etc/fstab",
                    "//n/s /mnt/topsecretvalue1 cifs defaults 0 0\n",
                ),
                ("etc/apt/sources.list", "deb http://x/debian trixie main\n"),
                (
                    "proxkeep/commands/apt/apt-manual.txt",
                    "postfix\nhtop\nproxmox-kernel-6.8\n",
                ),
            ],
        );
        super::super::learn_secrets(&mut c.secrets, b"password topsecretvalue1\n");
        let r = build(&c, "a.tar.zst");
        let all = texts(&r);
        assert!(!all.contains("topsecretvalue1"), "{all}");
        assert!(all.contains("/mnt/<redacted>"));
        assert!(all.contains("apt install htop\""), "{all}");
        let install = &r.sections[1].blocks;
        assert!(install.contains(&Block::From {
            paths: vec!["proxkeep/commands/apt/apt-manual.txt".into()]
        }));
        let storage = &r.sections[2].blocks;
        assert!(storage.contains(&Block::From {
            paths: vec!["etc/fstab".into()]
        }));
    }
}
