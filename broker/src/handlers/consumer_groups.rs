//! KIP-848 consumer group APIs: ConsumerGroupHeartbeat (membership and assignment in one
//! call) and ConsumerGroupDescribe.

use std::collections::HashMap;

use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member as DescribedMember,
    TopicPartitions as DescribedTopicPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{
    Assignment, TopicPartitions as AssignedTopicPartitions,
};
use kafka_protocol::messages::*;
use tributary_metadata::ResponseError;
use uuid::Uuid;

use super::{authorized, sb, topic_name, RequestContext};
use crate::group::consumer::{Heartbeat, TopicPartitions};

/// The longest a heartbeat waits for what it changed to be stored.
const STORE_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// ConsumerGroupHeartbeat: joins, leaves, acknowledges revocations and answers the
/// member's epoch and assignment.
pub async fn handle_consumer_group_heartbeat(
    ctx: &RequestContext,
    req: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    let interval = ctx.broker.groups.consumer_heartbeat_interval_ms();
    let refuse = |code: ResponseError, message: &str| {
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(sb(message.to_string())))
            .with_heartbeat_interval_ms(interval)
    };
    if req.group_id.0.is_empty() {
        return refuse(ResponseError::InvalidRequest, "GroupId can't be empty.");
    }
    // v0 let the coordinator name new members; from v1 (Kafka 4) the client does.
    let member_id = if req.member_id.is_empty() && req.member_epoch == 0 && ctx.version == 0 {
        Uuid::new_v4().to_string()
    } else {
        req.member_id.to_string()
    };
    if member_id.is_empty() {
        return refuse(ResponseError::InvalidRequest, "MemberId can't be empty.");
    }
    if req.member_epoch < -2 {
        return refuse(ResponseError::InvalidRequest, "MemberEpoch is invalid.");
    }
    let heartbeat = Heartbeat {
        member_id,
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host.clone(),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        topic_names: req
            .subscribed_topic_names
            .as_ref()
            .map(|names| names.iter().map(|n| n.0.to_string()).collect()),
        topic_regex: req.subscribed_topic_regex.as_ref().map(|r| r.to_string()),
        server_assignor: req.server_assignor.as_ref().map(|a| a.to_string()),
        owned: req.topic_partitions.as_ref().map(|owned| {
            owned
                .iter()
                .map(|t| (t.topic_id, t.partitions.iter().copied().collect()))
                .collect()
        }),
    };
    let image = ctx.broker.metadata.image();
    let groups = &ctx.broker.groups;
    let (reply, stored) = groups.consumer_heartbeat(&req.group_id.0, heartbeat, image.as_ref());
    // What the reply tells the member is in the log before the member hears it.
    // (A writer stuck behind a partition that lost its ISR gives up after its own
    // timeout; the bound here only keeps a request from waiting forever.)
    if let Some(ticket) = stored {
        let _ = tokio::time::timeout(STORE_WAIT, groups.wait_stored(ticket)).await;
    }
    match reply {
        Ok(reply) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(sb(reply.member_id)))
            .with_member_epoch(reply.member_epoch)
            .with_heartbeat_interval_ms(interval)
            .with_assignment(reply.assignment.map(|assigned| {
                Assignment::default().with_topic_partitions(
                    assigned
                        .into_iter()
                        .map(|(topic, parts)| {
                            AssignedTopicPartitions::default()
                                .with_topic_id(topic)
                                .with_partitions(parts.into_iter().collect())
                        })
                        .collect(),
                )
            })),
        Err(e) => refuse(e.code, &e.message),
    }
}

/// ConsumerGroupDescribe: members with their current and target assignments.
pub async fn handle_consumer_group_describe(
    ctx: &RequestContext,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let operations = authorized::if_requested(req.include_authorized_operations, authorized::GROUP);
    let names: HashMap<Uuid, String> = ctx.broker.metadata.with_image(|img| {
        img.topics
            .values()
            .map(|t| (t.id, t.name.clone()))
            .collect()
    });
    let described = |parts: TopicPartitions| {
        DescribedAssignment::default().with_topic_partitions(
            parts
                .into_iter()
                // A deleted topic's partitions are left out, as Kafka does.
                .filter(|(topic, _)| names.contains_key(topic))
                .map(|(topic, ps)| {
                    DescribedTopicPartitions::default()
                        .with_topic_id(topic)
                        .with_topic_name(topic_name(names[&topic].clone()))
                        .with_partitions(ps.into_iter().collect())
                })
                .collect(),
        )
    };
    let groups = req
        .group_ids
        .iter()
        .map(|id| {
            let base = DescribedGroup::default()
                .with_group_id(id.clone())
                .with_authorized_operations(operations);
            let group = match ctx.broker.groups.describe_consumer_group(&id.0) {
                Ok(group) => group,
                Err(e) => {
                    return base
                        .with_error_code(e.code.code())
                        .with_error_message((!e.message.is_empty()).then(|| sb(e.message)))
                        .with_group_state(sb("Dead"))
                }
            };
            let members = group
                .members()
                .map(|m| {
                    DescribedMember::default()
                        .with_member_id(sb(m.id.clone()))
                        .with_instance_id(m.instance_id.clone().map(sb))
                        .with_rack_id(m.rack_id.clone().map(sb))
                        .with_member_epoch(m.assignment.epoch)
                        .with_client_id(sb(m.client_id.clone()))
                        .with_client_host(sb(m.client_host.clone()))
                        .with_subscribed_topic_names(
                            m.topic_names.iter().cloned().map(topic_name).collect(),
                        )
                        .with_subscribed_topic_regex(m.topic_regex.clone().map(sb))
                        .with_assignment(described(m.assignment.assigned.clone()))
                        .with_target_assignment(described(group.target_of(&m.id)))
                        .with_member_type(if ctx.version >= 1 { 1 } else { -1 })
                })
                .collect();
            base.with_group_state(sb(group.state()))
                .with_group_epoch(group.epoch())
                .with_assignment_epoch(group.assignment_epoch())
                .with_assignor_name(sb(group.assignor().name()))
                .with_members(members)
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
