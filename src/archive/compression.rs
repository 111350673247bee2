//! Archive compression algorithms: names, extensions, level ranges.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::RangeInclusive;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Zstd,
    Xz,
    #[serde(alias = "gz")]
    Gzip,
    #[default]
    None,
}

impl Compression {
    /// All algorithms, in the order they are listed to users.
    pub const ALL: [Compression; 4] = [
        Compression::Zstd,
        Compression::Xz,
        Compression::Gzip,
        Compression::None,
    ];

    /// File name extension of an archive compressed with this algorithm (without leading dot).
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Zstd => "tar.zst",
            Compression::Xz => "tar.xz",
            Compression::Gzip => "tar.gz",
            Compression::None => "tar",
        }
    }

    /// Level used when the config does not set `compression.level`.
    pub fn default_level(self) -> i32 {
        match self {
            Compression::Zstd => 3,
            Compression::Xz | Compression::Gzip => 6,
            Compression::None => 0,
        }
    }

    /// Valid values of `compression.level` for this algorithm.
    pub fn level_range(self) -> RangeInclusive<i32> {
        match self {
            Compression::Zstd => 1..=19,
            Compression::Xz => 0..=9,
            Compression::Gzip => 1..=9,
            Compression::None => 0..=0,
        }
    }

    /// Canonical lowercase name, as written in the config file.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
            Compression::Gzip => "gzip",
            Compression::None => "none",
        }
    }
}

impl FromStr for Compression {
    type Err = String;

    /// Accepts `zstd`, `xz`, `gzip`, `gz` and `none` (ASCII case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let name = if lower == "gz" { "gzip" } else { &lower };
        let found = Self::ALL.into_iter().find(|c| c.name() == name);
        found
            .ok_or_else(|| format!("unknown compression `{s}` (valid: zstd, xz, gzip or gz, none)"))
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
