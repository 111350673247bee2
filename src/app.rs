//! The journeys, one module each: they take resolved inputs (config, root, clock, cancel flag), do the work
//! through the domain modules, and return a report value that says its own exit code. Printing is the CLI's.

pub mod after_run;
pub mod backup;
pub mod catalog;
pub mod check;
pub mod drill;
pub mod network;
pub mod prune;
pub mod restore;
pub mod runbook;

pub fn exit_if(bad: bool, code: i32) -> i32 {
    if bad { code } else { crate::exit::OK }
}

/// `p` made absolute against the working directory (as given when that fails).
pub fn absolute(p: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The tiers a `--tier` argument selects (`None`: all), by label (`secondary:usb`) or bare name (`usb`);
/// `Err` names them, after `also` (the choices besides the tiers).
pub fn select_tiers<'t, T: crate::store::tier::Tier + ?Sized>(
    tiers: &'t [Box<T>],
    which: Option<&str>,
    also: &str,
) -> Result<Vec<&'t T>, String> {
    let matches =
        |label: String, w: &str| label == w || label.split_once(':').is_some_and(|(_, n)| n == w);
    let selected: Vec<&T> = tiers
        .iter()
        .filter(|t| which.is_none_or(|w| matches(t.label(), w)))
        .map(|t| t.as_ref())
        .collect();
    if selected.is_empty() {
        let names: Vec<String> = tiers.iter().map(|t| t.label()).collect();
        let which = which.unwrap_or("");
        return Err(format!(
            "no tier {which:?} (tiers: {also}{})",
            names.join(", ")
        ));
    }
    Ok(selected)
}
