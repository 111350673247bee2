//! Hostile input (issue 16): names that would drive a terminal, oversized archive metadata, empty and non-UTF-8
//! files, and a restore with no terminal to confirm on.

use crate::util::*;
use std::ffi::OsStr;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Names that are each a terminal attack or a line-breaker: (raw name, how text output must show it).
const NAMES: [(&[u8], &str); 5] = [
    (b"a\nb", "a\\nb"),
    (b"r\rx", "r\\rx"),
    (b"\x1b[31mred", "\\033[31mred"),
    (b"caf\xe9.conf", "caf\\351.conf"),
    (b"del\x7f\\", "del\\177\\\\"),
];

fn raw(dir: &Path, name: &[u8]) -> PathBuf {
    dir.join(OsStr::from_bytes(name))
}

/// The bytes a terminal would act on (ESC, CR, BEL, other C0 but newline and tab, DEL, C1 as UTF-8).
#[track_caller]
fn assert_inert(what: &str, out: &[u8]) {
    let text = String::from_utf8_lossy(out);
    let bad = text
        .char_indices()
        .find(|(_, c)| c.is_control() && *c != '\n');
    if let Some((i, c)) = bad {
        let at = &text[i.saturating_sub(60)..i];
        panic!("{what}: raw control character {c:?} after {at:?}\n{text}");
    }
    assert!(!text.contains('\u{fffd}'), "{what}: lossy name\n{text}");
}

fn hostile_tree(env: &mut Env) -> PathBuf {
    let dir = env.root.join("srv/evil");
    fs::create_dir_all(&dir).unwrap();
    for (name, _) in NAMES {
        fs::write(raw(&dir, name), b"one\n").unwrap();
    }
    std::os::unix::fs::symlink(OsStr::from_bytes(b"tgt\x1b]0;t\x07"), raw(&dir, b"ln\x1b"))
        .unwrap();
    sh_ok(&format!("mkfifo '{}'", raw(&dir, b"fifo\x1b[2J").display()));
    env.write_config("[collect]\nextra_paths = [\"/srv/evil\"]\n");
    dir
}

#[test]
fn names_with_control_characters_are_escaped_in_text_and_exact_in_json() {
    let mut env = Env::new("");
    let dir = hostile_tree(&mut env);
    let b = env.run(&["backup"]);
    b.expect(0);
    assert_inert("backup's log", &b.0.stderr);

    let ls = env.run(&["ls", "latest", "srv"]);
    ls.expect(0);
    assert_inert("ls", &ls.0.stdout);
    let text = ls.stdout();
    // The parent srv (stored with its metadata), the directory, five files and the link: one line each.
    assert_eq!(text.lines().count(), 8, "{text}");
    for (_, shown) in NAMES {
        assert!(
            text.contains(&format!(" srv/evil/{shown}\n")),
            "{shown}:\n{text}"
        );
    }
    assert!(
        text.contains(" srv/evil/ln\\033 -> tgt\\033]0;t\\a\n"),
        "{text}"
    );

    // JSON carries the exact name (escaped by JSON only), and the exact bytes of a non-UTF-8 one.
    let doc = env.run(&["--json", "ls", "latest", "srv"]).json();
    let paths: Vec<&str> = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap())
        .collect();
    for p in [
        "srv/evil/a\nb",
        "srv/evil/r\rx",
        "srv/evil/\x1b[31mred",
        "srv/evil/del\x7f\\",
    ] {
        assert!(paths.contains(&p), "{p:?} in {paths:?}");
    }
    let hex = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["path_hex"].as_str())
        .collect::<Vec<_>>();
    assert_eq!(hex, ["7372762f6576696c2f636166e92e636f6e66"]);

    let show = env.run(&["show", "latest"]);
    show.expect(0);
    assert_inert("show", &show.0.stdout);
    assert!(
        show.stdout().contains("  /srv/evil/fifo\\033[2J (fifo)\n"),
        "{}",
        show.stdout()
    );
    // Warnings come from the index: one crafted with hostile text.
    let warned = padded_archive(&env, "warn", 0);
    let show = env.run(&["show", warned.to_str().unwrap()]);
    show.expect(0);
    assert_inert("show's warnings", &show.0.stdout);
    let line = "  etc/\\033[2Jx\\ny: changed\\r while read\n";
    assert!(show.stdout().contains(line), "{}", show.stdout());

    // diff against the host after a change, a removal and an addition.
    fs::write(raw(&dir, b"\x1b[31mred"), b"two\n").unwrap();
    fs::remove_file(raw(&dir, b"a\nb")).unwrap();
    fs::write(raw(&dir, b"new\r\x1b[2K"), b"x\n").unwrap();
    let d = env.run(&["diff", "latest", "--live", "--patch"]);
    d.expect(0);
    assert_inert("diff", &d.0.stdout);
    let text = d.stdout();
    for line in [
        "  ~ srv/evil/\\033[31mred: content",
        "  - srv/evil/a\\nb: removed",
        "  + srv/evil/new\\r\\033[2K: added",
        "--- a/srv/evil/\\033[31mred",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }

    // The restore plan names every entry it will write, escaped; so does a dry run's.
    let target = env.path("target");
    fs::create_dir_all(&target).unwrap();
    let t = target.to_str().unwrap();
    let plan = env.run(&[
        "restore",
        "latest",
        "--target",
        t,
        "--path",
        "/srv",
        "--dry-run",
    ]);
    plan.expect(0);
    assert_inert("restore plan", &plan.0.stdout);
    let text = plan.stdout();
    for (_, shown) in NAMES {
        assert!(
            text.contains(&format!(" /srv/evil/{shown}\n")),
            "{shown}:\n{text}"
        );
    }
    let done = env.run(&[
        "restore", "latest", "--target", t, "--path", "/srv", "--yes",
    ]);
    done.expect(0);
    assert_inert("restore", &done.0.stdout);
    assert_inert("restore's log", &done.0.stderr);
    assert_eq!(
        fs::read(raw(&target, b"srv/evil/caf\xe9.conf")).unwrap(),
        b"one\n"
    );
    let x = env.path("x");
    let ex = env.run(&["extract", "latest", x.to_str().unwrap()]);
    ex.expect(0);
    assert_inert("extract", &ex.0.stdout);
    assert_eq!(fs::read(raw(&x, b"srv/evil/r\rx")).unwrap(), b"one\n");
}

/// A proxkeep-looking archive (zstd) whose meta.json or index.json (`which`) is padded to `mib` MiB of valid JSON.
const PADDED: &str = r#"
import hashlib, io, json, sys, tarfile
which, mib = sys.argv[1], int(sys.argv[2])
meta = {"format_version": 1, "tool": "proxkeep", "tool_version": "0.1.0", "host": "evil", "role": "pve",
        "created": "2026-11-28T00:00:00Z", "created_unix": 1795830000, "categories": ["extra"],
        "compression": {"algorithm": "zstd", "level": 3}}
data = b"ok\n"
entries = [{"path": "etc/ok.conf", "category": "extra", "kind": "file", "size": len(data), "mode": "0644",
            "uid": 0, "gid": 0, "mtime": 1767225600, "sha256": hashlib.sha256(data).hexdigest()}]
index = {"format_version": 1, "entries": entries,
         "totals": {"entries": 1, "files": 1, "dirs": 0, "symlinks": 0, "bytes": len(data), "warnings": 0}}
(meta if which == "meta" else index)["pad"] = "x" * (mib << 20)
if which == "warn":
    index["warnings"] = [{"path": "etc/\x1b[2Jx\ny", "message": "changed\r while read"}]
def add(tf, name, body):
    t = tarfile.TarInfo(name); t.size = len(body); t.mode = 0o644; t.mtime = 1767225600
    tf.addfile(t, io.BytesIO(body))
with tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT) as tf:
    add(tf, "proxkeep/meta.json", json.dumps(meta).encode())
    add(tf, "etc/ok.conf", data)
    add(tf, "proxkeep/index.json", json.dumps(index).encode())
"#;

fn padded_archive(env: &Env, which: &str, mib: u32) -> PathBuf {
    fs::create_dir_all(&env.backups).unwrap();
    let day = match (which, mib) {
        ("warn", _) => 11,
        (_, 0 | 1) => 10,
        _ => 20,
    };
    let out = env
        .backups
        .join(format!("evil-pve-202611{day}T000000Z.tar.zst"));
    let script = env.path("padded.py");
    fs::write(&script, PADDED).unwrap();
    sh_ok(&format!(
        "{} '{}' {which} {mib} | {} -q -3 -o '{}'",
        tool("python3"),
        script.display(),
        tool("zstd"),
        out.display()
    ));
    out
}

/// `env.run(args)` with the process's data size (heap included) limited to `mib` MiB (`ulimit -d`).
fn run_within(env: &Env, mib: u64, args: &[&str]) -> Run {
    let c = env.cmd();
    let mut sh = std::process::Command::new("sh");
    let limit = format!("ulimit -d {}; exec \"$0\" \"$@\"", mib * 1024);
    sh.args(["-c", &limit])
        .arg(c.get_program())
        .args(c.get_args())
        .args(args);
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => sh.env(k, v),
            None => sh.env_remove(k),
        };
    }
    Run(sh.output().unwrap())
}

#[test]
fn oversized_meta_and_index_are_damage_and_not_read_whole() {
    let env = Env::new("");
    // Small enough to pass: a control for the crafted archive itself.
    let fine = padded_archive(&env, "meta", 1);
    env.run(&["verify", fine.to_str().unwrap()]).expect(0);
    for which in ["meta", "index"] {
        let archive = padded_archive(&env, which, 100);
        let a = archive.to_str().unwrap();
        let entry = format!("proxkeep/{which}.json");
        let target = env.path(&format!("target-{which}"));
        fs::create_dir_all(&target).unwrap();
        let t = target.to_str().unwrap();
        let x = env.path(&format!("x-{which}"));
        let x = x.to_str().unwrap();
        for args in [
            vec!["show", a],
            vec!["verify", a],
            vec!["diff", a, fine.to_str().unwrap()],
            vec!["restore", a, "--target", t, "--yes"],
            vec!["extract", a, x],
        ] {
            // Less memory than the 100 MiB document: reading it whole would fail.
            let r = run_within(&env, 96, &args);
            r.expect(6);
            let err = r.stderr();
            let said = err.contains(&entry) && err.contains("too large: 100.0 MiB");
            assert!(
                said || r.stdout().contains("too large: 100.0 MiB"),
                "{args:?}: {err}{}",
                r.stdout()
            );
        }
        assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
        if which == "meta" {
            // `list` reads only meta.json: the archive is listed as damaged, and why.
            let l = run_within(&env, 96, &["--json", "list", "--all-hosts"]).json();
            let evil = l
                .as_array()
                .unwrap()
                .iter()
                .find(|e| e["name"].as_str().unwrap().contains("20261120"));
            let evil = evil.expect("listed");
            assert_eq!(evil["state"], "damaged", "{l}");
            assert!(
                evil["reason"].as_str().unwrap().contains("too large"),
                "{l}"
            );
        }
        fs::remove_file(&archive).unwrap();
    }
}

#[test]
fn ls_of_an_empty_file_named_like_an_archive_is_damage() {
    let env = Env::new("");
    fs::create_dir_all(&env.backups).unwrap();
    for name in [
        "host-pve-20261101T000000Z.tar.zst",
        "host-pve-20261102T000000Z.tar",
    ] {
        let a = env.backups.join(name);
        fs::write(&a, b"").unwrap();
        let a = a.to_str().unwrap();
        for cmd in ["ls", "show", "verify"] {
            let r = env.run(&[cmd, a]);
            r.expect(6);
            let said = format!("{}{}", r.stdout(), r.stderr());
            assert!(
                said.contains("proxkeep/meta.json is missing"),
                "{cmd} {name}: {said}"
            );
        }
        let r = env.run(&["--json", "ls", a]);
        r.expect(6);
        assert_eq!(r.json()["entries"], serde_json::json!([]), "{}", r.stdout());
    }
}

#[test]
fn a_config_file_that_is_not_utf8_names_the_line_and_byte_column() {
    let env = Env::new("");
    let mut text = fs::read(&env.config).unwrap();
    // Line 6 (after the five the test env writes): each `é` is two bytes, so the bad one is character 14, byte 16.
    text.extend_from_slice(b"# r\xc3\xa9sum\xc3\xa9 for \xff\n");
    fs::write(&env.config, text).unwrap();
    for args in [
        &["list"][..],
        &["check"],
        &["backup", "--dry-run"],
        &["config", "show"],
    ] {
        let r = env.run(args);
        r.expect(2);
        let want = format!(
            "{}:6:14: not UTF-8: byte 0xff at byte column 16",
            env.config.display()
        );
        assert!(r.stderr().contains(&want), "{args:?}: {}", r.stderr());
    }
}

#[test]
fn restore_without_yes_and_without_a_terminal_is_a_usage_error() {
    let env = Env::new("pve-node");
    env.run(&["backup"]).expect(0);
    let target = env.path("target");
    fs::create_dir_all(&target).unwrap();
    // stdin is /dev/null: no terminal to ask on.
    let r = env.run(&[
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
        "--only",
        "ssh",
    ]);
    r.expect(2);
    let err = r.stderr();
    assert!(
        err.contains("pass --yes") && err.contains("--dry-run"),
        "{err}"
    );
    assert!(err.contains("nothing was changed"), "{err}");
    assert_eq!(fs::read_dir(&target).unwrap().count(), 0);
    let j = env.run(&[
        "--json",
        "restore",
        "latest",
        "--target",
        target.to_str().unwrap(),
    ]);
    j.expect(2);
    assert_eq!(j.json()["error"]["kind"], "usage", "{}", j.stdout());
}

/// A hostile name in an archive that restore refuses: the error names it, escaped.
#[test]
fn a_refused_hostile_name_is_escaped_in_the_error() {
    let env = Env::new("");
    let out = env.path("hostile.tar");
    let script = r#"
import io, json, sys, tarfile
meta = json.dumps({"format_version": 1, "tool": "proxkeep", "tool_version": "0.1.0", "host": "evil",
    "role": "pve", "created": "2026-11-28T00:00:00Z", "created_unix": 1795830000, "categories": [],
    "compression": {"algorithm": "none", "level": 0}}).encode()
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as tf:
    for name, body in [("proxkeep/meta.json", meta), ("../\x1b[2Jgone\n", b"x")]:
        t = tarfile.TarInfo(name); t.size = len(body); tf.addfile(t, io.BytesIO(body))
"#;
    let status = std::process::Command::new(tool("python3"))
        .args(["-c", script])
        .arg(&out)
        .status()
        .unwrap();
    assert!(status.success());
    let x = env.path("x");
    let r = env.run(&["extract", out.to_str().unwrap(), x.to_str().unwrap()]);
    r.expect(6);
    assert_inert("extract's error", &r.0.stderr);
    assert!(r.stderr().contains("[2Jgone\\n"), "{}", r.stderr());
}
