//! Restoring onto a new install: the archive's fstab, accounts and sudoers files are not written as they
//! are, but merged with what the new install has ([`fstab`], [`accounts`]) or checked first ([`sudoers`]).
//! The merges are pure; `hook.rs` is the thin part that feeds them (the target's block devices, its
//! login.defs, visudo) and plugs them into restore as [`rewrite`](crate::restore::rewrite) entries.
//!
//! A merge happens only where the target has its own file (a new install); into a directory without one,
//! the archive's file is restored as it is.

pub mod accounts;
pub mod fstab;
mod hook;
pub mod sudoers;

pub use hook::{ACCOUNTS_MERGE, BLKID_FILE_ENV, FSTAB_MERGE, SUDOERS_CHECK};

/// Whether `path` (normalized) holds password hashes: its diffs mask them ([`accounts::mask_hashes`]).
pub fn has_hashes(path: &[u8]) -> bool {
    path == b"etc/shadow" || path == b"etc/gshadow"
}
