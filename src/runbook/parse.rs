//! Small readers of the files and command outputs the runbook quotes: each takes text and returns only the
//! structure the guide needs (names, layout, addresses), never values of secret keys.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Member {
    pub name: String,
    pub nodeid: String,
    /// ring0_addr, ring1_addr, ... in link order.
    pub addrs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cluster {
    pub name: String,
    pub members: Vec<Member>,
}

/// `corosync.conf`: the cluster name (`totem { cluster_name }`) and the `nodelist { node { ... } }` entries.
pub fn corosync(text: &str) -> Option<Cluster> {
    let mut stack: Vec<String> = Vec::new();
    let mut cluster = Cluster::default();
    let mut node: Option<Member> = None;
    for line in text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
    {
        if let Some(block) = line.strip_suffix('{') {
            stack.push(block.trim().to_string());
            if stack.len() == 2 && stack[0] == "nodelist" && stack[1] == "node" {
                node = Some(Member::default());
            }
        } else if line == "}" {
            if stack.len() == 2
                && let Some(n) = node.take()
            {
                cluster.members.push(n);
            }
            stack.pop();
        } else if let Some((k, v)) = line.split_once(':') {
            let (k, v) = (k.trim(), v.trim().to_string());
            match (stack.first().map(String::as_str), node.as_mut()) {
                (Some("totem"), _) if k == "cluster_name" && stack.len() == 1 => cluster.name = v,
                (Some("nodelist"), Some(n)) if k == "name" => n.name = v,
                (Some("nodelist"), Some(n)) if k == "nodeid" => n.nodeid = v,
                (Some("nodelist"), Some(n)) if k.starts_with("ring") && k.ends_with("_addr") => {
                    n.addrs.push(v)
                }
                _ => {}
            }
        }
    }
    (!cluster.name.is_empty() || !cluster.members.is_empty()).then_some(cluster)
}

/// `http://user:pass@host/x` → `http://host/x`: credentials never leave the archive.
fn without_userinfo(uri: &str) -> String {
    match uri.split_once("://") {
        Some((scheme, rest)) => {
            let (auth, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = auth.rsplit_once('@').map_or(auth, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => uri.to_string(),
    }
}

/// Apt repositories of one sources file as one-line `deb URI SUITE COMPONENTS` entries: a `.list` file's
/// lines, or each deb822 stanza of a `.sources` file (one line per type, URI and suite). A disabled stanza
/// (`Enabled: no`) is marked.
pub fn apt_sources(name: &str, text: &str) -> Vec<String> {
    if !name.ends_with(".sources") {
        let lines = text.lines().map(str::trim);
        let debs = lines.filter(|l| l.starts_with("deb ") || l.starts_with("deb-src "));
        let clean = |l: &str| {
            l.split_whitespace()
                .map(without_userinfo)
                .collect::<Vec<_>>()
        };
        return debs.map(|l| clean(l).join(" ")).collect();
    }
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |key: &str| {
            stanza
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case(key)
                        .then(|| v.trim().to_string())
                })
                .unwrap_or_default()
        };
        let components = field("Components");
        let off = field("Enabled").eq_ignore_ascii_case("no");
        for t in field("Types").split_whitespace() {
            for uri in field("URIs").split_whitespace() {
                for suite in field("Suites").split_whitespace() {
                    let line = format!("{t} {} {suite} {components}", without_userinfo(uri));
                    let line = line.trim_end().to_string();
                    out.push(if off {
                        format!("{line} (disabled)")
                    } else {
                        line
                    });
                }
            }
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Pool {
    pub name: String,
    pub state: String,
    /// The `config:` tree below the pool's own line: vdevs and devices, indented as zpool prints them.
    pub layout: Vec<String>,
}

/// `zpool status -P`: each pool with its vdev tree.
pub fn zpool_status(text: &str) -> Vec<Pool> {
    let mut pools: Vec<Pool> = Vec::new();
    let mut in_config = false;
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("pool:") {
            pools.push(Pool {
                name: name.trim().to_string(),
                ..Pool::default()
            });
            in_config = false;
        } else if let Some(state) = t.strip_prefix("state:") {
            if let Some(p) = pools.last_mut() {
                p.state = state.trim().to_string();
            }
        } else if t == "config:" {
            in_config = true;
        } else if in_config && let Some(p) = pools.last_mut() {
            let first = t.split_whitespace().next().unwrap_or("");
            if t.is_empty() || first == "NAME" || first == p.name {
                continue;
            }
            if t.ends_with(':') || (!line.starts_with([' ', '\t'])) {
                in_config = false;
                continue;
            }
            // Depth from the indent below the pool line (zpool indents by two per level, after one tab).
            let indent = line.trim_end().len() - line.trim_start().len();
            let cols: Vec<&str> = t.split_whitespace().collect();
            let depth = indent.saturating_sub(if line.starts_with('\t') { 1 } else { 8 }) / 2;
            let state = cols.get(1).copied().unwrap_or("");
            let pad = "  ".repeat(depth.saturating_sub(1));
            p.layout
                .push(format!("{pad}{} {state}", cols[0]).trim_end().to_string());
        }
    }
    pools
}

/// `zpool list -v -o name,size,guid,health`: the pools (unindented lines) with their GUID.
pub fn zpool_list(text: &str) -> Vec<(String, String)> {
    let rows = text.lines().skip(1).filter(|l| !l.starts_with([' ', '\t']));
    rows.filter_map(|l| {
        let c: Vec<&str> = l.split_whitespace().collect();
        Some((c.first()?.to_string(), c.get(2).unwrap_or(&"").to_string()))
    })
    .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vg {
    pub name: String,
    pub size: String,
    pub pvs: Vec<String>,
    pub thin_pools: Vec<String>,
    pub lvs: usize,
}

/// `lvm fullreport --reportformat json`: volume groups with their PVs, thin pools and LV count.
pub fn lvm_report(json: &str) -> Vec<Vg> {
    let Ok(v) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    let s = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let list = |r: &Value, k: &str| {
        r.get(k)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let reports = v
        .get("report")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for r in &reports {
        for vg in list(r, "vg") {
            let lvs = list(r, "lv");
            let thin = lvs.iter().filter(|l| s(l, "lv_attr").starts_with('t'));
            out.push(Vg {
                name: s(&vg, "vg_name"),
                size: s(&vg, "vg_size"),
                pvs: list(r, "pv").iter().map(|p| s(p, "pv_name")).collect(),
                thin_pools: thin.map(|l| s(l, "lv_name")).collect(),
                lvs: lvs.len(),
            });
        }
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub spec: String,
    pub target: String,
    pub fstype: String,
    pub options: String,
}

/// fstab(5) entries. Option values that look like credentials (`password=`, `pass=`) are replaced.
pub fn fstab(text: &str) -> Vec<Mount> {
    let lines = text.lines().map(str::trim).filter(|l| !l.starts_with('#'));
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let options =
                f.get(3)
                    .unwrap_or(&"defaults")
                    .split(',')
                    .map(|o| match o.split_once('=') {
                        Some((k, _))
                            if ["pass", "secret", "token"].iter().any(|n| k.contains(n)) =>
                        {
                            format!("{k}=<redacted>")
                        }
                        _ => o.to_string(),
                    });
            Some(Mount {
                spec: f.first()?.to_string(),
                target: f.get(1)?.to_string(),
                fstype: f.get(2).unwrap_or(&"").to_string(),
                options: options.collect::<Vec<_>>().join(","),
            })
        })
        .collect()
}

/// `blkid` output: (device, UUID) pairs.
pub fn blkid(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| {
            let (dev, rest) = l.split_once(": ")?;
            let uuid = rest
                .split_whitespace()
                .find_map(|f| f.strip_prefix("UUID="))?;
            Some((dev.to_string(), uuid.trim_matches('"').to_string()))
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Iface {
    pub name: String,
    pub auto: bool,
    /// `static`, `manual`, `dhcp`, `loopback` (the `iface NAME inet METHOD` word).
    pub method: String,
    pub addresses: Vec<String>,
    pub gateway: String,
    /// `bridge`, `bond`, `vlan`, `loopback` or `interface`.
    pub kind: String,
    /// Bridge ports, bond slaves, or the VLAN's raw device (with its id).
    pub members: String,
    /// Other settings worth knowing on the night (bond mode, VLAN awareness, MTU).
    pub settings: Vec<String>,
}

/// ifupdown `interfaces` (and `interfaces.d/*`) stanzas: one [`Iface`] per name, `auto` lines merged.
pub fn interfaces(text: &str) -> Vec<Iface> {
    let mut out: Vec<Iface> = Vec::new();
    let mut auto: Vec<String> = Vec::new();
    let mut cur: Option<usize> = None;
    for line in text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
    {
        let w: Vec<&str> = line.split_whitespace().collect();
        match w.first().copied() {
            None => {}
            Some("auto") | Some("allow-hotplug") => {
                auto.extend(w[1..].iter().map(|s| s.to_string()))
            }
            Some("iface") if w.len() >= 2 => {
                let name = w[1].to_string();
                let i = out.iter().position(|f| f.name == name).unwrap_or_else(|| {
                    out.push(Iface {
                        name,
                        ..Iface::default()
                    });
                    out.len() - 1
                });
                if let Some(m) = w.get(3) {
                    out[i].method = m.to_string();
                }
                cur = Some(i);
            }
            Some("source") | Some("source-directory") | Some("mapping") => cur = None,
            Some(key) => {
                if let Some(f) = cur.map(|i| &mut out[i]) {
                    setting(f, &key.replace('_', "-"), &w[1..].join(" "));
                }
            }
        }
    }
    for f in &mut out {
        f.auto = auto.contains(&f.name);
        let dotted = f.name.contains('.') && f.members.is_empty();
        if dotted && let Some((raw, id)) = f.name.split_once('.') {
            f.members = format!("{raw} (VLAN {id})");
        }
        f.kind = match () {
            _ if f.method == "loopback" => "loopback",
            _ if f.settings.iter().any(|s| s.starts_with("bridge")) => "bridge",
            _ if f.settings.iter().any(|s| s.starts_with("bond")) => "bond",
            _ if f.name.contains('.') || f.members.contains("VLAN") => "vlan",
            _ => "interface",
        }
        .to_string();
        f.settings
            .retain(|s| !s.starts_with("bridge-ports") && !s.starts_with("bond-slaves"));
    }
    out
}

fn setting(f: &mut Iface, key: &str, value: &str) {
    match key {
        "address" => f.addresses.push(value.to_string()),
        "gateway" => f.gateway = value.to_string(),
        "bridge-ports" | "bond-slaves" => {
            f.members = value.to_string();
            f.settings.push(key.to_string());
        }
        "vlan-raw-device" => f.members = format!("{value} (VLAN)"),
        "bond-mode" | "bridge-vlan-aware" | "bridge-vids" | "mtu" | "vlan-id" => {
            f.settings.push(format!("{key} {value}"))
        }
        k if k.starts_with("bridge") || k.starts_with("bond") => f.settings.push(k.to_string()),
        _ => {}
    }
}

/// One section of a Proxmox section config (`storage.cfg`, `datastore.cfg`): `type: id` and its keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionEntry {
    pub kind: String,
    pub id: String,
    pub keys: Vec<(String, String)>,
}

impl SectionEntry {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

pub fn section_config(text: &str) -> Vec<SectionEntry> {
    let mut out: Vec<SectionEntry> = Vec::new();
    for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        if line.trim().is_empty() {
            continue;
        }
        if !line.starts_with([' ', '\t']) {
            if let Some((kind, id)) = line.split_once(':') {
                out.push(SectionEntry {
                    kind: kind.trim().to_string(),
                    id: id.trim().to_string(),
                    keys: Vec::new(),
                });
            }
        } else if let Some(e) = out.last_mut() {
            let t = line.trim();
            let (k, v) = t.split_once(char::is_whitespace).unwrap_or((t, ""));
            e.keys.push((k.to_string(), v.trim().to_string()));
        }
    }
    out
}

/// A `key = value` from an ini-style file (`ceph.conf`), first match in any section.
pub fn ini_value(text: &str, key: &str) -> Option<String> {
    let norm = |k: &str| k.trim().replace([' ', '-'], "_").to_ascii_lowercase();
    text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        (norm(k) == norm(key)).then(|| v.trim().to_string())
    })
}

/// The NIC inventory (`proxkeep/commands/network/nics.json`) as table rows: name, kind, permanent MAC, PCI
/// path, driver, member of.
pub fn nics(json: &str) -> Option<Vec<Vec<String>>> {
    let v: Value = serde_json::from_str(json).ok()?;
    let s = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let rows = v.as_array()?.iter().map(|n| {
        let mac = Some(s(n, "permanent_mac"))
            .filter(|m| !m.is_empty())
            .unwrap_or(s(n, "mac"));
        let path = Some(s(n, "id_path"))
            .filter(|m| !m.is_empty())
            .unwrap_or(s(n, "device_path"));
        vec![
            s(n, "name"),
            s(n, "kind"),
            mac,
            path,
            s(n, "driver"),
            s(n, "master"),
        ]
    });
    Some(rows.collect())
}

/// `os-release` `KEY=value` (quotes removed).
pub fn os_release(text: &str, key: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix(key)?.strip_prefix('=')?;
        Some(v.trim().trim_matches('"').to_string())
    })
}

/// `pveversion -v`: the version of `package` (`pve-manager: 9.0.11 (running version: ...)` → `9.0.11`).
pub fn pveversion(text: &str, package: &str) -> Option<String> {
    text.lines().find_map(|l| {
        let v = l.strip_prefix(package)?.strip_prefix(':')?;
        v.split_whitespace().next().map(str::to_string)
    })
}

/// The running kernel from `pveversion -v` (`proxmox-ve: 9.0.0 (running kernel: 6.14.8-2-pve)`).
pub fn running_kernel(text: &str) -> Option<String> {
    let at = text.find("running kernel:")? + "running kernel:".len();
    let rest = &text[at..];
    Some(rest[..rest.find(')')?].trim().to_string())
}

/// Package names from `dpkg -l` lines marked installed (`ii`), architecture suffix removed.
pub fn dpkg_installed(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.starts_with("ii "))
        .filter_map(|l| l.split_whitespace().nth(1))
        .map(|p| p.split(':').next().unwrap_or(p).to_string())
        .collect()
}

/// Packages apt's `extended_states` marks automatically installed (`Auto-Installed: 1`).
pub fn extended_states_auto(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|s| {
            let name = s.lines().find_map(|l| l.strip_prefix("Package:"))?.trim();
            let auto = s.lines().any(|l| l.replace(' ', "") == "Auto-Installed:1");
            auto.then(|| name.to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corosync_members_and_name() {
        let conf = "totem {\n  cluster_name: c1 # comment\n  interface {\n    linknumber: 0\n  }\n}\n\
                    nodelist {\n  node {\n    name: a\n    nodeid: 1\n    ring0_addr: 10.0.0.1\n    ring1_addr: 10.1.0.1\n  }\n\
                    node {\n    nodeid: 2\n    name: b\n    ring0_addr: 10.0.0.2\n  }\n}\n";
        let c = corosync(conf).unwrap();
        assert_eq!(c.name, "c1");
        let m: Vec<(&str, &str, Vec<&str>)> = c
            .members
            .iter()
            .map(|m| {
                let addrs = m.addrs.iter().map(String::as_str).collect();
                (m.name.as_str(), m.nodeid.as_str(), addrs)
            })
            .collect();
        assert_eq!(
            m,
            [
                ("a", "1", vec!["10.0.0.1", "10.1.0.1"]),
                ("b", "2", vec!["10.0.0.2"])
            ]
        );
        assert_eq!(corosync("logging {\n  debug: off\n}\n"), None);
    }

    #[test]
    fn apt_source_lines() {
        let cases: &[(&str, &str, &[&str])] = &[
            (
                "x.list",
                "# c\ndeb http://a/debian trixie main\n  deb-src https://u:p@b/x bookworm c d\n",
                &[
                    "deb http://a/debian trixie main",
                    "deb-src https://b/x bookworm c d",
                ],
            ),
            (
                "x.sources",
                "Types: deb deb-src\nURIs: http://a/\nSuites: s1 s2\nComponents: main\n\n\
                 Types: deb\nURIs: https://user:pw@c/\nSuites: s3\nComponents: x\nEnabled: no\n",
                &[
                    "deb http://a/ s1 main",
                    "deb http://a/ s2 main",
                    "deb-src http://a/ s1 main",
                    "deb-src http://a/ s2 main",
                    "deb https://c/ s3 x (disabled)",
                ],
            ),
            ("x.sources", "# nothing\n", &[]),
        ];
        for (name, text, want) in cases {
            assert_eq!(apt_sources(name, text), *want, "{name}: {text}");
        }
    }

    #[test]
    fn zpool_outputs() {
        let status = "  pool: tank\n state: DEGRADED\nconfig:\n\n\tNAME        STATE     READ WRITE CKSUM\n\
                      \ttank        DEGRADED     0     0     0\n\t  raidz1-0  DEGRADED     0     0     0\n\
                      \t    /dev/sda  ONLINE       0     0     0\n\t    /dev/sdb  FAULTED      0     0     0\n\
                      \tlogs\n\t  /dev/nvme0n1  ONLINE  0 0 0\n\nerrors: No known data errors\n\
                      \n  pool: rpool\n state: ONLINE\nconfig:\n\n\tNAME STATE\n\trpool ONLINE\n\t  /dev/sdc3 ONLINE\n";
        let pools = zpool_status(status);
        assert_eq!(pools.len(), 2);
        assert_eq!(
            (pools[0].name.as_str(), pools[0].state.as_str()),
            ("tank", "DEGRADED")
        );
        assert_eq!(
            pools[0].layout,
            [
                "raidz1-0 DEGRADED",
                "  /dev/sda ONLINE",
                "  /dev/sdb FAULTED",
                "logs",
                "/dev/nvme0n1 ONLINE"
            ]
        );
        assert_eq!(pools[1].layout, ["/dev/sdc3 ONLINE"]);
        let list = "NAME SIZE GUID HEALTH\ntank 1T 123 ONLINE\n  raidz1-0 1T - ONLINE\nrpool 100G 456 ONLINE\n";
        assert_eq!(
            zpool_list(list),
            [
                ("tank".into(), "123".into()),
                ("rpool".into(), "456".into())
            ]
        );
        assert!(zpool_status("no pools available\n").is_empty());
    }

    #[test]
    fn lvm_fullreport() {
        let json = r#"{"report":[{"vg":[{"vg_name":"data","vg_size":"2t"}],"pv":[{"pv_name":"/dev/sdb"},{"pv_name":"/dev/sdc"}],
            "lv":[{"lv_name":"thin","lv_attr":"twi-a-tz--"},{"lv_name":"vm-1-disk-0","lv_attr":"Vwi-a-tz--"}]}]}"#;
        let want = Vg {
            name: "data".into(),
            size: "2t".into(),
            pvs: vec!["/dev/sdb".into(), "/dev/sdc".into()],
            thin_pools: vec!["thin".into()],
            lvs: 2,
        };
        assert_eq!(lvm_report(json), [want]);
        assert!(lvm_report("not json").is_empty());
    }

    #[test]
    fn fstab_and_blkid() {
        let m = fstab(
            "# x\nUUID=ab / ext4 defaults 0 1\n//n/s /mnt/s cifs user=u,password=hunter22,vers=3 0 0\nbad\n",
        );
        let rows: Vec<(&str, &str, &str)> = m
            .iter()
            .map(|m| (m.spec.as_str(), m.target.as_str(), m.options.as_str()))
            .collect();
        assert_eq!(
            rows,
            [
                ("UUID=ab", "/", "defaults"),
                ("//n/s", "/mnt/s", "user=u,password=<redacted>,vers=3")
            ]
        );
        let b = "/dev/sda1: UUID=\"ab\" TYPE=\"ext4\"\n/dev/sda2: PARTUUID=\"x\"\n";
        assert_eq!(blkid(b), [("/dev/sda1".into(), "ab".into())]);
    }

    #[test]
    fn interface_kinds() {
        let text = "auto lo\niface lo inet loopback\n\nauto bond0\niface bond0 inet manual\n\tbond-slaves eno1 eno2\n\
                    \tbond-mode 802.3ad\n\nauto vmbr0\niface vmbr0 inet static\n\taddress 10.0.0.2/24\n\tgateway 10.0.0.1\n\
                    \tbridge-ports bond0\n\tbridge_vlan_aware yes\n\nauto vmbr0.20\niface vmbr0.20 inet static\n\taddress 10.20.0.2/24\n\n\
                    iface vlan30 inet manual\n\tvlan-raw-device bond0\n\nsource /etc/network/interfaces.d/*\n";
        let got: Vec<(String, String, bool, String, String)> = interfaces(text)
            .into_iter()
            .map(|i| (i.name, i.kind, i.auto, i.members, i.settings.join(",")))
            .collect();
        let s = |a: &str, b: &str, c: bool, d: &str, e: &str| {
            (a.into(), b.into(), c, d.into(), e.into())
        };
        assert_eq!(
            got,
            [
                s("lo", "loopback", true, "", ""),
                s("bond0", "bond", true, "eno1 eno2", "bond-mode 802.3ad"),
                s("vmbr0", "bridge", true, "bond0", "bridge-vlan-aware yes"),
                s("vmbr0.20", "vlan", true, "vmbr0 (VLAN 20)", ""),
                s("vlan30", "vlan", false, "bond0 (VLAN)", ""),
            ]
        );
    }

    #[test]
    fn section_configs_and_small_files() {
        let cfg = "# c\ndir: local\n\tpath /var/lib/vz\n\tcontent iso\n\ndatastore: s1\n    path /mnt/s1\n";
        let e = section_config(cfg);
        assert_eq!(e.len(), 2);
        assert_eq!(
            (e[0].kind.as_str(), e[0].id.as_str(), e[0].get("path")),
            ("dir", "local", Some("/var/lib/vz"))
        );
        assert_eq!(e[1].get("path"), Some("/mnt/s1"));
        assert_eq!(
            ini_value("[global]\n  fsid = abc\n  mon host = 1.2.3.4\n", "mon_host").as_deref(),
            Some("1.2.3.4")
        );
        let v = "proxmox-ve: 9.0.0 (running kernel: 6.14.8-2-pve)\npve-manager: 9.0.11 (running version: 9.0.11/x)\n";
        assert_eq!(pveversion(v, "pve-manager").as_deref(), Some("9.0.11"));
        assert_eq!(running_kernel(v).as_deref(), Some("6.14.8-2-pve"));
        assert_eq!(
            os_release("ID=debian\nPRETTY_NAME=\"Debian 13\"\n", "PRETTY_NAME").as_deref(),
            Some("Debian 13")
        );
        let dpkg = "Desired=Unknown\n||/ Name Version\nii  htop:amd64 3.0 amd64 x\nrc  old 1 all y\nii  vim 9 amd64 z\n";
        assert_eq!(dpkg_installed(dpkg), ["htop", "vim"]);
        let states =
            "Package: a\nArchitecture: amd64\nAuto-Installed: 1\n\nPackage: b\nAuto-Installed: 0\n";
        assert_eq!(extended_states_auto(states), ["a"]);
        let nics_json = r#"[{"name":"eno1","kind":"physical","mac":"aa","permanent_mac":"bb","device_path":"pci/x","id_path":"pci-0000:02:00.0","driver":"igb","master":"bond0","members":[]}]"#;
        assert_eq!(
            nics(nics_json).unwrap(),
            [["eno1", "physical", "bb", "pci-0000:02:00.0", "igb", "bond0"]]
        );
        assert_eq!(nics("[]").unwrap().len(), 0);
        assert!(nics("{").is_none());
    }
}
