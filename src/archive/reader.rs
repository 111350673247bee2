//! Reading archives back: decompression picked from the file's magic bytes, and a full verification that
//! every entry matches the index. The backup's read-back and `proxkeep verify` are the same code.

use super::format::{self, INDEX_PATH, Index, IndexEntry, Kind, META_PATH, Meta, hex, path_fields};
use crate::archive::compression::Compression;
use crate::archive::entries::EntryDigest;
use crate::archive::rules::{Checker, normalize, show};
use crate::archive::writer::StreamSum;
use crate::crypt::{self, Keys};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counts and hashes the bytes of the file as they are read (the encrypted bytes of an encrypted archive).
/// The hasher is shared so it can be read out from under the decryption layer, which has no `into_inner`.
pub struct HashReader<R> {
    inner: R,
    hasher: Arc<Mutex<FileHash>>,
    offset: Arc<AtomicU64>,
}

/// What is taken of the file's bytes: SHA-256 (what `sha256sum` prints), and CRC-32 (what the archive writer
/// takes of the bytes it writes, for the read-back to compare).
#[derive(Clone, Default)]
struct FileHash {
    sha256: Sha256,
    crc32: crc32fast::Hasher,
}

impl<R: Read> Read for HashReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut h = self.hasher.lock().unwrap_or_else(|e| e.into_inner());
        h.sha256.update(&buf[..n]);
        h.crc32.update(&buf[..n]);
        drop(h);
        self.offset.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Counts the compressed bytes the decoder has *consumed* (not merely buffered), so a decoder error can be
/// placed near the byte that caused it rather than at the end of the last 1 MiB read.
pub struct Consumed<R> {
    inner: R,
    consumed: Arc<AtomicU64>,
}

impl<R: BufRead> Read for Consumed<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// At most this much input is handed to the decoder per call. A decoder that fails returns before it reports
/// what it consumed, so the error is only known to lie in the last input it was given (and in the compressor
/// block being decoded): small chunks keep the reported offset close to the damage, at no measurable cost.
const DECODER_CHUNK: usize = 16 * 1024;

impl<R: BufRead> BufRead for Consumed<R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        let buf = self.inner.fill_buf()?;
        Ok(&buf[..buf.len().min(DECODER_CHUNK)])
    }
    fn consume(&mut self, amt: usize) {
        self.consumed.fetch_add(amt as u64, Ordering::Relaxed);
        self.inner.consume(amt)
    }
}

/// Any byte source: a file, or a file still being written ([`Follow`]).
pub type Source = Box<dyn Read + Send>;
/// The compressed stream: the file itself, or the plaintext of an encrypted one.
type Raw = Consumed<BufReader<Source>>;

pub enum Decoder {
    Zstd(zstd::stream::read::Decoder<'static, Raw>),
    Xz(liblzma::bufread::XzDecoder<Raw>),
    Gzip(flate2::bufread::MultiGzDecoder<Raw>),
    Plain(Raw),
}

impl Read for Decoder {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Zstd(d) => d.read(buf),
            Decoder::Xz(d) => d.read(buf),
            Decoder::Gzip(d) => d.read(buf),
            Decoder::Plain(d) => d.read(buf),
        }
    }
}

impl Decoder {
    fn into_raw(self) -> Raw {
        match self {
            Decoder::Zstd(d) => d.finish(),
            Decoder::Xz(d) => d.into_inner(),
            Decoder::Gzip(d) => d.into_inner(),
            Decoder::Plain(d) => d,
        }
    }
}

pub fn sniff(magic: &[u8]) -> Compression {
    if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else if magic.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        Compression::Xz
    } else if magic.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else {
        Compression::None
    }
}

/// The decoded stream, summed (see [`StreamSum`]) when the reader was asked to.
pub struct Summed {
    inner: Decoder,
    crc: Option<crc32fast::Hasher>,
    len: u64,
}

impl Read for Summed {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(crc) = &mut self.crc {
            crc.update(&buf[..n]);
        }
        self.len += n as u64;
        Ok(n)
    }
}

/// What [`TarReader::finish_summed`] finds at the end of an archive.
pub struct End {
    /// SHA-256 of the file.
    pub sha256: String,
    /// Bytes read from the file.
    pub bytes: u64,
    /// Non-zero bytes after the end of the tar stream.
    pub junk: u64,
    /// Sum of the decoded stream, when it was asked for.
    pub stream: Option<StreamSum>,
    /// CRC-32 of the file.
    pub crc32: u32,
}

pub struct TarReader {
    pub archive: tar::Archive<Summed>,
    pub compression: Compression,
    pub encrypted: bool,
    /// Compressed bytes the decoder consumed so far: where a broken stream broke, within one compressor
    /// block (zstd: 128 KiB at most; none: exact).
    pub offset: Arc<AtomicU64>,
    /// Bytes read from the file (buffered ahead of the decoder).
    read: Arc<AtomicU64>,
    /// Hash of the bytes read from the file.
    hasher: Arc<Mutex<FileHash>>,
}

impl TarReader {
    /// Open an archive file; an encrypted one with the keys the CLI installed ([`crypt::install`]).
    pub fn open(path: &Path) -> io::Result<TarReader> {
        Self::from_source(Box::new(File::open(path)?), 1 << 20, &crypt::installed())
    }

    /// Open any byte source (see [`Follow`]) with a read buffer of `capacity` bytes, decrypting with `keys`
    /// when it is age-encrypted. Decryption errors come as a [`crypt::CryptError`] inside the `io::Error`.
    pub fn from_source(file: Source, capacity: usize, keys: &Keys) -> io::Result<TarReader> {
        Self::summing(file, capacity, keys, false)
    }

    /// [`TarReader::from_source`]; `sum`: also sum the decoded stream (see [`TarReader::finish_summed`]).
    fn summing(file: Source, capacity: usize, keys: &Keys, sum: bool) -> io::Result<TarReader> {
        let read = Arc::new(AtomicU64::new(0));
        let hasher = Arc::new(Mutex::new(FileHash::default()));
        let offset = Arc::new(AtomicU64::new(0));
        let mut hashed = BufReader::with_capacity(
            capacity,
            HashReader {
                inner: file,
                hasher: hasher.clone(),
                offset: read.clone(),
            },
        );
        let encrypted = crypt::is_encrypted(hashed.fill_buf()?);
        let stream: Source = if encrypted {
            Box::new(keys.decrypt(hashed).map_err(crypt::CryptError::into_io)?)
        } else {
            Box::new(hashed)
        };
        let mut raw = Consumed {
            inner: BufReader::with_capacity(capacity, stream),
            consumed: offset.clone(),
        };
        let compression = sniff(raw.fill_buf()?);
        let decoder = match compression {
            Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(raw)?),
            Compression::Xz => Decoder::Xz(liblzma::bufread::XzDecoder::new(raw)),
            Compression::Gzip => Decoder::Gzip(flate2::bufread::MultiGzDecoder::new(raw)),
            Compression::None => Decoder::Plain(raw),
        };
        let summed = Summed {
            inner: decoder,
            crc: sum.then(crc32fast::Hasher::new),
            len: 0,
        };
        Ok(TarReader {
            archive: tar::Archive::new(summed),
            compression,
            encrypted,
            offset,
            read,
            hasher,
        })
    }

    /// After the tar end marker: read the rest of the stream (checks the compressor's trailing checksums),
    /// then hash any raw bytes left. Returns (SHA-256 of the file, file size, non-zero bytes after the tar end).
    pub fn finish(self) -> io::Result<(String, u64, u64)> {
        self.finish_summed().map(|e| (e.sha256, e.bytes, e.junk))
    }

    /// [`TarReader::finish`], with the sum of the whole decoded stream when it was asked for
    /// ([`TarReader::summing`]) and the CRC-32 of the file's bytes.
    pub fn finish_summed(self) -> io::Result<End> {
        let mut decoder = self.archive.into_inner();
        let mut buf = vec![0u8; 64 * 1024];
        let junk = drain(&mut decoder, &mut buf, |b| {
            b.iter().filter(|b| **b != 0).count()
        })?;
        let sum = decoder.crc.map(|crc| StreamSum {
            crc32: crc.finalize(),
            len: decoder.len,
        });
        // Bytes after the end of the compressed stream are damage too.
        let trailing = drain(&mut decoder.inner.into_raw(), &mut buf, <[u8]>::len)?;
        let total = self.read.load(Ordering::Relaxed);
        if trailing > 0 && self.compression != Compression::None {
            let garbage = "bytes of garbage after the end of the compressed stream";
            return Err(invalid(format!("{trailing} {garbage}")));
        }
        let h = self
            .hasher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let sha = hex(&h.sha256.finalize());
        Ok(End {
            sha256: sha,
            bytes: total,
            junk: junk + trailing,
            stream: sum,
            crc32: h.crc32.finalize(),
        })
    }
}

/// Read `r` to its end, summing `count` over what it yields.
fn drain(
    r: &mut impl Read,
    buf: &mut [u8],
    mut count: impl FnMut(&[u8]) -> usize,
) -> io::Result<u64> {
    let mut total = 0u64;
    loop {
        match r.read(buf)? {
            0 => return Ok(total),
            n => total += count(&buf[..n]) as u64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Byte offset in the archive file near which the stream broke.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.path, self.offset) {
            (Some(p), Some(o)) => write!(f, "{p} (at byte {o}): {}", self.message),
            (Some(p), None) => write!(f, "{p}: {}", self.message),
            (None, Some(o)) => write!(f, "at byte {o}: {}", self.message),
            (None, None) => f.write_str(&self.message),
        }
    }
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Verification {
    pub compression: Compression,
    #[serde(skip)]
    pub index: Option<Index>,
    /// SHA-256 of the file (only when the stream could be read to its end).
    pub sha256: Option<String>,
    pub bytes: u64,
    pub entries: u64,
    /// SHA-256 of the index.json entry's bytes (lets a writer check it is the index it wrote).
    #[serde(skip)]
    pub index_sha256: Option<String>,
    /// Sum of the whole decoded stream (read-back only, when the stream could be read to its end).
    #[serde(skip)]
    pub stream: Option<StreamSum>,
    /// CRC-32 of the file (when the stream could be read to its end).
    #[serde(skip)]
    pub file_crc32: Option<u32>,
    pub problems: Vec<Problem>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

pub(crate) use super::entries::Seen;

impl Seen {
    pub(crate) fn of<R: Read>(path: Vec<u8>, entry: &mut tar::Entry<'_, R>) -> Seen {
        let h = entry.header();
        Seen {
            kind: Kind::of_tar(h.entry_type()),
            size: h.size().unwrap_or(0),
            mode: h.mode().unwrap_or(0) & 0o7777,
            uid: h.uid().unwrap_or(0),
            gid: h.gid().unwrap_or(0),
            mtime: h.mtime().unwrap_or(0),
            target: entry.link_name_bytes().map(|t| t.into_owned()),
            xattrs: xattrs(entry, |k, _| k.to_string()),
            sha256: None,
            path,
        }
    }
}

pub(crate) fn problem(path: Option<&[u8]>, message: impl Into<String>) -> Problem {
    Problem {
        path: path.map(|p| path_fields(p).0),
        offset: None,
        message: message.into(),
    }
}

impl Problem {
    pub(crate) fn at(self, offset: Option<u64>) -> Problem {
        Problem { offset, ..self }
    }
}

/// Decompress and read every entry of `path`, hashing file contents, and check them against the archive's
/// index.
pub fn verify(path: &Path) -> io::Result<Verification> {
    let file_len = std::fs::metadata(path)?.len();
    let src = Box::new(File::open(path)?);
    verify_stream(src, Some(file_len), &crypt::installed())
}

/// [`verify`] over any source, such as an archive still being written ([`Follow`]).
/// `file_len`, when known, lets a stream that stops at the end of the file be reported as cut off.
/// An encrypted archive is decrypted with `keys`: a damaged encryption header is a problem found; a missing or
/// wrong key is an error (it says nothing about the archive, so it must not be recorded as damage).
pub fn verify_stream(src: Source, file_len: Option<u64>, keys: &Keys) -> io::Result<Verification> {
    check_stream(src, file_len, keys, None).map(|(v, _)| v)
}

/// The backup's read-back: [`verify_stream`], except that file contents are not hashed entry by entry; the
/// whole decoded stream is summed instead ([`Verification::stream`]), for the writer to compare with the
/// sum of what it wrote. Equal sums mean the entries decode to the bytes whose SHA-256 the writer put in the
/// index (and the decompressor checks its own checksum of the stream all the same). Nor is index.json parsed:
/// only its hash is taken, for the writer to check it is the index it wrote; nor are the entries seen kept:
/// they are folded into an [`EntryDigest`], for the writer to compare with the digest of the entries it wrote.
pub(crate) fn read_back(src: Source, keys: &Keys) -> io::Result<(Verification, EntryDigest)> {
    let mut digest = EntryDigest::default();
    let (v, _) = check_stream(src, None, keys, Some(&mut digest))?;
    Ok((v, digest))
}

/// `digest`: the read-back ([`read_back`]), which folds the entries seen into it.
fn check_stream(
    src: Source,
    file_len: Option<u64>,
    keys: &Keys,
    mut digest: Option<&mut EntryDigest>,
) -> io::Result<(Verification, Vec<Seen>)> {
    let read_back = digest.is_some();
    let mut reader = match TarReader::summing(src, 1 << 20, keys, read_back) {
        Ok(o) => o,
        Err(e) => match crypt::in_io(&e) {
            Some(c @ (crypt::CryptError::Header(_) | crypt::CryptError::Stream(_))) => {
                let mut v = Verification::default();
                v.problems.push(problem(None, c.to_string()));
                return Ok((v, Vec::new()));
            }
            _ => return Err(e),
        },
    };
    let file_len = file_len.unwrap_or(u64::MAX);
    let (encrypted, compression) = (reader.encrypted, reader.compression);
    let offset = reader.offset.clone();
    // A decoder error with everything consumed means the file ends inside the stream: say so plainly. Inside
    // an encrypted archive, age's own error says what is wrong, and offsets are of the decrypted stream.
    let broken = |path: Option<&[u8]>, what: &str, e: &io::Error| {
        let at = offset.load(Ordering::Relaxed);
        let message = if crypt::in_io(e).is_some() {
            format!("{e}{what}")
        } else if encrypted {
            format!("archive stream is damaged{what} (at byte {at} of the decrypted stream): {e}")
        } else if at >= file_len {
            format!("the file ends at byte {file_len} inside the stream (cut off){what}: {e}")
        } else {
            format!("archive stream is damaged{what}: {e}")
        };
        problem(path, message).at((!encrypted).then_some(at))
    };
    let mut v = Verification {
        compression,
        ..Default::default()
    };
    let mut seen: Vec<Seen> = Vec::new();
    let mut checker = Checker::default();
    let mut after_index = false;
    let mut meta_seen = false;
    let mut buf = vec![0u8; 256 * 1024];

    let entries = match reader.archive.entries() {
        Ok(e) => e,
        Err(e) => {
            let message = format!("not a readable archive: {e}");
            v.problems.push(problem(None, message).at(Some(0)));
            return Ok((v, Vec::new()));
        }
    };
    // Err: where the stream broke (the entries up to there are checked all the same).
    let walk = || -> Result<(), Problem> {
        for entry in entries {
            let mut entry = entry.map_err(|e| broken(None, "", &e))?;
            v.entries += 1;
            let tkind = entry.header().entry_type();
            let mut s = Seen::of(entry.path_bytes().into_owned(), &mut entry);
            let (is_meta, is_index) = placement(&mut v, &mut checker, &mut s, tkind, after_index);
            // Read to its end, hashed (on read-back, only meta and index: the stream sum covers the rest). Meta
            // and index are small and parsed; their bytes are kept (within a cap, checked on the header's size: a
            // huge one is refused without being held).
            let hashed = !read_back || is_meta || is_index;
            let (mut hasher, mut small) = (Sha256::new(), Vec::new());
            let is_self = is_meta || is_index;
            let cap = is_self.then(|| format::self_cap(&s.path, s.size, v.entries - 1));
            let keep = matches!(cap, Some(Ok(_)));
            drain(&mut entry, &mut buf, |b| {
                if hashed {
                    hasher.update(b);
                }
                // On read-back the index is checked by its SHA-256 against the writer's, not parsed again.
                if keep && !(read_back && is_index) {
                    small.extend_from_slice(b);
                }
                0
            })
            .map_err(|e| broken(Some(&s.path), " while reading this entry", &e))?;
            if let Some(cap) = cap {
                let parse = |e: serde_json::Error| format!("cannot parse: {e}");
                let parsed = if is_meta {
                    meta_seen = true;
                    cap.and_then(|_| {
                        serde_json::from_slice::<Meta>(&small)
                            .map(drop)
                            .map_err(parse)
                    })
                } else {
                    after_index = true;
                    v.index_sha256 = Some(hex(&hasher.finalize()));
                    match read_back {
                        true => cap.map(|_| ()),
                        false => cap
                            .and_then(|_| serde_json::from_slice(&small).map_err(parse))
                            .map(|i| v.index = Some(i)),
                    }
                };
                if let Err(why) = parsed {
                    v.problems.push(problem(Some(&s.path), why));
                }
                continue;
            }
            s.sha256 = (hashed && s.kind == Some(Kind::File)).then(|| hasher.finalize().into());
            match digest.as_deref_mut() {
                Some(d) => d.add(&s, s.kind == Some(Kind::File)),
                None => seen.push(s),
            }
        }
        Ok(())
    };
    let broke = walk().err();
    let stream_ok = broke.is_none();
    v.problems.extend(broke);

    if stream_ok {
        match reader.finish_summed() {
            Ok(End {
                sha256,
                bytes,
                junk,
                stream,
                crc32,
            }) => {
                v.sha256 = Some(sha256);
                v.stream = stream;
                v.file_crc32 = Some(crc32);
                v.bytes = bytes;
                if junk > 0 {
                    let message =
                        format!("{junk} unexpected non-zero bytes after the end of the tar stream");
                    v.problems.push(problem(None, message).at(Some(bytes)));
                }
            }
            Err(e) => v.problems.push(broken(None, " at its end", &e)),
        }
    } else {
        v.bytes = offset.load(Ordering::Relaxed);
    }
    // Once the stream is read: meta.json and index.json there, and every entry seen as the index lists it.
    if !meta_seen && !v.problems.iter().any(|p| p.message.contains("meta.json")) {
        v.problems
            .push(problem(None, "proxkeep/meta.json is missing"));
    }
    // The index's hash is taken whenever the entry is there, parsable or not.
    if stream_ok && v.index_sha256.is_none() {
        v.problems
            .push(problem(None, "proxkeep/index.json is missing"));
    }
    if let Some(idx) = &v.index {
        compare(idx, &seen, stream_ok, &mut v.problems);
        seen = Vec::new();
    }
    Ok((v, seen))
}

/// The problems of one entry's name and place: the entry rules restore applies (named as restore names it,
/// normalized, when allowed; raw when not), meta.json first, nothing after index.json. Returns whether it is
/// meta.json, and whether index.json.
fn placement(
    v: &mut Verification,
    checker: &mut Checker,
    s: &mut Seen,
    tkind: tar::EntryType,
    after_index: bool,
) -> (bool, bool) {
    match checker.check(&s.path, tkind, s.target.as_deref()) {
        Ok(normalized) => s.path = normalized,
        Err(why) => v.problems.push(problem(
            Some(&s.path),
            format!("{why} (restore refuses this archive)"),
        )),
    }
    let is_meta = s.path == META_PATH.as_bytes();
    let is_index = s.path == INDEX_PATH.as_bytes();
    if (is_meta || is_index) && s.kind != Some(Kind::File) {
        v.problems
            .push(problem(Some(&s.path), "not a regular file entry"));
    }
    if v.entries == 1 && !is_meta {
        v.problems.push(problem(
            None,
            "first entry is not proxkeep/meta.json: not a proxkeep archive",
        ));
    }
    if after_index {
        v.problems.push(problem(
            Some(&s.path),
            "entry found after proxkeep/index.json (appended to the archive)",
        ));
    }
    (is_meta, is_index)
}

/// An entry's extended attributes (its PAX `SCHILY.xattr.<name>` records, in archive order), each as `f(name, value)`.
pub(crate) fn xattrs<R: Read, T>(
    entry: &mut tar::Entry<'_, R>,
    f: impl Fn(&str, &[u8]) -> T,
) -> Vec<T> {
    let Ok(Some(exts)) = entry.pax_extensions() else {
        return Vec::new();
    };
    exts.flatten()
        .filter_map(|ext| {
            let name = ext.key().ok()?.strip_prefix("SCHILY.xattr.")?;
            Some(f(name, ext.value_bytes()))
        })
        .collect()
}

pub(crate) fn compare(index: &Index, seen: &[Seen], complete: bool, problems: &mut Vec<Problem>) {
    use std::collections::{HashMap, HashSet};
    let before = problems.len();
    let by_path: HashMap<&[u8], &Seen> = seen.iter().map(|s| (s.path.as_slice(), s)).collect();
    // Index paths as restore reads them: normalized (raw when hostile, as the entry is named then).
    let paths: Vec<Vec<u8>> = index
        .entries
        .iter()
        .map(|e| {
            let raw = e.path_bytes();
            normalize(&raw).unwrap_or(raw)
        })
        .collect();
    let mut indexed = HashSet::new();
    for (e, p) in index.entries.iter().zip(&paths) {
        if !indexed.insert(p.as_slice()) {
            problems.push(problem(Some(p), "listed twice in the index"));
            continue;
        }
        match by_path.get(p.as_slice()) {
            None if complete => problems.push(problem(
                Some(p),
                "listed in the index but missing from the archive",
            )),
            None => {}
            Some(s) => problems.extend(mismatches(e, s).into_iter().map(|m| problem(Some(p), m))),
        }
    }
    let unlisted = "in the archive but not in the index";
    for s in seen.iter().filter(|s| !indexed.contains(s.path.as_slice())) {
        problems.push(problem(Some(&s.path), unlisted));
    }
    // Restore reads the index and the archive side by side: the same entries in the same order.
    if complete
        && problems.len() == before
        && let Some((p, s)) = paths.iter().zip(seen).find(|(p, s)| **p != s.path)
    {
        let message = format!("the index has {} at this position", show(p));
        problems.push(problem(Some(&s.path), message));
    }
}

/// An entry against its index entry, in the words of a problem found.
pub(crate) fn mismatches(e: &IndexEntry, s: &Seen) -> Vec<String> {
    if s.kind != Some(e.kind) {
        return vec![format!("kind differs from the index ({:?})", e.kind)];
    }
    let mut out = Vec::new();
    if e.kind == Kind::File && e.sha256.is_none() {
        out.push("the index has no hash for this file".into());
    }
    // Only a file has a size; any other entry's is 0.
    if e.kind != Kind::File && e.size != 0 {
        out.push(format!("size 0 differs from the index ({})", e.size));
    }
    if e.kind == Kind::File {
        if s.size != e.size {
            out.push(format!(
                "size {} differs from the index ({})",
                s.size, e.size
            ));
        }
        // Pass 1 of a restore does not hash: it checks each file's hash as it writes it.
        if let (Some(h), Some(want)) = (s.sha256, &e.sha256)
            && hex(&h) != *want
        {
            out.push("content hash differs from the index (content damaged or changed)".into());
        }
    }
    if s.mode != e.mode_bits() {
        out.push(format!(
            "mode {:04o} differs from the index ({})",
            s.mode, e.mode
        ));
    }
    if s.uid != u64::from(e.uid) || s.gid != u64::from(e.gid) {
        out.push(format!(
            "owner {}:{} differs from the index ({}:{})",
            s.uid, s.gid, e.uid, e.gid
        ));
    }
    if s.mtime != e.mtime.max(0) as u64 {
        out.push("mtime differs from the index".into());
    }
    if e.kind == Kind::Symlink {
        let target = s.target.as_deref().map(|t| path_fields(t).0);
        if target != e.target {
            out.push("symlink target differs from the index".into());
        }
    }
    if s.xattrs != e.xattrs {
        out.push("extended attributes differ from the index".into());
    }
    out
}

/// Read only the first entry (meta.json): cheap, whatever the archive's size.
pub fn read_meta(path: &Path) -> io::Result<Meta> {
    // A small buffer: `list` calls this for every archive and must not read megabytes of each.
    let file = Box::new(File::open(path)?);
    let mut reader = TarReader::from_source(file, 64 * 1024, &crypt::installed())?;
    let mut entries = reader.archive.entries()?;
    let mut first = entries.next().ok_or_else(|| invalid("empty archive"))??;
    if first.path_bytes().as_ref() != META_PATH.as_bytes() {
        return Err(invalid("first entry is not proxkeep/meta.json"));
    }
    let cap = format::self_cap(META_PATH.as_bytes(), first.size(), 0).map_err(invalid)?;
    let data = format::read_capped(&mut first, cap)?;
    serde_json::from_slice(&data).map_err(invalid)
}

fn invalid(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Shared between an archive writer and a [`Follow`] reader of the same file.
#[derive(Debug, Default)]
pub struct FollowState {
    /// The writer finished and synced the file: what is there now is all there will be.
    pub done: std::sync::atomic::AtomicBool,
    /// The writer failed: stop reading.
    pub abort: std::sync::atomic::AtomicBool,
}

/// Reads a file while another thread appends to it: at the current end it waits for more data until the
/// writer says it is done. Lets the read-back verification run alongside the writing.
pub struct Follow {
    file: File,
    state: Arc<FollowState>,
}

impl Follow {
    pub fn new(file: File, state: Arc<FollowState>) -> Self {
        Follow { file, state }
    }
}

impl Read for Follow {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let n = self.file.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            if self.state.abort.load(Ordering::Acquire) {
                return Err(io::Error::other("the archive writer stopped"));
            }
            if self.state.done.load(Ordering::Acquire) {
                // Everything written before `done` is visible now.
                return self.file.read(buf);
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn follow_reads_a_growing_file_to_its_end() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let mut w = File::create(&p).unwrap();
        let state = Arc::new(FollowState::default());
        let mut r = Follow::new(File::open(&p).unwrap(), state.clone());
        let reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            r.read_to_end(&mut all).unwrap();
            all
        });
        for i in 0..50u8 {
            w.write_all(&[i; 1000]).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        w.sync_all().unwrap();
        state.done.store(true, Ordering::Release);
        let all = reader.join().unwrap();
        assert_eq!(all.len(), 50_000);
        assert!(
            all.chunks(1000)
                .enumerate()
                .all(|(i, c)| c.iter().all(|b| *b == i as u8))
        );
    }

    #[test]
    fn follow_stops_when_the_writer_aborts() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        File::create(&p).unwrap();
        let state = Arc::new(FollowState::default());
        let mut r = Follow::new(File::open(&p).unwrap(), state.clone());
        state.abort.store(true, Ordering::Release);
        assert!(r.read(&mut [0u8; 10]).is_err());
    }

    /// The read-back leaves file contents to the stream sum: a content byte changed after the writer hashed
    /// it passes every per-entry check there, and only the sum tells.
    #[test]
    fn read_back_sums_the_decoded_stream() {
        use crate::archive::writer::{ArchiveWriter, file_header};
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.tar");
        let file = File::create(&p).unwrap();
        let mut w = ArchiveWriter::new(file, Compression::None, 0, 1, None).unwrap();
        let h = |path: &'static str, size| file_header(path.as_bytes(), size);
        w.append_bytes(&h(META_PATH, 2), b"{}").unwrap();
        w.append_bytes(&h("etc/hosts", 11), b"hello world").unwrap();
        let (_, written) = w.finish().unwrap();
        let back =
            |p: &Path| read_back(Box::new(File::open(p).unwrap()), &Keys::default()).unwrap();
        let (v, seen) = back(&p);
        assert_eq!(v.stream, Some(written.stream));
        assert_eq!(seen.clone().finish().0, 1);
        // The file itself: the writer's CRC-32 of what it wrote is the read-back's of what it read, and the
        // read-back's SHA-256 is that of the file.
        let on_disk = std::fs::read(&p).unwrap();
        assert_eq!(written.file.crc32, crc32fast::hash(&on_disk));
        assert_eq!(written.file.len, on_disk.len() as u64);
        assert_eq!(v.file_crc32, Some(written.file.crc32));
        assert_eq!(v.sha256, Some(hex(&Sha256::digest(&on_disk))));

        let mut bytes = std::fs::read(&p).unwrap();
        let at = bytes.windows(5).position(|w| w == b"hello").unwrap();
        bytes[at] = b'j';
        std::fs::write(&p, &bytes).unwrap();
        let (damaged, seen_damaged) = back(&p);
        assert_eq!(damaged.problems, v.problems);
        assert_eq!(
            seen_damaged.finish(),
            seen.finish(),
            "contents are not in the digest"
        );
        assert_ne!(damaged.stream, Some(written.stream));
        assert_ne!(damaged.file_crc32, Some(written.file.crc32));
    }

    #[test]
    fn sniff_magic() {
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Compression::Zstd);
        assert_eq!(sniff(b"\xfd7zXZ\0"), Compression::Xz);
        assert_eq!(sniff(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(sniff(b"proxkeep/meta.json"), Compression::None);
    }
}
