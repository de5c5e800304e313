//! Durability chores: flushing the log and checkpointing the high watermark, so a
//! restarted replica does not start from zero. Checkpoint files are written off the
//! partition's lock.

use std::path::Path;

use super::Partition;
use crate::log::Log;

/// File holding the last checkpointed high watermark (Kafka's replication-offset-checkpoint).
const HW_CHECKPOINT: &str = "high-watermark-checkpoint";

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
        self.lock().log.flush()?;
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

    /// Flushes if `flush.ms` has elapsed with data waiting.
    pub fn flush_if_due(&self) -> std::io::Result<()> {
        self.lock().log.flush_if_due()
    }
}
