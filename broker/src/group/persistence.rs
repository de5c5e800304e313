//! Committed offsets and group metadata on `__consumer_offsets`. A commit is written
//! through the replicated partition with acks=all and applied to the coordinator only once
//! durable; group metadata is written behind the coordinator's changes, in order; leading
//! an offsets partition loads its groups by replaying the partition, and losing it unloads
//! them.

use std::sync::Arc;
use std::time::Duration;

use tracing::warn;
use tributary_metadata::ResponseError;

use super::coordinator::{GroupCoordinator, Unsaved};
use super::offsets::{self, OffsetTable, OffsetWrites, OFFSETS_TOPIC};
use crate::broker::replica_manager::ReplicaManager;
use crate::partition::{Partition, PartitionError, RoleChange};
use crate::util::Signal;

/// How long a commit waits for the offsets partition's ISR.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of the offsets partition is read at a time while loading.
const LOAD_CHUNK_BYTES: usize = 1 << 20;

/// Reads and writes committed offsets through the hosted offsets partitions.
#[derive(Debug)]
pub struct OffsetsLog {
    groups: Arc<GroupCoordinator>,
    replicas: Arc<ReplicaManager>,
    appended: Signal,
}

impl OffsetsLog {
    /// Offsets of `groups`, stored in the replicas of `replicas`.
    pub fn new(
        groups: Arc<GroupCoordinator>,
        replicas: Arc<ReplicaManager>,
        appended: Signal,
    ) -> Self {
        OffsetsLog {
            groups,
            replicas,
            appended,
        }
    }

    /// Durably writes offset commits (or deletions) to offsets partition `partition`, then
    /// applies them to the coordinator's table.
    pub async fn write(&self, partition: i32, entries: OffsetWrites) -> Result<(), ResponseError> {
        if entries.is_empty() {
            return Ok(());
        }
        let records = offsets::encode(&entries).map_err(|_| ResponseError::UnknownServerError)?;
        self.append_durably(partition, records).await?;
        self.groups.apply(partition, entries);
        Ok(())
    }

    /// Durably writes a transaction's offset commits (TxnOffsetCommit) to offsets partition
    /// `partition`, staged until the transaction's marker.
    pub async fn write_txn(
        &self,
        partition: i32,
        producer: (i64, i16),
        entries: OffsetWrites,
    ) -> Result<(), ResponseError> {
        if entries.is_empty() {
            return Ok(());
        }
        let records = offsets::encode_txn(&entries, producer)
            .map_err(|_| ResponseError::UnknownServerError)?;
        self.append_durably(partition, records).await?;
        self.groups.stage_txn(partition, producer.0, entries);
        Ok(())
    }

    /// Stores group metadata as the coordinator queues it, one record at a time in the
    /// order the groups changed, until shutdown. A write that fails (the partition moved,
    /// its ISR is short) is dropped: the group then resumes from its previous generation
    /// on its next coordinator, whose members rejoin.
    pub async fn run_group_writer(&self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = self.groups.unsaved_ready() => {}
                _ = shutdown.changed() => return,
            }
            for unsaved in self.groups.take_unsaved() {
                let (group, encoded, ticket) = match unsaved {
                    Unsaved::Classic(group, snapshot) => {
                        let encoded = offsets::encode_group(&group, snapshot.as_ref());
                        (group, encoded, None)
                    }
                    Unsaved::Consumer {
                        group,
                        ticket,
                        records,
                    } => (group, offsets::encode_records(records), Some(ticket)),
                };
                let partition = self.groups.partition_of(&group);
                let written = match encoded {
                    Ok(records) => self.append_durably(partition, records).await,
                    Err(_) => Err(ResponseError::UnknownServerError),
                };
                if let Err(error) = written {
                    warn!(%group, partition, ?error, "storing group metadata failed");
                    if ticket.is_some() {
                        self.groups.forget_saved(&group);
                    }
                }
                if let Some(ticket) = ticket {
                    self.groups.mark_stored(ticket);
                }
            }
        }
    }

    /// Appends records to offsets partition `partition` and waits until they are
    /// committed (acks=all), failing as a group coordinator answers.
    async fn append_durably(
        &self,
        partition: i32,
        records: bytes::Bytes,
    ) -> Result<(), ResponseError> {
        let Some(log) = self.replicas.get(OFFSETS_TOPIC, partition) else {
            return Err(ResponseError::NotCoordinator);
        };
        let appended = log.append(records, -1).map_err(|e| coordinator_error(&e))?;
        log.commit_own_write(appended, &self.appended, COMMIT_TIMEOUT)
            .await
            .map_err(|e| coordinator_error(&e))
    }

    /// Drops every committed offset of a deleted topic.
    pub async fn forget_topic(&self, topic: &str) {
        for (partition, entries) in self.groups.offsets_of_topic(topic) {
            if let Err(e) = self.write(partition, entries).await {
                warn!(topic, error = %e, "dropping offsets of deleted topic failed");
            }
        }
    }

    /// Follows a role change of an offsets partition: a new leader loads its groups (in
    /// the background), a former leader unloads them.
    pub fn on_role_change(&self, partition: &Arc<Partition>, change: RoleChange) {
        match change {
            RoleChange::BecameLeader => {
                self.groups.begin_loading(partition.index);
                let groups = self.groups.clone();
                let partition = partition.clone();
                tokio::spawn(async move {
                    let table = tokio::task::spawn_blocking({
                        let partition = partition.clone();
                        move || load(&partition)
                    })
                    .await;
                    match table {
                        Ok(Ok(table)) if partition.is_leader() => {
                            groups.finish_loading(partition.index, table)
                        }
                        Ok(Ok(_)) => groups.unload(partition.index),
                        Ok(Err(e)) => {
                            warn!(partition = partition.index, error = %e, "loading offsets failed")
                        }
                        Err(e) => warn!(error = %e, "offsets loader panicked"),
                    }
                });
            }
            RoleChange::BecameFollower { .. } | RoleChange::WentOffline => {
                self.groups.unload(partition.index)
            }
            RoleChange::Unchanged => {}
        }
    }
}

/// What a group client is told when its offsets could not be written: Kafka's
/// coordinator answers in terms of the coordinator, not of the partition behind it.
fn coordinator_error(e: &PartitionError) -> ResponseError {
    match e {
        PartitionError::NotLeader => ResponseError::NotCoordinator,
        PartitionError::NotEnoughReplicas { .. } | PartitionError::NotEnoughReplicasAfterAppend => {
            ResponseError::CoordinatorNotAvailable
        }
        // Kafka's GroupMetadataManager: a commit too large for the offsets topic.
        PartitionError::MessageTooLarge { .. } => ResponseError::InvalidCommitOffsetSize,
        other => other.kafka_error(),
    }
}

/// Replays an offsets partition from its log start to its log end.
fn load(partition: &Partition) -> std::io::Result<OffsetTable> {
    let mut table = OffsetTable::default();
    partition.replay(LOAD_CHUNK_BYTES, |data| table.replay(data))?;
    Ok(table)
}
