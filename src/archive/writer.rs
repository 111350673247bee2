//! The writer stack: tar → compressor → age (when encrypting) → SHA-256 of the final bytes → file, in one pass.
//!
//! Every layer is finished explicitly, innermost first, so a trailer that fails to write is an error and
//! never a silently truncated archive (zstd's `auto_finish` and friends would swallow it on drop).

use super::format::{Kind, hex};
use crate::archive::compression::Compression;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Sums what is written through it ([`StreamSum`]: CRC-32 and length): the uncompressed tar stream, and the
/// bytes of the file.
pub struct SumWriter<W> {
    inner: W,
    crc: crc32fast::Hasher,
    bytes: u64,
}

impl<W> SumWriter<W> {
    pub fn new(inner: W) -> Self {
        SumWriter {
            inner,
            crc: crc32fast::Hasher::new(),
            bytes: 0,
        }
    }

    pub fn sum(self) -> (W, StreamSum) {
        let sum = StreamSum {
            crc32: self.crc.finalize(),
            len: self.bytes,
        };
        (self.inner, sum)
    }
}

impl<W: Write> Write for SumWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A layer of the stack that must be finished explicitly (a compressor writes its last frame, age its last
/// chunk); `finish` hands back what it wrote to.
pub trait Layer<W>: Write {
    fn finish(self: Box<Self>) -> io::Result<W>;
}

/// Each of these has its own inherent `finish`.
macro_rules! layer {
    ($($t:ty),*) => {$(
        impl<W: Write> Layer<W> for $t {
            fn finish(self: Box<Self>) -> io::Result<W> {
                (*self).finish()
            }
        }
    )*};
}
layer!(
    zstd::stream::write::Encoder<'static, W>,
    liblzma::write::XzEncoder<W>,
    flate2::write::GzEncoder<W>,
    age::stream::StreamWriter<W>
);

/// No compression, or no encryption.
struct Plain<W>(W);

impl<W: Write> Write for Plain<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> Layer<W> for Plain<W> {
    fn finish(self: Box<Self>) -> io::Result<W> {
        Ok(self.0)
    }
}

/// Multithreaded zstd's job size. Measured on the 20,000-file bench tree (bench/backup.sh, 2 CPUs), before the
/// scan, hand-over and write-out changes that brought the wall time under tar|zstd's: 2 MiB gave wall 1.28x of
/// tar|zstd at 42 MiB peak RSS, 4 MiB 1.15-1.16x at 54 MiB, 8 MiB 1.16x at 77 MiB (over the 64 MiB budget).
/// zstd's default (4 x window, 8 MiB at level 3) costs the same memory as 8 MiB.
const JOB_SIZE: u32 = 4 << 20;

pub fn compressor<W: Write + 'static>(
    inner: W,
    compression: Compression,
    level: i32,
    threads: u32,
) -> io::Result<Box<dyn Layer<W>>> {
    let threads = match threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
        n => n,
    };
    Ok(match compression {
        Compression::Zstd => {
            let mut enc = zstd::stream::write::Encoder::new(inner, level)?;
            enc.include_checksum(true)?;
            if threads > 1 {
                enc.multithread(threads)?;
                // Smaller jobs than zstd's default (4 × window) keep the workers' buffers, and so the peak
                // RSS, within budget (see JOB_SIZE).
                enc.set_parameter(zstd::stream::raw::CParameter::JobSize(JOB_SIZE))?;
            }
            Box::new(enc)
        }
        Compression::Xz => {
            let stream = liblzma::stream::MtStreamBuilder::new()
                .threads(threads.max(1))
                .preset(level as u32)
                .check(liblzma::stream::Check::Crc64)
                .encoder()
                .map_err(io::Error::other)?;
            Box::new(liblzma::write::XzEncoder::new_stream(inner, stream))
        }
        Compression::Gzip => Box::new(flate2::write::GzEncoder::new(
            inner,
            flate2::Compression::new(level as u32),
        )),
        Compression::None => Box::new(Plain(inner)),
    })
}

#[derive(Debug, Clone)]
pub struct EntryHeader<'a> {
    pub path: &'a [u8],
    pub kind: Kind,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: i64,
    pub size: u64,
    /// Extended attributes, stored as PAX `SCHILY.xattr.<name>` records (GNU tar `--xattrs` reads them).
    pub xattrs: &'a [(String, Vec<u8>)],
}

/// The file's bytes are summed with CRC-32, not hashed: the read-back, which reads them again, takes their
/// SHA-256 and compares its CRC-32 of them with this one (one SHA-256 pass over the archive, not two).
type Sink = SumWriter<BufWriter<WriteBack>>;

/// The archive file, with the kernel told to start writing each [`WRITE_BACK`] written out to disk at once
/// (`sync_file_range`, no waiting), so the fsync at the end waits for the last stretch only, not the whole
/// archive (measured on the bench tree: the final fsync of 35 MB took about 20 ms, the CPUs idle meanwhile).
pub struct WriteBack {
    file: File,
    written: u64,
    started: u64,
}

/// How much is written before its write-out is started.
const WRITE_BACK: u64 = 4 << 20;

impl WriteBack {
    fn new(file: File) -> Self {
        WriteBack {
            file,
            written: 0,
            started: 0,
        }
    }
}

impl Write for WriteBack {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= WRITE_BACK {
            let (offset, len) = (self.started as i64, (self.written - self.started) as i64);
            // SAFETY: a plain syscall on an open file descriptor; a failure only loses the head start (the
            // fsync at the end still writes everything and reports any error).
            unsafe {
                libc::sync_file_range(
                    self.file.as_raw_fd(),
                    offset,
                    len,
                    libc::SYNC_FILE_RANGE_WRITE,
                );
            }
            self.started = self.written;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
type Compressor = BufWriter<Box<dyn Layer<Box<dyn Layer<Sink>>>>>;
type Stack = tar::Builder<SumWriter<Compressor>>;

/// tar writes in pieces of 8 KiB and less (headers, padding); the compressor gets chunks of this size, which
/// spares its per-call work (a multithreaded zstd copies, checks its jobs and flushes on every call).
const CHUNK: usize = 1 << 20;

/// CRC-32 and length of a byte stream: the uncompressed tar stream, summed as the writer hands it to the
/// compressor and as the read-back gets it from the decompressor. Equal sums prove the archive decodes to the
/// very bytes written, so the read-back need not hash every entry again (the index's SHA-256 of each entry is
/// taken by [`ExactReader`] from the same bytes tar copies into the stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamSum {
    pub crc32: u32,
    pub len: u64,
}

#[derive(Debug, Clone)]
pub struct Written {
    /// Sum of the bytes written to the file.
    pub file: StreamSum,
    /// Sum of the uncompressed tar stream.
    pub stream: StreamSum,
}

pub struct ArchiveWriter {
    tar: Stack,
    /// Where a streamed file's content is read into.
    buf: Vec<u8>,
}

impl ArchiveWriter {
    /// `encryptor`: age-encrypt the compressed stream (see [`crate::crypt::Seal::encryptor`]).
    pub fn new(
        file: File,
        compression: Compression,
        level: i32,
        threads: u32,
        encryptor: Option<age::Encryptor>,
    ) -> io::Result<Self> {
        let file = WriteBack::new(file);
        let sink = SumWriter::new(BufWriter::with_capacity(1 << 20, file));
        // The encryption layer: age's STREAM over the compressed bytes, or nothing.
        let sealed: Box<dyn Layer<Sink>> = match encryptor {
            Some(e) => Box::new(e.wrap_output(sink)?),
            None => Box::new(Plain(sink)),
        };
        let compressed = compressor(sealed, compression, level, threads)?;
        let chunked = BufWriter::with_capacity(CHUNK, compressed);
        let summed = SumWriter::new(chunked);
        let mut tar = tar::Builder::new(summed);
        tar.mode(tar::HeaderMode::Complete);
        tar.follow_symlinks(false);
        Ok(ArchiveWriter {
            tar,
            buf: vec![0; 256 << 10],
        })
    }

    fn header(&mut self, h: &EntryHeader) -> io::Result<tar::Header> {
        if !h.xattrs.is_empty() {
            let records: Vec<_> = h
                .xattrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
                .collect();
            self.tar
                .append_pax_extensions(records.iter().map(|(k, v)| (k.as_str(), *v)))?;
        }
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(match h.kind {
            Kind::File => tar::EntryType::Regular,
            Kind::Dir => tar::EntryType::Directory,
            Kind::Symlink => tar::EntryType::Symlink,
        });
        header.set_mode(h.mode & 0o7777);
        header.set_uid(h.uid.into());
        header.set_gid(h.gid.into());
        header.set_mtime(h.mtime.max(0) as u64);
        header.set_size(if h.kind == Kind::File { h.size } else { 0 });
        Ok(header)
    }

    /// Append a regular file whose content `data` yields exactly `h.size` bytes.
    pub fn append_reader(&mut self, h: &EntryHeader, mut data: impl Read) -> io::Result<()> {
        self.file_header(h)?;
        let mut copied = 0;
        loop {
            let n = match data.read(&mut self.buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            self.tar.get_mut().write_all(&self.buf[..n])?;
            copied += n as u64;
        }
        self.pad(copied)
    }

    pub fn append_bytes(&mut self, h: &EntryHeader, data: &[u8]) -> io::Result<()> {
        debug_assert_eq!(h.size, data.len() as u64);
        self.file_header(h)?;
        self.tar.get_mut().write_all(data)?;
        self.pad(data.len() as u64)
    }

    /// A file's header (and the extra entries of a long name or of extended attributes), written by tar; its
    /// content then goes straight into the stream, not through tar's copy (an 8 KiB stack buffer: one more
    /// pass over every byte, and a write call per 8 KiB).
    fn file_header(&mut self, h: &EntryHeader) -> io::Result<()> {
        let mut header = self.header(h)?;
        // tar pads the empty content to nothing.
        self.tar
            .append_data(&mut header, as_path(h.path), io::empty())
    }

    /// Zeros to the end of the 512-byte block, after `len` bytes of content.
    fn pad(&mut self, len: u64) -> io::Result<()> {
        const BLOCK: u64 = 512;
        let rest = (BLOCK - len % BLOCK) % BLOCK;
        self.tar
            .get_mut()
            .write_all(&[0; BLOCK as usize][..rest as usize])
    }

    pub fn append_dir(&mut self, h: &EntryHeader) -> io::Result<()> {
        self.append_reader(h, io::empty())
    }

    pub fn append_symlink(&mut self, h: &EntryHeader, target: &[u8]) -> io::Result<()> {
        let mut header = self.header(h)?;
        self.tar
            .append_link(&mut header, as_path(h.path), as_path(target))
    }

    /// Write the tar trailer, finish the compressor and age, flush and fsync the file.
    pub fn finish(self) -> io::Result<(File, Written)> {
        let (chunked, stream) = self.tar.into_inner()?.sum();
        // The last chunk goes to the compressor before it finishes (`into_inner` flushes, or fails).
        let encoder = chunked.into_inner().map_err(|e| e.into_error())?;
        let hashed = encoder.finish()?.finish()?;
        let (buf, summed) = hashed.sum();
        let file = buf.into_inner().map_err(|e| e.into_error())?.file;
        file.sync_all()?;
        let written = Written {
            file: summed,
            stream,
        };
        Ok((file, written))
    }
}

fn as_path(bytes: &[u8]) -> &Path {
    Path::new(std::ffi::OsStr::from_bytes(bytes))
}

/// What happened while a file was read for the archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadOutcome {
    Exact,
    /// The file ended early; the missing bytes were stored as zeros.
    Shrunk {
        missing: u64,
    },
    /// The file had more bytes than its size at open time; they were left out.
    Grew,
    /// Reading failed part way; the rest was stored as zeros.
    ReadError,
}

/// Error payload used to abort a copy when the run is cancelled (io::copy retries `Interrupted`).
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
pub struct Cancelled;

pub fn is_cancelled(e: &io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Cancelled>())
}

/// Yields exactly `size` bytes of `inner` (zero-padding a file that shrank, cutting one that grew) and hashes
/// what it yields, so the stored bytes, the header and the index always agree.
pub struct ExactReader<'a, R> {
    inner: R,
    /// A read error of the source: kept (and the rest zero-padded) so the tar stream stays consistent.
    pub error: Option<io::Error>,
    remaining: u64,
    padding: u64,
    hasher: Sha256,
    cancel: &'a AtomicBool,
}

impl<'a, R: Read> ExactReader<'a, R> {
    pub fn new(inner: R, size: u64, cancel: &'a AtomicBool) -> Self {
        ExactReader {
            inner,
            error: None,
            remaining: size,
            padding: 0,
            hasher: Sha256::new(),
            cancel,
        }
    }

    /// The hash of what was yielded and whether the source matched its size.
    pub fn finish(mut self) -> io::Result<(String, ReadOutcome)> {
        let outcome = if self.error.is_some() {
            ReadOutcome::ReadError
        } else if self.padding > 0 {
            ReadOutcome::Shrunk {
                missing: self.padding,
            }
        } else {
            match self.inner.read(&mut [0u8; 1]) {
                Ok(n) if n > 0 => ReadOutcome::Grew,
                _ => ReadOutcome::Exact,
            }
        };
        Ok((hex(&self.hasher.finalize()), outcome))
    }
}

impl<R: Read> Read for ExactReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other(Cancelled));
        }
        let want = buf
            .len()
            .min(self.remaining.min(usize::MAX as u64) as usize);
        let n = if self.padding > 0 {
            0
        } else {
            match self.inner.read(&mut buf[..want]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return self.read(buf),
                Err(e) => {
                    self.error = Some(e);
                    0
                }
            }
        };
        let n = if n == 0 {
            // Source ended before its recorded size: pad with zeros.
            buf[..want].fill(0);
            self.padding += want as u64;
            want
        } else {
            n
        };
        self.hasher.update(&buf[..n]);
        self.remaining -= n as u64;
        Ok(n)
    }
}

/// A plain file's header (0600 root, mtime 1), for tests.
#[cfg(test)]
pub(crate) fn file_header(path: &[u8], size: u64) -> EntryHeader<'_> {
    EntryHeader {
        path,
        kind: Kind::File,
        mode: 0o600,
        uid: 0,
        gid: 0,
        mtime: 1,
        size,
        xattrs: &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_reader_pads_and_cuts() {
        let cancel = AtomicBool::new(false);
        let mut out = Vec::new();
        let mut r = ExactReader::new(&b"hello"[..], 8, &cancel);
        io::copy(&mut r, &mut out).unwrap();
        assert_eq!(out, b"hello\0\0\0");
        assert_eq!(r.finish().unwrap().1, ReadOutcome::Shrunk { missing: 3 });

        let mut out = Vec::new();
        let mut r = ExactReader::new(&b"hello world"[..], 5, &cancel);
        io::copy(&mut r, &mut out).unwrap();
        assert_eq!(out, b"hello");
        let (sha, outcome) = r.finish().unwrap();
        assert_eq!(outcome, ReadOutcome::Grew);
        assert_eq!(sha, hex(&Sha256::digest(b"hello")));

        let mut r = ExactReader::new(&b"abc"[..], 3, &cancel);
        io::copy(&mut r, &mut io::sink()).unwrap();
        assert_eq!(r.finish().unwrap().1, ReadOutcome::Exact);
    }

    /// Entries smaller than the compressor's chunk, and one larger: all of them reach the archive (the last
    /// chunk is flushed into the compressor before it finishes), and the stream sum is of the whole stream.
    #[test]
    fn every_chunk_reaches_the_compressor() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.tar.zst");
        let file = File::create(&p).unwrap();
        let mut w = ArchiveWriter::new(file, Compression::Zstd, 3, 2, None).unwrap();
        let big: Vec<u8> = (0..CHUNK as u32 * 2 + 7).map(|i| (i % 251) as u8).collect();
        let files: [(&str, &[u8]); 3] = [("a", b"small"), ("b", &big), ("c", b"last, small")];
        for (path, data) in files {
            let h = file_header(path.as_bytes(), data.len() as u64);
            w.append_bytes(&h, data).unwrap();
        }
        let (_, written) = w.finish().unwrap();
        let mut decoded = Vec::new();
        let f = File::open(&p).unwrap();
        zstd::stream::read::Decoder::new(f)
            .unwrap()
            .read_to_end(&mut decoded)
            .unwrap();
        assert_eq!(written.stream.len, decoded.len() as u64);
        assert_eq!(written.stream.crc32, crc32fast::hash(&decoded));
        let mut ar = tar::Archive::new(&decoded[..]);
        let got: Vec<(String, Vec<u8>)> = (ar.entries().unwrap())
            .map(|e| {
                let mut e = e.unwrap();
                let path = e.path().unwrap().display().to_string();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                (path, data)
            })
            .collect();
        let want: Vec<(String, Vec<u8>)> = (files.iter())
            .map(|(p, d)| (p.to_string(), d.to_vec()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn cancel_aborts_copy() {
        let cancel = AtomicBool::new(true);
        let mut r = ExactReader::new(&b"abc"[..], 3, &cancel);
        let err = io::copy(&mut r, &mut io::sink()).unwrap_err();
        assert!(is_cancelled(&err));
    }
}
