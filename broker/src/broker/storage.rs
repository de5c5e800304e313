//! The health of this broker's data directory.
//!
//! A write that fails (the disk full, an I/O error) marks the storage failed: produce
//! answers KAFKA_STORAGE_ERROR, the broker asks the controller to move its leaderships to
//! replicas that can still write and stops heartbeating (so it stays fenced), and keeps
//! serving reads. A probe write every second notices when space returns; heartbeats then
//! resume, the controller unfences the broker, and its replicas catch up as followers.
//!
//! A failed fsync is different: the kernel may already have dropped the pages it could not
//! write, so what the log holds in memory can no longer be trusted to be on disk. As Kafka
//! stops a log directory whose fsync failed, the broker stops ([`sync_failed`]); on restart,
//! recovery verifies every batch and followers re-fetch what was lost.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;
use tracing::{error, info};

/// Bytes the recovery probe writes: enough that a disk with a few bytes free still fails.
const PROBE_BYTES: usize = 1 << 20;

/// Whether writes to the data directory currently fail. Cloning shares the state.
#[derive(Debug, Clone, Default)]
pub struct StorageHealth(Arc<Inner>);

#[derive(Debug, Default)]
struct Inner {
    failed: AtomicBool,
    became_failed: Notify,
}

impl StorageHealth {
    /// Whether the storage is failed (until a probe succeeds).
    pub fn is_failed(&self) -> bool {
        self.0.failed.load(Ordering::SeqCst)
    }

    /// Records a failed write. The first failure wakes [`StorageHealth::failure`].
    pub fn report_write_failure(&self, cause: &io::Error) {
        if !self.0.failed.swap(true, Ordering::SeqCst) {
            error!(error = %cause, "write to the data directory failed: storage marked failed");
            self.0.became_failed.notify_one();
        }
    }

    /// Records that writes succeed again.
    pub fn mark_recovered(&self) {
        if self.0.failed.swap(false, Ordering::SeqCst) {
            info!("the data directory is writable again");
        }
    }

    /// Resolves once the storage has failed (at once if it already has).
    pub async fn failure(&self) {
        loop {
            let notified = self.0.became_failed.notified();
            if self.is_failed() {
                return;
            }
            notified.await;
        }
    }
}

/// Writes, syncs and removes a probe file in `dir`: whether the directory takes writes.
pub fn probe(dir: &Path) -> io::Result<()> {
    let path = dir.join(".storage-probe");
    let result = (|| {
        let mut file = std::fs::File::create(&path)?;
        file.write_all(&vec![0u8; PROBE_BYTES])?;
        file.sync_all()
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// Stops the broker after a failed fsync (see the module documentation). The one line it
/// prints is what supervisors show as the reason.
pub fn sync_failed(cause: &io::Error) -> ! {
    error!(error = %cause, "fsync failed: stopping; recovery verifies the log on restart");
    eprintln!("tributary-broker: fatal: fsync failed ({cause}); the log is verified on restart");
    std::process::exit(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failure_is_reported_once_and_cleared_by_recovery() {
        let health = StorageHealth::default();
        assert!(!health.is_failed());
        let waiter = {
            let health = health.clone();
            tokio::spawn(async move { health.failure().await })
        };
        health.report_write_failure(&io::Error::other("disk full"));
        health.report_write_failure(&io::Error::other("disk full again"));
        waiter.await.unwrap();
        assert!(health.is_failed());
        health.mark_recovered();
        assert!(!health.is_failed());
    }

    #[test]
    fn a_writable_directory_passes_the_probe_and_keeps_no_file() {
        let dir = tempfile::tempdir().unwrap();
        probe(dir.path()).unwrap();
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        assert!(probe(&dir.path().join("missing")).is_err());
    }
}
