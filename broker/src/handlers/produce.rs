//! Writes: Produce and InitProducerId.

use std::time::Duration;
use tributary_metadata::ResponseError;

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::*;
use tracing::debug;

use super::{hosted_partition, resolve_topic, sb, RequestContext};
use crate::broker::storage;
use crate::partition::{PartitionError, PendingFlush};

fn partition_error(
    index: i32,
    error: ResponseError,
    message: Option<String>,
) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(sb))
}

/// The answer for a refused append: its error, and from v8 the records that caused it.
fn append_refused(index: i32, e: &PartitionError) -> PartitionProduceResponse {
    let message = e.to_string();
    let records = e
        .record_errors()
        .iter()
        .map(|&batch_index| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(batch_index)
                .with_batch_index_error_message(Some(sb(message.clone())))
        })
        .collect();
    partition_error(index, e.kafka_error(), Some(message)).with_record_errors(records)
}

/// Produce: validates and appends each partition's batches; with acks=all, answers once
/// the ISR has the data (the high watermark passed it). `None` for acks=0, which Kafka
/// never answers.
pub async fn handle_produce(ctx: &RequestContext, req: ProduceRequest) -> Option<ProduceResponse> {
    let broker = &ctx.broker;
    let acks = req.acks;
    // One deadline for the whole request, as Kafka's produce purgatory has.
    let deadline = tokio::time::Instant::now()
        + Duration::from_millis(req.timeout_ms.clamp(0, 300_000) as u64);
    let mut appended_any = false;
    // First append everything, then wait for replication of all of it at once.
    let mut pending = Vec::with_capacity(req.topic_data.len());
    for topic in req.topic_data {
        let name = resolve_topic(broker, &topic.name.0, topic.topic_id);
        let mut partitions = Vec::with_capacity(topic.partition_data.len());
        for data in topic.partition_data {
            let index = data.index;
            let outcome = (|| {
                if !matches!(acks, -1..=1) {
                    return Err(Box::new(partition_error(
                        index,
                        ResponseError::InvalidRequiredAcks,
                        None,
                    )));
                }
                let partition = hosted_partition(broker, &name, topic.topic_id, index)
                    .map_err(|e| Box::new(partition_error(index, e, None)))?;
                if broker.is_isolated_leader(&partition) {
                    return Err(Box::new(partition_error(
                        index,
                        ResponseError::NotLeaderOrFollower,
                        Some("leader cut off from the controller and its followers".into()),
                    )));
                }
                let Some(records) = data.records else {
                    return Err(Box::new(partition_error(
                        index,
                        ResponseError::CorruptMessage,
                        Some("no records".into()),
                    )));
                };
                match partition.append(records, acks) {
                    Ok(mut done) => {
                        appended_any = true;
                        // A due fsync starts now, so every partition's runs at once.
                        let flush = done.flush.take().map(PendingFlush::start);
                        Ok((partition, done, flush))
                    }
                    Err(e) => {
                        if let PartitionError::Storage(cause) = &e {
                            broker.storage.report_write_failure(cause);
                        }
                        debug!(topic = ?name, partition = index, error = %e, "produce rejected");
                        Err(Box::new(append_refused(index, &e)))
                    }
                }
            })();
            partitions.push((index, outcome));
        }
        pending.push((topic.name, topic.topic_id, partitions));
    }
    if appended_any {
        broker.notify_appended();
    }
    let mut responses = Vec::with_capacity(pending.len());
    for (name, topic_id, partitions) in pending {
        let mut results = Vec::with_capacity(partitions.len());
        for (index, outcome) in partitions {
            let response = match outcome {
                Err(refused) => *refused,
                Ok((partition, done, flush)) => {
                    let flushed = match flush {
                        Some(flush) => match flush.wait().await {
                            Err(PartitionError::Storage(e)) => storage::sync_failed(&e),
                            other => other,
                        },
                        None => Ok(()),
                    };
                    let committed = match flushed {
                        Ok(()) if acks == -1 => {
                            partition
                                .wait_for_commit(
                                    &done,
                                    deadline.saturating_duration_since(tokio::time::Instant::now()),
                                    &|| ctx.broker.session_lapsed(),
                                )
                                .await
                        }
                        other => other,
                    };
                    match committed {
                        Ok(()) => PartitionProduceResponse::default()
                            .with_index(index)
                            .with_base_offset(done.base_offset)
                            .with_log_append_time_ms(done.log_append_time)
                            .with_log_start_offset(done.log_start_offset),
                        Err(e) => partition_error(index, e.kafka_error(), Some(e.to_string())),
                    }
                }
            };
            results.push(response);
        }
        responses.push(
            TopicProduceResponse::default()
                .with_name(name)
                .with_topic_id(topic_id)
                .with_partition_responses(results),
        );
    }
    (acks != 0).then(|| ProduceResponse::default().with_responses(responses))
}

/// InitProducerId for idempotent producers; transactional ids are refused (no transactions).
pub async fn handle_init_producer_id(
    ctx: &RequestContext,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    if let Some(transactional_id) = req.transactional_id.as_ref().filter(|t| !t.0.is_empty()) {
        // KIP-360 (v3+): a producer may name its current id and epoch to bump it.
        let expected = (req.producer_id.0 >= 0).then_some((req.producer_id.0, req.producer_epoch));
        return match ctx
            .broker
            .init_transactional_producer(&transactional_id.0, req.transaction_timeout_ms, expected)
            .await
        {
            Ok((id, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(id))
                .with_producer_epoch(epoch),
            Err(error) => InitProducerIdResponse::default()
                .with_error_code(error.code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        };
    }
    // KIP-360: an idempotent producer may ask to bump its epoch after a sequence error.
    if req.producer_id.0 >= 0 && req.producer_epoch >= 0 && req.producer_epoch < i16::MAX - 1 {
        return InitProducerIdResponse::default()
            .with_producer_id(req.producer_id)
            .with_producer_epoch(req.producer_epoch + 1);
    }
    match ctx.broker.allocate_producer_id().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(e) => {
            tracing::warn!(error = %e, "allocating producer id failed");
            // A controller that cannot be reached or refuses is retriable for the client.
            let error = if e.code == ResponseError::UnknownServerError {
                ResponseError::UnknownServerError
            } else {
                ResponseError::CoordinatorNotAvailable
            };
            InitProducerIdResponse::default()
                .with_error_code(error.code())
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        }
    }
}
