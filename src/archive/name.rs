//! The one place that knows how archive files are named: `<host>-<role>-<YYYYMMDDTHHMMSSZ>.<ext>`.
//! Listing, retention and tiers all rely on this rule, so only names that parse are ever treated as ours.

use crate::archive::compression::Compression;
use crate::host::Role;
use jiff::Timestamp;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveName {
    pub host: String,
    pub role: Role,
    /// Backup start time, whole seconds, UTC.
    pub time: Timestamp,
    pub compression: Compression,
    /// age-encrypted: `.age` after the compression suffix.
    pub encrypted: bool,
}

/// Suffix of an age-encrypted archive, after the compression suffix (`.tar.zst.age`).
pub const AGE_SUFFIX: &str = ".age";

const TIME_FORMAT: &str = "%Y%m%dT%H%M%SZ";

impl ArchiveName {
    pub fn new(host: &str, role: Role, time: Timestamp, compression: Compression) -> Self {
        let time = Timestamp::from_second(time.as_second()).unwrap_or(time);
        ArchiveName {
            host: host.to_string(),
            role,
            time,
            compression,
            encrypted: false,
        }
    }

    /// The same name for an age-encrypted (or plain) archive.
    pub fn encrypted(mut self, yes: bool) -> Self {
        self.encrypted = yes;
        self
    }

    /// File name without the compression extension (`pve1-pve-20261128T031500Z`): names the run log too.
    pub fn stem(&self) -> String {
        format!("{}-{}-{}", self.host, self.role, format_time(self.time))
    }

    /// Parse a file name; `None` for anything that is not a proxkeep archive name.
    pub fn parse(file_name: &str) -> Option<ArchiveName> {
        let encrypted = file_name.ends_with(AGE_SUFFIX);
        let file_name = file_name.strip_suffix(AGE_SUFFIX).unwrap_or(file_name);
        let (stem, compression) = Compression::ALL.into_iter().find_map(|c| {
            let stem = file_name.strip_suffix(c.extension())?.strip_suffix('.')?;
            Some((stem, c))
        })?;
        // Host names may contain '-', so split from the right: ...-<role>-<time>.
        let (rest, time) = stem.rsplit_once('-')?;
        let (host, role) = rest.rsplit_once('-')?;
        let role = Role::parse(role)?;
        if !host_ok(host) {
            return None;
        }
        let name = ArchiveName::new(host, role, parse_time(time)?, compression);
        Some(name.encrypted(encrypted))
    }
}

impl fmt::Display for ArchiveName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ext, age) = (self.compression.extension(), age_suffix(self.encrypted));
        write!(f, "{}.{ext}{age}", self.stem())
    }
}

/// What a restore-safety archive's name carries instead of a role: such a file is never an [`ArchiveName`],
/// so listing and retention never count it as a scheduled backup (or delete it as an old one).
pub const SAFETY_TAG: &str = "restore-safety";

/// `<host>-restore-safety-<YYYYMMDDTHHMMSSZ>.tar.zst[.age]`: the copy a restore takes of what it replaces.
pub fn safety_file_name(host: &str, time: Timestamp, encrypted: bool) -> String {
    let age = age_suffix(encrypted);
    format!("{host}-{SAFETY_TAG}-{}.tar.zst{age}", format_time(time))
}

fn age_suffix(encrypted: bool) -> &'static str {
    if encrypted { AGE_SUFFIX } else { "" }
}

pub fn is_safety_file_name(file_name: &str) -> bool {
    parse_safety_file_name(file_name).is_some()
}

/// The host and time of a [`safety_file_name`]; `None` for any other name.
pub fn parse_safety_file_name(file_name: &str) -> Option<(String, Timestamp)> {
    let file_name = file_name.strip_suffix(AGE_SUFFIX).unwrap_or(file_name);
    let (rest, time) = file_name.strip_suffix(".tar.zst")?.rsplit_once('-')?;
    let host = rest.strip_suffix(SAFETY_TAG)?.strip_suffix('-')?;
    host_ok(host).then_some(())?;
    Some((host.to_string(), parse_time(time)?))
}

/// A host name as archive names carry it: letters, digits and `-`.
fn host_ok(host: &str) -> bool {
    !host.is_empty() && host.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

pub fn format_time(t: Timestamp) -> String {
    t.strftime(TIME_FORMAT).to_string()
}

pub fn parse_time(s: &str) -> Option<Timestamp> {
    if s.len() != 16 {
        return None;
    }
    // The trailing Z is a literal in the format, so parse civil time and pin it to UTC.
    let dt = jiff::civil::DateTime::strptime(TIME_FORMAT, s).ok()?;
    jiff::tz::TimeZone::UTC.to_timestamp(dt).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn format_and_parse() {
        let t: Timestamp = "2026-11-28T03:15:00Z".parse().unwrap();
        let n = ArchiveName::new("pve-01", Role::Dual, t, Compression::Zstd);
        assert_eq!(n.to_string(), "pve-01-dual-20261128T031500Z.tar.zst");
        assert_eq!(ArchiveName::parse(&n.to_string()), Some(n.clone()));
        let e = n.clone().encrypted(true);
        assert_eq!(e.to_string(), "pve-01-dual-20261128T031500Z.tar.zst.age");
        assert_eq!(ArchiveName::parse(&e.to_string()), Some(e));
        for bad in [
            "pve1-pve-20261128T031500Z.age",
            "pve1-pve-20261128T031500Z.tar.zst.age.age",
            "pve1-pve-20261128T031500Z.tar.bz2",
            "pve1-xxx-20261128T031500Z.tar.zst",
            "pve1-pve-2026112T031500Z.tar.zst",
            "-pve-20261128T031500Z.tar",
            ".pve1-pve-20261128T031500Z.tar.zst.123.partial",
            "pve1-pve-20261128T031500Z.tar.zst.sha256",
            "notes.txt",
        ] {
            assert_eq!(ArchiveName::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn safety_archives_are_never_backups() {
        let t: Timestamp = "2026-11-28T03:15:00Z".parse().unwrap();
        let n = safety_file_name("pve-01", t, false);
        assert_eq!(n, "pve-01-restore-safety-20261128T031500Z.tar.zst");
        assert!(is_safety_file_name(&n));
        // Retention and listing only ever act on names that parse; this one must not.
        assert_eq!(ArchiveName::parse(&n), None);
        assert!(!is_safety_file_name("pve-01-pve-20261128T031500Z.tar.zst"));
        assert!(!is_safety_file_name(
            "-restore-safety-20261128T031500Z.tar.zst"
        ));
        assert!(!is_safety_file_name("x-restore-safety-2026.tar.zst"));
    }

    proptest! {
        #[test]
        fn safety_names_never_parse_as_backups(host in "[a-z0-9][a-z0-9-]{0,20}", secs in 0i64..4_000_000_000) {
            let n = safety_file_name(&host, Timestamp::from_second(secs).unwrap(), secs % 2 == 0);
            prop_assert!(is_safety_file_name(&n));
            prop_assert_eq!(ArchiveName::parse(&n), None);
        }

        #[test]
        fn round_trip(host in "[a-z0-9][a-z0-9-]{0,20}", secs in 0i64..4_000_000_000, r in 0usize..4, c in 0usize..4, age: bool) {
            let role = [Role::Pve, Role::Pbs, Role::Dual, Role::Linux][r];
            let comp = Compression::ALL[c];
            let n = ArchiveName::new(&host, role, Timestamp::from_second(secs).unwrap(), comp).encrypted(age);
            prop_assert_eq!(ArchiveName::parse(&n.to_string()), Some(n));
        }
    }
}
