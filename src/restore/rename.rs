//! `--map-node OLD=NEW`, the rest of a node rename (issue 14): the corosync nodelist and `config_version`,
//! `/etc/hosts` and `/etc/hostname`, the node certificate note, and VMIDs that would end up on two nodes.
//!
//! Everything here is pure (bytes in, bytes out); the restore's rewrite hook feeds it the archive's bytes.
//! Edits are line based and in place: comments, indentation, spacing and line endings stay byte for byte.

use crate::restore::path::NodeMap;
use crate::restore::rewrite::{Blocker, Context, FileNote, Outcome, Rewriter, Rewritten};
use crate::restore::target::Target;
use std::ops::Range;
use std::path::Path;

/// Why corosync.conf could not be rewritten (it is then restored as it is, with a note).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorosyncError {
    #[error("it has no nodelist section")]
    NoNodelist,
    #[error("its nodelist has no node named {0:?}")]
    NoNode(String),
    #[error("its totem section has no config_version (needed to bump it)")]
    NoVersion,
    #[error("line {line}: config_version {value:?} is not a number")]
    BadVersion { line: usize, value: String },
    #[error("line {line}: a closing brace without an open section")]
    Unbalanced { line: usize },
    #[error("a section opened on line {line} is never closed")]
    Unclosed { line: usize },
}

/// A rewritten corosync.conf and what changed in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Corosync {
    pub content: Vec<u8>,
    /// The node block's keys that changed (`name`, `ring0_addr`, ...).
    pub keys: Vec<String>,
    /// `config_version` before and after.
    pub version: (u64, u64),
}

/// One line of corosync.conf, as far as a rename needs it.
enum Line<'a> {
    Open(&'a [u8]),
    Close,
    /// `key: value`, with the value's byte range in the line.
    Pair(&'a [u8], Range<usize>),
    Other,
}

fn trim_range(line: &[u8], r: Range<usize>) -> Range<usize> {
    let s = &line[r.clone()];
    let start = r.start + s.iter().take_while(|b| b.is_ascii_whitespace()).count();
    let end = r.end
        - s.iter()
            .rev()
            .take_while(|b| b.is_ascii_whitespace())
            .count();
    start..end.max(start)
}

fn classify(line: &[u8]) -> Line<'_> {
    let t = &line[trim_range(line, 0..line.len())];
    if t.is_empty() || t[0] == b'#' {
        Line::Other
    } else if t == b"}" {
        Line::Close
    } else if let Some(head) = t.strip_suffix(b"{") {
        Line::Open(head.trim_ascii())
    } else if let Some(colon) = line.iter().position(|&b| b == b':') {
        Line::Pair(
            line[..colon].trim_ascii(),
            trim_range(line, colon + 1..line.len()),
        )
    } else {
        Line::Other
    }
}

/// Lines with their terminators (the last one may have none).
fn lines(text: &[u8]) -> Vec<&[u8]> {
    text.split_inclusive(|&b| b == b'\n').collect()
}

/// An address, not a name: IPv6 (has a colon) or all digits and dots.
fn is_address(v: &[u8]) -> bool {
    v.contains(&b':') || v.iter().all(|b| b.is_ascii_digit() || *b == b'.')
}

/// `name` with the node's name replaced: `OLD` → `NEW`, `OLD.domain` → `NEW.domain` (host names compare
/// without case); `None` for any other name (`OLDx`, `x.OLD`, an address).
pub fn rename_host(name: &[u8], map: &NodeMap) -> Option<Vec<u8>> {
    let old = map.old.as_bytes();
    if is_address(name) || name.len() < old.len() || !name[..old.len()].eq_ignore_ascii_case(old) {
        return None;
    }
    let rest = &name[old.len()..];
    (rest.is_empty() || rest[0] == b'.').then(|| [map.new.as_bytes(), rest].concat())
}

/// `NEW` must be usable as a host name and corosync node name: a DNS label (letters, digits, `-`).
pub fn check_host_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    ok.then_some(()).ok_or_else(|| {
        format!(
            "--map-node: {name:?} is not a valid host name (letters, digits and '-', at most 63): it becomes the \
             node's name in corosync.conf, /etc/hosts and /etc/hostname"
        )
    })
}

/// Replace the given ranges of the given lines (sorted by line) and join everything back.
fn splice(lines: &[&[u8]], edits: &[(usize, Range<usize>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.iter().map(|l| l.len()).sum::<usize>() + 64);
    let mut edits = edits.iter().peekable();
    for (i, line) in lines.iter().enumerate() {
        let mut at = 0;
        while let Some((_, r, with)) = edits.next_if(|(n, _, _)| *n == i) {
            out.extend_from_slice(&line[at..r.start]);
            out.extend_from_slice(with);
            at = r.end;
        }
        out.extend_from_slice(&line[at..]);
    }
    out
}

/// corosync.conf with node `OLD` renamed: its nodelist `name:`, each `ringN_addr` that is the node's name
/// (never an address), and `totem { config_version }` bumped by one.
pub fn corosync(text: &[u8], map: &NodeMap) -> Result<Corosync, CorosyncError> {
    let lines = lines(text);
    let mut stack: Vec<(&[u8], usize)> = Vec::new();
    let mut block: Vec<(usize, &[u8], Range<usize>)> = Vec::new();
    let (mut nodelist, mut version) = (false, None);
    let mut edits = Vec::new();
    let mut keys = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let within = |names: &[&[u8]]| stack.iter().map(|s| s.0).eq(names.iter().copied());
        match classify(line) {
            Line::Open(name) => {
                nodelist |= stack.is_empty() && name == b"nodelist";
                stack.push((name, i));
            }
            Line::Close => {
                if within(&[b"nodelist", b"node"]) {
                    node_edits(
                        line_slice(&lines, &block),
                        &block,
                        map,
                        &mut edits,
                        &mut keys,
                    );
                    block.clear();
                }
                stack
                    .pop()
                    .ok_or(CorosyncError::Unbalanced { line: i + 1 })?;
            }
            Line::Pair(key, value) if within(&[b"nodelist", b"node"]) => {
                block.push((i, key, value));
            }
            Line::Pair(b"config_version", value) if within(&[b"totem"]) => {
                version = Some((i, value));
            }
            _ => {}
        }
    }
    if let Some(&(_, line)) = stack.first() {
        return Err(CorosyncError::Unclosed { line: line + 1 });
    }
    if !nodelist {
        return Err(CorosyncError::NoNodelist);
    }
    if keys.is_empty() {
        return Err(CorosyncError::NoNode(map.old.clone()));
    }
    let (i, range) = version.ok_or(CorosyncError::NoVersion)?;
    let value = &lines[i][range.clone()];
    let old: u64 = std::str::from_utf8(value)
        .ok()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| CorosyncError::BadVersion {
            line: i + 1,
            value: String::from_utf8_lossy(value).into_owned(),
        })?;
    let new = old.saturating_add(1);
    edits.push((i, range, new.to_string().into_bytes()));
    edits.sort_by_key(|e| (e.0, e.1.start));
    Ok(Corosync {
        content: splice(&lines, &edits),
        keys,
        version: (old, new),
    })
}

/// The values of a node block's pairs, by line number.
fn line_slice<'a>(lines: &[&'a [u8]], block: &[(usize, &[u8], Range<usize>)]) -> Vec<&'a [u8]> {
    block
        .iter()
        .map(|(i, _, r)| &lines[*i][r.clone()])
        .collect()
}

/// The edits for one `node { }` block, when its `name` is the old node.
fn node_edits(
    values: Vec<&[u8]>,
    block: &[(usize, &[u8], Range<usize>)],
    map: &NodeMap,
    edits: &mut Vec<(usize, Range<usize>, Vec<u8>)>,
    keys: &mut Vec<String>,
) {
    let is_old = block
        .iter()
        .zip(&values)
        .any(|((_, k, _), v)| *k == b"name" && *v == map.old.as_bytes());
    if !is_old {
        return;
    }
    for ((i, key, range), value) in block.iter().zip(values) {
        let ring = key.starts_with(b"ring") && key.ends_with(b"_addr");
        let new = match *key {
            b"name" => Some(map.new.as_bytes().to_vec()),
            _ if ring => rename_host(value, map),
            _ => None,
        };
        if let Some(new) = new {
            edits.push((*i, range.clone(), new));
            keys.push(String::from_utf8_lossy(key).into_owned());
        }
    }
}

/// `/etc/hosts` with every host name or alias that is the old node (with or without its domain) renamed;
/// `None` when no line names it.
pub fn hosts(text: &[u8], map: &NodeMap) -> Option<Vec<u8>> {
    let lines = lines(text);
    let mut edits = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let body = line.iter().position(|&b| b == b'#').unwrap_or(line.len());
        // Fields: the address, then names.
        let fields = tokens(&line[..body]);
        for r in fields.into_iter().skip(1) {
            if let Some(new) = rename_host(&line[r.clone()], map) {
                edits.push((i, r, new));
            }
        }
    }
    (!edits.is_empty()).then(|| splice(&lines, &edits))
}

/// The byte ranges of the whitespace-separated fields of `s`.
fn tokens(s: &[u8]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, b) in s.iter().enumerate().chain([(s.len(), &b' ')]) {
        match (b.is_ascii_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(st)) => {
                out.push(st..i);
                start = None;
            }
            _ => {}
        }
    }
    out
}

/// `/etc/hostname` naming the old node (`OLD` or `OLD.domain`) with the new name, the domain kept; `None`
/// when it names another host.
pub fn hostname(text: &[u8], map: &NodeMap) -> Option<Vec<u8>> {
    let lines = lines(text);
    let i = lines
        .iter()
        .position(|l| !l.trim_ascii().is_empty() && !l.trim_ascii().starts_with(b"#"))?;
    let r = tokens(lines[i]).into_iter().next()?;
    let new = rename_host(&lines[i][r.clone()], map)?;
    Some(splice(&lines, &[(i, r, new)]))
}

/// The note for the node's certificates, when the archive holds them: they were issued for the old name.
pub fn certificate_note(paths: &[Vec<u8>], map: &NodeMap) -> Option<String> {
    let (old, new) = (&map.old, &map.new);
    let has = |f: &str| {
        let p = format!("etc/pve/nodes/{old}/{f}");
        paths.iter().any(|q| *q == p.as_bytes())
    };
    let certs: Vec<&str> = ["pve-ssl.pem", "pve-ssl.key"]
        .into_iter()
        .filter(|f| has(f))
        .collect();
    let mut notes = Vec::new();
    if !certs.is_empty() {
        notes.push(format!(
            "/etc/pve/nodes/{new}/{} were issued for {old}: once the host is named {new}, regenerate them with \
             `pvecm updatecerts --force`, then `systemctl restart pveproxy`",
            certs.join(" and ")
        ));
    }
    if has("pveproxy-ssl.pem") {
        notes.push(format!(
            "the custom certificate /etc/pve/nodes/{new}/pveproxy-ssl.pem was issued for {old}: replace it \
             (e.g. `pvenode acme cert order`), then `systemctl restart pveproxy`"
        ));
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}

/// A guest config (`etc/pve/nodes/NODE/qemu-server/ID.conf` or `.../lxc/ID.conf`): its node and VMID.
pub fn guest(path: &[u8]) -> Option<(&[u8], u32)> {
    let rest = path.strip_prefix(b"etc/pve/nodes/")?;
    let mut parts = rest.split(|&b| b == b'/');
    let (node, kind, file) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || !matches!(kind, b"qemu-server" | b"lxc") {
        return None;
    }
    let id = file.strip_suffix(b".conf")?;
    if id.is_empty() || !id.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some((node, std::str::from_utf8(id).ok()?.parse().ok()?))
}

/// The guest configs in `paths` on any node but `skip`: (VMID, path, where).
fn staying<'a>(
    from: &'static str,
    paths: &'a [Vec<u8>],
    skip: &'a [u8],
) -> impl Iterator<Item = (u32, &'a Vec<u8>, &'static str)> + 'a {
    paths
        .iter()
        .filter_map(move |p| guest(p).filter(|g| g.0 != skip).map(|g| (g.1, p, from)))
}

/// VMIDs of the renamed node that another node dir that stays also has: one blocker per clash, on the moved
/// config, naming the VMID and both configs. `archive` and `target` are normalized paths (the target's may be
/// empty).
pub fn collisions(archive: &[Vec<u8>], target: &[Vec<u8>], map: &NodeMap) -> Vec<Blocker> {
    let (old, new) = (map.old.as_bytes(), map.new.as_bytes());
    let moved = archive
        .iter()
        .filter_map(|p| guest(p).filter(|g| g.0 == old).map(|g| (g.1, p)));
    // The archive's other nodes are restored as they are; the target's node dirs other than the new one stay
    // (those the archive has too are the archive's once restored, but for the old node's: the archive's go
    // to the new node, so what the target has under the old one stays there).
    let replaced = |p: &Vec<u8>| archive.contains(p) && guest(p).is_some_and(|g| g.0 != old);
    let others: Vec<_> = staying("in the archive", archive, old)
        .chain(staying("on the target", target, new).filter(|o| !replaced(o.1)))
        .collect();
    let show = crate::restore::path::show;
    let mut out: Vec<Blocker> = moved
        .flat_map(|(id, p)| {
            others.iter().filter(move |o| o.0 == id).map(move |(_, q, from)| Blocker {
                archive_path: p.clone(),
                why: format!(
                    "VMID {id}: /{} (restored as /{}) and /{} ({from}): a VMID must be on one node only; \
                     rename or leave out one of them",
                    show(p),
                    show(&map.path(p)),
                    show(q)
                ),
            })
        })
        .collect();
    out.sort_by(|a, b| a.why.cmp(&b.why));
    out
}

/// The guest configs under the target's `/etc/pve/nodes/*` (normalized paths, read below the target without
/// following a symlink), and what could not be listed.
pub fn target_guests(root: &Path) -> (Vec<Vec<u8>>, Vec<String>) {
    let mut out = Vec::new();
    let mut unread = Vec::new();
    let Ok(target) = Target::open(root) else {
        return (out, unread);
    };
    let mut walker = target.walker();
    let mut list = |dir: &[u8], unread: &mut Vec<String>| -> Vec<Vec<u8>> {
        let names = walker
            .open_dir(dir, false)
            .map_err(|e| e.to_string())
            .and_then(|d| {
                let items = rustix::fs::Dir::read_from(&d.fd).map_err(|e| e.to_string())?;
                let names = items
                    .filter_map(Result::ok)
                    .map(|i| i.file_name().to_bytes().to_vec());
                Ok(names.filter(|n| n != b"." && n != b"..").collect())
            });
        names.unwrap_or_else(|e| {
            if !e.ends_with("does not exist") {
                unread.push(e);
            }
            Vec::new()
        })
    };
    for node in list(b"etc/pve/nodes", &mut unread) {
        for kind in [&b"qemu-server"[..], b"lxc"] {
            let dir = [b"etc/pve/nodes/", &node[..], b"/", kind].concat();
            let files = list(&dir, &mut unread);
            out.extend(files.into_iter().map(|f| [&dir[..], b"/", &f].concat()));
        }
    }
    (out, unread)
}

const COROSYNC: [&[u8]; 2] = [b"etc/pve/corosync.conf", b"etc/corosync/corosync.conf"];

/// The node rename, as one entry of [`crate::restore::rewrite::REWRITERS`].
pub const REWRITER: Rewriter = Rewriter {
    name: "node rename",
    wants: |p| COROSYNC.contains(&p) || p == b"etc/hosts" || p == b"etc/hostname",
    run,
};

fn run(ctx: &Context) -> Result<Outcome, String> {
    let Some(map) = ctx.map_node else {
        return Ok(Outcome::default());
    };
    check_host_name(&map.new)?;
    let (old, new) = (&map.old, &map.new);
    let mut out = Outcome::default();
    let mut files: Vec<(&Vec<u8>, &Vec<u8>)> = ctx.archive.iter().collect();
    files.sort();
    for (path, bytes) in files {
        let shown = crate::restore::path::show(path);
        let (content, why) = match path.as_slice() {
            p if COROSYNC.contains(&p) => match corosync(bytes, map) {
                Ok(c) => {
                    let why = format!(
                        "node {old} is {new} in the nodelist ({}), config_version {} → {}",
                        c.keys.join(", "),
                        c.version.0,
                        c.version.1
                    );
                    (c.content, why)
                }
                Err(e) => {
                    out.file_notes.push(FileNote::new(&[path], format!(
                        "/{shown} is restored as it is: {e}; node {old} is not renamed {new} there: edit it by \
                         hand (the node's name:, its ringN_addr host names, and config_version + 1)"
                    )));
                    continue;
                }
            },
            b"etc/hosts" => match hosts(bytes, map) {
                Some(c) => (c, format!("host name {old} → {new}")),
                None => continue,
            },
            _ => match hostname(bytes, map) {
                Some(c) => (c, format!("{old} → {new}")),
                None => continue,
            },
        };
        out.files.push(Rewritten {
            archive_path: path.clone(),
            content,
            why,
        });
    }
    // Not read (over the size limit, or not a regular file): restored as they are, never silently.
    let unread = ctx
        .paths
        .iter()
        .filter(|p| (REWRITER.wants)(p) && !ctx.archive.contains_key(*p));
    out.file_notes.extend(unread.map(|p| {
        let text = format!(
            "/{} is restored as it is: it is over 256 KiB (or not a regular file), so it was not read and node \
             {old} is not renamed {new} there: edit it by hand",
            crate::restore::path::show(p)
        );
        FileNote::new(&[p], text)
    }));
    out.notes.extend(certificate_note(ctx.paths, map));
    let (target, unread) = target_guests(ctx.root);
    out.notes.extend(
        unread
            .into_iter()
            .map(|u| format!("VMIDs on the target not checked for clashes with {new}'s: {u}")),
    );
    out.blockers = collisions(ctx.paths, &target, map);
    Ok(out)
}

#[cfg(test)]
mod tests;
