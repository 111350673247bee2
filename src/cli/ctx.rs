//! What every command needs, resolved once: the config, the host root, the clock, the backup directory, the
//! cancel flag, and how to print.

use super::Exit;
use super::args::{Cli, Command, PmxcfsCommand, RestoreCommand};
use super::emit::Emit;
use anyhow::anyhow;
use proxkeep::app::absolute;
use proxkeep::config::{self, Config};
use proxkeep::host::{self, Root};
use proxkeep::output::{Log, Redactor};
use proxkeep::store::tier::{self, Resolved};
use rustix::fs::Access;
use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// Never set: listing a tier or fetching an archive is not interrupted.
pub static NEVER: AtomicBool = AtomicBool::new(false);

pub struct Ctx {
    pub config_path: Option<PathBuf>,
    pub root: Root,
    pub verbosity: i8,
    /// `PROXKEEP_NOW` (tests) or the clock, read once.
    pub now: jiff::Timestamp,
    pub cancel: &'static AtomicBool,
    pub out: Emit,
    config: OnceCell<Config>,
}

impl Ctx {
    pub fn new(cli: &Cli, cancel: &'static AtomicBool) -> Result<Ctx, Exit> {
        let verbosity = if cli.quiet { -1 } else { cli.verbose as i8 };
        let root = Root::new(cli.root.clone().unwrap_or_else(|| PathBuf::from("/")));
        if !root.dir().is_dir() {
            let dir = root.dir().display();
            return Err(Exit::usage(anyhow!("--root {dir}: not a directory")));
        }
        let now = std::env::var("PROXKEEP_NOW")
            .ok()
            .and_then(|s| s.parse().ok());
        Ok(Ctx {
            config_path: cli.config.clone(),
            root,
            verbosity,
            now: now.unwrap_or_else(jiff::Timestamp::now),
            cancel,
            out: Emit {
                json: cli.json,
                redactor: None,
            },
            config: OnceCell::new(),
        })
    }

    pub fn json(&self) -> bool {
        self.out.json
    }

    /// The config (loaded on first use: commands that do not need it work without one). A bad file is exit 2.
    pub fn config(&self) -> Result<&Config, Exit> {
        if let Some(c) = self.config.get() {
            return Ok(c);
        }
        let names = proxkeep::catalog::category_names();
        let c = config::load(self.config_path.as_deref(), &checks(&names)).map_err(Exit::usage)?;
        Ok(self.config.get_or_init(|| c))
    }

    /// `--dir` or the config's backup directory.
    pub fn backup_dir(&self, dir: &Option<PathBuf>) -> Result<PathBuf, Exit> {
        Ok(match dir {
            Some(d) => d.clone(),
            None => self.config()?.backup_dir.clone(),
        })
    }

    pub fn hostname(&self) -> String {
        host::hostname(&self.root)
    }

    /// A run log to stderr at the global verbosity.
    pub fn log(&self, redactor: Redactor) -> Log {
        Log::new(self.verbosity, redactor)
    }

    /// An ARCHIVE argument: a path, a file name in the backup dir, `latest`, `latest~N`, or `NAME:ARCHIVE` on a
    /// configured remote (fetched; the copy lives as long as the returned value) or secondary.
    pub fn resolve(&self, spec: &str, dir: &Option<PathBuf>) -> Result<Resolved, Exit> {
        let config = self.config()?;
        let dir = self.backup_dir(dir)?;
        let host = self.hostname();
        let r = tier::resolve_archive(spec, config, &dir, &host, &NEVER).map_err(|e| {
            let hint = suggest(spec, &dir, &host).unwrap_or_default();
            Exit::usage(anyhow!("{e}{hint}"))
        })?;
        match not_an_archive(&r.path) {
            Some(why) => Err(Exit::usage(anyhow!(
                "{} is not a proxkeep archive: {why}",
                r.path.display()
            ))),
            None => Ok(r),
        }
    }

    /// Not root: say once, up front, what this user cannot read or write. Writing runs (`backup`, `restore`
    /// onto `/`) stop with exit 4; the others go on with one warning.
    pub fn warn_unprivileged(&self, cmd: &Command) -> Result<(), Exit> {
        if rustix::process::geteuid().is_root() {
            return Ok(());
        }
        let user = std::env::var("USER")
            .unwrap_or_else(|_| format!("uid {}", rustix::process::geteuid().as_raw()));
        let onto_root = |t: &Option<PathBuf>| {
            absolute(t.as_deref().unwrap_or(self.root.dir())) == Path::new("/")
        };
        let (writes, onto_slash) = match cmd {
            Command::Backup(a) => (!a.dry_run, false),
            Command::Restore(RestoreCommand::Restore(a)) => {
                (!a.dry_run, !a.dry_run && onto_root(&a.target))
            }
            Command::Restore(RestoreCommand::Pmxcfs {
                action: PmxcfsCommand::Restore(a),
            }) => (true, onto_root(&a.target)),
            _ => (false, false),
        };
        let not_root = format!("running as {user}, not root");
        let refuse = |what: &str| {
            let e = anyhow!("{not_root}: {what}; run it as root");
            Err(Exit::new(proxkeep::exit::PREFLIGHT, e))
        };
        if onto_slash {
            return refuse("a restore onto / must set owners and write /etc");
        }
        let mut cannot = Vec::new();
        for p in [
            "/etc/pve/priv",
            "/etc/shadow",
            "/etc/proxmox-backup",
            "/root",
            "/var/lib/pve-cluster/config.db",
        ] {
            let full = self.root.path(p);
            if full.exists() && !can(&full, Access::READ_OK) {
                cannot.push(format!("read {}", full.display()));
            }
        }
        // Reading the real host without its secrets is no backup; a tree under --root is the user's business
        // (its unreadable files are warnings, as always).
        let mut fatal = writes && self.root.dir() == Path::new("/") && !cannot.is_empty();
        if let Ok(c) = self.config() {
            if c.backup_dir.exists() && !can(&c.backup_dir, Access::READ_OK | Access::EXEC_OK) {
                cannot.push(format!("read {}", c.backup_dir.display()));
            }
            let lock_dir = c.lock_file.parent().unwrap_or(Path::new("/"));
            for d in [c.backup_dir.as_path(), c.log_dir.as_path(), lock_dir]
                .into_iter()
                .filter(|_| writes)
            {
                if d.exists() && !can(d, Access::WRITE_OK | Access::EXEC_OK) {
                    cannot.push(format!("write {}", d.display()));
                    fatal = true;
                }
            }
        }
        if cannot.is_empty() {
            return Ok(());
        }
        let cannot = format!("cannot {}", cannot.join(", "));
        if fatal {
            return refuse(&cannot);
        }
        eprintln!("warning: {not_root}: {cannot}");
        Ok(())
    }
}

/// Why the file at `path` is not an archive at all (the wrong file: a usage error, not damage): it is not named
/// like an archive and starts with none of the formats proxkeep writes. `None` for anything else, a damaged
/// archive included.
fn not_an_archive(path: &Path) -> Option<String> {
    use proxkeep::archive::{compression::Compression, name, reader};
    use std::io::Read;
    let file_name = proxkeep::store::file_name(path);
    if name::ArchiveName::parse(&file_name).is_some() || name::is_safety_file_name(&file_name) {
        return None;
    }
    let mut head = Vec::with_capacity(512);
    std::fs::File::open(path)
        .ok()?
        .take(512)
        .read_to_end(&mut head)
        .ok()?;
    let tar = head.get(257..262) == Some(b"ustar".as_slice());
    let known =
        reader::sniff(&head) != Compression::None || proxkeep::crypt::is_encrypted(&head) || tar;
    let what = if head.is_empty() {
        "it is empty"
    } else {
        "it is neither zstd, xz, gzip, age nor tar"
    };
    (!known).then(|| what.to_string())
}

/// For an ARCHIVE argument that matched nothing: other hosts' archives in `dir`, and the nearest file name.
fn suggest(spec: &str, dir: &Path, host: &str) -> Option<String> {
    if spec.contains('/') {
        return None;
    }
    let all = proxkeep::store::list(dir, None).ok()?;
    let mut hints = Vec::new();
    let mut others: Vec<&str> = all.iter().map(|a| a.name.host.as_str()).collect();
    others.sort();
    others.dedup();
    others.retain(|h| *h != host);
    if !others.is_empty() && all.iter().all(|a| a.name.host != host) {
        let (d, others) = (dir.display(), others.join(", "));
        hints.push(format!(
            "{d} holds no archive of this host ({host}), only of {others}: `proxkeep list --all-hosts --dir {d}` \
             lists them, and an archive is named by its file name"
        ));
    }
    if proxkeep::store::latest_offset(spec).is_none() {
        let near = all
            .iter()
            .map(|a| (strsim::osa_distance(spec, &a.file), &a.file))
            .min()
            .filter(|(d, _)| *d <= spec.len().div_ceil(4).max(3));
        hints.extend(near.map(|(_, f)| format!("did you mean `{f}`?")));
    }
    (!hints.is_empty()).then(|| format!("; {}", hints.join("; ")))
}

fn can(path: &Path, mode: Access) -> bool {
    rustix::fs::access(path, mode).is_ok()
}

/// What loading a config checks on behalf of the modules config does not import: the catalog's category
/// `names` and crypt's recipient syntax.
pub fn checks<'a>(names: &'a [&'a str]) -> config::Checks<'a> {
    config::Checks {
        categories: names,
        recipient: |r| proxkeep::crypt::parse_recipient(r).map(drop),
    }
}
