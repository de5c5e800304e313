//! Reads: Fetch (long-poll), ListOffsets and OffsetForLeaderEpoch.

use std::sync::Arc;
use std::time::Duration;
use tributary_metadata::ResponseError;

use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::*;
use tokio::time::Instant;

use super::{check_leader_epoch, hosted_partition, resolve_topic, RequestContext};
use crate::broker::Broker;
use crate::fetch_session::{FetchPlan, FetchPosition, PartitionOutcome, SessionKey};
use crate::partition::{LogOffsets, Partition};
use kafka_protocol::protocol::StrBytes;

/// Longest a fetch may park, whatever the client asks (Kafka bounds it by request timeouts).
const MAX_WAIT_CAP: Duration = Duration::from_secs(30);

/// KIP-392: the in-sync follower in the consumer's rack, when the leader is elsewhere.
fn preferred_read_replica(
    broker: &Broker,
    topic: &str,
    index: i32,
    client_rack: &str,
) -> Option<i32> {
    if client_rack.is_empty() {
        return None;
    }
    broker.metadata.with_image(|img| {
        let meta = img.topics.get(topic)?.partitions.get(index as usize)?;
        let rack_of = |id: i32| {
            img.brokers
                .get(&id)
                .filter(|b| !b.fenced)
                .and_then(|b| b.rack.clone())
        };
        if rack_of(meta.leader).as_deref() == Some(client_rack) {
            return None;
        }
        meta.isr
            .iter()
            .copied()
            .find(|r| *r != meta.leader && rack_of(*r).as_deref() == Some(client_rack))
    })
}

/// One partition's answer, and what the fetch session records of it.
type PartitionAnswer = (PartitionData, PartitionOutcome);

/// One pass over the partitions a fetch reads; returns each one's answer, the bytes
/// gathered and whether any partition must be answered at once (an error, a redirect).
fn read_all(
    ctx: &RequestContext,
    req: &FetchRequest,
    plan: &FetchPlan,
    read_committed: bool,
) -> (Vec<PartitionAnswer>, usize, bool) {
    let broker = &ctx.broker;
    // Before v15 a follower's fetch does not say which incarnation it comes from.
    let (replica_id, replica_epoch) = if ctx.version >= 15 {
        (
            req.replica_state.replica_id.0,
            req.replica_state.replica_epoch,
        )
    } else {
        (req.replica_id.0, -1)
    };
    let from_follower = replica_id >= 0;
    let now = broker.now_ms();
    let mut total = 0usize;
    let mut had_error = false;
    let mut hw_moved = false;
    let max_bytes = req.max_bytes.max(0) as usize;
    let mut answers = Vec::with_capacity(plan.partitions.len());
    // An answer the client must hear even in an incremental fetch: an error, a redirect.
    let urgent = |data: PartitionData, code: i16| {
        let outcome = PartitionOutcome {
            high_watermark: data.high_watermark,
            last_stable_offset: data.last_stable_offset,
            log_start_offset: data.log_start_offset,
            has_records: false,
            must_send: true,
        };
        (data.with_error_code(code), outcome)
    };
    for (key, position) in &plan.partitions {
        let name = resolve_topic(broker, &key.topic, key.topic_id);
        let base = PartitionData::default()
            .with_partition_index(key.partition)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            .with_preferred_read_replica(BrokerId(-1))
            .with_aborted_transactions(read_committed.then(Vec::new));
        let partition = match hosted_partition(broker, &name, key.topic_id, key.partition) {
            Ok(partition) => partition,
            Err(e) => {
                had_error = true;
                answers.push(urgent(base, e.code()));
                continue;
            }
        };
        if let Err(e) = check_leader_epoch(position.current_leader_epoch, partition.leader_epoch())
        {
            had_error = true;
            answers.push(urgent(base, e.code()));
            continue;
        }
        if !from_follower && !partition.is_leader() && ctx.version < 11 {
            had_error = true;
            answers.push(urgent(base, ResponseError::NotLeaderOrFollower.code()));
            continue;
        }
        if !from_follower && partition.is_leader() {
            if let Some(replica) = name
                .as_deref()
                .and_then(|n| preferred_read_replica(broker, n, key.partition, &req.rack_id))
            {
                let LogOffsets {
                    log_start: start,
                    high_watermark: hw,
                    last_stable: lso,
                    ..
                } = partition.offsets();
                had_error = true; // answer now: the client moves to its replica
                let data = base
                    .with_preferred_read_replica(BrokerId(replica))
                    .with_high_watermark(hw)
                    .with_last_stable_offset(lso)
                    .with_log_start_offset(start)
                    .with_records(Some(Default::default()));
                answers.push(urgent(data, 0));
                continue;
            }
        }
        // KIP-74: the first partition with data may exceed max_bytes by one batch.
        let budget =
            (position.partition_max_bytes.max(0) as usize).min(max_bytes.saturating_sub(total));
        let budget = if total == 0 { budget.max(1) } else { budget };
        let result = if from_follower {
            partition
                .read_for_follower(
                    replica_id,
                    replica_epoch,
                    position.fetch_offset,
                    budget,
                    now,
                )
                .map(|(data, moved)| {
                    hw_moved |= moved;
                    data
                })
        } else {
            partition.read(position.fetch_offset, budget, read_committed)
        };
        match result {
            Ok(data) => {
                let records = if budget > 0 || data.records.is_empty() {
                    data.records
                } else {
                    Default::default()
                };
                total += records.len();
                let outcome = PartitionOutcome {
                    high_watermark: data.high_watermark,
                    last_stable_offset: data.last_stable_offset,
                    log_start_offset: data.log_start_offset,
                    has_records: !records.is_empty(),
                    must_send: false,
                };
                let aborted = data.aborted.iter().map(|&(producer_id, first_offset)| {
                    AbortedTransaction::default()
                        .with_producer_id(ProducerId(producer_id))
                        .with_first_offset(first_offset)
                });
                let data = base
                    .with_high_watermark(data.high_watermark)
                    .with_last_stable_offset(data.last_stable_offset)
                    .with_log_start_offset(data.log_start_offset)
                    .with_aborted_transactions(read_committed.then(|| aborted.collect()))
                    .with_records(Some(records));
                answers.push((data, outcome));
            }
            Err(e) => {
                had_error = true;
                let LogOffsets {
                    log_start: start,
                    high_watermark: hw,
                    last_stable: lso,
                    ..
                } = partition.offsets();
                let data = base
                    .with_high_watermark(hw)
                    .with_last_stable_offset(lso)
                    .with_log_start_offset(start);
                answers.push(urgent(data, e.kafka_error().code()));
            }
        }
    }
    if hw_moved {
        broker.notify_appended();
    }
    (answers, total, had_error)
}

/// Groups partition answers by topic, in the plan's order.
fn by_topic(
    plan: &FetchPlan,
    answers: Vec<PartitionAnswer>,
    included: &[bool],
) -> Vec<FetchableTopicResponse> {
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut last: Option<&SessionKey> = None;
    for (((key, _), (data, _)), include) in plan.partitions.iter().zip(answers).zip(included) {
        if !include {
            continue;
        }
        let same_topic = last.is_some_and(|l| l.topic_id == key.topic_id && l.topic == key.topic);
        match topics.last_mut() {
            Some(topic) if same_topic => topic.partitions.push(data),
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(TopicName(StrBytes::from_string(key.topic.clone())))
                    .with_topic_id(key.topic_id)
                    .with_partitions(vec![data]),
            ),
        }
        last = Some(key);
    }
    topics
}

/// What a fetch asks for, as `(partition, position)` pairs and the partitions it forgets.
fn requested_partitions(req: &FetchRequest) -> (Vec<(SessionKey, FetchPosition)>, Vec<SessionKey>) {
    let requested = req
        .topics
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(move |p| {
                let key = SessionKey {
                    topic_id: topic.topic_id,
                    topic: topic.topic.0.to_string(),
                    partition: p.partition,
                };
                let position = FetchPosition {
                    fetch_offset: p.fetch_offset,
                    partition_max_bytes: p.partition_max_bytes,
                    current_leader_epoch: p.current_leader_epoch,
                };
                (key, position)
            })
        })
        .collect();
    let forgotten = req
        .forgotten_topics_data
        .iter()
        .flat_map(|topic| {
            topic.partitions.iter().map(move |p| SessionKey {
                topic_id: topic.topic_id,
                topic: topic.topic.0.to_string(),
                partition: *p,
            })
        })
        .collect();
    (requested, forgotten)
}

/// Fetch: waits up to `max_wait_ms` for `min_bytes`, then answers with whatever is there.
/// From v7 a client may open an incremental fetch session (KIP-227): later fetches name
/// only partitions whose position changed, and answers carry only partitions with news.
pub async fn handle_fetch(ctx: &RequestContext, req: FetchRequest) -> FetchResponse {
    let read_committed = req.isolation_level == 1;
    let deadline =
        Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64).min(MAX_WAIT_CAP);
    let min_bytes = req.min_bytes.max(0) as usize;
    let (requested, forgotten) = requested_partitions(&req);
    let plan = if ctx.version >= 7 {
        ctx.broker.fetch_sessions.plan(
            req.session_id,
            req.session_epoch,
            requested,
            &forgotten,
            std::time::Instant::now(),
        )
    } else {
        Ok(FetchPlan {
            session_id: 0,
            incremental: false,
            partitions: requested,
        })
    };
    let plan = match plan {
        Ok(plan) => plan,
        Err(error) => return FetchResponse::default().with_error_code(error.code()),
    };
    let mut appends = ctx.broker.subscribe_appends();
    loop {
        appends.borrow_and_update();
        let (answers, total, had_error) = read_all(ctx, &req, &plan, read_committed);
        let done = total >= min_bytes.max(1)
            || had_error
            || plan.partitions.is_empty()
            || Instant::now() >= deadline;
        let stopped = if done || min_bytes == 0 {
            false
        } else {
            tokio::select! {
                changed = appends.changed() => changed.is_err(),
                _ = tokio::time::sleep_until(deadline) => false,
            }
        };
        if done || min_bytes == 0 || stopped {
            let outcomes: Vec<PartitionOutcome> = answers.iter().map(|(_, o)| *o).collect();
            let included = ctx.broker.fetch_sessions.finish(&plan, &outcomes);
            return FetchResponse::default()
                .with_session_id(plan.session_id)
                .with_responses(by_topic(&plan, answers, &included));
        }
    }
}

/// The hosted replica of partition `index` of `name`, checked against the client's view of
/// the leader epoch (KIP-320), with its epoch; `leader_only` refuses a follower.
fn replica_at_epoch(
    broker: &Broker,
    name: &Option<String>,
    index: i32,
    client_epoch: i32,
    leader_only: bool,
) -> Result<(Arc<Partition>, i32), ResponseError> {
    let partition = hosted_partition(broker, name, uuid::Uuid::nil(), index)?;
    if leader_only && !partition.is_leader() {
        return Err(ResponseError::NotLeaderOrFollower);
    }
    let epoch = partition.leader_epoch();
    check_leader_epoch(client_epoch, epoch)?;
    Ok((partition, epoch))
}

/// ListOffsets: earliest, latest, max timestamp or first offset at a timestamp.
pub async fn handle_list_offsets(
    ctx: &RequestContext,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let broker = &ctx.broker;
    let read_committed = req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let name = Some(topic.name.0.to_string());
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let base = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let at_epoch = replica_at_epoch(
                        broker,
                        &name,
                        p.partition_index,
                        p.current_leader_epoch,
                        false,
                    );
                    let (partition, epoch) = match at_epoch {
                        Ok(found) => found,
                        Err(e) => return base.with_error_code(e.code()),
                    };
                    match partition.offset_for_timestamp(p.timestamp, read_committed) {
                        // The leader epoch exists from v4 on: earlier versions must leave it
                        // at its default, or the response cannot be encoded.
                        Ok((offset, timestamp)) => base
                            .with_offset(offset)
                            .with_timestamp(timestamp)
                            .with_leader_epoch(if offset >= 0 && ctx.version >= 4 {
                                epoch
                            } else {
                                -1
                            }),
                        Err(e) => base.with_error_code(e.kafka_error().code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// OffsetForLeaderEpoch: where each requested epoch ends in this log (KIP-101/320).
pub async fn handle_offset_for_leader_epoch(
    ctx: &RequestContext,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let broker = &ctx.broker;
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let name = Some(topic.topic.0.to_string());
            let partitions = topic
                .partitions
                .into_iter()
                .map(|p| {
                    let base = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    let at_epoch =
                        replica_at_epoch(broker, &name, p.partition, p.current_leader_epoch, true);
                    let partition = match at_epoch {
                        Ok((partition, _)) => partition,
                        Err(e) => return base.with_error_code(e.code()),
                    };
                    let (epoch, end) = partition.end_offset_for_epoch(p.leader_epoch);
                    base.with_leader_epoch(epoch).with_end_offset(end)
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::handlers::testing::{broker_with_topic, context};

    #[tokio::test]
    async fn list_offsets_answers_every_advertised_version_in_its_own_fields() {
        use kafka_protocol::messages::list_offsets_request::{
            ListOffsetsPartition, ListOffsetsTopic,
        };
        use kafka_protocol::protocol::{Encodable, StrBytes};
        let dir = tempfile::tempdir().unwrap();
        let broker = broker_with_topic(dir.path());
        for version in 1..=10 {
            let ctx = context(&broker, version);
            // The latest offset (-1) of partition 0, and of a partition that does not exist.
            let request =
                ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(
                        [0, 7]
                            .map(|p| {
                                ListOffsetsPartition::default()
                                    .with_partition_index(p)
                                    .with_timestamp(-1)
                            })
                            .to_vec(),
                    )]);
            let response = handle_list_offsets(&ctx, request).await;
            let mut buf = bytes::BytesMut::new();
            response
                .encode(&mut buf, version)
                .unwrap_or_else(|e| panic!("ListOffsets v{version}: {e}"));
            let partitions = &response.topics[0].partitions;
            assert_eq!(partitions[0].error_code, 0, "v{version}");
            assert_eq!(partitions[0].offset, 0, "v{version}");
            let epoch = if version >= 4 { 0 } else { -1 };
            assert_eq!(partitions[0].leader_epoch, epoch, "v{version}");
            assert_eq!(
                partitions[1].error_code,
                ResponseError::UnknownTopicOrPartition.code(),
                "v{version}"
            );
        }
    }

    #[tokio::test]
    async fn consumers_are_sent_to_an_in_sync_replica_in_their_zone() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker_with_topic(dir.path());
        assert_eq!(
            preferred_read_replica(&broker, "t", 0, "zone-b"),
            Some(2),
            "in-sync follower in the client's zone"
        );
        assert_eq!(
            preferred_read_replica(&broker, "t", 0, "zone-a"),
            None,
            "the leader is already local"
        );
        assert_eq!(
            preferred_read_replica(&broker, "t", 0, "zone-c"),
            None,
            "fenced broker"
        );
        assert_eq!(
            preferred_read_replica(&broker, "t", 1, "zone-b"),
            None,
            "out-of-sync follower"
        );
        assert_eq!(
            preferred_read_replica(&broker, "t", 0, ""),
            None,
            "no client.rack"
        );
    }
}
