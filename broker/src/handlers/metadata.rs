//! Cluster discovery: Metadata, DescribeCluster, FindCoordinator, ApiVersions.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;

use super::{codes, sb, topic_name, RequestContext};
use crate::metadata::{is_internal_topic, validate_topic_name, TopicMeta};

fn topic_response(ctx: &RequestContext, topic: &TopicMeta) -> MetadataResponseTopic {
    let live: Vec<i32> = ctx.broker.brokers().iter().map(|b| b.0).collect();
    let partitions = topic
        .partitions
        .iter()
        .enumerate()
        .map(|(index, p)| {
            let leader_live = live.contains(&p.leader);
            MetadataResponsePartition::default()
                .with_error_code(if leader_live {
                    codes::NONE
                } else {
                    codes::LEADER_NOT_AVAILABLE
                })
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

fn error_topic(name: Option<String>, id: uuid::Uuid, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(name.map(topic_name))
        .with_topic_id(id)
        .with_error_code(code)
}

/// Metadata: brokers, controller and the requested (or all) topics, auto-creating if allowed.
pub async fn handle_metadata(ctx: &RequestContext, req: MetadataRequest) -> MetadataResponse {
    let broker = &ctx.broker;
    let image = broker.image();
    let all = match &req.topics {
        None => true,
        Some(list) => list.is_empty() && ctx.version == 0,
    };
    let mut topics = Vec::new();
    if all {
        topics.extend(image.topics.values().map(|t| topic_response(ctx, t)));
    } else {
        let auto_create = req.allow_auto_topic_creation
            && broker.config.setting_bool("auto.create.topics.enable");
        for requested in req.topics.unwrap_or_default() {
            let name = requested.name.as_ref().map(|n| n.0.to_string());
            let name = match name {
                Some(n) => n,
                None => match broker.topic_name(requested.topic_id) {
                    Some(n) => n,
                    None => {
                        topics.push(error_topic(
                            None,
                            requested.topic_id,
                            codes::UNKNOWN_TOPIC_ID,
                        ));
                        continue;
                    }
                },
            };
            if let Some(topic) = image.topics.get(&name) {
                topics.push(topic_response(ctx, topic));
            } else if validate_topic_name(&name).is_err() {
                topics.push(error_topic(
                    Some(name),
                    uuid::Uuid::nil(),
                    codes::INVALID_TOPIC_EXCEPTION,
                ));
            } else if auto_create {
                match broker.auto_create_topic(&name) {
                    Ok(topic) => topics.push(topic_response(ctx, &topic)),
                    Err(e) if e.code == 36 => match broker.image().topics.get(&name) {
                        Some(topic) => topics.push(topic_response(ctx, topic)),
                        None => topics.push(error_topic(
                            Some(name),
                            uuid::Uuid::nil(),
                            codes::LEADER_NOT_AVAILABLE,
                        )),
                    },
                    Err(e) => topics.push(error_topic(Some(name), uuid::Uuid::nil(), e.code)),
                }
            } else {
                topics.push(error_topic(
                    Some(name),
                    uuid::Uuid::nil(),
                    codes::UNKNOWN_TOPIC_OR_PARTITION,
                ));
            }
        }
    }
    let brokers = broker
        .brokers()
        .into_iter()
        .map(|(id, host, port, rack)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(id))
                .with_host(sb(host))
                .with_port(port)
                .with_rack(rack.map(sb))
        })
        .collect();
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(sb(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_topics(topics)
}

/// DescribeCluster: the same view of brokers and controller as Metadata.
pub async fn handle_describe_cluster(
    ctx: &RequestContext,
    _req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let broker = &ctx.broker;
    let brokers = broker
        .brokers()
        .into_iter()
        .map(|(id, host, port, rack)| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(id))
                .with_host(sb(host))
                .with_port(port)
                .with_rack(rack.map(sb))
        })
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(1)
        .with_cluster_id(sb(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.controller_id()))
        .with_brokers(brokers)
}

/// FindCoordinator: this broker coordinates every group. Transactions are not supported.
pub async fn handle_find_coordinator(
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
) -> FindCoordinatorResponse {
    let (id, host, port, _) = ctx
        .broker
        .brokers()
        .into_iter()
        .find(|b| b.0 == ctx.broker.config.broker_id)
        .expect("self is live");
    let answer = |key_type: i8| -> (i16, Option<String>) {
        match key_type {
            0 => (codes::NONE, None),
            1 => (
                codes::INVALID_REQUEST,
                Some("Transactions are not supported by this broker".into()),
            ),
            _ => (
                codes::INVALID_REQUEST,
                Some(format!("Unknown coordinator type {key_type}")),
            ),
        }
    };
    let (error, message) = answer(req.key_type);
    if ctx.version >= 4 {
        let coordinators = req
            .coordinator_keys
            .iter()
            .map(|key| {
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(if error == 0 { id } else { -1 }))
                    .with_host(sb(if error == 0 {
                        host.clone()
                    } else {
                        String::new()
                    }))
                    .with_port(if error == 0 { port } else { -1 })
                    .with_error_code(error)
                    .with_error_message(message.clone().map(sb))
            })
            .collect();
        return FindCoordinatorResponse::default().with_coordinators(coordinators);
    }
    if error != 0 {
        return FindCoordinatorResponse::default()
            .with_error_code(error)
            .with_error_message(message.map(sb))
            .with_node_id(BrokerId(-1))
            .with_port(-1);
    }
    FindCoordinatorResponse::default()
        .with_node_id(BrokerId(id))
        .with_host(sb(host))
        .with_port(port)
}
