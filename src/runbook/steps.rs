//! Sections 5 and 6 of the guide: the cluster (re-join or recover in place, or the single node's pmxcfs
//! restore), then the remaining restores by category and the checks after them.

use super::Section;
use super::facts::{Ctx, commands, from, heading, missing, text};
use super::parse;

pub(super) fn cluster(cx: &Ctx) -> Section {
    let a = cx.archive;
    let blocks = match (&cx.cluster, cx.pve()) {
        (Some((cl, p)), _) => {
            let others: Vec<&parse::Member> =
                cl.members.iter().filter(|m| m.name != cx.host).collect();
            let peer = others
                .first()
                .and_then(|m| m.addrs.first())
                .cloned()
                .unwrap_or("PEER-ADDRESS".into());
            let me = cl.members.iter().find(|m| m.name == cx.host);
            let links: Vec<String> = me
                .map(|m| {
                    m.addrs
                        .iter()
                        .enumerate()
                        .map(|(i, a)| format!("--link{i} {a}"))
                        .collect()
                })
                .unwrap_or_default();
            let names: Vec<&str> = others.iter().map(|m| m.name.as_str()).collect();
            vec![
                text(format!(
                    "{} was a member of cluster {} with {}.",
                    cx.host,
                    cl.name,
                    names.join(", ")
                )),
                from(&[p]),
                heading("A: the cluster is still running on the other nodes: re-join"),
                text(
                    "Do not restore /etc/pve, config.db or corosync on a node that joins a working cluster: the cluster's copy is the current one. Re-joining under the same name needs this fresh install (Proxmox pvecm documentation).",
                ),
                text(format!(
                    "On a remaining member ({}), remove the old node first, with this node powered off:",
                    names.join(" or ")
                )),
                commands(&[format!("pvecm delnode {}", cx.host)]),
                text(
                    "On this node, with the same host name and network as before (sections 2 and 4):",
                ),
                commands(&[
                    format!("pvecm add {peer} {}", links.join(" "))
                        .trim_end()
                        .to_string(),
                    "pvecm updatecerts".into(),
                    "pvecm status".into(),
                ]),
                text(format!(
                    "The guest configs under /etc/pve/nodes/{} stay in the cluster's database; check them with `qm list` and `pct list`.",
                    cx.host
                )),
                heading("B: the whole cluster is lost, or this node runs alone: recover in place"),
                text(
                    "The documented pmxcfs recovery: put the archived config.db in place with pve-cluster stopped (0600), with /etc/hostname and /etc/hosts as before, and the corosync authkey (it is not in /etc/pve); keep the node isolated from any other member while doing so.",
                ),
                commands(&[
                    format!("proxkeep restore {a} --only corosync --dry-run"),
                    format!("proxkeep restore {a} --only corosync"),
                    format!("proxkeep pmxcfs restore {a}"),
                    "pvecm expected 1    # only while the other members are gone".into(),
                    "reboot".into(),
                ]),
                from(&[
                    "proxkeep/pmxcfs/config.db",
                    "etc/corosync/authkey (not printed)",
                ]),
            ]
        }
        (None, true) => vec![
            text(
                "A single node: bring /etc/pve back from the archived pmxcfs database (pve-cluster is stopped and started around it; the current database is kept beside it).",
            ),
            commands(&[
                format!(
                    "proxkeep pmxcfs restore {a} --target /tmp/pmxcfs-rehearsal    # rehearsal: only the db file, under that dir"
                ),
                format!("proxkeep pmxcfs restore {a}"),
            ]),
            from(&["proxkeep/pmxcfs/config.db"]),
        ],
        (None, false) => vec![missing(
            "not a Proxmox VE node: no cluster and no pmxcfs to restore",
        )],
    };
    Section {
        title: "5. Cluster".into(),
        blocks,
    }
}

/// Categories restored in sections 2 to 5, and those that are facts only.
const EARLIER: &[&str] = &[
    "apt",
    "storage-stack",
    "zfs",
    "network",
    "pve-cluster",
    "corosync",
    "inventory",
];
/// The order the remaining categories go back in: boot and system first, then the services' own config.
const ORDER: &[&str] = &[
    "boot",
    "sysctl",
    "ssl",
    "accounts",
    "ssh",
    "pve-host",
    "ceph",
    "pbs-config",
    "firewall",
    "systemd",
    "cron",
    "mail",
    "local-scripts",
    "root-home",
    "proxkeep",
    "extra",
];

pub(super) fn restores(cx: &Ctx) -> Section {
    let mut blocks = vec![text(
        "Each category on its own, the plan (--dry-run) first; restore asks before it writes and keeps a safety archive of what it replaces.",
    )];
    let categories =
        cx.c.meta
            .as_ref()
            .map(|m| m.categories.clone())
            .unwrap_or_default();
    let rank = |c: &String| ORDER.iter().position(|o| o == c).unwrap_or(ORDER.len());
    let mut left: Vec<String> = categories
        .into_iter()
        .filter(|c| !EARLIER.contains(&c.as_str()) && cx.has(c))
        .collect();
    left.sort_by_key(rank);
    if left.is_empty() {
        blocks.push(missing("no other categories in this archive"));
    }
    for c in &left {
        let n = cx.count(c);
        blocks.push(heading(c));
        let what = crate::catalog::find(c).map_or("configured extra paths", |k| k.description);
        let entries = if n == 1 { "entry" } else { "entries" };
        blocks.push(text(format!("{what} ({n} {entries})")));
        blocks.push(commands(&cx.restore(&format!("--only {c}"))));
    }
    blocks.push(from(&[
        "proxkeep/meta.json (categories)",
        "proxkeep/index.json (entries)",
    ]));
    blocks.push(heading("Checks"));
    let mut checks = Vec::new();
    if cx.cluster.is_some() {
        checks.push("pvecm status");
    }
    if cx.pve() {
        checks.extend(["pvesm status", "qm list", "pct list"]);
    }
    if cx.pbs() {
        checks.extend([
            "proxmox-backup-manager datastore list",
            "proxmox-backup-manager remote list",
        ]);
    }
    checks.extend(["zpool status -x", "ip -br addr", "systemctl --failed"]);
    let mut lines: Vec<String> = checks.into_iter().map(String::from).collect();
    lines.push(format!(
        "proxkeep diff {} --live    # what still differs from the archive",
        cx.archive
    ));
    blocks.push(commands(&lines));
    Section {
        title: "6. Remaining restores, then checks".into(),
        blocks,
    }
}
