//! A partition replica on this broker: its log, idempotence state, high watermark, and
//! its role (leader, follower or offline) as the controller last assigned it.
//!
//! As leader it validates and appends produced batches, tracks its followers and advances
//! the high watermark over the ISR; as follower it appends the leader's batches verbatim.
//! Consumers read below the high watermark in either role.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;
use tributary_metadata::ResponseError;

use bytes::Bytes;
use thiserror::Error;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::policy::TopicPolicy;
use crate::log::{batch, Log, LogError, RecoveryMode};
use crate::producer::state::{ProducerStateTable, SequenceCheck, SequenceError};
use crate::replication::leader::LeaderView;
use tributary_metadata::image::PartitionMeta;

/// File holding the last checkpointed high watermark (Kafka's replication-offset-checkpoint).
const HW_CHECKPOINT: &str = "high-watermark-checkpoint";

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
    #[error("this broker is not the leader of the partition")]
    NotLeader,
    #[error("in-sync replicas {isr} below min.insync.replicas {min}")]
    NotEnoughReplicas { isr: usize, min: i32 },
    #[error("in-sync replicas fell below min.insync.replicas after the append")]
    NotEnoughReplicasAfterAppend,
    #[error("replication did not complete within the request timeout")]
    Timeout,
    #[error("replicated batch at offset {got} does not continue the log at {expected}")]
    ReplicaGap { expected: i64, got: i64 },
    #[error("storage error: {0}")]
    Storage(#[from] std::io::Error),
}

impl PartitionError {
    /// The Kafka error a client is answered with for this failure.
    pub fn kafka_error(&self) -> ResponseError {
        match self {
            PartitionError::Batch(e) => e.kafka_error(),
            PartitionError::Sequence(e) => e.kafka_error(),
            PartitionError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
            PartitionError::TransactionsUnsupported => ResponseError::InvalidTxnState,
            PartitionError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
            PartitionError::NotLeader => ResponseError::NotLeaderOrFollower,
            PartitionError::NotEnoughReplicas { .. } => ResponseError::NotEnoughReplicas,
            PartitionError::NotEnoughReplicasAfterAppend => {
                ResponseError::NotEnoughReplicasAfterAppend
            }
            PartitionError::Timeout => ResponseError::RequestTimedOut,
            PartitionError::ReplicaGap { .. } => ResponseError::CorruptMessage,
            PartitionError::Storage(_) => ResponseError::KafkaStorageError,
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
    /// Offset just past the appended data: acks=all waits for the HW to reach it.
    pub end_offset: i64,
    /// The broker time stamped on LogAppendTime topics, else -1.
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// The leader epoch the data was appended in: acks=all fails if leadership moves on.
    pub leader_epoch: i32,
}

/// Data for one partition of a fetch response.
#[derive(Debug, Clone)]
pub struct FetchedData {
    pub records: Bytes,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// This broker's role for the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    Leader(LeaderView),
    Follower { leader: i32 },
    Offline,
}

/// How applying metadata changed the partition's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    Unchanged,
    BecameLeader,
    BecameFollower { leader: i32 },
    WentOffline,
}

/// An ISR change the leader wants the controller to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
}

#[derive(Debug)]
struct PartitionState {
    log: Log,
    producers: ProducerStateTable,
    high_watermark: i64,
    leader_epoch: i32,
    partition_epoch: i32,
    policy: TopicPolicy,
    role: Role,
    /// Set on becoming follower: truncate by leader epoch before fetching.
    needs_truncation: bool,
    pending_isr: Option<Vec<i32>>,
}

/// One partition's replica on this broker.
#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub index: i32,
    broker_id: i32,
    state: Mutex<PartitionState>,
    hw: watch::Sender<i64>,
}

impl Partition {
    /// Opens the partition's log in `dir`, rebuilding idempotence state from its batches.
    /// The partition starts offline until metadata assigns it a role.
    pub fn open(
        dir: &Path,
        topic: &str,
        index: i32,
        broker_id: i32,
        policy: TopicPolicy,
        mode: RecoveryMode,
    ) -> std::io::Result<Self> {
        let mut producers = ProducerStateTable::default();
        let log = Log::open(dir, policy.log.clone(), mode, &mut |h| producers.record(h))?;
        // Without replication state on disk, the committed prefix is unknown until the leader
        // says; a sole replica's whole log is committed (see `apply_metadata`).
        let high_watermark = std::fs::read_to_string(dir.join(HW_CHECKPOINT))
            .ok()
            .and_then(|t| t.trim().parse::<i64>().ok())
            .unwrap_or(0)
            .clamp(log.log_start_offset(), log.log_end_offset());
        let (hw, _) = watch::channel(high_watermark);
        Ok(Partition {
            topic: topic.to_string(),
            index,
            broker_id,
            state: Mutex::new(PartitionState {
                log,
                producers,
                high_watermark,
                leader_epoch: -1,
                partition_epoch: -1,
                policy,
                role: Role::Offline,
                needs_truncation: false,
                pending_isr: None,
            }),
            hw,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PartitionState> {
        // Appends are ordered writes; a panic elsewhere cannot leave them half-visible.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set_hw(&self, state: &mut PartitionState, hw: i64) -> bool {
        if hw == state.high_watermark {
            return false;
        }
        state.high_watermark = hw;
        self.hw.send_replace(hw);
        true
    }

    /// Adopts the controller's assignment for this partition.
    pub fn apply_metadata(&self, meta: &PartitionMeta, now_ms: u64) -> RoleChange {
        let mut state = self.lock();
        let me = self.broker_id;
        // Epochs only move forward: a late answer (e.g. to an ISR proposal) must not undo a
        // newer assignment.
        if (meta.leader_epoch, meta.partition_epoch) < (state.leader_epoch, state.partition_epoch) {
            return RoleChange::Unchanged;
        }
        if meta.leader == me {
            let same_term =
                matches!(state.role, Role::Leader(_)) && state.leader_epoch == meta.leader_epoch;
            if same_term {
                if meta.partition_epoch > state.partition_epoch {
                    if let Role::Leader(view) = &mut state.role {
                        view.isr = meta.isr.clone();
                        view.replicas = meta.replicas.clone();
                    }
                    state.partition_epoch = meta.partition_epoch;
                    state.pending_isr = None;
                    self.advance_hw(&mut state);
                }
                return RoleChange::Unchanged;
            }
            info!(topic = %self.topic, partition = self.index, epoch = meta.leader_epoch, isr = ?meta.isr, "becoming leader");
            let epoch_start = state.log.log_end_offset();
            state.role = Role::Leader(LeaderView::new(
                me,
                meta.replicas.clone(),
                meta.isr.clone(),
                epoch_start,
                now_ms,
            ));
            state.leader_epoch = meta.leader_epoch;
            state.partition_epoch = meta.partition_epoch;
            state.pending_isr = None;
            state.needs_truncation = false;
            if meta.isr == [me] {
                // Alone in the ISR: everything in the log is committed.
                let leo = state.log.log_end_offset();
                self.set_hw(&mut state, leo);
            }
            self.advance_hw(&mut state);
            return RoleChange::BecameLeader;
        }
        if meta.leader >= 0 {
            let same = state.role
                == Role::Follower {
                    leader: meta.leader,
                }
                && state.leader_epoch == meta.leader_epoch;
            state.partition_epoch = meta.partition_epoch;
            if same {
                return RoleChange::Unchanged;
            }
            info!(topic = %self.topic, partition = self.index, leader = meta.leader, epoch = meta.leader_epoch, "becoming follower");
            state.role = Role::Follower {
                leader: meta.leader,
            };
            state.leader_epoch = meta.leader_epoch;
            state.needs_truncation = true;
            state.pending_isr = None;
            return RoleChange::BecameFollower {
                leader: meta.leader,
            };
        }
        state.leader_epoch = meta.leader_epoch;
        state.partition_epoch = meta.partition_epoch;
        if state.role == Role::Offline {
            return RoleChange::Unchanged;
        }
        state.role = Role::Offline;
        RoleChange::WentOffline
    }

    fn advance_hw(&self, state: &mut PartitionState) -> bool {
        let leo = state.log.log_end_offset();
        let Role::Leader(view) = &state.role else {
            return false;
        };
        let hw = view
            .high_watermark(leo, state.high_watermark, state.pending_isr.as_deref())
            .min(leo);
        self.set_hw(state, hw)
    }

    /// The leader epoch clients must present.
    pub fn leader_epoch(&self) -> i32 {
        self.lock().leader_epoch
    }

    /// Whether this broker leads the partition.
    pub fn is_leader(&self) -> bool {
        matches!(self.lock().role, Role::Leader(_))
    }

    /// The leader this replica follows, if it is a follower.
    pub fn following(&self) -> Option<i32> {
        match self.lock().role {
            Role::Follower { leader } => Some(leader),
            _ => None,
        }
    }

    /// Current ISR as the leader sees it (empty when not leader).
    pub fn isr(&self) -> Vec<i32> {
        match &self.lock().role {
            Role::Leader(view) => view.isr.clone(),
            _ => Vec::new(),
        }
    }

    /// Effective `min.insync.replicas`.
    pub fn min_insync_replicas(&self) -> i32 {
        self.lock().policy.min_insync_replicas
    }

    /// Validates and appends the record batches of one produce request partition (leader).
    pub fn append(&self, records: Bytes, acks: i16) -> Result<Appended, PartitionError> {
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
            if header.is_transactional() || header.is_control() {
                return Err(PartitionError::TransactionsUnsupported);
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
                    state.producers.record(&stamped);
                    first_offset.get_or_insert(stamped.base_offset);
                    end_offset = stamped.next_offset();
                }
            }
        }
        self.advance_hw(&mut state);
        Ok(Appended {
            base_offset: first_offset.unwrap_or(-1),
            end_offset,
            log_append_time: log_append_time.unwrap_or(-1),
            log_start_offset: state.log.log_start_offset(),
            leader_epoch: state.leader_epoch,
        })
    }

    /// Waits until the high watermark reaches `end_offset` (acks=all), failing if this broker
    /// stops leading, the ISR shrinks below `min.insync.replicas`, or `timeout` passes.
    pub async fn wait_for_commit(
        &self,
        appended: &Appended,
        timeout: Duration,
    ) -> Result<(), PartitionError> {
        let mut rx = self.hw.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
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
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { return Err(PartitionError::NotLeader) },
                _ = tokio::time::sleep_until(deadline) => return Err(PartitionError::Timeout),
                // Re-check leadership periodically: a role change does not move the HW.
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// Reads committed batches from `offset` for a consumer (leader or follower replica).
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<FetchedData, PartitionError> {
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
        if offset >= hw {
            return Ok(FetchedData {
                records: Bytes::new(),
                high_watermark: hw,
                log_start_offset: start,
            });
        }
        let records = state.log.read(offset, max_bytes, hw)?;
        Ok(FetchedData {
            records,
            high_watermark: hw,
            log_start_offset: start,
        })
    }

    /// Serves a follower's fetch (leader only): data up to the log end, and records the
    /// follower's position, which may advance the high watermark. Returns whether it did.
    pub fn read_for_follower(
        &self,
        replica: i32,
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
        view.on_follower_fetch(replica, offset, leo, now_ms);
        let advanced = self.advance_hw(&mut state);
        let records = state.log.read(offset, max_bytes, leo)?;
        Ok((
            FetchedData {
                records,
                high_watermark: state.high_watermark,
                log_start_offset: start,
            },
            advanced,
        ))
    }

    /// Appends batches fetched from the leader, verbatim (follower only), then adopts the
    /// leader's high watermark as far as this log reaches.
    pub fn append_replicated(
        &self,
        fetched_in_epoch: i32,
        records: Bytes,
        leader_hw: i64,
        leader_log_start: i64,
    ) -> Result<(), PartitionError> {
        let mut state = self.lock();
        if !Self::following_in(&state, fetched_in_epoch) {
            return Err(PartitionError::NotLeader);
        }
        for (header, bytes) in batch::BatchIter::new(records) {
            let leo = state.log.log_end_offset();
            if header.last_offset() < leo {
                continue;
            }
            if header.base_offset != leo {
                return Err(PartitionError::ReplicaGap {
                    expected: leo,
                    got: header.base_offset,
                });
            }
            batch::validate(&bytes)?;
            state.log.append_replica(bytes, &header)?;
            state.producers.record(&header);
        }
        if leader_log_start > state.log.log_start_offset() {
            let target = leader_log_start.min(state.log.log_end_offset());
            state.log.advance_start_offset(target)?;
        }
        let hw = leader_hw.min(state.log.log_end_offset());
        self.set_hw(&mut state, hw);
        Ok(())
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

    /// Follower bookkeeping for the fetcher: `(fetch offset, leader epoch, needs truncation,
    /// latest local epoch, log start)`.
    pub fn follower_position(&self) -> (i64, i32, bool, i32, i64) {
        let state = self.lock();
        (
            state.log.log_end_offset(),
            state.leader_epoch,
            state.needs_truncation,
            state.log.epochs().latest_epoch().unwrap_or(-1),
            state.log.log_start_offset(),
        )
    }

    /// Whether the replica still follows in `epoch`: answers to requests made in an older
    /// epoch are stale and must not touch the log.
    fn following_in(state: &PartitionState, epoch: i32) -> bool {
        matches!(state.role, Role::Follower { .. }) && state.leader_epoch == epoch
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
        let mut state = self.lock();
        if !Self::following_in(&state, fetched_in_epoch) {
            return Ok(());
        }
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
        let mut state = self.lock();
        if !Self::following_in(&state, fetched_in_epoch) {
            return Ok(());
        }
        self.truncate_locked(&mut state, offset)?;
        state.needs_truncation = false;
        Ok(())
    }

    /// A follower that fell behind the leader's log start restarts its log there.
    pub fn reset_to(&self, fetched_in_epoch: i32, offset: i64) -> Result<(), PartitionError> {
        let mut state = self.lock();
        if !Self::following_in(&state, fetched_in_epoch) {
            return Ok(());
        }
        warn!(topic = %self.topic, partition = self.index, offset, "follower log reset to the leader's log start");
        let start = state.log.log_start_offset();
        state.log.truncate_to(start)?;
        state.log.reset_start(offset)?;
        state.producers = ProducerStateTable::default();
        self.set_hw(&mut state, offset);
        state.needs_truncation = false;
        Ok(())
    }

    /// The replica is no longer assigned here: parked requests fail fast.
    pub fn go_offline(&self) {
        self.lock().role = Role::Offline;
    }

    /// The ISR change the leader should propose now, if any and none is pending.
    pub fn isr_proposal(&self, now_ms: u64, lag_max_ms: u64) -> Option<IsrProposal> {
        let mut state = self.lock();
        if state.pending_isr.is_some() {
            return None;
        }
        let hw = state.high_watermark;
        let Role::Leader(view) = &state.role else {
            return None;
        };
        let new_isr = view.proposed_isr(hw, now_ms, lag_max_ms)?;
        state.pending_isr = Some(new_isr.clone());
        Some(IsrProposal {
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            new_isr,
        })
    }

    /// The controller answered an ISR proposal: adopt it, or clear the pending flag.
    pub fn isr_proposal_done(&self, committed: Option<&PartitionMeta>) {
        match committed {
            Some(meta) => {
                self.apply_metadata(meta, 0);
            }
            None => self.lock().pending_isr = None,
        }
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

    /// Forces unflushed data to disk and checkpoints the high watermark (shutdown).
    pub fn flush(&self) -> std::io::Result<()> {
        let mut state = self.lock();
        state.log.flush()?;
        Self::write_hw_checkpoint(&state)
    }

    fn write_hw_checkpoint(state: &PartitionState) -> std::io::Result<()> {
        let dir = state.log.dir();
        let tmp = dir.join(format!("{HW_CHECKPOINT}.tmp"));
        std::fs::write(&tmp, state.high_watermark.to_string())?;
        std::fs::rename(&tmp, dir.join(HW_CHECKPOINT))
    }

    /// Periodic high-watermark checkpoint, so a restarted replica does not start from zero.
    pub fn checkpoint_hw(&self) -> std::io::Result<()> {
        Self::write_hw_checkpoint(&self.lock())
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
    use crate::log::batch::tests::make_batch;
    use kafka_protocol::records::Compression;
    use std::collections::BTreeMap;
    use tributary_metadata::topic_config::ConfigLayers;

    /// The topic policy with these topic-level overrides.
    fn policy(overrides: &[(&str, &str)]) -> TopicPolicy {
        let topic: BTreeMap<String, String> = overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TopicPolicy::resolve(&ConfigLayers {
            topic: Some(&topic),
            ..Default::default()
        })
    }

    fn open(dir: &Path, overrides: &[(&str, &str)]) -> Partition {
        let p = Partition::open(dir, "t", 0, 1, policy(overrides), RecoveryMode::Verify).unwrap();
        let meta = meta(&[1], &[1], 1, 3, 0);
        assert_eq!(p.apply_metadata(&meta, 0), RoleChange::BecameLeader);
        p
    }

    #[test]
    fn appends_assign_offsets_and_stamp_epochs() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), &[]);
        let first = p.append(batch(5), -1).unwrap();
        let second = p
            .append(make_batch(2, -1, -1, -1, Compression::Lz4).freeze(), -1)
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
        let err = p.append(batch(5), -1).unwrap_err();
        assert_eq!(err.kafka_error(), ResponseError::MessageTooLarge);
        assert_eq!(p.offsets(), (0, 0, 0), "nothing appended");
    }

    #[test]
    fn log_append_time_is_stamped() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), &[("message.timestamp.type", "LogAppendTime")]);
        let before = crate::util::now_ms();
        let done = p
            .append(make_batch(3, -1, -1, -1, Compression::Gzip).freeze(), -1)
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
        assert_eq!(p.append(batch.clone(), -1).unwrap().base_offset, 0);
        p.append(make_batch(4, 42, 0, 4, Compression::None).freeze(), -1)
            .unwrap();
        assert_eq!(
            p.append(batch.clone(), -1).unwrap().base_offset,
            0,
            "retry answered with the original offset"
        );
        assert_eq!(p.offsets().2, 8);
        let gap = p
            .append(make_batch(1, 42, 0, 20, Compression::None).freeze(), -1)
            .unwrap_err();
        assert_eq!(gap.kafka_error(), ResponseError::OutOfOrderSequenceNumber);
        drop(p);
        let p = open(dir.path(), &[]);
        assert_eq!(p.producer_count(), 1, "producer state rebuilt from the log");
        assert_eq!(p.append(batch, -1).unwrap().base_offset, 0);
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
            p.append(corrupt.freeze(), -1).unwrap_err().kafka_error(),
            ResponseError::CorruptMessage
        );
        assert_eq!(
            p.append(Bytes::from_static(b"nonsense"), -1)
                .unwrap_err()
                .kafka_error(),
            ResponseError::CorruptMessage
        );
        assert_eq!(p.offsets(), (0, 0, 0));
    }

    #[test]
    fn delete_records_moves_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let p = open(dir.path(), &[]);
        p.append(batch(10), -1).unwrap();
        assert_eq!(p.delete_records(4).unwrap(), 4);
        assert_eq!(p.offset_for_timestamp(EARLIEST_TIMESTAMP).unwrap().0, 4);
        assert!(p.delete_records(11).is_err());
        assert_eq!(p.delete_records(-1).unwrap(), 10);
    }

    fn meta(
        replicas: &[i32],
        isr: &[i32],
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
    ) -> PartitionMeta {
        PartitionMeta {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch,
            partition_epoch,
        }
    }

    /// An uncompressed batch of `records` records, as a producer sends it.
    fn batch(records: usize) -> Bytes {
        make_batch(records, -1, -1, -1, Compression::None).freeze()
    }

    fn replica(dir: &Path, broker: i32, meta: &PartitionMeta) -> Partition {
        let policy = TopicPolicy::resolve(&ConfigLayers::default());
        let p = Partition::open(dir, "t", 0, broker, policy, RecoveryMode::Verify).unwrap();
        p.apply_metadata(meta, 0);
        p
    }

    #[tokio::test]
    async fn replication_advances_the_high_watermark_over_the_isr() {
        let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let meta = meta(&[1, 2], &[1, 2], 1, 4, 0);
        let leader = replica(dirs.0.path(), 1, &meta);
        let follower = replica(dirs.1.path(), 2, &meta);
        assert_eq!(follower.following(), Some(1));
        let done = leader.append(batch(3), -1).unwrap();
        assert_eq!(
            leader.offsets().1,
            0,
            "not committed before the follower has it"
        );
        assert!(matches!(
            leader
                .wait_for_commit(&done, Duration::from_millis(50))
                .await,
            Err(PartitionError::Timeout)
        ));
        // Consumers see nothing yet; the follower fetches everything up to the log end.
        assert!(leader.read(0, 1 << 20).unwrap().records.is_empty());
        let (data, moved) = leader.read_for_follower(2, 0, 1 << 20, 10).unwrap();
        assert!(!moved);
        follower
            .append_replicated(4, data.records, data.high_watermark, data.log_start_offset)
            .unwrap();
        assert_eq!(follower.offsets(), (0, 0, 3));
        // Its next fetch proves it has offsets 0..3: the HW moves and acks=all completes.
        let (_, moved) = leader.read_for_follower(2, 3, 1 << 20, 20).unwrap();
        assert!(moved);
        leader
            .wait_for_commit(&done, Duration::from_millis(50))
            .await
            .unwrap();
        let (data, _) = leader.read_for_follower(2, 3, 1 << 20, 30).unwrap();
        follower
            .append_replicated(4, data.records, data.high_watermark, data.log_start_offset)
            .unwrap();
        assert_eq!(follower.offsets().1, 3, "follower adopts the leader's HW");
        // A follower never accepts client writes; a non-replica's fetch is refused.
        assert_eq!(
            follower.append(batch(1), 1).unwrap_err().kafka_error(),
            ResponseError::NotLeaderOrFollower
        );
        assert!(leader.read_for_follower(9, 0, 100, 40).is_err());
    }

    #[test]
    fn min_insync_replicas_is_checked_before_appending() {
        let dir = tempfile::tempdir().unwrap();
        let meta = meta(&[1, 2, 3], &[1], 1, 0, 0);
        let policy = policy(&[("min.insync.replicas", "2")]);
        let p = Partition::open(dir.path(), "t", 0, 1, policy, RecoveryMode::Verify).unwrap();
        p.apply_metadata(&meta, 0);
        let err = p.append(batch(1), -1).unwrap_err();
        assert_eq!(err.kafka_error(), ResponseError::NotEnoughReplicas);
        assert_eq!(p.offsets().2, 0, "nothing appended");
        assert!(p.append(batch(1), 1).is_ok(), "acks=1 is not held back");
    }

    #[test]
    fn a_new_follower_truncates_its_divergent_tail() {
        let dir = tempfile::tempdir().unwrap();
        let lead = meta(&[1, 2], &[1], 1, 1, 0);
        let p = replica(dir.path(), 1, &lead);
        p.append(batch(5), 1).unwrap();
        p.append(batch(5), 1).unwrap();
        // Broker 2 took over at epoch 2; the leader says epoch 1 ended at offset 5.
        let follow = meta(&[1, 2], &[2], 2, 2, 1);
        assert_eq!(
            p.apply_metadata(&follow, 0),
            RoleChange::BecameFollower { leader: 2 }
        );
        let (leo, epoch, needs_truncation, latest, _) = p.follower_position();
        assert_eq!((leo, epoch, needs_truncation, latest), (10, 2, true, 1));
        // The leader's answer for our epoch 1: it ends at offset 5 there.
        p.truncate_to_leader_epoch(2, 1, 1, 5).unwrap();
        let (leo, _, needs_truncation, _, _) = p.follower_position();
        assert_eq!((leo, needs_truncation), (5, false));
        // A follower behind the leader's log start restarts its log there.
        p.reset_to(2, 100).unwrap();
        // Answers to requests made in an older epoch are ignored.
        p.truncate_diverged(1, 0).unwrap();
        assert_eq!(p.offsets(), (100, 100, 100));
    }

    #[tokio::test]
    async fn isr_shrinking_below_min_after_the_append_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let policy = policy(&[("min.insync.replicas", "2")]);
        let p = Partition::open(dir.path(), "t", 0, 1, policy, RecoveryMode::Verify).unwrap();
        let mut meta = meta(&[1, 2], &[1, 2], 1, 0, 0);
        p.apply_metadata(&meta, 0);
        let done = p.append(batch(2), -1).unwrap();
        // The controller drops the follower from the ISR: the leader alone commits the data,
        // which is fewer replicas than min.insync.replicas.
        meta.isr = vec![1];
        meta.partition_epoch = 1;
        p.apply_metadata(&meta, 0);
        let err = p
            .wait_for_commit(&done, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert_eq!(
            err.kafka_error(),
            ResponseError::NotEnoughReplicasAfterAppend
        );
    }

    #[test]
    fn truncation_uses_the_epoch_both_logs_share() {
        // Our log: epoch 2 at 0..5, epoch 3 at 5..7 and 7..10. The leader never saw epoch 3:
        // it answers for its floor epoch 2, which ends at 8 in its log. Our epoch 2 ends at
        // 5, so offsets from 5 on are ours alone and must go (KIP-279).
        let dir = tempfile::tempdir().unwrap();
        let p = replica(dir.path(), 1, &meta(&[1, 2], &[1], 1, 2, 0));
        p.append(batch(5), 1).unwrap();
        p.apply_metadata(&meta(&[1, 2], &[1], 1, 3, 1), 0);
        p.append(batch(2), 1).unwrap();
        p.append(batch(3), 1).unwrap();
        p.apply_metadata(&meta(&[1, 2], &[2], 2, 4, 2), 0);
        p.truncate_to_leader_epoch(4, 3, 2, 8).unwrap();
        assert_eq!(p.offsets().2, 5);
    }
}
