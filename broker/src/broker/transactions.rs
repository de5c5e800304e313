//! The transaction coordinator at work: each change of a transactional id is computed by
//! the pure state machine ([`crate::transaction::state`]), written to its
//! `__transaction_state` partition with acks=all, and only then applied and answered.
//! Ending a transaction sends markers to the leaders of its partitions (WriteTxnMarkers,
//! or a local append when this broker leads one) until every one is written, then
//! records the transaction complete. A coordinator that takes a partition over resends
//! the markers of transactions it finds half-ended.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
use tracing::{debug, info, warn};
use tributary_metadata::rpc::TopicSpec;
use tributary_metadata::ResponseError;

use super::metadata_cache::address_of;
use super::Broker;
use crate::group::offsets::OFFSETS_TOPIC;
use crate::log::batch::ControlType;
use crate::partition::{Partition, RoleChange};
use crate::replication::client::KafkaConnection;
use crate::transaction::coordinator::TRANSACTION_TOPIC;
use crate::transaction::log;
use crate::transaction::state::{
    unfinished_markers, InitOutcome, Markers, Transition, TxnMetadata, TxnPartition,
};

/// How long a write to `__transaction_state` or a marker may wait for its ISR.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How soon markers that could not be written yet are tried again.
const MARKER_RETRY: Duration = Duration::from_millis(100);
/// How soon recording a completed transaction is tried again.
const COMPLETE_RETRY: Duration = Duration::from_millis(500);
/// How much of a `__transaction_state` partition is read at a time while loading.
const LOAD_CHUNK_BYTES: usize = 1 << 20;

impl Broker {
    /// Creates `__transaction_state` if it does not exist yet (on the first
    /// FindCoordinator for a transaction), compacted like `__consumer_offsets`.
    pub async fn ensure_transaction_topic(&self) {
        if self
            .metadata
            .with_image(|img| img.topics.contains_key(TRANSACTION_TOPIC))
        {
            return;
        }
        let live = self.metadata.live_brokers().len().max(1) as i64;
        let rf = self
            .config
            .setting_i64("transaction.state.log.replication.factor")
            .clamp(1, live);
        let min_isr = self
            .config
            .setting_i64("transaction.state.log.min.isr")
            .clamp(1, rf);
        let segment_bytes = self
            .config
            .setting_i64("transaction.state.log.segment.bytes")
            .max(14);
        let spec = TopicSpec {
            name: TRANSACTION_TOPIC.to_string(),
            partitions: self.transactions.partitions,
            replication_factor: rf as i16,
            assignments: Vec::new(),
            configs: BTreeMap::from([
                ("cleanup.policy".to_string(), "compact".to_string()),
                ("segment.bytes".to_string(), segment_bytes.to_string()),
                ("min.insync.replicas".to_string(), min_isr.to_string()),
            ]),
        };
        for result in self.create_topics(vec![spec], false).await {
            match result {
                Ok(_) => info!(replication_factor = rf, "created {TRANSACTION_TOPIC}"),
                Err(e) if e.code == ResponseError::TopicAlreadyExists => {}
                Err(e) => warn!(error = %e, "creating {TRANSACTION_TOPIC} failed"),
            }
        }
    }

    /// Writes a transition's record durably, applies it, and starts its markers.
    async fn commit_transition(
        self: &Arc<Self>,
        partition: i32,
        transition: Transition,
    ) -> Result<(), ResponseError> {
        let log = self
            .replicas
            .get(TRANSACTION_TOPIC, partition)
            .ok_or(ResponseError::NotCoordinator)?;
        let records =
            log::encode(&transition.record).map_err(|_| ResponseError::UnknownServerError)?;
        let coordinator_error = |e: crate::partition::PartitionError| match e {
            crate::partition::PartitionError::NotLeader => ResponseError::NotCoordinator,
            _ => ResponseError::CoordinatorNotAvailable,
        };
        let appended = log.append(records, -1).map_err(coordinator_error)?;
        log.commit_own_write(appended, &self.appended, WRITE_TIMEOUT)
            .await
            .map_err(coordinator_error)?;
        self.transactions.apply(transition.record);
        if let Some(markers) = transition.markers {
            self.spawn_markers(partition, markers);
        }
        Ok(())
    }

    /// InitProducerId with a transactional id: the producer's id and epoch.
    pub async fn init_transactional_producer(
        self: &Arc<Self>,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), ResponseError> {
        let partition = self.transactions.owner_of(transactional_id)?;
        let _change = self.transactions.changes.lock().await;
        let fresh = if self
            .transactions
            .read(|t| t.needs_producer_id(transactional_id))
        {
            let id = self.allocate_producer_id().await.map_err(|e| {
                warn!(error = %e, "allocating a producer id failed");
                ResponseError::CoordinatorNotAvailable
            })?;
            Some(id)
        } else {
            None
        };
        let now = crate::util::now_ms();
        let outcome = self
            .transactions
            .read(|t| t.init_producer_id(transactional_id, timeout_ms, expected, fresh, now))?;
        match outcome {
            InitOutcome::Ready {
                producer_id,
                producer_epoch,
                transition,
            } => {
                self.commit_transition(partition, transition).await?;
                Ok((producer_id, producer_epoch))
            }
            InitOutcome::AbortingPrevious(transition) => {
                info!(
                    transactional_id,
                    "aborting the open transaction of an earlier producer"
                );
                self.commit_transition(partition, transition).await?;
                Err(ResponseError::ConcurrentTransactions)
            }
        }
    }

    /// AddPartitionsToTxn and AddOffsetsToTxn: `partitions` join the transaction.
    pub async fn add_partitions_to_txn(
        self: &Arc<Self>,
        transactional_id: &str,
        producer: (i64, i16),
        partitions: &[TxnPartition],
    ) -> Result<(), ResponseError> {
        let partition = self.transactions.owner_of(transactional_id)?;
        let _change = self.transactions.changes.lock().await;
        let now = crate::util::now_ms();
        let transition = self.transactions.read(|t| {
            t.add_partitions(transactional_id, producer.0, producer.1, partitions, now)
        })?;
        match transition {
            Some(transition) => self.commit_transition(partition, transition).await,
            None => Ok(()),
        }
    }

    /// EndTxn: the transaction commits or aborts; answered once that is decided (written),
    /// while its markers go out.
    pub async fn end_txn(
        self: &Arc<Self>,
        transactional_id: &str,
        producer: (i64, i16),
        commit: bool,
    ) -> Result<(), ResponseError> {
        let partition = self.transactions.owner_of(transactional_id)?;
        let _change = self.transactions.changes.lock().await;
        let now = crate::util::now_ms();
        let transition = self
            .transactions
            .read(|t| t.end(transactional_id, producer.0, producer.1, commit, now))?;
        match transition {
            Some(transition) => self.commit_transition(partition, transition).await,
            None => Ok(()),
        }
    }

    /// Aborts the transactions open longer than their timeout (every second).
    pub async fn expire_transactions(self: &Arc<Self>) {
        let _change = self.transactions.changes.lock().await;
        let now = crate::util::now_ms();
        for transition in self.transactions.read(|t| t.expired(now)) {
            let id = transition.record.transactional_id.clone();
            let partition = self.transactions.partition_of(&id);
            info!(transactional_id = %id, "aborting a transaction past its timeout");
            if let Err(e) = self.commit_transition(partition, transition).await {
                warn!(transactional_id = %id, error = ?e, "aborting a timed-out transaction failed");
            }
        }
    }

    fn spawn_markers(self: &Arc<Self>, partition: i32, markers: Markers) {
        let broker = self.clone();
        tokio::spawn(async move { broker.deliver_markers(partition, markers).await });
    }

    /// Writes `markers` on every partition of the transaction, retrying those whose
    /// leader cannot take them yet, then records the transaction complete. Stops if this
    /// broker stops coordinating the id (the next coordinator resends them).
    async fn deliver_markers(self: Arc<Self>, partition: i32, markers: Markers) {
        let id = markers.transactional_id.clone();
        let mut remaining: BTreeSet<TxnPartition> = markers.partitions.clone();
        while !remaining.is_empty() {
            if self.transactions.owner_of(&id).is_err() {
                debug!(transactional_id = %id, "no longer the coordinator: leaving the markers to the next one");
                return;
            }
            let coordinator_epoch = self
                .replicas
                .get(TRANSACTION_TOPIC, partition)
                .map_or(0, |p| p.leader_epoch());
            let image = self.metadata.image();
            let mut by_leader: BTreeMap<i32, Vec<TxnPartition>> = BTreeMap::new();
            for (topic, index) in &remaining {
                let leader = image
                    .topics
                    .get(topic)
                    .map(|t| t.partitions.get(*index as usize).map_or(-1, |p| p.leader));
                match leader {
                    // The topic (or partition) is gone: nothing to mark.
                    None => by_leader
                        .entry(-2)
                        .or_default()
                        .push((topic.clone(), *index)),
                    Some(leader) if leader >= 0 => by_leader
                        .entry(leader)
                        .or_default()
                        .push((topic.clone(), *index)),
                    Some(_) => {}
                }
            }
            for (leader, partitions) in by_leader {
                let written = if leader == -2 {
                    partitions.clone()
                } else if leader == self.config.broker_id {
                    let mut written = Vec::new();
                    for (topic, index) in partitions {
                        let control = if markers.commit {
                            ControlType::Commit
                        } else {
                            ControlType::Abort
                        };
                        match self
                            .write_txn_marker(
                                &topic,
                                index,
                                markers.producer_id,
                                markers.producer_epoch,
                                control,
                                coordinator_epoch,
                            )
                            .await
                        {
                            // A marker refused for an older producer epoch is one a newer
                            // coordinator decision has superseded: nothing left to write.
                            Ok(())
                            | Err(ResponseError::UnknownTopicOrPartition)
                            | Err(ResponseError::InvalidProducerEpoch) => {
                                written.push((topic, index))
                            }
                            Err(e) => debug!(%topic, index, error = ?e, "marker not written yet"),
                        }
                    }
                    written
                } else {
                    match address_of(&image, leader) {
                        Some(addr) => {
                            self.send_markers(&addr, &markers, &partitions, coordinator_epoch)
                                .await
                        }
                        None => Vec::new(),
                    }
                };
                for done in written {
                    remaining.remove(&done);
                }
            }
            if !remaining.is_empty() {
                tokio::time::sleep(MARKER_RETRY).await;
            }
        }
        // Record it complete, retrying while this broker still coordinates the id: until
        // then every request of the id answers CONCURRENT_TRANSACTIONS.
        loop {
            let recorded = {
                let _change = self.transactions.changes.lock().await;
                if self.transactions.owner_of(&id).is_err() {
                    return;
                }
                let now = crate::util::now_ms();
                let Some(transition) = self
                    .transactions
                    .read(|t| t.complete(&id, markers.producer_epoch, markers.commit, now))
                else {
                    return;
                };
                self.commit_transition(partition, transition).await
            };
            match recorded {
                Ok(()) => return,
                Err(e) => {
                    warn!(transactional_id = %id, error = ?e, "recording a completed transaction failed: retrying");
                    tokio::time::sleep(COMPLETE_RETRY).await;
                }
            }
        }
    }

    /// Sends WriteTxnMarkers for `partitions` to the leader at `addr`; returns the
    /// partitions it wrote (or that no longer exist).
    async fn send_markers(
        &self,
        addr: &str,
        markers: &Markers,
        partitions: &[TxnPartition],
        coordinator_epoch: i32,
    ) -> Vec<TxnPartition> {
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, index) in partitions {
            topics.entry(topic).or_default().push(*index);
        }
        let marker = WritableTxnMarker::default()
            .with_producer_id(ProducerId(markers.producer_id))
            .with_producer_epoch(markers.producer_epoch)
            .with_transaction_result(markers.commit)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, indexes)| {
                        WritableTxnMarkerTopic::default()
                            .with_name(TopicName(crate::handlers::sb(name.to_string())))
                            .with_partition_indexes(indexes)
                    })
                    .collect(),
            );
        let request = WriteTxnMarkersRequest::default().with_markers(vec![marker]);
        let client_id = format!("tributary-txn-coordinator-{}", self.config.broker_id);
        let response = match KafkaConnection::connect(addr, client_id).await {
            Ok(mut connection) => connection.send(1, &request).await,
            Err(e) => Err(e),
        };
        let response = match response {
            Ok(response) => response,
            Err(e) => {
                debug!(addr, error = %e, "WriteTxnMarkers failed");
                return Vec::new();
            }
        };
        let mut written = Vec::new();
        for result in response.markers {
            for topic in result.topics {
                for p in topic.partitions {
                    let code = p.error_code;
                    let settled = [
                        ResponseError::UnknownTopicOrPartition,
                        ResponseError::InvalidProducerEpoch,
                    ];
                    if code == 0 || settled.iter().any(|e| e.code() == code) {
                        written.push((topic.name.0.to_string(), p.partition_index));
                    }
                }
            }
        }
        written
    }

    /// Writes one marker on a partition this broker leads and waits until it is
    /// committed; a marker on `__consumer_offsets` also settles the producer's
    /// transactional offset commits.
    pub async fn write_txn_marker(
        &self,
        topic: &str,
        index: i32,
        producer_id: i64,
        producer_epoch: i16,
        control: ControlType,
        coordinator_epoch: i32,
    ) -> Result<(), ResponseError> {
        let Some(partition) = self.replicas.get(topic, index) else {
            return Err(if self.metadata.has_partition(topic, index) {
                ResponseError::NotLeaderOrFollower
            } else {
                ResponseError::UnknownTopicOrPartition
            });
        };
        let appended = partition
            .write_marker(producer_id, producer_epoch, control, coordinator_epoch)
            .map_err(|e| e.kafka_error())?;
        partition
            .commit_own_write(appended, &self.appended, WRITE_TIMEOUT)
            .await
            .map_err(|e| e.kafka_error())?;
        if topic == OFFSETS_TOPIC {
            self.groups
                .complete_txn(index, producer_id, control == ControlType::Commit);
        }
        Ok(())
    }

    /// Follows a role change of a `__transaction_state` partition: a new leader loads
    /// its transactional ids and resends the markers of half-ended transactions; a former
    /// leader forgets them.
    pub fn on_transaction_partition_role_change(
        self: &Arc<Self>,
        partition: &Arc<Partition>,
        change: RoleChange,
    ) {
        match change {
            RoleChange::BecameLeader => {
                self.transactions.begin_loading(partition.index);
                let broker = self.clone();
                let partition = partition.clone();
                tokio::spawn(async move {
                    let loaded = tokio::task::spawn_blocking({
                        let partition = partition.clone();
                        move || load(&partition)
                    })
                    .await;
                    let records = match loaded {
                        Ok(Ok(records)) => records,
                        Ok(Err(e)) => {
                            warn!(partition = partition.index, error = %e, "loading transaction state failed");
                            return;
                        }
                        Err(e) => {
                            warn!(error = %e, "transaction state loader panicked");
                            return;
                        }
                    };
                    let unfinished: Vec<Markers> =
                        records.values().filter_map(unfinished_markers).collect();
                    if partition.is_leader()
                        && broker.transactions.finish_loading(partition.index, records)
                    {
                        for markers in unfinished {
                            broker.spawn_markers(partition.index, markers);
                        }
                    }
                });
            }
            RoleChange::BecameFollower { .. } | RoleChange::WentOffline => {
                self.transactions.unload(partition.index)
            }
            RoleChange::Unchanged => {}
        }
    }
}

/// Replays a `__transaction_state` partition from its log start to its log end.
fn load(partition: &Partition) -> std::io::Result<HashMap<String, TxnMetadata>> {
    let mut records = HashMap::new();
    partition.replay(LOAD_CHUNK_BYTES, |data| log::replay(data, &mut records))?;
    Ok(records)
}
