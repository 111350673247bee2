//! `/etc/passwd`, `/etc/group`, `/etc/shadow` and `/etc/gshadow` onto a new install.
//!
//! Every line of the target's files stays as it is (its system accounts and root above all: the packages
//! installed there own those UIDs), and the archive's regular users and groups (`UID_MIN`..`UID_MAX`,
//! `GID_MIN`..`GID_MAX` of the target's `/etc/login.defs`, 1000..60000 without it) are added with their own
//! UIDs/GIDs. An account whose name the target has under another ID, or whose ID the target gives another
//! name, is a conflict: left out and named, never renumbered (files on carried disks are owned by the IDs).
//! The shadow and gshadow lines of what is added follow it; the member lists of groups both sides have are
//! merged (members the merged passwd knows, conflicts excepted). The archive's system accounts are not
//! carried: the packages that need them create them when installed. Pure: text in, text out.

use std::collections::{HashMap, HashSet};

/// Regular ID ranges (login.defs(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub uid: (u32, u32),
    pub gid: (u32, u32),
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            uid: (1000, 60000),
            gid: (1000, 60000),
        }
    }
}

impl Limits {
    /// The ranges of a login.defs text; keys it does not set keep their default.
    pub fn from_login_defs(text: &str) -> Limits {
        let mut l = Limits::default();
        for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
            let mut words = line.split_whitespace();
            let (Some(key), Some(Ok(v))) = (words.next(), words.next().map(str::parse::<u32>))
            else {
                continue;
            };
            match key {
                "UID_MIN" => l.uid.0 = v,
                "UID_MAX" => l.uid.1 = v,
                "GID_MIN" => l.gid.0 = v,
                "GID_MAX" => l.gid.1 = v,
                _ => {}
            }
        }
        l
    }
}

/// The four files of one side (`""` for one it does not have).
#[derive(Debug, Clone, Copy, Default)]
pub struct Files<'a> {
    pub passwd: &'a str,
    pub group: &'a str,
    pub shadow: &'a str,
    pub gshadow: &'a str,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Merged {
    pub passwd: String,
    pub group: String,
    pub shadow: String,
    pub gshadow: String,
    /// Conflicts, users without their primary group, system accounts not carried.
    pub notes: Vec<String>,
    pub users_added: Vec<String>,
    pub groups_added: Vec<String>,
}

/// `name:x:ID:...` of passwd (ID field 2) or group (ID field 2): name, ID, the fields. `None`: not an
/// account line (NIS `+`/`-`, blank, malformed).
fn entry(line: &str, fields: usize) -> Option<(&str, u32, Vec<&str>)> {
    let f: Vec<&str> = line.split(':').collect();
    let ok = f.len() == fields && !f[0].is_empty() && !f[0].starts_with(['+', '-']);
    let id = f.get(2)?.parse().ok()?;
    ok.then(|| (f[0], id, f))
}

fn name_of(line: &str) -> &str {
    line.split(':').next().unwrap_or("")
}

/// Lines by account name; the first line of a name wins, as in getpwnam(3).
fn by_name(text: &str) -> HashMap<&str, &str> {
    let mut out = HashMap::new();
    for line in text.lines() {
        out.entry(name_of(line)).or_insert(line);
    }
    out
}

fn push_line(out: &mut String, line: &str) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(line);
    out.push('\n');
}

/// One side's accounts: name → ID, ID → name.
#[derive(Default)]
struct Ids {
    by_name: HashMap<String, u32>,
    by_id: HashMap<u32, String>,
}

impl Ids {
    fn of(text: &str, fields: usize) -> Ids {
        let mut ids = Ids::default();
        for (name, id, _) in text.lines().filter_map(|l| entry(l, fields)) {
            ids.add(name, id);
        }
        ids
    }
    fn add(&mut self, name: &str, id: u32) {
        self.by_name.entry(name.to_string()).or_insert(id);
        self.by_id.entry(id).or_insert_with(|| name.to_string());
    }
}

/// What to do with one of the archive's accounts.
enum Verdict {
    Add,
    AlreadyThere,
    System,
    Conflict(String),
}

fn verdict(ids: &Ids, name: &str, id: u32, range: (u32, u32), what: &str) -> Verdict {
    let id_name = if what == "user" { "UID" } else { "GID" };
    match (ids.by_name.get(name), ids.by_id.get(&id)) {
        (Some(&here), _) if here == id => Verdict::AlreadyThere,
        _ if id < range.0 || id > range.1 => Verdict::System,
        (Some(here), _) => Verdict::Conflict(format!(
            "accounts: {what} {name} ({id_name} {id} in the archive) left out: this host has {name} as {id_name} {here}"
        )),
        (None, Some(other)) => Verdict::Conflict(format!(
            "accounts: {what} {name} ({id_name} {id}) left out: {id_name} {id} is {other} on this host"
        )),
        (None, None) => Verdict::Add,
    }
}

/// A member list (`a,b`) with `extra` members added that it lacks.
fn members(list: &str, extra: &[&str]) -> String {
    let mut out: Vec<&str> = list.split(',').filter(|m| !m.is_empty()).collect();
    for m in extra {
        if !out.contains(m) {
            out.push(m);
        }
    }
    out.join(",")
}

/// The member fields (`indices`) of a group or gshadow line, `None` when it has not 4 fields.
fn lists_of<'a>(line: &'a str, indices: &[usize]) -> Option<Vec<Vec<&'a str>>> {
    let f: Vec<&str> = line.split(':').collect();
    let list = |i: usize| f[i].split(',').filter(|m| !m.is_empty()).collect();
    (f.len() == 4).then(|| indices.iter().map(|&i| list(i)).collect())
}

/// Group-like lines (group: members in field 3; gshadow: admins 2, members 3): the target's with the
/// members of the archive's same-named line merged in, then `added` lines; only `allowed` members are taken
/// from the archive.
fn merge_members(
    target: &str,
    archive: &str,
    indices: &[usize],
    added: &[&str],
    allowed: &dyn Fn(&str) -> bool,
) -> String {
    let from_archive = by_name(archive);
    let mut out = String::new();
    let rewrite = |line: &str, from: &str, base: bool| -> Option<String> {
        let mut f: Vec<String> = line.split(':').map(String::from).collect();
        let lists = lists_of(from, indices).filter(|_| f.len() == 4)?;
        for (&i, list) in indices.iter().zip(lists) {
            let extra: Vec<&str> = list.into_iter().filter(|m| allowed(m)).collect();
            f[i] = if base {
                members(&f[i], &extra)
            } else {
                extra.join(",")
            };
        }
        Some(f.join(":"))
    };
    for line in target.lines() {
        let merged = from_archive
            .get(name_of(line))
            .and_then(|a| rewrite(line, a, true));
        push_line(&mut out, merged.as_deref().unwrap_or(line));
    }
    for line in added {
        push_line(
            &mut out,
            &rewrite(line, line, false).unwrap_or_else(|| line.to_string()),
        );
    }
    out
}

/// The target's lines, then `extra`.
fn append_lines(target: &str, extra: &[&str]) -> String {
    let mut out = String::new();
    target
        .lines()
        .chain(extra.iter().copied())
        .for_each(|l| push_line(&mut out, l));
    out
}

/// The first line of each of `names` in `text` (shadow, gshadow).
fn lines_of<'a>(text: &'a str, names: &[String]) -> Vec<&'a str> {
    let by_name = by_name(text);
    names
        .iter()
        .filter_map(|n| by_name.get(n.as_str()).copied())
        .collect()
}

/// What [`carry`] takes from the archive.
#[derive(Default)]
struct Carried<'a> {
    lines: Vec<&'a str>,
    names: Vec<String>,
    /// System accounts the target does not have.
    system: Vec<String>,
    conflicted: HashSet<String>,
}

/// Add the archive's regular accounts of one kind (passwd: `user`, group: `group`) to the target's IDs.
fn carry<'a>(
    archive: &'a str,
    ids: &mut Ids,
    range: (u32, u32),
    what: &str,
    fields: usize,
    m: &mut Merged,
) -> Carried<'a> {
    let mut c = Carried::default();
    let file = if what == "user" { "passwd" } else { "group" };
    for (i, line) in archive.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, id, _)) = entry(line, fields) else {
            // The line itself is not quoted: a passwd line may hold a password hash.
            m.notes.push(format!(
                "accounts: /etc/{file} of the archive, line {}: not understood, left out",
                i + 1
            ));
            continue;
        };
        match verdict(ids, name, id, range, what) {
            Verdict::Add => {
                ids.add(name, id);
                c.lines.push(line);
                c.names.push(name.to_string());
            }
            Verdict::AlreadyThere => {}
            Verdict::System if !ids.by_name.contains_key(name) => c.system.push(name.to_string()),
            Verdict::System => {}
            Verdict::Conflict(why) => {
                m.notes.push(why);
                c.conflicted.insert(name.to_string());
            }
        }
    }
    c
}

/// Merge the archive's accounts into the target's.
pub fn merge(archive: &Files, target: &Files, limits: Limits) -> Merged {
    let mut m = Merged::default();
    let mut users = Ids::of(target.passwd, 7);
    let mut groups = Ids::of(target.group, 4);
    let u = carry(archive.passwd, &mut users, limits.uid, "user", 7, &mut m);
    let g = carry(archive.group, &mut groups, limits.gid, "group", 4, &mut m);
    for (name, line) in u.names.iter().zip(&u.lines) {
        let gid = line.split(':').nth(3).unwrap_or("?");
        if !gid.parse().is_ok_and(|g| groups.by_id.contains_key(&g)) {
            m.notes.push(format!(
                "accounts: user {name}: its primary group (GID {gid}) is not on this host"
            ));
        }
    }
    if !(u.system.is_empty() && g.system.is_empty()) {
        let list = |v: &[String]| {
            if v.is_empty() {
                "none".into()
            } else {
                v.join(", ")
            }
        };
        m.notes.push(format!(
            "accounts: system accounts of the archive not carried (their packages create them when installed): users {}; groups {}",
            list(&u.system),
            list(&g.system)
        ));
    }
    let allowed = |n: &str| users.by_name.contains_key(n) && !u.conflicted.contains(n);
    m.passwd = append_lines(target.passwd, &u.lines);
    m.shadow = append_lines(target.shadow, &lines_of(archive.shadow, &u.names));
    m.group = merge_members(target.group, archive.group, &[3], &g.lines, &allowed);
    let gshadow = lines_of(archive.gshadow, &g.names);
    m.gshadow = merge_members(target.gshadow, archive.gshadow, &[2, 3], &gshadow, &allowed);
    m.users_added = u.names;
    m.groups_added = g.names;
    m
}

/// Whether a shadow password field holds a hash (not empty, `*`, `!`, `!!`, `x`: locked or no password).
fn is_hash(field: &str) -> bool {
    !field
        .trim_start_matches('!')
        .chars()
        .all(|c| c == '*' || c == 'x')
}

/// shadow(5)/gshadow(5) text with every password hash replaced by `<hash>` (a leading `!`, the lock, kept),
/// for diffs shown to people.
pub fn mask_hashes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let mut f: Vec<&str> = line.split(':').collect();
        let masked;
        if let Some(pw) = f.get(1).copied().filter(|pw| is_hash(pw)) {
            masked = format!(
                "{}<hash>",
                &pw[..pw.len() - pw.trim_start_matches('!').len()]
            );
            f[1] = &masked;
        }
        out.push_str(&f.join(":"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const TARGET: Files = Files {
        passwd: "root:x:0:0:root:/root:/bin/bash\n\
                 daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
                 _chrony:x:100:106:Chrony daemon,,,:/var/lib/chrony:/usr/sbin/nologin\n\
                 nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n\
                 carol:x:1000:1000:Carol:/home/carol:/bin/bash\n",
        group: "root:x:0:\nsudo:x:27:carol\nwww-data:x:33:\n_chrony:x:106:\ncarol:x:1000:\nnogroup:x:65534:\n",
        shadow: "root:$y$j9T$root$NEWROOTHASH:20000:0:99999:7:::\n\
                 daemon:*:20000:0:99999:7:::\n\
                 _chrony:!:20000::::::\n\
                 nobody:*:20000:0:99999:7:::\n\
                 carol:$y$j9T$c$CAROLHASH:20000:0:99999:7:::\n",
        gshadow: "root:*::\nsudo:*::carol\nwww-data:*::\n_chrony:!::\ncarol:!::\nnogroup:*::\n",
    };
    const ARCHIVE: Files = Files {
        passwd: "root:x:0:0:root:/root:/bin/bash\n\
                 postfix:x:104:110::/var/spool/postfix:/usr/sbin/nologin\n\
                 alice:x:1000:1000:Alice:/home/alice:/bin/bash\n\
                 bob:x:1001:1001:Bob:/home/bob:/bin/bash\n\
                 carol:x:1002:1002:Carol:/home/carol:/bin/bash\n\
                 backupsvc:x:1003:34:PBS sync:/var/lib/backupsvc:/bin/sh\n",
        group: "root:x:0:\nsudo:x:27:alice,bob,carol\nwww-data:x:33:bob\npostfix:x:110:\nalice:x:1000:\nbob:x:1001:\n\
                carol:x:1002:\nops:x:1500:bob,alice,ghost\n",
        shadow: "root:$y$j9T$old$OLDROOTHASH:19000:0:99999:7:::\n\
                 postfix:*:19000:0:99999:7:::\n\
                 alice:$y$j9T$a$ALICEHASH:19000:0:99999:7:::\n\
                 bob:!$6$salt$BOBHASH:19000:0:99999:7:::\n\
                 carol:$y$j9T$c$OLDCAROLHASH:19000:0:99999:7:::\n\
                 backupsvc:!:19000:0:99999:7:::\n",
        gshadow: "root:*::\nsudo:*:bob:alice,bob,carol\nwww-data:*::bob\npostfix:!::\nalice:!::\nbob:!::\ncarol:!::\n\
                  ops:!:bob:bob,alice,ghost\n",
    };

    #[test]
    fn login_defs_ranges() {
        let l = Limits::from_login_defs(
            "# c\nUID_MIN\t\t\t 2000\nGID_MAX 5000\nUID_MAX x\nSYS_UID_MIN 101\n",
        );
        assert_eq!(
            l,
            Limits {
                uid: (2000, 60000),
                gid: (1000, 5000)
            }
        );
        assert_eq!(Limits::from_login_defs(""), Limits::default());
    }

    #[test]
    fn a_used_host_onto_a_fresh_install() {
        let m = merge(&ARCHIVE, &TARGET, Limits::default());
        // alice's UID 1000 is carol's here; carol is 1000 here, 1002 in the archive: both left out.
        assert_eq!(m.users_added, ["bob", "backupsvc"]);
        assert_eq!(m.groups_added, ["bob", "ops"]);
        assert!(m.passwd.starts_with(TARGET.passwd), "{}", m.passwd);
        assert_eq!(
            m.passwd.strip_prefix(TARGET.passwd).unwrap(),
            "bob:x:1001:1001:Bob:/home/bob:/bin/bash\nbackupsvc:x:1003:34:PBS sync:/var/lib/backupsvc:/bin/sh\n"
        );
        assert_eq!(
            m.shadow.strip_prefix(TARGET.shadow).unwrap(),
            "bob:!$6$salt$BOBHASH:19000:0:99999:7:::\nbackupsvc:!:19000:0:99999:7:::\n"
        );
        // Members merged (only users the merged passwd has, conflicts excepted); added groups follow.
        assert_eq!(
            m.group,
            "root:x:0:\nsudo:x:27:carol,bob\nwww-data:x:33:bob\n_chrony:x:106:\ncarol:x:1000:\nnogroup:x:65534:\n\
             bob:x:1001:\nops:x:1500:bob\n"
        );
        assert_eq!(
            m.gshadow,
            "root:*::\nsudo:*:bob:carol,bob\nwww-data:*::bob\n_chrony:!::\ncarol:!::\nnogroup:*::\nbob:!::\nops:!:bob:bob\n"
        );
        let notes = m.notes.join("\n");
        for expected in [
            "accounts: user alice (UID 1000) left out: UID 1000 is carol on this host",
            "accounts: user carol (UID 1002 in the archive) left out: this host has carol as UID 1000",
            "accounts: group alice (GID 1000) left out: GID 1000 is carol on this host",
            "accounts: group carol (GID 1002 in the archive) left out: this host has carol as GID 1000",
            "accounts: user backupsvc: its primary group (GID 34) is not on this host",
            "users postfix; groups postfix",
        ] {
            assert!(notes.contains(expected), "{expected}\n{notes}");
        }
        assert!(!notes.contains('$'), "no hash in a note: {notes}");
        // A second merge adds nothing more.
        let target = Files {
            passwd: &m.passwd,
            group: &m.group,
            shadow: &m.shadow,
            gshadow: &m.gshadow,
        };
        let again = merge(&ARCHIVE, &target, Limits::default());
        assert_eq!(
            (again.passwd, again.group, again.shadow, again.gshadow),
            (m.passwd, m.group, m.shadow, m.gshadow)
        );
    }

    #[test]
    fn odd_lines() {
        let archive = Files {
            passwd: "+@nis::::::\nbroken line\ndave:x:2000:2000::/home/dave:/bin/sh\n",
            ..Default::default()
        };
        let m = merge(
            &archive,
            &Files {
                passwd: "root:x:0:0::/root:/bin/sh",
                ..Default::default()
            },
            Limits::default(),
        );
        assert_eq!(
            m.passwd,
            "root:x:0:0::/root:/bin/sh\ndave:x:2000:2000::/home/dave:/bin/sh\n"
        );
        // Named by file and line (never quoted: a passwd line may hold a hash).
        let odd: Vec<&String> = m
            .notes
            .iter()
            .filter(|n| n.contains("not understood"))
            .collect();
        assert_eq!(
            odd,
            [
                "accounts: /etc/passwd of the archive, line 1: not understood, left out",
                "accounts: /etc/passwd of the archive, line 2: not understood, left out"
            ]
        );
    }

    #[test]
    fn hashes_are_masked_locks_kept() {
        let masked = mask_hashes(ARCHIVE.shadow);
        assert!(!masked.contains('$'), "{masked}");
        assert!(masked.contains("root:<hash>:19000:"));
        assert!(masked.contains("bob:!<hash>:19000:"));
        assert!(masked.contains("postfix:*:19000:") && masked.contains("backupsvc:!:19000:"));
        assert_eq!(mask_hashes("g:!::a\nh:$6$x$y::\n"), "g:!::a\nh:<hash>::\n");
        assert_eq!(mask_hashes("x::1\n"), "x::1\n");
    }

    fn arb_side() -> impl Strategy<Value = Vec<(u8, u32)>> {
        // Few names and IDs around the limits, so clashes are common.
        let id = prop_oneof![0u32..3, 998u32..1003, Just(65534u32)];
        proptest::collection::vec((0u8..6, id), 0..8)
    }

    fn render(side: &[(u8, u32)], unique: bool) -> (String, String) {
        let (mut passwd, mut group) = (String::new(), String::new());
        let (mut names, mut ids) = (HashSet::new(), HashSet::new());
        for (n, id) in side {
            if unique && !(names.insert(*n) && ids.insert(*id)) {
                continue;
            }
            passwd.push_str(&format!("u{n}:x:{id}:{id}::/home/u{n}:/bin/sh\n"));
            group.push_str(&format!("u{n}:x:{id}:u{}\n", (n + 1) % 6));
        }
        (passwd, group)
    }

    proptest! {
        /// Whatever the archive holds: every target line stays (group lines may gain members), and the merged
        /// passwd and group have no duplicate name or ID.
        #[test]
        fn never_drops_a_target_account_never_duplicates(target in arb_side(), archive in arb_side()) {
            let (tp, tg) = render(&target, true);
            let (ap, ag) = render(&archive, false);
            let t = Files { passwd: &tp, group: &tg, shadow: "", gshadow: "" };
            let a = Files { passwd: &ap, group: &ag, shadow: "", gshadow: "" };
            let m = merge(&a, &t, Limits::default());
            for line in tp.lines() {
                prop_assert!(m.passwd.lines().any(|l| l == line), "{} dropped", line);
            }
            for line in tg.lines() {
                let kept = m.group.lines().any(|l| l.rsplit_once(':').map(|x| x.0) == line.rsplit_once(':').map(|x| x.0));
                prop_assert!(kept, "{} dropped", line);
            }
            for (text, fields) in [(&m.passwd, 7), (&m.group, 4)] {
                let (mut names, mut ids) = (HashSet::new(), HashSet::new());
                for (name, id, _) in text.lines().filter_map(|l| entry(l, fields)) {
                    prop_assert!(names.insert(name), "duplicate name {} in {}", name, text);
                    prop_assert!(ids.insert(id), "duplicate ID {} in {}", id, text);
                }
            }
        }
    }
}
