//! The restore plan: a pure function of (archive index, what the target holds, selection) → one action per
//! entry. Everything restore prints before asking, and everything it then writes, comes from this plan, so
//! it is table- and property-tested here without touching a disk.

use crate::archive::format::{Index, Kind};
use crate::inspect::diff::text_diff;
use crate::output::escape;
use crate::restore::path::{NodeMap, ancestors, normalize, show};
use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::collections::{HashMap, HashSet};

/// Archive entries under this prefix describe the archive (meta, index, command output, the config.db
/// snapshot); they are never restored onto a host.
const INTERNAL_PREFIX: &[u8] = b"proxkeep/";

/// Largest file whose content is kept for the diff of a held file.
pub const DIFF_MAX: u64 = 256 * 1024;

/// One entry the archive offers, where it would go on the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// Where it goes, relative to the target (normalized, `--map-node` applied).
    pub path: Vec<u8>,
    /// Its name in the archive (normalized).
    pub archive_path: Vec<u8>,
    pub category: String,
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub size: u64,
    pub sha256: Option<String>,
    /// Link target (symlinks), `--map-node` applied.
    pub link: Option<Vec<u8>>,
}

impl Wanted {
    pub fn internal(&self) -> bool {
        self.archive_path.starts_with(INTERNAL_PREFIX) || self.archive_path == b"proxkeep"
    }
    /// Host path as shown to people: `/etc/hosts`.
    pub fn shown(&self) -> String {
        format!("/{}", show(&self.path))
    }
}

/// The index entries as restore sees them. Fails on a name the scan would have refused (it checks the same
/// names in the tar stream) and on `--map-node` onto a node the archive already has.
pub fn wanted_from_index(index: &Index, map: Option<&NodeMap>) -> Result<Vec<Wanted>, String> {
    let mut out = Vec::with_capacity(index.entries.len());
    let mut seen = HashSet::new();
    for e in &index.entries {
        let raw = e.path_bytes();
        let archive_path = normalize(&raw).map_err(|h| format!("{}: {h}", escape(&raw)))?;
        let path = map.map_or_else(|| archive_path.clone(), |m| m.path(&archive_path).into());
        if !seen.insert(path.clone()) {
            return Err(format!(
                "two archive entries would both be written to /{}",
                escape(&path)
            ));
        }
        let link = e.target.as_ref().map(|t| match map {
            Some(m) => m.link(&path, t.as_bytes()).into_owned(),
            None => t.as_bytes().to_vec(),
        });
        out.push(Wanted {
            path,
            archive_path,
            category: e.category.clone(),
            kind: e.kind,
            mode: e.mode_bits() & 0o7777,
            uid: e.uid,
            gid: e.gid,
            mtime: e.mtime,
            size: e.size,
            sha256: e.sha256.clone(),
            link,
        });
    }
    Ok(out)
}

/// What is on the target at one path (read by `target.rs`; plain data here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Missing,
    File {
        mode: u32,
        uid: u32,
        gid: u32,
        size: u64,
        /// Only computed when the size equals the archive's (otherwise the content differs anyway).
        sha256: Option<String>,
        /// Only for held files up to [`DIFF_MAX`] (for the diff).
        content: Option<Vec<u8>>,
    },
    Dir {
        mode: u32,
        uid: u32,
        gid: u32,
    },
    Symlink {
        target: Vec<u8>,
        uid: u32,
        gid: u32,
    },
    /// A FIFO, socket or device node.
    Other(&'static str),
    /// A component above it on the target is a symlink or not a directory: never written through.
    Blocked(String),
}

impl Observed {
    pub fn kind(&self) -> Option<Kind> {
        match self {
            Observed::File { .. } => Some(Kind::File),
            Observed::Dir { .. } => Some(Kind::Dir),
            Observed::Symlink { .. } => Some(Kind::Symlink),
            _ => None,
        }
    }
}

/// How `/etc/pve` may be written (see `guard::pve_verdict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PveWrite {
    /// A plain directory (a `--target` tree): written like any other.
    Plain,
    /// The live pmxcfs mount on `/`: file contents are written through it; pmxcfs owns modes, owners and its
    /// own symlinks.
    ThroughMount,
    /// `/` without pmxcfs: files written there would be hidden by the mount once pve-cluster starts, and
    /// never reach config.db. Refused.
    Refuse,
}

/// Which entries a run asks for.
#[derive(Debug, Clone)]
pub struct Rules {
    /// `--only`: category names.
    pub only: Vec<String>,
    /// `--path`: globs over host paths (`/etc/network/*`); a glob naming a directory names its whole tree.
    pub paths: Vec<String>,
    compiled: GlobSet,
    held: GlobSet,
    /// Hold the hardware- and install-bound files unless named (off for `extract` and for safety archives,
    /// which hold exactly what a restore replaced).
    pub hold: bool,
    /// `extract`: the archive's own `proxkeep/` entries too.
    pub include_internal: bool,
    pub pve: PveWrite,
}

fn glob_set<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let g = GlobBuilder::new(p)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("--path {p:?}: {e}"))?;
        b.add(g);
    }
    b.build().map_err(|e| e.to_string())
}

impl Rules {
    pub fn new(
        only: Vec<String>,
        paths: Vec<String>,
        hold: bool,
        include_internal: bool,
        pve: PveWrite,
    ) -> Result<Rules, String> {
        // Accept `etc/hosts`, `/etc/hosts` and `/etc/network/` alike.
        let paths: Vec<String> = paths
            .into_iter()
            .map(|p| match p.trim_end_matches('/') {
                // `--path /`: everything.
                "" => "/**".to_string(),
                t => format!("/{}", t.strip_prefix('/').unwrap_or(t)),
            })
            .collect();
        let compiled = glob_set(paths.iter().map(String::as_str))?;
        let held = glob_set(crate::catalog::HELD_ON_RESTORE.iter().copied())?;
        Ok(Rules {
            only,
            paths,
            compiled,
            held,
            hold,
            include_internal,
            pve,
        })
    }

    fn everything(&self) -> bool {
        self.only.is_empty() && self.paths.is_empty()
    }

    /// Whether the restore writes an entry of `category` at `path` (everything, or named).
    pub fn selects(&self, category: &str, path: &[u8]) -> bool {
        self.everything() || self.names(category, path)
    }

    /// Named explicitly: its category is in `--only`, or a `--path` glob matches it or a directory above it.
    fn names(&self, category: &str, path: &[u8]) -> bool {
        if self.only.iter().any(|c| c == category) {
            return true;
        }
        if self.paths.is_empty() {
            return false;
        }
        let host = |p: &[u8]| format!("/{}", show(p));
        self.compiled.is_match(host(path))
            || ancestors(path).any(|a| self.compiled.is_match(host(a)))
    }

    pub fn is_held(&self, path: &[u8]) -> bool {
        self.hold && self.held.is_match(format!("/{}", show(path)))
    }
}

/// What differs between the archive's entry and the target's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Content,
    Mode,
    Owner,
    Link,
    /// File where the archive has a symlink or the other way round.
    Kind,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "action", content = "detail", rename_all = "lowercase")]
pub enum Action {
    Create,
    Replace(Vec<Change>),
    Same,
    /// A guarded (hardware- or install-bound) file that differs, not asked for by name.
    Held,
    /// Cannot be written safely; the restore refuses as a whole.
    Conflict(String),
    /// Restoring a safety archive: this did not exist before the restore that made the archive.
    Remove,
}

impl Action {
    pub fn writes(&self) -> bool {
        matches!(self, Action::Create | Action::Replace(_))
    }
    pub fn changes(&self) -> bool {
        self.writes() || *self == Action::Remove
    }
    pub fn name(&self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Replace(_) => "replace",
            Action::Same => "same",
            Action::Held => "held",
            Action::Conflict(_) => "conflict",
            Action::Remove => "remove",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Index into the `wanted` list the plan was made from (`None` for removals).
    pub wanted: Option<usize>,
    pub path: Vec<u8>,
    pub category: String,
    /// The archive's kind (for a removal: the target's).
    pub kind: Kind,
    pub action: Action,
    /// A directory not asked for, created because a selected entry goes into it (with the archive's metadata).
    pub implicit: bool,
    /// Written through the live pmxcfs mount: content and mtime only.
    pub through_pmxcfs: bool,
    /// What is there now (the safety archive stores it before a replace or remove).
    pub observed: Option<Kind>,
    /// Held files: a unified diff of the target's version against the archive's.
    pub diff: Option<String>,
}

impl Step {
    /// A step not implied by another, not through pmxcfs, with nothing observed and no diff.
    fn new(wanted: Option<usize>, path: &[u8], category: &str, kind: Kind, action: Action) -> Step {
        Step {
            wanted,
            path: path.to_vec(),
            category: category.to_string(),
            kind,
            action,
            implicit: false,
            through_pmxcfs: false,
            observed: None,
            diff: None,
        }
    }

    pub fn shown(&self) -> String {
        format!("/{}", show(&self.path))
    }
    /// Host path for a terminal: control characters and non-UTF-8 bytes escaped (see [`escape`]).
    pub fn shown_text(&self) -> String {
        format!("/{}", escape(&self.path))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub category: String,
    pub create: u64,
    pub replace: u64,
    pub same: u64,
    pub held: u64,
    pub conflict: u64,
    pub remove: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Entries left out by `--only`/`--path`.
    pub not_selected: u64,
    /// `proxkeep/` entries (never restored).
    pub internal: u64,
    /// Selected `/etc/pve` entries that were refused because pmxcfs is not mounted on `/`.
    pub pve_refused: u64,
}

impl Plan {
    pub fn writes(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.action.writes())
    }
    pub fn removals(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().filter(|s| s.action == Action::Remove)
    }
    pub fn conflicts(&self) -> impl Iterator<Item = &Step> {
        self.steps
            .iter()
            .filter(|s| matches!(s.action, Action::Conflict(_)))
    }
    pub fn changes(&self) -> bool {
        self.steps.iter().any(|s| s.action.changes())
    }

    /// Per category, in the order categories first appear.
    pub fn counts(&self) -> Vec<Counts> {
        let mut out: Vec<Counts> = Vec::new();
        for s in &self.steps {
            if !out.iter().any(|c| c.category == s.category) {
                out.push(Counts {
                    category: s.category.clone(),
                    ..Default::default()
                });
            }
            let c = out.iter_mut().find(|c| c.category == s.category).unwrap();
            match s.action {
                Action::Create => c.create += 1,
                Action::Replace(_) => c.replace += 1,
                Action::Same => c.same += 1,
                Action::Held => c.held += 1,
                Action::Conflict(_) => c.conflict += 1,
                Action::Remove => c.remove += 1,
            }
        }
        out
    }
}

fn under_etc_pve(path: &[u8]) -> bool {
    path == b"etc/pve" || path.starts_with(b"etc/pve/")
}

fn compare(w: &Wanted, obs: &Observed, through: bool) -> Action {
    // `first` (content or link) when it differs, then the mode (`None`: not compared) and the owner.
    let changes = |first: Option<Change>, mode: Option<u32>, uid: u32, gid: u32| {
        let mode = !through && mode.is_some_and(|m| m != w.mode);
        let owner = !through && (uid, gid) != (w.uid, w.gid);
        let c: Vec<Change> = first
            .into_iter()
            .chain(mode.then_some(Change::Mode))
            .chain(owner.then_some(Change::Owner))
            .collect();
        if c.is_empty() {
            Action::Same
        } else {
            Action::Replace(c)
        }
    };
    match (w.kind, obs) {
        (_, Observed::Blocked(why)) => Action::Conflict(why.clone()),
        (_, Observed::Other(what)) => Action::Conflict(format!("the target has a {what} here")),
        (_, Observed::Missing) => Action::Create,
        (Kind::Dir, Observed::Dir { mode, uid, gid }) => changes(None, Some(*mode), *uid, *gid),
        (Kind::Dir, _) => Action::Conflict(
            "the target has a file or symlink where the archive has a directory".into(),
        ),
        (k, Observed::Dir { .. }) => Action::Conflict(format!(
            "the target has a directory where the archive has a {}",
            if k == Kind::File { "file" } else { "symlink" }
        )),
        (
            Kind::File,
            Observed::File {
                mode,
                uid,
                gid,
                size,
                sha256,
                ..
            },
        ) => {
            let content = *size != w.size || sha256.is_none() || *sha256 != w.sha256;
            changes(content.then_some(Change::Content), Some(*mode), *uid, *gid)
        }
        (Kind::Symlink, Observed::Symlink { target, uid, gid }) => {
            if through {
                // pmxcfs makes its own links from the node name; nothing to write.
                return Action::Same;
            }
            let link = Some(target) != w.link.as_ref();
            changes(link.then_some(Change::Link), None, *uid, *gid)
        }
        (Kind::File, Observed::Symlink { .. }) | (Kind::Symlink, Observed::File { .. }) => {
            Action::Replace(vec![Change::Kind])
        }
    }
}

fn held_diff(
    w: &Wanted,
    obs: &Observed,
    archive_content: &HashMap<Vec<u8>, Vec<u8>>,
) -> Option<String> {
    let shown = format!("/{}", escape(&w.path));
    match (w.kind, obs) {
        (Kind::File, _) => {
            let new = archive_content.get(&w.archive_path).map(Vec::as_slice);
            let (old, kept) = match obs {
                Observed::File { content, .. } => (content.as_deref(), content.is_some()),
                Observed::Missing => (None, true),
                other => return Some(format!("{shown}: the target has a {:?} here", other.kind())),
            };
            if !kept || (new.is_none() && w.size > 0) {
                return Some(format!("{shown}: too large to show a diff"));
            }
            Some(file_diff(&w.path, old, new.unwrap_or_default(), false))
        }
        (Kind::Symlink, Observed::Symlink { target, .. }) => Some(format!(
            "{shown}: link to {} on the target, {} in the archive",
            escape(target),
            escape(w.link.as_deref().unwrap_or_default())
        )),
        _ => None,
    }
}

/// The diff of a file a restore shows: from the target's version (`None`: absent) to what it would write (the
/// archive's content, or `rewritten` for this host), with password hashes masked: they never reach a screen, a
/// log or `--json`.
pub fn file_diff(path: &[u8], old: Option<&[u8]>, new: &[u8], rewritten: bool) -> String {
    let shown = format!("/{}", escape(path));
    let to = match rewritten {
        true => format!("{shown} (archive, rewritten for this host)"),
        false => format!("{shown} (archive)"),
    };
    if !crate::restore::merge::has_hashes(path) {
        return diff_to(&shown, old, new, &to);
    }
    let mask = |b: &[u8]| crate::restore::merge::accounts::mask_hashes(&String::from_utf8_lossy(b));
    let (old, new) = (old.map(mask), mask(new));
    diff_to(
        &shown,
        old.as_deref().map(str::as_bytes),
        new.as_bytes(),
        &to,
    )
}

/// A unified diff from the target's version (`None`: absent) to the archive's (see [`text_diff`]).
pub fn unified_diff(shown: &str, old: Option<&[u8]>, new: &[u8]) -> String {
    diff_to(shown, old, new, &format!("{shown} (archive)"))
}

fn diff_to(shown: &str, old: Option<&[u8]>, new: &[u8], to: &str) -> String {
    let from = match old {
        Some(_) => format!("{shown} (target)"),
        None => "/dev/null (absent on the target)".into(),
    };
    text_diff(&from, to, old, Some(new), true)
        .unwrap_or_else(|_| format!("{shown}: binary content differs"))
}

/// The plan. `observed` holds what the target has at every path of `wanted` and `absent` (a missing key
/// means nothing there); `archive_content` the archive's bytes of held files (for their diffs); `absent` the
/// paths a safety archive says did not exist before (removed when restoring it).
pub fn plan(
    wanted: &[Wanted],
    observed: &HashMap<Vec<u8>, Observed>,
    rules: &Rules,
    archive_content: &HashMap<Vec<u8>, Vec<u8>>,
    absent: &[(String, Vec<u8>)],
) -> Plan {
    const MISSING: Observed = Observed::Missing;
    let mut out = Plan::default();
    // First pass: a step per selected entry; unselected directories (`None`) may still be needed as parents.
    let mut decisions: Vec<(usize, Option<Step>)> = Vec::with_capacity(wanted.len());
    for (i, w) in wanted.iter().enumerate() {
        if w.internal() && !rules.include_internal {
            out.internal += 1;
            continue;
        }
        let obs = observed.get(&w.path).unwrap_or(&MISSING);
        let named = rules.names(&w.category, &w.path);
        let pve = under_etc_pve(&w.path);
        let through = pve && rules.pve == PveWrite::ThroughMount;
        if !rules.selects(&w.category, &w.path) {
            decisions.push((i, None));
            continue;
        }
        let mut action = compare(w, obs, through);
        let mut diff = None;
        // Only a run that asks for everything meets a held file without naming it.
        if rules.is_held(&w.path) && !named && action != Action::Same {
            diff = held_diff(w, obs, archive_content);
            action = Action::Held;
        }
        if pve && rules.pve == PveWrite::Refuse && action.writes() {
            out.pve_refused += 1;
            action = Action::Conflict(
                "/etc/pve is not mounted (pmxcfs is down): files written there would never reach config.db".into(),
            );
        }
        let step = Step {
            through_pmxcfs: through,
            observed: obs.kind(),
            diff,
            ..Step::new(Some(i), &w.path, &w.category, w.kind, action)
        };
        decisions.push((i, Some(step)));
    }
    // Directories above what will be written, missing on the target, come from the archive too.
    let needed: HashSet<Vec<u8>> = decisions
        .iter()
        .filter_map(|(_, s)| s.as_ref().filter(|s| s.action.writes()))
        .flat_map(|s| ancestors(&s.path).map(<[u8]>::to_vec))
        .collect();
    out.steps.reserve_exact(decisions.len());
    for (i, step) in decisions {
        let w = &wanted[i];
        match step {
            Some(s) => out.steps.push(s),
            None if w.kind == Kind::Dir
                && needed.contains(&w.path)
                && observed
                    .get(&w.path)
                    .is_none_or(|o| *o == Observed::Missing) =>
            {
                let through = under_etc_pve(&w.path) && rules.pve == PveWrite::ThroughMount;
                out.steps.push(Step {
                    implicit: true,
                    through_pmxcfs: through,
                    ..Step::new(Some(i), &w.path, &w.category, Kind::Dir, Action::Create)
                });
            }
            None => out.not_selected += 1,
        }
    }
    for (category, path) in absent {
        if !(rules.everything() || rules.names(category, path)) {
            continue;
        }
        let obs = observed.get(path).unwrap_or(&MISSING);
        if let Some(kind) = obs.kind() {
            out.steps.push(Step {
                observed: Some(kind),
                ..Step::new(None, path, category, kind, Action::Remove)
            });
        }
    }
    out
}

/// A command to run after a restore, for what was restored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FollowUp {
    pub command: Vec<String>,
    pub why: String,
    /// Run by `--apply-services`. Boot and cluster steps are only printed: they take long, need a reboot,
    /// or must be coordinated with other nodes, and killing them at a timeout would do harm.
    pub automatic: bool,
}

impl FollowUp {
    pub fn display(&self) -> String {
        self.command.join(" ")
    }
}

/// (host path globs, command, why), in the order they should run: first those `--apply-services` runs,
/// then [`PRINTED_ONLY`]. Globs and the command's words are separated by spaces.
const AUTOMATIC: &[(&str, &str, &str)] = &[
    (
        "/etc/systemd/system/**",
        "systemctl daemon-reload",
        "load the restored unit files",
    ),
    (
        "/etc/sysctl.conf /etc/sysctl.d/**",
        "sysctl --system",
        "apply the restored kernel parameters",
    ),
    (
        "/etc/network/**",
        "ifreload -a",
        "apply the restored network configuration (from the console if you are connected through it)",
    ),
    (
        "/etc/frr/**",
        "systemctl restart frr",
        "load the restored FRR routing configuration",
    ),
    (
        "/etc/ssh/sshd_config /etc/ssh/sshd_config.d/** /etc/ssh/ssh_host_*",
        "systemctl reload ssh",
        "load the restored sshd configuration and host keys",
    ),
    (
        "/etc/postfix/**",
        "systemctl reload postfix",
        "load the restored postfix configuration",
    ),
    ("/etc/aliases", "newaliases", "rebuild the aliases database"),
    (
        "/etc/proxmox-backup/proxy.pem /etc/proxmox-backup/proxy.key",
        "systemctl restart proxmox-backup-proxy",
        "load the restored PBS API certificate",
    ),
    (
        "/etc/pve/nodes/*/pveproxy-ssl.* /etc/pve/nodes/*/pve-ssl.* /etc/pve/pve-root-ca.pem",
        "systemctl restart pveproxy",
        "load the restored web/API certificates",
    ),
];

/// Boot and cluster steps: see [`FollowUp::automatic`].
const PRINTED_ONLY: &[(&str, &str, &str)] = &[
    (
        "/etc/corosync/**",
        "systemctl restart corosync",
        "only on an isolated node, or once every node has the same corosync.conf and authkey",
    ),
    (
        "/etc/fstab /etc/crypttab /etc/systemd/system/*.mount",
        "mount -a",
        "check the restored mounts against the disks this host has (blkid)",
    ),
    (
        "/etc/kernel/** /etc/default/grub /etc/default/grub.d/** /etc/modules /etc/modules-load.d/** \
         /etc/modprobe.d/** /etc/initramfs-tools/** /etc/zfs/** /etc/udev/rules.d/** \
         /etc/systemd/network/*.link /usr/local/lib/systemd/network/*.link",
        "update-initramfs -u -k all",
        "boot-time files changed: rebuild the initramfs",
    ),
    (
        "/etc/kernel/** /etc/default/grub /etc/default/grub.d/**",
        "proxmox-boot-tool refresh",
        "boot configuration changed: refresh the boot loader, then reboot",
    ),
    ("/etc/apt/**", "apt update", "package sources changed"),
    (
        "/etc/hostname",
        "hostname -F /etc/hostname",
        "the host name changed: check /etc/hosts and the node name in /etc/pve/nodes, then reboot",
    ),
];

/// Follow-up commands for what a restore wrote (host paths like `/etc/network/interfaces`).
pub fn follow_ups<'a>(written: impl IntoIterator<Item = &'a str>) -> Vec<FollowUp> {
    let rules: Vec<_> = AUTOMATIC
        .iter()
        .map(|r| (r, true))
        .chain(PRINTED_ONLY.iter().map(|r| (r, false)))
        .collect();
    // One set of every follow-up's globs, so each path is matched once: a restore writes tens of thousands.
    let owner: Vec<usize> = rules
        .iter()
        .enumerate()
        .flat_map(|(i, (r, _))| r.0.split_whitespace().map(move |_| i))
        .collect();
    let Ok(set) = glob_set(rules.iter().flat_map(|(r, _)| r.0.split_whitespace())) else {
        return Vec::new();
    };
    let mut hit = vec![false; rules.len()];
    let mut matched = Vec::new();
    for p in written {
        set.matches_into(p, &mut matched);
        for g in &matched {
            hit[owner[*g]] = true;
        }
    }
    rules
        .into_iter()
        .zip(hit)
        .filter(|(_, hit)| *hit)
        .map(|(((_, cmd, why), automatic), _)| FollowUp {
            command: cmd.split(' ').map(String::from).collect(),
            why: why.to_string(),
            automatic,
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An archive file entry (also for the restore tests).
    pub(crate) fn file(path: &str, cat: &str, content: &[u8]) -> Wanted {
        Wanted {
            path: path.into(),
            archive_path: path.into(),
            category: cat.into(),
            kind: Kind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime: 1,
            size: content.len() as u64,
            sha256: Some(crate::archive::sha256_hex(content)),
            link: None,
        }
    }
    fn dir(path: &str, cat: &str) -> Wanted {
        Wanted {
            kind: Kind::Dir,
            size: 0,
            sha256: None,
            mode: 0o755,
            ..file(path, cat, b"")
        }
    }
    fn link(path: &str, cat: &str, to: &str) -> Wanted {
        Wanted {
            kind: Kind::Symlink,
            size: 0,
            sha256: None,
            mode: 0o777,
            link: Some(to.into()),
            ..file(path, cat, b"")
        }
    }
    /// What the target shows once `w` was written.
    fn as_observed(w: &Wanted) -> Observed {
        match w.kind {
            Kind::File => Observed::File {
                mode: w.mode,
                uid: w.uid,
                gid: w.gid,
                size: w.size,
                sha256: w.sha256.clone(),
                content: None,
            },
            Kind::Dir => Observed::Dir {
                mode: w.mode,
                uid: w.uid,
                gid: w.gid,
            },
            Kind::Symlink => Observed::Symlink {
                target: w.link.clone().unwrap(),
                uid: w.uid,
                gid: w.gid,
            },
        }
    }
    fn rules(only: &[&str], paths: &[&str]) -> Rules {
        Rules::new(
            only.iter().map(|s| s.to_string()).collect(),
            paths.iter().map(|s| s.to_string()).collect(),
            true,
            false,
            PveWrite::Plain,
        )
        .unwrap()
    }
    fn actions(p: &Plan) -> Vec<(String, &'static str)> {
        p.steps
            .iter()
            .map(|s| (show(&s.path), s.action.name()))
            .collect()
    }

    #[test]
    fn actions_table() {
        let w = vec![
            dir("etc/pve", "pve-cluster"),
            file("etc/pve/storage.cfg", "pve-cluster", b"dir: local\n"),
            file("etc/pve/user.cfg", "pve-cluster", b"user:root@pam\n"),
            file("etc/pve/datacenter.cfg", "pve-cluster", b"keyboard: de\n"),
            link("etc/pve/local", "pve-cluster", "nodes/due"),
            file("etc/network/interfaces", "network", b"auto lo\n"),
            file("etc/hosts", "network", b"127.0.0.1 localhost\n"),
            file("proxkeep/commands/network/ip-addr.json", "network", b"[]"),
        ];
        let mut obs = HashMap::new();
        obs.insert(b"etc/pve".to_vec(), as_observed(&w[0]));
        // same content, other mode
        obs.insert(
            b"etc/pve/storage.cfg".to_vec(),
            Observed::File {
                mode: 0o600,
                uid: 0,
                gid: 0,
                size: 11,
                sha256: w[1].sha256.clone(),
                content: None,
            },
        );
        // same everything
        obs.insert(b"etc/pve/user.cfg".to_vec(), as_observed(&w[2]));
        // datacenter.cfg missing → create; local link points elsewhere
        obs.insert(
            b"etc/pve/local".to_vec(),
            Observed::Symlink {
                target: b"nodes/uno".to_vec(),
                uid: 0,
                gid: 0,
            },
        );
        // held, differing
        obs.insert(
            b"etc/network/interfaces".to_vec(),
            Observed::File {
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: 3,
                sha256: None,
                content: Some(b"xx\n".to_vec()),
            },
        );
        // held, same → same
        obs.insert(b"etc/hosts".to_vec(), as_observed(&w[6]));
        let mut content = HashMap::new();
        content.insert(b"etc/network/interfaces".to_vec(), b"auto lo\n".to_vec());
        let p = plan(&w, &obs, &rules(&[], &[]), &content, &[]);
        assert_eq!(
            actions(&p),
            vec![
                ("etc/pve".into(), "same"),
                ("etc/pve/storage.cfg".into(), "replace"),
                ("etc/pve/user.cfg".into(), "same"),
                ("etc/pve/datacenter.cfg".into(), "create"),
                ("etc/pve/local".into(), "replace"),
                ("etc/network/interfaces".into(), "held"),
                ("etc/hosts".into(), "same"),
            ]
        );
        assert_eq!(p.steps[1].action, Action::Replace(vec![Change::Mode]));
        assert_eq!(p.steps[4].action, Action::Replace(vec![Change::Link]));
        assert_eq!(p.internal, 1);
        let d = p.steps[5].diff.as_deref().unwrap();
        assert!(
            d.contains("--- /etc/network/interfaces (target)")
                && d.contains("-xx")
                && d.contains("+auto lo"),
            "{d}"
        );
        let counts = p.counts();
        assert_eq!(
            counts[0],
            Counts {
                category: "pve-cluster".into(),
                create: 1,
                replace: 2,
                same: 2,
                ..Default::default()
            }
        );
        assert_eq!(
            counts[1],
            Counts {
                category: "network".into(),
                held: 1,
                same: 1,
                ..Default::default()
            }
        );

        // Named with --only, the held file is written; the other categories are not selected.
        let p = plan(&w, &obs, &rules(&["network"], &[]), &content, &[]);
        assert_eq!(
            actions(&p),
            vec![
                ("etc/network/interfaces".into(), "replace"),
                ("etc/hosts".into(), "same")
            ]
        );
        assert_eq!(p.not_selected, 5);
        // Named with --path (a directory names its tree).
        let p = plan(&w, &obs, &rules(&[], &["/etc/network"]), &content, &[]);
        assert_eq!(
            actions(&p),
            vec![("etc/network/interfaces".into(), "replace")]
        );
        // A selection that does not name the held files leaves them out entirely.
        let p = plan(&w, &obs, &rules(&[], &["etc/pve/*.cfg"]), &content, &[]);
        assert_eq!(p.writes().count(), 2);
        assert!(!p.steps.iter().any(|s| s.path == b"etc/network/interfaces"));
        // `--path /` names everything, held files included.
        let p = plan(&w, &obs, &rules(&[], &["/"]), &content, &[]);
        assert_eq!(p.writes().count(), 4);
        assert!(
            p.steps
                .iter()
                .any(|s| s.path == b"etc/network/interfaces" && s.action.writes())
        );
        assert_eq!(p.not_selected, 0);
    }

    #[test]
    fn conflicts_and_kind_changes() {
        let w = vec![
            dir("a", "x"),
            file("a/f", "x", b"1"),
            link("a/l", "x", "f"),
            file("a/g", "x", b"2"),
            file("b/f", "x", b"3"),
            dir("c", "x"),
        ];
        let mut obs = HashMap::new();
        obs.insert(
            b"a".to_vec(),
            Observed::Dir {
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
        );
        obs.insert(
            b"a/f".to_vec(),
            Observed::Symlink {
                target: b"x".to_vec(),
                uid: 0,
                gid: 0,
            },
        );
        obs.insert(
            b"a/l".to_vec(),
            Observed::Dir {
                mode: 0o755,
                uid: 0,
                gid: 0,
            },
        );
        obs.insert(b"a/g".to_vec(), Observed::Other("FIFO"));
        obs.insert(
            b"b/f".to_vec(),
            Observed::Blocked("passes through the symlink b on the target".into()),
        );
        obs.insert(
            b"c".to_vec(),
            Observed::File {
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: 0,
                sha256: None,
                content: None,
            },
        );
        let p = plan(&w, &obs, &rules(&[], &[]), &HashMap::new(), &[]);
        assert_eq!(
            actions(&p),
            vec![
                ("a".into(), "same"),
                ("a/f".into(), "replace"),
                ("a/l".into(), "conflict"),
                ("a/g".into(), "conflict"),
                ("b/f".into(), "conflict"),
                ("c".into(), "conflict"),
            ]
        );
        assert_eq!(p.steps[1].action, Action::Replace(vec![Change::Kind]));
        assert_eq!(p.conflicts().count(), 4);
    }

    #[test]
    fn implicit_parents_and_removals() {
        let w = vec![
            dir("etc/pve", "pve-cluster"),
            dir("etc/network", "network"),
            file("etc/network/interfaces", "network", b"x"),
        ];
        let p = plan(
            &w,
            &HashMap::new(),
            &rules(&[], &["/etc/network/interfaces"]),
            &HashMap::new(),
            &[],
        );
        assert_eq!(
            actions(&p),
            vec![
                ("etc/network".into(), "create"),
                ("etc/network/interfaces".into(), "create")
            ]
        );
        assert!(p.steps[0].implicit && !p.steps[1].implicit);
        assert_eq!(p.not_selected, 1);

        let mut obs = HashMap::new();
        obs.insert(
            b"etc/new.conf".to_vec(),
            Observed::File {
                mode: 0o644,
                uid: 0,
                gid: 0,
                size: 1,
                sha256: None,
                content: None,
            },
        );
        let absent = vec![
            ("x".to_string(), b"etc/new.conf".to_vec()),
            ("x".to_string(), b"etc/gone".to_vec()),
        ];
        let p = plan(&[], &obs, &rules(&[], &[]), &HashMap::new(), &absent);
        assert_eq!(actions(&p), vec![("etc/new.conf".into(), "remove")]);
    }

    #[test]
    fn etc_pve_through_the_mount_or_refused() {
        let w = vec![
            file("etc/pve/storage.cfg", "pve-cluster", b"a"),
            link("etc/pve/local", "pve-cluster", "nodes/due"),
            file("etc/hosts", "network", b"h"),
        ];
        let mut obs = HashMap::new();
        // pmxcfs shows its own mode/owner: not a difference when writing through the mount.
        obs.insert(
            b"etc/pve/storage.cfg".to_vec(),
            Observed::File {
                mode: 0o640,
                uid: 0,
                gid: 33,
                size: 1,
                sha256: w[0].sha256.clone(),
                content: None,
            },
        );
        obs.insert(
            b"etc/pve/local".to_vec(),
            Observed::Symlink {
                target: b"nodes/other".to_vec(),
                uid: 0,
                gid: 0,
            },
        );
        let mut r = rules(&[], &[]);
        r.pve = PveWrite::ThroughMount;
        let p = plan(&w, &obs, &r, &HashMap::new(), &[]);
        assert_eq!(
            actions(&p)[..2],
            [
                ("etc/pve/storage.cfg".into(), "same"),
                ("etc/pve/local".into(), "same")
            ]
        );
        r.pve = PveWrite::Refuse;
        let p = plan(&w, &HashMap::new(), &r, &HashMap::new(), &[]);
        assert_eq!(p.pve_refused, 2);
        assert_eq!(p.conflicts().count(), 2);
        // Not selecting /etc/pve is fine with pmxcfs down.
        let mut r = rules(&["network"], &[]);
        r.pve = PveWrite::Refuse;
        assert_eq!(
            plan(&w, &HashMap::new(), &r, &HashMap::new(), &[]).pve_refused,
            0
        );
    }

    #[test]
    fn map_node_moves_paths_and_links() {
        let idx: Index = serde_json::from_value(serde_json::json!({
            "format_version": 1,
            "entries": [
                {"path": "etc/pve/nodes/due", "category": "pve-cluster", "kind": "dir", "size": 0, "mode": "0755", "uid": 0, "gid": 33, "mtime": 1},
                {"path": "etc/pve/nodes/due/qemu-server/100.conf", "category": "pve-cluster", "kind": "file", "size": 0, "mode": "0640", "uid": 0, "gid": 33, "mtime": 1},
                {"path": "etc/pve/local", "category": "pve-cluster", "kind": "symlink", "size": 0, "mode": "0777", "uid": 0, "gid": 0, "mtime": 1, "target": "nodes/due"},
                {"path": "etc/pve/nodes/uno", "category": "pve-cluster", "kind": "dir", "size": 0, "mode": "0755", "uid": 0, "gid": 33, "mtime": 1}
            ],
            "totals": {"entries": 0, "files": 0, "dirs": 0, "symlinks": 0, "bytes": 0, "warnings": 0}
        }))
        .unwrap();
        let w = wanted_from_index(&idx, Some(&NodeMap::parse("due=quattro").unwrap())).unwrap();
        assert_eq!(w[1].path, b"etc/pve/nodes/quattro/qemu-server/100.conf");
        assert_eq!(w[1].archive_path, b"etc/pve/nodes/due/qemu-server/100.conf");
        assert_eq!(w[2].link.as_deref(), Some(&b"nodes/quattro"[..]));
        let err = wanted_from_index(&idx, Some(&NodeMap::parse("due=uno").unwrap())).unwrap_err();
        assert!(err.contains("/etc/pve/nodes/uno"), "{err}");
    }

    #[test]
    fn follow_up_table() {
        let f = follow_ups([
            "/etc/network/interfaces",
            "/etc/proxmox-backup/proxy.pem",
            "/etc/pve/storage.cfg",
        ]);
        let cmds: Vec<String> = f.iter().map(FollowUp::display).collect();
        assert_eq!(
            cmds,
            vec!["ifreload -a", "systemctl restart proxmox-backup-proxy"]
        );
        assert!(f.iter().all(|f| f.automatic));
        let f = follow_ups(["/etc/kernel/cmdline"]);
        assert_eq!(
            f.iter().map(FollowUp::display).collect::<Vec<_>>(),
            vec!["update-initramfs -u -k all", "proxmox-boot-tool refresh"]
        );
        assert!(f.iter().all(|f| !f.automatic));
        assert!(
            follow_ups(["/etc/pve/nodes/due/pveproxy-ssl.pem"])
                .iter()
                .any(|f| f.display() == "systemctl restart pveproxy")
        );
        assert!(follow_ups(["/etc/pve/qemu-server/100.conf", "/root/.bashrc"]).is_empty());
    }

    #[test]
    fn diff_rendering() {
        let d = unified_diff("/etc/hosts", Some(b"a\nb\n"), b"a\nc\n");
        assert!(
            d.contains("--- /etc/hosts (target)\n+++ /etc/hosts (archive)\n"),
            "{d}"
        );
        assert!(d.contains("-b\n+c\n"), "{d}");
        assert!(unified_diff("/x", None, b"n\n").contains("absent on the target"));
        assert_eq!(
            unified_diff("/x", Some(b"\0"), b"y"),
            "/x: binary content differs"
        );
    }

    fn arb_wanted() -> impl Strategy<Value = Vec<Wanted>> {
        // Paths from a tiny alphabet so parents, held names and internal names collide often.
        let names = prop_oneof![
            Just("etc"),
            Just("etc/hosts"),
            Just("etc/network"),
            Just("etc/network/interfaces"),
            Just("etc/pve"),
            Just("etc/pve/a.cfg"),
            Just("etc/pve/nodes"),
            Just("root"),
            Just("root/x"),
            Just("proxkeep/meta.json"),
        ];
        proptest::collection::vec((names, 0u8..3, 0u8..3, "[a-c]"), 0..10).prop_map(|v| {
            let mut seen = HashSet::new();
            v.into_iter()
                .filter(|(p, ..)| seen.insert(*p))
                .map(|(p, k, c, content)| {
                    let cat = ["network", "pve-cluster", "ssh"][c as usize];
                    match k {
                        0 => file(p, cat, content.as_bytes()),
                        1 => dir(p, cat),
                        _ => link(p, cat, &content),
                    }
                })
                .collect()
        })
    }

    fn arb_observed(w: &Wanted, pick: u8) -> Option<Observed> {
        match pick {
            0 => None,
            1 => Some(as_observed(w)),
            2 => Some(Observed::File {
                mode: 0o600,
                uid: 1,
                gid: 1,
                size: 1,
                sha256: None,
                content: Some(b"z".to_vec()),
            }),
            3 => Some(Observed::Dir {
                mode: 0o700,
                uid: 0,
                gid: 0,
            }),
            _ => Some(Observed::Symlink {
                target: b"elsewhere".to_vec(),
                uid: 0,
                gid: 0,
            }),
        }
    }

    proptest! {
        /// For any archive, target and selection: internal entries are never written; a held file is only
        /// written when named; only selected entries (and missing parent directories) are written; `same`
        /// means the target already matches; and once the plan's writes are applied, planning again finds
        /// nothing left to write.
        #[test]
        fn plan_properties(wanted in arb_wanted(), picks in proptest::collection::vec(0u8..5, 10),
                           only in proptest::collection::vec(prop_oneof![Just("network"), Just("ssh")], 0..2),
                           paths in proptest::collection::vec(prop_oneof![Just("/etc/network"), Just("/etc/pve/*"), Just("/root/**")], 0..2)) {
            let mut obs = HashMap::new();
            for (w, pick) in wanted.iter().zip(&picks) {
                if let Some(o) = arb_observed(w, *pick) {
                    obs.insert(w.path.clone(), o);
                }
            }
            let r = rules(&only, &paths);
            let p = plan(&wanted, &obs, &r, &HashMap::new(), &[]);
            let everything = only.is_empty() && paths.is_empty();
            for s in &p.steps {
                let w = &wanted[s.wanted.unwrap()];
                prop_assert!(!w.internal());
                let named = r.names(&w.category, &w.path);
                if s.action.writes() {
                    prop_assert!(everything || named || (s.implicit && w.kind == Kind::Dir));
                    prop_assert!(!r.is_held(&w.path) || named);
                }
                if s.action == Action::Same {
                    let o = obs.get(&w.path).cloned().unwrap_or(Observed::Missing);
                    prop_assert_eq!(o, as_observed(w));
                }
            }
            // Apply the writes to the model, then plan again.
            let mut after = obs.clone();
            for s in p.writes() {
                after.insert(s.path.clone(), as_observed(&wanted[s.wanted.unwrap()]));
            }
            let again = plan(&wanted, &after, &r, &HashMap::new(), &[]);
            prop_assert_eq!(again.writes().count(), 0, "{:?}", actions(&again));
        }
    }
}
