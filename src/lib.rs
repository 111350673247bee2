//! proxkeep: backup and restore of Proxmox VE / Proxmox Backup Server host configuration.
//!
//! The binary (`src/main.rs`) only parses arguments and maps errors to exit codes; everything else lives here.

pub mod app;
pub mod archive;
pub mod catalog;
pub mod collect;
pub mod config;
pub mod crypt;
pub mod dirwalk;
pub mod drill;
pub mod fsx;
pub mod host;
pub mod inspect;
pub mod metrics;
pub mod notify;
pub mod output;
pub mod pmxcfs;
pub mod preflight;
pub mod pveconf;
pub mod restore;
pub mod runbook;
pub mod runner;
pub mod secrets;
pub mod store;
pub mod units;

/// Exit codes (documented in the README).
pub mod exit {
    pub const OK: i32 = 0;
    /// Failed: no archive was written.
    pub const FAILED: i32 = 1;
    /// Usage or config error.
    pub const USAGE: i32 = 2;
    /// Archive written and verified, with warnings.
    pub const WARNINGS: i32 = 3;
    /// Preflight failed (directories, free space, writability).
    pub const PREFLIGHT: i32 = 4;
    /// Another run holds the lock.
    pub const LOCKED: i32 = 5;
    /// An archive is damaged (verify).
    pub const DAMAGED: i32 = 6;
    /// Interrupted by SIGINT/SIGTERM.
    pub const INTERRUPTED: i32 = 130;
}
