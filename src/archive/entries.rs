//! The index entries of an archive being written, kept compact: each is serialized as it is produced, into a
//! zstd stream in memory (a few tens of bytes an entry), and index.json is spliced from those bytes at the end
//! (byte for byte what serializing the whole [`Index`] gives). Besides, only the totals, a CRC of the bytes
//! kept (checked when they are read back into index.json) and a digest of what the read-back must find in the
//! tar headers ([`EntryDigest`]) are kept. No file is needed: a full disk or no free inode fails nothing more.

use super::format::{Index, IndexEntry, Kind, Totals, path_fields};
use sha2::{Digest, Sha256};
use std::io::{self, Read, Write};

/// A running digest of entries as the read-back compares them with the index: path, kind, size, mode, owner,
/// mtime, symlink target, xattr names, and whether a file has a content hash. The writer folds in its index
/// entries, the read-back the tar headers it decodes; equal digests (and counts) mean every entry matches its
/// index entry, in order. Contents are proved by the stream sum and the hashes the writer took.
#[derive(Clone, Default)]
pub struct EntryDigest {
    hasher: Sha256,
    count: u64,
}

/// What the archive itself holds for one entry: its tar header, and its content's hash once read.
pub(crate) struct Seen {
    pub path: Vec<u8>,
    pub kind: Option<Kind>,
    pub size: u64,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub sha256: Option<[u8; 32]>,
    pub target: Option<Vec<u8>>,
    pub xattrs: Vec<String>,
}

impl EntryDigest {
    /// An entry as the read-back sees it; `hashed`: its content hash is known (a file's must be).
    pub(crate) fn add(&mut self, d: &Seen, hashed: bool) {
        // The symlink target as the index shows it.
        let target = d.target.as_deref().map(|t| path_fields(t).0);
        let h = &mut self.hasher;
        let bytes = |h: &mut Sha256, b: &[u8]| {
            h.update((b.len() as u64).to_le_bytes());
            h.update(b);
        };
        bytes(h, &d.path);
        let kind = d.kind.map_or(0u8, |k| k as u8 + 1);
        h.update([kind, hashed as u8, target.is_some() as u8]);
        for n in [d.size, d.mode.into(), d.uid, d.gid, d.mtime] {
            h.update(n.to_le_bytes());
        }
        bytes(h, target.unwrap_or_default().as_bytes());
        h.update((d.xattrs.len() as u64).to_le_bytes());
        for x in &d.xattrs {
            bytes(h, x.as_bytes());
        }
        self.count += 1;
    }

    /// An index entry as the read-back must find it.
    pub fn add_entry(&mut self, e: &IndexEntry) {
        let seen = Seen {
            path: e.path_bytes(),
            kind: Some(e.kind),
            size: e.size,
            mode: e.mode_bits(),
            uid: e.uid.into(),
            gid: e.gid.into(),
            mtime: e.mtime.max(0) as u64,
            sha256: None,
            target: e.target.clone().map(String::into_bytes),
            xattrs: e.xattrs.clone(),
        };
        self.add(&seen, e.kind == Kind::File && e.sha256.is_some());
    }

    /// (entries folded in, digest).
    pub fn finish(self) -> (u64, [u8; 32]) {
        (self.count, self.hasher.finalize().into())
    }
}

/// The entries written so far (see the module doc).
pub struct EntryLog {
    /// `None` once index.json was made.
    kept: Option<zstd::stream::write::Encoder<'static, Vec<u8>>>,
    /// Bytes kept, and their CRC-32.
    bytes: u64,
    crc: crc32fast::Hasher,
    totals: Totals,
    digest: EntryDigest,
}

impl EntryLog {
    pub fn new() -> io::Result<EntryLog> {
        // Level 1 and a 128 KiB window: little state, and entries resemble their neighbours.
        let mut kept = zstd::stream::write::Encoder::new(Vec::new(), 1)?;
        kept.window_log(17)?;
        Ok(EntryLog {
            kept: Some(kept),
            bytes: 0,
            crc: crc32fast::Hasher::new(),
            totals: Totals::default(),
            digest: EntryDigest::default(),
        })
    }

    pub fn push(&mut self, e: &IndexEntry) -> io::Result<()> {
        let mut json = Vec::with_capacity(256);
        if self.totals.entries > 0 {
            json.push(b',');
        }
        serde_json::to_writer(&mut json, e)?;
        let done = || io::Error::other("index entry added after index.json");
        self.kept.as_mut().ok_or_else(done)?.write_all(&json)?;
        self.crc.update(&json);
        self.bytes += json.len() as u64;
        self.totals.add(e.kind, e.size);
        self.digest.add_entry(e);
        Ok(())
    }

    /// The totals of the entries (warnings not counted).
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// index.json for `index` (whose own `entries` are not used) with these entries: its size, and a reader
    /// of its bytes; read to its end, the reader fails if the bytes kept are not the bytes written.
    /// Also the digest of the entries. Nothing can be pushed after this.
    pub fn index_json(&mut self, index: &Index) -> io::Result<(u64, IndexJson, EntryDigest)> {
        let head = format!(
            "{{\"format_version\":{},\"entries\":[",
            index.format_version
        );
        let whole = serde_json::to_vec(&index.clone_without_entries())?;
        let tail = match whole.strip_prefix(head.as_bytes()) {
            Some(rest) if rest.starts_with(b"]") => rest.to_vec(),
            _ => return Err(io::Error::other("index.json: unexpected serialization")),
        };
        let done = || io::Error::other("index.json made twice");
        let compressed = self.kept.take().ok_or_else(done)?.finish()?;
        let size = head.len() as u64 + self.bytes + tail.len() as u64;
        let kept = Kept {
            file: zstd::stream::read::Decoder::new(io::Cursor::new(compressed))?,
            want: (self.bytes, self.crc.clone().finalize()),
            read: 0,
            crc: crc32fast::Hasher::new(),
        };
        let r = IndexJson {
            head: io::Cursor::new(head.into_bytes()),
            kept,
            tail: io::Cursor::new(tail),
        };
        Ok((size, r, self.digest.clone()))
    }
}

/// The bytes of index.json (see [`EntryLog::index_json`]).
pub struct IndexJson {
    head: io::Cursor<Vec<u8>>,
    kept: Kept,
    tail: io::Cursor<Vec<u8>>,
}

struct Kept {
    file: zstd::stream::read::Decoder<'static, io::BufReader<io::Cursor<Vec<u8>>>>,
    want: (u64, u32),
    read: u64,
    crc: crc32fast::Hasher,
}

impl Read for IndexJson {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.head.read(buf)?;
        if n > 0 {
            return Ok(n);
        }
        let k = &mut self.kept;
        let n = k.file.read(buf)?;
        if n > 0 {
            k.crc.update(&buf[..n]);
            k.read += n as u64;
            return Ok(n);
        }
        if (k.read, k.crc.clone().finalize()) != k.want {
            let why = "the index entries kept while writing changed before index.json was written";
            return Err(io::Error::new(io::ErrorKind::InvalidData, why));
        }
        self.tail.read(buf)
    }
}

impl Index {
    /// A copy of everything but the entries.
    pub fn clone_without_entries(&self) -> Index {
        Index {
            format_version: self.format_version,
            entries: Vec::new(),
            warnings: self.warnings.clone(),
            absent: self.absent.clone(),
            skipped: self.skipped.clone(),
            commands: self.commands.clone(),
            totals: self.totals.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::format::{Absent, CommandRecord, Warning};

    fn entry(path: &[u8], kind: Kind, size: u64) -> IndexEntry {
        let (path, path_hex) = crate::archive::format::path_fields(path);
        IndexEntry {
            path,
            path_hex,
            category: "pve-cluster".into(),
            kind,
            size,
            mode: "0640".into(),
            uid: 0,
            gid: 33,
            mtime: 1_700_000_000,
            sha256: (kind == Kind::File).then(|| "ab".repeat(32)),
            target: (kind == Kind::Symlink).then(|| "../x \"quoted\"\n".into()),
            xattrs: vec!["user.a".into()],
            source: None,
        }
    }

    fn spliced(index: &Index) -> Vec<u8> {
        let mut log = EntryLog::new().unwrap();
        for e in &index.entries {
            log.push(e).unwrap();
        }
        let (size, mut r, _) = log.index_json(index).unwrap();
        drop(log);
        let mut out = Vec::new();
        r.read_to_end(&mut out).unwrap();
        assert_eq!(out.len() as u64, size);
        out
    }

    /// The spliced index.json is exactly what serializing the whole index gives: empty, one entry, many.
    #[test]
    fn index_json_is_the_serialized_index_byte_for_byte() {
        let mut idx = Index::new();
        assert_eq!(spliced(&idx), serde_json::to_vec(&idx).unwrap());
        idx.entries.push(entry(b"etc/pve", Kind::Dir, 0));
        assert_eq!(spliced(&idx), serde_json::to_vec(&idx).unwrap());
        idx.entries.push(entry(b"etc/pve/caf\xe9", Kind::File, 12));
        idx.entries.push(entry(b"etc/pve/link", Kind::Symlink, 0));
        idx.warnings.push(Warning::at("/etc/x", "m\n"));
        idx.absent.push(Absent {
            category: "c".into(),
            path: "/p".into(),
        });
        idx.commands.push(CommandRecord {
            category: "c".into(),
            command: "ip a".into(),
            status: "ok".into(),
            duration_ms: 3,
            output: None,
            stderr: String::new(),
        });
        idx.compute_totals();
        assert_eq!(spliced(&idx), serde_json::to_vec(&idx).unwrap());
    }

    /// A byte of the kept entries changed: reading index.json fails rather than writing other entries.
    #[test]
    fn changed_kept_bytes_fail_the_read() {
        let mut log = EntryLog::new().unwrap();
        log.push(&entry(b"etc/hosts", Kind::File, 1)).unwrap();
        let kept = log.kept.as_mut().unwrap();
        kept.flush().unwrap();
        let at = kept.get_ref().len() / 2;
        kept.get_mut()[at] ^= 0x20;
        let (_, mut r, _) = log.index_json(&Index::new()).unwrap();
        assert!(r.read_to_end(&mut Vec::new()).is_err());
        assert!(log.push(&entry(b"etc/late", Kind::File, 1)).is_err());
    }

    #[test]
    fn digest_tells_every_field() {
        let base = entry(b"etc/pve/link", Kind::Symlink, 0);
        let of = |e: &IndexEntry| {
            let mut d = EntryDigest::default();
            d.add_entry(e);
            d.finish()
        };
        let changes: [fn(&mut IndexEntry); 8] = [
            |e| e.path.push('x'),
            |e| e.kind = Kind::Dir,
            |e| e.mode = "0644".into(),
            |e| e.uid = 1,
            |e| e.gid = 1,
            |e| e.mtime += 1,
            |e| e.target = Some("y".into()),
            |e| e.xattrs.clear(),
        ];
        for change in changes {
            let mut e = base.clone();
            change(&mut e);
            assert_ne!(of(&e), of(&base));
        }
        let file = entry(b"f", Kind::File, 1);
        let (mut bigger, mut unhashed) = (file.clone(), file.clone());
        bigger.size = 2;
        unhashed.sha256 = None;
        assert_ne!(of(&bigger), of(&file));
        assert_ne!(of(&unhashed), of(&file));
    }
}
