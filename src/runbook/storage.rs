//! Section 3 of the guide: the storage to bring back before any restore.

use super::facts::{Ctx, commands, from, heading, missing, table, text};
use super::parse;
use super::{Block, Section};

pub(super) fn section(cx: &Ctx) -> Section {
    let mut blocks = vec![text(
        "Bring these back before restoring any configuration: storage definitions that point at missing disks make Proxmox write to the root file system.",
    )];
    blocks.push(heading("ZFS pools"));
    blocks.extend(zfs(cx));
    blocks.push(heading("LVM volume groups and thin pools"));
    blocks.extend(lvm(cx));
    blocks.push(heading("Mounts (fstab)"));
    blocks.extend(mounts(cx));
    blocks.push(heading("iSCSI and multipath"));
    blocks.extend(iscsi(cx));
    blocks.push(heading("Ceph"));
    blocks.extend(ceph(cx));
    if cx.pve() {
        blocks.push(heading("Storages of the PVE configuration"));
        blocks.extend(storages(cx, "etc/pve/storage.cfg", "storage.cfg"));
    }
    if cx.pbs() {
        blocks.push(heading("PBS datastores"));
        blocks.extend(storages(
            cx,
            "etc/proxmox-backup/datastore.cfg",
            "datastore.cfg",
        ));
    }
    if cx.has("storage-stack") || cx.has("zfs") {
        blocks.push(heading("Restore"));
        blocks.push(text("Naming these categories restores their held files too (fstab, crypttab, zpool.cache): compare the UUIDs in the plan's diff with `blkid` on this machine before the real run."));
        let mut cmds = Vec::new();
        for c in ["storage-stack", "zfs"].iter().filter(|c| cx.has(c)) {
            cmds.extend(cx.restore(&format!("--only {c}")));
        }
        blocks.push(commands(&cmds));
    }
    Section {
        title: "3. Storage, before any restore".into(),
        blocks,
    }
}

fn zfs(cx: &Ctx) -> Vec<Block> {
    let (status_p, status) = cx.out("zfs", "zpool-status.txt");
    let (list_p, list) = cx.out("zfs", "zpool-list.txt");
    let guids = list.as_deref().map(parse::zpool_list).unwrap_or_default();
    let mut pools = status
        .as_deref()
        .map(parse::zpool_status)
        .unwrap_or_default();
    let mut cited = vec![status_p];
    if pools.is_empty() {
        pools = guids
            .iter()
            .map(|(n, _)| parse::Pool {
                name: n.clone(),
                ..Default::default()
            })
            .collect();
        cited = vec![list_p.clone()];
    } else if !guids.is_empty() {
        cited.push(list_p);
    }
    if pools.is_empty() {
        let why = if status.is_some() || list.is_some() {
            ""
        } else {
            " (no zpool output is stored)"
        };
        return vec![missing(format!("no ZFS pools in this archive{why}"))];
    }
    let mut blocks = Vec::new();
    let mut import = vec!["zpool import    # lists the pools the disks hold".to_string()];
    for p in &pools {
        let guid = guids
            .iter()
            .find(|(n, _)| *n == p.name)
            .map(|(_, g)| g.as_str())
            .unwrap_or("");
        let state = if p.state.is_empty() {
            String::new()
        } else {
            format!(", {}", p.state)
        };
        let guid_text = if guid.is_empty() {
            String::new()
        } else {
            format!(", GUID {guid}")
        };
        blocks.push(text(format!("Pool {}{state}{guid_text}:", p.name)));
        if p.layout.is_empty() {
            blocks.push(missing("its vdev layout is not stored"));
        } else {
            blocks.push(Block::Quote {
                lines: p.layout.clone(),
            });
        }
        if p.name == "rpool" {
            import.push(
                "# rpool: the installer makes the new root pool; the old one is not imported"
                    .into(),
            );
        } else {
            import.push(format!("zpool import -f -d /dev/disk/by-id {}", p.name));
        }
    }
    blocks.push(commands(&import));
    blocks.push(Block::From { paths: cited });
    blocks
}

fn lvm(cx: &Ctx) -> Vec<Block> {
    let (p, report) = cx.out("storage-stack", "lvm-report.json");
    let vgs = report.as_deref().map(parse::lvm_report).unwrap_or_default();
    if !vgs.is_empty() {
        let rows = vgs.iter().map(|v| {
            vec![
                v.name.clone(),
                v.size.clone(),
                v.pvs.join(", "),
                v.thin_pools.join(", "),
                v.lvs.to_string(),
            ]
        });
        let mut cmds = vec!["vgscan".to_string()];
        cmds.extend(
            vgs.iter()
                .filter(|v| v.name != "pve")
                .map(|v| format!("vgchange -ay {}", v.name)),
        );
        return vec![
            table(
                &[
                    "volume group",
                    "size",
                    "physical volumes",
                    "thin pools",
                    "LVs",
                ],
                rows.collect(),
            ),
            text(
                "The installer makes the `pve` group anew; the others come back with their disks:",
            ),
            commands(&cmds),
            from(&[&p]),
        ];
    }
    // Without the report, the metadata backups name the groups.
    let backups: Vec<&str> =
        cx.c.index
            .entries
            .iter()
            .filter_map(|e| e.path.strip_prefix("etc/lvm/backup/"))
            .collect();
    if backups.is_empty() {
        return vec![missing("no LVM volume groups in this archive")];
    }
    let mut cmds = vec!["vgscan".to_string()];
    cmds.extend(backups.iter().map(|v| format!("vgchange -ay {v}    # if its disks are back; else vgcfgrestore {v} from etc/lvm/backup/{v}")));
    vec![
        text(format!(
            "Volume groups with metadata backups (no LVM report is stored): {}",
            backups.join(", ")
        )),
        commands(&cmds),
        from(&["etc/lvm/backup/"]),
    ]
}

fn mounts(cx: &Ctx) -> Vec<Block> {
    let Some(fstab) = cx.c.text("etc/fstab") else {
        return vec![missing("no /etc/fstab in this archive")];
    };
    let (blkid_p, blkid) = cx.out("storage-stack", "blkid.txt");
    let devices = blkid.as_deref().map(parse::blkid).unwrap_or_default();
    let installer =
        |m: &parse::Mount| m.target == "/" || m.target == "/boot/efi" || m.fstype == "swap";
    let rows: Vec<Vec<String>> = parse::fstab(&fstab)
        .iter()
        .map(|m| {
            let uuid = m.spec.strip_prefix("UUID=").unwrap_or("");
            let dev = devices
                .iter()
                .find(|(_, u)| !uuid.is_empty() && u == uuid)
                .map(|(d, _)| d.clone());
            let note = if installer(m) {
                "made by the installer: keep the new one"
            } else {
                ""
            };
            vec![
                m.spec.clone(),
                m.target.clone(),
                m.fstype.clone(),
                m.options.clone(),
                dev.unwrap_or_default(),
                note.into(),
            ]
        })
        .collect();
    if rows.is_empty() {
        return vec![missing("no mounts in the archived fstab")];
    }
    let mut cited = vec!["etc/fstab".to_string()];
    if blkid.is_some() {
        cited.push(blkid_p);
    }
    vec![
        text(
            "UUIDs belong to the old disks: where a disk was replaced, use the new UUID (`blkid`).",
        ),
        table(
            &[
                "device",
                "mount point",
                "type",
                "options",
                "was (blkid)",
                "",
            ],
            rows,
        ),
        Block::From { paths: cited },
    ]
}

fn iscsi(cx: &Ctx) -> Vec<Block> {
    let mut blocks = Vec::new();
    // var/lib/iscsi/nodes/<target>/<portal,port,tpgt>/...: the node records name target and portal.
    let mut targets: Vec<(String, String)> = Vec::new();
    for e in &cx.c.index.entries {
        let mut parts = e
            .path
            .strip_prefix("var/lib/iscsi/nodes/")
            .unwrap_or("")
            .split('/');
        if let (Some(t), Some(portal)) = (parts.next(), parts.next()) {
            let portal = portal.split(',').take(2).collect::<Vec<_>>().join(":");
            let pair = (t.to_string(), portal);
            if !pair.0.is_empty() && !pair.1.is_empty() && !targets.contains(&pair) {
                targets.push(pair);
            }
        }
    }
    let initiator = cx.c.text("etc/iscsi/initiatorname.iscsi").and_then(|t| {
        t.lines()
            .find_map(|l| l.trim().strip_prefix("InitiatorName=").map(str::to_string))
    });
    if let Some(i) = &initiator {
        blocks.push(text(format!(
            "Initiator name (targets may allow only this one): {i}"
        )));
        blocks.push(from(&["etc/iscsi/initiatorname.iscsi"]));
    }
    if !targets.is_empty() {
        let mut cmds = Vec::new();
        for (t, p) in &targets {
            cmds.push(format!("iscsiadm -m discovery -t sendtargets -p {p}"));
            cmds.push(format!("iscsiadm -m node -T {t} -p {p} --login"));
        }
        blocks.push(commands(&cmds));
        blocks.push(from(&["var/lib/iscsi/nodes/"]));
    }
    if initiator.is_none() && targets.is_empty() {
        blocks.push(missing("no iSCSI configuration in this archive"));
    }
    let wwids: Vec<String> =
        cx.c.text("etc/multipath/wwids")
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().trim_matches('/').to_string())
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
    let multipath =
        cx.c.index
            .entries
            .iter()
            .any(|e| e.path == "etc/multipath.conf");
    if wwids.is_empty() && !multipath {
        blocks.push(missing("no multipath configuration in this archive"));
    } else {
        blocks.push(text(format!("Multipath: {} known WWIDs; install multipath-tools, restore storage-stack (below), then `multipath -r` and `multipath -ll`.", wwids.len())));
        blocks.push(from(&["etc/multipath.conf", "etc/multipath/wwids"]));
    }
    blocks
}

fn ceph(cx: &Ctx) -> Vec<Block> {
    let found = ["etc/pve/ceph.conf", "etc/ceph/ceph.conf"]
        .into_iter()
        .find_map(|p| Some((p, cx.c.text(p)?)));
    let Some((p, conf)) = found else {
        return vec![missing(
            "no Ceph configuration in this archive (no ceph.conf): this node was not a Ceph member",
        )];
    };
    let fsid = parse::ini_value(&conf, "fsid").unwrap_or_else(|| "unknown".into());
    let mons = parse::ini_value(&conf, "mon_host").unwrap_or_default();
    vec![
        text(format!(
            "Member of Ceph cluster {fsid} (monitors: {mons}). After the node is back in the PVE cluster (section 5): `pveceph install`, then bring the OSDs on this node's disks up with `ceph-volume lvm activate --all`; check with `ceph -s` and `ceph osd tree`."
        )),
        from(&[p]),
    ]
}

/// Storage definitions (`storage.cfg` or `datastore.cfg`): what each needs to exist before its config
/// is restored.
fn storages(cx: &Ctx, path: &str, name: &str) -> Vec<Block> {
    let Some(t) = cx.c.text(path) else {
        return vec![missing(format!("no {name} in this archive"))];
    };
    let keys = [
        "path",
        "pool",
        "vgname",
        "thinpool",
        "server",
        "export",
        "share",
        "datastore",
        "monhost",
    ];
    let rows: Vec<Vec<String>> = parse::section_config(&t)
        .iter()
        .map(|e| {
            let needs = keys
                .iter()
                .filter_map(|k| e.get(k).map(|v| format!("{k} {v}")));
            vec![
                e.id.clone(),
                e.kind.clone(),
                needs.collect::<Vec<_>>().join(", "),
            ]
        })
        .collect();
    if rows.is_empty() {
        return vec![missing(format!("no entries in the archived {name}"))];
    }
    vec![table(&["id", "type", "needs"], rows), from(&[path])]
}
