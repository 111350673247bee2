//! What a package installs besides the binary, generated from the clap definitions so it never drifts from
//! `--help`: shell completions and man pages; and the config template (`config init`) and `config check`.

use super::args::{Cli, CompletionShell};
use super::{Exit, ctx::Ctx};
use anyhow::anyhow;
use clap::CommandFactory;
use proxkeep::host::{HostFacts, Role};
use proxkeep::{catalog, config, crypt, fsx, output};
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
    let (role, categories) = role_of(ctx, role);
    let text = config::template::render(role.name(), &categories);
    let out = out_of(ctx, out);
    if out == Path::new("-") {
        ctx.out
            .stream(|w| w.write_all(text.as_bytes()))
            .map_err(Exit::failed)?;
        return Ok(proxkeep::exit::OK);
    }
    write_new(out, text, "config init")?;
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

/// The role a template is for (`--role`, else detected under --root), and the categories it collects.
fn role_of(ctx: &Ctx, role: Option<&str>) -> (Role, Vec<&'static str>) {
    let role = role
        .and_then(Role::parse)
        .unwrap_or_else(|| HostFacts::detect(&ctx.root).role);
    let categories = catalog::CATEGORIES
        .iter()
        .filter(|c| c.applies_to(role.has_pve(), role.has_pbs()))
        .map(|c| c.name)
        .collect();
    (role, categories)
}

/// `--out`, else `--config`, else the default config path.
fn out_of<'a>(ctx: &'a Ctx, out: Option<&'a Path>) -> &'a Path {
    out.or(ctx.config_path.as_deref())
        .unwrap_or(Path::new(config::DEFAULT_CONFIG_PATH))
}

/// `text` as the new 0600 file `out` (its missing directories 0700), never replacing one: the config may hold
/// secrets, and an existing one is the admin's.
fn write_new(out: &Path, text: String, command: &str) -> Result<(), Exit> {
    let cannot = |e: std::io::Error| anyhow!("cannot write {}: {e}", out.display());
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| Exit::failed(cannot(e)))?;
    }
    crypt::write_identity_file(out, &text.into()).map_err(|e| match e.kind() {
        ErrorKind::AlreadyExists => Exit::usage(anyhow!(
            "{} exists: {command} never replaces a file (check it with `proxkeep config check {0}`, \
             or write elsewhere with --out FILE)",
            out.display()
        )),
        _ => Exit::failed(cannot(e)),
    })
}

/// `config import FILE`: the reference tool's backup.env carried into a new config (the template with the
/// carried settings in it, written like `config init` writes), and one report line per key of FILE. What is
/// written must load as a run loads it; values are never printed.
pub fn config_import(ctx: &Ctx, file: &Path, out: Option<&Path>) -> Result<i32, Exit> {
    let out = out_of(ctx, out);
    if out == Path::new("-") {
        return Err(Exit::usage(anyhow!(
            "config import writes secrets: --out needs a file, not `-`"
        )));
    }
    let bytes = std::fs::read(file)
        .map_err(|e| Exit::usage(anyhow!("cannot read {}: {e}", file.display())))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| Exit::usage(anyhow!("{}: not UTF-8 text", file.display())))?;
    let import = config::import::import(&text, &|k| std::env::var(k).ok())
        .map_err(|e| Exit::usage(anyhow!("{}:{}: {}", file.display(), e.line, e.message)))?;
    let (role, categories) = role_of(ctx, None);
    let mut toml = format!(
        "# Imported by `proxkeep config import` from {}; what became of each of its keys:\n",
        output::esc(&file.display().to_string())
    );
    for line in &import.lines {
        toml.push_str(&format!("#   {}\n", output::esc(&line.to_string())));
    }
    toml.push('\n');
    toml.push_str(&config::template::render_with(
        role.name(),
        &categories,
        &import.config,
    ));
    let names = catalog::category_names();
    config::parse(&toml, out, &super::ctx::checks(&names)).map_err(|e| {
        Exit::failed(anyhow!(
            "the imported config would not load ({e}); nothing written: please report this"
        ))
    })?;
    write_new(out, toml, "config import")?;
    #[derive(Serialize)]
    struct Imported<'a> {
        written: &'a Path,
        from: &'a Path,
        role: &'static str,
        keys: &'a [config::import::Line],
    }
    let report = Imported {
        written: out,
        from: file,
        role: role.name(),
        keys: &import.lines,
    };
    ctx.out.result(&report, |w| {
        for line in &import.lines {
            writeln!(w, "{}", output::esc(&line.to_string()))?;
        }
        writeln!(
            w,
            "wrote {} (for a {} host); check it with `proxkeep config check {0}`",
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
