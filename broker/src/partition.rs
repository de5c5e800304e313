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

    /// Flushes if `flush.ms` has elapsed with data waiting.
    pub fn flush_if_due(&self) -> std::io::Result<()> {
        self.lock().log.flush_if_due()
    }

    /// Number of producers with idempotence state.
    pub fn producer_count(&self) -> usize {
        self.lock().producers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::defs::ConfigLayers;
    use crate::log::batch::tests::make_batch;
    use kafka_protocol::records::Compression;
    use std::collections::BTreeMap;

    fn open(dir: &Path, overrides: &[(&str, &str)]) -> Partition {
        let topic: BTreeMap<String, String> = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let policy = ConfigLayers {
            topic: Some(&topic),
            ..Default::default()
        }
        .topic_policy();
        Partition::open(dir, "t", 0, 3, policy, RecoveryMode::Verify).unwrap()
    }

    #[test]
    fn appends_assign_offsets_and_stamp_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), &[]);
        let first = p
            .append(make_batch(5, -1, -1, -1, Compression::None).freeze())
            .unwrap();
        let second = p
            .append(make_batch(2, -1, -1, -1, Compression::Lz4).freeze())
            .unwrap();
        assert_eq!((first.base_offset, second.base_offset), (0, 5));
        assert_eq!(first.log_append_time, -1);
        let data = p.read(0, 1 << 20).unwrap();
        assert_eq!(data.high_watermark, 7);
        let headers: Vec<_> = batch::BatchIter::new(data.records)
            .map(|(h, _)| h)
            .collect();
        assert_eq!(headers.len(), 2);
        assert!(headers.iter().all(|h| h.partition_leader_epoch == 3));
        assert_eq!(p.end_offset_for_epoch(3), (3, 7));
        assert!(matches!(
            p.read(8, 100),
            Err(PartitionError::OffsetOutOfRange { .. })
        ));
    }

    #[test]
    fn oversized_batches_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), &[("max.message.bytes", "200")]);
        let err = p
            .append(make_batch(5, -1, -1, -1, Compression::None).freeze())
            .unwrap_err();
        assert_eq!(err.error_code(), 10, "MESSAGE_TOO_LARGE");
        assert_eq!(p.offsets(), (0, 0, 0), "nothing appended");
    }

    #[test]
    fn log_append_time_is_stamped() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), &[("message.timestamp.type", "LogAppendTime")]);
        let before = crate::util::now_ms();
        let done = p
            .append(make_batch(3, -1, -1, -1, Compression::Gzip).freeze())
            .unwrap();
        assert!(done.log_append_time >= before);
        let data = p.read(0, 1 << 20).unwrap();
        let (header, bytes) = batch::BatchIter::new(data.records).next().unwrap();
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp, done.log_append_time);
        batch::validate(&bytes).expect("CRC recomputed");
        assert_eq!(
            p.offset_for_timestamp(MAX_TIMESTAMP).unwrap(),
            (0, done.log_append_time)
        );
    }

    #[test]
    fn idempotent_retries_are_deduplicated_across_restart() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), &[]);
        let batch = make_batch(4, 42, 0, 0, Compression::None).freeze();
        assert_eq!(p.append(batch.clone()).unwrap().base_offset, 0);
        p.append(make_batch(4, 42, 0, 4, Compression::None).freeze())
            .unwrap();
        assert_eq!(
            p.append(batch.clone()).unwrap().base_offset,
            0,
            "retry answered with the original offset"
        );
        assert_eq!(p.offsets().2, 8);
        let gap = p
            .append(make_batch(1, 42, 0, 20, Compression::None).freeze())
            .unwrap_err();
        assert_eq!(gap.error_code(), 45, "OUT_OF_ORDER_SEQUENCE_NUMBER");
        drop(p);
        let p = open(dir.path(), &[]);
        assert_eq!(p.producer_count(), 1, "producer state rebuilt from the log");
        assert_eq!(p.append(batch).unwrap().base_offset, 0);
        assert_eq!(p.offsets().2, 8);
    }

    #[test]
    fn malformed_records_are_refused_without_appending() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), &[]);
        let mut corrupt = make_batch(2, -1, -1, -1, Compression::None);
        let n = corrupt.len();
        corrupt[n - 1] ^= 1;
        assert_eq!(
            p.append(corrupt.freeze()).unwrap_err().error_code(),
            2,
            "CORRUPT_MESSAGE"
        );
        assert_eq!(
            p.append(Bytes::from_static(b"nonsense"))
                .unwrap_err()
                .error_code(),
            2
        );
        assert_eq!(p.offsets(), (0, 0, 0));
    }

    #[test]
    fn delete_records_moves_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), &[]);
        p.append(make_batch(10, -1, -1, -1, Compression::None).freeze())
            .unwrap();
        assert_eq!(p.delete_records(4).unwrap(), 4);
        assert_eq!(p.offset_for_timestamp(EARLIEST_TIMESTAMP).unwrap().0, 4);
        assert!(p.delete_records(11).is_err());
        assert_eq!(p.delete_records(-1).unwrap(), 10);
    }
}
