//! The writer threads: each file's content checked against the index, written to a temp file next to its
//! target, given its metadata. Nothing of a file that does not match stays on disk.

use super::sync::{Pending, Written};
use super::{ApplyOptions, Stop, Writer, damaged, failed};
use crate::archive::format::hex;
use crate::dirwalk::DirFd;
use crate::fsx::{create_at, set_meta};
use crate::restore::plan::Wanted;
use rustix::fs::{AtFlags, XattrFlags};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SendError, Sender, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

/// File contents up to this size are read whole before they go to a writer; bigger ones stream to it in
/// chunks of this size. With the queue lengths (`QUEUE` files, `STREAM_CHUNKS` chunks) this bounds the
/// memory held: about (QUEUE + writers + STREAM_CHUNKS) × CHUNK.
const CHUNK: usize = 1 << 20;
/// Chunks of a big file waiting for its writer.
const STREAM_CHUNKS: usize = 4;

enum Data {
    Whole(Vec<u8>),
    /// Chunks as they are read; an `Err` says the archive could not be read further.
    Stream(Receiver<Result<Vec<u8>, String>>),
}

pub(super) struct Job {
    seq: u64,
    want: Wanted,
    through: bool,
    action: &'static str,
    dir: Arc<DirFd>,
    tmp: Vec<u8>,
    xattrs: Vec<(String, Vec<u8>)>,
    data: Data,
}

/// One writer thread: jobs until the channel closes (or nobody takes the results any more).
pub(super) fn run(
    jobs: &Mutex<Receiver<Job>>,
    out: Sender<Written>,
    opts: &ApplyOptions,
    cancel: &AtomicBool,
) {
    // The lock is held only while waiting for the next job.
    while let Some(job) = jobs.lock().ok().and_then(|rx| rx.recv().ok()) {
        let seq = job.seq;
        let r = write_file(job, opts, cancel);
        if let Err(SendError((_, r))) = out.send((seq, r)) {
            // Nobody to give it a name: it must not stay behind.
            r.iter().for_each(Pending::unlink);
            break;
        }
    }
}

impl Writer<'_> {
    /// Hand one file to the writers: read whole when small, else streamed to its writer as it is read.
    pub(super) fn file(
        &mut self,
        want: &Wanted,
        through: bool,
        action: &'static str,
        data: &mut dyn Read,
        xa: Vec<(String, Vec<u8>)>,
    ) -> Result<(), Stop> {
        let dir = self.parent(want)?;
        let tmp = self.tmp_name();
        let Some(jobs) = self.jobs.clone() else {
            return Err(Stop::Interrupted);
        };
        let (content, chunks) = if want.size <= CHUNK as u64 {
            let mut buf = Vec::with_capacity(want.size as usize);
            data.read_to_end(&mut buf)
                .map_err(|e| unreadable(&want.shown(), e))?;
            (Data::Whole(buf), None)
        } else {
            let (chunks, rx) = sync_channel(STREAM_CHUNKS);
            (Data::Stream(rx), Some(chunks))
        };
        let seq = self.order.reserve();
        let job = Job {
            seq,
            want: want.clone(),
            through,
            action,
            dir,
            tmp,
            xattrs: xa,
            data: content,
        };
        self.send_job(&jobs, job);
        let Some(chunks) = chunks else { return Ok(()) };
        loop {
            let mut buf = Vec::with_capacity(CHUNK);
            match (&mut *data).take(CHUNK as u64).read_to_end(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(_) => {
                    // A writer that stopped (signal, write error) has dropped its end and says why itself.
                    if chunks.send(Ok(buf)).is_err() {
                        return Ok(());
                    }
                }
                Err(e) => {
                    // Its writer removes what it wrote and reports the damage at this file's place.
                    let _ = chunks.send(Err(e.to_string()));
                    self.note_stop(seq, unreadable(&want.shown(), e));
                    return Ok(());
                }
            }
        }
    }

    fn send_job(&mut self, jobs: &SyncSender<Job>, job: Job) {
        let seq = job.seq;
        match jobs.send(job) {
            Ok(()) => self.in_flight += 1,
            // Only if every writer is gone (they panicked, which the scope then reports): stop here, so what
            // was written before still gets its name and nothing after it is attempted.
            Err(e) => {
                let stop = failed(&e.0.want.shown(), "write", "no writer thread is left");
                self.note_stop(seq, stop.clone());
                self.order.put(seq, Err(stop));
            }
        }
    }
}

fn unreadable(shown: &str, e: impl std::fmt::Display) -> Stop {
    damaged(shown, format!("cannot read it from the archive ({e})"))
}

/// A writer thread's work on one file: check its content against the index (before the temp file exists
/// when it was read whole, while writing when it streams), write the temp file, set its metadata.
fn write_file(job: Job, opts: &ApplyOptions, cancel: &AtomicBool) -> Result<Pending, Stop> {
    let (want, dir, tmp) = (&job.want, &job.dir, job.tmp.as_slice());
    let shown = want.shown();
    if cancel.load(Ordering::Relaxed) {
        return Err(Stop::Interrupted);
    }
    let check = |n: u64, got: String| -> Result<(), Stop> {
        let why = match &want.sha256 {
            Some(expected) if n != want.size || got != *expected => {
                format!("its content does not match the index (sha256 {got}, index {expected})")
            }
            // meta.json and index.json (extract): not in the index, but never shorter than their header.
            None if n != want.size => format!("the archive holds {n} of its {} bytes", want.size),
            _ => return Ok(()),
        };
        Err(damaged(&shown, why))
    };
    if let Data::Whole(d) = &job.data {
        check(d.len() as u64, crate::archive::sha256_hex(d))?;
    }
    let mut file = create_at(&dir.fd, tmp).map_err(|e| failed(&shown, "create a temp file", e))?;
    let discard = |file: File, stop: Stop| {
        drop(file);
        let _ = rustix::fs::unlinkat(&dir.fd, tmp, AtFlags::empty());
        Err(stop)
    };
    let n = match job.data {
        Data::Whole(d) => match file.write_all(&d) {
            Ok(()) => d.len() as u64,
            Err(e) => return discard(file, failed(&shown, "write", e)),
        },
        Data::Stream(chunks) => {
            // The hash is taken as the chunks come (there is no reader on this side to hand to `hash_reader`).
            let mut hasher = Sha256::new();
            let mut n = 0u64;
            let copied = loop {
                if cancel.load(Ordering::Relaxed) {
                    break Err(Stop::Interrupted);
                }
                match chunks.recv() {
                    // The reader drops its end after the last chunk.
                    Err(_) => break Ok(()),
                    Ok(Err(e)) => break Err(unreadable(&shown, e)),
                    Ok(Ok(chunk)) => {
                        hasher.update(&chunk);
                        n += chunk.len() as u64;
                        if let Err(e) = file.write_all(&chunk) {
                            break Err(failed(&shown, "write", e));
                        }
                    }
                }
            };
            if let Err(stop) = copied.and_then(|()| check(n, hex(&hasher.finalize()))) {
                return discard(file, stop);
            }
            n
        }
    };
    let owner = (!job.through && opts.chown).then_some((want.uid, want.gid));
    // Without the stored owner (not root), setuid/setgid would land on the restoring user's own file:
    // dropped, as GNU tar does for a non-root user.
    let bits = if owner.is_some() { !0 } else { !0o6000 };
    let mode = (!job.through).then_some(want.mode & bits);
    if let Err((_, e)) = set_meta(&file, owner, mode, Some(want.mtime)) {
        return discard(file, failed(&shown, "set the owner, mode or mtime of", e));
    }
    let warnings = super::xattr_warnings(&shown, &job.xattrs, |k, v| {
        rustix::fs::fsetxattr(&file, k, v, XattrFlags::empty())
    });
    drop(file);
    Ok(Pending::new(
        job.seq, job.dir, job.tmp, &job.want, job.action, n, warnings,
    ))
}
