//! The archive: one self-describing tar file (see `docs/format.md`).

pub mod compression;
pub mod entries;
pub mod format;
pub mod name;
pub mod probe;
pub mod reader;
pub mod rules;
pub mod session;
pub mod writer;

use sha2::{Digest, Sha256};

pub fn sha256_hex(data: &[u8]) -> String {
    format::hex(&Sha256::digest(data))
}
