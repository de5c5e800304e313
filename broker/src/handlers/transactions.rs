//! Transactions: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and TxnOffsetCommit from
//! producers, WriteTxnMarkers from other brokers' coordinators (and from
//! `kafka-transactions.sh abort`), and the administration of `kafka-transactions.sh`:
//! DescribeTransactions, ListTransactions and DescribeProducers. InitProducerId with a
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
use crate::transaction::state::TxnState;

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

/// DescribeTransactions (`kafka-transactions.sh describe`): the coordinator's view of
/// each transactional id it coordinates.
pub async fn handle_describe_transactions(
    ctx: &RequestContext,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let coordinator = &ctx.broker.transactions;
    let states = req
        .transactional_ids
        .iter()
        .map(|id| {
            let base = describe_transactions_response::TransactionState::default()
                .with_transactional_id(id.clone())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
                .with_transaction_start_time_ms(-1);
            if let Err(e) = coordinator.owner_of(&id.0) {
                return base.with_error_code(e.code());
            }
            let Some(txn) = coordinator.read(|txns| txns.get(&id.0).cloned()) else {
                return base.with_error_code(ResponseError::TransactionalIdNotFound.code());
            };
            let mut topics: Vec<describe_transactions_response::TopicData> = Vec::new();
            for (topic, partition) in &txn.partitions {
                match topics.last_mut() {
                    Some(last) if last.topic.0.as_str() == topic => {
                        last.partitions.push(*partition)
                    }
                    _ => topics.push(
                        describe_transactions_response::TopicData::default()
                            .with_topic(super::topic_name(topic.clone()))
                            .with_partitions(vec![*partition]),
                    ),
                }
            }
            base.with_transaction_state(super::sb(txn.state.name()))
                .with_transaction_timeout_ms(txn.timeout_ms)
                .with_transaction_start_time_ms(txn.start_ms)
                .with_producer_id(ProducerId(txn.producer_id))
                .with_producer_epoch(txn.producer_epoch)
                .with_topics(topics)
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

/// ListTransactions (`kafka-transactions.sh list`): the transactional ids this broker
/// coordinates, by state (v0), producer id (v0), age (v1) and id pattern (v2).
pub async fn handle_list_transactions(
    ctx: &RequestContext,
    req: ListTransactionsRequest,
) -> ListTransactionsResponse {
    // Kafka also knows Dead and PrepareEpochFence, which are never stored.
    let known = |name: &str| {
        TxnState::ALL.iter().any(|s| s.name() == name)
            || matches!(name, "Dead" | "PrepareEpochFence")
    };
    let unknown: Vec<_> = req
        .state_filters
        .iter()
        .filter(|s| !known(s.as_str()))
        .cloned()
        .collect();
    let pattern = match req
        .transactional_id_pattern
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        Some(p) => match regex::Regex::new(p) {
            Ok(regex) => Some(regex),
            Err(_) => {
                return ListTransactionsResponse::default()
                    .with_error_code(ResponseError::InvalidRegularExpression.code())
            }
        },
        None => None,
    };
    let txns = match ctx.broker.transactions.list() {
        Ok(txns) => txns,
        Err(e) => return ListTransactionsResponse::default().with_error_code(e.code()),
    };
    let now = crate::util::now_ms();
    let states = txns
        .into_iter()
        .filter(|t| {
            req.state_filters.is_empty()
                || req
                    .state_filters
                    .iter()
                    .any(|s| s.as_str() == t.state.name())
        })
        .filter(|t| {
            req.producer_id_filters.is_empty()
                || req.producer_id_filters.contains(&ProducerId(t.producer_id))
        })
        // Only transactions under way have an age (Kafka's durationFilter).
        .filter(|t| {
            req.duration_filter < 0 || (t.start_ms >= 0 && now - t.start_ms >= req.duration_filter)
        })
        .filter(|t| {
            pattern
                .as_ref()
                .is_none_or(|re| re.is_match(&t.transactional_id))
        })
        .map(|t| {
            list_transactions_response::TransactionState::default()
                .with_transactional_id(TransactionalId(super::sb(t.transactional_id)))
                .with_producer_id(ProducerId(t.producer_id))
                .with_transaction_state(super::sb(t.state.name()))
        })
        .collect();
    ListTransactionsResponse::default()
        .with_unknown_state_filters(unknown)
        .with_transaction_states(states)
}

/// DescribeProducers (`kafka-transactions.sh describe-producers`, `abort`, `find-hanging`):
/// the producers of each partition led here, with their open transactions.
pub async fn handle_describe_producers(
    ctx: &RequestContext,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .iter()
        .map(|topic| {
            let name = Some(topic.name.0.to_string());
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|&index| {
                    let base = describe_producers_response::PartitionResponse::default()
                        .with_partition_index(index);
                    let producers =
                        super::hosted_partition(&ctx.broker, &name, uuid::Uuid::nil(), index)
                            .and_then(|p| p.active_producers().map_err(|e| e.kafka_error()));
                    match producers {
                        Ok(producers) => base.with_active_producers(
                            producers
                                .into_iter()
                                .map(|(p, open_since)| {
                                    describe_producers_response::ProducerState::default()
                                        .with_producer_id(ProducerId(p.producer_id))
                                        .with_producer_epoch(i32::from(p.epoch))
                                        .with_last_sequence(p.last_sequence)
                                        .with_last_timestamp(p.last_timestamp)
                                        // Markers' coordinator epochs are not kept.
                                        .with_coordinator_epoch(-1)
                                        .with_current_txn_start_offset(open_since.unwrap_or(-1))
                                })
                                .collect(),
                        ),
                        Err(e) => base.with_error_code(e.code()),
                    }
                })
                .collect();
            describe_producers_response::TopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}
