//! The merges as restore rewriters: what each needs from the archive, the target and this machine.

use super::{accounts, fstab, sudoers};
use crate::restore::path::show;
use crate::restore::rewrite::{Blocker, Context, FileNote, Outcome, Rewriter, Rewritten};
use crate::runner::{self, CommandSpec, RunOptions, Status};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Names a file of `blkid` output (default or `-o export` form) to use as the target's block devices instead
/// of running `blkid`: for tests, and for a restore into a tree whose disks are not this machine's.
pub const BLKID_FILE_ENV: &str = "PROXKEEP_BLKID_FILE";

const FSTAB: &[u8] = b"etc/fstab";
/// Where a backup keeps `blkid`'s output (catalog: storage-stack).
const BLKID: &[u8] = b"proxkeep/commands/storage-stack/blkid.txt";
const PASSWD: &[u8] = b"etc/passwd";
const GROUP: &[u8] = b"etc/group";
const SHADOW: &[u8] = b"etc/shadow";
const GSHADOW: &[u8] = b"etc/gshadow";

pub const FSTAB_MERGE: Rewriter = Rewriter {
    name: "fstab",
    wants: |p| p == FSTAB || p == BLKID,
    run: run_fstab,
};

pub const ACCOUNTS_MERGE: Rewriter = Rewriter {
    name: "accounts",
    wants: |p| [PASSWD, GROUP, SHADOW, GSHADOW].contains(&p),
    run: run_accounts,
};

pub const SUDOERS_CHECK: Rewriter = Rewriter {
    name: "sudoers",
    wants: sudoers::is_sudoers,
    run: run_sudoers,
};

/// Both sides' text of `p`: `Ok(None)` when the archive or the target has no such file (nothing to merge),
/// `Err` when a side has it but it cannot be merged (over the size limit, unreadable, not a regular file, not UTF-8).
fn pair<'a>(cx: &'a Context, p: &[u8]) -> Result<Option<(&'a str, &'a str)>, String> {
    let shown = format!("/{}", show(p));
    let too_large =
        || format!("{shown} cannot be merged (over 256 KiB, unreadable, or not a regular file)");
    let on_target = crate::host::Root::new(cx.root).path(&shown).is_file();
    let (archive, target) = match (cx.archive.get(p), cx.target.get(p)) {
        (Some(a), Some(t)) => (a, t),
        (None, _) if cx.paths.iter().any(|x| x == p) && on_target => return Err(too_large()),
        (Some(_), None) if on_target => return Err(too_large()),
        _ => return Ok(None),
    };
    let text = |b| {
        std::str::from_utf8(b)
            .map_err(|_| format!("{shown} is not UTF-8 text, so it is not merged"))
    };
    Ok(Some((text(archive)?, text(target)?)))
}

fn blocker(p: &[u8], why: String) -> Blocker {
    Blocker {
        archive_path: p.to_vec(),
        why: format!("{why}: restore it by hand"),
    }
}

/// The target's block devices: [`BLKID_FILE_ENV`], else `blkid` run on this machine (`None`, with why, when
/// that fails).
fn target_devices() -> Result<(Option<Vec<fstab::Device>>, Option<String>), String> {
    if let Some(f) = std::env::var_os(BLKID_FILE_ENV) {
        let text = std::fs::read_to_string(&f).map_err(|e| {
            format!(
                "{BLKID_FILE_ENV}={}: cannot read: {e}",
                std::path::Path::new(&f).display()
            )
        })?;
        return Ok((Some(fstab::parse_blkid(&text)), None));
    }
    let opts = RunOptions {
        timeout: Duration::from_secs(30),
        max_output: 1 << 20,
        ..Default::default()
    };
    let r = runner::run(
        &CommandSpec::new("blkid", &[]),
        &opts,
        &AtomicBool::new(false),
    );
    match r.status {
        Status::Exited(0) => Ok((
            Some(fstab::parse_blkid(&String::from_utf8_lossy(&r.stdout))),
            None,
        )),
        // blkid(8): 2 when it found no device at all.
        Status::Exited(2) => Ok((Some(Vec::new()), None)),
        s => Ok((
            None,
            Some(format!(
                "fstab: cannot list this host's block devices: blkid: {s}"
            )),
        )),
    }
}

/// Whether the restore writes `p`.
fn selected(cx: &Context, p: &[u8]) -> bool {
    cx.selected.iter().any(|x| x == p)
}

fn run_fstab(cx: &Context) -> Result<Outcome, String> {
    let mut out = Outcome::default();
    if !selected(cx, FSTAB) {
        return Ok(out);
    }
    let (archive, target) = match pair(cx, FSTAB) {
        Ok(Some(p)) => p,
        Ok(None) => return Ok(out),
        Err(why) => {
            out.blockers.push(blocker(FSTAB, why));
            return Ok(out);
        }
    };
    let old = cx
        .archive
        .get(BLKID)
        .map(|b| fstab::parse_blkid(&String::from_utf8_lossy(b)));
    let (new, why) = target_devices()?;
    let m = fstab::merge(archive, target, &old.unwrap_or_default(), new.as_deref());
    let fstab = |text| FileNote::new(&[FSTAB], text);
    out.file_notes
        .extend(why.into_iter().chain(m.notes).map(fstab));
    out.files.push(Rewritten {
        archive_path: FSTAB.to_vec(),
        content: m.content.into_bytes(),
        why: format!(
            "merged: this host's own entries kept; {} mount(s) of the archive carried (nofail added), {} left out",
            m.carried, m.left_out
        ),
    });
    Ok(out)
}

/// `names` for a message, at most 8.
fn listed(names: &[String]) -> String {
    match names.len() {
        0 => "none".into(),
        n if n > 8 => format!("{} and {} more", names[..8].join(", "), n - 8),
        _ => names.join(", "),
    }
}

/// One side of a [`pair`] (`""` when there is none).
fn pick<'s>(t: Option<(&'s str, &'s str)>, archive: bool) -> &'s str {
    t.map_or("", |(a, b)| if archive { a } else { b })
}

fn run_accounts(cx: &Context) -> Result<Outcome, String> {
    let mut out = Outcome::default();
    let files = [PASSWD, GROUP, SHADOW, GSHADOW];
    if !files.iter().any(|p| selected(cx, p)) {
        return Ok(out);
    }
    let mut texts: [Option<(&str, &str)>; 4] = [None; 4];
    let mut problem = None;
    for (p, slot) in files.iter().zip(&mut texts) {
        match pair(cx, p) {
            Ok(t) => *slot = t,
            Err(why) => {
                problem.get_or_insert(why);
            }
        }
    }
    if let Some(why) = problem {
        // The four files are consistent only together: none is written until all can be merged.
        for p in files.iter().filter(|p| cx.paths.iter().any(|x| x == *p)) {
            out.blockers.push(blocker(p, why.clone()));
        }
        return Ok(out);
    }
    // Not a host install (no passwd on one side): the archive's files as they are.
    if texts[0].is_none() {
        return Ok(out);
    }
    let side = |archive: bool| accounts::Files {
        passwd: pick(texts[0], archive),
        group: pick(texts[1], archive),
        shadow: pick(texts[2], archive),
        gshadow: pick(texts[3], archive),
    };
    let defs = crate::host::Root::new(cx.root).read_text("/etc/login.defs");
    let limits = defs.map_or_else(Default::default, |d| accounts::Limits::from_login_defs(&d));
    let m = accounts::merge(&side(true), &side(false), limits);
    let (users, groups) = (listed(&m.users_added), listed(&m.groups_added));
    let kept = "merged: this host's accounts kept as they are";
    let merged = [
        (&m.passwd, format!("{kept}; users added: {users}")),
        (
            &m.group,
            format!("{kept}; groups added: {groups}; member lists merged"),
        ),
        (
            &m.shadow,
            format!("{kept}; the added users' entries (hashes not shown)"),
        ),
        (
            &m.gshadow,
            format!("{kept}; the added groups' entries; member lists merged"),
        ),
    ];
    for ((p, t), (content, why)) in files.iter().zip(&texts).zip(merged) {
        if t.is_some() {
            out.files.push(Rewritten {
                archive_path: p.to_vec(),
                content: content.clone().into_bytes(),
                why,
            });
        }
    }
    let note = |text| FileNote::new(&files, text);
    out.file_notes.extend(m.notes.into_iter().map(note));
    Ok(out)
}

fn run_sudoers(cx: &Context) -> Result<Outcome, String> {
    let mut out = Outcome::default();
    let cancel = AtomicBool::new(false);
    let mut files: Vec<&Vec<u8>> = (cx.selected.iter())
        .filter(|p| sudoers::is_sudoers(p))
        .collect();
    files.sort();
    for p in files {
        let shown = format!("/{}", show(p));
        let Some(bytes) = cx.archive.get(p) else {
            let why = format!(
                "{shown} cannot be checked with visudo (over 256 KiB, or not a regular file)"
            );
            out.blockers.push(blocker(p, why));
            continue;
        };
        let sudoers::Verdict::Rejected(why) = sudoers::check(bytes, &shown, &cancel) else {
            continue;
        };
        let (content, what) = match cx.target.get(p) {
            Some(t) => (t.clone(), "this host's version stays"),
            None => (
                sudoers::disabled(bytes, &why),
                "written disabled (every line commented out) for you to fix with visudo",
            ),
        };
        let note = format!("sudoers: {shown} left out: {why}; {what}");
        out.file_notes.push(FileNote::new(&[p], note));
        out.files.push(Rewritten {
            archive_path: p.clone(),
            content,
            why: format!("left out: visudo rejects the archive's version; {what}"),
        });
    }
    Ok(out)
}
