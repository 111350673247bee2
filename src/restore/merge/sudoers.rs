//! `/etc/sudoers` and `/etc/sudoers.d/*` are restored only once `visudo -c -f FILE` accepts them: a broken
//! sudoers file locks every sudo user out. Each file is checked on its own, from a private temp copy whose
//! `@include`/`#include` lines are blanked (line numbers kept): the files they name are checked as files of
//! the archive themselves, and the check must not read the host's live `/etc/sudoers.d`.

use crate::runner::{self, CommandSpec, RunOptions, Status};
use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Archive paths of sudoers files (normalized: `etc/sudoers`, `etc/sudoers.d/NAME`).
pub fn is_sudoers(path: &[u8]) -> bool {
    path == b"etc/sudoers"
        || path
            .strip_prefix(b"etc/sudoers.d/")
            .is_some_and(|n| !n.is_empty() && !n.contains(&b'/'))
}

/// The content to check: include directives blanked, every other byte as it is.
pub fn for_check(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len());
    for (i, line) in content.split(|b| *b == b'\n').enumerate() {
        if i > 0 {
            out.push(b'\n');
        }
        let t = line.trim_ascii_start();
        let include = [&b"@include"[..], b"#include"].iter().any(|d| {
            t.strip_prefix(*d).is_some_and(|r| {
                r.first()
                    .is_some_and(|c| c.is_ascii_whitespace() || *c == b'd')
            })
        });
        if !include {
            out.extend_from_slice(line);
        }
    }
    out
}

/// visudo's complaint for people: the temp file's name replaced by the host path, one line per problem
/// (its caret lines dropped), control characters escaped.
pub fn message(output: &str, temp: &str, shown: &str) -> String {
    let lines = output.lines().map(|l| l.replace(temp, shown));
    let lines = lines.filter(|l| {
        let t = l.trim();
        !t.is_empty() && !t.chars().all(|c| c == '^' || c == '~') && !t.ends_with("parsed OK")
    });
    let lines: Vec<String> = lines.map(|l| crate::output::esc(&l).into_owned()).collect();
    lines.join("; ")
}

/// A rejected file as it is written where the host has none: every line commented out (`# `, so
/// `#include` lines are comments too) under a header saying why, so sudo ignores it and the admin can fix it.
pub fn disabled(content: &[u8], why: &str) -> Vec<u8> {
    let mut out = format!(
        "# proxkeep restore: this file from the backup is disabled, {}\n\
         # Fix it with `visudo -f FILE` and remove the leading \"# \" of each line.\n",
        why.replace('\n', " ")
    )
    .into_bytes();
    for line in content
        .strip_suffix(b"\n")
        .unwrap_or(content)
        .split(|b| *b == b'\n')
    {
        out.extend_from_slice(b"# ");
        out.extend_from_slice(line);
        out.push(b'\n');
    }
    out
}

/// What visudo said about one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    /// Left out, with visudo's message (or why it could not be checked).
    Rejected(String),
}

/// Check `content` (to be written at `shown`, e.g. `/etc/sudoers.d/admins`) with `visudo -c -f`.
pub fn check(content: &[u8], shown: &str, cancel: &AtomicBool) -> Verdict {
    let tmp = tempfile::Builder::new()
        .prefix("proxkeep-sudoers.")
        .tempfile()
        .and_then(|mut f| f.write_all(&for_check(content)).map(|()| f));
    let tmp = match tmp {
        Ok(t) => t,
        Err(e) => return Verdict::Rejected(format!("cannot write a temp copy to check: {e}")),
    };
    let temp = tmp.path().display().to_string();
    let spec = CommandSpec::new("visudo", &["-c", "-f", &temp]);
    let opts = RunOptions {
        timeout: Duration::from_secs(30),
        max_output: 64 * 1024,
        ..Default::default()
    };
    let r = runner::run(&spec, &opts, cancel);
    let said = || {
        let out = String::from_utf8_lossy(&r.stdout) + String::from_utf8_lossy(&r.stderr);
        message(&out, &temp, shown)
    };
    match &r.status {
        Status::Exited(0) => Verdict::Accepted,
        Status::Exited(_) => Verdict::Rejected(format!("visudo rejects it: {}", said())),
        Status::Absent => Verdict::Rejected(
            "visudo is not installed, so it cannot be checked (install sudo, then restore it with --path)".into(),
        ),
        s => Verdict::Rejected(format!("visudo -c did not finish: {s}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_paths() {
        for (p, yes) in [
            ("etc/sudoers", true),
            ("etc/sudoers.d/admins", true),
            ("etc/sudoers.d", false),
            ("etc/sudoers.d/", false),
            ("etc/sudoers.d/a/b", false),
            ("etc/sudoers-", false),
        ] {
            assert_eq!(is_sudoers(p.as_bytes()), yes, "{p}");
        }
    }

    #[test]
    fn includes_blanked_lines_kept() {
        let text = b"Defaults env_reset\n@includedir /etc/sudoers.d\n  #include /etc/x\n#includes are comments too\n# comment\n";
        assert_eq!(
            for_check(text),
            b"Defaults env_reset\n\n\n#includes are comments too\n# comment\n"
        );
    }

    #[test]
    fn messages_name_the_host_path() {
        let out = "/tmp/proxkeep-sudoers.abc:1:19: syntax error\nroot ALL=(ALL:ALL ALL\n                  ^~~\n";
        assert_eq!(
            message(out, "/tmp/proxkeep-sudoers.abc", "/etc/sudoers.d/x"),
            "/etc/sudoers.d/x:1:19: syntax error; root ALL=(ALL:ALL ALL"
        );
    }

    /// The real visudo (Debian's sudo package; .ci/run installs it).
    #[test]
    fn visudo_accepts_and_rejects() {
        let cancel = AtomicBool::new(false);
        let good = b"Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n";
        assert_eq!(check(good, "/etc/sudoers", &cancel), Verdict::Accepted);
        let Verdict::Rejected(why) = check(
            b"alice ALL=(ALL NOPASSWD: ALL\n",
            "/etc/sudoers.d/alice",
            &cancel,
        ) else {
            panic!("a broken file was accepted");
        };
        assert!(
            why.starts_with("visudo rejects it: /etc/sudoers.d/alice:1:"),
            "{why}"
        );
        assert!(!why.contains("proxkeep-sudoers."), "{why}");
        let off = disabled(b"alice ALL=(ALL NOPASSWD: ALL\n#include /x\n", &why);
        assert!(off.ends_with(b"\n# alice ALL=(ALL NOPASSWD: ALL\n# #include /x\n"));
        assert_eq!(
            check(&off, "/etc/sudoers.d/alice", &cancel),
            Verdict::Accepted
        );
    }
}
