//! The follower side of replication: one task per leader broker fetches every partition
//! this broker follows from that leader, as Kafka's `ReplicaFetcherThread` does. The
//! [`super::fetcher_manager`] tells it what to follow.
//!
//! A partition that just became a follower first asks the leader, with
//! OffsetForLeaderEpoch, where its latest epoch ends on the leader and truncates any
//! divergent tail; then it fetches from its log end. Fetch responses carry the leader's high
//! watermark, which the follower adopts as far as its own log reaches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic, ForgottenTopic, ReplicaState,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, info, warn};

use tokio::sync::watch;
use tributary_metadata::ResponseError;
use uuid::Uuid;

use super::client::KafkaConnection;
use super::fetcher_manager::FollowerSet;
use super::session::FollowerSession;
use crate::broker::storage::{self, StorageHealth};
use crate::partition::{FollowerPosition, Partition, PartitionError};
use crate::util::Signal;

/// Fetch version used between brokers: v15 says which incarnation of the follower fetches
/// (its broker epoch, KIP-903), and names topics by id.
const FETCH_VERSION: i16 = 15;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
const MAX_WAIT_MS: i32 = 500;
const PARTITION_MAX_BYTES: i32 = 1 << 20;
const RESPONSE_MAX_BYTES: i32 = 16 << 20;
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Runs the fetcher for `leader` until its assignment is empty or it is stopped.
pub async fn run(
    broker_id: i32,
    leader: i32,
    mut assignment: watch::Receiver<Arc<FollowerSet>>,
    appended: Signal,
    storage: StorageHealth,
) {
    info!("replica fetcher started");
    let mut connection: Option<(String, KafkaConnection)> = None;
    // The fetch session lives and dies with its connection.
    let mut session = FollowerSession::default();
    loop {
        let set = assignment.borrow_and_update().clone();
        if set.partitions.is_empty() {
            info!("replica fetcher stopped: nothing to follow");
            return;
        }
        let Some(addr) = set.leader_addr.clone() else {
            // The leader is fenced: the next metadata change names a new one.
            if assignment.changed().await.is_err() {
                return;
            }
            continue;
        };
        if connection.as_ref().is_none_or(|(a, _)| *a != addr) {
            session.reset();
            match KafkaConnection::connect(&addr, format!("replica-fetcher-{broker_id}")).await {
                Ok(c) => connection = Some((addr.clone(), c)),
                Err(e) => {
                    debug!(leader, error = %e, "cannot reach leader");
                    tokio::time::sleep(RETRY_BACKOFF).await;
                    continue;
                }
            }
        }
        let Some((_, conn)) = connection.as_mut() else {
            continue;
        };
        // A new assignment interrupts the long poll (and leaves the connection mid-request,
        // so it is replaced).
        let result = tokio::select! {
            r = async {
                truncate_diverged(broker_id, conn, &set.partitions).await?;
                fetch_once(broker_id, conn, &mut session, &set, &appended, &storage).await
            } => r,
            changed = assignment.changed() => {
                if changed.is_err() {
                    return;
                }
                connection = None;
                continue;
            }
        };
        if let Err(e) = result {
            debug!(error = %e, "replica fetch failed; reconnecting");
            connection = None;
            tokio::time::sleep(RETRY_BACKOFF).await;
        }
    }
}

/// A request's topic entries, built from partitions grouped by topic name.
fn per_topic<P, T>(
    by_topic: HashMap<String, Vec<P>>,
    topic: impl Fn(TopicName, Vec<P>) -> T,
) -> Vec<T> {
    by_topic
        .into_iter()
        .map(|(name, partitions)| topic(TopicName(StrBytes::from_string(name)), partitions))
        .collect()
}

/// Items grouped by topic id, topics in order of first appearance.
fn group_by_topic<T>(items: Vec<(Uuid, T)>) -> Vec<(Uuid, Vec<T>)> {
    let mut groups: Vec<(Uuid, Vec<T>)> = Vec::new();
    for (topic_id, item) in items {
        match groups.iter_mut().find(|(id, _)| *id == topic_id) {
            Some((_, group)) => group.push(item),
            None => groups.push((topic_id, vec![item])),
        }
    }
    groups
}

/// KIP-101: for partitions that just became followers, truncate to where the leader's log
/// for our latest epoch ends.
async fn truncate_diverged(
    broker_id: i32,
    conn: &mut KafkaConnection,
    partitions: &[Arc<Partition>],
) -> Result<()> {
    let mut by_topic: HashMap<String, Vec<OffsetForLeaderPartition>> = HashMap::new();
    // Each partition with the epoch it follows in and the epoch it asks about.
    let mut pending: HashMap<(String, i32), (Arc<Partition>, i32, i32)> = HashMap::new();
    for p in partitions {
        let FollowerPosition {
            leader_epoch,
            needs_truncation,
            latest_epoch,
            ..
        } = p.follower_position();
        if !needs_truncation {
            continue;
        }
        if latest_epoch < 0 {
            // An empty log (or one without epochs) has nothing to diverge.
            p.truncate_diverged(leader_epoch, i64::MAX)?;
            continue;
        }
        by_topic.entry(p.topic.clone()).or_default().push(
            OffsetForLeaderPartition::default()
                .with_partition(p.index)
                .with_current_leader_epoch(leader_epoch)
                .with_leader_epoch(latest_epoch),
        );
        pending.insert(
            (p.topic.clone(), p.index),
            (p.clone(), leader_epoch, latest_epoch),
        );
    }
    if by_topic.is_empty() {
        return Ok(());
    }
    let request = OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(broker_id))
        .with_topics(per_topic(by_topic, |topic, partitions| {
            OffsetForLeaderTopic::default()
                .with_topic(topic)
                .with_partitions(partitions)
        }));
    let response = conn.send(OFFSET_FOR_LEADER_EPOCH_VERSION, &request).await?;
    for topic in response.topics {
        for r in topic.partitions {
            let Some((p, epoch, requested)) =
                pending.get(&(topic.topic.0.to_string(), r.partition))
            else {
                continue;
            };
            match ResponseError::try_from_code(r.error_code) {
                None => {
                    debug!(topic = %p.topic, partition = p.index, epoch = r.leader_epoch, end_offset = r.end_offset, "leader epoch lookup");
                    p.truncate_to_leader_epoch(*epoch, *requested, r.leader_epoch, r.end_offset)?
                }
                Some(error) => {
                    debug!(topic = %p.topic, partition = p.index, %error, "epoch lookup refused; waiting for metadata")
                }
            }
        }
    }
    Ok(())
}

async fn fetch_once(
    broker_id: i32,
    conn: &mut KafkaConnection,
    session: &mut FollowerSession,
    set: &FollowerSet,
    appended: &Signal,
    storage: &StorageHealth,
) -> Result<()> {
    let mut wanted: Vec<(Uuid, FetchPartition)> = Vec::new();
    // Each partition with the epoch the request was made in (answers may name any
    // partition of the session, not only those this request names).
    let mut index: HashMap<(Uuid, i32), (Arc<Partition>, i32)> = HashMap::new();
    for p in &set.partitions {
        let FollowerPosition {
            fetch_offset,
            leader_epoch,
            needs_truncation,
            latest_epoch,
            log_start,
        } = p.follower_position();
        if needs_truncation {
            continue;
        }
        let Some(topic_id) = set.topic_ids.get(&p.topic).copied() else {
            continue;
        };
        wanted.push((
            topic_id,
            FetchPartition::default()
                .with_partition(p.index)
                .with_current_leader_epoch(leader_epoch)
                .with_fetch_offset(fetch_offset)
                .with_last_fetched_epoch(latest_epoch)
                .with_log_start_offset(log_start)
                .with_partition_max_bytes(PARTITION_MAX_BYTES),
        ));
        index.insert((topic_id, p.index), (p.clone(), leader_epoch));
    }
    if wanted.is_empty() {
        tokio::time::sleep(RETRY_BACKOFF).await;
        return Ok(());
    }
    let plan = session.request(wanted);
    let topics = group_by_topic(plan.partitions)
        .into_iter()
        .map(|(topic_id, partitions)| {
            FetchTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(partitions)
        })
        .collect();
    let forgotten = group_by_topic(plan.forgotten)
        .into_iter()
        .map(|(topic_id, partitions)| {
            ForgottenTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(partitions)
        })
        .collect();
    let request = FetchRequest::default()
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(broker_id))
                .with_replica_epoch(set.broker_epoch),
        )
        .with_max_wait_ms(MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(RESPONSE_MAX_BYTES)
        .with_session_id(plan.session_id)
        .with_session_epoch(plan.session_epoch)
        .with_topics(topics)
        .with_forgotten_topics_data(forgotten);
    let response = match conn.send(FETCH_VERSION, &request).await {
        Ok(response) => response,
        Err(e) => {
            session.reset();
            return Err(e);
        }
    };
    if let Some(error) = ResponseError::try_from_code(response.error_code) {
        // An evicted session or an epoch out of step: the next fetch opens a new one.
        session.reset();
        return Err(anyhow!("fetch failed: {error}"));
    }
    session.answered(response.session_id);
    let mut backoff = false;
    for topic in response.responses {
        for data in topic.partitions {
            let Some((p, epoch)) = index.get(&(topic.topic_id, data.partition_index)) else {
                continue;
            };
            let epoch = *epoch;
            match ResponseError::try_from_code(data.error_code) {
                None => {
                    let records = data.records.unwrap_or_default();
                    tracing::trace!(topic = %p.topic, partition = p.index, bytes = records.len(), hw = data.high_watermark, "fetched");
                    let written = match p.append_replicated(
                        epoch,
                        records,
                        data.high_watermark,
                        data.log_start_offset,
                    ) {
                        Ok(Some(flush)) => match flush.start().wait().await {
                            Err(PartitionError::Storage(e)) => storage::sync_failed(&e),
                            other => other,
                        },
                        Ok(None) => Ok(()),
                        Err(PartitionError::Storage(e)) => {
                            storage.report_write_failure(&e);
                            Err(PartitionError::Storage(e))
                        }
                        Err(e) => Err(e),
                    };
                    if let Err(e) = written {
                        warn!(topic = %p.topic, partition = p.index, error = %e, "appending replicated data failed");
                        backoff = true;
                    } else {
                        appended.notify();
                    }
                }
                Some(ResponseError::OffsetOutOfRange) => {
                    debug!(topic = %p.topic, partition = p.index, hw = data.high_watermark, log_start = data.log_start_offset, "fetch offset out of range");
                    // Behind the leader's log start, or ahead of its end.
                    let local = p.offsets();
                    if local.log_end < data.log_start_offset {
                        p.reset_to(epoch, data.log_start_offset)?;
                    } else if local.log_start <= data.high_watermark
                        && data.high_watermark < local.log_end
                    {
                        p.truncate_diverged(epoch, data.high_watermark)?;
                    } else {
                        backoff = true;
                    }
                }
                Some(error) => {
                    debug!(topic = %p.topic, partition = p.index, %error, "fetch refused; waiting for metadata");
                    backoff = true;
                }
            }
        }
    }
    if backoff {
        tokio::time::sleep(RETRY_BACKOFF).await;
    }
    Ok(())
}
