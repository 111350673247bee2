//! The consistency checks of a restored tree (`tree`: the scratch directory the archive was restored into,
//! standing for `/`). Each returns one [`Check`]; a check with nothing to check is skipped with the reason.

use super::{Check, Facts};
use crate::catalog::{CATEGORIES, Source};
use crate::pmxcfs::{NodeKind, read_tree};
use crate::pveconf;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ffi::OsString;
use std::fs;
use std::path::{Component, Path, PathBuf};

/// Every check, in report order.
pub fn all(tree: &Path, facts: &Facts) -> Vec<Check> {
    vec![
        pmxcfs(tree, facts),
        guests(tree),
        structure(tree, "storage.cfg", &["etc/pve/storage.cfg"], |t| {
            pveconf::section_config(t).map(|s| format!("{} storages", s.len()))
        }),
        structure(
            tree,
            "corosync.conf",
            &["etc/pve/corosync.conf", "etc/corosync/corosync.conf"],
            |t| pveconf::corosync(t).map(|b| format!("{} top-level blocks", b.blocks.len())),
        ),
        structure(tree, "user.cfg", &["etc/pve/user.cfg"], |t| {
            pveconf::user_config(t).map(|u| format!("{} users, {} ACLs", u.users, u.acls))
        }),
        symlinks(tree),
        interfaces(tree, facts),
        fstab(tree, facts),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    File,
    Dir,
    Link,
}

impl Kind {
    fn name(self) -> &'static str {
        ["file", "directory", "symlink"][self as usize]
    }
}

/// Every entry under `tree/rel` (symlinks not followed), as paths relative to `tree`, sorted.
fn walk(tree: &Path, rel: &str) -> BTreeMap<String, Kind> {
    let mut out = BTreeMap::new();
    let mut todo = vec![rel.to_string()];
    while let Some(dir) = todo.pop() {
        let Ok(rd) = fs::read_dir(tree.join(&dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let p = if dir.is_empty() {
                name
            } else {
                format!("{dir}/{name}")
            };
            let kind = match e.file_type() {
                Ok(t) if t.is_symlink() => Kind::Link,
                Ok(t) if t.is_dir() => Kind::Dir,
                _ => Kind::File,
            };
            if kind == Kind::Dir {
                todo.push(p.clone());
            }
            out.insert(p, kind);
        }
    }
    out
}

/// `/etc/pve` as restored against the tree in the archived `config.db`: the same files with the same bytes.
pub fn pmxcfs(tree: &Path, facts: &Facts) -> Check {
    const NAME: &str = "pmxcfs";
    if !tree.join("etc/pve").is_dir() {
        return Check::skipped(NAME, "no /etc/pve in the archive (not a PVE node)");
    }
    let Some(db) = &facts.config_db else {
        return Check::missing(NAME, "the archive holds /etc/pve but no config.db snapshot");
    };
    let rows = match read_tree(db) {
        Ok(r) => r,
        Err(e) => {
            return Check::failed(
                NAME,
                "the archived config.db does not read",
                vec![e.to_string()],
            );
        }
    };
    let restored = walk(tree, "etc/pve");
    let mut problems = Vec::new();
    let mut in_db = BTreeSet::new();
    for r in &rows {
        let p = format!("etc/pve/{}", r.path);
        let want = if r.kind == NodeKind::Dir {
            Kind::Dir
        } else {
            Kind::File
        };
        match restored.get(&p) {
            None => problems.push(format!("/{p}: in config.db, not in /etc/pve")),
            Some(k) if *k != want => problems.push(format!(
                "/{p}: a {} in config.db, a {} in /etc/pve",
                want.name(),
                k.name()
            )),
            Some(Kind::File) if fs::read(tree.join(&p)).ok().as_deref() != Some(&r.data[..]) => {
                problems.push(format!(
                    "/{p}: content differs between /etc/pve and config.db"
                ))
            }
            Some(_) => {}
        }
        in_db.insert(p);
    }
    // pmxcfs' own links (local, qemu-server, lxc, openvz) are not rows of the db.
    let extra = restored
        .iter()
        .filter(|(p, k)| **k != Kind::Link && !in_db.contains(*p));
    problems.extend(extra.map(|(p, _)| format!("/{p}: in /etc/pve, not in config.db")));
    let files = rows.iter().filter(|r| r.kind == NodeKind::File).count();
    let detail = match problems.len() {
        0 => format!(
            "{files} files and {} directories agree with config.db",
            rows.len() - files
        ),
        n => format!(
            "/etc/pve and config.db disagree on {n} paths: the backup caught pmxcfs mid-write, or the db is stale"
        ),
    };
    Check::from_problems(NAME, detail, problems)
}

/// Files under `tree` matching `etc/pve/nodes/*/{qemu-server,lxc}/*.conf`.
fn guest_files(tree: &Path) -> Vec<String> {
    let nodes = walk(tree, "etc/pve/nodes");
    let is_guest = |p: &str| {
        let parts: Vec<&str> = p.split('/').collect();
        parts.len() == 6
            && ["qemu-server", "lxc"].contains(&parts[4])
            && parts[5].ends_with(".conf")
    };
    let files = nodes
        .into_iter()
        .filter(|(p, k)| *k == Kind::File && is_guest(p));
    files.map(|(p, _)| p).collect()
}

/// Every VM and CT config parses as `key: value` lines with `[snapshot]` sections.
pub fn guests(tree: &Path) -> Check {
    const NAME: &str = "guest-configs";
    let files = guest_files(tree);
    if files.is_empty() {
        return Check::skipped(NAME, "no VM or CT configs in the archive");
    }
    let mut problems = Vec::new();
    let mut snapshots = 0;
    for f in &files {
        match fs::read_to_string(tree.join(f)).map_err(|e| e.to_string()) {
            Ok(t) => match pveconf::guest_config(&t) {
                Ok(c) => snapshots += c.snapshots.len(),
                Err(e) => problems.push(format!("/{f}: {e}")),
            },
            Err(e) => problems.push(format!("/{f}: {e}")),
        }
    }
    let detail = format!(
        "{} VM/CT configs ({snapshots} snapshot sections)",
        files.len()
    );
    Check::from_problems(NAME, detail, problems)
}

/// Each of `paths` that the archive holds parses with `parse`.
fn structure(
    tree: &Path,
    name: &'static str,
    paths: &[&str],
    parse: impl Fn(&str) -> Result<String, pveconf::SyntaxError>,
) -> Check {
    let present: Vec<&&str> = paths.iter().filter(|p| tree.join(p).is_file()).collect();
    if present.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| format!("/{p}")).collect();
        return Check::skipped(name, format!("no {} in the archive", shown.join(" or ")));
    }
    let mut problems = Vec::new();
    let mut said = Vec::new();
    for p in present {
        match fs::read_to_string(tree.join(p)).map_err(|e| e.to_string()) {
            Ok(t) => match parse(&t) {
                Ok(what) => said.push(format!("/{p}: {what}")),
                Err(e) => problems.push(format!("/{p}: {e}")),
            },
            Err(e) => problems.push(format!("/{p}: {e}")),
        }
    }
    Check::from_problems(name, said.join("; "), problems)
}

/// Where `rel` (relative to `tree`) leads with every symlink on the way followed, absolute targets taken
/// against `tree` and `..` never above it; `None` for a loop.
fn follow(tree: &Path, rel: &str) -> Option<PathBuf> {
    let mut todo: VecDeque<OsString> = Path::new(rel)
        .components()
        .map(|c| c.as_os_str().to_os_string())
        .collect();
    let mut cur = PathBuf::new();
    let mut hops = 0;
    while let Some(c) = todo.pop_front() {
        match Path::new(&c).components().next() {
            Some(Component::ParentDir) => {
                cur.pop();
            }
            Some(Component::Normal(name)) => {
                let next = cur.join(name);
                let Ok(target) = fs::read_link(tree.join(&next)) else {
                    cur = next;
                    continue;
                };
                hops += 1;
                if hops > 40 {
                    return None;
                }
                if target.is_absolute() {
                    cur = PathBuf::new();
                }
                for t in target.components().rev() {
                    todo.push_front(t.as_os_str().to_os_string());
                }
            }
            _ => {}
        }
    }
    Some(cur)
}

/// The trees the catalog collects whole (`/etc/pve`, `/etc/ssh`, ...), relative to the root.
fn whole_trees() -> Vec<&'static str> {
    let sources = CATEGORIES.iter().flat_map(|c| c.sources.iter());
    let paths = sources.filter_map(|s| match s {
        Source::Path { path } | Source::Listing { path, .. } => Some(path.trim_start_matches('/')),
        _ => None,
    });
    paths.collect()
}

/// pmxcfs makes these links itself (`local` → `nodes/<this node>`, ...): restoring /etc/pve never writes them.
const PMXCFS_LINKS: [&str; 4] = [
    "etc/pve/local",
    "etc/pve/qemu-server",
    "etc/pve/lxc",
    "etc/pve/openvz",
];

/// Every symlink whose target lies in a tree the archive collected whole (and holds) resolves in the
/// restored tree: `/root/.ssh/authorized_keys` → `/etc/pve/priv/authorized_keys` must be there. Links to
/// what no backup collects (`/usr/share/zoneinfo/...`) are counted, not checked.
pub fn symlinks(tree: &Path) -> Check {
    const NAME: &str = "symlinks";
    let links: Vec<String> = walk(tree, "")
        .into_iter()
        .filter(|(p, k)| *k == Kind::Link && !PMXCFS_LINKS.contains(&p.as_str()))
        .map(|(p, _)| p)
        .collect();
    if links.is_empty() {
        return Check::skipped(NAME, "no symlinks in the archive");
    }
    let trees: Vec<&str> = whole_trees()
        .into_iter()
        .filter(|t| tree.join(t).exists())
        .collect();
    let (mut inside, mut problems) = (0, Vec::new());
    for l in &links {
        let shown = fs::read_link(tree.join(l))
            .map(|t| t.display().to_string())
            .unwrap_or_default();
        let Some(to) = follow(tree, l) else {
            problems.push(format!("/{l} -> {shown}: a symlink loop"));
            continue;
        };
        let to_s = to.to_string_lossy();
        let collected = trees
            .iter()
            .any(|t| to_s == *t || to_s.starts_with(&format!("{t}/")));
        if !collected {
            continue;
        }
        inside += 1;
        if fs::symlink_metadata(tree.join(&to)).is_err() {
            problems.push(format!(
                "/{l} -> {shown}: /{to_s} is not in the restored tree"
            ));
        }
    }
    let detail = format!(
        "{} symlinks, {inside} pointing into what the archive collects, {} elsewhere",
        links.len(),
        links.len() - inside
    );
    Check::from_problems(NAME, detail, problems)
}

/// What an `interfaces` file names: interfaces it defines or refers to, and which of them it makes itself.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ifaces {
    /// Every name, with the file and line it first appears on.
    pub named: BTreeMap<String, String>,
    /// Defined by the file itself: bridges, bonds, VLANs, loopback, tunnels.
    pub made: BTreeSet<String>,
    /// `source` patterns (relative to the root, `*` only in the last component).
    pub sources: Vec<String>,
}

impl Ifaces {
    /// Names that must be real interfaces of the host.
    pub fn physical(&self) -> impl Iterator<Item = (&String, &String)> {
        self.named.iter().filter(|(n, _)| !self.made.contains(*n))
    }

    /// Add what `text` (the file `shown`) says (ifupdown2's interfaces(5)).
    pub fn read(&mut self, text: &str, shown: &str) {
        let mut current: Option<String> = None;
        for (i, line) in text.lines().enumerate() {
            let at = format!("{shown}:{}", i + 1);
            let words: Vec<&str> = line.split_whitespace().collect();
            let Some((first, rest)) = words.split_first() else {
                continue;
            };
            let mut name = |n: &str| {
                if n != "none" && !n.contains(['*', '[', '$']) {
                    self.named
                        .entry(n.to_string())
                        .or_insert_with(|| at.clone());
                    // A VLAN `eno1.100` stands on `eno1`.
                    if let Some((raw, _)) = n.split_once('.') {
                        self.named
                            .entry(raw.to_string())
                            .or_insert_with(|| at.clone());
                        self.made.insert(n.to_string());
                    }
                }
            };
            match *first {
                f if f.starts_with('#') => {}
                "iface" => {
                    rest.first().into_iter().for_each(|n| name(n));
                    current = rest.first().map(|s| s.to_string());
                }
                "mapping" => current = None,
                "source" | "source-directory" => {
                    let dir = *first == "source-directory";
                    for p in rest {
                        let p = p.trim_start_matches('/');
                        self.sources
                            .push(if dir { format!("{p}/*") } else { p.into() });
                    }
                }
                f if f == "auto" || f.starts_with("allow-") => rest.iter().for_each(|n| name(n)),
                key => {
                    let key = key.replace('_', "-");
                    // Options that name other interfaces (a bridge's ports, a bond's slaves, a slave's bond,
                    // a VLAN's raw device, OVS members).
                    let members = [
                        "bridge-ports",
                        "bond-slaves",
                        "slaves",
                        "bond-primary",
                        "bond-master",
                        "vlan-raw-device",
                        "ovs-bonds",
                        "ovs-ports",
                        "ovs-bridge",
                    ];
                    if members.contains(&key.as_str()) {
                        rest.iter().for_each(|n| name(n));
                    }
                    // Options only an interface the file makes has (a bond's slaves, not a slave's bond-master;
                    // a bridge's ports, not a port's bridge-vids).
                    let makes = [
                        "bridge-ports",
                        "bond-slaves",
                        "slaves",
                        "vlan-raw-device",
                        "vlan-id",
                        "vxlan-id",
                        "ovs-type",
                        "mode",
                        "tunnel-mode",
                    ];
                    if let Some(c) = current.as_ref().filter(|_| makes.contains(&key.as_str())) {
                        self.made.insert(c.clone());
                    }
                }
            }
        }
        self.made.insert("lo".into());
        let vlans = self
            .named
            .keys()
            .filter(|n| n.starts_with("vlan") && n[4..].parse::<u32>().is_ok());
        self.made.extend(vlans.cloned().collect::<Vec<_>>());
    }
}

/// `/etc/network/interfaces` (and the files it sources) names only interfaces the archive's NIC inventory
/// knows, besides those it defines itself.
pub fn interfaces(tree: &Path, facts: &Facts) -> Check {
    const NAME: &str = "interfaces";
    let main = "etc/network/interfaces";
    let Ok(text) = fs::read_to_string(tree.join(main)) else {
        return Check::skipped(NAME, "no /etc/network/interfaces in the archive");
    };
    let mut ifaces = Ifaces::default();
    ifaces.read(&text, "/etc/network/interfaces");
    for pattern in ifaces.sources.clone() {
        for rel in expand(tree, &pattern) {
            if let Ok(t) = fs::read_to_string(tree.join(&rel)) {
                ifaces.read(&t, &format!("/{rel}"));
            }
        }
    }
    let physical: Vec<(&String, &String)> = ifaces.physical().collect();
    if physical.is_empty() {
        return Check::passed(NAME, "names no physical interface (only ones it defines)");
    }
    let known = match &facts.nics {
        None => {
            let why = "the archive has no NIC inventory (no /sys/class/net where it was made)";
            return Check::missing(NAME, why);
        }
        Some(Err(e)) => {
            return Check::missing(NAME, format!("the NIC inventory does not read: {e}"));
        }
        Some(Ok(n)) => n,
    };
    let problems: Vec<String> = physical
        .iter()
        .filter(|(n, _)| !known.contains(n))
        .map(|(n, at)| {
            format!(
                "{at}: {n} is not in the archive's NIC inventory ({})",
                known.join(", ")
            )
        })
        .collect();
    let names: Vec<&str> = physical.iter().map(|(n, _)| n.as_str()).collect();
    let detail = format!("physical interfaces named: {}", names.join(", "));
    Check::from_problems(NAME, detail, problems)
}

/// A `source` pattern's files in the tree: a literal path, or a directory's files for `dir/*`.
fn expand(tree: &Path, pattern: &str) -> Vec<String> {
    let Some(dir) = pattern.strip_suffix("/*") else {
        return vec![pattern.to_string()];
    };
    let mut v: Vec<String> = walk(tree, dir)
        .into_iter()
        .filter(|(p, k)| *k == Kind::File && !p[dir.len() + 1..].contains('/'))
        .map(|(p, _)| p)
        .collect();
    v.sort();
    v
}

/// `KEY=value` references in fstab's first field, by blkid tag (`UUID`, `PARTUUID`, `LABEL`, `PARTLABEL`),
/// `/dev/disk/by-*/` paths included; with the line each is on.
pub fn fstab_refs(text: &str) -> Vec<(usize, &'static str, String)> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some(spec) = line
            .split_whitespace()
            .next()
            .filter(|s| !s.starts_with('#'))
        else {
            continue;
        };
        let tags = [
            ("UUID", "/dev/disk/by-uuid/"),
            ("PARTUUID", "/dev/disk/by-partuuid/"),
            ("LABEL", "/dev/disk/by-label/"),
            ("PARTLABEL", "/dev/disk/by-partlabel/"),
        ];
        for (tag, dir) in tags {
            let v = spec
                .strip_prefix(&format!("{tag}="))
                .or(spec.strip_prefix(dir));
            if let Some(v) = v {
                out.push((i + 1, tag, v.trim_matches('"').to_string()));
            }
        }
    }
    out
}

/// blkid's `DEV: KEY="value" ...` lines: every value by tag.
pub fn blkid_tags(text: &str) -> HashMap<String, BTreeSet<String>> {
    let mut out: HashMap<String, BTreeSet<String>> = HashMap::new();
    for line in text.lines() {
        let Some((_, mut rest)) = line.split_once(": ") else {
            continue;
        };
        while let Some((key, after)) = rest.trim_start().split_once("=\"") {
            let Some((value, next)) = after.split_once('"') else {
                break;
            };
            out.entry(key.to_string())
                .or_default()
                .insert(value.to_lowercase());
            rest = next;
        }
    }
    out
}

/// Every `UUID=` (and `PARTUUID=`, `LABEL=`) in `/etc/fstab` is a file system or partition in the archived
/// `blkid` output: the disks the archive's fstab mounts were there when it was made.
pub fn fstab(tree: &Path, facts: &Facts) -> Check {
    const NAME: &str = "fstab";
    let Ok(text) = fs::read_to_string(tree.join("etc/fstab")) else {
        return Check::skipped(NAME, "no /etc/fstab in the archive");
    };
    let refs = fstab_refs(&text);
    if refs.is_empty() {
        return Check::passed(NAME, "mounts no file system by UUID or label");
    }
    let Some(blkid) = &facts.blkid else {
        let why = format!("no blkid output in the archive ({})", facts.blkid_status());
        return Check::missing(NAME, why);
    };
    let tags = blkid_tags(blkid);
    let problems: Vec<String> = refs
        .iter()
        .filter(|(_, tag, v)| {
            !tags
                .get(*tag)
                .is_some_and(|s| s.contains(&v.to_lowercase()))
        })
        .map(|(n, tag, v)| format!("/etc/fstab:{n}: {tag}={v} is in no blkid line of the archive"))
        .collect();
    let detail = format!("{} UUID/label references", refs.len());
    Check::from_problems(NAME, detail, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drill::Verdict;
    use std::os::unix::fs::symlink;

    fn write(tree: &Path, rel: &str, text: &str) {
        let p = tree.join(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(p, text).unwrap();
    }

    #[test]
    fn interfaces_of_the_fixture_and_made_ones() {
        let text = fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/pve-node/etc/network/interfaces"
        ))
        .unwrap();
        let mut i = Ifaces::default();
        i.read(&text, "/etc/network/interfaces");
        let phys: Vec<&str> = i.physical().map(|(n, _)| n.as_str()).collect();
        assert_eq!(phys, ["eno1", "eno2", "eno3"]);
        assert!(
            i.made.contains("bond0") && i.made.contains("vmbr0"),
            "{i:?}"
        );
        let mut j = Ifaces::default();
        j.read(
            "auto eno1.50\niface eno1.50 inet manual\niface vlan7 inet manual\n vlan-raw-device enp3s0\n\
             iface vmbr1 inet manual\n bridge_ports none\nsource /etc/network/interfaces.d/*\n\
             iface eno5 inet manual\n bond-master bond1\n bond-mode 802.3ad\n bridge-vids 2-4094\n\
             iface bond1 inet manual\n bond-slaves none\n",
            "x",
        );
        let phys: Vec<&str> = j.physical().map(|(n, _)| n.as_str()).collect();
        assert_eq!(phys, ["eno1", "eno5", "enp3s0"]);
        assert_eq!(j.sources, ["etc/network/interfaces.d/*"]);
    }

    #[test]
    fn fstab_against_blkid() {
        let text = "# <fs> <mp>\nUUID=4f1c-AB /boot/efi vfat defaults 0 1\n/dev/pve/root / ext4 errors=remount-ro 0 1\n\
                     PARTUUID=\"aa-01\" /data xfs defaults 0 2\nLABEL=gone /x ext4 defaults 0 2\n";
        let refs = fstab_refs(text);
        assert_eq!(refs.len(), 3);
        let blkid =
            "/dev/sda2: UUID=\"4F1C-AB\" BLOCK_SIZE=\"512\" TYPE=\"vfat\" PARTUUID=\"aa-01\"\n";
        let tags = blkid_tags(blkid);
        assert!(tags["UUID"].contains("4f1c-ab"));
        let t = tempfile::tempdir().unwrap();
        write(t.path(), "etc/fstab", text);
        let facts = Facts {
            blkid: Some(blkid.into()),
            ..Facts::default()
        };
        let c = fstab(t.path(), &facts);
        assert_eq!(c.result, Verdict::Failed);
        assert_eq!(c.problems.len(), 1, "{c:?}");
        assert!(c.problems[0].contains("/etc/fstab:5: LABEL=gone"), "{c:?}");
        let c = fstab(t.path(), &Facts::default());
        assert!(c.result == Verdict::Skipped && c.warning, "{c:?}");
    }

    #[test]
    fn symlinks_into_collected_trees_must_resolve() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path();
        write(root, "etc/pve/priv/authorized_keys", "k\n");
        fs::create_dir_all(root.join("root/.ssh")).unwrap();
        symlink(
            "/etc/pve/priv/authorized_keys",
            root.join("root/.ssh/authorized_keys"),
        )
        .unwrap();
        symlink("/usr/share/zoneinfo/UTC", root.join("etc/localtime")).unwrap();
        symlink("nodes/due", root.join("etc/pve/local")).unwrap();
        let c = symlinks(root);
        assert_eq!(c.result, Verdict::Passed, "{c:?}");
        assert!(c.detail.starts_with("2 symlinks, 1 pointing into"), "{c:?}");
        symlink("../pve/priv/gone", root.join("etc/pve/dangling")).unwrap();
        symlink("loop", root.join("etc/pve/loop")).unwrap();
        let c = symlinks(root);
        assert_eq!(c.result, Verdict::Failed);
        let all = c.problems.join("\n");
        assert!(
            all.contains("/etc/pve/dangling -> ../pve/priv/gone: /etc/pve/priv/gone is not"),
            "{all}"
        );
        assert!(
            all.contains("/etc/pve/loop -> loop: a symlink loop"),
            "{all}"
        );
    }

    #[test]
    fn interfaces_against_the_inventory() {
        let t = tempfile::tempdir().unwrap();
        write(
            t.path(),
            "etc/network/interfaces",
            "auto lo\niface lo inet loopback\niface eno9 inet manual\n",
        );
        write(
            t.path(),
            "etc/network/interfaces.d/x",
            "iface vmbr9 inet manual\n bridge-ports eno8\n",
        );
        fs::write(
            t.path().join("etc/network/interfaces"),
            "iface eno9 inet manual\nsource /etc/network/interfaces.d/*\n",
        )
        .unwrap();
        let facts = |names: &[&str]| Facts {
            nics: Some(Ok(names.iter().map(|s| s.to_string()).collect())),
            ..Facts::default()
        };
        let c = interfaces(t.path(), &facts(&["eno8", "eno9"]));
        assert_eq!(c.result, Verdict::Passed, "{c:?}");
        let c = interfaces(t.path(), &facts(&["eno9"]));
        assert_eq!(c.result, Verdict::Failed);
        assert!(
            c.problems[0].starts_with("/etc/network/interfaces.d/x:2: eno8 is not"),
            "{c:?}"
        );
        let c = interfaces(t.path(), &Facts::default());
        assert!(c.result == Verdict::Skipped && c.warning, "{c:?}");
    }

    #[test]
    fn nothing_to_check_is_skipped_without_a_warning() {
        let t = tempfile::tempdir().unwrap();
        for c in all(t.path(), &Facts::default()) {
            assert_eq!(c.result, Verdict::Skipped, "{c:?}");
            assert!(!c.warning, "{c:?}");
        }
    }
}
