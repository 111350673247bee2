//! What the Debian package ships besides the binary (issue 13): man pages and completions generated from the
//! clap definitions, checked with the real `man` and bash-completion.

use crate::util::*;
use std::fs;

/// The subcommands `proxkeep --help` lists (the visible ones).
fn visible_subcommands() -> Vec<String> {
    let env = Env::new("");
    let help = env.run(&["--help"]).stdout();
    help.split("Commands:\n")
        .nth(1)
        .expect("a Commands: section")
        .lines()
        .take_while(|l| l.starts_with("  "))
        // A wrapped description continues on a deeper-indented line.
        .filter(|l| !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|c| *c != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn man_pages_render_without_warnings_one_per_subcommand() {
    tool("man");
    let env = Env::new("");
    let dir = env.tmp.path().join("man");
    env.run(&["manpages", dir.to_str().unwrap()]).expect(0);
    let pages = files(&dir);
    assert!(pages.contains(&"proxkeep.1".to_string()), "{pages:?}");
    for sub in visible_subcommands() {
        let page = format!("proxkeep-{sub}.1");
        assert!(pages.contains(&page), "no page for `{sub}`: {pages:?}");
    }
    // Nested subcommands get their own page too.
    for nested in ["proxkeep-pmxcfs-restore.1", "proxkeep-config-show.1"] {
        assert!(pages.contains(&nested.to_string()), "{pages:?}");
    }
    for page in &pages {
        let path = dir.join(page);
        let out = std::process::Command::new("man")
            .arg("-l")
            .arg(&path)
            .env("MANWIDTH", "80")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.is_empty(),
            "{page}: {stderr}"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let name = page.trim_end_matches(".1");
        assert!(
            text.contains("NAME") && text.contains(name),
            "{page}:\n{text}"
        );
    }
    let restore = fs::read_to_string(dir.join("proxkeep-restore.1")).unwrap();
    assert!(
        restore.contains("dry\\-run"),
        "restore page lacks --dry-run"
    );
}

/// `proxkeep res<TAB>` completes to `restore`, with the completion found by bash-completion's own loader
/// where the package puts it (`completions/proxkeep` under a completion dir).
#[test]
fn bash_completion_completes_subcommands_through_the_loader() {
    let loader = "/usr/share/bash-completion/bash_completion";
    assert!(
        std::path::Path::new(loader).is_file(),
        "bash-completion is not installed (see .ci/run)"
    );
    let env = Env::new("");
    let user_dir = env.tmp.path().join("bash-completion");
    fs::create_dir_all(user_dir.join("completions")).unwrap();
    let script = env.run(&["completions", "bash"]);
    script.expect(0);
    fs::write(user_dir.join("completions/proxkeep"), script.stdout()).unwrap();
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let cmd = format!(
            r#"export BASH_COMPLETION_USER_DIR='{dir}'
source {loader}
__load_completion proxkeep || exit 9
f=$(complete -p proxkeep | sed -E 's/.* -F ([^ ]+) .*/\1/')
COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{line}'; COMP_POINT=${{#COMP_LINE}}
"$f" proxkeep '{cur}' '{prev}'
printf '%s\n' "${{COMPREPLY[@]}}""#,
            dir = user_dir.display(),
            words = words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            cword = words.len() - 1,
            cur = words[words.len() - 1],
            prev = words[words.len() - 2],
        );
        let script = env.tmp.path().join("complete.bash");
        fs::write(&script, cmd).unwrap();
        sh_ok(&format!("bash {}", script.display()))
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(complete("proxkeep res"), ["restore"]);
    let opts = complete("proxkeep restore --dr");
    assert_eq!(opts, ["--dry-run"]);
}

#[test]
fn zsh_and_fish_completions_name_the_subcommands() {
    let env = Env::new("");
    for shell in ["zsh", "fish"] {
        let r = env.run(&["completions", shell]);
        r.expect(0);
        let out = r.stdout();
        assert!(
            out.contains("restore") && out.contains("dry-run"),
            "{shell}:\n{out}"
        );
    }
    // Only the three shells the package installs.
    env.run(&["completions", "powershell"]).expect(2);
}

/// The shipped units pass `systemd-analyze verify` (with ExecStart= on the built binary and the man pages
/// their Documentation= names on MANPATH), and keep the properties issue 13 asks for.
#[test]
fn systemd_units_verify() {
    tool("systemd-analyze");
    let env = Env::new("");
    let units = env.tmp.path().join("units");
    let man = env.tmp.path().join("man");
    fs::create_dir_all(&units).unwrap();
    env.run(&["manpages", man.join("man1").to_str().unwrap()])
        .expect(0);
    let shipped = repo().join("packaging/systemd");
    let service = fs::read_to_string(shipped.join("proxkeep.service")).unwrap();
    let timer = fs::read_to_string(shipped.join("proxkeep.timer")).unwrap();
    for line in [
        "Type=oneshot",
        "ExecStart=/usr/bin/proxkeep backup",
        "SuccessExitStatus=3",
        "TimeoutStartSec=",
        "IOSchedulingClass=idle",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
    ] {
        assert!(service.lines().any(|l| l.starts_with(line)), "{line}");
    }
    for line in ["OnCalendar=daily", "Persistent=true", "RandomizedDelaySec="] {
        assert!(timer.lines().any(|l| l.starts_with(line)), "{line}");
    }
    let local = service.replace("/usr/bin/proxkeep", bin().to_str().unwrap());
    fs::write(units.join("proxkeep.service"), local).unwrap();
    fs::write(units.join("proxkeep.timer"), timer).unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .args(["verify", "proxkeep.service", "proxkeep.timer"])
        .current_dir(&units)
        .env("MANPATH", &man)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.is_empty(), "{stderr}");
}

/// `config init` writes the commented template as a new 0600 file (never over one), for the detected role or
/// `--role`; the file as written is the defaults; `config check` validates without running anything.
#[test]
fn config_init_writes_the_template_and_config_check_validates() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new("pve-node");
    let out = env.tmp.path().join("etc/proxkeep/proxkeep.toml");
    let r = env.run(&["config", "init", "--out", out.to_str().unwrap()]);
    r.expect(0);
    assert!(r.stdout().contains("pve host"), "{}", r.stdout());
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&out), 0o600);
    assert_eq!(mode(out.parent().unwrap()), 0o700);
    let text = fs::read_to_string(&out).unwrap();
    assert!(
        text.contains("#keep_daily = 7\n") && text.contains("pve-cluster"),
        "{text}"
    );
    // Never over an existing file: exit 2, the file unchanged.
    fs::write(&out, "# mine\n").unwrap();
    let r = env.run(&[
        "config",
        "init",
        "--role",
        "pbs",
        "--out",
        out.to_str().unwrap(),
    ]);
    r.expect(2);
    assert!(r.stderr().contains("exists"), "{}", r.stderr());
    assert_eq!(fs::read_to_string(&out).unwrap(), "# mine\n");
    // --role picks the categories listed; `-` is stdout.
    let r = env.run(&["config", "init", "--role", "pbs", "--out", "-"]);
    r.expect(0);
    let pbs = r.stdout();
    assert!(
        pbs.contains("pbs-config") && !pbs.contains("pve-cluster"),
        "{pbs}"
    );
    env.run(&["config", "init", "--role", "windows", "--out", "-"])
        .expect(2);

    // config check: the template is valid, and parses to what `config show` shows for no file at all.
    let template = env.tmp.path().join("template.toml");
    fs::write(&template, &text).unwrap();
    let r = env.run(&["config", "check", template.to_str().unwrap()]);
    r.expect(0);
    assert!(r.stdout().contains("valid"), "{}", r.stdout());
    let show = |cfg: &std::path::Path| {
        let r = Run(std::process::Command::new(bin())
            .args(["--config", cfg.to_str().unwrap(), "config", "show"])
            .output()
            .unwrap());
        r.expect(0);
        r.stdout()
    };
    let empty = env.tmp.path().join("empty.toml");
    fs::write(&empty, "").unwrap();
    assert_eq!(show(&template), show(&empty));
    // A bad key: exit 2 with file:line:column and the suggestion; nothing else runs.
    let bad = env.tmp.path().join("bad.toml");
    fs::write(&bad, "backup_dir = \"/srv/b\"\n[compression]\nlevl = 3\n").unwrap();
    let r = env.run(&["config", "check", bad.to_str().unwrap()]);
    r.expect(2);
    let err = r.stderr();
    assert!(
        err.contains(&format!("{}:3:1", bad.display()))
            && err.contains("did you mean `compression.level`"),
        "{err}"
    );
    assert!(!std::path::Path::new("/srv/b").exists());
}
