//! `key generate` and `decrypt` (issue 6): argument parsing and printing; the work is in `proxkeep::crypt`.

use super::{Exit, Globals};
use anyhow::anyhow;
use clap::Subcommand;
use proxkeep::crypt;
use proxkeep::store::tier;
use proxkeep::{collect, exit, host};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

#[derive(Subcommand, Debug)]
pub enum Commands {
    /// age keys for encrypted archives
    Key {
        #[command(subcommand)]
        action: KeyAction,
    },
    /// Write the plain archive (.tar.zst, ...) out of an encrypted one (needs --identity or --passphrase-file)
    Decrypt {
        /// A path, a file name in the backup dir, `latest` or `latest~N`
        archive: String,
        /// Output file (never replaced), or a directory to write `<archive name without .age>` into
        out: PathBuf,
        /// Backup directory (overrides the config)
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyAction {
    /// New X25519 identity; prints its public recipient (`age1…`) for `[encryption] recipients`
    Generate {
        /// Write the identity to FILE (mode 0600, never replaced) instead of standard output
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

pub fn run(cmd: &Commands, g: &Globals) -> Result<i32, Exit> {
    match cmd {
        Commands::Key {
            action: KeyAction::Generate { out },
        } => generate(g, out.as_deref()),
        Commands::Decrypt { archive, out, dir } => decrypt(g, archive, out, dir.as_deref()),
    }
}

fn generate(g: &Globals, out: Option<&Path>) -> Result<i32, Exit> {
    let created = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let (text, public) = crypt::generate(&created);
    let Some(out) = out else {
        // Like age-keygen: the identity on stdout, the recipient on stderr.
        use age::secrecy::ExposeSecret;
        print!("{}", text.expose_secret());
        eprintln!("public key: {public}");
        return Ok(exit::OK);
    };
    crypt::write_identity_file(out, &text).map_err(|e| {
        let why = if e.kind() == std::io::ErrorKind::AlreadyExists {
            "it exists already (an identity file is never replaced)".to_string()
        } else {
            e.to_string()
        };
        Exit::failed(anyhow!("cannot write {}: {why}", out.display()))
    })?;
    println!("{public}");
    eprintln!(
        "identity written to {} (mode 0600); put the line above into [encryption] recipients, \
         and keep a copy of the identity off this host: without it no archive can be opened",
        out.display()
    );
    // The key must not travel inside the archives it opens.
    if let Ok(config) = g.load_config() {
        let root = &g.root;
        let facts = host::HostFacts::detect(root);
        let plan = collect::scan(root, &facts, &config);
        let abs = std::path::absolute(out).unwrap_or_else(|_| out.to_path_buf());
        if plan
            .items
            .iter()
            .any(|i| i.host_path == abs || root.path(&i.host_path) == abs)
        {
            eprintln!(
                "warning: {} lies inside a path proxkeep backs up: the key would travel with the lock; \
                 move it, or add it to [collect] exclude",
                out.display()
            );
            return Ok(exit::WARNINGS);
        }
    }
    Ok(exit::OK)
}

fn decrypt(g: &Globals, archive: &str, out: &Path, dir: Option<&Path>) -> Result<i32, Exit> {
    static NEVER: AtomicBool = AtomicBool::new(false);
    let config = g.load_config()?;
    let host = host::hostname(&g.root);
    let dir = dir.map_or_else(|| config.backup_dir.clone(), Path::to_path_buf);
    let resolved = tier::resolve_archive(archive, &config, &dir, &host, &NEVER)
        .map_err(|e| Exit::usage(anyhow!(e)))?;
    let src = &resolved.path;
    let out = if out.is_dir() {
        let name = src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        out.join(name.strip_suffix(".age").unwrap_or(&name))
    } else {
        out.to_path_buf()
    };
    let keys = crypt::installed();
    let bytes = crypt::decrypt_file(src, &out, &keys).map_err(|e| match e {
        crypt::DecryptFileError::Crypt(c) => {
            let code = c.exit_code();
            Exit(code, anyhow!("{}: {c}", src.display()))
        }
        crypt::DecryptFileError::Io(what, e) => Exit::failed(anyhow!("{what}: {e}")),
    })?;
    if !g.json {
        println!(
            "{} -> {} ({})",
            src.display(),
            out.display(),
            proxkeep::units::format_size(bytes)
        );
    } else {
        println!(
            "{}",
            serde_json::json!({"archive": src, "out": out, "bytes": bytes})
        );
    }
    Ok(exit::OK)
}
