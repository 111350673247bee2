//! The scan and the storing of its items, against small trees made here.

use super::append::*;
use super::*;
use crate::archive::session::Spec;
use crate::output::{Log, Redactor};
use std::os::unix::fs::symlink;

#[test]
fn trees_are_walked_depth_first_in_name_order_without_what_is_left_out() {
    let t = tempfile::tempdir().unwrap();
    let r = t.path().join("root");
    for d in [
        "srv/t/a/b/c",
        "srv/t/a/empty",
        "srv/t/skip/x",
        "srv/t/backups/h",
        "srv/u/z",
    ] {
        fs::create_dir_all(r.join(d)).unwrap();
    }
    let files = [
        "srv/t/a/b/c/deep",
        "srv/t/a/b/f.tmp",
        "srv/t/a/b/g",
        "srv/t/a/z",
        "srv/t/skip/x/y",
        "srv/t/backups/h/x.tar.zst",
        "srv/t/m",
        "srv/u/z/1",
        "srv/u/0",
        "srv/file",
    ];
    for f in files {
        fs::write(r.join(f), f).unwrap();
    }
    symlink("a", r.join("srv/t/link")).unwrap();
    let root = Root::new(r.clone());
    let mut config = Config {
        backup_dir: r.join("srv/t/backups"),
        ..Config::default()
    };
    config.collect.exclude = vec!["/srv/t/skip".into(), "/srv/**/*.tmp".into()];
    let extra = ["/srv/t", "/srv/file", "/srv/u"];
    config.collect.extra_paths = extra.iter().map(PathBuf::from).collect();
    let plan = scan(&root, &HostFacts::detect(&root), &config);
    let planned: Vec<_> = (plan.items.iter())
        .filter(|i| i.category.as_ref() == catalog::EXTRA)
        .map(|i| i.host_path.to_str().unwrap())
        .collect();
    let want = [
        "/srv",
        "/srv/t",
        "/srv/t/a",
        "/srv/t/a/b",
        "/srv/t/a/b/c",
        "/srv/t/a/b/c/deep",
        "/srv/t/a/b/g",
        "/srv/t/a/empty",
        "/srv/t/a/z",
        "/srv/t/link",
        "/srv/t/m",
        "/srv/file",
        "/srv/u",
        "/srv/u/0",
        "/srv/u/z",
        "/srv/u/z/1",
    ];
    assert_eq!(planned, want);
}

/// `<t>/root/srv/mut/d/inner.txt` (inside) and `<t>/outside/inner.txt` (what must never be read).
fn host() -> (tempfile::TempDir, Root) {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("root/srv/mut/d");
    fs::create_dir_all(&d).unwrap();
    fs::write(d.join("inner.txt"), "inside\n").unwrap();
    fs::create_dir_all(t.path().join("outside")).unwrap();
    fs::write(t.path().join("outside/inner.txt"), "OUTSIDE SECRET\n").unwrap();
    let root = Root::new(t.path().join("root"));
    (t, root)
}

/// Swap `srv/mut/d` for a symlink to the outside directory.
fn swap(t: &Path) {
    let d = t.join("root/srv/mut/d");
    fs::rename(&d, t.join("root/srv/mut/d.was")).unwrap();
    symlink(t.join("outside"), &d).unwrap();
}

#[test]
fn a_directory_swapped_for_a_symlink_after_the_scan_is_a_warning_not_outside_content() {
    // Item by item, and through the reader thread (which keeps the last parent directory's handle).
    for pipelined in [false, true] {
        swapped_after_the_scan(pipelined);
    }
}

fn swapped_after_the_scan(pipelined: bool) {
    let (t, root) = host();
    let facts = HostFacts::detect(&root);
    let mut config = Config::default();
    config.collect.extra_paths = vec![PathBuf::from("/srv/mut")];
    let plan = scan(&root, &facts, &config);
    let planned: Vec<_> = plan.items.iter().map(|i| i.host_path.clone()).collect();
    assert!(planned.contains(&PathBuf::from("/srv/mut/d/inner.txt")));
    swap(t.path());

    let out = t.path().join("out");
    fs::create_dir_all(&out).unwrap();
    let (log, cancel) = (Log::new(-1, Redactor::default()), AtomicBool::new(false));
    let spec = Spec {
        facts: &facts,
        root: root.dir(),
        purpose: "backup",
        categories: plan.categories.clone(),
        pve_tree_from_db: false,
        compression: crate::archive::compression::Compression::None,
        level: 0,
        threads: 1,
        seal: None,
        progress: false,
    };
    let time = jiff::Timestamp::now();
    let mut s = Session::create(&out, "t.tar".into(), time, spec, &log, &cancel).unwrap();
    if pipelined {
        append_items(&mut s, &root, &plan.items, None).unwrap();
    } else {
        for item in &plan.items {
            append_item(&mut s, &root, item, None).unwrap();
        }
    }
    let warned: Vec<(String, String)> = s
        .index
        .warnings
        .iter()
        .map(|w| (w.path.clone().unwrap_or_default(), w.message.clone()))
        .collect();
    let done = s.finish().unwrap();
    let index = crate::archive::reader::verify(&done.path)
        .unwrap()
        .index
        .unwrap();
    let stored: Vec<String> = index.entries.iter().map(|e| e.path.clone()).collect();

    assert!(
        !stored.iter().any(|p| p.starts_with("srv/mut/d/")),
        "{stored:?}"
    );
    let warned_for = |p: &str| warned.iter().find(|w| w.0 == p).map(|w| w.1.clone());
    assert_eq!(
        warned_for("/srv/mut/d/inner.txt").as_deref(),
        Some(THROUGH_LINK)
    );
    // The directory is a symlink now: stored as what it is, the link itself.
    assert!(stored.contains(&"srv/mut/d".to_string()) && warned_for("/srv/mut/d").is_none());
    let bytes = fs::read(&done.path).unwrap();
    let leaked = bytes.windows(14).any(|w| w == b"OUTSIDE SECRET");
    assert!(!leaked, "the outside file's content is in the archive");
    assert!(crate::archive::reader::verify(&done.path).unwrap().ok());
}

#[test]
fn both_ways_of_opening_refuse_a_symlink_in_any_component() {
    let (t, root) = host();
    let base = root.dir_fd().unwrap();
    let file = Path::new("srv/mut/d/inner.txt");
    let read = |fd: OwnedFd| io::read_to_string(fs::File::from(fd)).unwrap();
    assert_eq!(
        read(open_walk(base, file, OFlags::RDONLY).unwrap()),
        "inside\n"
    );
    let via_openat2 = open_beneath_at(base, file, OFlags::RDONLY).unwrap();
    assert_eq!(read(via_openat2), "inside\n");
    // The last component a symlink: O_PATH opens the link itself, anything else is refused.
    symlink("inner.txt", t.path().join("root/srv/mut/d/link")).unwrap();
    let link = Path::new("srv/mut/d/link");
    for open in [open_walk, open_beneath_at] {
        let fd = open(base, link, OFlags::PATH | OFlags::NOFOLLOW).unwrap();
        assert!(fs::File::from(fd).metadata().unwrap().is_symlink());
        let e = open(base, link, OFlags::RDONLY | OFlags::NOFOLLOW).unwrap_err();
        assert_eq!(not_stored(e, "unreadable"), THROUGH_LINK);
    }
    swap(t.path());
    for open in [open_walk, open_beneath_at] {
        let e = open(base, file, OFlags::RDONLY | OFlags::NOFOLLOW).unwrap_err();
        assert_eq!(not_stored(e, "unreadable"), THROUGH_LINK);
        let e = open(
            base,
            Path::new("srv/mut/d"),
            OFlags::PATH | OFlags::NOFOLLOW,
        );
        assert!(fs::File::from(e.unwrap()).metadata().unwrap().is_symlink());
    }
    // A file where a directory was.
    fs::remove_file(t.path().join("root/srv/mut/d")).unwrap();
    fs::write(t.path().join("root/srv/mut/d"), "x").unwrap();
    for open in [open_walk, open_beneath_at] {
        let e = open(base, file, OFlags::RDONLY | OFlags::NOFOLLOW).unwrap_err();
        assert_eq!(not_stored(e, "unreadable"), THROUGH_LINK);
    }
}

/// The link's own xattrs, and the directory's, through their `O_PATH` handles.
#[test]
fn xattrs_of_links_and_directories_are_read_through_their_handles() {
    let (t, root) = host();
    let link = t.path().join("root/srv/mut/d/link");
    symlink("inner.txt", &link).unwrap();
    let set = |p: &Path, name: &str, follow: bool| {
        let flags = if follow {
            ""
        } else {
            ", follow_symlinks=False"
        };
        let py = format!(
            "import os; os.setxattr('{}', '{name}', b'v'{flags})",
            p.display()
        );
        let ok = std::process::Command::new("python3")
            .args(["-c", &py])
            .status();
        assert!(ok.unwrap().success());
    };
    set(&link, "trusted.link", false);
    set(&t.path().join("root/srv/mut/d"), "trusted.dir", true);
    for (path, name) in [
        ("/srv/mut/d/link", "trusted.link"),
        ("/srv/mut/d", "trusted.dir"),
    ] {
        let node = open_beneath(&root, Path::new(path), OFlags::PATH).unwrap();
        let want = vec![(name.to_string(), b"v".to_vec())];
        assert_eq!(xattrs_node(&fs::File::from(node)), want);
    }
}
