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

    /// (Canonical lowercase name as written in the config file, file name extension without the
    /// leading dot, level used when the config sets none, valid levels.)
    fn facts(self) -> (&'static str, &'static str, i32, RangeInclusive<i32>) {
        match self {
            Compression::Zstd => ("zstd", "tar.zst", 3, 1..=19),
            Compression::Xz => ("xz", "tar.xz", 6, 0..=9),
            Compression::Gzip => ("gzip", "tar.gz", 6, 1..=9),
            Compression::None => ("none", "tar", 0, 0..=0),
        }
    }

    pub fn name(self) -> &'static str {
        self.facts().0
    }

    pub fn extension(self) -> &'static str {
        self.facts().1
    }

    pub fn default_level(self) -> i32 {
        self.facts().2
    }

    pub fn level_range(self) -> RangeInclusive<i32> {
        self.facts().3
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
