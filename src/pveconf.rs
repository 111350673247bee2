//! Small structure parsers for the Proxmox VE config formats `drill` checks a restored tree with. They check
//! the shape of a file, never its values: a file that passes here is one PVE's own parser reads without a
//! syntax error (unknown keys and bad values are PVE's business at run time).
//!
//! * guest configs (`qemu-server/*.conf`, `lxc/*.conf`): `key: value` lines, `#` comment lines (the
//!   description), then `[snapshot]` sections of the same lines (PVE::QemuServer / PVE::LXC::Config
//!   `parse_*_config`);
//! * section-config (`storage.cfg`, PVE::SectionConfig): `type: id` header lines, each followed by indented
//!   `key [value]` lines up to a blank line;
//! * corosync.conf: nested `name {` … `}` blocks of `key: value` lines (corosync.conf(5));
//! * `user.cfg` (PVE::AccessControl `parse_user_config`): colon-separated `user:`, `group:`, `role:`,
//!   `acl:`, `token:` and `pool:` lines.
//!
//! Every error names the line (1-based) and what was expected there.

use std::collections::HashSet;

/// A line that does not fit the format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {why}")]
pub struct SyntaxError {
    pub line: usize,
    pub why: String,
}

fn err<T>(line: usize, why: impl Into<String>) -> Result<T, SyntaxError> {
    Err(SyntaxError {
        line,
        why: why.into(),
    })
}

/// Lines numbered from 1, without their line ending.
fn numbered(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().map(|(i, l)| (i + 1, l))
}

/// `[a-z]` then `[a-z0-9_.-]*`: a guest config key (`net0`, `lxc.apparmor.profile`, `cpu-units`).
fn is_key(k: &str) -> bool {
    let mut c = k.chars();
    c.next().is_some_and(|f| f.is_ascii_lowercase())
        && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
}

/// What a guest config holds: its keys and its snapshot sections.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuestConfig {
    pub keys: usize,
    pub snapshots: Vec<String>,
}

/// A VM or CT config: `key: value` lines and `#` lines, then `[name]` sections (snapshots, `[PENDING]`,
/// `[special:cloudinit]`). A section name appears once; a `parent:` names a snapshot the file has.
pub fn guest_config(text: &str) -> Result<GuestConfig, SyntaxError> {
    let mut out = GuestConfig::default();
    let mut seen = HashSet::new();
    let mut parents = Vec::new();
    for (n, line) in numbered(text) {
        let t = line.trim_end();
        if t.trim_start().is_empty() || t.starts_with('#') {
            continue;
        }
        if let Some(name) = t.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            let ok = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-:".contains(c));
            if !ok {
                return err(n, format!("bad section name [{name}]"));
            }
            if !seen.insert(name.to_string()) {
                return err(n, format!("section [{name}] appears twice"));
            }
            out.snapshots.push(name.to_string());
            continue;
        }
        // LXC also allows `lxc.key = value` for raw keys.
        let at = match t.starts_with("lxc.") {
            true => t.find([':', '=']),
            false => t.find(':'),
        };
        let Some((key, value)) = at.map(|i| (&t[..i], &t[i + 1..])) else {
            return err(n, "expected `key: value`, `# comment` or `[section]`");
        };
        if !is_key(key.trim_end()) {
            return err(n, format!("bad key {key:?}"));
        }
        if key.trim_end() == "parent" {
            parents.push((n, value.trim().to_string()));
        }
        out.keys += 1;
    }
    for (n, p) in parents {
        if !seen.contains(&p) {
            return err(
                n,
                format!("parent: {p} names no snapshot section of the file"),
            );
        }
    }
    Ok(out)
}

/// One `type: id` section of a section-config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: String,
    pub id: String,
    pub keys: Vec<String>,
}

/// A section-config file (`storage.cfg`): `type: id` headers, indented `key [value]` lines until a blank
/// line, `#` comments anywhere. An id appears once.
pub fn section_config(text: &str) -> Result<Vec<Section>, SyntaxError> {
    let mut out: Vec<Section> = Vec::new();
    let mut in_section = false;
    let mut ids = HashSet::new();
    for (n, line) in numbered(text) {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            in_section = false;
            continue;
        }
        let indented = line.starts_with([' ', '\t']);
        match (indented, in_section) {
            (true, true) => {
                let key = line.split_whitespace().next().unwrap_or_default();
                out.last_mut()
                    .into_iter()
                    .for_each(|s| s.keys.push(key.into()));
            }
            (true, false) => return err(n, "indented `key value` line outside a section"),
            (false, _) => {
                let header = line.trim_end().split_once(':').and_then(|(kind, id)| {
                    let id = id.trim();
                    let one_word = |s: &str| !s.is_empty() && !s.contains(char::is_whitespace);
                    (one_word(kind) && one_word(id)).then(|| (kind.to_string(), id.to_string()))
                });
                let Some((kind, id)) = header else {
                    return err(
                        n,
                        "expected a `type: id` header (or an indented `key value` line)",
                    );
                };
                if !ids.insert(id.clone()) {
                    return err(n, format!("section id {id:?} appears twice"));
                }
                out.push(Section {
                    kind,
                    id,
                    keys: Vec::new(),
                });
                in_section = true;
            }
        }
    }
    Ok(out)
}

/// A corosync.conf block: its name, its `key: value` pairs and the blocks inside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Block {
    pub name: String,
    pub values: Vec<(String, String)>,
    pub blocks: Vec<Block>,
}

impl Block {
    /// The first value of `key` in this block.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
    /// The blocks named `name` directly inside this one.
    pub fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
        self.blocks.iter().filter(move |b| b.name == name)
    }
}

/// corosync.conf: `name {` opens a block, `}` closes it, `key: value` inside (or at the top), `#` comments.
/// Returns the top level (unnamed) with its blocks.
pub fn corosync(text: &str) -> Result<Block, SyntaxError> {
    let mut stack = vec![Block::default()];
    let mut opened = Vec::new();
    for (n, line) in numbered(text) {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if t == "}" {
            if stack.len() == 1 {
                return err(n, "`}` closes no block");
            }
            let b = stack.pop().unwrap_or_default();
            opened.pop();
            if let Some(parent) = stack.last_mut() {
                parent.blocks.push(b);
            }
        } else if let Some(name) = t.strip_suffix('{') {
            let name = name.trim();
            if name.is_empty() || name.contains(char::is_whitespace) {
                return err(n, "expected `name {`");
            }
            stack.push(Block {
                name: name.into(),
                ..Block::default()
            });
            opened.push(n);
        } else if let Some((k, v)) = t.split_once(':') {
            let k = k.trim();
            if k.is_empty() || k.contains(char::is_whitespace) {
                return err(n, format!("bad key {k:?}"));
            }
            let top = stack.last_mut().expect("the top level is never popped");
            top.values.push((k.into(), v.trim().into()));
        } else {
            return err(n, "expected `key: value`, `name {` or `}`");
        }
    }
    if let Some(n) = opened.last() {
        return err(*n, "this block is never closed");
    }
    Ok(stack.pop().unwrap_or_default())
}

/// What a user.cfg holds, by line type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserConfig {
    pub users: usize,
    pub groups: usize,
    pub roles: usize,
    pub acls: usize,
    pub tokens: usize,
    pub pools: usize,
}

/// `name@realm`, with `!token` when `token`.
fn userid(s: &str, token: bool) -> bool {
    let (user, tok) = match s.split_once('!') {
        Some((u, t)) => (u, Some(t)),
        None => (s, None),
    };
    let realm_ok = user
        .rsplit_once('@')
        .is_some_and(|(name, realm)| !name.is_empty() && !realm.is_empty());
    realm_ok && tok.is_some_and(|t| !t.is_empty()) == token
}

/// user.cfg: one `type:field:field:…` line each; blank and `#` lines are skipped.
pub fn user_config(text: &str) -> Result<UserConfig, SyntaxError> {
    let mut out = UserConfig::default();
    for (n, line) in numbered(text) {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let f: Vec<&str> = t.split(':').collect();
        let field = |i: usize| f.get(i).copied().unwrap_or_default();
        let (counter, ok, want) = match f[0] {
            "user" => (
                &mut out.users,
                userid(field(1), false),
                "user:NAME@REALM:ENABLE:…",
            ),
            "token" => (
                &mut out.tokens,
                userid(field(1), true),
                "token:NAME@REALM!TOKEN:…",
            ),
            "group" => (
                &mut out.groups,
                !field(1).is_empty(),
                "group:NAME:MEMBERS:COMMENT",
            ),
            "role" => (
                &mut out.roles,
                !field(1).is_empty(),
                "role:NAME:PRIVILEGES:",
            ),
            "pool" => (
                &mut out.pools,
                !field(1).is_empty(),
                "pool:NAME:COMMENT:VMS:STORAGES",
            ),
            "acl" => {
                let ok = matches!(field(1), "0" | "1")
                    && field(2).starts_with('/')
                    && !field(3).is_empty()
                    && !field(4).is_empty();
                (&mut out.acls, ok, "acl:0|1:/PATH:USERS-GROUPS-TOKENS:ROLES")
            }
            other => return err(n, format!("unknown line type {other:?}")),
        };
        if !ok {
            return err(n, format!("expected {want}"));
        }
        *counter += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pve-node");

    /// Each case: the text, and what `parse` counts in it or the line its error names.
    fn table(
        cases: &[(&str, Result<usize, usize>)],
        parse: impl Fn(&str) -> Result<usize, SyntaxError>,
    ) {
        for (text, want) in cases {
            assert_eq!(&parse(text).map_err(|e| e.line), want, "{text:?}");
        }
    }

    fn fixture(rel: &str) -> String {
        std::fs::read_to_string(format!("{FIXTURE}/{rel}")).unwrap()
    }

    /// Every guest config of the fixture (real files from qemu-server's and pve-container's test suites).
    fn guest_files() -> Vec<(String, String)> {
        let mut out = Vec::new();
        let nodes = std::fs::read_dir(format!("{FIXTURE}/etc/pve/nodes")).unwrap();
        for node in nodes.flatten() {
            for kind in ["qemu-server", "lxc"] {
                let Ok(rd) = std::fs::read_dir(node.path().join(kind)) else {
                    continue;
                };
                for f in rd.flatten() {
                    let p = f.path();
                    out.push((
                        p.display().to_string(),
                        std::fs::read_to_string(&p).unwrap(),
                    ));
                }
            }
        }
        assert!(out.len() >= 50, "{}", out.len());
        out
    }

    #[test]
    fn every_fixture_guest_config_parses() {
        for (path, text) in guest_files() {
            guest_config(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        }
        let c = guest_config(&fixture("etc/pve/nodes/due/qemu-server/104.conf")).unwrap();
        assert!(c.snapshots.contains(&"test".to_string()), "{c:?}");
    }

    #[test]
    fn guest_config_table() {
        let cases: &[(&str, Result<usize, usize>)] = &[
            ("cores: 2\nmemory: 512\n", Ok(0)),
            (
                "# description\ncores: 2\n\n[snap1]\ncores: 1\nsnaptime: 1\n",
                Ok(1),
            ),
            (
                "lxc.apparmor.profile: unconfined\nlxc.cgroup2.devices.allow = c 10:200 rwm\n",
                Ok(0),
            ),
            ("parent: s\n[s]\ncores: 1\n", Ok(1)),
            (
                "[PENDING]\ndelete: net1\n[special:cloudinit]\nipconfig0: ip=dhcp\n",
                Ok(2),
            ),
            ("cores 2\n", Err(1)),
            ("cores: 1\nCores: 2\n", Err(2)),
            ("[a]\n[a]\n", Err(2)),
            ("[a b]\n", Err(1)),
            ("parent: gone\ncores: 1\n", Err(1)),
            ("cores: 1\n<<<<<<< ours\n", Err(2)),
        ];
        table(cases, |t| guest_config(t).map(|c| c.snapshots.len()));
    }

    #[test]
    fn fixture_storage_cfg_parses() {
        let s = section_config(&fixture("etc/pve/storage.cfg")).unwrap();
        let ids: Vec<&str> = s.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "local",
                "local-lvm",
                "iso-templates",
                "backup",
                "ceph-external",
                "cephfs-external",
                "vmdata",
                "myspace"
            ]
        );
        let zfs = s.iter().find(|s| s.id == "vmdata").unwrap();
        assert_eq!(zfs.kind, "zfspool");
        assert!(zfs.keys.contains(&"sparse".to_string()), "{zfs:?}");
    }

    #[test]
    fn section_config_table() {
        let cases: &[(&str, Result<usize, usize>)] = &[
            ("dir: local\n\tpath /var/lib/vz\n", Ok(1)),
            (
                "# c\ndir: a\n  path /a\n# c inside\n  content iso\n\nnfs: b\n\tserver x\n",
                Ok(2),
            ),
            ("dir: a\n\n\n", Ok(1)),
            ("\tpath /x\n", Err(1)),
            ("dir: a\npath /x\n", Err(2)),
            ("dir: a\n\n  path /x\n", Err(3)),
            ("dir: a\ndir: a\n", Err(2)),
            ("dir a\n", Err(1)),
            ("dir: two words\n", Err(1)),
        ];
        table(cases, |t| section_config(t).map(|s| s.len()));
    }

    #[test]
    fn fixture_corosync_confs_parse() {
        for rel in ["etc/pve/corosync.conf", "etc/corosync/corosync.conf"] {
            let top = corosync(&fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
            let totem = top.children("totem").next().unwrap();
            assert_eq!(totem.get("cluster_name"), Some("testcluster"), "{rel}");
            let nodes: Vec<&str> = top
                .children("nodelist")
                .flat_map(|l| l.children("node"))
                .filter_map(|n| n.get("name"))
                .collect();
            assert_eq!(nodes, ["due", "tre", "uno"], "{rel}");
        }
    }

    #[test]
    fn corosync_table() {
        let cases: &[(&str, Result<usize, usize>)] = &[
            ("totem {\n  version: 2\n}\n", Ok(1)),
            ("# c\nlogging {\n}\nquorum {\n provider: x\n}\n", Ok(2)),
            ("a {\n b {\n  c: d\n }\n}\n", Ok(1)),
            ("totem {\n  version: 2\n", Err(1)),
            ("}\n", Err(1)),
            ("totem {\n  version 2\n}\n", Err(2)),
            ("two words {\n}\n", Err(1)),
        ];
        table(cases, |t| corosync(t).map(|b| b.blocks.len()));
    }

    #[test]
    fn fixture_user_cfg_parses() {
        let u = user_config(&fixture("etc/pve/user.cfg")).unwrap();
        assert_eq!((u.users, u.groups, u.roles, u.tokens), (5, 3, 3, 3));
        assert_eq!(u.acls, 12);
    }

    #[test]
    fn user_config_table() {
        let cases: &[(&str, Result<usize, usize>)] = &[
            ("user:root@pam:1:0:::root@example.com:::\n", Ok(1)),
            (
                "token:root@pam!ci::0:\nacl:1:/:root@pam!ci:PVEAuditor:\n",
                Ok(2),
            ),
            ("pool:prod:Production:100,101:local:\n\n# c\n", Ok(1)),
            ("user:root:1:\n", Err(1)),
            ("token:root@pam::0:\n", Err(1)),
            ("user:a@pve:1:\nacl:2:/:a@pve:R:\n", Err(2)),
            ("acl:1:vms:a@pve:R:\n", Err(1)),
            ("usr:a@pve:1:\n", Err(1)),
        ];
        table(cases, |t| {
            user_config(t).map(|u| u.users + u.tokens + u.acls + u.pools)
        });
    }
}
