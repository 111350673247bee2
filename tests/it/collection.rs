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
    for p in [
        "root/.bashrc",
        "root/.vimrc",
        "root/.config/tool",
        "etc/app/keep.conf",
    ] {
        assert!(paths.iter().any(|x| x == p), "{p} not stored: {paths:?}");
    }
    for gone in [
        "root/.cache",
        "root/.cargo",
        "root/.old",
        "etc/app/tmp",
        "tool.conf",
    ] {
        let bad: Vec<_> = paths.iter().filter(|x| x.contains(gone)).collect();
        assert!(bad.is_empty(), "{gone}: {bad:?}");
    }

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
