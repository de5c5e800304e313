//! Forcing written data to disk without holding the partition's lock: the log hands out
//! the files that need an fsync as a [`FlushJob`], and the caller runs it on a blocking
//! thread once the lock is released.

use std::fs::File;
use std::io;
use std::sync::Arc;

/// Files with data written but not yet forced to disk.
#[derive(Debug, Default)]
#[must_use = "a flush job does nothing until it is run"]
pub struct FlushJob {
    files: Vec<Arc<File>>,
}

impl FlushJob {
    /// A job syncing `files`.
    pub(super) fn of(files: impl IntoIterator<Item = Arc<File>>) -> Self {
        FlushJob {
            files: files.into_iter().collect(),
        }
    }

    /// Adds another job's files.
    pub(super) fn merge(&mut self, other: FlushJob) {
        self.files.extend(other.files);
    }

    /// Whether there is nothing to sync.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Forces the files' data to disk (blocking).
    pub fn run(self) -> io::Result<()> {
        for file in self.files {
            file.sync_data()?;
        }
        Ok(())
    }
}
