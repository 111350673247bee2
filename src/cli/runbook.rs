//! `runbook`: presenter only; the work is in `proxkeep::app::runbook`.

use super::args::RunbookArgs;
use super::{Exit, ctx::Ctx};
use proxkeep::app::runbook;
use proxkeep::output::esc;

pub fn run(ctx: &Ctx, a: &RunbookArgs) -> Result<i32, Exit> {
    let resolved = ctx.resolve(a.archive.as_deref().unwrap_or("latest"), &a.dir)?;
    let tier = resolved.tier.as_deref();
    let report = runbook::run(&resolved.path, tier, a.format, a.out.as_deref())
        .map_err(|e| Exit::new(e.exit_code(), e))?;
    match &report.out {
        Some(path) => ctx.out.result(&report, |o| {
            let (n, f) = (report.sections.len(), report.format.name());
            let p = path.display().to_string();
            writeln!(o, "runbook ({f}, {n} sections) written to {}", esc(&p))
        })?,
        None if ctx.json() => ctx.out.json(&report.runbook)?,
        None => ctx.out.text(|o| o.write_all(report.text.as_bytes()))?,
    }
    Ok(proxkeep::exit::OK)
}
