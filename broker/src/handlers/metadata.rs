//! Cluster discovery: Metadata, DescribeCluster, FindCoordinator, ApiVersions.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;

use kafka_protocol::protocol::StrBytes;

use super::{authorized, sb, topic_name, ErrorFields, RequestContext};
use crate::group::offsets::OFFSETS_TOPIC;
use crate::transaction::coordinator::TRANSACTION_TOPIC;
use tributary_metadata::error::code_of;
use tributary_metadata::image::{is_internal_topic, validate_topic_name, TopicMeta};
use tributary_metadata::rpc::TopicSpec;
use tributary_metadata::{ApiError, ResponseError};

/// The brokers as Metadata (`MetadataResponseBroker`) or DescribeCluster
/// (`DescribeClusterBroker`) lists them: the same fields under different types, from
/// `$brokers` (a [`crate::broker::metadata_cache::MetadataCache`] method).
///
/// A broker cut off from the cluster leaves itself out: its view is stale, and a client
/// that does not see it asks another broker next (Kafka's clients send metadata requests
/// to nodes they know of), where it finds the leaders that replaced this one.
macro_rules! broker_list {
    ($broker:expr, $brokers:ident, $entry:ident, $with_id:ident) => {{
        let cut_off = $broker.is_cut_off();
        $broker
            .metadata
            .$brokers()
            .into_iter()
            .filter(|b| !(cut_off && b.id == $broker.config.broker_id))
            .map(|b| {
                $entry::default()
                    .$with_id(BrokerId(b.id))
                    .with_host(sb(b.host))
                    .with_port(b.port)
                    .with_rack(b.rack.map(sb))
            })
            .collect()
    }};
}

/// A topic's metadata. A partition this broker leads while cut off from the controller and
/// its followers is reported without a leader: its leadership has most likely moved, and
/// clients should ask another broker rather than send their writes here.
fn topic_response(
    broker: &crate::Broker,
    live: &std::collections::BTreeSet<i32>,
    topic: &TopicMeta,
) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let leader_live = p.leader >= 0
                && live.contains(&p.leader)
                && !(p.leader == broker.config.broker_id
                    // The atomic check first: the replica lookup only for a lapsed session.
                    && broker.session_lapsed()
                    && broker
                        .replicas
                        .get(&topic.name, index as i32)
                        .is_some_and(|local| broker.is_isolated_leader(&local)));
            MetadataResponsePartition::default()
                .with_error_code(code_of(
                    (!leader_live).then_some(ResponseError::LeaderNotAvailable),
                ))
                .with_partition_index(index as i32)
                .with_leader_id(BrokerId(if leader_live { p.leader } else { -1 }))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(p.isr.iter().copied().map(BrokerId).collect())
                .with_offline_replicas(
                    p.replicas
                        .iter()
                        .copied()
                        .filter(|r| !live.contains(r))
                        .map(BrokerId)
                        .collect(),
                )
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(topic_name(topic.name.clone())))
        .with_topic_id(topic.id)
        .with_is_internal(is_internal_topic(&topic.name))
        .with_partitions(partitions)
}

fn error_topic(
    name: Option<String>,
    id: uuid::Uuid,
    error: ResponseError,
) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(topic_name))
        .with_topic_id(id)
        .with_error_code(error.code())
}

/// Metadata: brokers, controller and the requested (or all) topics, auto-creating if allowed.
pub async fn handle_metadata(ctx: &RequestContext, req: MetadataRequest) -> MetadataResponse {
    let broker = &ctx.broker;
    let mut image = broker.metadata.image();
    let live = image.live_brokers();
    let all = match &req.topics {
        None => true,
        Some(list) => list.is_empty() && ctx.version == 0,
    };
    let mut topics = Vec::new();
    if all {
        topics.extend(
            image
                .topics
                .values()
                .map(|t| topic_response(broker, &live, t)),
        );
    } else {
        let auto_create = req.allow_auto_topic_creation
            && broker.config.setting_bool("auto.create.topics.enable");
        for requested in req.topics.unwrap_or_default() {
            let name = requested.name.as_ref().map(|n| n.0.to_string());
            let name = match name {
                Some(n) => n,
                None => match broker.metadata.topic_name(requested.topic_id) {
                    Some(n) => n,
                    None => {
                        topics.push(error_topic(
                            None,
                            requested.topic_id,
                            ResponseError::UnknownTopicId,
                        ));
                        continue;
                    }
                },
            };
            if let Some(topic) = image.topics.get(&name) {
                topics.push(topic_response(broker, &live, topic));
            } else if validate_topic_name(&name).is_err() {
                topics.push(error_topic(
                    Some(name),
                    uuid::Uuid::nil(),
                    ResponseError::InvalidTopicException,
                ));
            } else if auto_create {
                let spec = TopicSpec {
                    name: name.clone(),
                    partitions: -1,
                    replication_factor: -1,
                    assignments: Vec::new(),
                    configs: Default::default(),
                };
                let result = broker
                    .create_topics(vec![spec], false)
                    .await
                    .into_iter()
                    .next();
                image = broker.metadata.image();
                match (result, image.topics.get(&name)) {
                    (Some(Ok(_)), Some(topic)) => topics.push(topic_response(broker, &live, topic)),
                    (Some(Err(e)), Some(topic)) if e.code == ResponseError::TopicAlreadyExists => {
                        topics.push(topic_response(broker, &live, topic))
                    }
                    (Some(Err(e)), _) if e.code != ResponseError::TopicAlreadyExists => {
                        topics.push(error_topic(Some(name), uuid::Uuid::nil(), e.code))
                    }
                    // Created, but this broker has not seen it yet: the client retries.
                    _ => topics.push(error_topic(
                        Some(name),
                        uuid::Uuid::nil(),
                        ResponseError::LeaderNotAvailable,
                    )),
                }
            } else {
                topics.push(error_topic(
                    Some(name),
                    uuid::Uuid::nil(),
                    ResponseError::UnknownTopicOrPartition,
                ));
            }
        }
    }
    let topic_operations =
        authorized::if_requested(req.include_topic_authorized_operations, authorized::TOPIC);
    let topics = topics
        .into_iter()
        .map(|t| t.with_topic_authorized_operations(topic_operations))
        .collect();
    // Fenced brokers are listed too (Kafka lists only unfenced ones): a Java 3.x client
    // replaces its whole view of the cluster with each response and, before 4.0, never
    // goes back to its bootstrap servers, so a refresh taken while two brokers were
    // briefly fenced would leave it knowing one broker, and stranded when that one fails.
    // A fenced broker never leads a partition, so listing it sends no writes its way.
    let brokers = broker_list!(
        broker,
        registered_brokers,
        MetadataResponseBroker,
        with_node_id
    );
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(sb(broker.cluster_id())))
        .with_controller_id(BrokerId(broker.controller_id()))
        // Only v8-10 have the field, and only they can ask for it.
        .with_cluster_authorized_operations(authorized::if_requested(
            req.include_cluster_authorized_operations,
            authorized::CLUSTER,
        ))
        .with_topics(topics)
}

/// DescribeCluster: the same view of brokers and controller as Metadata.
pub async fn handle_describe_cluster(
    ctx: &RequestContext,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let broker = &ctx.broker;
    // The live brokers, as Kafka answers versions without `include_fenced_brokers`.
    let brokers = broker_list!(broker, live_brokers, DescribeClusterBroker, with_broker_id);
    DescribeClusterResponse::default()
        .with_endpoint_type(1)
        .with_cluster_id(sb(broker.cluster_id()))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_cluster_authorized_operations(authorized::if_requested(
            req.include_cluster_authorized_operations,
            authorized::CLUSTER,
        ))
        .with_brokers(brokers)
}

/// FindCoordinator: a group's coordinator is the leader of its `__consumer_offsets`
/// partition, a transactional id's the leader of its `__transaction_state` partition
/// (each topic created on first use).
pub async fn handle_find_coordinator(
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let keys: Vec<StrBytes> = if ctx.version >= 4 {
        req.coordinator_keys.clone()
    } else {
        vec![req.key.clone()]
    };
    match req.key_type {
        0 => ctx.broker.ensure_offsets_topic().await,
        1 => ctx.broker.ensure_transaction_topic().await,
        _ => {}
    }
    let lookup = |key: &StrBytes| -> Result<(i32, String, i32), ApiError> {
        match req.key_type {
            0 => ctx
                .broker
                .metadata
                .live_leader(OFFSETS_TOPIC, ctx.broker.groups.partition_of(key))
                .map(|b| (b.id, b.host, b.port))
                .ok_or_else(|| {
                    ApiError::new(
                        ResponseError::CoordinatorNotAvailable,
                        "The coordinator is not available.",
                    )
                }),
            1 => ctx
                .broker
                .metadata
                .live_leader(TRANSACTION_TOPIC, ctx.broker.transactions.partition_of(key))
                .map(|b| (b.id, b.host, b.port))
                .ok_or_else(|| {
                    ApiError::new(
                        ResponseError::CoordinatorNotAvailable,
                        "The coordinator is not available.",
                    )
                }),
            other => Err(ApiError::new(
                ResponseError::InvalidRequest,
                format!("Unknown coordinator type {other}"),
            )),
        }
    };
    if ctx.version >= 4 {
        let coordinators = keys
            .iter()
            .map(|key| {
                let base = Coordinator::default().with_key(key.clone());
                match lookup(key) {
                    Ok((id, host, port)) => base
                        .with_node_id(BrokerId(id))
                        .with_host(sb(host))
                        .with_port(port),
                    Err(e) => base.with_node_id(BrokerId(-1)).with_port(-1).with_error(e),
                }
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    match lookup(&req.key) {
        Ok((id, host, port)) => FindCoordinatorResponse::default()
            .with_node_id(BrokerId(id))
            .with_host(sb(host))
            .with_port(port),
        Err(e) => FindCoordinatorResponse::default()
            .with_error(e)
            .with_node_id(BrokerId(-1))
            .with_port(-1),
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::protocol::Encodable;

    use super::*;
    use crate::handlers::testing::{broker_with_topic, context};

    #[tokio::test]
    async fn authorized_operations_are_every_supported_one_when_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker_with_topic(dir.path());
        for version in 0..=13 {
            let ask = version >= 8;
            let request = MetadataRequest::default()
                .with_topics(Some(vec![MetadataRequestTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("t"))))]))
                .with_include_topic_authorized_operations(ask)
                .with_include_cluster_authorized_operations(ask && version <= 10);
            let response = handle_metadata(&context(&broker, version), request).await;
            response
                .encode(&mut BytesMut::new(), version)
                .unwrap_or_else(|e| panic!("Metadata v{version}: {e}"));
            let expected = if ask { authorized::TOPIC } else { i32::MIN };
            assert_eq!(response.topics[0].topic_authorized_operations, expected);
            let expected = if ask && version <= 10 {
                authorized::CLUSTER
            } else {
                i32::MIN
            };
            assert_eq!(response.cluster_authorized_operations, expected);
        }
        for (version, ask) in [(0, false), (0, true), (1, true)] {
            let request =
                DescribeClusterRequest::default().with_include_cluster_authorized_operations(ask);
            let response = handle_describe_cluster(&context(&broker, version), request).await;
            response
                .encode(&mut BytesMut::new(), version)
                .unwrap_or_else(|e| panic!("DescribeCluster v{version}: {e}"));
            let expected = if ask { authorized::CLUSTER } else { i32::MIN };
            assert_eq!(response.cluster_authorized_operations, expected);
        }
    }

    #[tokio::test]
    async fn metadata_lists_fenced_brokers_but_never_as_leaders() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker_with_topic(dir.path());
        // Broker 3 is fenced: listed, so that clients keep knowing it while it is down.
        let response = handle_metadata(
            &context(&broker, 12),
            MetadataRequest::default().with_topics(None),
        )
        .await;
        let ids: Vec<i32> = response.brokers.iter().map(|b| b.node_id.0).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        // DescribeCluster lists the live ones, as Kafka does.
        let response =
            handle_describe_cluster(&context(&broker, 0), DescribeClusterRequest::default()).await;
        let ids: Vec<i32> = response.brokers.iter().map(|b| b.broker_id.0).collect();
        assert_eq!(ids, vec![1, 2]);
        // A partition led by the fenced broker has no leader for clients.
        let mut image = (*broker.metadata.image()).clone();
        image.topics.get_mut("t").unwrap().partitions[1].leader = 3;
        image.version += 1;
        broker.apply_image(image);
        let response = handle_metadata(
            &context(&broker, 12),
            MetadataRequest::default().with_topics(None),
        )
        .await;
        let partition = &response.topics[0].partitions[1];
        assert_eq!(partition.leader_id.0, -1);
        assert_eq!(
            partition.error_code,
            ResponseError::LeaderNotAvailable.code()
        );
    }
}
