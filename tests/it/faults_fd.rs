//! Issue 16, "Restore runs out of file descriptors": `restore --target` and `extract` of archives whose
//! shape or order once needed a directory handle per entry, run at `ulimit -n 1024` (soft and hard, as a
//! Debian root shell has it), must succeed and give back exactly the source tree.

use crate::util::{Env, Run, bin, sh_ok, tool};
use std::fs;
use std::path::Path;
use std::process::Command;

/// Run proxkeep with the env's config and root at `ulimit -n 1024` (soft and hard).
fn run_limited(env: &Env, args: &[&str]) -> Run {
    let mut c = Command::new(tool("sh"));
    c.args(["-c", "ulimit -n 1024 && exec \"$@\"", "sh"])
        .arg(bin())
        .arg("--config")
        .arg(&env.config)
        .arg("--root")
        .arg(&env.root)
        .args(args)
        .env_remove("PROXKEEP_CONFIG");
    Run(c.output().unwrap())
}

/// Back up `env`, then restore and extract the archive at `ulimit -n 1024`; both must give back `sub` (a
/// directory of the root) byte for byte, modes included.
fn round_trip(env: &Env, sub: &str) {
    // The tree under etc/pve makes this a PVE node, which has a cluster database (an empty one will do:
    // without one the backup warns).
    if sub == "etc/pve" {
        let (empty, db) = (
            env.path("no-pve"),
            env.root.join("var/lib/pve-cluster/config.db"),
        );
        fs::create_dir_all(&empty).unwrap();
        fs::create_dir_all(db.parent().unwrap()).unwrap();
        let script = crate::util::repo().join("tests/support/make_config_db.py");
        let args = [&script, &empty, &db].map(|p| format!("'{}'", p.display()));
        sh_ok(&format!("python3 {}", args.join(" ")));
    }
    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    let archive = archive.to_str().unwrap();
    let restored = env.path("restored");
    fs::create_dir(&restored).unwrap();
    let target = restored.to_str().unwrap();
    let r = run_limited(
        env,
        &[
            "restore",
            archive,
            "--target",
            target,
            "--path",
            "/",
            "--yes",
            "--no-safety-backup",
        ],
    );
    r.expect(0);
    let extracted = env.path("extracted");
    run_limited(env, &["extract", archive, extracted.to_str().unwrap()]).expect(0);
    for out in [&restored, &extracted] {
        same_tree(&env.root.join(sub), &out.join(sub));
    }
}

/// Same names, kinds, modes and contents (GNU diff for the contents).
fn same_tree(src: &Path, dst: &Path) {
    let (a, b) = (crate::util::tree_state(src), crate::util::tree_state(dst));
    assert_eq!(a.len(), b.len(), "{} entries vs {}", a.len(), b.len());
    assert!(a == b, "{} and {} differ", src.display(), dst.display());
    sh_ok(&format!(
        "{} -r '{}' '{}'",
        tool("diff"),
        src.display(),
        dst.display()
    ));
}

#[test]
fn three_thousand_directories_of_one_file_restore_at_ulimit_1024() {
    let env = Env::new("");
    let base = env.root.join("etc/pve/many");
    for i in 0..3000 {
        let d = base.join(format!("d{i:04}"));
        fs::create_dir_all(&d).unwrap();
        fs::write(d.join("f.conf"), format!("{i}\n")).unwrap();
    }
    round_trip(&env, "etc/pve");
}

#[test]
fn files_alternating_between_two_directories_restore_at_ulimit_1024() {
    let mut env = Env::new("");
    // The archive keeps the order of `extra_paths`: a/0, b/0, a/1, b/1, ...
    let mut paths = Vec::new();
    for d in ["a", "b"] {
        fs::create_dir_all(env.root.join("srv/alt").join(d)).unwrap();
    }
    for i in 0..10_000 {
        for d in ["a", "b"] {
            let host = format!("/srv/alt/{d}/{i:05}");
            fs::write(env.root.join(&host[1..]), format!("{d}{i}\n")).unwrap();
            paths.push(format!("\"{host}\""));
        }
    }
    env.write_config(&format!(
        "[collect]\nextra_paths = [{}]\n",
        paths.join(", ")
    ));
    round_trip(&env, "srv/alt");
    // It really alternated in the archive.
    let index = crate::util::index_of(&env.only_archive());
    let files: Vec<&str> = index["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["path"].as_str())
        .filter(|p| p.starts_with("srv/alt/") && p.len() > "srv/alt/a/".len())
        .take(4)
        .collect();
    assert_eq!(
        files,
        [
            "srv/alt/a/00000",
            "srv/alt/b/00000",
            "srv/alt/a/00001",
            "srv/alt/b/00001"
        ]
    );
}

/// Deeper than the limit: one handle per level would need more than 1024.
const DEPTH: usize = 1100;

#[test]
fn a_tree_deeper_than_the_limit_restores_at_ulimit_1024() {
    let env = Env::new("");
    let deep = "d/".repeat(DEPTH);
    let leaf = env.root.join("etc/pve/deep").join(&deep);
    fs::create_dir_all(&leaf).unwrap();
    fs::write(leaf.join("f.conf"), b"deep\n").unwrap();
    round_trip(&env, "etc/pve");
}

#[test]
fn pmxcfs_extract_of_a_db_deeper_than_the_limit_at_ulimit_1024() {
    let env = Env::new("");
    let db = env.path("config.db");
    // Directories `d` nested DEPTH deep, a file at the bottom (the root is inode 0, as in pmxcfs).
    let script = r#"
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE tree (inode INTEGER PRIMARY KEY NOT NULL, parent INTEGER NOT NULL, version INTEGER NOT NULL, writer INTEGER NOT NULL, mtime INTEGER NOT NULL, type INTEGER NOT NULL, name TEXT NOT NULL, data BLOB)")
n = int(sys.argv[2])
rows = [(i, i - 1, i, 0, 1767225600, 4, "d", None) for i in range(1, n + 1)]
rows.append((n + 1, n, n + 1, 0, 1767225600, 8, "f.conf", b"deep\n"))
rows.append((0, 0, n + 2, 0, 1767225600, 8, "__version__", None))
db.executemany("INSERT INTO tree VALUES (?,?,?,?,?,?,?,?)", rows)
db.commit()
"#;
    // (The script has no single quote.)
    sh_ok(&format!(
        "{} -c '{script}' '{}' {DEPTH}",
        tool("python3"),
        db.display()
    ));
    let dir = env.path("pve");
    let (db, dir_s) = (db.to_str().unwrap(), dir.to_str().unwrap());
    run_limited(&env, &["pmxcfs", "extract", db, dir_s]).expect(0);
    let leaf = dir.join("d/".repeat(DEPTH)).join("f.conf");
    assert_eq!(fs::read(leaf).unwrap(), b"deep\n");
}
