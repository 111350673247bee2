//! `/etc/fstab` onto a new install: the target's own file stays as it is (its root, swap, `/boot` and EFI
//! entries, comments and anything else the installer wrote), and the archive's other mounts are appended,
//! each checked against the block devices the target has (its `blkid`):
//!
//! - `UUID=`, `LABEL=`, `PARTUUID=`, `PARTLABEL=` and their `/dev/disk/by-*` forms: carried when a device with
//!   that tag is present, else left out and named;
//! - kernel names (`/dev/sdb1`, `/dev/nvme0n1p2`, ...), which name another disk on other hardware: turned into
//!   `UUID=` by the archive's own `blkid` output, carried when that UUID is present, else left out;
//! - other device paths (`/dev/mapper/...`, LVM `/dev/VG/LV`, md): carried when the target has that device,
//!   else through their old UUID as above;
//! - ZFS legacy mounts (`pool/dataset`): carried when a `zfs_member` device of that pool is present;
//! - network (NFS, CIFS, ...), bind and other mounts: carried without a device check.
//!
//! `nofail` is added to every carried mount except virtual file systems (`tmpfs`, `proc`, ...): a disk that
//! is missing or a NAS that is down at boot must not drop the host into emergency mode, which is worse for
//! network mounts than for disks. A mount point the target's fstab already has is left to the target's entry.
//! Comments directly above a carried entry travel with it. Pure: text in, text out.

use std::collections::{BTreeMap, HashSet};

/// Mount points the new install owns: root, `/boot` and the EFI system partition (swap goes by its type).
const SYSTEM_MOUNTS: &[&str] = &["/", "/boot", "/boot/efi", "/efi"];

/// File systems with no device behind them: carried as they are, without `nofail`.
const VIRTUAL: &[&str] = &[
    "proc",
    "sysfs",
    "tmpfs",
    "devtmpfs",
    "devpts",
    "securityfs",
    "cgroup",
    "cgroup2",
    "debugfs",
    "hugetlbfs",
    "mqueue",
    "binfmt_misc",
    "efivarfs",
    "configfs",
    "fusectl",
    "pstore",
    "tracefs",
    "bpf",
    "ramfs",
    "rpc_pipefs",
    "nfsd",
];

/// Network file systems (also: any entry with `_netdev`, a `//host/share` or a `host:/path` source).
const NETWORK: &[&str] = &[
    "nfs",
    "nfs4",
    "cifs",
    "smb3",
    "smbfs",
    "sshfs",
    "fuse.sshfs",
    "glusterfs",
    "ceph",
    "fuse.ceph",
    "davfs",
    "9p",
];

/// Kernel block device names: bound to the order disks are found on this hardware.
const KERNEL_NAMES: &[&str] = &["sd", "hd", "vd", "xvd", "nvme", "mmcblk"];

/// Tags of `blkid` output an fstab source may name, and their `/dev/disk/by-*` directories.
const TAGS: &[(&str, &str)] = &[
    ("UUID", "/dev/disk/by-uuid/"),
    ("LABEL", "/dev/disk/by-label/"),
    ("PARTUUID", "/dev/disk/by-partuuid/"),
    ("PARTLABEL", "/dev/disk/by-partlabel/"),
];

/// One block device of `blkid` output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub tags: BTreeMap<String, String>,
}

/// Parse `blkid` output, in its default form (`/dev/sda1: UUID="..." TYPE="ext4"`, what a backup stores) or
/// `blkid -o export` (`DEVNAME=/dev/sda1` blocks separated by blank lines).
pub fn parse_blkid(text: &str) -> Vec<Device> {
    let mut out: Vec<Device> = Vec::new();
    if text.lines().any(|l| l.starts_with("DEVNAME=")) {
        let mut cur: Option<Device> = None;
        for line in text.lines().map(str::trim).chain([""]) {
            match line.split_once('=') {
                Some(("DEVNAME", v)) => {
                    out.extend(cur.take());
                    cur = Some(Device {
                        name: unescape(v),
                        ..Default::default()
                    });
                }
                Some((k, v)) => {
                    if let Some(d) = &mut cur {
                        d.tags.insert(k.to_string(), unescape(v));
                    }
                }
                None if line.is_empty() => out.extend(cur.take()),
                None => {}
            }
        }
        return out;
    }
    for line in text.lines() {
        let Some((name, rest)) = line.split_once(": ") else {
            continue;
        };
        let mut d = Device {
            name: name.trim().to_string(),
            ..Default::default()
        };
        let mut rest = rest.trim_start();
        while let Some((key, after)) = rest.split_once("=\"") {
            let (value, tail) = quoted(after);
            d.tags.insert(key.trim().to_string(), value);
            rest = tail.trim_start();
        }
        out.push(d);
    }
    out
}

/// A `blkid` quoted value (`\"` and `\\` escaped) up to its closing quote, and what follows it.
fn quoted(s: &str) -> (String, &str) {
    let mut value = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => value.extend(chars.next().map(|(_, c)| c)),
            '"' => return (value, &s[i + 1..]),
            c => value.push(c),
        }
    }
    (value, "")
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        out.extend(if c == '\\' { chars.next() } else { Some(c) });
    }
    out
}

fn by_tag<'a>(devs: &'a [Device], tag: &str, value: &str) -> Option<&'a Device> {
    devs.iter()
        .find(|d| d.tags.get(tag).is_some_and(|v| v == value))
}

/// A device by its path; `/dev/VG/LV` also as blkid lists it, `/dev/mapper/VG-LV` (dashes doubled).
fn by_name<'a>(devs: &'a [Device], name: &str) -> Option<&'a Device> {
    let alias = name.strip_prefix("/dev/").and_then(|rest| {
        let (vg, lv) = rest.split_once('/')?;
        (!["mapper", "disk", "md"].contains(&vg) && !lv.contains('/')).then(|| {
            format!(
                "/dev/mapper/{}-{}",
                vg.replace('-', "--"),
                lv.replace('-', "--")
            )
        })
    });
    devs.iter()
        .find(|d| d.name == name || alias.as_deref() == Some(d.name.as_str()))
}

/// The merged fstab and what the admin should know about it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    pub content: String,
    /// Mounts left out (missing device, mount point taken, no device list) and sources rewritten.
    pub notes: Vec<String>,
    pub carried: usize,
    pub left_out: usize,
}

/// One fstab line: its text and the byte spans of its whitespace-separated fields.
struct Line<'a> {
    text: &'a str,
    fields: Vec<(usize, usize)>,
}

impl<'a> Line<'a> {
    fn parse(text: &'a str) -> Line<'a> {
        let mut fields = Vec::new();
        let mut start = None;
        for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
            match (c.is_whitespace(), start) {
                (false, None) => start = Some(i),
                (true, Some(s)) => {
                    fields.push((s, i));
                    start = None;
                }
                _ => {}
            }
        }
        Line { text, fields }
    }
    fn is_comment(&self) -> bool {
        self.fields.is_empty() || self.text.trim_start().starts_with('#')
    }
    fn field(&self, i: usize) -> &'a str {
        self.fields.get(i).map_or("", |&(s, e)| &self.text[s..e])
    }
    /// The line with fields replaced (`(index, new text)`), the separators as they were; a missing options
    /// field is appended.
    fn with(&self, mut changes: Vec<(usize, String)>) -> String {
        changes.sort_by_key(|c| std::cmp::Reverse(c.0));
        let mut out = self.text.to_string();
        for (i, new) in changes {
            match self.fields.get(i) {
                Some(&(s, e)) => out.replace_range(s..e, &new),
                None => out = format!("{}\t{new}", out.trim_end()),
            }
        }
        out
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    System,
    Virtual,
    Network,
    Zfs,
    Device,
    /// Bind mounts, loop images, FUSE helpers: no device to check.
    Other,
}

fn classify(spec: &str, file: &str, vfstype: &str, opts: &str) -> Class {
    let opt = |o: &str| opts.split(',').any(|x| x == o);
    if SYSTEM_MOUNTS.contains(&file) || vfstype == "swap" {
        Class::System
    } else if VIRTUAL.contains(&vfstype) {
        Class::Virtual
    } else if NETWORK.contains(&vfstype)
        || opt("_netdev")
        || spec.starts_with("//")
        || (spec.contains(":/") && !spec.starts_with('/'))
    {
        Class::Network
    } else if vfstype == "zfs" {
        Class::Zfs
    } else if opt("bind") || opt("rbind") {
        Class::Other
    } else if spec.starts_with("/dev/")
        || TAGS.iter().any(|(t, _)| spec.starts_with(&format!("{t}=")))
    {
        Class::Device
    } else {
        Class::Other
    }
}

/// What the devices say about one source: present as it is, present under another source, or missing.
enum Found {
    Present,
    As(String),
    Missing(String),
}

fn is_kernel_name(spec: &str) -> bool {
    spec.strip_prefix("/dev/")
        .is_some_and(|n| KERNEL_NAMES.iter().any(|k| n.starts_with(k)) && !n.contains('/'))
}

fn find_device(spec: &str, old: &[Device], new: &[Device]) -> Found {
    let tag = TAGS.iter().find_map(|(t, dir)| {
        let v = spec
            .strip_prefix(&format!("{t}="))
            .map(|v| v.trim_matches('"'))
            .or_else(|| spec.strip_prefix(dir))?;
        Some((*t, v))
    });
    if let Some((t, v)) = tag {
        return match by_tag(new, t, v) {
            Some(_) => Found::Present,
            None => Found::Missing(format!("no device with {t}={v} on this host")),
        };
    }
    if !is_kernel_name(spec) && by_name(new, spec).is_some() {
        return Found::Present;
    }
    let Some(uuid) = by_name(old, spec).and_then(|d| d.tags.get("UUID")) else {
        return Found::Missing(format!(
            "{spec} is not on this host and the archive's blkid output gives no UUID for it"
        ));
    };
    match by_tag(new, "UUID", uuid) {
        Some(_) => Found::As(format!("UUID={uuid}")),
        None => Found::Missing(format!(
            "no device with UUID={uuid} (was {spec}) on this host"
        )),
    }
}

fn zfs_pool_present(spec: &str, new: &[Device]) -> Found {
    let pool = spec.split('/').next().unwrap_or(spec);
    let member = |d: &&Device| {
        d.tags.get("TYPE").is_some_and(|t| t == "zfs_member")
            && d.tags.get("LABEL").is_some_and(|l| l == pool)
    };
    match new.iter().find(member) {
        Some(_) => Found::Present,
        None => Found::Missing(format!("no disk of ZFS pool {pool} on this host")),
    }
}

/// Merge the archive's fstab into the target's. `old` is the archive's `blkid` output (for kernel names),
/// `new` the target's devices (`None`: unknown, so no device mount can be checked and none is carried).
pub fn merge(archive: &str, target: &str, old: &[Device], new: Option<&[Device]>) -> Merged {
    let target_lines: Vec<Line> = target.lines().map(Line::parse).collect();
    let entries = || target_lines.iter().filter(|l| !l.is_comment());
    let mut taken: HashSet<String> = entries().map(|l| l.field(1).to_string()).collect();
    let mut sources: HashSet<String> = entries().map(|l| l.field(0).to_string()).collect();
    let target_comments: HashSet<&str> = target_lines
        .iter()
        .filter(|l| l.is_comment())
        .map(|l| l.text.trim())
        .collect();
    let mut m = Merged::default();
    let mut carried: Vec<String> = Vec::new();
    let mut comments: Vec<&str> = Vec::new();
    for line in archive.lines().map(Line::parse) {
        if line.is_comment() {
            match line.fields.is_empty() {
                true => comments.clear(),
                false if !target_comments.contains(line.text.trim()) => comments.push(line.text),
                false => {}
            }
            continue;
        }
        let above = std::mem::take(&mut comments);
        let (spec, file, vfstype, opts) =
            (line.field(0), line.field(1), line.field(2), line.field(3));
        let class = classify(spec, file, vfstype, opts);
        if file.is_empty() {
            m.notes.push(format!(
                "fstab: the archive's line {spec:?} has no mount point: left out"
            ));
            m.left_out += 1;
            continue;
        }
        if class == Class::System {
            continue;
        }
        let what = format!("fstab: {file} ({spec})");
        let found = match (class, new) {
            (Class::Device | Class::Zfs, None) => {
                Found::Missing("this host's block devices are unknown (blkid gave no list)".into())
            }
            (Class::Device, Some(new)) => find_device(spec, old, new),
            (Class::Zfs, Some(new)) => zfs_pool_present(spec, new),
            _ => Found::Present,
        };
        let source = match &found {
            Found::Missing(_) => None,
            Found::Present => Some(spec),
            Found::As(s) => Some(s.as_str()),
        };
        if taken.contains(file) {
            // Already there (a second restore): nothing to say.
            if !entries().any(|l| l.field(1) == file && Some(l.field(0)) == source) {
                m.notes.push(format!(
                    "{what} left out: this host's fstab already mounts {file}"
                ));
                m.left_out += 1;
            }
            continue;
        }
        let mut changes = Vec::new();
        let source = match found {
            Found::Missing(why) => {
                m.notes.push(format!("{what} left out: {why}"));
                m.left_out += 1;
                continue;
            }
            Found::Present => spec.to_string(),
            Found::As(new_spec) => {
                m.notes.push(format!(
                    "{what}: {spec} → {new_spec} (from the archive's blkid output)"
                ));
                changes.push((0, new_spec.clone()));
                new_spec
            }
        };
        if class != Class::Virtual && sources.contains(&source) {
            m.notes.push(format!(
                "{what} left out: this host's fstab already mounts {source}"
            ));
            m.left_out += 1;
            continue;
        }
        if class != Class::Virtual && !opts.split(',').any(|o| o == "nofail") {
            let opts = match opts {
                "" => "defaults,nofail".to_string(),
                o => format!("{o},nofail"),
            };
            changes.push((3, opts));
        }
        taken.insert(file.to_string());
        sources.insert(source);
        carried.extend(above.iter().map(|c| c.to_string()));
        carried.push(line.with(changes));
        m.carried += 1;
    }
    m.content = target.to_string();
    if !carried.is_empty() {
        if !m.content.is_empty() && !m.content.ends_with('\n') {
            m.content.push('\n');
        }
        m.content
            .push_str("# Carried over from the backup by proxkeep restore (nofail added).\n");
        for l in carried {
            m.content.push_str(&l);
            m.content.push('\n');
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD_BLKID: &str = "\
/dev/sda2: UUID=\"1111-AAAA\" BLOCK_SIZE=\"512\" TYPE=\"vfat\" PARTUUID=\"p-sda2\"
/dev/sda3: UUID=\"old-root\" TYPE=\"LVM2_member\" PARTUUID=\"p-sda3\"
/dev/sdb1: UUID=\"data-uuid\" BLOCK_SIZE=\"4096\" TYPE=\"ext4\" PARTUUID=\"p-sdb1\"
/dev/sdc1: UUID=\"gone-uuid\" TYPE=\"xfs\"
/dev/sdd1: LABEL=\"tank\" UUID=\"123\" UUID_SUB=\"456\" TYPE=\"zfs_member\"
/dev/mapper/vg--data-backups: UUID=\"lv-uuid\" TYPE=\"ext4\"
";
    const NEW_EXPORT: &str = "\
DEVNAME=/dev/nvme0n1p2
UUID=2222-BBBB
TYPE=vfat

DEVNAME=/dev/sdb1
UUID=data-uuid
TYPE=ext4
PARTUUID=p-sdb1

DEVNAME=/dev/sde1
LABEL=media\\ disk
UUID=media-uuid
TYPE=ext4

DEVNAME=/dev/mapper/vg--data-backups
UUID=lv-uuid
TYPE=ext4

DEVNAME=/dev/nvme1n1p1
LABEL=rpool
UUID=987
TYPE=zfs_member
";

    fn tags(d: &Device) -> Vec<(&str, &str)> {
        d.tags
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn blkid_default_and_export_forms() {
        let old = parse_blkid(OLD_BLKID);
        assert_eq!(old.len(), 6);
        assert_eq!(old[2].name, "/dev/sdb1");
        assert_eq!(
            tags(&old[2]),
            [
                ("BLOCK_SIZE", "4096"),
                ("PARTUUID", "p-sdb1"),
                ("TYPE", "ext4"),
                ("UUID", "data-uuid")
            ]
        );
        let new = parse_blkid(NEW_EXPORT);
        assert_eq!(new.len(), 5);
        assert_eq!(new[2].tags["LABEL"], "media disk");
        assert_eq!(new[3].name, "/dev/mapper/vg--data-backups");
        let q = parse_blkid("/dev/x: LABEL=\"a \\\"b\\\"\" TYPE=\"ext4\"\n");
        assert_eq!(q[0].tags["LABEL"], "a \"b\"");
        assert!(by_name(&new, "/dev/vg-data/backups").is_some());
    }

    /// (archive line, the carried line or `None` when left out, a fragment of its note).
    const TABLE: &[(&str, Option<&str>, &str)] = &[
        (
            "UUID=data-uuid /srv/data ext4 defaults 0 2",
            Some("UUID=data-uuid /srv/data ext4 defaults,nofail 0 2"),
            "",
        ),
        (
            "/dev/sdb1\t/srv/b\text4\tnoatime\t0\t2",
            Some("UUID=data-uuid\t/srv/b\text4\tnoatime,nofail\t0\t2"),
            "/dev/sdb1 → UUID=data-uuid",
        ),
        (
            "/dev/sdc1 /srv/c xfs defaults 0 2",
            None,
            "no device with UUID=gone-uuid (was /dev/sdc1)",
        ),
        (
            "/dev/sdz9 /srv/z ext4 defaults 0 2",
            None,
            "gives no UUID for it",
        ),
        (
            "UUID=nope /srv/n ext4 defaults 0 2",
            None,
            "no device with UUID=nope",
        ),
        (
            "PARTUUID=p-sdb1 /srv/p ext4 rw,nofail 0 2",
            Some("PARTUUID=p-sdb1 /srv/p ext4 rw,nofail 0 2"),
            "",
        ),
        (
            "/dev/disk/by-uuid/media-uuid /srv/m ext4 rw 0 2",
            Some("/dev/disk/by-uuid/media-uuid /srv/m ext4 rw,nofail 0 2"),
            "",
        ),
        (
            "LABEL=other /srv/l ext4 rw 0 2",
            None,
            "no device with LABEL=other",
        ),
        (
            "/dev/vg-data/backups /backups ext4 defaults 0 2",
            Some("/dev/vg-data/backups /backups ext4 defaults,nofail 0 2"),
            "",
        ),
        (
            "tank/legacy /tank/legacy zfs defaults 0 0",
            None,
            "no disk of ZFS pool tank",
        ),
        (
            "//nas/share /mnt/nas cifs credentials=/root/.smb 0 0",
            Some("//nas/share /mnt/nas cifs credentials=/root/.smb,nofail 0 0"),
            "",
        ),
        (
            "nas:/export /mnt/nfs nfs4 defaults 0 0",
            Some("nas:/export /mnt/nfs nfs4 defaults,nofail 0 0"),
            "",
        ),
        (
            "/srv/data/iso /var/lib/vz/template/iso none bind 0 0",
            Some("/srv/data/iso /var/lib/vz/template/iso none bind,nofail 0 0"),
            "",
        ),
        (
            "tmpfs /tmp tmpfs size=2G 0 0",
            Some("tmpfs /tmp tmpfs size=2G 0 0"),
            "",
        ),
        ("/dev/sdb1", None, "has no mount point"),
        (
            "rpool/legacy /srv/legacy zfs defaults 0 0",
            Some("rpool/legacy /srv/legacy zfs defaults,nofail 0 0"),
            "",
        ),
        (
            "UUID=media-uuid /srv/short ext4",
            Some("UUID=media-uuid /srv/short ext4\tdefaults,nofail"),
            "",
        ),
        // The new install's own: never carried.
        ("/dev/pve/root / ext4 errors=remount-ro 0 1", None, ""),
        ("UUID=1111-AAAA /boot/efi vfat defaults 0 1", None, ""),
        ("/dev/pve/swap none swap sw 0 0", None, ""),
        ("proc /proc proc defaults 0 0", None, ""),
        // Taken by the target's own entry.
        (
            "UUID=data-uuid /mnt/taken ext4 defaults 0 2",
            None,
            "already mounts /mnt/taken",
        ),
    ];

    const TARGET: &str = "# <file system> <mount point> <type> <options> <dump> <pass>\n\
                          /dev/pve/root / ext4 errors=remount-ro 0 1\n\
                          UUID=2222-BBBB /boot/efi vfat defaults 0 1\n\
                          /dev/pve/swap none swap sw 0 0\n\
                          proc /proc proc defaults 0 0\n\
                          /dev/sde1 /mnt/taken ext4 defaults 0 2\n";

    #[test]
    fn each_kind_of_mount() {
        let old = parse_blkid(OLD_BLKID);
        let new = parse_blkid(NEW_EXPORT);
        for (line, carried, note) in TABLE {
            let m = merge(line, TARGET, &old, Some(&new));
            let added = m.content.strip_prefix(TARGET).unwrap();
            match carried {
                Some(c) => {
                    assert_eq!(m.carried, 1, "{line}: {m:?}");
                    assert!(added.ends_with(&format!("{c}\n")), "{line}: {added:?}");
                }
                None => assert_eq!(added, "", "{line}"),
            }
            if note.is_empty() {
                assert!(m.notes.is_empty(), "{line}: {:?}", m.notes);
            } else {
                assert!(
                    m.notes.iter().any(|n| n.contains(note)),
                    "{line}: {:?}",
                    m.notes
                );
                assert!(m.notes.iter().all(|n| n.starts_with("fstab: ")));
            }
        }
    }

    #[test]
    fn comments_travel_with_their_entry_and_a_second_merge_changes_nothing() {
        let archive = "# <file system> <mount point> <type> <options> <dump> <pass>\n\
                       # / was on /dev/sda3 during installation\n\
                       UUID=old-root / ext4 errors=remount-ro 0 1\n\n\
                       # data disk, bought 2023\n\
                       /dev/sdb1 /srv/data ext4 defaults 0 2\n\
                       # the old USB disk\n\
                       /dev/sdc1 /srv/usb xfs defaults 0 2\n";
        let old = parse_blkid(OLD_BLKID);
        let new = parse_blkid(NEW_EXPORT);
        let m = merge(archive, TARGET, &old, Some(&new));
        let added = m.content.strip_prefix(TARGET).unwrap();
        assert_eq!(
            added,
            "# Carried over from the backup by proxkeep restore (nofail added).\n\
             # data disk, bought 2023\n\
             UUID=data-uuid /srv/data ext4 defaults,nofail 0 2\n"
        );
        assert_eq!((m.carried, m.left_out), (1, 1));
        let again = merge(archive, &m.content, &old, Some(&new));
        assert_eq!(again.content, m.content);
        assert_eq!(
            again.notes,
            m.notes[1..],
            "only the missing device is named again"
        );
    }

    #[test]
    fn without_a_device_list_no_device_mount_is_carried() {
        let archive = "UUID=data-uuid /srv/data ext4 defaults 0 2\n//nas/s /mnt/s cifs rw 0 0\n";
        let m = merge(archive, "/dev/sda1 / ext4 defaults 0 1", &[], None);
        assert_eq!(
            m.content,
            "/dev/sda1 / ext4 defaults 0 1\n\
             # Carried over from the backup by proxkeep restore (nofail added).\n\
             //nas/s /mnt/s cifs rw,nofail 0 0\n"
        );
        assert!(
            m.notes[0].contains("block devices are unknown"),
            "{:?}",
            m.notes
        );
    }

    proptest::proptest! {
        /// Whatever both files hold: the target's text stays as it is at the top, no mount point is mounted
        /// twice, every carried mount but a virtual one has `nofail`, and a second merge adds nothing.
        #[test]
        fn keeps_the_target_never_mounts_twice_and_is_idempotent(
            archive in proptest::collection::vec(proptest::sample::select(TABLE.iter().map(|r| r.0).collect::<Vec<_>>()), 0..8),
            target in proptest::collection::vec(proptest::sample::select(TABLE.iter().map(|r| r.0).collect::<Vec<_>>()), 0..4),
        ) {
            let (old, new) = (parse_blkid(OLD_BLKID), parse_blkid(NEW_EXPORT));
            let (archive, target) = (archive.join("\n"), target.join("\n"));
            let m = merge(&archive, &target, &old, Some(&new));
            proptest::prop_assert!(m.content.starts_with(&target));
            let carried = &m.content[target.len()..];
            let mut seen = HashSet::new();
            for l in target.lines().map(Line::parse).filter(|l| !l.is_comment()) {
                seen.insert(l.field(1).to_string());
            }
            for l in carried.lines().map(Line::parse).filter(|l| !l.is_comment()) {
                proptest::prop_assert!(seen.insert(l.field(1).to_string()), "{} twice", l.field(1));
                let virt = VIRTUAL.contains(&l.field(2));
                proptest::prop_assert!(virt || l.field(3).split(',').any(|o| o == "nofail"), "{}", l.text);
            }
            proptest::prop_assert_eq!(merge(&archive, &m.content, &old, Some(&new)).content, m.content);
        }
    }
}
