//! The disk guard: a node stops taking writes while the file systems it writes to have less
//! free space than a reserve, and takes them again once there is room.
//!
//! A store that runs out of space in the middle of a write is the case to avoid. SurrealKV
//! keeps the bytes of a transaction whose write-ahead log append failed in its write buffer
//! and writes them out with the next transaction: a transaction it reported as failed comes
//! back when the store is opened again (seen in `tests/it/disk.rs`: a device's push refused
//! on a full disk, pushed again once space was freed, was there twice after a restart). So:
//!
//! - writes are refused *before* the disk is full, with [`Error::Unavailable`]
//!   (`storage_unavailable`), while the reserve still holds what is in flight. Reads go on.
//!   Nothing is written for a refused request, and the same request succeeds once space is
//!   freed: the guard reads the free space again at most every [`RECHECK`];
//! - if the store itself fails a write for want of space all the same (something else
//!   filled the disk past the reserve at once), the guard is *broken*: this process writes
//!   nothing more to the store, whatever the free space, until it is started again. Opening
//!   the store again replays what its log holds, the failed transaction included, and a
//!   device's retry of it is then answered from its mark, never applied twice.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{Error, Result};

/// How long a reading of the free space is trusted.
pub const RECHECK: Duration = Duration::from_millis(250);

/// The reserve a node keeps by default: 64 MiB, several times what a node has in flight.
pub const RESERVE_DEFAULT: u64 = 64 * 1024 * 1024;

/// Watches the free space under some paths; cheap to clone.
#[derive(Clone, Debug, Default)]
pub struct DiskGuard {
    inner: Arc<Mutex<Inner>>,
    /// The store failed a write for want of space: nothing more is written until restart.
    broken: Arc<AtomicBool>,
}

#[derive(Debug, Default)]
struct Inner {
    paths: Vec<PathBuf>,
    reserve: u64,
    /// The last reading: when, and the least free space under any path.
    read: Option<(Instant, u64)>,
}

impl DiskGuard {
    /// A guard on `paths` keeping `reserve` bytes free (0: never refuses).
    pub fn new(paths: Vec<PathBuf>, reserve: u64) -> DiskGuard {
        DiskGuard { inner: Arc::new(Mutex::new(Inner { paths, reserve, read: None })), broken: Arc::default() }
    }

    /// Also watches `path` (created when missing).
    pub fn watch(&self, path: &Path) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if !inner.paths.iter().any(|p| p == path) {
            inner.paths.push(path.to_path_buf());
            inner.read = None;
        }
    }

    /// Sets the reserve.
    pub fn set_reserve(&self, reserve: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.reserve = reserve;
        inner.read = None;
    }

    /// The least free space under the watched paths, in bytes (None: no path to watch or
    /// none could be read).
    pub fn free(&self) -> Option<u64> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.free()
    }

    /// Ok while a write may go ahead; [`Error::Unavailable`] while the free space is below
    /// the reserve.
    pub fn check(&self) -> Result<()> {
        if self.broken() {
            return Err(broken());
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.reserve == 0 {
            return Ok(());
        }
        match inner.free() {
            Some(free) if free < inner.reserve => Err(Error::Unavailable(format!(
                "{free} bytes free under {:?}, below the reserve of {} bytes",
                inner.paths, inner.reserve
            ))),
            _ => Ok(()),
        }
    }

    /// A write of this process's own files failed for lack of space (what was written of it
    /// is removed): the next check reads the disk again.
    pub fn failed(&self) {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).read = None;
    }

    /// The store failed a write for lack of space: from now on every check refuses, until
    /// the process is started again (see the module's documentation).
    pub fn break_down(&self) {
        if !self.broken.swap(true, Ordering::AcqRel) {
            tracing::error!(
                "the store failed a write for want of space: no more writes until this process is started again"
            );
        }
    }

    /// Whether [`DiskGuard::break_down`] happened: the process needs a restart to write again.
    pub fn broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }
}

/// The refusal of a broken guard.
pub(crate) fn broken() -> Error {
    Error::Unavailable("the store failed a write for want of space; free space and start the process again".into())
}

/// Whether SurrealQL `sql` may write: it names a statement that does. (A broken guard lets
/// only reads through; taking a read for a write only refuses it.)
pub(crate) fn may_write(sql: &str) -> bool {
    const WRITES: [&str; 8] = ["CREATE", "UPDATE", "UPSERT", "DELETE", "INSERT", "RELATE", "DEFINE", "REMOVE"];
    sql.split(|c: char| !c.is_ascii_alphabetic()).any(|word| WRITES.contains(&word))
}

impl Inner {
    fn free(&mut self) -> Option<u64> {
        if let Some((at, free)) = self.read
            && at.elapsed() < RECHECK
        {
            return Some(free);
        }
        let free = self.paths.iter().filter_map(|p| available(p)).min()?;
        self.read = Some((Instant::now(), free));
        Some(free)
    }
}

/// Bytes an unprivileged writer may still use on the file system holding `path` (its
/// nearest existing ancestor when it does not exist yet).
fn available(path: &Path) -> Option<u64> {
    let existing = path.ancestors().find(|p| p.exists())?;
    let st = rustix::fs::statvfs(existing).ok()?;
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reserve_above_the_free_space_refuses_and_zero_never_does() {
        let dir = tempfile::tempdir().unwrap();
        let free = available(dir.path()).expect("statvfs of a temp dir");
        assert!(free > 0);
        let guard = DiskGuard::new(vec![dir.path().join("not-yet")], 0);
        assert!(guard.check().is_ok(), "no reserve: never refuses");
        guard.set_reserve(u64::MAX);
        let e = guard.check().unwrap_err();
        assert_eq!(e.code(), "storage_unavailable");
        guard.set_reserve(1);
        assert!(guard.check().is_ok());
        assert!(DiskGuard::default().check().is_ok(), "nothing watched: never refuses");
        guard.break_down();
        assert!(guard.broken());
        guard.set_reserve(0);
        assert_eq!(guard.check().unwrap_err().code(), "storage_unavailable", "broken: refuses whatever the reserve");
    }

    #[test]
    fn writes_are_told_from_reads() {
        assert!(may_write("BEGIN TRANSACTION; UPDATE type::record('mark', $k) SET n = 1; COMMIT TRANSACTION;"));
        assert!(may_write("LET $x = 1;\nCREATE task CONTENT $c"));
        assert!(may_write("DEFINE TABLE IF NOT EXISTS schema_migration SCHEMALESS;"));
        assert!(!may_write("SELECT n, seq FROM type::record('mark', $k)"));
        assert!(!may_write("SELECT * FROM task WHERE updated_at > $t ORDER BY id LIMIT 10"));
    }
}
