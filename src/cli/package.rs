//! What a package installs besides the binary, generated from the clap definitions so it never drifts from
//! `--help`: shell completions and man pages; and the config template (`config init`) and `config check`.

use super::args::{Cli, CompletionShell};
use super::{Exit, ctx::Ctx};
use anyhow::anyhow;
use clap::CommandFactory;
use proxkeep::host::{HostFacts, Role};
use proxkeep::{catalog, config, crypt, fsx};
use serde::Serialize;
use std::io::ErrorKind;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

pub fn completions(ctx: &Ctx, shell: CompletionShell) -> Result<i32, Exit> {
    let shell = match shell {
        CompletionShell::Bash => clap_complete::Shell::Bash,
        CompletionShell::Zsh => clap_complete::Shell::Zsh,
        CompletionShell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "proxkeep", &mut script);
    ctx.out
        .stream(|w| w.write_all(&script))
        .map_err(Exit::failed)?;
    Ok(proxkeep::exit::OK)
}

/// `proxkeep.1` and `proxkeep-SUB[-SUBSUB].1` for every visible subcommand, each written atomically.
pub fn manpages(ctx: &Ctx, dir: &Path) -> Result<i32, Exit> {
    let cannot = |p: &Path, e: std::io::Error| Exit::failed(anyhow!("{}: {e}", p.display()));
    std::fs::DirBuilder::new()
        .recursive(true)
        .create(dir)
        .map_err(|e| cannot(dir, e))?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_pages(cmd, dir, &mut written).map_err(|(p, e)| cannot(&p, e))?;
    ctx.out.result(&written, |w| {
        written
            .iter()
            .try_for_each(|p| writeln!(w, "{}", p.display()))
    })?;
    Ok(proxkeep::exit::OK)
}

fn write_pages(
    cmd: clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> Result<(), (PathBuf, std::io::Error)> {
    let page = clap_mangen::Man::new(cmd.clone()).manual("proxkeep manual");
    let path = dir.join(page.get_filename());
    let mut roff = Vec::new();
    page.render(&mut roff)
        .and_then(|()| fsx::write_atomic(&path, &roff, 0o644))
        .map_err(|e| (path.clone(), e))?;
    written.push(path);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), dir, written)?;
    }
    Ok(())
}

/// `config init`: the commented template for this host's role (or `--role`), written as a new 0600 file.
pub fn config_init(ctx: &Ctx, role: Option<&str>, out: Option<&Path>) -> Result<i32, Exit> {
    let role = role
        .and_then(Role::parse)
        .unwrap_or_else(|| HostFacts::detect(&ctx.root).role);
    let categories: Vec<&str> = catalog::CATEGORIES
        .iter()
        .filter(|c| c.applies_to(role.has_pve(), role.has_pbs()))
        .map(|c| c.name)
        .collect();
    let text = config::template::render(role.name(), &categories);
    let out = out
        .or(ctx.config_path.as_deref())
        .unwrap_or(Path::new(config::DEFAULT_CONFIG_PATH));
    if out == Path::new("-") {
        ctx.out
            .stream(|w| w.write_all(text.as_bytes()))
            .map_err(Exit::failed)?;
        return Ok(proxkeep::exit::OK);
    }
    let cannot = |e: std::io::Error| anyhow!("cannot write {}: {e}", out.display());
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Exit::failed(cannot(e)))?;
    }
    // A new 0600 file, never replacing one (the config may hold secrets; an existing one is the admin's).
    crypt::write_identity_file(out, &text.into()).map_err(|e| match e.kind() {
        ErrorKind::AlreadyExists => Exit::usage(anyhow!(
            "{} exists: config init never replaces a file (check it with `proxkeep config check {0}`, \
             or write elsewhere with --out FILE)",
            out.display()
        )),
        _ => Exit::failed(cannot(e)),
    })?;
    #[derive(Serialize)]
    struct Written<'a> {
        written: &'a Path,
        role: &'static str,
    }
    let report = Written {
        written: out,
        role: role.name(),
    };
    ctx.out.result(&report, |w| {
        writeln!(
            w,
            "wrote {} (template for a {} host)",
            out.display(),
            role.name()
        )
    })?;
    Ok(proxkeep::exit::OK)
}

/// `config check FILE`: load FILE exactly as a run would (same checks), and say so; an error is exit 2.
pub fn config_check(ctx: &mut Ctx, file: &Path) -> Result<i32, Exit> {
    ctx.config_path = Some(file.to_path_buf());
    ctx.config()?;
    ctx.out.result(&serde_json::json!({ "valid": file }), |w| {
        writeln!(w, "{}: valid", file.display())
    })?;
    Ok(proxkeep::exit::OK)
}
