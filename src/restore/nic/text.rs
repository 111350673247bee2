//! The byte-level rewrites of the NIC remap: interface names in ifupdown files (whole words, comments left
//! alone) and MAC addresses in the `[Match]` section of systemd `.link` files.

use std::collections::HashMap;

/// Bytes an interface name is made of, for whole-word matching: `eno1` is a word of `eno1.100` (a VLAN on
/// it) and of `bridge-ports eno1 eno2`, never of `eno12` or `veth-eno1`.
fn word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

/// Split `s` into alternating runs, each tagged with whether `inside` holds for its bytes.
fn runs(s: &[u8], inside: fn(u8) -> bool) -> impl Iterator<Item = (bool, &[u8])> {
    let mut rest = s;
    std::iter::from_fn(move || {
        let first = *rest.first()?;
        let kind = inside(first);
        let n = rest
            .iter()
            .position(|&b| inside(b) != kind)
            .unwrap_or(rest.len());
        let (run, tail) = rest.split_at(n);
        rest = tail;
        Some((kind, run))
    })
}

/// ifupdown comments are whole lines starting with `#`.
fn is_comment(line: &[u8]) -> bool {
    line.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'#')
}

/// Replace whole-word interface names outside comments, all at once (a swap `eno1 ↔ eno2` works);
/// `None` when nothing changed.
pub fn rename_words(text: &[u8], names: &HashMap<&str, &str>) -> Option<Vec<u8>> {
    if names.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(text.len());
    let mut changed = false;
    for line in text.split_inclusive(|&b| b == b'\n') {
        if is_comment(line) {
            out.extend_from_slice(line);
            continue;
        }
        for (word, run) in runs(line, word_byte) {
            let new = word
                .then(|| std::str::from_utf8(run).ok().and_then(|w| names.get(w)))
                .flatten();
            match new {
                Some(n) => {
                    out.extend_from_slice(n.as_bytes());
                    changed = true;
                }
                None => out.extend_from_slice(run),
            }
        }
    }
    changed.then_some(out)
}

/// Interface names in an ifupdown file (outside comments) that start with one of `names` followed by `.`
/// (VLANs on it) and are longer than the kernel allows (15 bytes), each once.
pub fn too_long(text: &[u8], names: &[&str]) -> Vec<String> {
    let name_byte = |b: u8| word_byte(b) || b == b'.';
    let mut out: Vec<String> = Vec::new();
    let lines = text.split(|&b| b == b'\n').filter(|l| !is_comment(l));
    for (_, run) in lines.flat_map(|l| runs(l, name_byte)).filter(|(w, _)| *w) {
        let word = String::from_utf8_lossy(run);
        let vlan = |n: &&str| word.strip_prefix(*n).is_some_and(|r| r.starts_with('.'));
        if run.len() > 15 && names.iter().any(vlan) && !out.iter().any(|o| *o == word) {
            out.push(word.into_owned());
        }
    }
    out
}

/// Whether an ifupdown file names `name` (a whole word outside comments).
pub fn uses(text: &[u8], name: &str) -> bool {
    rename_words(text, &HashMap::from([(name, "")])).is_some()
}

/// A `.link` file that gives a NIC its name by MAC: `[Match] MACAddress=…` (or `PermanentMACAddress=`) and
/// `[Link] Name=…` (what `pve-network-interface-pinning` writes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    pub file: Vec<u8>,
    pub name: String,
    pub macs: Vec<String>,
}

impl Pin {
    pub fn matches(&self, mac: &str) -> bool {
        self.macs.iter().any(|m| m.eq_ignore_ascii_case(mac))
    }
}

/// `(section, key, value start)` of a `Key=Value` line of a systemd unit-style file; `None` for anything else.
fn entry(line: &[u8], section: &mut Vec<u8>) -> Option<(usize, String)> {
    let t = line.trim_ascii();
    if t.starts_with(b"[") && t.ends_with(b"]") {
        *section = t[1..t.len() - 1].to_vec();
        return None;
    }
    if t.starts_with(b"#") || t.starts_with(b";") {
        return None;
    }
    let eq = line.iter().position(|&b| b == b'=')?;
    let key = String::from_utf8_lossy(line[..eq].trim_ascii()).into_owned();
    Some((eq + 1, key))
}

const MATCH_MAC: [&str; 2] = ["MACAddress", "PermanentMACAddress"];

/// The pins among `.link` files (archive path, bytes).
pub fn pins(links: &[(&[u8], &[u8])]) -> Vec<Pin> {
    let mut out = Vec::new();
    for (path, bytes) in links {
        let (mut section, mut name, mut macs) = (Vec::new(), None, Vec::new());
        for line in bytes.split(|&b| b == b'\n') {
            let Some((at, key)) = entry(line, &mut section) else {
                continue;
            };
            let value = String::from_utf8_lossy(line[at..].trim_ascii()).into_owned();
            if section == b"Match" && MATCH_MAC.contains(&key.as_str()) {
                macs.extend(value.split_whitespace().map(String::from));
            } else if section == b"Link" && key == "Name" {
                name = Some(value);
            }
        }
        if let (Some(name), false) = (name, macs.is_empty()) {
            out.push(Pin {
                file: path.to_vec(),
                name,
                macs,
            });
        }
    }
    out
}

/// Swap MACs in a `.link` file's `[Match]` `MACAddress=`/`PermanentMACAddress=` lines (`macs` keyed by the
/// lower-case old address); `Name=` and `[Link] MACAddress=` (which sets an address) stay. `None`: unchanged.
pub fn repin_link(text: &[u8], macs: &HashMap<String, String>) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len());
    let mut section = Vec::new();
    let mut changed = false;
    for line in text.split_inclusive(|&b| b == b'\n') {
        let at = entry(line, &mut section)
            .filter(|(_, key)| section == b"Match" && MATCH_MAC.contains(&key.as_str()))
            .map(|(at, _)| at);
        let Some(at) = at else {
            out.extend_from_slice(line);
            continue;
        };
        out.extend_from_slice(&line[..at]);
        for (token, run) in runs(&line[at..], |b| !b.is_ascii_whitespace()) {
            let key = String::from_utf8_lossy(run).to_ascii_lowercase();
            match macs.get(&key).filter(|_| token) {
                Some(new) => {
                    out.extend_from_slice(new.as_bytes());
                    changed = true;
                }
                None => out.extend_from_slice(run),
            }
        }
    }
    changed.then_some(out)
}
