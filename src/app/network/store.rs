//! The state file of `restore --apply-network` and the lock every change to it is made under.

use super::{NetError, io_err};
use crate::fsx;
use crate::host::Root;
use crate::restore::netapply::{self, State};
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;

/// The state file and its lock, under the root.
pub(super) struct Store {
    pub(super) path: PathBuf,
    lock: PathBuf,
}

impl Store {
    pub(super) fn new(root: &Root) -> Store {
        let path = root.path(netapply::STATE_PATH);
        let lock = path.with_extension("lock");
        Store { path, lock }
    }

    pub(super) fn read(&self) -> Result<Option<State>, NetError> {
        match std::fs::read(&self.path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &self.path)(e)),
            Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
                NetError::Failed(format!(
                    "{}: not a proxkeep network state: {e}",
                    self.path.display()
                ))
            }),
        }
    }

    pub(super) fn write(&self, s: &State) -> Result<(), NetError> {
        let dir = fsx::dir_of(&self.path);
        fsx::create_dir_all(dir, 0o700).map_err(io_err("create", dir))?;
        let json = serde_json::to_vec_pretty(s).map_err(|e| NetError::Failed(e.to_string()))?;
        fsx::write_atomic(&self.path, &json, 0o600).map_err(io_err("write", &self.path))
    }

    /// An exclusive lock: the worker, `network confirm` and the apply never change the state at once.
    pub(super) fn lock(&self) -> Result<std::fs::File, NetError> {
        self.lock_how(rustix::fs::FlockOperation::LockExclusive)
    }

    pub(super) fn lock_how(
        &self,
        how: rustix::fs::FlockOperation,
    ) -> Result<std::fs::File, NetError> {
        let dir = fsx::dir_of(&self.lock);
        fsx::create_dir_all(dir, 0o700).map_err(io_err("create", dir))?;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)
            .map_err(io_err("open", &self.lock))?;
        rustix::fs::flock(f.as_fd(), how).map_err(|e| io_err("lock", &self.lock)(e.into()))?;
        Ok(f)
    }
}
