//! Request handlers, grouped by API family. Each takes the decoded request and returns the
//! response body; framing and dispatch live in [`crate::server`].
//!
//! The rule every response builder keeps: a field that only some versions of a response
//! carry (a top-level error code added in v1, a leader epoch added in v4) is set only when
//! `ctx.version` has it, and an error the version cannot carry at the top goes where that
//! version puts it (each partition, say). A response that breaks the rule cannot be
//! encoded and costs the client its connection; `tests/protocol_conformance.rs` sends every
//! API at every served version through its success and error paths to hold handlers to it.

pub mod admin;
pub mod authorized;
pub mod configs;
pub mod consumer_groups;
pub mod fetch;
pub mod groups;
pub mod metadata;
pub mod produce;
#[cfg(test)]
pub(crate) mod testing;
pub mod transactions;

use std::sync::Arc;
use tributary_metadata::ResponseError;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

use tributary_metadata::ApiError;

use crate::broker::Broker;
use crate::partition::Partition;

/// Per-request context: the broker, the request version and who is asking.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub broker: Arc<Broker>,
    pub version: i16,
    pub client_id: String,
    pub client_host: String,
}

/// Response entries that carry an error code and an error message, so every handler
/// reports an [`ApiError`] the same way.
pub trait ErrorFields: Sized {
    /// Sets the entry's error code and message.
    fn with_error(self, error: ApiError) -> Self;

    /// Sets the error fields when `outcome` failed; leaves the entry as it is otherwise.
    fn with_outcome(self, outcome: Result<(), ApiError>) -> Self {
        match outcome {
            Ok(()) => self,
            Err(e) => self.with_error(e),
        }
    }
}

macro_rules! error_fields {
    ($($entry:ty),* $(,)?) => {
        $(impl ErrorFields for $entry {
            fn with_error(self, error: ApiError) -> Self {
                self.with_error_code(error.wire_code())
                    .with_error_message(Some(sb(error.message)))
            }
        })*
    };
}

error_fields!(
    kafka_protocol::messages::create_topics_response::CreatableTopicResult,
    kafka_protocol::messages::delete_topics_response::DeletableTopicResult,
    kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult,
    kafka_protocol::messages::elect_leaders_response::PartitionResult,
    kafka_protocol::messages::describe_configs_response::DescribeConfigsResult,
    kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse,
    kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse,
    kafka_protocol::messages::create_acls_response::AclCreationResult,
    kafka_protocol::messages::delete_acls_response::DeleteAclsFilterResult,
    kafka_protocol::messages::DescribeAclsResponse,
    kafka_protocol::messages::find_coordinator_response::Coordinator,
    kafka_protocol::messages::FindCoordinatorResponse,
);

/// A protocol string from Rust text.
pub fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// A topic name from Rust text.
pub fn topic_name(s: impl Into<String>) -> TopicName {
    TopicName(sb(s))
}

/// Checks a client's view of the leader epoch against ours (KIP-320): -1 skips the check.
pub fn check_leader_epoch(client_epoch: i32, leader_epoch: i32) -> Result<(), ResponseError> {
    if client_epoch < 0 || client_epoch == leader_epoch {
        Ok(())
    } else if client_epoch < leader_epoch {
        Err(ResponseError::FencedLeaderEpoch)
    } else {
        Err(ResponseError::UnknownLeaderEpoch)
    }
}

/// Resolves a topic reference that may be by name or (newer versions) by id.
pub fn resolve_topic(broker: &Broker, name: &str, id: uuid::Uuid) -> Option<String> {
    if !name.is_empty() {
        Some(name.to_string())
    } else if !id.is_nil() {
        broker.metadata.topic_name(id)
    } else {
        None
    }
}

/// The replica of a partition this broker hosts, or the error a client is answered with:
/// an unknown topic (by name or id), or a partition hosted elsewhere.
pub fn hosted_partition(
    broker: &Broker,
    topic: &Option<String>,
    topic_id: uuid::Uuid,
    index: i32,
) -> Result<std::sync::Arc<Partition>, ResponseError> {
    let Some(name) = topic else {
        return Err(if topic_id.is_nil() {
            ResponseError::UnknownTopicOrPartition
        } else {
            ResponseError::UnknownTopicId
        });
    };
    broker.replicas.get(name, index).ok_or_else(|| {
        if broker.metadata.has_partition(name, index) {
            ResponseError::NotLeaderOrFollower
        } else {
            ResponseError::UnknownTopicOrPartition
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_epoch_checks_follow_kip_320() {
        assert_eq!(check_leader_epoch(-1, 5), Ok(()));
        assert_eq!(check_leader_epoch(5, 5), Ok(()));
        assert_eq!(
            check_leader_epoch(4, 5),
            Err(ResponseError::FencedLeaderEpoch)
        );
        assert_eq!(
            check_leader_epoch(6, 5),
            Err(ResponseError::UnknownLeaderEpoch)
        );
    }
}
