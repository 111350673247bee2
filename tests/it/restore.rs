//! `extract`, `restore`, `pmxcfs extract|restore` end to end, against archives of the fixture roots and
//! hostile archives built here with Python's tarfile and GNU tar. Every target is a temp directory.

use crate::util::*;
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

// ------------------------------------------------------------------------------------------------
// helpers

/// Owners, xattrs and a symlink owner the fixture does not have by itself, so a restore must really set them.
fn decorate(root: &Path) {
    sh_ok(&format!(
        "chown -R 0:33 '{}'",
        root.join("etc/pve").display()
    ));
    sh_ok(&format!(
        "chown 1234:5678 '{}'",
        root.join("etc/vzdump.conf").display()
    ));
    sh_ok(&format!(
        "chown -h 4321:4321 '{}'",
        root.join("etc/pve/local").display()
    ));
    for (p, v) in [("etc/vzdump.conf", "file"), ("etc/corosync", "dir")] {
        sh_ok(&format!(
            "python3 -c \"import os; os.setxattr('{}', 'user.proxkeep', b'{v}')\"",
            root.join(p).display()
        ));
    }
    fix_mtimes(root);
}

fn xattrs_of(p: &Path) -> Vec<(String, Vec<u8>)> {
    let mut names = vec![0u8; 4096];
    let n = rustix::fs::llistxattr(p, &mut names).unwrap_or(0);
    let mut out = Vec::new();
    for name in names[..n].split(|b| *b == 0).filter(|s| !s.is_empty()) {
        let name = String::from_utf8_lossy(name).into_owned();
        let mut v = vec![0u8; 4096];
        if let Ok(len) = rustix::fs::lgetxattr(p, name.as_str(), &mut v) {
            v.truncate(len);
            out.push((name, v));
        }
    }
    out.sort();
    out
}

/// Everything a restore must reproduce, per relative path: kind, mode, owner, mtime, content hash or link
/// target, xattrs. `config.db*` (never restored as a file) and `proxkeep` are left out; `dirs_mtime` masks
/// directory mtimes.
fn full_state(dir: &Path, dirs_mtime: bool) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    fn walk(base: &Path, dir: &Path, dirs_mtime: bool, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if rel.starts_with("var/lib/pve-cluster/config.db") || rel == "proxkeep" {
                continue;
            }
            let md = fs::symlink_metadata(&p).unwrap();
            let ft = md.file_type();
            let what = if ft.is_symlink() {
                format!("link {}", fs::read_link(&p).unwrap().display())
            } else if ft.is_dir() {
                "dir".to_string()
            } else {
                format!("file {}", sha256_file(&p))
            };
            let mode = if ft.is_symlink() {
                0
            } else {
                md.mode() & 0o7777
            };
            let mtime = if ft.is_dir() && !dirs_mtime {
                0
            } else {
                md.mtime()
            };
            out.insert(
                rel,
                format!(
                    "{what} {mode:04o} {}:{} {mtime} {:?}",
                    md.uid(),
                    md.gid(),
                    xattrs_of(&p)
                ),
            );
            if ft.is_dir() {
                walk(base, &p, dirs_mtime, out);
            }
        }
    }
    walk(dir, dir, dirs_mtime, &mut out);
    out
}

/// The fixture root as a restore reproduces it: directories the archive does not store (`etc`, `var`, …)
/// are created by the restore with their own metadata, so only their existence is compared.
fn comparable(
    state: BTreeMap<String, String>,
    index: &serde_json::Value,
) -> BTreeMap<String, String> {
    let stored: BTreeSet<&str> = index["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    state
        .into_iter()
        .map(|(k, v)| {
            if stored.contains(k.as_str()) {
                (k, v)
            } else {
                (k, "dir (not in the archive)".to_string())
            }
        })
        .collect()
}

fn backup(env: &Env) -> PathBuf {
    env.run(&["backup"]).expect(0);
    env.only_archive()
}

/// Restore `archive` into `target` and return the run (extra args appended).
pub fn restore(env: &Env, archive: &Path, target: &Path, extra: &[&str]) -> Run {
    let mut args = vec![
        "restore",
        archive.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    env.run(&args)
}

pub fn new_dir(env: &Env, name: &str) -> PathBuf {
    let p = env.path(name);
    fs::create_dir_all(&p).unwrap();
    p
}

/// Leftover temp files of a restore anywhere under `dir`.
fn temp_files(dir: &Path) -> Vec<String> {
    let out = sh_ok(&format!("find '{}' -name '.proxkeep-*'", dir.display()));
    out.lines().map(String::from).collect()
}

fn safety_archives(env: &Env) -> Vec<PathBuf> {
    env.archives()
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("-restore-safety-"))
        .collect()
}

fn entries(index: &serde_json::Value) -> &Vec<serde_json::Value> {
    index["entries"].as_array().unwrap()
}

// ------------------------------------------------------------------------------------------------
// restore

#[test]
fn restore_into_an_empty_target_reproduces_the_fixture() {
    let env = Env::new("pve-node");
    make_config_db(&env.root);
    decorate(&env.root);
    let archive = backup(&env);
    let index = index_of(&archive);
    let target = new_dir(&env, "target");
    // `--path /` names everything, the held files too.
    let r = restore(
        &env,
        &archive,
        &target,
        &["--path", "/", "--yes", "--no-safety-backup"],
    );
    r.expect(0);
    let diff = sh(&format!(
        "diff -r --no-dereference -x 'config.db*' '{}' '{}'",
        env.root.display(),
        target.display()
    ));
    assert!(
        diff.status.success(),
        "diff -r:\n{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    assert_eq!(
        comparable(full_state(&target, true), &index),
        comparable(full_state(&env.root, true), &index)
    );
    // Spot checks of what the comparison covers.
    let md = fs::symlink_metadata(target.join("etc/vzdump.conf")).unwrap();
    assert_eq!((md.uid(), md.gid()), (1234, 5678));
    assert_eq!(
        fs::symlink_metadata(target.join("etc/pve/local"))
            .unwrap()
            .uid(),
        4321
    );
    assert_eq!(
        fs::read_link(target.join("root/.ssh/authorized_keys")).unwrap(),
        Path::new("/etc/pve/priv/authorized_keys")
    );
    assert_eq!(
        fs::metadata(target.join("etc/pve/priv")).unwrap().mode() & 0o7777,
        0o700
    );
    assert_eq!(
        fs::metadata(target.join("etc/corosync/authkey"))
            .unwrap()
            .mode()
            & 0o7777,
        0o400
    );
    assert_eq!(
        xattrs_of(&target.join("etc/corosync")),
        vec![("user.proxkeep".to_string(), b"dir".to_vec())]
    );
    assert_eq!(
        fs::symlink_metadata(target.join("etc/pve/storage.cfg"))
            .unwrap()
            .mtime(),
        FIXTURE_MTIME
    );
    assert!(temp_files(&target).is_empty());
    assert!(
        !target.join("proxkeep").exists(),
        "internal entries are never restored"
    );
    let out = r.stdout();
    assert!(
        out.contains("will write") && out.contains("create   /etc/pve/storage.cfg"),
        "{out}"
    );
    assert!(
        out.contains("ifreload -a"),
        "follow-up for the network files:\n{out}"
    );
    assert!(safety_archives(&env).is_empty());
}

#[test]
fn extract_writes_everything_like_gnu_tar_and_never_over_existing_files() {
    let env = Env::new("pve-node");
    make_config_db(&env.root);
    decorate(&env.root);
    let archive = backup(&env);
    let ours = env.path("ours");
    env.run(&["extract", archive.to_str().unwrap(), ours.to_str().unwrap()])
        .expect(0);
    let theirs = env.path("theirs");
    gnu_extract(&archive, &theirs);
    let diff = sh(&format!(
        "diff -r --no-dereference '{}' '{}'",
        theirs.display(),
        ours.display()
    ));
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    // meta.json, index.json and the config.db snapshot are there too.
    assert!(
        ours.join("proxkeep/meta.json").is_file()
            && ours.join("proxkeep/pmxcfs/config.db").is_file()
    );
    let index = index_of(&archive);
    let mut stored = full_state(&ours, true);
    let mut gnu = full_state(&theirs, true);
    stored.retain(|k, _| entries(&index).iter().any(|e| e["path"] == *k));
    gnu.retain(|k, _| entries(&index).iter().any(|e| e["path"] == *k));
    // `etc` is stored (a parent of collected paths) before etc/pve, and later categories go back into it:
    // GNU tar sets a directory's mtime when it leaves it, so its `etc` ends with the extraction time.
    let etc_mtime = |m: &mut BTreeMap<String, String>| {
        m.remove("etc")
            .map(|v| v.rsplitn(3, ' ').nth(2).map(String::from))
    };
    assert_eq!(etc_mtime(&mut stored), etc_mtime(&mut gnu));
    assert_eq!(stored, gnu);
    // A non-empty directory is refused, and nothing in it changes.
    let before = full_state(&ours, true);
    let r = env.run(&["extract", archive.to_str().unwrap(), ours.to_str().unwrap()]);
    r.expect(1);
    assert!(r.stderr().contains("not empty"), "{}", r.stderr());
    assert_eq!(full_state(&ours, true), before);
}

#[test]
fn a_modified_target_plans_exactly_the_changes_and_the_safety_archive_undoes_the_restore() {
    let env = Env::new("pve-node");
    decorate(&env.root);
    let archive = backup(&env);
    let target = new_dir(&env, "target");
    restore(
        &env,
        &archive,
        &target,
        &["--path", "/", "--yes", "--no-safety-backup"],
    )
    .expect(0);
    let restored = full_state(&target, false);

    // Change the target in every way the plan distinguishes.
    fs::write(
        target.join("etc/pve/storage.cfg"),
        b"dir: local\n\tpath /var/lib/vz\n",
    )
    .unwrap();
    fs::set_permissions(
        target.join("etc/pve/user.cfg"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::remove_file(target.join("etc/pve/datacenter.cfg")).unwrap();
    fs::remove_file(target.join("etc/pve/local")).unwrap();
    symlink("nodes/uno", target.join("etc/pve/local")).unwrap();
    sh_ok(&format!(
        "chown -h 4321:4321 '{}'",
        target.join("etc/pve/local").display()
    ));
    sh_ok(&format!(
        "chown 0:0 '{}'",
        target.join("etc/vzdump.conf").display()
    ));
    fs::write(target.join("etc/pve/not-in-the-archive.cfg"), b"x").unwrap();
    let modified = full_state(&target, false);

    let plan = restore(
        &env,
        &archive,
        &target,
        &["--dry-run", "--json", "--path", "/"],
    );
    plan.expect(0);
    let steps = plan.json()["steps"].as_array().unwrap().clone();
    let writes: BTreeMap<String, String> = steps
        .iter()
        .filter(|s| s["action"] != "same")
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_string(),
                format!("{} {}", s["action"].as_str().unwrap(), s["changes"]),
            )
        })
        .collect();
    let want: BTreeMap<String, String> = [
        ("/etc/pve/storage.cfg", "replace [\"content\"]"),
        ("/etc/pve/user.cfg", "replace [\"mode\"]"),
        ("/etc/pve/datacenter.cfg", "create null"),
        ("/etc/pve/local", "replace [\"link\"]"),
        ("/etc/vzdump.conf", "replace [\"owner\"]"),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(writes, want);

    let r = restore(&env, &archive, &target, &["--json", "--path", "/", "--yes"]);
    r.expect(0);
    let j = r.json();
    let safety = PathBuf::from(j["outcome"]["safety_archive"].as_str().unwrap());
    let name = safety.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with("due-restore-safety-") && name.ends_with(".tar.zst"),
        "{name}"
    );
    assert_eq!(fs::metadata(&safety).unwrap().mode() & 0o777, 0o600);
    assert_eq!(meta_of(&safety)["purpose"], "restore-safety");
    // The safety archive holds what was replaced, and lists what was created as absent.
    let sindex = index_of(&safety);
    let mut saved: Vec<&str> = entries(&sindex)
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    saved.sort();
    assert_eq!(
        saved,
        vec![
            "etc/pve/local",
            "etc/pve/storage.cfg",
            "etc/pve/user.cfg",
            "etc/vzdump.conf"
        ]
    );
    assert_eq!(sindex["absent"][0]["path"], "/etc/pve/datacenter.cfg");
    let undo = j["undo"].as_str().unwrap();
    assert!(
        undo.contains(&format!("restore {}", safety.display())) && undo.contains("--target"),
        "{undo}"
    );
    // Restored: the archive's state again (the extra file stays: restore never deletes what it does not know).
    let mut again = full_state(&target, false);
    assert!(again.remove("etc/pve/not-in-the-archive.cfg").is_some());
    assert_eq!(again, restored);

    // `latest` still means the backup, never the safety archive.
    let r = env.run(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--dry-run",
    ]);
    r.expect(0);
    assert!(
        r.stdout()
            .contains(archive.file_name().unwrap().to_str().unwrap()),
        "{}",
        r.stdout()
    );

    // Restoring the safety archive gives the modified state back (held files are not held in it).
    restore(&env, &safety, &target, &["--yes", "--no-safety-backup"]).expect(0);
    assert_eq!(full_state(&target, false), modified);
    assert!(temp_files(&target).is_empty());
}

/// Hash of everything under `dir`, metadata and directory mtimes included.
fn tree_hash(dir: &Path) -> String {
    let s = format!("{:?}", full_state(dir, true));
    crate::util::sha256_bytes(s.as_bytes())
}

#[test]
fn dry_run_changes_nothing() {
    let env = Env::new("pve-node");
    let archive = backup(&env);
    let target = new_dir(&env, "target");
    restore(
        &env,
        &archive,
        &target,
        &["--only", "pve-cluster", "--yes", "--no-safety-backup"],
    )
    .expect(0);
    fs::write(target.join("etc/pve/storage.cfg"), b"changed\n").unwrap();
    fs::remove_file(target.join("etc/pve/user.cfg")).unwrap();
    let before = tree_hash(&target);
    let backups_before = sh_ok(&format!(
        "ls -la --time-style=full-iso '{}'",
        env.backups.display()
    ));
    let r = restore(&env, &archive, &target, &["--dry-run"]);
    r.expect(0);
    assert!(
        r.stdout()
            .contains("replace  /etc/pve/storage.cfg  (content)"),
        "{}",
        r.stdout()
    );
    assert!(
        r.stdout().contains("create   /etc/pve/user.cfg"),
        "{}",
        r.stdout()
    );
    assert!(r.stdout().contains("dry run: nothing was written"));
    assert_eq!(tree_hash(&target), before);
    assert_eq!(
        sh_ok(&format!(
            "ls -la --time-style=full-iso '{}'",
            env.backups.display()
        )),
        backups_before
    );
    // Also into an empty target (the plan of a fresh host): still nothing.
    let empty = new_dir(&env, "empty");
    restore(&env, &archive, &empty, &["--dry-run", "--path", "/"]).expect(0);
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
}

#[test]
fn held_files_are_written_only_when_named_and_only_network_writes_network_files_only() {
    let env = Env::new("pve-node");
    let archive = backup(&env);
    let index = index_of(&archive);
    let held = ["etc/network/interfaces", "etc/hosts", "etc/hostname"];

    // Everything, held files excepted: they are shown with a diff against the target.
    let all = new_dir(&env, "all");
    fs::create_dir_all(all.join("etc")).unwrap();
    fs::write(
        all.join("etc/hosts"),
        b"127.0.0.1 localhost\n10.0.0.9 newhost\n",
    )
    .unwrap();
    let r = restore(&env, &archive, &all, &["--yes"]);
    r.expect(0);
    for h in held {
        let present = all.join(h).exists();
        assert!(h == "etc/hosts" || !present, "{h} was written");
    }
    assert_eq!(
        fs::read(all.join("etc/hosts")).unwrap(),
        b"127.0.0.1 localhost\n10.0.0.9 newhost\n"
    );
    let out = r.stdout();
    assert!(out.contains("held: hardware- or install-bound"), "{out}");
    assert!(
        out.contains("--- /etc/hosts (target)")
            && out.contains("-10.0.0.9 newhost")
            && out.contains("+10.10.10.2 due.example.com due"),
        "{out}"
    );
    assert!(all.join("etc/pve/storage.cfg").is_file());

    // --only network: exactly the network category's entries, held ones included (named by the category).
    let net = new_dir(&env, "net");
    restore(&env, &archive, &net, &["--only", "network", "--yes"]).expect(0);
    let want: BTreeSet<String> = entries(&index)
        .iter()
        .filter(|e| e["category"] == "network")
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    let got: BTreeSet<String> = tree_state(&net)
        .into_iter()
        .filter(|(k, (kind, _, _))| kind != "dir" || want.contains(k))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(got, want);
    for h in held {
        assert!(net.join(h).is_file(), "{h}");
    }

    // --path names a held file alone.
    let one = new_dir(&env, "one");
    restore(&env, &archive, &one, &["--path", "/etc/hostname", "--yes"]).expect(0);
    assert_eq!(
        sh_ok(&format!("cd '{}' && find . -type f", one.display())).trim(),
        "./etc/hostname"
    );
    // An unknown category is a usage error.
    restore(&env, &archive, &one, &["--only", "nope", "--yes"]).expect(2);
}

#[test]
fn map_node_moves_the_node_directory_and_links() {
    let env = Env::new("pve-node");
    let archive = backup(&env);
    let target = new_dir(&env, "target");
    restore(
        &env,
        &archive,
        &target,
        &[
            "--only",
            "pve-cluster",
            "--map-node",
            "due=quattro",
            "--yes",
        ],
    )
    .expect(0);
    assert!(
        target
            .join("etc/pve/nodes/quattro/qemu-server/100.conf")
            .is_file()
    );
    assert!(!target.join("etc/pve/nodes/due").exists());
    assert!(target.join("etc/pve/nodes/uno").is_dir());
    assert_eq!(
        fs::read_link(target.join("etc/pve/local")).unwrap(),
        Path::new("nodes/quattro")
    );
    assert_eq!(
        fs::read_link(target.join("etc/pve/qemu-server")).unwrap(),
        Path::new("nodes/quattro/qemu-server")
    );
    let empty = new_dir(&env, "empty");
    let r = restore(&env, &archive, &empty, &["--map-node", "nine=ten", "--yes"]);
    r.expect(2);
    assert!(
        r.stderr().contains("has no /etc/pve/nodes/nine (it has: ") && r.stderr().contains("due"),
        "{}",
        r.stderr()
    );
    restore(&env, &archive, &empty, &["--map-node", "due=uno", "--yes"]).expect(2);
    restore(&env, &archive, &empty, &["--map-node", "due=../x", "--yes"]).expect(2);
    assert_eq!(fs::read_dir(&empty).unwrap().count(), 0);
}

#[test]
fn without_a_terminal_restore_needs_yes() {
    let env = Env::new("pve-node");
    let archive = backup(&env);
    let target = new_dir(&env, "target");
    let r = restore(&env, &archive, &target, &[]);
    // A usage error (issue 16): the command line must say --yes or --dry-run.
    r.expect(2);
    assert!(r.stderr().contains("pass --yes"), "{}", r.stderr());
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
    assert!(safety_archives(&env).is_empty());
}

/// Run proxkeep on a pseudo-terminal, answer the prompt with `answer`, return (exit code, output).
fn on_a_terminal(env: &Env, args: &[&str], answer: &str) -> (i32, String) {
    let script = r#"
import os, pty, sys, select
argv = sys.argv[2:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
out = b""
answered = False
while True:
    r, _, _ = select.select([fd], [], [], 30)
    if not r:
        break
    try:
        d = os.read(fd, 4096)
    except OSError:
        break
    if not d:
        break
    out += d
    if not answered and b"Type `restore`" in out:
        os.write(fd, sys.argv[1].encode() + b"\n")
        answered = True
_, status = os.waitpid(pid, 0)
sys.stdout.write(str(os.waitstatus_to_exitcode(status)) + "\n" + out.decode(errors="replace"))
"#;
    let mut cmd = Command::new(tool("python3"));
    cmd.arg("-c").arg(script).arg(answer).arg(bin());
    cmd.args([
        "--config",
        env.config.to_str().unwrap(),
        "--root",
        env.root.to_str().unwrap(),
    ]);
    cmd.args(args);
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, rest) = text.split_once('\n').unwrap();
    (code.trim().parse().unwrap(), rest.to_string())
}

#[test]
fn on_a_terminal_the_confirmation_must_be_typed() {
    let env = Env::new("pve-node");
    let archive = backup(&env);
    let target = new_dir(&env, "target");
    let args = [
        "restore",
        archive.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
        "--only",
        "ssh",
    ];
    let (code, out) = on_a_terminal(&env, &args, "y");
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("not confirmed: nothing was changed"), "{out}");
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
    let (code, out) = on_a_terminal(&env, &args, "restore");
    assert_eq!(code, 0, "{out}");
    assert!(
        target.join("etc/ssh").is_dir() || target.join("root/.ssh").exists(),
        "{out}"
    );
}

// ------------------------------------------------------------------------------------------------
// hostile and damaged archives (the python-built hostile archives are in faults.rs)

fn assert_refused(env: &Env, archive: &Path, outside: &Path, entry: &str, why: &str) {
    for cmd in ["restore", "extract"] {
        let target = env.path(&format!(
            "target-{}-{cmd}",
            archive.file_stem().unwrap().to_string_lossy()
        ));
        fs::create_dir_all(&target).unwrap();
        let r = if cmd == "restore" {
            restore(env, archive, &target, &["--yes", "--path", "/"])
        } else {
            env.run(&[
                "extract",
                archive.to_str().unwrap(),
                target.to_str().unwrap(),
            ])
        };
        r.expect(6);
        let err = r.stderr();
        assert!(
            err.contains(entry) && err.contains(why),
            "{cmd} {}: {err}",
            archive.display()
        );
        assert_eq!(
            fs::read_dir(&target).unwrap().count(),
            0,
            "{cmd}: something was written"
        );
        assert_eq!(
            fs::read_dir(outside).unwrap().count(),
            0,
            "{cmd}: something was written outside"
        );
    }
    assert!(
        !env.path("escaped").exists() && !env.tmp.path().parent().unwrap().join("escaped").exists()
    );
}

#[test]
fn an_absolute_name_written_by_gnu_tar_is_refused() {
    let env = Env::new("");
    let outside = new_dir(&env, "outside");
    let victim = new_dir(&env, "victim-src");
    fs::write(victim.join("x"), b"evil").unwrap();
    let src = new_dir(&env, "src/proxkeep");
    fs::write(src.join("meta.json"), r#"{"format_version":1,"tool":"proxkeep","tool_version":"0","host":"h","role":"pve","created":"","created_unix":0,"categories":[],"compression":{"algorithm":"none","level":0}}"#).unwrap();
    let archive = env.path("gnu.tar");
    // -P keeps the leading `/`, as an attacker's tar would.
    sh_ok(&format!(
        "tar -cf '{}' -C '{}' proxkeep/meta.json -P '{}'",
        archive.display(),
        env.path("src").display(),
        victim.join("x").display()
    ));
    assert!(
        sh_ok(&format!("tar -tPf '{}'", archive.display()))
            .contains(&format!("{}/x", victim.display()))
    );
    assert_refused(
        &env,
        &archive,
        &outside,
        &format!("{}/x", victim.display()),
        "absolute name",
    );
}

#[test]
fn a_symlink_on_the_target_is_never_followed() {
    let env = Env::new("pve-node");
    let archive = backup(&env);
    let outside = new_dir(&env, "outside");
    let target = new_dir(&env, "target");
    symlink(&outside, target.join("etc")).unwrap();
    let r = restore(&env, &archive, &target, &["--yes", "--path", "/"]);
    r.expect(1);
    assert!(
        r.stderr()
            .contains("passes through the symlink /etc on the target"),
        "{}",
        r.stderr()
    );
    assert!(r.stdout().contains("conflicts"), "{}", r.stdout());
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    assert_eq!(fs::read_dir(&target).unwrap().count(), 1);
    assert!(safety_archives(&env).is_empty());
}

#[test]
fn a_damaged_compressed_archive_is_refused_before_anything_is_written() {
    let env = Env::new("pve-node");
    let archive = backup(&env);
    let mut data = fs::read(&archive).unwrap();
    let mid = data.len() / 2;
    data[mid] ^= 0x55;
    fs::write(&archive, data).unwrap();
    let target = new_dir(&env, "target");
    let r = restore(&env, &archive, &target, &["--yes", "--path", "/"]);
    r.expect(6);
    assert!(r.stderr().contains("is damaged"), "{}", r.stderr());
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
}

#[test]
fn damaged_content_stops_before_the_damaged_file_is_written() {
    let mut env = Env::new("pve-node");
    // Uncompressed, so the damage is not caught by a compressor checksum in pass 1: only the hash can.
    env.write_config("[compression]\nalgorithm = \"none\"\n");
    let archive = backup(&env);
    let victim = "etc/pve/storage.cfg";
    let offset: usize = sh_ok(&format!(
        "python3 -c \"import tarfile; print(tarfile.open('{}').getmember('{victim}').offset_data)\"",
        archive.display()
    ))
    .trim()
    .parse()
    .unwrap();
    let mut data = fs::read(&archive).unwrap();
    data[offset + 3] ^= 0x20;
    fs::write(&archive, data).unwrap();
    let index = index_of(&archive);
    let paths: Vec<&str> = entries(&index)
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let pos = paths.iter().position(|p| *p == victim).unwrap();

    let target = new_dir(&env, "target");
    let r = restore(
        &env,
        &archive,
        &target,
        &["--yes", "--path", "/", "--no-safety-backup"],
    );
    r.expect(6);
    let out = r.stdout();
    assert!(
        out.contains("STOPPED, the archive is damaged") && out.contains("/etc/pve/storage.cfg"),
        "{out}"
    );
    assert!(out.contains("none is partial"), "{out}");
    assert!(
        !target.join(victim).exists(),
        "the damaged file was written"
    );
    assert!(temp_files(&target).is_empty());
    // What came before it in the archive is there and intact; nothing after it was written.
    for e in &entries(&index)[..pos] {
        let p = target.join(e["path"].as_str().unwrap());
        if e["kind"] == "file" {
            assert_eq!(
                sha256_file(&p),
                e["sha256"].as_str().unwrap(),
                "{}",
                p.display()
            );
        }
    }
    for e in &entries(&index)[pos + 1..] {
        if e["kind"] == "file" {
            assert!(
                !target.join(e["path"].as_str().unwrap()).exists(),
                "{}",
                e["path"]
            );
        }
    }
}

#[test]
fn a_damaged_big_file_stops_the_restore_on_its_writer_with_nothing_after_it_in_place() {
    let mut env = Env::new("pve-node");
    // A file bigger than what is handed to a writer whole (it streams to its writer in chunks), damaged in its
    // last chunk, so the writer has already written most of it when the hash shows the damage; hundreds of
    // small files before and after it keep the other writers busy meanwhile.
    let dir = env.root.join("srv/big");
    fs::create_dir_all(&dir).unwrap();
    for i in 0..300 {
        fs::write(
            dir.join(format!("a{i:03}.conf")),
            format!("a {i}\n").repeat(50),
        )
        .unwrap();
        fs::write(
            dir.join(format!("z{i:03}.conf")),
            format!("z {i}\n").repeat(50),
        )
        .unwrap();
    }
    let big: Vec<u8> = (0..5 * 1024 * 1024 + 123)
        .map(|i| (i % 253) as u8)
        .collect();
    fs::write(dir.join("m-big.bin"), &big).unwrap();
    env.write_config(
        "[collect]\nextra_paths = [\"/srv/big\"]\n[compression]\nalgorithm = \"none\"\n",
    );
    let archive = backup(&env);
    let victim = "srv/big/m-big.bin";
    let offset: usize = sh_ok(&format!(
        "python3 -c \"import tarfile; print(tarfile.open('{}').getmember('{victim}').offset_data)\"",
        archive.display()
    ))
    .trim()
    .parse()
    .unwrap();
    let mut data = fs::read(&archive).unwrap();
    data[offset + big.len() - 7] ^= 0x01;
    fs::write(&archive, data).unwrap();
    let index = index_of(&archive);
    let files: Vec<&str> = entries(&index)
        .iter()
        .filter(|e| e["kind"] == "file")
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    let pos = files.iter().position(|p| *p == victim).unwrap();
    assert!(
        pos >= 300 && files.len() - pos > 300,
        "{pos} of {}",
        files.len()
    );

    for extract in [false, true] {
        let target = env.path(if extract { "extracted" } else { "restored" });
        let r = if extract {
            env.run(&[
                "extract",
                archive.to_str().unwrap(),
                target.to_str().unwrap(),
            ])
        } else {
            fs::create_dir_all(&target).unwrap();
            restore(
                &env,
                &archive,
                &target,
                &["--yes", "--only", "extra", "--no-safety-backup"],
            )
        };
        r.expect(6);
        let out = r.stdout();
        assert!(
            out.contains("STOPPED, the archive is damaged") && out.contains("/srv/big/m-big.bin"),
            "{out}"
        );
        assert!(out.contains("does not match the index"), "{out}");
        assert!(
            !target.join(victim).exists(),
            "the damaged file was written"
        );
        assert!(temp_files(&target).is_empty(), "{:?}", temp_files(&target));
        for (i, f) in files.iter().enumerate() {
            let p = target.join(f);
            if i < pos {
                if f.starts_with("srv/big/") {
                    assert!(
                        p.exists(),
                        "{f} comes before the damage and was not restored"
                    );
                }
            } else {
                assert!(!p.exists(), "{f} comes after the damage and was restored");
            }
        }
    }
}

// ------------------------------------------------------------------------------------------------
// interruption

#[test]
fn sigterm_in_the_middle_of_a_restore_leaves_no_partial_file_and_says_what_was_done() {
    let mut env = Env::new("pve-node");
    // Many files, so the restore is still writing when the signal comes: it is sent as soon as the first
    // of them is in place, and there are thousands more to go.
    let many = env.root.join("srv/many");
    for d in 0..20 {
        let dir = many.join(format!("d{d:02}"));
        fs::create_dir_all(&dir).unwrap();
        for f in 0..500 {
            fs::write(
                dir.join(format!("f{f:03}.conf")),
                format!("{d} {f}\n").repeat(40),
            )
            .unwrap();
        }
    }
    env.write_config("[collect]\nextra_paths = [\"/srv/many\"]\n[compression]\nlevel = 1\n");
    let archive = backup(&env);
    let index = index_of(&archive);
    let target = new_dir(&env, "target");
    let mut child = spawn(
        &env,
        "spawned",
        &[
            "restore",
            archive.to_str().unwrap(),
            "--target",
            target.to_str().unwrap(),
            "--only",
            "extra",
            "--yes",
        ],
    );
    let first = target.join("srv/many/d00/f000.conf");
    wait_for("the first file", 60, || {
        first.exists() || child.try_wait().unwrap().is_some()
    });
    sh_ok(&format!("kill -TERM {}", child.id()));
    let r = finished(&env, "spawned", child);
    r.expect(130);
    let stdout = r.stdout();
    assert!(stdout.contains("INTERRUPTED"), "{stdout}");
    let written: usize = stdout
        .lines()
        .find_map(|l| {
            l.strip_suffix(
                " were not; every file is either its old or its new version, none is partial",
            )
        })
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no summary line:\n{stdout}"));
    assert!(written > 0 && written < 10_040, "{stdout}");
    assert!(temp_files(&target).is_empty(), "{:?}", temp_files(&target));
    // Every file that is there is complete and exactly the archive's.
    let mut present = 0;
    for e in entries(&index).iter().filter(|e| e["kind"] == "file") {
        let p = target.join(e["path"].as_str().unwrap());
        if p.exists() {
            assert_eq!(
                sha256_file(&p),
                e["sha256"].as_str().unwrap(),
                "{}",
                p.display()
            );
            present += 1;
        }
    }
    assert!(present > 0 && present < 10_000, "{present}");
    // Into an empty target nothing is replaced, so no safety archive is written (issue 12).
    assert!(safety_archives(&env).is_empty());
    assert!(
        env.partials().iter().all(|p| !p.ends_with(".partial")),
        "{:?}",
        env.partials()
    );
}

#[test]
fn a_later_restore_removes_the_temp_files_a_killed_one_left_and_nothing_else() {
    let env = Env::new("pve-node");
    let archive = backup(&env);
    let target = new_dir(&env, "target");
    // Above the largest pid_max Linux allows: no process can have this PID.
    let gone = 4_194_305;
    let live = std::process::id();
    let etc = target.join("etc");
    fs::create_dir_all(&etc).unwrap();
    let stale = [
        format!(".proxkeep-{gone}-1.tmp"),
        format!(".proxkeep-{gone}-22.tmp"),
    ];
    let kept = [
        format!(".proxkeep-{live}-1.tmp"),
        format!("x.proxkeep-{gone}-1.tmp"),
        format!(".proxkeep-{gone}-1.tmp.bak"),
        format!(".proxkeep-{gone}-x.tmp"),
        "hosts.proxkeep-1-1.tmp".to_string(),
    ];
    for n in stale.iter().chain(&kept) {
        fs::write(etc.join(n), b"partial").unwrap();
    }
    // Symlinks are written through temp names too.
    let stale_link = format!(".proxkeep-{gone}-3.tmp");
    symlink("nowhere", etc.join(&stale_link)).unwrap();
    // A directory of that name is not something a restore makes.
    let dir_named = format!(".proxkeep-{gone}-4.tmp");
    fs::create_dir(etc.join(&dir_named)).unwrap();
    let r = restore(
        &env,
        &archive,
        &target,
        &["--path", "/", "--yes", "--no-safety-backup", "--json"],
    );
    r.expect(0);
    let v: serde_json::Value = serde_json::from_str(&r.stdout()).unwrap();
    assert_eq!(v["outcome"]["report"]["stale_temps_removed"], 3, "{v}");
    for n in stale.iter().chain([&stale_link]) {
        assert!(
            fs::symlink_metadata(etc.join(n)).is_err(),
            "{n} is still there"
        );
    }
    for n in kept.iter().chain([&dir_named]) {
        assert!(etc.join(n).exists(), "{n} was removed");
    }
    assert_eq!(fs::read(etc.join(&kept[0])).unwrap(), b"partial");
}

#[test]
fn sigterm_while_a_follow_up_command_hangs_ends_it_and_reports_the_restore_as_done() {
    let env = Env::new("pve-node");
    let archive = backup(&env);
    // The host (--root) differs from the archive in a network file: restoring it runs `ifreload -a`.
    fs::write(
        env.root.join("etc/network/interfaces"),
        b"auto lo\niface lo inet loopback\n",
    )
    .unwrap();
    let pidfile = env.path("ifreload.pid");
    env.stub(
        "ifreload",
        &format!("echo $$ > '{}'; exec sleep 300", pidfile.display()),
    );
    let mut child = spawn(
        &env,
        "spawned",
        &[
            "restore",
            archive.to_str().unwrap(),
            "--only",
            "network",
            "--yes",
            "--no-safety-backup",
            "--apply-services",
        ],
    );
    wait_for("the ifreload stub", 60, || {
        pidfile.exists() || child.try_wait().unwrap().is_some()
    });
    sh_ok(&format!("kill -TERM {}", child.id()));
    let r = finished(&env, "spawned", child);
    r.expect(130);
    assert!(
        r.stdout()
            .contains("interrupted while running the follow-up commands; every file was restored"),
        "{}",
        r.stdout()
    );
    let stub = fs::read_to_string(&pidfile).unwrap();
    wait_for("the stub to be killed", 10, || {
        !Path::new(&format!("/proc/{}", stub.trim())).exists()
    });
    let idx = index_of(&archive);
    let e = entries(&idx)
        .iter()
        .find(|e| e["path"] == "etc/network/interfaces")
        .unwrap();
    assert_eq!(
        sha256_file(&env.root.join("etc/network/interfaces")),
        e["sha256"].as_str().unwrap()
    );
}

#[test]
fn apply_services_runs_the_follow_ups_with_a_timeout() {
    let env = Env::new("pve-node");
    let archive = backup(&env);
    fs::write(env.root.join("etc/network/interfaces"), b"auto lo\n").unwrap();
    let log = env.path("calls.log");
    env.stub(
        "ifreload",
        &format!("echo \"ifreload $*\" >> '{}'", log.display()),
    );
    env.stub(
        "systemctl",
        &format!("echo \"systemctl $*\" >> '{}'; sleep 300", log.display()),
    );
    fs::write(env.root.join("etc/frr/frr.conf"), b"changed\n").unwrap();
    let t = Instant::now();
    let r = env.run(&[
        "restore",
        archive.to_str().unwrap(),
        "--only",
        "network",
        "--yes",
        "--apply-services",
        "--service-timeout",
        "1s",
    ]);
    r.expect(3);
    assert!(t.elapsed() < Duration::from_secs(20), "{:?}", t.elapsed());
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        "ifreload -a\nsystemctl restart frr\n"
    );
    assert!(
        r.stdout().contains("[done]") && r.stdout().contains("FAILED: did not finish within 1s"),
        "{}",
        r.stdout()
    );
    // On a --target that is not the host, nothing is run.
    let target = new_dir(&env, "target");
    let r = restore(
        &env,
        &archive,
        &target,
        &["--only", "network", "--yes", "--apply-services"],
    );
    r.expect(0);
    assert!(r.stdout().contains("not run"), "{}", r.stdout());
    assert_eq!(fs::read_to_string(&log).unwrap().lines().count(), 2);
}

// ------------------------------------------------------------------------------------------------
// pmxcfs

#[test]
fn pmxcfs_extract_rebuilds_etc_pve_from_a_config_db() {
    let env = Env::new("pve-node");
    make_config_db(&env.root);
    let db = env.root.join("var/lib/pve-cluster/config.db");
    let out = env.path("pve");
    let r = env.run(&[
        "pmxcfs",
        "extract",
        db.to_str().unwrap(),
        out.to_str().unwrap(),
        "--node",
        "due",
    ]);
    r.expect(0);
    assert!(
        r.stdout().contains("extracted 18 directories, 111 files"),
        "{}",
        r.stdout()
    );
    let diff = sh(&format!(
        "diff -r --no-dereference '{}' '{}'",
        env.root.join("etc/pve").display(),
        out.display()
    ));
    assert!(
        diff.status.success(),
        "{}",
        String::from_utf8_lossy(&diff.stdout)
    );
    assert_eq!(tree_state(&out), tree_state(&env.root.join("etc/pve")));
    // Without --node the links are left out, and the output says how to get them.
    let out2 = env.path("pve2");
    let r = env.run(&[
        "pmxcfs",
        "extract",
        db.to_str().unwrap(),
        out2.to_str().unwrap(),
    ]);
    r.expect(0);
    assert!(
        r.stdout()
            .contains("pass --node NAME (nodes in the db: due, tre, uno)"),
        "{}",
        r.stdout()
    );
    assert!(!out2.join("local").exists());
    // Never over existing files.
    env.run(&[
        "pmxcfs",
        "extract",
        db.to_str().unwrap(),
        out.to_str().unwrap(),
    ])
    .expect(1);
}

/// A pve-node env with a backup (holding config.db "A"), then the host's db changed to "B" with a WAL.
fn pmxcfs_env() -> (Env, PathBuf, PathBuf) {
    let env = Env::new("pve-node");
    make_config_db(&env.root);
    let archive = backup(&env);
    let dbdir = env.root.join("var/lib/pve-cluster");
    fs::remove_file(dbdir.join("config.db")).unwrap();
    fs::remove_file(env.root.join("etc/pve/user.cfg")).unwrap();
    make_config_db(&env.root);
    fs::write(dbdir.join("config.db-wal"), b"old wal").unwrap();
    fs::write(dbdir.join("config.db-shm"), b"old shm").unwrap();
    (env, archive, dbdir)
}

fn short_sha(p: &Path) -> String {
    sha256_file(p)[..16].to_string()
}

#[test]
fn pmxcfs_restore_stops_swaps_and_starts_in_that_order_and_keeps_a_safety_copy() {
    let (env, archive, dbdir) = pmxcfs_env();
    let db = dbdir.join("config.db");
    let old = short_sha(&db);
    let log = env.path("systemctl.log");
    // Each call records the db's hash at that moment: proves the swap happens between stop and start.
    env.stub(
        "systemctl",
        &format!(
            "echo \"$* $(sha256sum '{}' | cut -c1-16)\" >> '{}'\ncase \"$1\" in is-active) exit 3;; esac\nexit 0",
            db.display(),
            log.display()
        ),
    );
    let r = env.run(&[
        "pmxcfs",
        "restore",
        archive.to_str().unwrap(),
        "--yes",
        "--service-timeout",
        "10s",
    ]);
    r.expect(0);
    let new = short_sha(&db);
    assert_ne!(old, new);
    let restored = env.path("archived.db");
    sh_ok(&format!(
        "tar -xOf '{}' proxkeep/pmxcfs/config.db > '{}'",
        archive.display(),
        restored.display()
    ));
    assert_eq!(sha256_file(&db), sha256_file(&restored));
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        format!("stop pve-cluster {old}\nstart pve-cluster {new}\n")
    );
    assert_eq!(fs::metadata(&db).unwrap().mode() & 0o777, 0o600);
    assert!(!dbdir.join("config.db-wal").exists() && !dbdir.join("config.db-shm").exists());
    assert_eq!(
        sh_ok(&format!(
            "sqlite3 '{}' 'PRAGMA integrity_check'",
            db.display()
        ))
        .trim(),
        "ok"
    );
    // The safety copy: the previous db and its WAL/SHM, private, in the backup dir.
    let copies: Vec<PathBuf> = fs::read_dir(&env.backups)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("due-pmxcfs-safety-")
        })
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    let c = &copies[0];
    assert_eq!(fs::metadata(c).unwrap().mode() & 0o777, 0o700);
    assert_eq!(short_sha(&c.join("config.db")), old);
    assert_eq!(fs::read(c.join("config.db-wal")).unwrap(), b"old wal");
    assert_eq!(fs::read(c.join("config.db-shm")).unwrap(), b"old shm");
    let out = r.stdout();
    assert!(
        out.contains("pvecm updatecerts") && out.contains("matches its node directory"),
        "{out}"
    );
    // Standalone (no pvecm on this machine), and the db's own tree is what pmxcfs will show.
    assert!(out.contains("cluster  Standalone"), "{out}");
}

#[test]
fn pmxcfs_restore_refuses_a_quorate_cluster_unless_forced() {
    let (env, archive, dbdir) = pmxcfs_env();
    let before = sha256_file(&dbdir.join("config.db"));
    let log = env.path("systemctl.log");
    env.stub(
        "systemctl",
        &format!(
            "echo \"$*\" >> '{}'; case \"$1\" in is-active) exit 3;; esac",
            log.display()
        ),
    );
    env.stub("pvecm", "printf 'Quorum information\\n------------------\\nNodes:            3\\nQuorate:          Yes\\n'");
    let r = env.run(&["pmxcfs", "restore", archive.to_str().unwrap(), "--yes"]);
    r.expect(1);
    assert!(
        r.stderr().contains("part of a quorate cluster") && r.stderr().contains("--force"),
        "{}",
        r.stderr()
    );
    assert_eq!(sha256_file(&dbdir.join("config.db")), before);
    assert!(!log.exists(), "no service may be touched");
    assert!(temp_files(&dbdir).is_empty());
    env.run(&[
        "pmxcfs",
        "restore",
        archive.to_str().unwrap(),
        "--yes",
        "--force",
    ])
    .expect(0);
    assert_ne!(sha256_file(&dbdir.join("config.db")), before);
}

#[test]
fn a_hanging_systemctl_is_killed_at_the_timeout_and_nothing_is_swapped() {
    let (env, archive, dbdir) = pmxcfs_env();
    let before = sha256_file(&dbdir.join("config.db"));
    let pids = env.path("stub.pids");
    env.stub(
        "systemctl",
        &format!("echo $$ >> '{}'; exec sleep 300", pids.display()),
    );
    let t = Instant::now();
    let r = env.run(&[
        "pmxcfs",
        "restore",
        archive.to_str().unwrap(),
        "--yes",
        "--service-timeout",
        "1s",
    ]);
    r.expect(1);
    assert!(t.elapsed() < Duration::from_secs(30), "{:?}", t.elapsed());
    let err = r.stderr();
    assert!(
        err.contains("`systemctl stop pve-cluster` did not finish within 1s and was killed"),
        "{err}"
    );
    assert!(err.contains("config.db was NOT replaced"), "{err}");
    assert_eq!(sha256_file(&dbdir.join("config.db")), before);
    assert_eq!(fs::read(dbdir.join("config.db-wal")).unwrap(), b"old wal");
    assert!(temp_files(&dbdir).is_empty());
    for pid in fs::read_to_string(&pids).unwrap().lines() {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "stub {pid} still runs"
        );
    }
}

#[test]
fn pmxcfs_restore_into_a_target_directory_touches_no_service() {
    let (env, archive, _) = pmxcfs_env();
    let log = env.path("systemctl.log");
    env.stub("systemctl", &format!("echo \"$*\" >> '{}'", log.display()));
    let target = new_dir(&env, "newroot");
    let r = env.run(&[
        "pmxcfs",
        "restore",
        archive.to_str().unwrap(),
        "--target",
        target.to_str().unwrap(),
        "--yes",
    ]);
    r.expect(0);
    assert!(!log.exists());
    let db = target.join("var/lib/pve-cluster/config.db");
    assert_eq!(fs::metadata(&db).unwrap().mode() & 0o777, 0o600);
    assert_eq!(
        sh_ok(&format!(
            "sqlite3 '{}' 'SELECT count(*) FROM tree'",
            db.display()
        ))
        .trim(),
        "130"
    );
    // No hostname under the target: the next steps say the node name must be set.
    assert!(
        r.stdout().contains("this host is named \"localhost\""),
        "{}",
        r.stdout()
    );
}
