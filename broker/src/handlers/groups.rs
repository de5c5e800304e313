//! Consumer group APIs: membership (Join/Sync/Heartbeat/Leave), offsets (Commit/Fetch/
//! Delete) and administration (List/Describe/Delete).

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tributary_metadata::error::{code_of, error_code};
use tributary_metadata::ResponseError;

use super::{authorized, sb, topic_name, RequestContext};
use crate::group::offsets::{OffsetKey, OffsetValue};
use crate::group::state::JoinRequest;

const MAX_METADATA_BYTES: usize = 4096;

/// Committed offsets of one topic: `(partition, offset if any)`.
/// A topic's partitions with their committed offset (if any) and error code.
type TopicOffsets = (String, Vec<(i32, Option<OffsetValue>, i16)>);

/// Per-topic commit outcome: name, id and each partition's outcome.
type TopicCommitResult = (
    kafka_protocol::messages::TopicName,
    uuid::Uuid,
    Vec<(i32, Result<(), ResponseError>)>,
);

/// JoinGroup: parks until the rebalance's join phase completes.
pub async fn handle_join_group(ctx: &RequestContext, req: JoinGroupRequest) -> JoinGroupResponse {
    let group_id = req.group_id.0.to_string();
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        client_id: ctx.client_id.clone(),
        client_host: ctx.client_host.clone(),
        session_timeout_ms: req.session_timeout_ms,
        // v0 has no rebalance timeout: it equals the session timeout.
        rebalance_timeout_ms: if ctx.version == 0 {
            req.session_timeout_ms
        } else {
            req.rebalance_timeout_ms
        },
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: ctx.version >= 4,
        supports_skip_assignment: ctx.version >= 9,
    };
    let reply = ctx.broker.groups.join(&group_id, join).await;
    JoinGroupResponse::default()
        .with_error_code(code_of(reply.error))
        .with_generation_id(reply.generation)
        .with_protocol_type(reply.protocol_type.map(sb))
        .with_protocol_name(reply.protocol_name.map(sb))
        .with_leader(sb(reply.leader))
        .with_skip_assignment(reply.skip_assignment)
        .with_member_id(sb(reply.member_id))
        .with_members(
            reply
                .members
                .into_iter()
                .map(|(id, instance, metadata)| {
                    JoinGroupResponseMember::default()
                        .with_member_id(sb(id))
                        .with_group_instance_id(instance.map(sb))
                        .with_metadata(metadata)
                })
                .collect(),
        )
}

/// SyncGroup: the leader's assignments are handed to every member.
pub async fn handle_sync_group(ctx: &RequestContext, req: SyncGroupRequest) -> SyncGroupResponse {
    let assignments = req
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let reply = ctx
        .broker
        .groups
        .sync(
            &req.group_id.0,
            &req.member_id,
            req.group_instance_id.as_deref(),
            req.generation_id,
            assignments,
        )
        .await;
    let consistent = |given: &Option<kafka_protocol::protocol::StrBytes>,
                      actual: &Option<String>| {
        given
            .as_ref()
            .is_none_or(|g| actual.as_ref().is_none_or(|a| g.as_str() == a))
    };
    if reply.error.is_none()
        && (!consistent(&req.protocol_type, &reply.protocol_type)
            || !consistent(&req.protocol_name, &reply.protocol_name))
    {
        return SyncGroupResponse::default()
            .with_error_code(ResponseError::InconsistentGroupProtocol.code());
    }
    SyncGroupResponse::default()
        .with_error_code(code_of(reply.error))
        .with_protocol_type(reply.protocol_type.map(sb))
        .with_protocol_name(reply.protocol_name.map(sb))
        .with_assignment(reply.assignment)
}

/// Heartbeat.
pub async fn handle_heartbeat(ctx: &RequestContext, req: HeartbeatRequest) -> HeartbeatResponse {
    let outcome = ctx.broker.groups.heartbeat(
        &req.group_id.0,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id,
    );
    HeartbeatResponse::default().with_error_code(error_code(&outcome))
}

/// LeaveGroup: one member (v0-2) or a batch (v3+).
pub async fn handle_leave_group(
    ctx: &RequestContext,
    req: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let members: Vec<(String, Option<String>)> = if ctx.version >= 3 {
        req.members
            .iter()
            .map(|m| {
                let instance = m.group_instance_id.as_ref().map(|i| i.to_string());
                (m.member_id.to_string(), instance)
            })
            .collect()
    } else {
        vec![(req.member_id.to_string(), None)]
    };
    let results = match ctx.broker.groups.leave(&req.group_id.0, &members) {
        Ok(results) => results,
        Err(e) => return LeaveGroupResponse::default().with_error_code(e.code()),
    };
    if ctx.version < 3 {
        let first = results.first().copied().unwrap_or(Ok(()));
        return LeaveGroupResponse::default().with_error_code(error_code(&first));
    }
    let responses = req
        .members
        .iter()
        .zip(results)
        .map(|(m, outcome)| {
            MemberResponse::default()
                .with_member_id(m.member_id.clone())
                .with_group_instance_id(m.group_instance_id.clone())
                .with_error_code(error_code(&outcome))
        })
        .collect();
    LeaveGroupResponse::default().with_members(responses)
}

/// OffsetCommit.
pub async fn handle_offset_commit(
    ctx: &RequestContext,
    req: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let broker = &ctx.broker;
    let now = crate::util::now_ms();
    let mut accepted = Vec::new();
    let mut results: Vec<TopicCommitResult> = Vec::new();
    for topic in &req.topics {
        let name = super::resolve_topic(broker, &topic.name.0, topic.topic_id).unwrap_or_default();
        let known = broker
            .metadata
            .with_image(|img| img.topics.get(&name).map(|t| t.partitions.len() as i32));
        let mut outcomes = Vec::new();
        for p in &topic.partitions {
            let outcome = if !known.is_some_and(|n| p.partition_index >= 0 && p.partition_index < n)
            {
                Err(ResponseError::UnknownTopicOrPartition)
            } else if p
                .committed_metadata
                .as_ref()
                .is_some_and(|m| m.len() > MAX_METADATA_BYTES)
            {
                Err(ResponseError::OffsetMetadataTooLarge)
            } else {
                accepted.push((
                    name.clone(),
                    p.partition_index,
                    OffsetValue {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                        commit_timestamp: now,
                    },
                ));
                Ok(())
            };
            outcomes.push((p.partition_index, outcome));
        }
        results.push((topic.name.clone(), topic.topic_id, outcomes));
    }
    let group_error = match broker.groups.validate_commit(
        &req.group_id.0,
        &req.member_id,
        req.group_instance_id.as_deref(),
        req.generation_id_or_member_epoch,
        ctx.version,
    ) {
        Ok(partition) => {
            let entries = accepted
                .into_iter()
                .map(|(topic, partition, value)| {
                    (
                        OffsetKey {
                            group: req.group_id.0.to_string(),
                            topic,
                            partition,
                        },
                        Some(value),
                    )
                })
                .collect();
            broker.offsets.write(partition, entries).await.err()
        }
        Err(e) => Some(e),
    };
    let topics = results
        .into_iter()
        .map(|(name, id, parts)| {
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_topic_id(id)
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(index, outcome)| {
                            let outcome = outcome.and(group_error.map_or(Ok(()), Err));
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(index)
                                .with_error_code(error_code(&outcome))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// `(topic, partitions)` requested, or every committed partition when `None`; the error
/// code when this broker does not coordinate the group.
/// What OffsetFetch answers for one partition: its committed offset, leader epoch and
/// metadata, or -1, -1 and "" when nothing is committed (both response layouts).
fn committed_fields(value: Option<OffsetValue>) -> (i64, i32, StrBytes) {
    match value {
        Some(v) => (v.offset, v.leader_epoch, sb(v.metadata.unwrap_or_default())),
        None => (-1, -1, sb("")),
    }
}

/// One topic's committed offsets in either OffsetFetch layout: v1-7's
/// `OffsetFetchResponseTopic` and v8+'s `OffsetFetchResponseTopics` carry the same fields
/// under different types.
macro_rules! committed_topic {
    ($topic:ident, $partition:ident, $name:expr, $parts:expr) => {
        $topic::default()
            .with_name(topic_name($name))
            .with_partitions(
                $parts
                    .into_iter()
                    .map(|(p, v, code)| {
                        let (offset, epoch, metadata) = committed_fields(v);
                        $partition::default()
                            .with_partition_index(p)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(Some(metadata))
                            .with_error_code(code)
                    })
                    .collect(),
            )
    };
}

/// The committed offsets of `topics` (all when `None`). With `require_stable` (KIP-447),
/// a partition whose offsets a transaction holds undecided answers
/// UNSTABLE_OFFSET_COMMIT, so that a consumer taking it over waits for the outcome.
fn committed(
    ctx: &RequestContext,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Result<Vec<TopicOffsets>, ResponseError> {
    let all = ctx.broker.groups.fetch_offsets(group)?;
    let unstable = if require_stable {
        ctx.broker.groups.pending_txn_offsets(group)?
    } else {
        Default::default()
    };
    let answer = |t: &str, p: i32, value: Option<OffsetValue>| {
        if unstable.contains(&(t.to_string(), p)) {
            (p, None, ResponseError::UnstableOffsetCommit.code())
        } else {
            (p, value, 0)
        }
    };
    Ok(match topics {
        Some(list) => list
            .into_iter()
            .map(|(t, parts)| {
                let values = parts
                    .into_iter()
                    .map(|p| answer(&t, p, all.get(&(t.clone(), p)).cloned()))
                    .collect();
                (t, values)
            })
            .collect(),
        None => {
            let mut out: Vec<TopicOffsets> = Vec::new();
            for ((t, p), v) in all {
                let entry = answer(&t, p, Some(v));
                match out.last_mut() {
                    Some((last, values)) if *last == t => values.push(entry),
                    _ => out.push((t, vec![entry])),
                }
            }
            out
        }
    })
}

/// OffsetFetch: one group (v1-7) or several (v8+).
pub async fn handle_offset_fetch(
    ctx: &RequestContext,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if ctx.version >= 8 {
        let groups = req
            .groups
            .iter()
            .map(|g| {
                let wanted = g.topics.as_ref().map(|ts| {
                    ts.iter()
                        .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                        .collect()
                });
                let base = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
                if let Err(e) = ctx.broker.groups.validate_offset_fetch(
                    &g.group_id.0,
                    g.member_id.as_deref(),
                    g.member_epoch,
                ) {
                    return base.with_error_code(e.code());
                }
                let offsets = match committed(ctx, &g.group_id.0, wanted, req.require_stable) {
                    Ok(offsets) => offsets,
                    Err(e) => return base.with_error_code(e.code()),
                };
                let topics = offsets
                    .into_iter()
                    .map(|(t, parts)| {
                        let id = ctx.broker.metadata.topic_id(&t);
                        committed_topic!(
                            OffsetFetchResponseTopics,
                            OffsetFetchResponsePartitions,
                            t,
                            parts
                        )
                        .with_topic_id(id)
                    })
                    .collect();
                base.with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    let offsets = match committed(ctx, &req.group_id.0, wanted.clone(), req.require_stable) {
        Ok(offsets) => offsets,
        // v0 and v1 have no group-level error: Kafka puts it on every partition asked for.
        Err(e) if ctx.version < 2 => {
            let topics = wanted
                .unwrap_or_default()
                .into_iter()
                .map(|(t, parts)| {
                    OffsetFetchResponseTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(
                            parts
                                .into_iter()
                                .map(|p| {
                                    OffsetFetchResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(-1)
                                        .with_metadata(Some(StrBytes::default()))
                                        .with_error_code(e.code())
                                })
                                .collect(),
                        )
                })
                .collect();
            return OffsetFetchResponse::default().with_topics(topics);
        }
        Err(e) => return OffsetFetchResponse::default().with_error_code(e.code()),
    };
    let topics = offsets
        .into_iter()
        .map(|(t, parts)| {
            committed_topic!(
                OffsetFetchResponseTopic,
                OffsetFetchResponsePartition,
                t,
                parts
            )
        })
        .collect();
    OffsetFetchResponse::default().with_topics(topics)
}

/// ListGroups, with the v4 state filter and v5 type filter.
pub async fn handle_list_groups(
    ctx: &RequestContext,
    req: ListGroupsRequest,
) -> ListGroupsResponse {
    let groups = ctx
        .broker
        .groups
        .list()
        .into_iter()
        .filter(|g| {
            req.states_filter.is_empty()
                || req
                    .states_filter
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(g.state))
        })
        .filter(|g| {
            req.types_filter.is_empty()
                || req
                    .types_filter
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(g.group_type))
        })
        .map(|g| {
            ListedGroup::default()
                .with_group_id(GroupId(sb(g.id)))
                .with_protocol_type(sb(g.protocol_type))
                .with_group_state(sb(g.state))
                .with_group_type(sb(g.group_type))
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

/// DescribeGroups: unknown groups are reported as Dead, as Kafka does before v6.
pub async fn handle_describe_groups(
    ctx: &RequestContext,
    req: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let operations = authorized::if_requested(req.include_authorized_operations, authorized::GROUP);
    let groups = req
        .groups
        .iter()
        .map(|id| match ctx.broker.groups.describe(&id.0) {
            Ok(Some(g)) => DescribedGroup::default()
                .with_group_id(id.clone())
                .with_group_state(sb(g.state))
                .with_protocol_type(sb(g.protocol_type))
                .with_protocol_data(sb(g.protocol))
                .with_members(
                    g.members
                        .into_iter()
                        .map(|m| {
                            DescribedGroupMember::default()
                                .with_member_id(sb(m.member_id))
                                .with_group_instance_id(m.instance_id.map(sb))
                                .with_client_id(sb(m.client_id))
                                .with_client_host(sb(m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment)
                        })
                        .collect(),
                ),
            Ok(None) => DescribedGroup::default()
                .with_group_id(id.clone())
                .with_group_state(sb("Dead")),
            Err(e) => DescribedGroup::default()
                .with_group_id(id.clone())
                .with_error_code(e.code()),
        })
        .map(|g| g.with_authorized_operations(operations))
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// DeleteGroups: removes empty groups and their committed offsets.
pub async fn handle_delete_groups(
    ctx: &RequestContext,
    req: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for g in &req.groups_names {
        let outcome = match ctx.broker.groups.delete_group(&g.0) {
            Ok((partition, entries)) => ctx.broker.offsets.write(partition, entries).await,
            Err(e) => Err(e),
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(g.clone())
                .with_error_code(error_code(&outcome)),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

/// OffsetDelete: removes committed offsets of a group that no longer consumes them.
pub async fn handle_offset_delete(
    ctx: &RequestContext,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let partitions: Vec<(String, i32)> = req
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |p| (t.name.0.to_string(), p.partition_index))
        })
        .collect();
    let refused = match ctx
        .broker
        .groups
        .offsets_to_delete(&req.group_id.0, partitions)
    {
        Ok((partition, entries, refused)) => ctx
            .broker
            .offsets
            .write(partition, entries)
            .await
            .map(|()| refused),
        Err(e) => Err(e),
    };
    let refused = match refused {
        Ok(refused) => refused,
        Err(e) => return OffsetDeleteResponse::default().with_error_code(e.code()),
    };
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            // Offsets of topics the group's members consume stay (KIP-496).
            let error = refused
                .contains(t.name.0.as_str())
                .then_some(ResponseError::GroupSubscribedToTopic);
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code_of(error))
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use kafka_protocol::protocol::Encodable;

    use super::*;
    use crate::handlers::testing::{broker_with_topic, context};

    #[tokio::test]
    async fn a_failed_offset_fetch_is_reported_in_the_fields_of_the_version_asked() {
        let dir = tempfile::tempdir().unwrap();
        // No offsets topic: this broker coordinates no group.
        let broker = broker_with_topic(dir.path());
        for version in 1..=7 {
            let request = OffsetFetchRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partition_indexes(vec![0, 1])]));
            let response = handle_offset_fetch(&context(&broker, version), request).await;
            let mut buf = BytesMut::new();
            response
                .encode(&mut buf, version)
                .unwrap_or_else(|e| panic!("OffsetFetch v{version}: {e}"));
            if version < 2 {
                let partitions = &response.topics[0].partitions;
                assert_eq!(partitions.len(), 2);
                assert!(partitions.iter().all(|p| p.error_code != 0), "v{version}");
            } else {
                assert_ne!(response.error_code, 0, "v{version}: group level");
            }
        }
    }
}
