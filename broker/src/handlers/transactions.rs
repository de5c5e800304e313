//! Transactions: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and TxnOffsetCommit from
//! producers, WriteTxnMarkers from other brokers' coordinators. InitProducerId with a
//! transactional id is answered by [`super::produce::handle_init_producer_id`] through
//! the same coordinator.

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::*;
use tributary_metadata::ResponseError;

use super::RequestContext;
use crate::group::offsets::{OffsetKey, OffsetValue, OFFSETS_TOPIC};
use crate::log::batch::ControlType;

fn code(result: Result<(), ResponseError>) -> i16 {
    result.err().map_or(0, |e| e.code())
}

/// AddPartitionsToTxn (v0-3, from producers): every partition gets the same answer.
pub async fn handle_add_partitions_to_txn(
    ctx: &RequestContext,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let partitions: Vec<(String, i32)> = req
        .v3_and_below_topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| (t.name.0.to_string(), p)))
        .collect();
    let unknown = partitions
        .iter()
        .any(|(topic, index)| !ctx.broker.metadata.has_partition(topic, *index));
    let result = if unknown {
        Err(ResponseError::UnknownTopicOrPartition)
    } else {
        ctx.broker
            .add_partitions_to_txn(
                &req.v3_and_below_transactional_id.0,
                (
                    req.v3_and_below_producer_id.0,
                    req.v3_and_below_producer_epoch,
                ),
                &partitions,
            )
            .await
    };
    let error = code(result);
    let results = req
        .v3_and_below_topics
        .into_iter()
        .map(|topic| {
            let per_partition = topic
                .partitions
                .iter()
                .map(|&index| {
                    let missing =
                        unknown && !ctx.broker.metadata.has_partition(&topic.name.0, index);
                    // Kafka answers the known partitions of a request with an unknown one
                    // OPERATION_NOT_ATTEMPTED.
                    let code = match (unknown, missing) {
                        (true, false) => ResponseError::OperationNotAttempted.code(),
                        _ => error,
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(index)
                        .with_partition_error_code(code)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name)
                .with_results_by_partition(per_partition)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

/// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction.
pub async fn handle_add_offsets_to_txn(
    ctx: &RequestContext,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    ctx.broker.ensure_offsets_topic().await;
    let partition = ctx.broker.groups.partition_of(&req.group_id.0);
    let result = ctx
        .broker
        .add_partitions_to_txn(
            &req.transactional_id.0,
            (req.producer_id.0, req.producer_epoch),
            &[(OFFSETS_TOPIC.to_string(), partition)],
        )
        .await;
    AddOffsetsToTxnResponse::default().with_error_code(code(result))
}

/// EndTxn: commit or abort.
pub async fn handle_end_txn(ctx: &RequestContext, req: EndTxnRequest) -> EndTxnResponse {
    let result = ctx
        .broker
        .end_txn(
            &req.transactional_id.0,
            (req.producer_id.0, req.producer_epoch),
            req.committed,
        )
        .await;
    EndTxnResponse::default().with_error_code(code(result))
}

/// TxnOffsetCommit: a transaction's consumer offsets, which count once it commits.
pub async fn handle_txn_offset_commit(
    ctx: &RequestContext,
    req: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let broker = &ctx.broker;
    let now = crate::util::now_ms();
    let validated = broker.groups.validate_txn_commit(
        &req.group_id.0,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id,
    );
    let mut entries = Vec::new();
    let mut unknown = Vec::new();
    for topic in &req.topics {
        for p in &topic.partitions {
            if !broker
                .metadata
                .has_partition(&topic.name.0, p.partition_index)
            {
                unknown.push((topic.name.0.to_string(), p.partition_index));
                continue;
            }
            entries.push((
                OffsetKey {
                    group: req.group_id.0.to_string(),
                    topic: topic.name.0.to_string(),
                    partition: p.partition_index,
                },
                Some(OffsetValue {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    commit_timestamp: now,
                }),
            ));
        }
    }
    let error = match validated {
        Ok(partition) => {
            broker
                .offsets
                .write_txn(partition, (req.producer_id.0, req.producer_epoch), entries)
                .await
        }
        Err(e) => Err(e),
    };
    let topics = req
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let missing = unknown
                        .iter()
                        .any(|(t, i)| *t == *topic.name.0 && *i == p.partition_index);
                    let code = if missing {
                        ResponseError::UnknownTopicOrPartition.code()
                    } else {
                        code(error)
                    };
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// WriteTxnMarkers (from a transaction coordinator): each marker is appended on the
/// partitions this broker leads and answered once committed.
pub async fn handle_write_txn_markers(
    ctx: &RequestContext,
    req: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let mut results = Vec::with_capacity(req.markers.len());
    for marker in req.markers {
        let control = if marker.transaction_result {
            ControlType::Commit
        } else {
            ControlType::Abort
        };
        let mut topics = Vec::with_capacity(marker.topics.len());
        for topic in marker.topics {
            let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
            for index in topic.partition_indexes {
                let written = ctx
                    .broker
                    .write_txn_marker(
                        &topic.name.0,
                        index,
                        marker.producer_id.0,
                        marker.producer_epoch,
                        control,
                        marker.coordinator_epoch,
                    )
                    .await;
                partitions.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(code(written)),
                );
            }
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(topic.name)
                    .with_partitions(partitions),
            );
        }
        results.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(results)
}
