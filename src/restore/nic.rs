//! NIC remap for a restore onto other hardware (issue 14): match the archive's NICs (its
//! `proxkeep/commands/network/nics.json`) to the target's (`/sys/class/net` under the target), then rename
//! them in the ifupdown files and move the `.link` pins to the target's MACs.
//!
//! Matching, per archive physical NIC, first hit wins: `--nic OLD=NEW`, the permanent MAC, the PCI path
//! (udev's `ID_PATH`, else the sysfs device path), then driver and order (the n-th still unmatched NIC of
//! driver D in PCI order takes the n-th still unmatched target NIC of D). A matching is one-to-one.
//!
//! Everything here is pure (inventories and bytes in, bytes and text out); the restore hook reads the
//! target's `/sys` and hands the bytes over.

#[cfg(test)]
mod tests;
mod text;

use crate::host::Nic;
use crate::restore::rewrite::{Blocker, Context, FileNote, Outcome, Rewriter, Rewritten};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt;

pub use text::{Pin, pins, rename_words, repin_link, too_long, uses};

/// Where backup stores the NIC inventory (archive path).
pub const INVENTORY: &[u8] = b"proxkeep/commands/network/nics.json";

/// What matching needs to know of one interface (an entry of `nics.json`, or a [`Nic`] of the target).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Card {
    pub name: String,
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub permanent_mac: Option<String>,
    #[serde(default)]
    pub device_path: Option<String>,
    #[serde(default)]
    pub id_path: Option<String>,
    #[serde(default)]
    pub driver: Option<String>,
}

impl From<&Nic> for Card {
    fn from(n: &Nic) -> Card {
        Card {
            name: n.name.clone(),
            kind: n.kind.to_string(),
            mac: n.mac.clone(),
            permanent_mac: n.permanent_mac.clone(),
            device_path: n.device_path.clone(),
            id_path: n.id_path.clone(),
            driver: n.driver.clone(),
        }
    }
}

impl Card {
    fn physical(&self) -> bool {
        self.kind == "physical"
    }

    /// The address that identifies the hardware: the permanent one, else the current one.
    pub fn hw_mac(&self) -> Option<&str> {
        self.permanent_mac.as_deref().or(self.mac.as_deref())
    }

    /// Position on the bus: PCI order (`ID_PATH` sorts by domain:bus:slot.function), then the name.
    fn order_key(&self) -> (Option<&str>, Option<&str>, &str) {
        (
            self.id_path.as_deref(),
            self.device_path.as_deref(),
            &self.name,
        )
    }

    fn same_mac(&self, other: &Card) -> bool {
        match (&self.permanent_mac, &other.permanent_mac) {
            (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }

    fn same_slot(&self, other: &Card) -> bool {
        let eq = |a: &Option<String>, b: &Option<String>| a.is_some() && a == b;
        eq(&self.id_path, &other.id_path) || eq(&self.device_path, &other.device_path)
    }

    /// `igb, 3c:ec:ef:00:00:03, pci-0000:02:00.2`: what the admin needs to recognise it.
    fn described(&self) -> String {
        let parts = [
            self.driver.as_deref(),
            self.hw_mac(),
            self.id_path.as_deref().or(self.device_path.as_deref()),
        ];
        parts.into_iter().flatten().collect::<Vec<_>>().join(", ")
    }
}

/// Parse the archive's `nics.json`.
pub fn parse_inventory(json: &[u8]) -> Result<Vec<Card>, String> {
    serde_json::from_slice(json)
        .map_err(|e| format!("the archive's /{}: {e}", String::from_utf8_lossy(INVENTORY)))
}

/// Why two NICs were paired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `--nic OLD=NEW`.
    Given,
    PermanentMac,
    PciPath,
    DriverOrder,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Reason::Given => "--nic",
            Reason::PermanentMac => "permanent MAC",
            Reason::PciPath => "PCI path",
            Reason::DriverOrder => "driver and order",
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    pub old: String,
    pub new: String,
    pub reason: Reason,
}

/// Every archive physical NIC is in exactly one of `pairs` (by `old`) and `unmatched`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Matching {
    /// By old name.
    pub pairs: Vec<Pair>,
    /// Archive NICs with no partner on the target, by name.
    pub unmatched: Vec<String>,
}

/// `--nic OLD=NEW` (one pair): both interface names.
pub fn parse_pair(spec: &str) -> Result<(String, String), String> {
    let bad = |n: &str| {
        n.is_empty()
            || n.len() > 15
            || n == "."
            || n == ".."
            || n.bytes()
                .any(|b| b <= b' ' || b == b'/' || b == b':' || b == b'=' || b >= 0x7f)
    };
    match spec.split_once('=') {
        Some((old, new)) if !bad(old) && !bad(new) => Ok((old.into(), new.into())),
        _ => Err(format!(
            "--nic {spec:?}: expected OLD=NEW (interface names, at most 15 characters)"
        )),
    }
}

/// Pair the archive's physical NICs with the target's. `given` are `--nic` pairs, checked against both
/// inventories where they are known (an empty inventory checks nothing: the admin's word stands).
pub fn match_cards(
    old: &[Card],
    new: &[Card],
    given: &[(String, String)],
) -> Result<Matching, String> {
    check_given(old, new, given)?;
    let given_old = |c: &&Card| !given.iter().any(|(o, _)| *o == c.name);
    let given_new = |c: &&Card| !given.iter().any(|(_, n)| *n == c.name);
    let mut olds: Vec<&Card> = old
        .iter()
        .filter(|c| c.physical())
        .filter(given_old)
        .collect();
    let mut news: Vec<&Card> = new
        .iter()
        .filter(|c| c.physical())
        .filter(given_new)
        .collect();
    olds.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    news.sort_by(|a, b| a.order_key().cmp(&b.order_key()));
    let mut to: Vec<Option<(usize, Reason)>> = vec![None; olds.len()];
    let mut taken = vec![false; news.len()];
    type Same = fn(&Card, &Card) -> bool;
    let stages: [(Reason, Same); 2] = [
        (Reason::PermanentMac, Card::same_mac),
        (Reason::PciPath, Card::same_slot),
    ];
    for (reason, same) in stages {
        for (i, o) in olds.iter().enumerate() {
            if to[i].is_some() {
                continue;
            }
            if let Some(j) = (0..news.len()).find(|&j| !taken[j] && same(o, news[j])) {
                taken[j] = true;
                to[i] = Some((j, reason));
            }
        }
    }
    // Driver and order: what is left of each driver, zipped in PCI order.
    let mut left: BTreeMap<&str, (Vec<usize>, Vec<usize>)> = BTreeMap::new();
    for (i, o) in olds.iter().enumerate() {
        if let (None, Some(d)) = (to[i], o.driver.as_deref()) {
            left.entry(d).or_default().0.push(i);
        }
    }
    for (j, n) in news.iter().enumerate() {
        if let (false, Some(e)) = (taken[j], n.driver.as_deref().and_then(|d| left.get_mut(d))) {
            e.1.push(j);
        }
    }
    for (is, js) in left.values() {
        for (&i, &j) in is.iter().zip(js) {
            to[i] = Some((j, Reason::DriverOrder));
        }
    }
    let mut m = Matching::default();
    for (pair, c) in given.iter().map(|p| (p, Reason::Given)) {
        m.pairs.push(Pair {
            old: pair.0.clone(),
            new: pair.1.clone(),
            reason: c,
        });
    }
    for (i, o) in olds.iter().enumerate() {
        match to[i] {
            Some((j, reason)) => m.pairs.push(Pair {
                old: o.name.clone(),
                new: news[j].name.clone(),
                reason,
            }),
            None => m.unmatched.push(o.name.clone()),
        }
    }
    m.pairs.sort_by(|a, b| a.old.cmp(&b.old));
    m.unmatched.sort();
    Ok(m)
}

/// `--nic` pairs: no name twice on either side; OLD a physical NIC of the archive and NEW a NIC of the
/// target, where those are known.
fn check_given(old: &[Card], new: &[Card], given: &[(String, String)]) -> Result<(), String> {
    fn names(cards: &[Card], physical: bool) -> Vec<&str> {
        let cards = cards.iter().filter(|c| !physical || c.physical());
        cards.map(|c| c.name.as_str()).collect()
    }
    let (olds, news) = (names(old, true), names(new, false));
    for (i, (o, n)) in given.iter().enumerate() {
        let earlier = &given[..i];
        if earlier.iter().any(|(eo, _)| eo == o) {
            return Err(format!("--nic {o}=…: {o} is given twice"));
        }
        if earlier.iter().any(|(_, en)| en == n) {
            return Err(format!("--nic …={n}: {n} is given twice"));
        }
        if !old.is_empty() && !olds.contains(&o.as_str()) {
            let have = olds.join(", ");
            return Err(format!(
                "--nic {o}={n}: the archive has no physical NIC {o} (it has: {have})"
            ));
        }
        if !new.is_empty() && !news.contains(&n.as_str()) {
            let have = news.join(", ");
            return Err(format!(
                "--nic {o}={n}: the target has no NIC {n} (it has: {have})"
            ));
        }
    }
    Ok(())
}

/// What the remap gets: the inventories, `--nic`, and the archive's network files.
#[derive(Debug)]
pub struct Input<'a> {
    /// `Err`: why the archive's inventory cannot be used (absent, too large, unreadable).
    pub archive: Result<Vec<Card>, String>,
    /// `None`: the target has no `/sys/class/net` (not a running host).
    pub target: Option<Vec<Card>>,
    pub given: &'a [(String, String)],
    /// ifupdown files (`etc/network/interfaces`, `interfaces.d/*`), by archive path, with their bytes.
    pub interfaces: Vec<(&'a [u8], &'a [u8])>,
    /// `.link` files, by archive path, with their bytes.
    pub links: Vec<(&'a [u8], &'a [u8])>,
}

/// Match, then rewrite: the rewritten files, a note per changed NIC, a blocker per file that uses a NIC
/// without a match. `Err` is a usage error (`--nic` naming what does not exist).
pub fn remap(input: &Input) -> Result<Outcome, String> {
    let mut out = Outcome::default();
    if input.interfaces.is_empty() && input.links.is_empty() {
        if let Some((o, n)) = input.given.first() {
            return Err(format!(
                "--nic {o}={n}: the archive has no network files to rename NICs in"
            ));
        }
        return Ok(out);
    }
    let m = match (&input.archive, &input.target) {
        (Ok(old), Some(new)) => {
            let m = match_cards(old, new, input.given)?;
            rewrite(&m, old, new, input, &mut out);
            return Ok(out);
        }
        // Only the admin's word: applied as given.
        _ if !input.given.is_empty() => match_cards(&[], &[], input.given)?,
        (Ok(_), None) => {
            let why = "NIC names not checked: the target has no /sys/class/net (not a running host); \
                       the network files are written with the archive's names";
            note(input, &mut out, why.into());
            return Ok(out);
        }
        // A host: say why its NICs were not compared. A directory without /sys: nothing to say.
        (Err(why), target) => {
            if target.is_some() {
                note(input, &mut out, format!("NIC names not checked: {why}"));
            }
            return Ok(out);
        }
    };
    rewrite(&m, &[], &[], input, &mut out);
    Ok(out)
}

/// A note about the NIC names: shown only when the run selects a network file.
fn note(input: &Input, out: &mut Outcome, text: String) {
    let files: Vec<&[u8]> = input
        .interfaces
        .iter()
        .chain(&input.links)
        .map(|(p, _)| *p)
        .collect();
    out.file_notes.push(FileNote::new(&files, text));
}

fn host_path(archive_path: &[u8]) -> String {
    format!("/{}", crate::restore::path::show(archive_path))
}

fn rewrite(m: &Matching, old: &[Card], new: &[Card], input: &Input, out: &mut Outcome) {
    let card = |cards: &'_ [Card], name: &str| cards.iter().find(|c| c.name == name).cloned();
    let pins = pins(&input.links);
    // Old hardware MAC → the target NIC's, for the pins.
    let mut macs: HashMap<String, String> = HashMap::new();
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    let mut final_names: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in &m.pairs {
        let (o, n) = (card(old, &p.old), card(new, &p.new));
        let old_mac = o.as_ref().and_then(Card::hw_mac);
        let moved = match (old_mac, n.as_ref().and_then(Card::hw_mac)) {
            (Some(a), Some(b)) if !a.eq_ignore_ascii_case(b) => {
                macs.insert(a.to_ascii_lowercase(), b.to_string());
                true
            }
            _ => false,
        };
        let pin = pins
            .iter()
            .find(|pin| pin.name == p.old && old_mac.is_some_and(|m| pin.matches(m)));
        let stays = pin.map_or(p.new.as_str(), |_| p.old.as_str());
        final_names.entry(stays).or_default().push(&p.old);
        if stays != p.old {
            names.insert(&p.old, &p.new);
        }
        if p.old == p.new && !moved {
            continue;
        }
        let mut note = format!("NIC {} → {} (matched by {})", p.old, p.new, p.reason);
        if let Some(pin) = pin {
            note.push_str(&format!(
                "; pinned as {} by {}: the name stays, the pin moves to the new NIC (takes effect at the next boot)",
                p.old,
                host_path(&pin.file)
            ));
        }
        self::note(input, out, note);
    }
    let renamed: HashMap<&str, &str> = names.iter().map(|(o, n)| (*o, *n)).collect();
    for (path, bytes) in &input.interfaces {
        if let Some(content) = rename_words(bytes, &renamed) {
            let used: Vec<(&&str, &&str)> = names.iter().filter(|(o, _)| uses(bytes, o)).collect();
            let list: Vec<String> = used.iter().map(|(o, n)| format!("{o} → {n}")).collect();
            let new_names: Vec<&str> = used.iter().map(|(_, n)| **n).collect();
            for long in too_long(&content, &new_names) {
                note(
                    input,
                    out,
                    format!(
                        "{} names {long} after the remap: longer than the 15 characters Linux allows for an \
                     interface name; use a `vlanN` interface with `vlan-raw-device` instead",
                        host_path(path)
                    ),
                );
            }
            out.files.push(Rewritten {
                archive_path: path.to_vec(),
                content,
                why: format!("NICs renamed for this host: {}", list.join(", ")),
            });
        }
        for (name, olds) in final_names.iter().filter(|(_, o)| o.len() > 1) {
            out.blockers.push(Blocker {
                archive_path: path.to_vec(),
                why: format!(
                    "NICs {} would all be named {name} after the remap: give --nic for them",
                    olds.join(", ")
                ),
            });
        }
    }
    for (path, bytes) in &input.links {
        if let Some(content) = repin_link(bytes, &macs) {
            out.files.push(Rewritten {
                archive_path: path.to_vec(),
                content,
                why: "the pinned MAC is now the matching NIC's of this host".into(),
            });
        }
    }
    unmatched(m, old, new, input, &pins, out);
}

/// Unmatched archive NICs: a blocker per network file that uses one (kept by the restore only when it
/// writes that file), else a note.
fn unmatched(
    m: &Matching,
    old: &[Card],
    new: &[Card],
    input: &Input,
    pins: &[Pin],
    out: &mut Outcome,
) {
    let paired: Vec<&str> = m.pairs.iter().map(|p| p.new.as_str()).collect();
    let free: Vec<&str> = new
        .iter()
        .filter(|c| c.physical() && !paired.contains(&c.name.as_str()))
        .map(|c| c.name.as_str())
        .collect();
    let free = if free.is_empty() {
        "none".to_string()
    } else {
        free.join(", ")
    };
    for name in &m.unmatched {
        let c = old
            .iter()
            .find(|c| &c.name == name)
            .cloned()
            .unwrap_or_default();
        let mut users: Vec<&[u8]> = input
            .interfaces
            .iter()
            .filter(|(_, b)| uses(b, name))
            .map(|(p, _)| *p)
            .collect();
        let pinned = pins
            .iter()
            .filter(|pin| pin.name == *name || c.hw_mac().is_some_and(|m| pin.matches(m)));
        users.extend(pinned.map(|pin| pin.file.as_slice()));
        users.dedup();
        let what = format!("NIC {name} ({}) has no match on this host", c.described());
        if users.is_empty() {
            note(input, out, format!("{what}; no network file uses it"));
        }
        for path in users {
            out.blockers.push(Blocker {
                archive_path: path.to_vec(),
                why: format!(
                    "{what} and {} uses it: give --nic {name}=NEW (unmatched NICs of this host: {free})",
                    host_path(path)
                ),
            });
        }
    }
}

/// ifupdown files: `/etc/network/interfaces` (and PVE's pending `interfaces.new`) and `interfaces.d/*`.
fn is_interfaces(p: &[u8]) -> bool {
    let in_d = p
        .strip_prefix(b"etc/network/interfaces.d/")
        .is_some_and(|n| !n.is_empty() && !n.contains(&b'/'));
    in_d || p == b"etc/network/interfaces" || p == b"etc/network/interfaces.new"
}

fn is_link(p: &[u8]) -> bool {
    let dirs: [&[u8]; 2] = [b"etc/systemd/network/", b"usr/local/lib/systemd/network/"];
    dirs.iter().any(|d| {
        p.strip_prefix(*d)
            .is_some_and(|n| !n.contains(&b'/') && n.ends_with(b".link"))
    })
}

/// The NIC remap as an entry of [`crate::restore::rewrite::REWRITERS`].
pub const REWRITER: Rewriter = Rewriter {
    name: "nic",
    wants: |p| p == INVENTORY || is_interfaces(p) || is_link(p),
    run,
};

/// The hook's side: the target's `/sys/class/net` read here, everything else from the context.
fn run(ctx: &Context) -> Result<Outcome, String> {
    let mut files: Vec<(&[u8], &[u8])> = ctx
        .archive
        .iter()
        .map(|(p, b)| (p.as_slice(), b.as_slice()))
        .collect();
    files.sort();
    let pick = |f: fn(&[u8]) -> bool| files.iter().copied().filter(|(p, _)| f(p)).collect();
    let archive = match ctx.archive.get(INVENTORY) {
        Some(json) => parse_inventory(json),
        None if ctx.paths.iter().any(|p| p == INVENTORY) => Err(format!(
            "the archive's NIC inventory ({}) is larger than {}",
            host_path(INVENTORY),
            crate::units::format_size(crate::restore::plan::DIFF_MAX)
        )),
        None => Err(format!(
            "the archive has no NIC inventory ({})",
            host_path(INVENTORY)
        )),
    };
    let root = crate::host::Root::new(ctx.root);
    let target = root
        .path("/sys/class/net")
        .is_dir()
        .then(|| crate::host::nics(&root).iter().map(Card::from).collect());
    let input = Input {
        archive,
        target,
        given: ctx.nic,
        interfaces: pick(is_interfaces),
        links: pick(is_link),
    };
    remap(&input)
}
