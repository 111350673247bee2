//! Command groups of the binary beyond backup: each file owns its subcommands and their wiring.

pub mod crypt;
pub mod inspect;
pub mod notify;
pub mod restore;

use proxkeep::config::{self, Config};
use proxkeep::host::Root;
use std::path::PathBuf;

/// Global options every command sees.
pub struct Globals {
    pub config_path: Option<PathBuf>,
    pub root: Root,
    pub json: bool,
    /// -1 quiet, 0 normal, 1+ verbose.
    pub verbosity: i8,
}

/// An error with the exit code it maps to.
pub struct Exit(pub i32, pub anyhow::Error);

impl Exit {
    pub fn usage(e: impl Into<anyhow::Error>) -> Exit {
        Exit(proxkeep::exit::USAGE, e.into())
    }
    pub fn failed(e: impl Into<anyhow::Error>) -> Exit {
        Exit(proxkeep::exit::FAILED, e.into())
    }
}

impl Globals {
    pub fn load_config(&self) -> Result<Config, Exit> {
        let names = proxkeep::catalog::category_names();
        let checks = config::Checks {
            categories: &names,
            recipient: |r| proxkeep::crypt::parse_recipient(r).map(drop),
        };
        config::load(self.config_path.as_deref(), &checks)
            .map(|(c, _)| c)
            .map_err(Exit::usage)
    }
}
