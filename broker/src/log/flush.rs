//! Forcing written data to disk without holding the partition's lock: the log hands out
//! the files that need an fsync as a [`FlushJob`], and the caller runs it on a blocking
//! thread once the lock is released.
//!
//! The tails of rolled segments stay owed until a job that synced them succeeds: every job
//! taken meanwhile syncs them too, so a flush never completes while older data is still
//! only in the page cache, and a failed sync is retried by the next one.

use std::fs::File;
use std::io;
use std::sync::{Arc, Mutex};

/// Files of rolled segments whose tails are not yet known to be on disk.
#[derive(Debug, Default, Clone)]
pub(super) struct OwedSyncs(Arc<Mutex<Vec<Arc<File>>>>);

impl OwedSyncs {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Arc<File>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a rolled segment's files.
    pub(super) fn owe(&self, files: impl IntoIterator<Item = Arc<File>>) {
        self.lock().extend(files);
    }

    /// Whether nothing is owed.
    pub(super) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn snapshot(&self) -> Vec<Arc<File>> {
        self.lock().clone()
    }

    /// Forgets files a job has synced.
    fn settle(&self, synced: &[Arc<File>]) {
        self.lock()
            .retain(|owed| !synced.iter().any(|s| Arc::ptr_eq(owed, s)));
    }
}

/// Files with data written but not yet forced to disk.
#[derive(Debug)]
#[must_use = "a flush job does nothing until it is run"]
pub struct FlushJob {
    files: Vec<Arc<File>>,
    owed: OwedSyncs,
}

impl FlushJob {
    /// A job syncing everything `owed` plus `files`.
    pub(super) fn new(owed: &OwedSyncs, files: impl IntoIterator<Item = Arc<File>>) -> Self {
        let mut all = owed.snapshot();
        all.extend(files);
        FlushJob {
            files: all,
            owed: owed.clone(),
        }
    }

    /// Whether there is nothing to sync.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Forces the files' data to disk (blocking); on success the rolled segments it synced
    /// are no longer owed.
    pub fn run(self) -> io::Result<()> {
        for file in &self.files {
            file.sync_data()?;
        }
        self.owed.settle(&self.files);
        Ok(())
    }
}
