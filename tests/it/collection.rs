//! Collection on a real host (issue 12): excludes, the size guard.

use crate::util::*;
use std::fs;
use std::path::Path;

fn put(root: &Path, rel: &str, len: usize) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, vec![b'x'; len]).unwrap();
}

/// A root home as on a developer's Debian host: config files beside caches and toolchains.
fn root_home(root: &Path) {
    put(root, "root/.bashrc", 10);
    put(root, "root/.config/tool/tool.conf", 20);
    put(root, "root/.cache/pip/a", 1000);
    put(root, "root/.cache/pip/b", 1000);
    put(root, "root/.cargo/registry/cache/c", 3000);
    put(root, "root/.old/notes.txt", 500);
    put(root, "root/.vimrc", 30);
    put(root, "etc/app/keep.conf", 5);
    put(root, "etc/app/tmp/drop.conf", 7);
}

fn stored(archive: &Path) -> Vec<String> {
    let index = index_of(archive);
    let entries = index["entries"].as_array().unwrap();
    entries
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect()
}

/// `keep` are all stored; no stored path contains one of `gone`.
fn stored_exactly(paths: &[String], keep: &[&str], gone: &[&str]) {
    for p in keep {
        assert!(paths.iter().any(|x| x == p), "{p} not stored: {paths:?}");
    }
    for g in gone {
        let bad: Vec<_> = paths.iter().filter(|x| x.contains(g)).collect();
        assert!(bad.is_empty(), "{g}: {bad:?}");
    }
}

/// The excluded entry of `from` (a category or "config") for `exclude`: (entries, bytes).
fn removed(report: &serde_json::Value, from: &str, exclude: &str) -> (u64, u64) {
    let found = report["excluded"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["from"] == from && x["exclude"] == exclude);
    let x = found.unwrap_or_else(|| panic!("no {from} {exclude} in {}", report["excluded"]));
    (x["entries"].as_u64().unwrap(), x["bytes"].as_u64().unwrap())
}

#[test]
fn excludes_name_paths_or_globs_from_catalog_and_config() {
    let mut env = Env::new("");
    root_home(&env.root);
    env.write_config(
        "[collect]\nextra_paths = [\"/etc/app\"]\nexclude = [\"/root/.old\", \"/etc/app/tmp\", \"/root/**/*.conf\", \"/root/.none\"]\n",
    );

    let dry = env.run(&["backup", "--dry-run", "--json"]);
    let dry = dry.expect(0).json();
    // The catalog's own excludes name directories: everything under them goes, counted.
    assert_eq!(removed(&dry, "root-home", "/root/.cache"), (4, 2000));
    assert_eq!(removed(&dry, "root-home", "/root/.cargo"), (4, 3000));
    // Config excludes: a directory path, a glob.
    assert_eq!(removed(&dry, "config", "/root/.old"), (2, 500));
    assert_eq!(removed(&dry, "config", "/etc/app/tmp"), (2, 7));
    assert_eq!(removed(&dry, "config", "/root/**/*.conf"), (1, 20));
    assert_eq!(removed(&dry, "config", "/root/.none"), (0, 0));
    let home = dry["categories"].as_array().unwrap().iter();
    let home = home.clone().find(|c| c["category"] == "root-home").unwrap();
    assert_eq!(home["bytes"], 40, "{home}");

    let text = env.run(&["backup", "--dry-run"]).expect(0).stdout();
    assert!(
        text.contains("excluded /root/.cache (root-home): 4 entries, 2.0 KiB"),
        "{text}"
    );

    env.run(&["backup"]).expect(0);
    let paths = stored(&env.only_archive());
    let keep = [
        "root/.bashrc",
        "root/.vimrc",
        "root/.config/tool",
        "etc/app/keep.conf",
    ];
    let gone = [
        "root/.cache",
        "root/.cargo",
        "root/.old",
        "etc/app/tmp",
        "tool.conf",
    ];
    stored_exactly(&paths, &keep, &gone);

    // catalog shows what each exclude removed, the same figures.
    let cat = env.run(&["catalog", "--json"]).expect(0).json();
    assert_eq!(removed(&cat, "root-home", "/root/.cache"), (4, 2000));
    assert_eq!(removed(&cat, "config", "/root/.old"), (2, 500));
    let text = env.run(&["catalog"]).expect(0).stdout();
    assert!(
        text.contains("exclude /root/.cache (removed 4 entries, 2.0 KiB)"),
        "{text}"
    );
    assert!(
        text.contains("exclude /root/.old (config; removed 2 entries, 500 B)"),
        "{text}"
    );
}

#[test]
fn size_guard_names_the_largest_directories_with_their_exclude_line() {
    let mut env = Env::new("");
    root_home(&env.root);
    put(&env.root, "root/.big/a", 300 << 10);
    put(&env.root, "root/.big/b", 300 << 10);
    put(&env.root, "root/.medium/x/y", 150 << 10);
    put(&env.root, "root/.medium/z", 1 << 10);
    env.write_config("[collect]\nmax_input_size = \"200KiB\"\n");

    let check = env.run(&["check"]);
    let text = check.expect(4).stdout();
    assert!(
        text.contains("✗ input size: 751.5 KiB to collect"),
        "{text}"
    );
    assert!(
        text.contains("above [collect] max_input_size (200.0 KiB)"),
        "{text}"
    );
    let big = text.find("/root/.big  600.0 KiB  exclude = [\"/root/.big\"]");
    // Descends into the directory that holds (nearly) all of its parent.
    let medium = text.find("/root/.medium/x  150.0 KiB  exclude = [\"/root/.medium/x\"]");
    assert!(big.unwrap() < medium.unwrap(), "{text}");

    // The dry run warns and shows the plan; the backup refuses before writing anything.
    let dry = env.run(&["backup", "--dry-run"]);
    let text = dry.expect(3).stdout();
    assert!(text.contains("warning: 751.5 KiB to collect"), "{text}");
    assert!(text.contains("exclude = [\"/root/.big\"]"), "{text}");
    assert!(text.contains("root-home"), "{text}");
    let json = env.run(&["backup", "--dry-run", "--json"]).expect(3).json();
    let warned = json["warnings"][0]["message"].as_str().unwrap();
    assert!(warned.contains("max_input_size"), "{json}");

    let run = env.run(&["backup"]);
    run.expect(4);
    let err = run.stderr();
    assert!(
        err.contains("/root/.big  600.0 KiB  exclude = [\"/root/.big\"]"),
        "{err}"
    );
    assert!(env.archives().is_empty());

    // Following the advice makes it fit.
    env.write_config(
        "[collect]\nmax_input_size = \"200KiB\"\nexclude = [\"/root/.big\", \"/root/.medium/x\"]\n",
    );
    env.run(&["check"]).expect(0);
    env.run(&["backup"]).expect(0);
    env.only_archive();
}

#[test]
fn size_guard_default_is_512_mib() {
    let env = Env::new("");
    let shown = env.run(&["config", "show", "--json"]).expect(0).json();
    assert_eq!(shown["collect"]["max_input_size"], "512MiB", "{shown}");
}

/// A sparse file of `len` bytes (a vendored binary, a big blob) with a marker at its start.
fn sparse(root: &Path, rel: &str, len: u64) {
    put(root, rel, 16);
    fs::OpenOptions::new()
        .write(true)
        .open(root.join(rel))
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn root_home_is_config_and_large_scripts_are_listed_not_stored() {
    let env = Env::new("");
    let r = &env.root;
    put(r, "root/.bashrc", 10);
    put(r, "root/.config/htop/htoprc", 10);
    put(r, "root/.local/bin/tool.sh", 10);
    put(r, "root/.local/lib/python3/site/big.py", 10);
    put(r, "root/.ansible/hosts", 10);
    sparse(r, "root/.ollama/models/blob", 17 << 20);
    put(r, "root/.ollama/id", 10);
    for junk in [
        "root/.cache/pip/x",
        "root/.vscode-server/bin/node",
        "root/.rustup/toolchains/x",
        "root/.npm/_cacache/x",
        "root/.local/share/Trash/files/x",
        "root/.bash_history",
        "root/.python_history",
    ] {
        put(r, junk, 10);
    }
    put(r, "home/alice/.ssh/authorized_keys", 10);
    put(r, "home/alice/notes.txt", 10);
    put(r, "usr/local/bin/backup.sh", 10);
    sparse(r, "usr/local/bin/vendored", 5 << 20);

    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    let paths = stored(&archive);
    let keep = [
        "root/.bashrc",
        "root/.config/htop/htoprc",
        "root/.local/bin/tool.sh",
        "root/.ansible/hosts",
        "home/alice/.ssh/authorized_keys",
        "usr/local/bin/backup.sh",
        "proxkeep/listed-files.json",
    ];
    let gone = [
        "root/.ollama",
        "root/.cache",
        "root/.vscode-server",
        "root/.rustup",
        "root/.npm",
        "root/.local/share/Trash",
        "root/.local/lib",
        "_history",
        "home/alice/notes.txt",
        "usr/local/bin/vendored",
    ];
    stored_exactly(&paths, &keep, &gone);
    // The vendored binary: path, size and SHA-256, not its bytes.
    let out = std::process::Command::new(tool("tar"))
        .arg("-xOf")
        .arg(&archive)
        .arg("proxkeep/listed-files.json")
        .output()
        .unwrap();
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["path"], "/usr/local/bin/vendored", "{listed}");
    assert_eq!(listed[0]["size"], 5 << 20);
    let sha = sha256_file(&r.join("usr/local/bin/vendored"));
    assert_eq!(listed[0]["sha256"], sha.as_str());
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    env.run(&["verify", archive.to_str().unwrap()]).expect(0);

    // catalog shows the default excludes and what was left out by size, with figures.
    let text = env.run(&["catalog"]).expect(0).stdout();
    for line in [
        "exclude /root/.vscode-server (removed 3 entries, 10 B)",
        "exclude /root/.*_history (removed 2 entries, 20 B)",
        "glob    /root/.* (a directory over 16.0 MiB left out)",
        "left out /root/.ollama (over 16.0 MiB) (4 entries, 17.0 MiB)",
        "path    /usr/local/bin (a file over 4.0 MiB listed, not stored)",
        "left out /usr/local/bin/vendored (listed with its SHA-256, not stored: over 4.0 MiB) (1 entries, 5.0 MiB)",
        "glob    /home/*/.ssh",
    ] {
        assert!(text.contains(line), "{line} not in:\n{text}");
    }
    let dry = env.run(&["backup", "--dry-run", "--json"]).expect(0).json();
    assert_eq!(
        removed(&dry, "root-home", "/root/.ollama (over 16.0 MiB)"),
        (4, (17 << 20) + 10)
    );
}

#[test]
fn root_and_every_parent_of_a_collected_path_keep_their_metadata() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let env = Env::new("");
    let r = &env.root;
    put(r, "root/.bashrc", 10);
    put(r, "usr/local/bin/tool.sh", 10);
    for (dir, mode) in [("root", 0o700), ("usr/local", 0o750)] {
        fs::set_permissions(r.join(dir), fs::Permissions::from_mode(mode)).unwrap();
    }
    fix_mtimes(r);

    env.run(&["backup"]).expect(0);
    let archive = env.only_archive();
    stored_exactly(&stored(&archive), &["root", "usr", "usr/local"], &[]);
    let target = env.path("target");
    fs::create_dir(&target).unwrap();
    let args = ["--path", "/", "--yes", "--no-safety-backup"];
    let (a, t) = (archive.to_str().unwrap(), target.to_str().unwrap());
    let mut cmd = vec!["restore", a, "--target", t];
    cmd.extend(args);
    env.run(&cmd).expect(0);
    for (dir, mode) in [("root", 0o700), ("usr", 0o755), ("usr/local", 0o750)] {
        let md = fs::symlink_metadata(target.join(dir)).unwrap();
        assert_eq!(md.mode() & 0o7777, mode, "{dir}");
        assert_eq!(md.mtime(), FIXTURE_MTIME, "{dir}");
    }
}
