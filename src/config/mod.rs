//! proxkeep's own configuration file (`/etc/proxkeep/proxkeep.toml`).
//!
//! Every key is optional; a missing file at the default location means built-in defaults. README.md shows
//! the keys with their defaults.
//!
//! `sections` holds the effective configuration, `load` reads the file; `raw` parses and checks the file (every
//! error names the file, line, column and key), `notify` holds the `[[notify.*]]` channels and `[metrics]`,
//! `redact` renders the effective configuration for `config show`.
//!
//! config sits below the modules that use it and imports none of them: what only they can check (the catalog's
//! category names, the syntax of an age recipient) comes in through [`Checks`].

pub mod import;
mod load;
mod notify;
mod raw;
mod redact;
mod sections;
pub mod template;

pub use load::{Checks, ConfigError, DEFAULT_CONFIG_PATH, load, load_reporting_only, parse};
pub use notify::{
    Channel, ChatId, Common, EmailConfig, Event, GotifyConfig, HttpMethod, MailTransport,
    MetricsConfig, NotifyConfig, NtfyConfig, PingConfig, SmtpTls, TelegramConfig, WebhookConfig,
    WebhookFormat,
};
pub use redact::render_redacted;
pub use sections::{
    CollectConfig, CommandsConfig, CompressionConfig, Config, DEFAULT_POLICY, EncryptionConfig,
    Policy, RemoteConfig, RunCommands, SecondaryConfig,
};
use sections::{secs, ser_duration};

pub use crate::archive::compression::Compression;

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::load::load_with_default;
    use super::redact::REDACTED;
    use super::*;

    const CATEGORIES: &[&str] = &["pve-cluster", "corosync", "network", "ssh", "pbs-config"];
    const CHECKS: Checks = Checks {
        categories: CATEGORIES,
        recipient: |_| Ok(()),
    };
    const ORIGIN: &str = "/etc/proxkeep/proxkeep.toml";

    fn parse_ok(text: &str) -> Config {
        parse(text, Path::new(ORIGIN), &CHECKS).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    /// (line, column, key, suggestion, message) of an Invalid error.
    fn parse_err(text: &str) -> (usize, usize, String, Option<String>, String) {
        match parse(text, Path::new(ORIGIN), &CHECKS) {
            Ok(c) => panic!("{text:?} parsed: {c:?}"),
            Err(ConfigError::Invalid {
                path,
                line,
                column,
                key,
                message,
                suggestion,
            }) => {
                assert_eq!(path, Path::new(ORIGIN));
                (line, column, key, suggestion, message)
            }
            Err(e) => panic!("unexpected error {e}"),
        }
    }

    #[test]
    fn defaults_for_empty_text() {
        for text in [
            "",
            "\n\n",
            "# only a comment\n",
            "[compression]\n[collect]\n[commands]\n",
        ] {
            assert_eq!(parse_ok(text), Config::default(), "{text:?}");
        }
        let d = Config::default();
        assert_eq!(d.backup_dir, Path::new("/var/backups/proxkeep"));
        assert_eq!(d.log_dir, Path::new("/var/log/proxkeep"));
        assert_eq!(d.lock_file, Path::new("/run/proxkeep.lock"));
        assert_eq!(d.min_free_space, 1_073_741_824);
        assert_eq!(d.compression.algorithm, Compression::Zstd);
        assert_eq!(d.compression.level, 3);
        assert_eq!(d.compression.threads, 0);
        assert!(d.collect.skip_categories.is_empty());
        assert!(d.collect.extra_paths.is_empty());
        assert!(d.collect.exclude.is_empty());
        assert_eq!(d.commands.run, RunCommands::Auto);
        assert_eq!(d.commands.timeout, Duration::from_secs(30));
        assert_eq!(d.commands.concurrency, 4);
    }

    const FULL: &str = r#"
backup_dir = "/srv/backups"
log_dir = "/srv/log"
lock_file = "/run/lock/proxkeep.lock"
min_free_space = "512MiB"

[compression]
algorithm = "xz"
level = 9
threads = 2

[collect]
skip_categories = ["ssh", "network"]
extra_paths = ["/opt/tool/etc", "/root/scripts"]
exclude = ["/etc/pve/**/*.tmp", "**/*.bak"]

[commands]
run = "never"
timeout = "2m"
concurrency = 8

[retention]
keep_last = 2
keep_daily = 10

[[secondary]]
path = "/mnt/nas/proxkeep"
keep_daily = 30

[[secondary]]
name = "usb"
path = "/srv/usb"
require_mount = true
timeout = "5s"

[[remote]]
target = "b2:bucket/proxkeep/"
flags = ["--bwlimit", "8M"]
retries = 5
timeout = "1h"

[metrics]
textfile = "/var/lib/prometheus/node-exporter/proxkeep.prom"
"#;

    fn full_config() -> Config {
        Config {
            backup_dir: "/srv/backups".into(),
            log_dir: "/srv/log".into(),
            lock_file: "/run/lock/proxkeep.lock".into(),
            min_free_space: 512 << 20,
            compression: CompressionConfig {
                algorithm: Compression::Xz,
                level: 9,
                threads: 2,
            },
            collect: CollectConfig {
                skip_categories: vec!["ssh".into(), "network".into()],
                extra_paths: vec!["/opt/tool/etc".into(), "/root/scripts".into()],
                exclude: vec!["/etc/pve/**/*.tmp".into(), "**/*.bak".into()],
                max_input_size: 512 << 20,
            },
            commands: CommandsConfig {
                run: RunCommands::Never,
                timeout: Duration::from_secs(120),
                concurrency: 8,
            },
            retention: Policy {
                keep_last: 2,
                keep_daily: 10,
                ..DEFAULT_POLICY
            },
            secondary: vec![
                SecondaryConfig {
                    name: "proxkeep".into(),
                    path: "/mnt/nas/proxkeep".into(),
                    require_mount: true,
                    timeout: Duration::from_secs(60),
                    keep_last: None,
                    keep_hourly: None,
                    keep_daily: Some(30),
                    keep_weekly: None,
                    keep_monthly: None,
                    keep_yearly: None,
                },
                SecondaryConfig {
                    name: "usb".into(),
                    path: "/srv/usb".into(),
                    require_mount: true,
                    timeout: Duration::from_secs(5),
                    keep_last: None,
                    keep_hourly: None,
                    keep_daily: None,
                    keep_weekly: None,
                    keep_monthly: None,
                    keep_yearly: None,
                },
            ],
            remote: vec![RemoteConfig {
                name: "b2".into(),
                target: "b2:bucket/proxkeep".into(),
                flags: vec!["--bwlimit".into(), "8M".into()],
                timeout: Duration::from_secs(3600),
                retries: 5,
                keep_last: None,
                keep_hourly: None,
                keep_daily: None,
                keep_weekly: None,
                keep_monthly: None,
                keep_yearly: None,
            }],
            notify: NotifyConfig::default(),
            metrics: MetricsConfig {
                textfile: Some("/var/lib/prometheus/node-exporter/proxkeep.prom".into()),
            },
            encryption: None,
        }
    }

    #[test]
    fn tier_errors_name_the_key() {
        let e = parse_err("[[secondary]]\npath = \"relative\"\n");
        assert!(format!("{e:?}").contains("secondary.path"), "{e:?}");
        let e = parse_err("[[remote]]\ntarget = \"nocolon\"\n");
        assert!(format!("{e:?}").contains("remote.target"), "{e:?}");
        let e = parse_err("[[remote]]\ntarget = \"a:x\"\n[[remote]]\ntarget = \"a:y\"\n");
        assert!(format!("{e:?}").contains("used by another tier"), "{e:?}");
        let e = parse_err("[[secondary]]\npath = \"/mnt/x\"\nkeep_dialy = 3\n");
        assert!(format!("{e:?}").contains("keep_daily"), "{e:?}");
        assert_eq!(parse_ok("").retention, DEFAULT_POLICY);
        // A present section overrides the defaults key by key: an empty one changes nothing.
        assert_eq!(parse_ok("[retention]\n").retention, DEFAULT_POLICY);
        let daily = parse_ok("[retention]\nkeep_daily = 14\n").retention;
        assert_eq!((daily.keep_daily, daily.keep_last), (14, 3));
    }

    #[test]
    fn every_key_parsed() {
        assert_eq!(parse_ok(FULL), full_config());
    }

    #[test]
    fn alternative_value_forms() {
        let c = parse_ok(
            "min_free_space = 1000\n[compression]\nalgorithm = \"gz\"\n[commands]\ntimeout = 45\nrun = \"always\"\n",
        );
        assert_eq!(c.min_free_space, 1000);
        assert_eq!(c.compression.algorithm, Compression::Gzip);
        assert_eq!(c.compression.level, 6, "level defaults per algorithm");
        assert_eq!(c.commands.timeout, Duration::from_secs(45));
        assert_eq!(c.commands.run, RunCommands::Always);
        // Dotted keys and inline tables are ordinary TOML.
        let c = parse_ok("compression.level = 5\ncommands = { concurrency = 1 }\n");
        assert_eq!(c.compression.level, 5);
        assert_eq!(c.commands.concurrency, 1);
    }

    #[test]
    fn unknown_keys_with_suggestions() {
        #[rustfmt::skip]
        let cases: &[(&str, usize, usize, &str, Option<&str>)] = &[
            // text, line, column, key, suggestion
            ("backup_dir = \"/b\"\n\nbackup_dri = \"/x\"\n", 3, 1, "backup_dri", Some("backup_dir")),
            ("  Log_Dir = \"/x\"\n", 1, 3, "Log_Dir", Some("log_dir")),
            ("min-free-space = 1\n", 1, 1, "min-free-space", Some("min_free_space")),
            ("[compression]\nalgorithm = \"xz\"\nlevle = 5\n", 3, 1, "compression.levle", Some("compression.level")),
            ("[commands]\ntimout = 5\n", 2, 1, "commands.timout", Some("commands.timeout")),
            ("[collect]\nskip_category = []\n", 2, 1, "collect.skip_category", Some("collect.skip_categories")),
            ("compression.levle = 5\n", 1, 13, "compression.levle", Some("compression.level")),
            // wrong level / wrong section
            ("level = 3\n", 1, 1, "level", Some("compression.level")),
            ("[commands]\nthreads = 2\n", 2, 1, "commands.threads", Some("compression.threads")),
            ("[compression]\nbackup_dir = \"/x\"\n", 2, 1, "compression.backup_dir", Some("backup_dir")),
            ("[collect]\nexclude = []\ntimeout = 3\n", 3, 1, "collect.timeout", Some("commands.timeout")),
            // unknown sections
            ("[compresion]\nlevel = 3\n", 1, 2, "compresion", Some("compression")),
            ("[commands.extra]\n", 1, 11, "commands.extra", None),
            // nothing close
            ("frobnicate = 1\n", 1, 1, "frobnicate", None),
            ("x = 1\n", 1, 1, "x", None),
        ];
        for &(text, line, column, key, suggestion) in cases {
            let (l, c, k, s, m) = parse_err(text);
            assert_eq!(
                (l, c, k.as_str(), s.as_deref()),
                (line, column, key, suggestion),
                "{text:?}"
            );
            assert_eq!(m, format!("unknown key `{key}`"));
        }
    }

    #[test]
    fn error_display() {
        let err = parse("backup_dri = \"/x\"\n", Path::new(ORIGIN), &CHECKS).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/proxkeep/proxkeep.toml:1:1: unknown key `backup_dri` (did you mean `backup_dir`?)"
        );
        let text = "\n\n\n\n\n[compression]\nlevel = 25\n";
        let err = parse(text, Path::new(ORIGIN), &CHECKS).unwrap_err();
        assert_eq!(
            err.to_string(),
            "/etc/proxkeep/proxkeep.toml:7:9: invalid value for `compression.level`: 25 is out of range 1..=19 for zstd"
        );
    }

    #[test]
    fn earliest_error_is_reported() {
        let (line, _, key, _, _) = parse_err("[commands]\nzzz = 1\n[collect]\naaa = 2\n");
        assert_eq!((line, key.as_str()), (2, "commands.zzz"));
        let (line, _, key, _, _) = parse_err("bbb = 1\naaa = 1\n");
        assert_eq!((line, key.as_str()), (1, "bbb"));
    }

    #[test]
    fn levels_per_algorithm() {
        for algorithm in Compression::ALL {
            let range = algorithm.level_range();
            for level in [*range.start(), algorithm.default_level(), *range.end()] {
                let text = format!("[compression]\nalgorithm = \"{algorithm}\"\nlevel = {level}\n");
                assert_eq!(parse_ok(&text).compression.level, level);
            }
            let text = format!("[compression]\nalgorithm = \"{algorithm}\"\n");
            assert_eq!(parse_ok(&text).compression.level, algorithm.default_level());
            assert!(range.contains(&algorithm.default_level()));
        }
        #[rustfmt::skip]
        let bad: &[(&str, i64, &str)] = &[
            ("zstd", 0, "0 is out of range 1..=19 for zstd"),
            ("zstd", 20, "20 is out of range 1..=19 for zstd"),
            ("xz", -1, "-1 is out of range 0..=9 for xz"),
            ("xz", 10, "10 is out of range 0..=9 for xz"),
            ("gzip", 0, "0 is out of range 1..=9 for gzip"),
            ("gzip", 10, "10 is out of range 1..=9 for gzip"),
            ("none", 1, "1 is out of range 0..=0 for none"),
            ("zstd", 99_999_999_999, "99999999999 is out of range 1..=19 for zstd"),
        ];
        for &(algorithm, level, detail) in bad {
            // level before algorithm: the range still follows the algorithm
            let text = format!("[compression]\nlevel = {level}\nalgorithm = \"{algorithm}\"\n");
            let (line, column, key, _, message) = parse_err(&text);
            assert_eq!(
                (line, column, key.as_str()),
                (2, 9, "compression.level"),
                "{text}"
            );
            assert_eq!(
                message,
                format!("invalid value for `compression.level`: {detail}")
            );
        }
    }

    #[test]
    fn bad_values() {
        #[rustfmt::skip]
        let cases: &[(&str, usize, usize, &str, &str)] = &[
            // text, line, column, key, part of message
            ("min_free_space = \"12 XB\"\n", 1, 18, "min_free_space", "unknown unit `XB`"),
            ("min_free_space = \"lots\"\n", 1, 18, "min_free_space", "invalid size `lots`"),
            ("min_free_space = -5\n", 1, 18, "min_free_space", "must not be negative"),
            ("min_free_space = \"99999999 PiB\"\n", 1, 18, "min_free_space", "too large"),
            ("min_free_space = 1.5\n", 1, 18, "min_free_space", "an integer or a string"),
            ("[commands]\ntimeout = \"5 parsecs\"\n", 2, 11, "commands.timeout", "unknown unit `parsecs`"),
            ("[commands]\ntimeout = \"0s\"\n", 2, 11, "commands.timeout", "greater than zero"),
            ("[commands]\ntimeout = 0\n", 2, 11, "commands.timeout", "greater than zero"),
            ("[commands]\ntimeout = -3\n", 2, 11, "commands.timeout", "must not be negative"),
            ("[commands]\ntimeout = \"\"\n", 2, 11, "commands.timeout", "invalid duration"),
            ("[commands]\nconcurrency = 0\n", 2, 15, "commands.concurrency", "0 is out of range 1..=64"),
            ("[commands]\nconcurrency = 65\n", 2, 15, "commands.concurrency", "65 is out of range 1..=64"),
            ("[commands]\nrun = true\n", 2, 7, "commands.run", "expected a string"),
            ("[compression]\nlevel = \"high\"\n", 2, 9, "compression.level", "invalid type"),
            ("[compression]\nthreads = -1\n", 2, 11, "compression.threads", "u32"),
            ("backup_dir = 3\n", 1, 14, "backup_dir", "invalid type"),
            ("backup_dir = \"relative/dir\"\n", 1, 14, "backup_dir", "not an absolute path"),
            ("lock_file = \"\"\n", 1, 13, "lock_file", "not an absolute path"),
            ("[collect]\nextra_paths = [\"/ok\", \"etc/x\"]\n", 2, 23, "collect.extra_paths", "`etc/x` is not an absolute path"),
            ("[collect]\nextra_paths = [\"/etc/../root\"]\n", 2, 16, "collect.extra_paths", "must not contain `..`"),
            ("[collect]\nextra_paths = \"/etc\"\n", 2, 15, "collect.extra_paths", "invalid type"),
            ("[collect]\nexclude = [\"/etc/[abc\"]\n", 2, 12, "collect.exclude", "invalid glob `/etc/[abc`"),
            ("[collect]\nexclude = [\"/a/{b,c\"]\n", 2, 12, "collect.exclude", "invalid glob"),
            ("[collect]\nexclude = [\"etc/foo\"]\n", 2, 12, "collect.exclude", "can never match"),
            ("compression = \"zstd\"\n", 1, 15, "compression", "expected a table ([compression]), found string"),
            ("[[commands]]\nrun = \"auto\"\n", 1, 1, "commands", "expected a table"),
        ];
        for &(text, line, column, key, needle) in cases {
            let (l, c, k, _, m) = parse_err(text);
            assert_eq!((l, c, k.as_str()), (line, column, key), "{text:?}: {m}");
            assert!(
                m.starts_with(&format!("invalid value for `{key}`: ")),
                "{text:?}: {m}"
            );
            assert!(m.contains(needle), "{text:?}: {m}");
        }
    }

    #[test]
    fn bad_enum_value_suggests_variant() {
        let (line, column, key, suggestion, message) =
            parse_err("[compression]\nalgorithm = \"zsdt\"\n");
        assert_eq!(
            (line, column, key.as_str()),
            (2, 13, "compression.algorithm")
        );
        assert_eq!(suggestion.as_deref(), Some("zstd"));
        assert!(message.contains("unknown variant `zsdt`"), "{message}");
        let (_, _, key, suggestion, _) = parse_err("[commands]\nrun = \"nevr\"\n");
        assert_eq!(
            (key.as_str(), suggestion.as_deref()),
            ("commands.run", Some("never"))
        );
        let (_, _, _, suggestion, _) = parse_err("[compression]\nalgorithm = \"lz4\"\n");
        assert_eq!(suggestion, None);
    }

    #[test]
    fn categories() {
        let c = parse_ok("[collect]\nskip_categories = [\"pve-cluster\", \"ssh\"]\n");
        assert_eq!(c.collect.skip_categories, ["pve-cluster", "ssh"]);

        let (line, column, key, suggestion, message) =
            parse_err("[collect]\nskip_categories = [\"ssh\", \"pve_clustr\"]\n");
        assert_eq!(
            (line, column, key.as_str()),
            (2, 27, "collect.skip_categories")
        );
        assert_eq!(suggestion.as_deref(), Some("pve-cluster"));
        assert_eq!(
            message,
            "invalid value for `collect.skip_categories`: unknown category `pve_clustr`"
        );

        let (_, _, _, suggestion, message) =
            parse_err("[collect]\nskip_categories = [\"everything\"]\n");
        assert_eq!(suggestion, None);
        assert!(
            message.contains("known categories: pve-cluster, corosync"),
            "{message}"
        );
    }

    #[test]
    fn syntax_errors_have_a_line() {
        #[rustfmt::skip]
        let cases: &[(&str, usize)] = &[
            ("backup_dir = \"/x\"\nlog_dir = /var/log\n", 2),
            ("a = 1\n\n[compression\nlevel = 3\n", 3),
            ("backup_dir = \"/a\"\nbackup_dir = \"/b\"\n", 2),
            ("\n\nlevel = \n", 3),
        ];
        for &(text, line) in cases {
            let (l, _, key, suggestion, message) = parse_err(text);
            assert_eq!(l, line, "{text:?}: {message}");
            assert_eq!((key.as_str(), suggestion), ("", None));
            assert!(message.starts_with("TOML syntax error: "), "{message}");
        }
        let err = parse("a = \n", Path::new("/tmp/x.toml"), &Checks::NONE).unwrap_err();
        assert!(err.to_string().starts_with("/tmp/x.toml:1:"), "{err}");
    }

    #[test]
    fn columns_count_characters() {
        let text = "# äöü\n[collect]\nextra_paths = [\"/ä\", \"ü\"]\n";
        let (line, column, _, _, _) = parse_err(text);
        assert_eq!((line, column), (3, 22));
    }

    #[test]
    fn load_sources() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.toml");

        match load_with_default(Some(&missing), Path::new("/nonexistent"), &CHECKS) {
            Err(ConfigError::Read { path, source }) => {
                assert_eq!(path, missing);
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("{other:?}"),
        }
        let err = load_with_default(Some(&missing), &missing, &CHECKS).unwrap_err();
        assert!(err.to_string().starts_with("cannot read config "), "{err}");

        let config = load_with_default(None, &missing, &CHECKS).unwrap();
        assert_eq!(config, Config::default());

        // Not UTF-8: the line and the byte column of the first bad byte.
        let file = dir.path().join("latin1.toml");
        std::fs::write(&file, b"# ok\nbackup_dir = \"/srv/caf\xe9\"\n").unwrap();
        match load(Some(&file), &CHECKS) {
            Err(ConfigError::Invalid {
                line,
                column,
                message,
                ..
            }) => {
                assert_eq!((line, column), (2, 23), "{message}");
                assert!(message.contains("byte 0xe9 at byte column 23"), "{message}");
            }
            other => panic!("{other:?}"),
        }

        let file = dir.path().join("proxkeep.toml");
        std::fs::write(&file, FULL).unwrap();
        let config = load(Some(&file), &CHECKS).unwrap();
        assert_eq!(config, full_config());
        let config = load_with_default(None, &file, &CHECKS).unwrap();
        assert_eq!(config, full_config());

        std::fs::write(&file, "[compression]\nlevel = 0\n").unwrap();
        match load(Some(&file), &CHECKS) {
            Err(ConfigError::Invalid { path, line, .. }) => assert_eq!((path, line), (file, 2)),
            other => panic!("{other:?}"),
        }

        // A directory (or any other read failure) at the default path is an error.
        let err = load_with_default(None, dir.path(), &CHECKS).unwrap_err();
        assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    }

    #[test]
    fn render_round_trips() {
        let mut odd = full_config();
        odd.min_free_space = 1_234_567;
        odd.commands.timeout = Duration::from_millis(1500);
        odd.compression = CompressionConfig {
            algorithm: Compression::None,
            level: 0,
            threads: 0,
        };
        for config in [Config::default(), full_config(), odd] {
            let text = render_redacted(&config);
            assert_eq!(parse_ok(&text), config, "{text}");
            assert!(!text.contains(REDACTED));
        }
        let text = render_redacted(&Config::default());
        for line in [
            "backup_dir = \"/var/backups/proxkeep\"",
            "min_free_space = \"1GiB\"",
            "[compression]",
            "algorithm = \"zstd\"",
            "level = 3",
            "skip_categories = []",
            "timeout = \"30s\"",
            "run = \"auto\"",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing {line:?} in\n{text}"
            );
        }
    }

    #[test]
    fn compression_and_run_helpers() {
        let table = [
            (Compression::Zstd, "zstd", "tar.zst", 3, 1..=19),
            (Compression::Xz, "xz", "tar.xz", 6, 0..=9),
            (Compression::Gzip, "gzip", "tar.gz", 6, 1..=9),
            (Compression::None, "none", "tar", 0, 0..=0),
        ];
        for (c, name, ext, level, range) in table {
            assert_eq!(
                (c.name(), c.extension(), c.default_level()),
                (name, ext, level)
            );
            assert_eq!(c.level_range(), range);
            assert_eq!(c.to_string(), name);
            assert_eq!(name.parse::<Compression>(), Ok(c));
        }
        assert_eq!("gz".parse::<Compression>(), Ok(Compression::Gzip));
        assert_eq!("ZSTD".parse::<Compression>(), Ok(Compression::Zstd));
        let err = "lz4".parse::<Compression>().unwrap_err();
        assert!(
            err.contains("zstd") && err.contains("gzip") && err.contains("none"),
            "{err}"
        );

        let run = |v: &str| toml::Value::from(v).try_into::<RunCommands>().ok();
        assert_eq!(run("never"), Some(RunCommands::Never));
        assert_eq!(run("sometimes"), None);
    }
}
