//! Topics and their partitions: CreateTopics, DeleteTopics and CreatePartitions. New
//! replicas are placed by [`crate::placement`]; explicit assignments are checked against
//! the registered brokers.

use std::collections::BTreeSet;

use tributary_metadata::image::validate_topic_name;
use tributary_metadata::rpc::TopicSpec;
use tributary_metadata::topic_config::validate_topic_config;
use tributary_metadata::{ApiError, MetadataImage, PartitionMeta, ResponseError, TopicMeta};
use uuid::Uuid;

use super::{Change, ControllerState};
use crate::election;
use crate::placement::{self, Candidate};

impl ControllerState {
    /// CreateTopics: one outcome per spec, in order.
    pub fn create_topics(
        &self,
        specs: &[TopicSpec],
        validate_only: bool,
    ) -> Change<Vec<Result<TopicMeta, ApiError>>> {
        let mut next = self.next_image();
        let mut changed = false;
        let results = specs
            .iter()
            .map(|spec| {
                let topic = self.new_topic(&next, spec)?;
                if !validate_only {
                    next.topics.insert(topic.name.clone(), topic.clone());
                    changed = true;
                }
                Ok(topic)
            })
            .collect();
        Change::maybe(results, changed.then_some(next))
    }

    /// DeleteTopics: one outcome per name, in order.
    pub fn delete_topics(&self, names: &[String]) -> Change<Vec<Result<TopicMeta, ApiError>>> {
        let mut next = self.next_image();
        let mut changed = false;
        let results = names
            .iter()
            .map(|name| {
                let topic = next.topics.remove(name).ok_or_else(|| {
                    ApiError::new(
                        ResponseError::UnknownTopicOrPartition,
                        "This server does not host this topic-partition.",
                    )
                })?;
                changed = true;
                Ok(topic)
            })
            .collect();
        Change::maybe(results, changed.then_some(next))
    }

    /// CreatePartitions: grows a topic to `count` partitions, placing only the new ones.
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Change<Result<(), ApiError>> {
        Change::validated(self.grown_topic(name, count, assignments), validate_only)
    }

    fn grown_topic(
        &self,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
    ) -> Result<MetadataImage, ApiError> {
        let mut next = self.next_image();
        let topic = next.topics.get(name).ok_or_else(|| {
            ApiError::new(
                ResponseError::UnknownTopicOrPartition,
                format!("The topic '{name}' does not exist."),
            )
        })?;
        let current = topic.partitions.len() as i32;
        if count < current {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!("Topic currently has {current} partitions, which is higher than the requested {count}."),
            ));
        }
        if count == current {
            return Err(ApiError::new(
                ResponseError::InvalidPartitions,
                format!("Topic already has {current} partitions."),
            ));
        }
        let rf = topic.partitions.first().map_or(1, |p| p.replicas.len());
        let added = (count - current) as usize;
        let replicas = match assignments {
            Some(given) => {
                if given.len() != added {
                    return Err(ApiError::new(
                        ResponseError::InvalidReplicaAssignment,
                        format!(
                            "Increasing the number of partitions by {added} but {} assignments provided.",
                            given.len()
                        ),
                    ));
                }
                validate_assignments(&given, &registered_brokers(&next), rf)?;
                given
            }
            None => place(&next, added, rf)?,
        };
        let live = next.live_brokers();
        if let Some(entry) = next.topics.get_mut(name) {
            entry
                .partitions
                .extend(replicas.into_iter().map(|r| new_partition(r, &live)));
        }
        Ok(next)
    }

    fn new_topic(&self, image: &MetadataImage, spec: &TopicSpec) -> Result<TopicMeta, ApiError> {
        validate_topic_name(&spec.name)
            .map_err(|m| ApiError::new(ResponseError::InvalidTopicException, m))?;
        if image.topics.contains_key(&spec.name) {
            return Err(ApiError::new(
                ResponseError::TopicAlreadyExists,
                format!("Topic '{}' already exists.", spec.name),
            ));
        }
        for (key, value) in &spec.configs {
            validate_topic_config(key, value)
                .map_err(|e| ApiError::new(ResponseError::InvalidConfig, e.to_string()))?;
        }
        let replicas: Vec<Vec<i32>> = if !spec.assignments.is_empty() {
            if spec.partitions != -1 || spec.replication_factor != -1 {
                return Err(ApiError::new(
                    ResponseError::InvalidRequest,
                    "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
                ));
            }
            validate_assignments(
                &spec.assignments,
                &registered_brokers(image),
                spec.assignments[0].len(),
            )?;
            spec.assignments.clone()
        } else {
            let partitions = if spec.partitions == -1 {
                self.config.num_partitions
            } else {
                spec.partitions
            };
            let rf = if spec.replication_factor == -1 {
                self.config.default_replication_factor
            } else {
                spec.replication_factor
            };
            if partitions <= 0 {
                return Err(ApiError::new(
                    ResponseError::InvalidPartitions,
                    "Number of partitions must be larger than 0.",
                ));
            }
            if rf <= 0 {
                return Err(ApiError::new(
                    ResponseError::InvalidReplicationFactor,
                    "Replication factor must be larger than 0.",
                ));
            }
            place(image, partitions as usize, rf as usize)?
        };
        let live = image.live_brokers();
        Ok(TopicMeta {
            name: spec.name.clone(),
            id: Uuid::new_v4(),
            partitions: replicas
                .into_iter()
                .map(|replicas| new_partition(replicas, &live))
                .collect(),
            configs: spec.configs.clone(),
        })
    }
}

/// Places `count` new partitions of `rf` replicas over the live brokers, continuing the
/// rotation after the partitions that already exist.
fn place(image: &MetadataImage, count: usize, rf: usize) -> Result<Vec<Vec<i32>>, ApiError> {
    let candidates: Vec<Candidate> = image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| Candidate {
            id: b.id,
            rack: b.rack.clone(),
        })
        .collect();
    let existing = image.topics.values().map(|t| t.partitions.len()).sum();
    placement::assign(&candidates, count, rf, existing)
        .map_err(|e| ApiError::new(ResponseError::InvalidReplicationFactor, e.to_string()))
}

fn registered_brokers(image: &MetadataImage) -> BTreeSet<i32> {
    image.brokers.keys().copied().collect()
}

/// A newly placed partition: its live replicas form the ISR and the first of them leads
/// (with no live replica it starts offline, its ISR the whole assignment).
fn new_partition(replicas: Vec<i32>, live: &BTreeSet<i32>) -> PartitionMeta {
    let isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|r| live.contains(r))
        .collect();
    let leader = isr.first().copied().unwrap_or(election::NO_LEADER);
    PartitionMeta {
        isr: if isr.is_empty() {
            replicas.clone()
        } else {
            isr
        },
        replicas,
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
    }
}

/// Explicit assignments: non-empty lists of `rf` distinct registered brokers.
fn validate_assignments(
    assignments: &[Vec<i32>],
    registered: &BTreeSet<i32>,
    rf: usize,
) -> Result<(), ApiError> {
    for replicas in assignments {
        let unique: BTreeSet<i32> = replicas.iter().copied().collect();
        if replicas.is_empty() || replicas.len() != rf || unique.len() != replicas.len() {
            return Err(ApiError::new(
                ResponseError::InvalidReplicaAssignment,
                "Replica assignment lists must be non-empty, of equal length and without duplicates",
            ));
        }
        if let Some(b) = replicas.iter().find(|b| !registered.contains(b)) {
            return Err(ApiError::new(
                ResponseError::InvalidReplicaAssignment,
                format!("Unknown broker {b} in replica assignment"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testing::{commit, spec, state_with_brokers, state_with_topic};

    #[test]
    fn topics_are_placed_across_zones() {
        let mut state = state_with_brokers(3);
        let created = state.create_topics(&[spec("t", 3, 3)], false);
        let results = commit(&mut state, created);
        let topic = results[0].as_ref().unwrap();
        assert!(topic
            .partitions
            .iter()
            .all(|p| p.replicas.len() == 3 && p.isr.len() == 3));
        let leaders: BTreeSet<i32> = topic.partitions.iter().map(|p| p.leader).collect();
        assert_eq!(leaders.len(), 3);
        let too_wide = state.create_topics(&[spec("u", 1, 4)], false);
        assert!(too_wide.image.is_none());
        assert_eq!(
            too_wide.reply[0].as_ref().unwrap_err().code,
            ResponseError::InvalidReplicationFactor
        );
        let duplicate = state.create_topics(&[spec("t", 1, 1)], false);
        assert_eq!(
            duplicate.reply[0].as_ref().unwrap_err().code,
            ResponseError::TopicAlreadyExists
        );
    }

    #[test]
    fn validate_only_changes_nothing() {
        let state = state_with_brokers(1);
        let checked = state.create_topics(&[spec("t", 1, 1)], true);
        assert!(checked.reply[0].is_ok());
        assert!(checked.image.is_none());
    }

    #[test]
    fn partitions_grow_and_never_shrink() {
        let mut state = state_with_topic(2, "t", 1, 2);
        let grown = state.create_partitions("t", 3, None, false);
        commit(&mut state, grown).unwrap();
        assert_eq!(state.image().topics["t"].partitions.len(), 3);
        let shrink = state.create_partitions("t", 2, None, false);
        assert_eq!(
            commit(&mut state, shrink).unwrap_err().code,
            ResponseError::InvalidPartitions
        );
        let unknown_broker = state.create_partitions("t", 4, Some(vec![vec![1, 7]]), false);
        assert_eq!(
            commit(&mut state, unknown_broker).unwrap_err().code,
            ResponseError::InvalidReplicaAssignment
        );
        let deleted = state.delete_topics(&["t".into(), "missing".into()]);
        let results = commit(&mut state, deleted);
        assert!(results[0].is_ok());
        assert_eq!(
            results[1].as_ref().unwrap_err().code,
            ResponseError::UnknownTopicOrPartition
        );
        assert!(state.image().topics.is_empty());
    }
}
