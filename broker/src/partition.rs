//! A partition replica this broker leads: its log, idempotence state and high watermark.
//!
//! With a single replica the high watermark follows the log end offset; replication will
//! advance it from follower fetch positions instead, so reads already stop at it.

use std::path::Path;
use std::sync::Mutex;

use bytes::Bytes;
use thiserror::Error;
use tracing::warn;

use crate::config::defs::TopicPolicy;
use crate::log::{batch, Log, LogError, RecoveryMode};
use crate::producer::state::{ProducerStateTable, SequenceCheck, SequenceError};

/// ListOffsets special timestamps.
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
pub const LATEST_TIERED_TIMESTAMP: i64 = -5;

/// Why a partition operation failed, mapped to Kafka error codes.
#[derive(Debug, Error)]
pub enum PartitionError {
    #[error(transparent)]
    Batch(#[from] batch::BatchError),
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: usize },
    #[error("transactional batches are not supported")]
    TransactionsUnsupported,
    #[error("offset {offset} out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    #[error("storage error: {0}")]
    Storage(#[from] std::io::Error),
}

impl PartitionError {
    /// The Kafka error code for this failure.
    pub fn error_code(&self) -> i16 {
        match self {
            PartitionError::Batch(e) => e.error_code(),
            PartitionError::Sequence(e) => e.error_code(),
            PartitionError::MessageTooLarge { .. } => 10,
            PartitionError::TransactionsUnsupported => 48, // INVALID_TXN_STATE
            PartitionError::OffsetOutOfRange { .. } => 1,
            PartitionError::Storage(_) => 56, // KAFKA_STORAGE_ERROR
        }
    }
}

impl From<LogError> for PartitionError {
    fn from(e: LogError) -> Self {
        match e {
            LogError::OffsetOutOfRange { offset, start, end } => {
                PartitionError::OffsetOutOfRange { offset, start, end }
            }
            LogError::Io(e) => PartitionError::Storage(e),
        }
    }
}

/// Result of an append, for the produce response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub base_offset: i64,
    /// The broker time stamped on LogAppendTime topics, else -1.
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

/// Data for one partition of a fetch response.
#[derive(Debug, Clone)]
pub struct FetchedData {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

#[derive(Debug)]
struct PartitionState {
    log: Log,
    producers: ProducerStateTable,
    high_watermark: i64,
    leader_epoch: i32,
    policy: TopicPolicy,
}

/// One partition's replica on this broker.
#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub index: i32,
    state: Mutex<PartitionState>,
}

impl Partition {
    /// Opens the partition's log in `dir`, rebuilding idempotence state from its batches.
    pub fn open(
        dir: &Path,
        topic: &str,
        index: i32,
        leader_epoch: i32,
        policy: TopicPolicy,
        mode: RecoveryMode,
    ) -> std::io::Result<Self> {
        let mut producers = ProducerStateTable::default();
        let log = Log::open(dir, policy.log.clone(), mode, &mut |h| producers.record(h))?;
        let high_watermark = log.log_end_offset();
        Ok(Partition {
            topic: topic.to_string(),
            index,
            state: Mutex::new(PartitionState {
                log,
                producers,
                high_watermark,
                leader_epoch,
                policy,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PartitionState> {
        // A panic while holding the lock cannot leave the log half-updated in a way later
        // requests could observe (appends are ordered writes), so poisoning is ignored.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The leader epoch clients must present.
    pub fn leader_epoch(&self) -> i32 {
        self.lock().leader_epoch
    }

    /// Effective `min.insync.replicas`.
    pub fn min_insync_replicas(&self) -> i32 {
        self.lock().policy.min_insync_replicas
    }

    /// Validates and appends the record batches of one produce request partition.
    pub fn append(&self, records: Bytes) -> Result<Appended, PartitionError> {
        let batches = batch::split_batches(&records)?;
        let mut state = self.lock();
        for (header, range) in &batches {
            if range.len() > state.policy.max_message_bytes {
                return Err(PartitionError::MessageTooLarge {
                    size: range.len(),
                    max: state.policy.max_message_bytes,
                });
            }
            if header.is_transactional() || header.is_control() {
                return Err(PartitionError::TransactionsUnsupported);
            }
        }
        let log_append_time = state.policy.log_append_time.then(crate::util::now_ms);
        let mut first_offset = None;
        for (header, range) in batches {
            match state.producers.check(&header)? {
                SequenceCheck::Duplicate { base_offset } => {
                    first_offset.get_or_insert(base_offset);
                }
                SequenceCheck::Append => {
                    let epoch = state.leader_epoch;
                    let stamped = state
                        .log
                        .append(records.slice(range), &header, epoch, log_append_time)
                        .inspect_err(|e| warn!(topic = %self.topic, partition = self.index, error = %e, "append failed"))?;
                    state.producers.record(&stamped);
                    first_offset.get_or_insert(stamped.base_offset);
                }
            }
        }
        // Single replica: everything appended is committed.
        state.high_watermark = state.log.log_end_offset();
        Ok(Appended {
            base_offset: first_offset.unwrap_or(-1),
            log_append_time: log_append_time.unwrap_or(-1),
            log_start_offset: state.log.log_start_offset(),
        })
    }

    /// Reads committed batches from `offset`.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<FetchedData, PartitionError> {
        let state = self.lock();
        let hw = state.high_watermark;
        let start = state.log.log_start_offset();
        if offset > hw {
            return Err(PartitionError::OffsetOutOfRange {
                offset,
                start,
                end: hw,
            });
        }
        let records = state.log.read(offset, max_bytes, hw)?;
        Ok(FetchedData {
            records,
            high_watermark: hw,
            log_start_offset: start,
        })
    }

    /// `(log start, high watermark, log end)`.
    pub fn offsets(&self) -> (i64, i64, i64) {
        let state = self.lock();
        (
            state.log.log_start_offset(),
            state.high_watermark,
            state.log.log_end_offset(),
        )
    }

    /// ListOffsets: the offset (and timestamp) for a timestamp or special value.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<(i64, i64), PartitionError> {
        let state = self.lock();
        let hw = state.high_watermark;
        Ok(match timestamp {
            LATEST_TIMESTAMP | LATEST_TIERED_TIMESTAMP => (hw, -1),
            EARLIEST_TIMESTAMP | EARLIEST_LOCAL_TIMESTAMP => (state.log.log_start_offset(), -1),
            MAX_TIMESTAMP => state
                .log
                .max_timestamp_offset()?
                .filter(|(offset, _)| *offset < hw)
                .map_or((-1, -1), |(offset, ts)| (offset, ts)),
            ts => match state.log.offset_for_timestamp(ts)? {
                Some((offset, found)) if offset < hw => (offset, found),
                _ => (-1, -1),
            },
        })
    }

    /// OffsetForLeaderEpoch: `(epoch, end offset)` per Kafka's leader epoch cache rules.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let state = self.lock();
        state
            .log
            .epochs()
            .end_offset_for(epoch, state.log.log_end_offset())
    }

    /// DeleteRecords: moves the log start offset to `offset` (-1: the high watermark).
    pub fn delete_records(&self, offset: i64) -> Result<i64, PartitionError> {
        let mut state = self.lock();
        let hw = state.high_watermark;
        let target = if offset == -1 { hw } else { offset };
        if target < 0 || target > hw {
            return Err(PartitionError::OffsetOutOfRange {
                offset,
                start: state.log.log_start_offset(),
                end: hw,
            });
        }
        state.log.advance_start_offset(target)?;
        Ok(state.log.log_start_offset())
    }

    /// Applies retention; returns segments removed.
    pub fn apply_retention(&self, now_ms: i64) -> std::io::Result<usize> {
        self.lock().log.apply_retention(now_ms)
    }

    /// Installs new topic settings.
    pub fn set_policy(&self, policy: TopicPolicy) {
        let mut state = self.lock();
        state.log.set_config(policy.log.clone());
        state.policy = policy;
    }

    /// Bytes on disk (DescribeLogDirs).
    pub fn size_bytes(&self) -> u64 {
        self.lock().log.size_bytes()
    }

    /// Forces unflushed data to disk (shutdown).
    pub fn flush(&self) -> std::io::Result<()> {
        self.lock().log.flush()
    }

    /// Number of producers with idempotence state.
    pub fn producer_count(&self) -> usize {
        self.lock().producers.len()
    }
}
