//! The follower side of replication: one task per leader broker fetches every partition
//! this broker follows from that leader, as Kafka's `ReplicaFetcherThread` does.
//!
//! A partition that just became a follower first asks the leader, with
//! OffsetForLeaderEpoch, where its latest epoch ends on the leader and truncates any
//! divergent tail; then it fetches from its log end. Fetch responses carry the leader's high
//! watermark, which the follower adopts as far as its own log reaches.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, OffsetForLeaderEpochRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tracing::{debug, info, warn, Instrument};

use super::client::KafkaConnection;
use crate::broker::Broker;
use crate::partition::Partition;

/// Fetch version used between brokers (topic names, leader epochs, diverging epochs).
const FETCH_VERSION: i16 = 12;
const OFFSET_FOR_LEADER_EPOCH_VERSION: i16 = 4;
const MAX_WAIT_MS: i32 = 500;
const PARTITION_MAX_BYTES: i32 = 1 << 20;
const RESPONSE_MAX_BYTES: i32 = 16 << 20;
const RETRY_BACKOFF: Duration = Duration::from_millis(100);

/// Starts fetchers for leaders this broker now follows; fetchers with nothing left to
/// follow stop on their own.
pub fn reconcile(broker: &Arc<Broker>) {
    let mut leaders: Vec<i32> = broker
        .all_partitions()
        .iter()
        .filter_map(|p| p.following())
        .collect();
    leaders.sort_unstable();
    leaders.dedup();
    let mut fetchers = broker.fetchers.lock().unwrap_or_else(|p| p.into_inner());
    fetchers.retain(|_, task| !task.is_finished());
    for leader in leaders {
        if fetchers.contains_key(&leader) {
            continue;
        }
        let span = tracing::info_span!("replica-fetcher", broker = broker.config.broker_id, leader);
        let task = tokio::spawn(run(broker.clone(), leader).instrument(span));
        fetchers.insert(leader, task);
    }
}

fn followed(broker: &Broker, leader: i32) -> Vec<Arc<Partition>> {
    broker
        .all_partitions()
        .into_iter()
        .filter(|p| p.following() == Some(leader))
        .collect()
}

async fn run(broker: Arc<Broker>, leader: i32) {
    info!("replica fetcher started");
    let mut connection: Option<(String, KafkaConnection)> = None;
    loop {
        let partitions = followed(&broker, leader);
        if partitions.is_empty() {
            info!("replica fetcher stopped: nothing to follow");
            return;
        }
        let Some(addr) = broker.with_image(|img| {
            img.brokers
                .get(&leader)
                .filter(|b| !b.fenced)
                .map(|b| format!("{}:{}", b.host, b.port))
        }) else {
            tokio::time::sleep(RETRY_BACKOFF).await;
            continue;
        };
        if connection.as_ref().is_none_or(|(a, _)| *a != addr) {
            match KafkaConnection::connect(
                &addr,
                format!("replica-fetcher-{}", broker.config.broker_id),
            )
            .await
            {
                Ok(c) => connection = Some((addr.clone(), c)),
                Err(e) => {
                    debug!(error = %e, "cannot reach leader");
                    tokio::time::sleep(RETRY_BACKOFF).await;
                    continue;
                }
            }
        }
        let Some((_, conn)) = connection.as_mut() else {
            continue;
        };
        // A role change (a partition newly followed from this leader, or one that stopped)
        // interrupts the long poll, so a new follower starts replicating at once.
        let mut roles = broker.subscribe_role_changes();
        roles.borrow_and_update();
        let result = tokio::select! {
            r = async {
                truncate_diverged(&broker, conn, &partitions).await?;
                fetch_once(&broker, conn, &partitions).await
            } => r,
            _ = roles.changed() => {
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

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// KIP-101: for partitions that just became followers, truncate to where the leader's log
/// for our latest epoch ends.
async fn truncate_diverged(
    broker: &Broker,
    conn: &mut KafkaConnection,
    partitions: &[Arc<Partition>],
) -> Result<()> {
    let mut by_topic: HashMap<String, Vec<OffsetForLeaderPartition>> = HashMap::new();
    // Each partition with the epoch it follows in and the epoch it asks about.
    let mut pending: HashMap<(String, i32), (Arc<Partition>, i32, i32)> = HashMap::new();
    for p in partitions {
        let (_, leader_epoch, needs_truncation, latest_epoch, _) = p.follower_position();
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
        .with_replica_id(BrokerId(broker.config.broker_id))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, parts)| {
                    OffsetForLeaderTopic::default()
                        .with_topic(topic_name(&t))
                        .with_partitions(parts)
                })
                .collect(),
        );
    let response = conn.send(OFFSET_FOR_LEADER_EPOCH_VERSION, &request).await?;
    for topic in response.topics {
        for r in topic.partitions {
            let Some((p, epoch, requested)) =
                pending.get(&(topic.topic.0.to_string(), r.partition))
            else {
                continue;
            };
            match r.error_code {
                0 => {
                    debug!(topic = %p.topic, partition = p.index, epoch = r.leader_epoch, end_offset = r.end_offset, "leader epoch lookup");
                    p.truncate_to_leader_epoch(*epoch, *requested, r.leader_epoch, r.end_offset)?
                }
                code => {
                    debug!(topic = %p.topic, partition = p.index, code, "epoch lookup refused; waiting for metadata")
                }
            }
        }
    }
    Ok(())
}

async fn fetch_once(
    broker: &Broker,
    conn: &mut KafkaConnection,
    partitions: &[Arc<Partition>],
) -> Result<()> {
    let mut by_topic: HashMap<String, Vec<FetchPartition>> = HashMap::new();
    // Each partition with the epoch the request was made in.
    let mut index: HashMap<(String, i32), (Arc<Partition>, i32)> = HashMap::new();
    for p in partitions {
        let (fetch_offset, leader_epoch, needs_truncation, latest_epoch, log_start) =
            p.follower_position();
        if needs_truncation {
            continue;
        }
        by_topic.entry(p.topic.clone()).or_default().push(
            FetchPartition::default()
                .with_partition(p.index)
                .with_current_leader_epoch(leader_epoch)
                .with_fetch_offset(fetch_offset)
                .with_last_fetched_epoch(latest_epoch)
                .with_log_start_offset(log_start)
                .with_partition_max_bytes(PARTITION_MAX_BYTES),
        );
        index.insert((p.topic.clone(), p.index), (p.clone(), leader_epoch));
    }
    if by_topic.is_empty() {
        tokio::time::sleep(RETRY_BACKOFF).await;
        return Ok(());
    }
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(broker.config.broker_id))
        .with_max_wait_ms(MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(RESPONSE_MAX_BYTES)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, parts)| {
                    FetchTopic::default()
                        .with_topic(topic_name(&t))
                        .with_partitions(parts)
                })
                .collect(),
        );
    let response = conn.send(FETCH_VERSION, &request).await?;
    if response.error_code != 0 {
        return Err(anyhow!("fetch failed with error {}", response.error_code));
    }
    let mut backoff = false;
    for topic in response.responses {
        for data in topic.partitions {
            let Some((p, epoch)) = index.get(&(topic.topic.0.to_string(), data.partition_index))
            else {
                continue;
            };
            let epoch = *epoch;
            match data.error_code {
                0 => {
                    let records = data.records.unwrap_or_default();
                    tracing::trace!(topic = %p.topic, partition = p.index, bytes = records.len(), hw = data.high_watermark, "fetched");
                    if let Err(e) = p.append_replicated(
                        epoch,
                        records,
                        data.high_watermark,
                        data.log_start_offset,
                    ) {
                        warn!(topic = %p.topic, partition = p.index, error = %e, "appending replicated data failed");
                        backoff = true;
                    } else {
                        broker.notify_appended();
                    }
                }
                1 => {
                    debug!(topic = %p.topic, partition = p.index, hw = data.high_watermark, log_start = data.log_start_offset, "fetch offset out of range");
                    // OFFSET_OUT_OF_RANGE: behind the leader's log start, or ahead of its end.
                    let (start, _, end) = p.offsets();
                    if end < data.log_start_offset {
                        p.reset_to(epoch, data.log_start_offset)?;
                    } else if start <= data.high_watermark && data.high_watermark < end {
                        p.truncate_diverged(epoch, data.high_watermark)?;
                    } else {
                        backoff = true;
                    }
                }
                code => {
                    debug!(topic = %p.topic, partition = p.index, code, "fetch refused; waiting for metadata");
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
