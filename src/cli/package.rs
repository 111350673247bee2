//! What a package installs besides the binary, generated from the clap definitions so it never drifts from
//! `--help`: shell completions and man pages.

use super::args::{Cli, CompletionShell};
use super::{Exit, ctx::Ctx};
use anyhow::anyhow;
use clap::CommandFactory;
use proxkeep::fsx;
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
