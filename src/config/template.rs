//! The commented config template: what `config init` writes and the .deb installs as
//! /etc/proxkeep/proxkeep.toml. Every key with a default is there, commented out at that default (the value
//! comes from serializing [`Config::default`], the file the parser reads); keys without a default (optional
//! sections) are there as examples. One line of explanation each, from [`KEYS`] and [`EXAMPLES`].
//!
//! Line shapes: `# text` explains, `#key = value` / `#[section]` is a setting at its default (removing the `#`
//! changes nothing), `##key = value` is an example (removing the `##` sets it).

use super::Config;
use std::fmt::Write;

/// Every key and table of the serialized defaults, in the template's order, with its explanation.
/// `{categories}` is replaced by the categories the template's role collects.
const KEYS: &[(&str, &str)] = &[
    ("backup_dir", "Where archives are written (the local tier)."),
    ("log_dir", "One log file per run."),
    (
        "lock_file",
        "Held while a run is active; a second run stops with exit 5 and names the holder.",
    ),
    (
        "min_free_space",
        "Preflight needs max(this, 2 x the last archive) free on the backup file system.",
    ),
    ("compression", "How archives are compressed."),
    ("compression.algorithm", "zstd | xz | gzip | none"),
    ("compression.level", "zstd 1-19, xz 0-9, gzip 1-9."),
    ("compression.threads", "Worker threads; 0 = all cores."),
    (
        "collect",
        "What is collected besides the catalog (`proxkeep catalog` shows it).",
    ),
    (
        "collect.skip_categories",
        "Catalog categories not to back up; a {role} host collects: {categories}.",
    ),
    (
        "collect.extra_paths",
        "More absolute host paths, collected as category \"extra\".",
    ),
    (
        "collect.exclude",
        "Paths (a directory with all under it) or globs of absolute host paths left out (\"/root/.cache\", \"/etc/ssl/private/*.old\").",
    ),
    (
        "collect.max_input_size",
        "Above this many bytes to collect, backup refuses (exit 4) and names the largest trees: GiBs mean something unintended was swept in.",
    ),
    (
        "commands",
        "The inventory commands (pveversion, zpool status, ...) whose output goes into the archive.",
    ),
    (
        "commands.run",
        "auto (only when the root is /) | always | never",
    ),
    ("commands.timeout", "Time each command may take."),
    ("commands.concurrency", "Commands run in parallel (1-64)."),
    (
        "retention",
        "Archives every tier keeps; a key left out keeps its default; all six keep_* at 0 keep everything.",
    ),
    ("retention.keep_last", "The newest N."),
    (
        "retention.keep_hourly",
        "The newest of each of the last N hours.",
    ),
    (
        "retention.keep_daily",
        "The newest of each of the last N days.",
    ),
    (
        "retention.keep_weekly",
        "The newest of each of the last N weeks.",
    ),
    (
        "retention.keep_monthly",
        "The newest of each of the last N months.",
    ),
    (
        "retention.keep_yearly",
        "The newest of each of the last N years.",
    ),
    (
        "retention.keep_safety",
        "Restore-safety archives kept per host (local tier only; 0 keeps them all).",
    ),
    (
        "metrics",
        "The Prometheus textfile for node_exporter (docs/monitoring.md); unset writes none.",
    ),
];

/// Keys without a default, as examples: (explanation, TOML lines), shown after the table they belong to
/// (`metrics`) or at the end.
const EXAMPLES: &[(&str, &str, &str)] = &[
    (
        "metrics",
        "Must end in .prom (the collector reads only those).",
        "textfile = \"/var/lib/prometheus/node-exporter/proxkeep.prom\"",
    ),
    (
        "",
        "Encrypt archives with age: recipients (age1... or ssh-ed25519 keys) and/or a file of them, or instead\n\
         a passphrase_file (first line = passphrase, age's scrypt mode). Keep the identity off this host.",
        "[encryption]\nrecipients = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"]\n\
         recipients_file = \"/etc/proxkeep/recipients.txt\"",
    ),
    (
        "",
        "A mounted copy (NAS over NFS/CIFS, USB disk); repeat the block for more. name defaults to the last\n\
         path component; require_mount (default true under /mnt and /media) skips the tier when the path is\n\
         not a mount point; timeout bounds every file-system call there; any keep_* overrides [retention].",
        "[[secondary]]\nname = \"nas\"\npath = \"/mnt/nas/proxkeep\"\nrequire_mount = true\ntimeout = \"60s\"\n\
         keep_daily = 30",
    ),
    (
        "",
        "An rclone remote (S3, B2, SFTP, WebDAV, ...); repeat for more. flags go to every rclone call, timeout\n\
         bounds each call, retries counts upload attempts; any keep_* overrides [retention].",
        "[[remote]]\nname = \"b2\"\ntarget = \"b2:bucket/proxkeep\"\nflags = [\"--bwlimit\", \"8M\"]\n\
         timeout = \"10m\"\nretries = 3",
    ),
    (
        "",
        "Notifications (docs/monitoring.md): email, telegram, gotify, ntfy, webhook, ping; repeatable. Each\n\
         takes name, on (events: failure, warning, success), timeout, retry_budget and ca_file too.",
        "[[notify.email]]\nto = [\"admin@example.org\"]\nfrom = \"proxkeep@example.org\"\n\
         transport = \"smtp\"\nhost = \"mail.example.org\"\nport = 587\ntls = \"starttls\"\n\
         username = \"proxkeep\"\npassword = \"secret\"\n\n\
         [[notify.telegram]]\nbot_token = \"123456:ABC\"\nchat_id = 123456789\n\n\
         [[notify.gotify]]\nurl = \"https://gotify.example.org\"\ntoken = \"AbCdEf\"\n\n\
         [[notify.ntfy]]\nurl = \"https://ntfy.example.org/backups\"\n\n\
         [[notify.webhook]]\nurl = \"https://hooks.example.org/proxkeep\"\nformat = \"json\"\n\n\
         [[notify.ping]]\nurl = \"https://hc-ping.com/your-uuid\"",
    ),
];

/// The template for a host of `role` (its name), whose catalog collects `categories`.
pub fn render(role: &str, categories: &[&str]) -> String {
    render_with(role, categories, &toml::Table::new())
}

/// The template with the settings of `set` (shaped like the file) in it, uncommented: a key of the template at
/// its place, with its table's header; the rest of a table right under its header; the tables the template
/// has only as examples (`[[secondary]]`, `[[notify.*]]`, `[encryption]`, ...) at the end.
pub fn render_with(role: &str, categories: &[&str], set: &toml::Table) -> String {
    let defaults = toml::Table::try_from(Config::default()).expect("the defaults serialize");
    let mut out = String::from(
        "# proxkeep configuration. Every key is optional: a commented-out `#key = value` is the built-in\n\
         # default, an `##` line an example. `proxkeep config check FILE` validates this file, `proxkeep config\n\
         # show` prints the effective configuration, `man proxkeep` and README.md explain the rest.\n\n",
    );
    // The table being written: its examples go at its end.
    let mut section = "";
    for (key, doc) in KEYS {
        let doc = doc
            .replace("{role}", role)
            .replace("{categories}", &categories.join(", "));
        let (table, name) = key.rsplit_once('.').unwrap_or(("", key));
        let value = match table {
            "" => &defaults[*key],
            t => &defaults[t][name],
        };
        let given = match table {
            "" => set.get(*key),
            t => set.get(t).and_then(|t| t.get(name)),
        };
        if let toml::Value::Table(_) = value {
            if !section.is_empty() {
                examples_of(&mut out, section);
            }
            section = key;
            let _ = write!(out, "\n# {doc}\n");
            match given {
                Some(toml::Value::Table(t)) => {
                    let _ = writeln!(out, "[{key}]");
                    // Keys the template does not list (a table's examples) right under the header.
                    for (k, v) in t.iter().filter(|(k, _)| {
                        !defaults[*key]
                            .as_table()
                            .is_some_and(|d| d.contains_key(*k))
                    }) {
                        let _ = writeln!(out, "{k} = {v}");
                    }
                }
                _ => {
                    let _ = writeln!(out, "#[{key}]");
                }
            }
        } else if let Some(v) = given {
            let _ = writeln!(out, "# {doc}\n{name} = {v}");
        } else {
            let _ = writeln!(out, "# {doc}\n#{name} = {value}");
        }
    }
    examples_of(&mut out, section);
    examples_of(&mut out, "");
    let rest: toml::Table = set
        .iter()
        .filter(|(k, _)| !defaults.contains_key(*k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if !rest.is_empty() {
        out.push_str("\n# Set (not examples):\n");
        out.push_str(&toml::to_string(&rest).expect("a table serializes"));
    }
    out
}

/// The examples of `table` (`""`: the optional sections, at the end).
fn examples_of(out: &mut String, table: &str) {
    for (_, doc, lines) in EXAMPLES.iter().filter(|(t, ..)| *t == table) {
        if table.is_empty() {
            out.push('\n');
        }
        for line in doc.lines() {
            let _ = writeln!(out, "# {}", line.trim());
        }
        for line in lines.lines() {
            match line {
                "" => out.push_str("##\n"),
                l => {
                    let _ = writeln!(out, "##{l}");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Checks, parse};
    use std::path::Path;

    /// The settings lines with their `#` removed (and with `examples`, the `##` lines too); explanations
    /// dropped.
    fn uncomment<'a>(text: &'a str, examples: bool) -> String {
        let setting = |l: &'a str| -> Option<&'a str> {
            let rest = l.strip_prefix('#')?;
            match rest.strip_prefix('#') {
                Some(example) => examples.then_some(example),
                None => (!rest.starts_with(' ')).then_some(rest),
            }
        };
        let lines: Vec<&str> = text
            .lines()
            .filter_map(|l| {
                if l.starts_with('#') {
                    setting(l)
                } else {
                    Some(l)
                }
            })
            .collect();
        lines.join("\n")
    }

    #[test]
    fn uncommented_template_parses_to_exactly_the_defaults() {
        let text = render("pve", &["pve-cluster", "network"]);
        let settings = uncomment(&text, false);
        assert!(
            settings.contains("backup_dir = \"/var/backups/proxkeep\""),
            "{settings}"
        );
        assert!(
            settings.contains("[retention]\nkeep_last = 3"),
            "{settings}"
        );
        let c = parse(&settings, Path::new("template"), &Checks::NONE).unwrap();
        assert_eq!(c, Config::default(), "{settings}");
        // The template as shipped (all commented) is the defaults too.
        assert_eq!(
            parse(&text, Path::new("t"), &Checks::NONE).unwrap(),
            Config::default()
        );
        assert!(
            text.contains("a pve host collects: pve-cluster, network."),
            "{text}"
        );
    }

    #[test]
    fn examples_use_real_keys() {
        let text = render("pve", &[]);
        let examples = uncomment(&text, true);
        let c = parse(&examples, Path::new("examples"), &Checks::NONE)
            .unwrap_or_else(|e| panic!("{e}\n{examples}"));
        assert_eq!(c.secondary.len(), 1);
        assert_eq!(c.remote.len(), 1);
        assert!(c.metrics.textfile.is_some() && c.encryption.is_some());
        assert_eq!(c.notify.email.len() + c.notify.ping.len(), 2);
    }

    /// Every key the defaults serialize has its line in [`KEYS`], and nothing else is there: a new key cannot
    /// be missing from the template.
    #[test]
    fn every_default_key_is_explained() {
        fn keys(t: &toml::Table, prefix: &str, out: &mut Vec<String>) {
            for (k, v) in t {
                let key = format!("{prefix}{k}");
                if let toml::Value::Table(sub) = v {
                    keys(sub, &format!("{key}."), out);
                }
                out.push(key);
            }
        }
        let mut found = Vec::new();
        keys(
            &toml::Table::try_from(Config::default()).unwrap(),
            "",
            &mut found,
        );
        found.sort();
        let mut listed: Vec<String> = KEYS.iter().map(|(k, _)| k.to_string()).collect();
        listed.sort();
        assert_eq!(found, listed);
    }
}
