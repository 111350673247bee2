//! The journeys, one module each: they take resolved inputs (config, root, clock, cancel flag), do the work
//! through the domain modules, and return a report value that says its own exit code. Printing is the CLI's.

pub mod after_run;
pub mod backup;
pub mod catalog;
pub mod check;
pub mod prune;
pub mod restore;

/// `code` when `bad`, else success.
pub fn exit_if(bad: bool, code: i32) -> i32 {
    if bad { code } else { crate::exit::OK }
}

/// `p` made absolute against the working directory (as given when that fails).
pub fn absolute(p: &std::path::Path) -> std::path::PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// A `--tier` argument names a tier by its label (`secondary:usb`) or by its bare name (`usb`).
pub fn tier_matches(label: &str, which: &str) -> bool {
    label == which || label.split_once(':').is_some_and(|(_, n)| n == which)
}
