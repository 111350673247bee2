//! Decompression on a thread of its own, ahead of the tar parsing: as `zstd -dc | tar -x` runs the
//! decompressor and the extractor in two processes, so both passes of a restore keep one core decompressing
//! while the other parses (and, in pass 2, hands out file contents).

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

/// Decoded bytes travel in chunks of this size; the buffers go back to the decoding thread to be reused
/// (fresh buffers of this size would be new mappings, page-faulted in every time).
const CHUNK: usize = 256 * 1024;
/// Chunks decoded ahead of the reader.
const AHEAD: usize = 8;

/// The reading end: decoded bytes in order, then the decoder's error if it met one, then the end.
pub struct ReadAhead<R> {
    /// Full-size buffers with the length of what they hold (kept full-size: no zeroing on reuse).
    chunks: Receiver<io::Result<(Vec<u8>, usize)>>,
    spare: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    len: usize,
    pos: usize,
    /// Gives back the decoder (at its end, or where it failed), for checks past the decoded stream.
    thread: JoinHandle<R>,
}

impl<R: Read + Send + 'static> ReadAhead<R> {
    pub fn spawn(mut src: R) -> ReadAhead<R> {
        let (tx, chunks) = sync_channel::<io::Result<(Vec<u8>, usize)>>(AHEAD);
        let (spare, spares) = sync_channel::<Vec<u8>>(AHEAD + 2);
        let thread = std::thread::spawn(move || {
            loop {
                let mut buf = spares.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
                let mut n = 0;
                let mut failure = None;
                while n < CHUNK {
                    match src.read(&mut buf[n..]) {
                        Ok(0) => break,
                        Ok(k) => n += k,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            failure = Some(e);
                            break;
                        }
                    }
                }
                // A closed channel: the reader stopped early and wants nothing more.
                if n > 0 && tx.send(Ok((buf, n))).is_err() {
                    break;
                }
                if let Some(e) = failure {
                    let _ = tx.send(Err(e));
                    break;
                }
                if n < CHUNK {
                    break;
                }
            }
            src
        });
        ReadAhead {
            chunks,
            spare,
            cur: Vec::new(),
            len: 0,
            pos: 0,
            thread,
        }
    }

    /// Wait for the decoding thread and get the decoder back (after the end of the stream, or an error).
    pub fn into_source(self) -> R {
        let ReadAhead { chunks, thread, .. } = self;
        // A thread still decoding ahead stops at its next chunk: what it has not handed over is not wanted.
        drop(chunks);
        match thread.join() {
            Ok(src) => src,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl<R> Read for ReadAhead<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.len {
            match self.chunks.recv() {
                Ok(Ok((next, len))) => {
                    let used = std::mem::replace(&mut self.cur, next);
                    (self.len, self.pos) = (len, 0);
                    if !used.is_empty() {
                        let _ = self.spare.try_send(used);
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.len - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields `data`, then fails.
    struct Failing {
        data: io::Cursor<Vec<u8>>,
    }

    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.data.read(buf)? {
                0 => Err(io::Error::new(io::ErrorKind::InvalidData, "broken")),
                n => Ok(n),
            }
        }
    }

    #[test]
    fn gives_every_byte_in_order_then_the_source_back() {
        let data: Vec<u8> = (0..3 * CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let mut r = ReadAhead::spawn(io::Cursor::new(data.clone()));
        let mut got = Vec::new();
        let mut small = [0u8; 1000];
        // Reads of an odd size straddle the chunks.
        loop {
            let n = r.read(&mut small).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&small[..n]);
        }
        assert_eq!(got, data);
        let src = r.into_source();
        assert_eq!(src.position() as usize, data.len());
    }

    #[test]
    fn an_error_of_the_source_comes_after_the_bytes_before_it() {
        let data = vec![7u8; CHUNK + 5];
        let mut r = ReadAhead::spawn(Failing {
            data: io::Cursor::new(data.clone()),
        });
        let mut got = Vec::new();
        let e = r.read_to_end(&mut got).unwrap_err();
        assert_eq!(e.to_string(), "broken");
        assert_eq!(got, data);
    }

    #[test]
    fn a_reader_that_stops_early_still_gets_the_source_back() {
        let data = vec![1u8; 40 * CHUNK];
        let mut r = ReadAhead::spawn(io::Cursor::new(data));
        let mut first = [0u8; 10];
        r.read_exact(&mut first).unwrap();
        let src = r.into_source();
        assert!(src.position() > 0);
    }
}
