//! Durability: fsyncs and the high-watermark checkpoint (so a restarted replica does not
//! start from zero). Both run off the partition's lock: appends hand their fsync out as a
//! [`PendingFlush`], and checkpoint files are written under a lock of their own.

use std::path::Path;

use super::{Partition, PartitionError, PartitionState};
use crate::log::flush::FlushJob;
use crate::log::Log;

/// File holding the last checkpointed high watermark (Kafka's replication-offset-checkpoint).
const HW_CHECKPOINT: &str = "high-watermark-checkpoint";

/// An append's writes that must be on disk before it is acknowledged (`flush.messages` or
/// `flush.ms` came due).
#[derive(Debug)]
#[must_use = "a pending flush must be started"]
pub struct PendingFlush {
    job: FlushJob,
}

/// A flush running on a blocking thread; it runs to the end even if nobody waits for it.
#[derive(Debug)]
pub struct StartedFlush(tokio::task::JoinHandle<std::io::Result<()>>);

impl PendingFlush {
    /// The flush an append leaves, if the topic's flush policy is due.
    pub(super) fn take(state: &mut PartitionState) -> Option<PendingFlush> {
        state.log.flush_due().then(|| PendingFlush {
            job: state.log.take_flush(),
        })
    }

    /// Starts the fsync at once, off the async threads.
    pub fn start(self) -> StartedFlush {
        StartedFlush(tokio::task::spawn_blocking(move || self.job.run()))
    }
}

impl StartedFlush {
    /// Waits for the fsync.
    pub async fn wait(self) -> Result<(), PartitionError> {
        match self.0.await {
            Ok(result) => Ok(result?),
            Err(e) => Err(PartitionError::Storage(std::io::Error::other(e))),
        }
    }
}

/// The checkpointed high watermark in `dir`, within `log`'s bounds (0 when none).
pub(super) fn read_hw_checkpoint(dir: &Path, log: &Log) -> i64 {
    std::fs::read_to_string(dir.join(HW_CHECKPOINT))
        .ok()
        .and_then(|t| t.trim().parse::<i64>().ok())
        .unwrap_or(0)
        .clamp(log.log_start_offset(), log.log_end_offset())
}

impl Partition {
    /// Forces unflushed data to disk, then checkpoints the high watermark (shutdown).
    pub fn flush(&self) -> std::io::Result<()> {
        let job = {
            let mut state = self.lock();
            state.log.persist_indexes()?;
            state.log.take_flush()
        };
        job.run()?;
        self.checkpoint_hw()
    }

    /// Writes the current high watermark to the checkpoint file. The value is read under
    /// the checkpoint lock only, so writers are ordered and the last one writes the latest
    /// value, while appends and fetches carry on.
    pub fn checkpoint_hw(&self) -> std::io::Result<()> {
        let _writer = self.checkpoint.lock().unwrap_or_else(|p| p.into_inner());
        let high_watermark = *self.hw.borrow();
        let tmp = self.dir.join(format!("{HW_CHECKPOINT}.tmp"));
        std::fs::write(&tmp, high_watermark.to_string())?;
        std::fs::rename(&tmp, self.dir.join(HW_CHECKPOINT))
    }

    /// Checkpoints a log start offset read under the lock, once the lock is released. The
    /// start only grows, so a late writer with an older value changes nothing.
    pub(super) fn checkpoint_log_start(&self, log_start: i64) -> std::io::Result<()> {
        let mut written = self
            .log_start_written
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if log_start <= *written {
            return Ok(());
        }
        crate::log::write_start_offset(&self.dir, log_start)?;
        *written = log_start;
        Ok(())
    }

    /// Flushes if `flush.ms` has elapsed with data waiting, and the tails of rolled
    /// segments (run periodically, on a blocking thread).
    pub fn flush_if_due(&self) -> std::io::Result<()> {
        let job = {
            let mut state = self.lock();
            if state.log.flush_due() {
                Some(state.log.take_flush())
            } else {
                state.log.take_owed()
            }
        };
        job.map_or(Ok(()), FlushJob::run)
    }
}
