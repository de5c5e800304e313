//! Request handlers, grouped by API family. Each takes the decoded request and returns the
//! response body; framing and dispatch live in [`crate::server`].

pub mod admin;
pub mod configs;
pub mod fetch;
pub mod groups;
pub mod metadata;
pub mod produce;

use std::sync::Arc;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

/// Per-request context: the broker, the request version and who is asking.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub broker: Arc<Broker>,
    pub version: i16,
    pub client_id: String,
    pub client_host: String,
}

/// Kafka error codes shared by several handler families.
pub mod codes {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const NOT_ENOUGH_REPLICAS: i16 = 19;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const INVALID_REQUEST: i16 = 42;
    pub const SECURITY_DISABLED: i16 = 54;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 76;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
}

/// A protocol string from Rust text.
pub fn sb(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// A topic name from Rust text.
pub fn topic_name(s: impl Into<String>) -> TopicName {
    TopicName(sb(s))
}

/// Checks a client's view of the leader epoch against ours (KIP-320): -1 skips the check.
pub fn check_leader_epoch(client_epoch: i32, leader_epoch: i32) -> i16 {
    if client_epoch < 0 || client_epoch == leader_epoch {
        codes::NONE
    } else if client_epoch < leader_epoch {
        codes::FENCED_LEADER_EPOCH
    } else {
        codes::UNKNOWN_LEADER_EPOCH
    }
}

/// Resolves a topic reference that may be by name or (newer versions) by id.
pub fn resolve_topic(broker: &Broker, name: &str, id: uuid::Uuid) -> Option<String> {
    if !name.is_empty() {
        Some(name.to_string())
    } else if !id.is_nil() {
        broker.topic_name(id)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_epoch_checks_follow_kip_320() {
        assert_eq!(check_leader_epoch(-1, 5), codes::NONE);
        assert_eq!(check_leader_epoch(5, 5), codes::NONE);
        assert_eq!(check_leader_epoch(4, 5), codes::FENCED_LEADER_EPOCH);
        assert_eq!(check_leader_epoch(6, 5), codes::UNKNOWN_LEADER_EPOCH);
    }
}
