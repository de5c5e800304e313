//! A topic's effective settings as a partition enforces them, resolved once per config
//! change from the layers of [`ConfigLayers`].

use kafka_protocol::records::Compression;
use tributary_metadata::topic_config::ConfigLayers;

use crate::log::LogConfig;

/// Effective per-topic settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicPolicy {
    pub log: LogConfig,
    pub max_message_bytes: usize,
    pub log_append_time: bool,
    pub min_insync_replicas: i32,
    /// The codec batches are stored in (`compression.type`); `None` for `producer`:
    /// batches are stored as the producer compressed them.
    pub compression: Option<Compression>,
}

/// The codec a `compression.type` value names; `None` for `producer` (and anything else,
/// which validation has refused already).
fn compression_codec(value: &str) -> Option<Compression> {
    match value.trim() {
        "uncompressed" => Some(Compression::None),
        "gzip" => Some(Compression::Gzip),
        "snappy" => Some(Compression::Snappy),
        "lz4" => Some(Compression::Lz4),
        "zstd" => Some(Compression::Zstd),
        _ => None,
    }
}

/// Whether a `cleanup.policy` list names `policy`.
fn has_policy(list: &str, policy: &str) -> bool {
    list.split(',').any(|p| p.trim() == policy)
}

impl TopicPolicy {
    /// Resolves a topic's settings from its config layers.
    pub fn resolve(layers: &ConfigLayers<'_>) -> Self {
        TopicPolicy {
            log: LogConfig {
                segment_bytes: layers.value_i64("segment.bytes").max(14) as u64,
                segment_ms: layers.value_i64("segment.ms").max(1) as u64,
                retention_ms: layers.value_i64("retention.ms"),
                retention_bytes: layers.value_i64("retention.bytes"),
                index_interval_bytes: layers.value_i64("index.interval.bytes").max(0) as u64,
                flush_messages: layers.value_i64("flush.messages").max(1) as u64,
                flush_ms: layers.value_i64("flush.ms").max(0) as u64,
                delete: has_policy(&layers.value("cleanup.policy"), "delete"),
                compact: has_policy(&layers.value("cleanup.policy"), "compact"),
                min_cleanable_dirty_ratio: layers
                    .value("min.cleanable.dirty.ratio")
                    .trim()
                    .parse()
                    .unwrap_or(0.5),
                min_compaction_lag_ms: layers.value_i64("min.compaction.lag.ms").max(0),
                delete_retention_ms: layers.value_i64("delete.retention.ms").max(0),
            },
            max_message_bytes: layers
                .value_i64("max.message.bytes")
                .clamp(0, i32::MAX as i64) as usize,
            log_append_time: layers.value("message.timestamp.type").trim() == "LogAppendTime",
            min_insync_replicas: layers
                .value_i64("min.insync.replicas")
                .clamp(1, i32::MAX as i64) as i32,
            compression: compression_codec(&layers.value("compression.type")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn policy_follows_the_most_specific_layer() {
        let topic = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let static_broker = BTreeMap::from([("log.segment.bytes".to_string(), "4096".to_string())]);
        let policy = TopicPolicy::resolve(&ConfigLayers {
            topic: Some(&topic),
            static_broker: Some(&static_broker),
            ..Default::default()
        });
        assert_eq!(policy.log.retention_ms, 1000);
        assert_eq!(policy.log.segment_bytes, 4096);
        assert_eq!(policy.min_insync_replicas, 1);
        assert!(!policy.log_append_time);
        assert_eq!(policy.compression, None, "producer");
        let topic = BTreeMap::from([("compression.type".to_string(), "zstd".to_string())]);
        let policy = TopicPolicy::resolve(&ConfigLayers {
            topic: Some(&topic),
            ..Default::default()
        });
        assert_eq!(policy.compression, Some(Compression::Zstd));
    }
}
