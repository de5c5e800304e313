//! A partition replica on this broker: its log, idempotence state, high watermark, and
//! its role (leader, follower or offline) as the controller last assigned it.
//!
//! The rules are split by concern: `role` (adopting the controller's assignment and
//! proposing ISR changes), `append` (leader appends and acks=all waiting), `follower`
//! (replicated appends and truncation), `reads` (fetch, ListOffsets, DeleteRecords) and
//! `checkpoint` (flushes and the high-watermark checkpoint).

mod append;
mod checkpoint;
mod follower;
mod reads;
mod role;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use thiserror::Error;
use tokio::sync::watch;
use tributary_metadata::ResponseError;

use crate::config::policy::TopicPolicy;
use crate::log::{batch, compaction, Log, LogError, RecoveryMode};
use crate::producer::state::{ProducerStateTable, SequenceError};
use crate::producer::transactions::PartitionTxns;
use crate::replication::leader::{LeaderView, FETCH_RECENT_MS};

pub use append::Appended;
pub use checkpoint::{PendingFlush, StartedFlush};
pub use follower::FollowerPosition;
pub use reads::{
    FetchedData, LogOffsets, EARLIEST_LOCAL_TIMESTAMP, EARLIEST_TIMESTAMP, LATEST_TIERED_TIMESTAMP,
    LATEST_TIMESTAMP, MAX_TIMESTAMP,
};
pub use role::{IsrProposal, RoleChange};

/// Why a partition operation failed, mapped to Kafka error codes.
#[derive(Debug, Error)]
pub enum PartitionError {
    #[error(transparent)]
    Batch(#[from] batch::BatchError),
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    #[error("batch of {size} bytes exceeds max.message.bytes {max}")]
    MessageTooLarge { size: usize, max: usize },
    /// A compacted topic refuses records without a key: `records` are their indexes in
    /// the first batch that had any.
    #[error("Compacted topic cannot accept message without key in topic partition {partition}.")]
    KeylessRecords {
        partition: String,
        records: Vec<i32>,
    },
    #[error("control batches are written by the broker, not produced")]
    ControlBatchProduced,
    /// A marker older than the producer's epoch (a coordinator that was fenced).
    #[error("transaction marker at epoch {got} is older than the producer's epoch")]
    StaleMarker { got: i16 },
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
    #[error("replicated batch at offset {got} overlaps the log ending at {expected}")]
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
            PartitionError::KeylessRecords { .. } => ResponseError::InvalidRecord,
            PartitionError::ControlBatchProduced => ResponseError::InvalidRecord,
            PartitionError::StaleMarker { .. } => ResponseError::InvalidProducerEpoch,
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

impl PartitionError {
    /// The records a produce response names as the cause (`record_errors`, v8+).
    pub fn record_errors(&self) -> &[i32] {
        match self {
            PartitionError::KeylessRecords { records, .. } => records,
            _ => &[],
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

/// This broker's role for the partition.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    Leader(LeaderView),
    Follower { leader: i32 },
    Offline,
}

/// Everything a replica changes under its lock.
#[derive(Debug)]
struct PartitionState {
    log: Log,
    producers: ProducerStateTable,
    /// Open and aborted transactions (the last stable offset, read_committed fetches).
    txns: PartitionTxns,
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
    /// The replica's directory (fixed for its lifetime).
    dir: PathBuf,
    /// Serialises high-watermark checkpoint writes, which happen off the state lock.
    checkpoint: Mutex<()>,
    /// The last log start offset checkpointed (written off the state lock).
    log_start_written: Mutex<i64>,
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
        let mut txns = PartitionTxns::default();
        let log = Log::open(dir, policy.log.clone(), mode, &mut |h, control| {
            follow_batch(&mut producers, &mut txns, h, control)
        })?;
        // Without replication state on disk, the committed prefix is unknown until the leader
        // says; a sole replica's whole log is committed (see `apply_metadata`).
        let high_watermark = checkpoint::read_hw_checkpoint(dir, &log);
        let log_start = log.log_start_offset();
        let (hw, _) = watch::channel(high_watermark);
        Ok(Partition {
            topic: topic.to_string(),
            index,
            broker_id,
            state: Mutex::new(PartitionState {
                log,
                producers,
                txns,
                high_watermark,
                leader_epoch: -1,
                partition_epoch: -1,
                policy,
                role: Role::Offline,
                needs_truncation: false,
                pending_isr: None,
            }),
            hw,
            dir: dir.to_path_buf(),
            checkpoint: Mutex::new(()),
            log_start_written: Mutex::new(log_start),
        })
    }

    /// The last stable offset: the high watermark, held back by the oldest open
    /// transaction (what a read_committed consumer may read up to).
    fn last_stable_offset(state: &PartitionState) -> i64 {
        state
            .txns
            .first_unstable_offset()
            .map_or(state.high_watermark, |first| {
                first.min(state.high_watermark)
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

    /// Whether this replica leads while every other ISR member has stopped fetching from it
    /// (none for [`FETCH_RECENT_MS`]).
    pub fn is_cut_off_leader(&self, now_ms: u64) -> bool {
        self.followers_cut_off(now_ms) == Some(true)
    }

    /// For a leader with other replicas in its ISR, whether every one of them stopped
    /// fetching; `None` when this replica does not lead, or leads alone.
    pub fn followers_cut_off(&self, now_ms: u64) -> Option<bool> {
        match &self.lock().role {
            Role::Leader(view) if view.isr.iter().any(|r| *r != view.leader) => {
                Some(view.followers_silent(now_ms, FETCH_RECENT_MS))
            }
            _ => None,
        }
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

    /// The replica is no longer assigned here: parked requests fail fast.
    pub fn go_offline(&self) {
        self.lock().role = Role::Offline;
    }

    /// Applies retention; returns segments removed.
    pub fn apply_retention(&self, now_ms: i64) -> std::io::Result<usize> {
        let (removed, log_start) = {
            let mut state = self.lock();
            let removed = state.log.apply_retention(now_ms)?;
            let log_start = state.log.log_start_offset();
            state.txns.retain_from(log_start);
            (removed, log_start)
        };
        self.checkpoint_log_start(log_start)?;
        Ok(removed)
    }

    /// Runs a cleaning round if the log is compacted and dirty enough: the cleaning
    /// happens off the partition lock, which is taken only to look at the log and to swap
    /// each rewritten segment in. `None` when there was nothing to do or the round moved
    /// nothing forward.
    pub fn clean(
        &self,
        buffer_bytes: usize,
        now_ms: i64,
    ) -> Result<Option<compaction::RoundReport>, compaction::CleanError> {
        let view = {
            let state = self.lock();
            let producers = state.producers.last_batch_offsets();
            let stable = Self::last_stable_offset(&state);
            match state
                .log
                .cleaner_view(stable, producers, state.txns.aborted())
            {
                Some(view) => view,
                None => return Ok(None),
            }
        };
        let Some(plan) = compaction::plan(&view, now_ms) else {
            return Ok(None);
        };
        let (rewritten, mut report) = compaction::clean(&view, plan, buffer_bytes, now_ms)?;
        report.segments_rewritten = 0;
        for segment in &rewritten {
            if self.lock().log.swap_cleaned(segment)? {
                report.segments_rewritten += 1;
            }
        }
        self.lock().log.checkpoint_cleaned(report.first_dirty)?;
        // A round that moved nothing forward is no reason to run another at once.
        let progressed = report.segments_rewritten > 0 || report.first_dirty > view.first_dirty;
        Ok(progressed.then_some(report))
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

    /// Number of producers with idempotence state.
    pub fn producer_count(&self) -> usize {
        self.lock().producers.len()
    }
}

/// Follows one batch now in the log (appended, replicated or recovered): idempotence
/// state, transactions, and the epoch a marker fences.
fn follow_batch(
    producers: &mut ProducerStateTable,
    txns: &mut PartitionTxns,
    header: &batch::BatchHeader,
    control: Option<batch::ControlType>,
) {
    if header.is_control() {
        producers.record_marker(header);
    } else {
        producers.record(header);
    }
    txns.on_batch(header, control);
}
