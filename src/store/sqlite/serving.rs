//! The serving lock of an embedded store: every `serve` process holds a
//! shared `flock` on `<main>.serving`, and a one-off `linktrack partitions`
//! takes it exclusively, so it refuses to drop or create day files under a
//! running server (which would keep handles to day files that are gone).
//! The OS releases the lock when the process dies, even on kill -9.

use std::fs::{File, TryLockError};
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// A held serving lock; released on drop.
#[derive(Debug)]
pub struct ServingLock {
    _file: File,
}

fn lock_path(main: &Path) -> PathBuf {
    let mut s = main.as_os_str().to_owned();
    s.push(".serving");
    PathBuf::from(s)
}

fn open(main: &Path) -> Result<File> {
    let path = lock_path(main);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        crate::private_fs::create_dir_all(dir).map_err(|e| Error::Config(format!("creating {}: {e}", dir.display())))?;
    }
    crate::private_fs::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::Config(format!("opening {}: {e}", path.display())))
}

impl ServingLock {
    /// The lock a server holds while it runs: shared, so replicas on one data dir may run side by side.
    pub fn serve(main: &Path) -> Result<ServingLock> {
        let file = open(main)?;
        file.lock_shared().map_err(|e| Error::Config(format!("locking {}: {e}", lock_path(main).display())))?;
        Ok(ServingLock { _file: file })
    }

    /// The lock a one-off maintenance run needs: exclusive. `None` while any server holds it.
    pub fn exclusive(main: &Path) -> Result<Option<ServingLock>> {
        let file = open(main)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(ServingLock { _file: file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(Error::Config(format!("locking {}: {e}", lock_path(main).display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_keeps_one_off_maintenance_out_but_not_another_server() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("linktrack.db");
        let first = ServingLock::serve(&main).unwrap();
        let second = ServingLock::serve(&main).unwrap();
        assert!(ServingLock::exclusive(&main).unwrap().is_none(), "servers hold it");
        drop((first, second));
        let held = ServingLock::exclusive(&main).unwrap().expect("free once the servers are gone");
        assert!(ServingLock::exclusive(&main).unwrap().is_none(), "one maintenance run at a time");
        drop(held);
    }
}
