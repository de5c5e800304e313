//! Leader appends: validation, idempotence and all-or-nothing multi-batch appends, and
//! the acks=all wait for the high watermark.

use std::time::Duration;

use bytes::Bytes;
use tracing::warn;

use super::{Partition, PartitionError, PartitionState, PendingFlush, Role};

/// How long an acks=all write waits before a lapsed controller session fails it. Writes
/// commit within milliseconds while followers fetch, so only a leader whose followers
/// stopped fetching (cut off with it from the controller) waits this long; a leader that
/// lost only the controller keeps committing.
pub const LAPSED_SESSION_GRACE: Duration = Duration::from_millis(500);
use crate::log::batch;
use crate::producer::state::SequenceCheck;

/// Result of an append, for the produce response.
#[derive(Debug)]
pub struct Appended {
    pub base_offset: i64,
    /// Offset just past the appended data: acks=all waits for the HW to reach it.
    pub end_offset: i64,
    /// The broker time stamped on LogAppendTime topics, else -1.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// The leader epoch the data was appended in: acks=all fails if leadership moves on.
    pub leader_epoch: i32,
    /// The fsync the append leaves to run off the lock, if any.
    pub flush: Option<PendingFlush>,
}

impl Partition {
    /// Validates and appends the record batches of one produce request partition (leader).
    pub fn append(&self, records: Bytes, acks: i16) -> Result<Appended, PartitionError> {
        // Recompressing is the costly part of an append, so it runs off the lock.
        let target = self.lock().policy.compression;
        let records = match target {
            Some(codec) => batch::recompress(records, codec)?,
            None => records,
        };
        let batches = batch::split_batches(&records)?;
        let mut state = self.lock();
        let isr_len = match &state.role {
            Role::Leader(view) => view.isr.len(),
            _ => return Err(PartitionError::NotLeader),
        };
        if acks == -1 && (isr_len as i32) < state.policy.min_insync_replicas {
            return Err(PartitionError::NotEnoughReplicas {
                isr: isr_len,
                min: state.policy.min_insync_replicas,
            });
        }
        for (header, range) in &batches {
            if range.len() > state.policy.max_message_bytes {
                return Err(PartitionError::MessageTooLarge {
                    size: range.len(),
                    max: state.policy.max_message_bytes,
                });
            }
            if header.is_control() {
                return Err(PartitionError::ControlBatchProduced);
            }
            if state.policy.log.compact {
                let keyless = batch::keyless_records(&records.slice(range.clone()))?;
                if !keyless.is_empty() {
                    return Err(PartitionError::KeylessRecords {
                        partition: format!("{}-{}", self.topic, self.index),
                        records: keyless,
                    });
                }
            }
        }
        if batches.len() > 1 {
            // Check every batch's sequence before appending any, so a request is appended
            // whole or not at all.
            let mut scratch = state.producers.clone();
            let mut next = state.log.log_end_offset();
            for (header, _) in &batches {
                if scratch.check(header)? == SequenceCheck::Append {
                    let mut placed = *header;
                    placed.base_offset = next;
                    next = placed.next_offset();
                    scratch.record(&placed);
                }
            }
        }
        let log_append_time = state.policy.log_append_time.then(crate::util::now_ms);
        let mut first_offset = None;
        let mut end_offset = state.log.log_end_offset();
        for (header, range) in batches {
            match state.producers.check(&header)? {
                SequenceCheck::Duplicate { base_offset } => {
                    first_offset.get_or_insert(base_offset);
                    end_offset = end_offset
                        .max(base_offset + header.last_offset_delta as i64 + 1)
                        .min(state.log.log_end_offset());
                }
                SequenceCheck::Append => {
                    let epoch = state.leader_epoch;
                    let stamped = state
                        .log
                        .append(records.slice(range), &header, epoch, log_append_time)
                        .inspect_err(|e| warn!(topic = %self.topic, partition = self.index, error = %e, "append failed"))?;
                    let PartitionState {
                        producers, txns, ..
                    } = &mut *state;
                    super::follow_batch(producers, txns, &stamped, None);
                    first_offset.get_or_insert(stamped.base_offset);
                    end_offset = stamped.next_offset();
                }
            }
        }
        self.advance_hw(&mut state);
        let flush = PendingFlush::take(&mut state);
        Ok(Appended {
            base_offset: first_offset.unwrap_or(-1),
            end_offset,
            log_append_time: log_append_time.unwrap_or(-1),
            log_start_offset: state.log.log_start_offset(),
            leader_epoch: state.leader_epoch,
            flush,
        })
    }

    /// Appends a transaction marker (leader only), as WriteTxnMarkers asks: it ends the
    /// producer's open transaction here, and fences its older epochs. The caller waits
    /// for it to commit like an acks=all write.
    pub fn write_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        control: batch::ControlType,
        coordinator_epoch: i32,
    ) -> Result<Appended, PartitionError> {
        let now = crate::util::now_ms();
        let marker =
            batch::control_batch(producer_id, producer_epoch, control, coordinator_epoch, now)?;
        let header = batch::validate(&marker)?;
        let mut state = self.lock();
        if !matches!(state.role, Role::Leader(_)) {
            return Err(PartitionError::NotLeader);
        }
        if state
            .producers
            .epoch_of(producer_id)
            .is_some_and(|current| producer_epoch < current)
        {
            return Err(PartitionError::StaleMarker {
                got: producer_epoch,
            });
        }
        let epoch = state.leader_epoch;
        let log_append_time = state.policy.log_append_time.then_some(now);
        let stamped = state.log.append(marker, &header, epoch, log_append_time)?;
        let PartitionState {
            producers, txns, ..
        } = &mut *state;
        super::follow_batch(producers, txns, &stamped, Some(control));
        self.advance_hw(&mut state);
        let flush = PendingFlush::take(&mut state);
        Ok(Appended {
            base_offset: stamped.base_offset,
            end_offset: stamped.next_offset(),
            log_append_time: log_append_time.unwrap_or(-1),
            log_start_offset: state.log.log_start_offset(),
            leader_epoch: state.leader_epoch,
            flush,
        })
    }

    /// Finishes a write of the broker's own (an internal topic's records, a marker) as an
    /// acks=all produce does: wakes the followers' fetches, runs the fsync it owes and
    /// waits until the write is committed, for at most `timeout`.
    pub async fn commit_own_write(
        &self,
        mut appended: Appended,
        wake: &crate::util::Signal,
        timeout: Duration,
    ) -> Result<(), PartitionError> {
        wake.notify();
        if let Some(flush) = appended.flush.take() {
            flush.start().wait().await?;
        }
        // An internal write's timeout is short already; a lapsed session does not cut it.
        self.wait_for_commit(&appended, timeout, &|| false).await
    }

    /// Waits until the high watermark reaches `end_offset` (acks=all), failing if this broker
    /// stops leading, the ISR shrinks below `min.insync.replicas`, or `timeout` passes, or
    /// (NOT_LEADER_OR_FOLLOWER) if the write is still pending after
    /// [`LAPSED_SESSION_GRACE`] while `session_lapsed` says the controller has stopped
    /// hearing from this broker.
    pub async fn wait_for_commit(
        &self,
        appended: &Appended,
        timeout: Duration,
        session_lapsed: &(dyn Fn() -> bool + Sync),
    ) -> Result<(), PartitionError> {
        let mut rx = self.hw.subscribe();
        let started = tokio::time::Instant::now();
        let deadline = started + timeout;
        loop {
            let reached = *rx.borrow_and_update() >= appended.end_offset;
            {
                let state = self.lock();
                let Role::Leader(view) = &state.role else {
                    return Err(PartitionError::NotLeader);
                };
                if state.leader_epoch != appended.leader_epoch {
                    return Err(PartitionError::NotLeader);
                }
                if reached {
                    // Kafka's rule: committed, but by fewer replicas than required.
                    return if (view.isr.len() as i32) < state.policy.min_insync_replicas {
                        Err(PartitionError::NotEnoughReplicasAfterAppend)
                    } else {
                        Ok(())
                    };
                }
            }
            if started.elapsed() >= LAPSED_SESSION_GRACE && session_lapsed() {
                // A leader cut off from the controller and from its followers: it has most
                // likely been replaced, and the write cannot commit here. Sending the
                // client to refresh its metadata beats holding it until its timeout.
                return Err(PartitionError::NotLeader);
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return Err(PartitionError::NotLeader) },
                _ = tokio::time::sleep_until(deadline) => return Err(PartitionError::Timeout),
                // Re-check leadership periodically: a role change does not move the HW.
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }
}
