//! `check`, `catalog` and `config show`.

use crate::util::*;
use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

#[test]
fn catalog_lists_categories_and_what_this_host_has() {
    let env = Env::new("pve-node");
    let r = env.run(&["catalog"]);
    r.expect(0);
    let out = r.stdout();
    for cat in [
        "pve-cluster",
        "corosync",
        "pbs-config",
        "network",
        "storage-stack",
        "root-home",
        "inventory",
    ] {
        assert!(out.contains(cat), "{cat} missing:\n{out}");
    }
    assert!(out.contains("not collected on a pve host"), "{out}");
    let j = env.run(&["catalog", "--json"]).json();
    assert_eq!(j["role"], "pve");
    let cats = j["categories"].as_array().unwrap();
    let pve = cats.iter().find(|c| c["name"] == "pve-cluster").unwrap();
    assert_eq!(pve["active"], true);
    assert!(pve["found"]["files"].as_u64().unwrap() > 100);
    let pbs = cats.iter().find(|c| c["name"] == "pbs-config").unwrap();
    assert_eq!(pbs["active"], false);
}

#[test]
fn config_show_prints_the_effective_config() {
    let env = Env::new("");
    let r = env.run(&["config", "show"]);
    r.expect(0);
    let out = r.stdout();
    assert!(out.contains(&env.backups.display().to_string()), "{out}");
    assert!(
        out.contains("algorithm = \"zstd\"") && out.contains("level = 3"),
        "{out}"
    );
    // A missing explicit config is an error (exit 2).
    let r = Run(std::process::Command::new(bin())
        .args(["--config", "/nonexistent/proxkeep.toml", "config", "show"])
        .output()
        .unwrap());
    r.expect(2);
}

#[test]
fn check_prints_a_line_per_check_and_fails_with_4() {
    let env = Env::new("pve-node");
    make_config_db(&env.root);
    let r = env.run(&["check"]);
    r.expect(0);
    let out = r.stdout();
    assert!(
        out.contains("✓ backup directory") && out.contains("✓ lock") && out.contains("✓ config.db"),
        "{out}"
    );
    // pmxcfs down: /etc/pve empty → a warning with the fix (the backup warns the same way, issue 12).
    std::fs::rename(env.root.join("etc/pve"), env.path("pve-away")).unwrap();
    std::fs::create_dir(env.root.join("etc/pve")).unwrap();
    let r = env.run(&["check"]);
    r.expect(3);
    assert!(
        r.stdout().contains("! /etc/pve") && r.stdout().contains("systemctl start pve-cluster"),
        "{}",
        r.stdout()
    );
}

/// Feed a command's stdout to `python3 -m json.tool`: it must be exactly one JSON document.
fn one_document(what: &str, r: &Run) -> serde_json::Value {
    use std::io::Write;
    let mut py = std::process::Command::new(tool("python3"))
        .args(["-m", "json.tool"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    py.stdin.take().unwrap().write_all(&r.0.stdout).unwrap();
    let out = py.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{what}: stdout is not one JSON document ({}):\n{}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr),
        r.stdout(),
        r.stderr()
    );
    r.json()
}

#[test]
fn every_command_prints_one_json_document_and_errors_as_json() {
    let mut env = Env::new("pve-node");
    make_config_db(&env.root);
    env.run(&["backup"]).expect(0);
    let latest = env.only_archive().display().to_string();
    let key = env.path("id.key").display().to_string();
    let out = env.path("out").display().to_string();
    let target = env.path("target");
    std::fs::create_dir(&target).unwrap();
    let target = target.display().to_string();
    let db = env
        .root
        .join("var/lib/pve-cluster/config.db")
        .display()
        .to_string();
    let pmx = env.path("pmx").display().to_string();
    for (args, code) in [
        (vec!["check"], 0),
        (vec!["catalog"], 0),
        (vec!["config", "show"], 0),
        (vec!["backup", "--dry-run"], 0),
        (vec!["list"], 0),
        (vec!["show", "latest"], 0),
        (vec!["ls", "latest", "etc/pve"], 0),
        (vec!["cat", "latest", "etc/hostname"], 0),
        (vec!["verify"], 0),
        (vec!["verify", "--all"], 0),
        (vec!["diff", "latest", &latest], 0),
        (vec!["diff", "latest", "--live"], 0),
        (vec!["prune", "--dry-run"], 0),
        (vec!["key", "generate", "--out", &key], 0),
        (vec!["extract", "latest", &out], 0),
        (
            vec!["restore", "latest", "--target", &target, "--dry-run"],
            0,
        ),
        (
            vec![
                "restore",
                "latest",
                "--target",
                &target,
                "--yes",
                "--no-safety-backup",
            ],
            0,
        ),
        (vec!["pmxcfs", "extract", &db, &pmx], 0),
        (vec!["backup"], 0),
        // Failures: the error document, with the exit code.
        (vec!["key", "generate"], 2),
        (vec!["show", "no-such-archive"], 2),
        (vec!["ls", "latest", "no/such/prefix"], 1),
        (vec!["notify", "test"], 2),
        (vec!["decrypt", "latest", &out], 2),
    ] {
        let mut full = vec!["--json"];
        full.extend(&args);
        let r = env.run(&full);
        let what = args.join(" ");
        assert_eq!(r.code(), code, "{what}: {}\n{}", r.stdout(), r.stderr());
        let doc = one_document(&what, &r);
        if code == 0 {
            assert!(
                doc.get("error").is_none() || !doc["error"].is_object(),
                "{what}: {doc}"
            );
        } else {
            assert_eq!(doc["error"]["code"], code, "{what}: {doc}");
            assert!(
                doc["error"]["kind"].is_string() && doc["error"]["message"].is_string(),
                "{doc}"
            );
        }
    }
    // config show: the effective config, as JSON; key generate: the recipient and the file, not the secret.
    let cfg = env.run(&["--json", "config", "show"]).json();
    assert_eq!(cfg["compression"]["algorithm"], "zstd", "{cfg}");
    let key2 = env.path("id2.key").display().to_string();
    let r = env.run(&["--json", "key", "generate", "--out", &key2]);
    let k = r.json();
    assert!(k["recipient"].as_str().unwrap().starts_with("age1"), "{k}");
    assert_eq!(k["identity_file"], key2.as_str());
    assert!(!r.stdout().contains("AGE-SECRET-KEY"));
    // A failed backup: one document, the error and the checks that failed.
    env.write_config("[encryption]\nrecipients_file = \"/nonexistent/recipients\"\n");
    let r = env.run(&["--json", "backup"]);
    let doc = one_document("backup (bad recipients)", &r);
    assert_eq!(doc["error"]["code"], r.code(), "{doc}");
}

#[test]
fn a_closed_stdout_ends_quietly() {
    let mut env = Env::new("pve-node");
    // Enough entries that the output outgrows a pipe's buffer.
    let many = env.root.join("srv/many");
    std::fs::create_dir_all(&many).unwrap();
    for i in 0..3000 {
        std::fs::write(many.join(format!("file-{i:04}.conf")), format!("{i}\n")).unwrap();
    }
    env.write_config("[collect]\nextra_paths = [\"/srv/many\"]\n");
    env.run(&["backup"]).expect(0);
    std::fs::remove_dir_all(&many).unwrap();
    let target = env.path("target");
    std::fs::create_dir(&target).unwrap();
    let target = target.display().to_string();
    for (args, code) in [
        (
            vec!["restore", "latest", "--target", &target, "--dry-run"],
            0,
        ),
        (vec!["catalog"], 0),
        (vec!["ls", "latest"], 0),
        (vec!["list"], 0),
        (vec!["diff", "latest", "--live"], 0),
        (vec!["--json", "ls", "latest"], 0),
    ] {
        for reader in ["head -n 1", "true"] {
            let mut cmd = env.cmd();
            cmd.args(&args);
            let line: Vec<String> = std::iter::once(cmd.get_program())
                .chain(cmd.get_args())
                .map(|a| format!("'{}'", a.to_string_lossy()))
                .collect();
            let line = line.join(" ");
            let rc = env.path("rc");
            let script = format!(
                "{{ {line} 2>'{err}'; echo $? >'{rc}'; }} | {reader} >/dev/null",
                err = env.path("err").display(),
                rc = rc.display()
            );
            sh_ok(&script);
            let got: i32 = std::fs::read_to_string(&rc)
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            let err = std::fs::read_to_string(env.path("err")).unwrap();
            let what = format!("{} | {reader}", args.join(" "));
            assert!(got == code || got == 141, "{what}: exit {got}\n{err}");
            assert!(
                !err.contains("panicked") && !err.contains("Broken pipe"),
                "{what}:\n{err}"
            );
        }
    }
}

#[test]
fn a_non_root_user_is_told_once_what_it_cannot_do() {
    use std::os::unix::fs::PermissionsExt;
    let mut env = Env::new("pve-node");
    env.run(&["backup"]).expect(0);
    // The test's own files readable by `nobody`, the host's secrets (etc/pve/priv, 0700) not.
    for p in [env.tmp.path(), env.root.as_path()] {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&env.config, std::fs::Permissions::from_mode(0o644)).unwrap();
    env.write_config("");
    let as_nobody = |args: &[&str]| {
        let c = env.cmd();
        let prog = c.get_program().to_owned();
        let mut all: Vec<std::ffi::OsString> = ["--reuid=65534", "--regid=65534", "--clear-groups"]
            .iter()
            .map(Into::into)
            .collect();
        all.push(prog);
        all.extend(c.get_args().map(ToOwned::to_owned));
        all.extend(args.iter().map(Into::into));
        Run(std::process::Command::new(tool("setpriv"))
            .args(all)
            .output()
            .unwrap())
    };
    let r = as_nobody(&["backup"]);
    r.expect(4);
    let err = r.stderr();
    assert!(
        err.contains("not root") && err.contains("etc/pve/priv"),
        "{err}"
    );
    assert_eq!(err.matches("not root").count(), 1, "{err}");
    assert!(env.archives().len() == 1, "nothing new written");
    let r = as_nobody(&["restore", "latest", "--target", "/", "--yes"]);
    r.expect(4);
    assert!(r.stderr().contains("not root"), "{}", r.stderr());
    // A read command goes on, with one warning.
    let r = as_nobody(&["catalog"]);
    r.expect(0);
    assert_eq!(
        r.stderr().matches("warning: running as").count(),
        1,
        "{}",
        r.stderr()
    );
}

/// The `--long` options in `text` (letters, digits and `-` after `--`).
fn long_options(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("--") {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '-') {
            continue;
        }
        let name: String = text[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        if name.starts_with(|c: char| c.is_ascii_lowercase()) {
            out.insert(format!("--{name}"));
        }
    }
    out
}

#[test]
fn every_option_in_help_is_documented_and_every_documented_option_exists() {
    // Every command's --help, walking the subcommands it lists.
    let mut help_opts = BTreeSet::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(path) = todo.pop() {
        let out = Command::new(bin())
            .args(&path)
            .arg("--help")
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        assert!(out.status.success(), "{path:?}: {text}");
        // Option lines start with `-`: their first `--word` is the option.
        for line in text.lines().filter(|l| l.trim_start().starts_with('-')) {
            let words = line.split([' ', ',', '=', '<', '.', '[', ')', ':']);
            if let Some(long) = words.into_iter().find(|w| w.starts_with("--")) {
                help_opts.insert(long.to_string());
            }
        }
        let commands = text
            .split("Commands:\n")
            .nth(1)
            .map(|c| c.split("\n\n").next().unwrap_or(""));
        for line in commands.unwrap_or("").lines() {
            let word = line
                .strip_prefix("  ")
                .and_then(|l| l.split_whitespace().next());
            if let Some(sub) = word.filter(|w| *w != "help" && !line.starts_with("   ")) {
                let mut p = path.clone();
                p.push(sub.to_string());
                todo.push(p);
            }
        }
    }
    help_opts.retain(|o| o != "--help" && o != "--version");
    assert!(
        help_opts.contains("--dry-run") && help_opts.contains("--target"),
        "{help_opts:?}"
    );

    let mut docs = fs::read_to_string(repo().join("README.md")).unwrap();
    for e in fs::read_dir(repo().join("docs")).unwrap() {
        docs += &fs::read_to_string(e.unwrap().path()).unwrap();
    }
    let in_docs = long_options(&docs);
    let undocumented: Vec<_> = help_opts.difference(&in_docs).collect();
    assert!(
        undocumented.is_empty(),
        "in --help, not in README.md or docs/: {undocumented:?}"
    );
    // Options the docs give to proxkeep itself: in the text after "proxkeep " up to the end of the code span.
    let mut documented = BTreeSet::new();
    for line in docs.lines() {
        for (i, _) in line.match_indices("proxkeep ") {
            let span = line[i..].split('`').next().unwrap_or("");
            let span = span.split(" | ").next().unwrap_or(span);
            documented.extend(long_options(span));
        }
    }
    let unknown: Vec<_> = documented.difference(&help_opts).collect();
    assert!(
        unknown.is_empty(),
        "in README.md or docs/, not in any --help: {unknown:?}"
    );
}

#[test]
fn a_failed_preflight_is_said_once_with_its_fix_on_a_line_of_its_own() {
    let mut env = Env::new("pbs-node");
    env.write_config("");
    let config = fs::read_to_string(&env.config).unwrap();
    let bad = config.replace(
        &env.backups.display().to_string(),
        "/proc/proxkeep-none/backups",
    );
    fs::write(&env.config, bad).unwrap();
    let r = env.run(&["backup"]);
    r.expect(4);
    let err = r.stderr();
    assert_eq!(err.matches("✗ backup directory").count(), 1, "{err}");
    assert!(err.contains("\n    fix: create it"), "{err}");
    assert!(!err.contains("\\n"), "a line break shown as \\n: {err}");
}
