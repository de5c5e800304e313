//! Reads: consumer fetches below the high watermark, the leader serving its followers,
//! ListOffsets, OffsetForLeaderEpoch and DeleteRecords.

use bytes::Bytes;

use super::{Partition, PartitionError, Role};
use crate::log::batch;

/// ListOffsets special timestamps.
pub const LATEST_TIMESTAMP: i64 = -1;
pub const EARLIEST_TIMESTAMP: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL_TIMESTAMP: i64 = -4;
pub const LATEST_TIERED_TIMESTAMP: i64 = -5;

/// Data for one partition of a fetch response.
#[derive(Debug, Clone)]
pub struct FetchedData {
    pub records: Bytes,
    pub high_watermark: i64,
    /// The high watermark held back by open transactions.
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    /// For a read_committed fetch: `(producer id, first offset)` of the aborted
    /// transactions whose records the data may hold.
    pub aborted: Vec<(i64, i64)>,
}

/// Where a replica's log starts and ends, and what of it is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOffsets {
    pub log_start: i64,
    pub high_watermark: i64,
    pub last_stable: i64,
    pub log_end: i64,
}

impl Partition {
    /// Reads committed batches from `offset` for a consumer (leader or follower replica):
    /// up to the high watermark, or for `read_committed` up to the last stable offset,
    /// naming the aborted transactions in what it returns.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        read_committed: bool,
    ) -> Result<FetchedData, PartitionError> {
        let state = self.lock();
        if state.role == Role::Offline {
            return Err(PartitionError::NotLeader);
        }
        let hw = state.high_watermark;
        let start = state.log.log_start_offset();
        let leo = state.log.log_end_offset();
        // Between the high watermark and the log end there is nothing to read yet, which is
        // not an error (Kafka answers such fetches with no records).
        if offset > leo || offset < start {
            return Err(PartitionError::OffsetOutOfRange {
                offset,
                start,
                end: leo,
            });
        }
        let lso = Self::last_stable_offset(&state);
        let limit = if read_committed { lso } else { hw };
        let mut fetched = FetchedData {
            records: Bytes::new(),
            high_watermark: hw,
            last_stable_offset: lso,
            log_start_offset: start,
            aborted: Vec::new(),
        };
        if offset >= limit {
            return Ok(fetched);
        }
        fetched.records = state.log.read(offset, max_bytes, limit)?;
        if read_committed {
            let end = batch::BatchIter::new(fetched.records.clone())
                .last()
                .map_or(offset, |(header, _)| header.next_offset());
            fetched.aborted = state.txns.aborted_between(offset, end);
        }
        Ok(fetched)
    }

    /// Serves a follower's fetch (leader only): data up to the log end, and records the
    /// follower's position, which may advance the high watermark. Returns whether it did.
    pub fn read_for_follower(
        &self,
        replica: i32,
        broker_epoch: i64,
        offset: i64,
        max_bytes: usize,
        now_ms: u64,
    ) -> Result<(FetchedData, bool), PartitionError> {
        let mut state = self.lock();
        let leo = state.log.log_end_offset();
        let start = state.log.log_start_offset();
        let Role::Leader(view) = &mut state.role else {
            return Err(PartitionError::NotLeader);
        };
        if !view.replicas.contains(&replica) {
            return Err(PartitionError::NotLeader);
        }
        if offset > leo || offset < start {
            return Err(PartitionError::OffsetOutOfRange {
                offset,
                start,
                end: leo,
            });
        }
        view.on_follower_fetch(replica, broker_epoch, offset, leo, now_ms);
        let advanced = self.advance_hw(&mut state);
        let records = state.log.read(offset, max_bytes, leo)?;
        Ok((
            FetchedData {
                records,
                high_watermark: state.high_watermark,
                last_stable_offset: Self::last_stable_offset(&state),
                log_start_offset: start,
                aborted: Vec::new(),
            },
            advanced,
        ))
    }

    /// Raw batches in `[offset, limit)` regardless of the high watermark (replaying the
    /// offsets log on a new coordinator).
    pub fn read_range(
        &self,
        offset: i64,
        max_bytes: usize,
        limit: i64,
    ) -> Result<Bytes, PartitionError> {
        Ok(self.lock().log.read(offset, max_bytes, limit)?)
    }

    /// Reads the whole log, from its start to the end it has now, in chunks of whole
    /// batches of about `chunk_bytes`: how a coordinator replays a partition of an
    /// internal topic when it takes the partition over.
    pub fn replay(
        &self,
        chunk_bytes: usize,
        mut apply: impl FnMut(Bytes) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let offsets = self.offsets();
        let mut position = offsets.log_start;
        while position < offsets.log_end {
            let data = self
                .read_range(position, chunk_bytes, offsets.log_end)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let Some((last, _)) = batch::BatchIter::new(data.clone()).last() else {
                break;
            };
            position = last.next_offset();
            apply(data)?;
        }
        Ok(())
    }

    /// Where the log starts and ends, and its high watermark.
    pub fn offsets(&self) -> LogOffsets {
        let state = self.lock();
        LogOffsets {
            log_start: state.log.log_start_offset(),
            high_watermark: state.high_watermark,
            last_stable: Self::last_stable_offset(&state),
            log_end: state.log.log_end_offset(),
        }
    }

    /// DescribeProducers (leader only): each producer's state, with where its open
    /// transaction began (`None`: no open transaction).
    pub fn active_producers(
        &self,
    ) -> Result<Vec<(crate::producer::state::ProducerSnapshot, Option<i64>)>, PartitionError> {
        let state = self.lock();
        if !matches!(state.role, Role::Leader(_)) {
            return Err(PartitionError::NotLeader);
        }
        Ok(state
            .producers
            .snapshot()
            .into_iter()
            .map(|p| (p, state.txns.open_since(p.producer_id)))
            .collect())
    }

    /// ListOffsets: the offset (and timestamp) for a timestamp or special value, among
    /// the records a consumer of `read_committed` isolation may see.
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
        read_committed: bool,
    ) -> Result<(i64, i64), PartitionError> {
        let state = self.lock();
        let hw = if read_committed {
            Self::last_stable_offset(&state)
        } else {
            state.high_watermark
        };
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
        let log_start = state.log.log_start_offset();
        state.txns.retain_from(log_start);
        drop(state);
        self.checkpoint_log_start(log_start)?;
        Ok(log_start)
    }
}
