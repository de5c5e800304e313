//! The cluster metadata image: registered brokers, topics with their ids, partition
//! assignments, leaders and epochs, and dynamic configs. The controller decides it and
//! persists it before anyone sees it; brokers apply it as it is published.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A partition's address: its topic's name and its index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    /// The address of partition `partition` of `topic`.
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl std::fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// One partition's assignment and leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    /// Bumped on every change (leader or ISR), fencing stale AlterPartition requests.
    #[serde(default)]
    pub partition_epoch: i32,
}

/// A registered broker: where clients reach it and whether it is alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub id: i32,
    pub rack: Option<String>,
    pub host: String,
    pub port: i32,
    /// Assigned at each registration; requests carrying an older epoch come from a zombie.
    pub epoch: i64,
    /// Identifies one run of the broker process.
    pub incarnation: Uuid,
    /// A fenced broker missed its session: it leads nothing and is not advertised.
    pub fenced: bool,
}

/// A topic and its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionMeta>,
    /// Topic-level config overrides (DYNAMIC_TOPIC_CONFIG).
    pub configs: BTreeMap<String, String>,
}

/// Everything a broker needs to route and serve requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// Incremented on every change, so consumers of the image can detect staleness.
    pub version: u64,
    /// The cluster this image describes.
    #[serde(default)]
    pub cluster_id: String,
    pub topics: BTreeMap<String, TopicMeta>,
    /// Registered brokers by id.
    #[serde(default)]
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Next producer id block start (AllocateProducerIds).
    #[serde(default)]
    pub next_producer_id: i64,
    /// Dynamic broker configs by broker id (DYNAMIC_BROKER_CONFIG).
    pub broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
    /// Dynamic cluster-wide broker defaults (DYNAMIC_DEFAULT_BROKER_CONFIG).
    pub cluster_configs: BTreeMap<String, String>,
}

/// Kafka's topic name rules: 1-249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > 249 {
        return Err(format!(
            "Topic name is illegal, it can't be longer than 249 characters, topic name: {name}"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!("Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"));
    }
    Ok(())
}

impl MetadataImage {
    /// Ids of brokers that are registered and not fenced.
    pub fn live_brokers(&self) -> BTreeSet<i32> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.id)
            .collect()
    }
}

/// A KRaft-style cluster id: 16 random bytes in URL-safe base64 without padding.
pub fn new_cluster_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = Uuid::new_v4().into_bytes();
    let mut out = String::with_capacity(22);
    let mut acc = 0u32;
    let mut bits = 0;
    for b in bytes {
        acc = (acc << 8) | b as u32;
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(ALPHABET[((acc >> bits) & 63) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

/// Names of internal topics, reported with `is_internal`.
pub fn is_internal_topic(name: &str) -> bool {
    name == "__consumer_offsets" || name == "__transaction_state"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_ids_look_like_kraft_ids() {
        let id = new_cluster_id();
        assert_eq!(id.len(), 22);
        assert_ne!(id, new_cluster_id());
    }

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("testtopic").is_ok());
        assert!(validate_topic_name("a.b_c-1").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("bad/name").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }
}
