//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions, DeleteRecords,
//! DescribeLogDirs, ListPartitionReassignments, and the ACL APIs (no authorizer yet).

use std::collections::{BTreeMap, HashSet};
use tributary_metadata::{ApiError, ResponseError};

use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::*;

use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};

use super::{sb, topic_name, ErrorFields, RequestContext};
use crate::broker::metadata_cache::config_layers;
use tributary_metadata::image::is_internal_topic;
use tributary_metadata::rpc::TopicSpec;
use tributary_metadata::topic_config::TOPIC_CONFIGS;

/// CreateTopics, forwarded to the controller.
pub async fn handle_create_topics(
    ctx: &RequestContext,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let broker = &ctx.broker;
    let mut seen = HashSet::new();
    let duplicates: HashSet<String> = req
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.0.to_string()))
        .map(|t| t.name.0.to_string())
        .collect();
    // Requests that fail locally keep their slot; the rest go to the controller in one call.
    let mut results: Vec<Option<CreatableTopicResult>> = Vec::with_capacity(req.topics.len());
    let mut specs = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let result = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        if duplicates.contains(&name) {
            results.push(Some(
                result
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(sb(format!(
                        "Create topics request from client contains a duplicate topic: {name}"
                    )))),
            ));
            continue;
        }
        let mut configs = BTreeMap::new();
        let mut null_config = None;
        for c in &t.configs {
            match &c.value {
                Some(v) => {
                    configs.insert(c.name.to_string(), v.to_string());
                }
                None => null_config = Some(c.name.to_string()),
            }
        }
        if let Some(key) = null_config {
            results.push(Some(
                result
                    .with_error_code(ResponseError::InvalidConfig.code())
                    .with_error_message(Some(sb(format!(
                        "Null value not supported for topic config: {key}"
                    )))),
            ));
            continue;
        }
        results.push(None);
        specs.push(TopicSpec {
            name,
            partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments: t
                .assignments
                .iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect(),
            configs,
        });
    }
    let mut outcomes = broker
        .create_topics(specs, req.validate_only)
        .await
        .into_iter();
    let image = broker.metadata.image();
    let topics = req
        .topics
        .iter()
        .zip(results)
        .map(|(t, local)| {
            if let Some(result) = local {
                return result;
            }
            let result = CreatableTopicResult::default()
                .with_name(t.name.clone())
                .with_num_partitions(-1)
                .with_replication_factor(-1);
            match outcomes.next() {
                Some(Ok(topic)) => {
                    let layers = config_layers(&broker.config, &image, Some(&topic));
                    let configs = TOPIC_CONFIGS
                        .iter()
                        .map(|def| {
                            let (value, source) = layers.resolve(def);
                            CreatableTopicConfigs::default()
                                .with_name(sb(def.name))
                                .with_value(Some(sb(value)))
                                .with_config_source(source as i8)
                        })
                        .collect();
                    result
                        .with_topic_id(topic.id)
                        .with_num_partitions(topic.partitions.len() as i32)
                        .with_replication_factor(
                            topic
                                .partitions
                                .first()
                                .map_or(0, |p| p.replicas.len() as i16),
                        )
                        .with_configs(Some(configs))
                }
                Some(Err(e)) => result.with_error(e),
                None => result.with_error_code(ResponseError::UnknownServerError.code()),
            }
        })
        .collect();
    CreateTopicsResponse::default().with_topics(topics)
}

/// DeleteTopics, by name (all versions) or id (v6+), forwarded to the controller.
pub async fn handle_delete_topics(
    ctx: &RequestContext,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let broker = &ctx.broker;
    let mut targets: Vec<(Option<String>, uuid::Uuid)> = req
        .topic_names
        .iter()
        .map(|n| (Some(n.0.to_string()), uuid::Uuid::nil()))
        .collect();
    targets.extend(
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id)),
    );
    let mut responses = Vec::with_capacity(targets.len());
    let mut names = Vec::new();
    for (name, id) in &targets {
        let resolved = name.clone().or_else(|| broker.metadata.topic_name(*id));
        match resolved {
            Some(n) if is_internal_topic(&n) => responses.push(Some(
                DeletableTopicResult::default()
                    .with_name(Some(topic_name(n)))
                    .with_topic_id(*id)
                    .with_error_code(ResponseError::InvalidRequest.code())
                    .with_error_message(Some(sb("Internal topics cannot be deleted"))),
            )),
            Some(n) => {
                names.push(n);
                responses.push(None);
            }
            None => responses.push(Some(
                DeletableTopicResult::default()
                    .with_topic_id(*id)
                    .with_error_code(ResponseError::UnknownTopicId.code()),
            )),
        }
    }
    let mut outcomes = broker
        .delete_topics(names.clone())
        .await
        .into_iter()
        .zip(names);
    let responses = responses
        .into_iter()
        .map(|local| {
            local.unwrap_or_else(|| match outcomes.next() {
                Some((Ok(topic), name)) => DeletableTopicResult::default()
                    .with_name(Some(topic_name(name)))
                    .with_topic_id(topic.id),
                Some((Err(e), name)) => DeletableTopicResult::default()
                    .with_name(Some(topic_name(name)))
                    .with_error(e),
                None => DeletableTopicResult::default()
                    .with_error_code(ResponseError::UnknownServerError.code()),
            })
        })
        .collect();
    DeleteTopicsResponse::default().with_responses(responses)
}

/// CreatePartitions, forwarded to the controller.
pub async fn handle_create_partitions(
    ctx: &RequestContext,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let assignments = t.assignments.map(|a| {
            a.into_iter()
                .map(|x| x.broker_ids.into_iter().map(|b| b.0).collect())
                .collect()
        });
        let result = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        results.push(
            match ctx
                .broker
                .create_partitions(&t.name.0, t.count, assignments, req.validate_only)
                .await
            {
                Ok(()) => result,
                Err(e) => result.with_error(e),
            },
        );
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// ElectLeaders (`kafka-leader-election.sh`): preferred (0) or unclean (1), forwarded.
pub async fn handle_elect_leaders(
    ctx: &RequestContext,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let preferred = ctx.version == 0 || req.election_type == 0;
    let partitions = req.topic_partitions.as_ref().map(|tps| {
        tps.iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.topic.0.to_string(), *p))
            })
            .collect::<Vec<_>>()
    });
    match ctx
        .broker
        .elect_leaders(preferred, partitions.clone())
        .await
    {
        Ok(results) => {
            let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
            for ((topic, partition), outcome) in results {
                let entry = PartitionResult::default().with_partition_id(partition);
                let entry = entry.with_outcome(outcome);
                by_topic.entry(topic).or_default().push(entry);
            }
            election_results(by_topic)
        }
        // v0 has no top-level error: Kafka reports it on every partition asked for.
        Err(e) if ctx.version == 0 => {
            let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
            for (topic, partition) in partitions.unwrap_or_default() {
                by_topic.entry(topic).or_default().push(
                    PartitionResult::default()
                        .with_partition_id(partition)
                        .with_error(e.clone()),
                );
            }
            election_results(by_topic)
        }
        Err(e) => ElectLeadersResponse::default().with_error_code(e.wire_code()),
    }
}

/// An ElectLeaders response from per-partition results, grouped by topic.
fn election_results(by_topic: BTreeMap<String, Vec<PartitionResult>>) -> ElectLeadersResponse {
    ElectLeadersResponse::default().with_replica_election_results(
        by_topic
            .into_iter()
            .map(|(t, parts)| {
                ReplicaElectionResult::default()
                    .with_topic(topic_name(t))
                    .with_partition_result(parts)
            })
            .collect(),
    )
}

/// DeleteRecords: advances log start offsets.
pub async fn handle_delete_records(
    ctx: &RequestContext,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let topics =
        req.topics
            .into_iter()
            .map(|t| {
                let partitions =
                    t.partitions
                        .into_iter()
                        .map(|p| {
                            let result = DeleteRecordsPartitionResult::default()
                                .with_partition_index(p.partition_index)
                                .with_low_watermark(-1);
                            match ctx.broker.replicas.get(&t.name.0, p.partition_index) {
                                None => result
                                    .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
                                Some(partition) if !partition.is_leader() => result
                                    .with_error_code(ResponseError::NotLeaderOrFollower.code()),
                                Some(partition) => match partition.delete_records(p.offset) {
                                    Ok(low) => result.with_low_watermark(low),
                                    Err(e) => result.with_error_code(e.kafka_error().code()),
                                },
                            }
                        })
                        .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

/// DescribeLogDirs: one log directory holding every hosted partition.
pub async fn handle_describe_log_dirs(
    ctx: &RequestContext,
    req: DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    let broker = &ctx.broker;
    let mut by_topic: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
    let wanted = |topic: &str, index: i32| match &req.topics {
        None => true,
        Some(list) => list
            .iter()
            .any(|t| t.topic.0.as_str() == topic && t.partitions.contains(&index)),
    };
    for partition in broker.replicas.all() {
        if !wanted(&partition.topic, partition.index) {
            continue;
        }
        by_topic.entry(partition.topic.clone()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(partition.index)
                .with_partition_size(partition.size_bytes() as i64),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            DescribeLogDirsTopic::default()
                .with_name(topic_name(name))
                .with_partitions(partitions)
        })
        .collect();
    let dir = broker
        .config
        .data_dir
        .canonicalize()
        .unwrap_or_else(|_| broker.config.data_dir.clone());
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(sb(dir.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(-1)
        .with_usable_bytes(-1)])
}

/// ListPartitionReassignments: none are ever in progress yet.
pub async fn handle_list_partition_reassignments(
    _ctx: &RequestContext,
    _req: ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    ListPartitionReassignmentsResponse::default()
}

/// What every ACL request is answered with: Kafka's answer without an authorizer.
fn no_authorizer() -> ApiError {
    ApiError::new(
        ResponseError::SecurityDisabled,
        "No Authorizer is configured.",
    )
}

/// DescribeAcls: SECURITY_DISABLED, as Kafka answers without an authorizer.
pub async fn handle_describe_acls(
    _ctx: &RequestContext,
    _req: DescribeAclsRequest,
) -> DescribeAclsResponse {
    DescribeAclsResponse::default().with_error(no_authorizer())
}

/// CreateAcls: SECURITY_DISABLED for every creation.
pub async fn handle_create_acls(
    _ctx: &RequestContext,
    req: CreateAclsRequest,
) -> CreateAclsResponse {
    let results = req
        .creations
        .iter()
        .map(|_| AclCreationResult::default().with_error(no_authorizer()))
        .collect();
    CreateAclsResponse::default().with_results(results)
}

/// DeleteAcls: SECURITY_DISABLED for every filter.
pub async fn handle_delete_acls(
    _ctx: &RequestContext,
    req: DeleteAclsRequest,
) -> DeleteAclsResponse {
    let results = req
        .filters
        .iter()
        .map(|_| DeleteAclsFilterResult::default().with_error(no_authorizer()))
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    use super::*;
    use crate::handlers::testing::{broker_with_topic, context};

    #[tokio::test]
    async fn a_failed_election_is_reported_in_the_fields_of_the_version_asked() {
        let dir = tempfile::tempdir().unwrap();
        // Its controller does not answer, so every election fails.
        let broker = broker_with_topic(dir.path());
        for version in 0..=2 {
            let request = ElectLeadersRequest::default().with_topic_partitions(Some(vec![
                TopicPartitions::default()
                    .with_topic(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![0, 1]),
            ]));
            let response = handle_elect_leaders(&context(&broker, version), request).await;
            let mut buf = BytesMut::new();
            response
                .encode(&mut buf, version)
                .unwrap_or_else(|e| panic!("ElectLeaders v{version}: {e}"));
            if version == 0 {
                let results = &response.replica_election_results[0].partition_result;
                assert_eq!(results.len(), 2);
                assert!(
                    results.iter().all(|r| r.error_code != 0),
                    "v0: per partition"
                );
            } else {
                assert_ne!(response.error_code, 0, "v{version}: top level");
            }
        }
    }
}
