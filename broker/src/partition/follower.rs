//! The follower side: appending the leader's batches verbatim, and truncating a
//! divergent tail by leader epoch (KIP-101, KIP-279) before fetching. Every answer is
//! applied only while the replica still follows in the epoch the request was made in.

use std::sync::MutexGuard;

use bytes::Bytes;
use tracing::warn;

use super::{Partition, PartitionError, PartitionState, PendingFlush, Role};
use crate::log::batch;
use crate::producer::state::ProducerStateTable;
use crate::producer::transactions::PartitionTxns;

/// Where a follower stands, for its fetcher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerPosition {
    /// The next offset to fetch (the local log end).
    pub fetch_offset: i64,
    /// The leader epoch this replica follows in.
    pub leader_epoch: i32,
    /// Set on becoming a follower: truncate by leader epoch before fetching.
    pub needs_truncation: bool,
    /// The latest epoch in the local log (-1 if none).
    pub latest_epoch: i32,
    pub log_start: i64,
}

impl Partition {
    /// Appends batches fetched from the leader, verbatim (follower only), then adopts the
    /// leader's high watermark as far as this log reaches. Returns the fsync left to run.
    pub fn append_replicated(
        &self,
        fetched_in_epoch: i32,
        records: Bytes,
        leader_hw: i64,
        leader_log_start: i64,
    ) -> Result<Option<PendingFlush>, PartitionError> {
        let Some(mut state) = self.lock_following(fetched_in_epoch) else {
            return Err(PartitionError::NotLeader);
        };
        for (header, bytes) in batch::BatchIter::new(records) {
            let leo = state.log.log_end_offset();
            if header.last_offset() < leo {
                continue;
            }
            // A batch may start past the log end where the leader's cleaner removed
            // records; one that overlaps it is not the leader's log.
            if header.base_offset < leo {
                return Err(PartitionError::ReplicaGap {
                    expected: leo,
                    got: header.base_offset,
                });
            }
            batch::validate_stored(&bytes)?;
            let control = batch::control_type(&bytes);
            state.log.append_replica(bytes, &header)?;
            let PartitionState {
                producers, txns, ..
            } = &mut *state;
            super::follow_batch(producers, txns, &header, control);
        }
        if leader_log_start > state.log.log_start_offset() {
            let target = leader_log_start.min(state.log.log_end_offset());
            state.log.advance_start_offset(target)?;
            let log_start = state.log.log_start_offset();
            state.txns.retain_from(log_start);
        }
        let hw = leader_hw.min(state.log.log_end_offset());
        self.set_hw(&mut state, hw);
        let flush = PendingFlush::take(&mut state);
        let log_start = state.log.log_start_offset();
        drop(state);
        if let Err(e) = self.checkpoint_log_start(log_start) {
            warn!(topic = %self.topic, partition = self.index, error = %e, "checkpointing the log start failed");
        }
        Ok(flush)
    }

    /// Where this follower stands, for its fetcher.
    pub fn follower_position(&self) -> FollowerPosition {
        let state = self.lock();
        FollowerPosition {
            fetch_offset: state.log.log_end_offset(),
            leader_epoch: state.leader_epoch,
            needs_truncation: state.needs_truncation,
            latest_epoch: state.log.epochs().latest_epoch().unwrap_or(-1),
            log_start: state.log.log_start_offset(),
        }
    }

    /// The replica's state, if it still follows in `epoch`: answers to requests made in an
    /// older epoch are stale and must not touch the log.
    fn lock_following(&self, epoch: i32) -> Option<MutexGuard<'_, PartitionState>> {
        let state = self.lock();
        (matches!(state.role, Role::Follower { .. }) && state.leader_epoch == epoch)
            .then_some(state)
    }

    fn truncate_locked(
        &self,
        state: &mut PartitionState,
        offset: i64,
    ) -> Result<(), PartitionError> {
        if offset < state.log.log_end_offset() {
            warn!(topic = %self.topic, partition = self.index, from = state.log.log_end_offset(), to = offset, "truncating divergent log tail");
            let target = offset.max(state.log.log_start_offset());
            state.log.truncate_to(target)?;
            state.producers.truncate_from(target);
            state.txns.truncate_from(target);
            let hw = state.high_watermark.min(state.log.log_end_offset());
            self.set_hw(state, hw);
        }
        Ok(())
    }

    /// KIP-101/279: the leader answered where `requested` (our latest epoch) ends on its log
    /// with `(reply_epoch, reply_end)`. When the leader only knows an older epoch, truncate
    /// to where that epoch ends in both logs. Clears the truncation flag.
    pub fn truncate_to_leader_epoch(
        &self,
        fetched_in_epoch: i32,
        requested: i32,
        reply_epoch: i32,
        reply_end: i64,
    ) -> Result<(), PartitionError> {
        let Some(mut state) = self.lock_following(fetched_in_epoch) else {
            return Ok(());
        };
        let target = if reply_epoch < 0 || reply_end < 0 {
            // The leader has no record of any of our epochs: keep only what was committed.
            state.high_watermark
        } else if reply_epoch == requested {
            reply_end
        } else {
            let (_, local_end) = state
                .log
                .epochs()
                .end_offset_for(reply_epoch, state.log.log_end_offset());
            if local_end < 0 {
                reply_end
            } else {
                reply_end.min(local_end)
            }
        };
        self.truncate_locked(&mut state, target)?;
        state.needs_truncation = false;
        Ok(())
    }

    /// Truncates a follower's log to `offset` (the leader's high watermark after an
    /// out-of-range fetch).
    pub fn truncate_diverged(
        &self,
        fetched_in_epoch: i32,
        offset: i64,
    ) -> Result<(), PartitionError> {
        let Some(mut state) = self.lock_following(fetched_in_epoch) else {
            return Ok(());
        };
        self.truncate_locked(&mut state, offset)?;
        state.needs_truncation = false;
        Ok(())
    }

    /// A follower that fell behind the leader's log start restarts its log there.
    pub fn reset_to(&self, fetched_in_epoch: i32, offset: i64) -> Result<(), PartitionError> {
        let Some(mut state) = self.lock_following(fetched_in_epoch) else {
            return Ok(());
        };
        warn!(topic = %self.topic, partition = self.index, offset, "follower log reset to the leader's log start");
        let start = state.log.log_start_offset();
        state.log.truncate_to(start)?;
        state.log.reset_start(offset)?;
        state.producers = ProducerStateTable::default();
        state.txns = PartitionTxns::default();
        self.set_hw(&mut state, offset);
        state.needs_truncation = false;
        drop(state);
        self.checkpoint_log_start(offset)?;
        Ok(())
    }
}
