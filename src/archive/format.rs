//! The archive's self-description: `proxkeep/meta.json` (first entry) and `proxkeep/index.json` (last entry).
//! `docs/format.md` documents both; readers must accept every earlier `format_version`.

use crate::host::{Role, Versions};
use serde::{Deserialize, Serialize};

/// Current archive format. Bump only with a reader that still accepts the older ones.
pub const FORMAT_VERSION: u32 = 1;
pub const META_PATH: &str = "proxkeep/meta.json";
pub const INDEX_PATH: &str = "proxkeep/index.json";
pub const CONFIG_DB_PATH: &str = "proxkeep/pmxcfs/config.db";
pub const COMMANDS_DIR: &str = "proxkeep/commands";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    pub format_version: u32,
    pub tool: String,
    pub tool_version: String,
    pub host: String,
    pub role: Role,
    #[serde(default)]
    pub versions: Versions,
    /// RFC 3339, UTC.
    pub created: String,
    pub created_unix: i64,
    pub categories: Vec<String>,
    pub compression: CompressionInfo,
    /// Where the host was read from (`/` in production).
    #[serde(default = "default_root")]
    pub root: String,
    /// True when `/etc/pve` was rebuilt from config.db because the pmxcfs mount was empty.
    #[serde(default)]
    pub pve_tree_from_db: bool,
    /// What kind of archive: a scheduled `backup`, or a `restore-safety` copy taken before a restore.
    #[serde(default = "default_purpose")]
    pub purpose: String,
    /// How the archive file is encrypted (`age: 1 recipient (x25519)`); absent for a plain archive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<String>,
}

fn default_root() -> String {
    "/".into()
}
fn default_purpose() -> String {
    "backup".into()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CompressionInfo {
    pub algorithm: String,
    pub level: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    File,
    Dir,
    Symlink,
}

impl Kind {
    /// The kind of a tar entry; `None` for what an archive never stores (hard links, devices, FIFOs).
    pub fn of_tar(t: tar::EntryType) -> Option<Kind> {
        match t {
            tar::EntryType::Regular | tar::EntryType::Continuous => Some(Kind::File),
            tar::EntryType::Directory => Some(Kind::Dir),
            tar::EntryType::Symlink => Some(Kind::Symlink),
            _ => None,
        }
    }

    /// The kind of a file on disk; `None` for what an archive never stores (sockets, FIFOs, devices).
    pub fn of_file(ft: std::fs::FileType) -> Option<Kind> {
        [
            (ft.is_file(), Kind::File),
            (ft.is_dir(), Kind::Dir),
            (ft.is_symlink(), Kind::Symlink),
        ]
        .into_iter()
        .find_map(|(is, k)| is.then_some(k))
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Dir => "dir",
            Kind::Symlink => "symlink",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Path inside the archive (`etc/pve/storage.cfg`); lossy when the name is not UTF-8 (see `path_hex`).
    pub path: String,
    /// Exact bytes of the path, hex encoded, only when it is not valid UTF-8.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hex: Option<String>,
    pub category: String,
    pub kind: Kind,
    pub size: u64,
    /// Permission bits in octal, e.g. "0640".
    pub mode: String,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Names of the extended attributes stored with the entry (values are in the tar PAX records).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<String>,
    /// Where the content came from when it was not the host's file system (`config.db`, `command`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

impl IndexEntry {
    /// The entry's path as raw bytes (exact even for non-UTF-8 names).
    pub fn path_bytes(&self) -> Vec<u8> {
        let exact = self.path_hex.as_deref().and_then(hex_decode);
        exact.unwrap_or_else(|| self.path.as_bytes().to_vec())
    }
    pub fn mode_bits(&self) -> u32 {
        u32::from_str_radix(&self.mode, 8).unwrap_or(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub message: String,
}

impl Warning {
    pub fn at(path: impl std::fmt::Display, message: impl Into<String>) -> Warning {
        let path = Some(path.to_string());
        let message = message.into();
        Warning { path, message }
    }
}

/// A source path that does not exist on this host (normal, not a warning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Absent {
    pub category: String,
    pub path: String,
}

/// A file that was deliberately not stored (socket, FIFO, device).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    pub path: String,
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandRecord {
    pub category: String,
    pub command: String,
    /// "ok", "exit 1", "timed out", "not installed", ...
    pub status: String,
    pub duration_ms: u64,
    /// Archive path of the stored stdout; absent when the command did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stderr: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub entries: u64,
    pub files: u64,
    pub dirs: u64,
    pub symlinks: u64,
    /// Sum of the stored file sizes.
    pub bytes: u64,
    pub warnings: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Index {
    pub format_version: u32,
    /// Every entry between meta.json and index.json, in archive order.
    pub entries: Vec<IndexEntry>,
    #[serde(default)]
    pub warnings: Vec<Warning>,
    #[serde(default)]
    pub absent: Vec<Absent>,
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    #[serde(default)]
    pub commands: Vec<CommandRecord>,
    pub totals: Totals,
}

impl Index {
    pub fn new() -> Self {
        Index {
            format_version: FORMAT_VERSION,
            ..Default::default()
        }
    }

    pub fn compute_totals(&mut self) {
        let mut t = Totals::of(self.entries.iter().map(|e| (e.kind, e.size)));
        t.warnings = self.warnings.len() as u64;
        self.totals = t;
    }
}

impl Totals {
    /// The counts of entries of these kinds and sizes (no warnings).
    pub fn of(entries: impl Iterator<Item = (Kind, u64)>) -> Totals {
        let mut t = Totals::default();
        for (kind, size) in entries {
            t.add(kind, size);
        }
        t
    }

    /// Count one more entry.
    pub fn add(&mut self, kind: Kind, size: u64) {
        self.entries += 1;
        match kind {
            Kind::File => {
                self.files += 1;
                self.bytes += size;
            }
            Kind::Dir => self.dirs += 1,
            Kind::Symlink => self.symlinks += 1,
        }
    }
}

/// Largest `meta.json` a reader accepts (a proxkeep archive's is about a KiB).
pub const META_MAX: u64 = 4 << 20;
/// `index.json` may take this much, plus [`INDEX_PER_ENTRY`] for each archive entry before it (a real entry
/// takes about 300 bytes; a 4,096-byte path, its hex and a few xattr names still fit).
pub const INDEX_BASE: u64 = 16 << 20;
pub const INDEX_PER_ENTRY: u64 = 4 << 10;

/// The cap on the size of `meta.json` or `index.json` (`path`), `entries_before` the archive entries before
/// it; `Err` (what to say: the archive is damaged) when its tar header says `size` is larger. Readers check
/// this before reading, then read with [`read_capped`], so no archive makes them hold more than the cap.
pub fn self_cap(path: &[u8], size: u64, entries_before: u64) -> Result<u64, String> {
    let cap = match path == META_PATH.as_bytes() {
        true => META_MAX,
        false => INDEX_BASE.saturating_add(entries_before.saturating_mul(INDEX_PER_ENTRY)),
    };
    if size <= cap {
        return Ok(cap);
    }
    let (size, max) = (
        crate::units::format_size(size),
        crate::units::format_size(cap),
    );
    Err(format!(
        "too large: {size}, more than the {max} a proxkeep archive ever needs here"
    ))
}

/// All of `r`, but an error rather than more than `cap` bytes.
pub fn read_capped(r: impl std::io::Read, cap: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut data = Vec::new();
    r.take(cap.saturating_add(1)).read_to_end(&mut data)?;
    if data.len() as u64 > cap {
        let why = format!("longer than its header says (more than {cap} bytes)");
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, why));
    }
    Ok(data)
}

pub fn hex(bytes: &[u8]) -> String {
    base16ct::lower::encode_string(bytes)
}

/// Hex of either case → bytes; `None` for anything else.
pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    base16ct::mixed::decode_vec(s).ok()
}

/// Path bytes → (display string, hex when not UTF-8).
pub fn path_fields(bytes: &[u8]) -> (String, Option<String>) {
    match std::str::from_utf8(bytes) {
        Ok(s) => (s.to_string(), None),
        Err(_) => (
            String::from_utf8_lossy(bytes).into_owned(),
            Some(hex(bytes)),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_non_utf8_paths() {
        let raw = b"etc/caf\xe9.conf";
        let (lossy, h) = path_fields(raw);
        assert!(lossy.starts_with("etc/caf"));
        let entry = IndexEntry {
            path: lossy,
            path_hex: h,
            category: "extra".into(),
            kind: Kind::File,
            size: 0,
            mode: "0644".into(),
            uid: 0,
            gid: 0,
            mtime: 0,
            sha256: None,
            target: None,
            xattrs: vec![],
            source: None,
        };
        assert_eq!(entry.path_bytes(), raw.to_vec());
        assert_eq!(entry.mode_bits(), 0o644);
        assert_eq!(path_fields(b"etc/hosts"), ("etc/hosts".to_string(), None));
        assert_eq!(hex_decode("zz"), None);
    }

    #[test]
    fn metadata_caps() {
        let meta = META_PATH.as_bytes();
        assert_eq!(self_cap(meta, 1000, 0), Ok(META_MAX));
        let e = self_cap(meta, 100 << 20, 0).unwrap_err();
        assert!(e.contains("100.0 MiB") && e.contains("4.0 MiB"), "{e}");
        let index = INDEX_PATH.as_bytes();
        assert_eq!(
            self_cap(index, 1, 10),
            Ok(INDEX_BASE + 10 * INDEX_PER_ENTRY)
        );
        assert!(self_cap(index, INDEX_BASE + 1, 0).is_err());
        assert_eq!(read_capped(&b"12345"[..], 5).unwrap(), b"12345");
        assert!(read_capped(&b"123456"[..], 5).is_err());
    }

    #[test]
    fn index_json_round_trip_and_old_fields_default() {
        let mut idx = Index::new();
        idx.warnings.push(Warning {
            path: Some("a".into()),
            message: "m".into(),
        });
        idx.compute_totals();
        let json = serde_json::to_string(&idx).unwrap();
        assert_eq!(serde_json::from_str::<Index>(&json).unwrap(), idx);
        // A minimal index (as a future reader may meet from an older writer) still parses.
        let min = r#"{"format_version":1,"entries":[],"totals":{"entries":0,"files":0,"dirs":0,"symlinks":0,"bytes":0,"warnings":0}}"#;
        assert!(serde_json::from_str::<Index>(min).is_ok());
    }
}
