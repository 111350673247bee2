//! Written files back in archive order, in batches to the syncer thread: one `syncfs` per file system for
//! the whole batch, then the renames, in order.

use super::{Done, Stop, Writer, done, failed};
use crate::dirwalk::DirFd;
use crate::restore::path::split;
use crate::restore::plan::{Plan, Wanted};
use rustix::fs::{AtFlags, RenameFlags};
use rustix::io::Errno;
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender};

/// A written and verified temp file (or symlink) waiting for its name.
pub(super) struct Pending {
    /// Position in archive order among the files and symlinks written.
    pub(super) seq: u64,
    dir: Arc<DirFd>,
    tmp: Vec<u8>,
    name: Vec<u8>,
    done: Done,
    bytes: u64,
    pub(super) warnings: Vec<String>,
}

impl Pending {
    pub(super) fn new(
        seq: u64,
        dir: Arc<DirFd>,
        tmp: Vec<u8>,
        want: &Wanted,
        action: &'static str,
        bytes: u64,
        warnings: Vec<String>,
    ) -> Pending {
        Pending {
            seq,
            dir,
            tmp,
            name: split(&want.path).1.to_vec(),
            done: done(want, action),
            bytes,
            warnings,
        }
    }

    pub(super) fn unlink(&self) {
        let _ = rustix::fs::unlinkat(&self.dir.fd, self.tmp.as_slice(), AtFlags::empty());
    }
}

pub(super) type Written = (u64, Result<Pending, Stop>);

/// What the syncer did with one batch.
#[derive(Default)]
pub(super) struct Flushed {
    renamed: Vec<Pending>,
    /// The entry that could not be synced or renamed; it and the rest of the batch were removed.
    failed: Option<(u64, Stop)>,
}

/// Results put back in archive order: writers finish in any order, renames must not.
#[derive(Default)]
pub(super) struct InOrder {
    /// Sequence number of `slots[0]`.
    base: u64,
    slots: VecDeque<Option<Result<Pending, Stop>>>,
}

impl InOrder {
    pub(super) fn next_seq(&self) -> u64 {
        self.base + self.slots.len() as u64
    }

    pub(super) fn reserve(&mut self) -> u64 {
        self.slots.push_back(None);
        self.next_seq() - 1
    }

    pub(super) fn put(&mut self, seq: u64, r: Result<Pending, Stop>) {
        self.slots[(seq - self.base) as usize] = Some(r);
    }

    /// The next written file in archive order, once it and everything before it came back without error.
    pub(super) fn pop_ready(&mut self) -> Option<Pending> {
        if !matches!(self.slots.front(), Some(Some(Ok(_)))) {
            return None;
        }
        self.base += 1;
        self.slots.pop_front().flatten().and_then(Result::ok)
    }
}

impl Writer<'_> {
    /// Take in what the writers and the syncer finished, without waiting; hand on full batches.
    pub(super) fn collect(&mut self) {
        while let Ok(r) = self.written.try_recv() {
            self.receive(r);
        }
        while let Ok(f) = self.synced.try_recv() {
            self.merge(f);
        }
        self.advance();
    }

    fn receive(&mut self, (seq, r): Written) {
        self.in_flight -= 1;
        match &r {
            Ok(p) => p.warnings.iter().for_each(|m| self.warn(m.clone())),
            Err(stop) => self.note_stop(seq, stop.clone()),
        }
        self.order.put(seq, r);
    }

    /// Files that are next in archive order go into the batch; a full batch goes to the syncer.
    fn advance(&mut self) {
        if self.stop.is_some() {
            return;
        }
        while let Some(p) = self.order.pop_ready() {
            self.batch_bytes += p.bytes;
            self.batch.push(p);
            if self.batch.len() >= self.opts.batch_files
                || self.batch_bytes >= self.opts.batch_bytes
            {
                self.send_batch();
            }
        }
    }

    fn send_batch(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        self.batch_bytes = 0;
        match &self.to_sync {
            Some(tx) => match tx.send(batch) {
                Ok(()) => self.syncing += 1,
                Err(e) => e.0.iter().for_each(Pending::unlink),
            },
            None => batch.iter().for_each(Pending::unlink),
        }
    }

    fn merge(&mut self, f: Flushed) {
        self.syncing -= 1;
        for p in f.renamed {
            self.report.bytes += p.bytes;
            self.record(p.done);
        }
        if let Some((seq, stop)) = f.failed {
            self.note_stop(seq, stop);
        }
    }

    /// Wait until everything handed on so far is written and renamed, so the directory handles held for it
    /// are let go (the walker's are bounded: see [`Walker::full`]). Only an archive with many directories,
    /// or one alternating between directories the walker no longer holds, comes here: one batch is cut short.
    ///
    /// [`Walker::full`]: crate::dirwalk::Walker::full
    pub(super) fn drain(&mut self) {
        while self.in_flight > 0
            && let Ok(r) = self.written.recv()
        {
            self.receive(r);
        }
        // After a stop nothing more is renamed: `finish` decides about what is left.
        if self.stop.is_some() {
            return;
        }
        self.advance();
        self.send_batch();
        while self.syncing > 0
            && let Ok(f) = self.synced.recv()
        {
            self.merge(f);
        }
    }

    /// After the last entry or a stop: wait for the writers, give names to what comes before the stop (all
    /// of it without a stop; after a failure nothing more, the old versions stay), remove every other temp
    /// file, wait for the syncer, then do the removals.
    pub(super) fn finish(&mut self, plan: &Plan) {
        drop(self.jobs.take());
        while self.in_flight > 0
            && let Ok(r) = self.written.recv()
        {
            self.receive(r);
        }
        match &self.stop {
            None => {
                self.advance();
                self.send_batch();
            }
            Some((cut, stop)) => {
                let (cut, keep) = (
                    *cut,
                    matches!(stop, Stop::Interrupted | Stop::Damaged { .. }),
                );
                let rest: Vec<Pending> = self
                    .order
                    .slots
                    .drain(..)
                    .flatten()
                    .filter_map(Result::ok)
                    .collect();
                if !keep {
                    self.batch.drain(..).for_each(|p| p.unlink());
                }
                for p in rest {
                    if keep && p.seq < cut {
                        self.batch.push(p);
                    } else {
                        p.unlink();
                    }
                }
                self.send_batch();
            }
        }
        drop(self.to_sync.take());
        while self.syncing > 0
            && let Ok(f) = self.synced.recv()
        {
            self.merge(f);
        }
        if self.stop.is_none()
            && let Err(stop) = self.remove_all(plan)
        {
            self.stop = Some((u64::MAX, stop));
        }
    }

    /// The renames of the last batch and the directory changes on disk too.
    pub(super) fn final_sync(&mut self) {
        let devs: Vec<Arc<DirFd>> = self.devs.values().cloned().collect();
        for d in devs {
            if let Err(e) = rustix::fs::syncfs(&d.fd) {
                self.warn(format!("cannot sync the target's file system: {e}"));
            }
        }
    }
}

/// The syncer thread: each batch in turn is made durable and renamed. After a failure nothing more is
/// renamed; the temp files of later batches are removed, so their targets keep the old version.
pub(super) fn syncer(batches: Receiver<Vec<Pending>>, out: Sender<Flushed>, extract: bool) {
    let mut failed = false;
    for batch in batches {
        let f = if failed {
            batch.iter().for_each(Pending::unlink);
            Flushed::default()
        } else {
            flush(batch, extract)
        };
        failed |= f.failed.is_some();
        // The receiving side waits for every batch it sent, so this only fails if it panicked.
        let _ = out.send(f);
    }
}

fn flush(batch: Vec<Pending>, extract: bool) -> Flushed {
    let mut synced = HashSet::new();
    for p in &batch {
        if synced.insert(p.dir.dev)
            && let Err(e) = rustix::fs::syncfs(&p.dir.fd)
        {
            let stop = (p.seq, failed(&p.done.path, "sync the file system of", e));
            batch.iter().for_each(Pending::unlink);
            return Flushed {
                renamed: Vec::new(),
                failed: Some(stop),
            };
        }
    }
    let mut renamed = Vec::with_capacity(batch.len());
    let mut rest = batch.into_iter();
    while let Some(p) = rest.next() {
        let (dir, tmp, name) = (&p.dir.fd, p.tmp.as_slice(), p.name.as_slice());
        let r = if extract {
            rustix::fs::renameat_with(dir, tmp, dir, name, RenameFlags::NOREPLACE)
        } else {
            rustix::fs::renameat(dir, tmp, dir, name)
        };
        if let Err(e) = r {
            p.unlink();
            rest.for_each(|q| q.unlink());
            let why = if e == Errno::EXIST {
                "it already exists (extract never replaces anything)".to_string()
            } else {
                format!("cannot rename into place: {e}")
            };
            let entry = p.done.path;
            return Flushed {
                renamed,
                failed: Some((p.seq, Stop::Failed { entry, why })),
            };
        }
        renamed.push(p);
    }
    Flushed {
        renamed,
        failed: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::format::Kind;
    use crate::restore::target::Target;

    #[test]
    fn results_go_on_in_archive_order_and_stop_at_an_error() {
        let t = tempfile::tempdir().unwrap();
        let target = Target::open(t.path()).unwrap();
        let dir = target.walker().open_dir(b"", false).unwrap();
        let pending = |seq| Pending {
            seq,
            dir: dir.clone(),
            tmp: Vec::new(),
            name: Vec::new(),
            done: Done {
                path: format!("/f{seq}"),
                category: "c".into(),
                action: "create",
                kind: Kind::File,
            },
            bytes: 0,
            warnings: Vec::new(),
        };
        let mut o = InOrder::default();
        let seqs: Vec<u64> = (0..4).map(|_| o.reserve()).collect();
        assert_eq!(seqs, [0, 1, 2, 3]);
        o.put(1, Ok(pending(1)));
        assert!(o.pop_ready().is_none(), "0 is not back yet");
        o.put(0, Ok(pending(0)));
        o.put(3, Ok(pending(3)));
        o.put(
            2,
            Err(Stop::Damaged {
                entry: "/f2".into(),
                why: "x".into(),
            }),
        );
        assert_eq!(o.pop_ready().map(|p| p.seq), Some(0));
        assert_eq!(o.pop_ready().map(|p| p.seq), Some(1));
        assert!(o.pop_ready().is_none(), "nothing after the damaged one");
        assert_eq!(o.next_seq(), 4);
    }
}
