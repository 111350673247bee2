//! `key generate`, `decrypt`, and the keys read commands decrypt with (`--identity`, `--passphrase-file`).

use super::args::{Cli, KeyAction, KeyCommand};
use super::{Exit, ctx::Ctx};
use anyhow::anyhow;
use proxkeep::units::format_size;
use proxkeep::{collect, crypt, exit, host};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The keys read commands decrypt with: `--identity`/`--passphrase-file`, else the config's passphrase file
/// (so a host can verify its own passphrase-encrypted archives without flags).
pub fn install(cli: &Cli, ctx: &Ctx) -> Result<(), Exit> {
    let from_config = || {
        let config = cli.identities.is_empty().then(|| ctx.config().ok())??;
        config.encryption.as_ref()?.passphrase_file.clone()
    };
    let passphrase = cli.passphrase_file.clone().or_else(from_config);
    if cli.identities.is_empty() && passphrase.is_none() {
        return Ok(());
    }
    let (keys, warnings) = crypt::Keys::load(&cli.identities, passphrase.as_deref())
        .map_err(|e| Exit::new(e.exit_code(), e))?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    crypt::install(keys);
    Ok(())
}

pub fn run(ctx: &Ctx, cmd: &KeyCommand) -> Result<i32, Exit> {
    match cmd {
        KeyCommand::Key {
            action: KeyAction::Generate { out },
        } => generate(ctx, out.as_deref()),
        KeyCommand::Decrypt { archive, out, dir } => decrypt(ctx, archive, out, dir),
    }
}

#[derive(Serialize)]
struct Generated<'a> {
    recipient: String,
    identity_file: &'a Path,
}

fn generate(ctx: &Ctx, out: Option<&Path>) -> Result<i32, Exit> {
    let created = ctx.now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let (text, public) = crypt::generate(&created);
    let Some(out) = out else {
        if ctx.json() {
            return Err(Exit::usage(anyhow!(
                "--json needs --out FILE: the identity is secret and never goes into a JSON document"
            )));
        }
        // Like age-keygen: the identity on stdout, the recipient on stderr.
        use age::secrecy::ExposeSecret;
        ctx.out
            .text(|o| o.write_all(text.expose_secret().as_bytes()))?;
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
    let doc = Generated {
        recipient: public.to_string(),
        identity_file: out,
    };
    ctx.out.result(&doc, |o| writeln!(o, "{public}"))?;
    eprintln!(
        "identity written to {} (mode 0600); put the line above into [encryption] recipients, \
         and keep a copy of the identity off this host: without it no archive can be opened",
        out.display()
    );
    // The key must not travel inside the archives it opens.
    if let Ok(config) = ctx.config() {
        let root = &ctx.root;
        let plan = collect::scan(root, &host::HostFacts::detect(root), config);
        let abs = proxkeep::app::absolute(out);
        if proxkeep::app::backup::collects(&plan, root, &abs) {
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

#[derive(Serialize)]
struct Decrypted<'a> {
    archive: &'a Path,
    out: &'a Path,
    bytes: u64,
}

fn decrypt(ctx: &Ctx, archive: &str, out: &Path, dir: &Option<PathBuf>) -> Result<i32, Exit> {
    let resolved = ctx.resolve(archive, dir)?;
    let src = &resolved.path;
    let out = if out.is_dir() {
        let name = src.file_name().unwrap_or_default().to_string_lossy();
        out.join(name.strip_suffix(".age").unwrap_or(&name))
    } else {
        out.to_path_buf()
    };
    let bytes = crypt::decrypt_file(src, &out, &crypt::installed()).map_err(|e| match e {
        crypt::DecryptFileError::Crypt(c) => {
            Exit::new(c.exit_code(), anyhow!("{}: {c}", src.display()))
        }
        crypt::DecryptFileError::Io(what, e) => Exit::failed(anyhow!("{what}: {e}")),
    })?;
    let doc = Decrypted {
        archive: src,
        out: &out,
        bytes,
    };
    let size = format_size(bytes);
    ctx.out.result(&doc, |o| {
        writeln!(o, "{} -> {} ({size})", src.display(), out.display())
    })?;
    Ok(exit::OK)
}
