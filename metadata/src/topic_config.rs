//! The topic-level configuration keys Tributary honours, their broker-level synonyms and
//! defaults, and how an effective value is resolved — the rules Kafka's `LogConfig` follows.

use std::collections::BTreeMap;

use thiserror::Error;

/// Kafka's `ConfigSource` values, as DescribeConfigs reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigSource {
    DynamicTopic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
}

/// Kafka's `ConfigType` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Long = 5,
    Double = 6,
    List = 7,
}

/// One topic-level config key.
#[derive(Debug)]
pub struct TopicConfigDef {
    pub name: &'static str,
    /// The broker setting that provides the default (e.g. `log.retention.ms`).
    pub broker_synonym: &'static str,
    pub config_type: ConfigType,
    pub default: &'static str,
    pub doc: &'static str,
    validate: fn(&str) -> Result<(), String>,
}

fn long_at_least(min: i64) -> impl Fn(&str) -> Result<(), String> {
    move |v| match v.trim().parse::<i64>() {
        Ok(n) if n >= min => Ok(()),
        Ok(n) => Err(format!("value {n} must be at least {min}")),
        Err(_) => Err(format!("'{v}' is not a number")),
    }
}

fn v_long_any(v: &str) -> Result<(), String> {
    long_at_least(-1)(v)
}
fn v_positive(v: &str) -> Result<(), String> {
    long_at_least(1)(v)
}
fn v_non_negative(v: &str) -> Result<(), String> {
    long_at_least(0)(v)
}
fn v_int_positive(v: &str) -> Result<(), String> {
    long_at_least(1)(v)?;
    v.trim()
        .parse::<i32>()
        .map(|_| ())
        .map_err(|_| format!("value {v} is out of range for an int"))
}
fn v_segment_bytes(v: &str) -> Result<(), String> {
    v_int_positive(v)?;
    long_at_least(14)(v)
}
fn v_bool(v: &str) -> Result<(), String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "false" => Ok(()),
        _ => Err(format!("'{v}' is not a boolean")),
    }
}
fn v_timestamp_type(v: &str) -> Result<(), String> {
    match v.trim() {
        "CreateTime" | "LogAppendTime" => Ok(()),
        _ => Err(format!("'{v}' must be CreateTime or LogAppendTime")),
    }
}
fn v_cleanup_policy(v: &str) -> Result<(), String> {
    // An empty list is valid, as in Kafka: no retention and no compaction.
    for policy in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match policy {
            "delete" | "compact" => {}
            other => return Err(format!("'{other}' is not a valid cleanup policy")),
        }
    }
    Ok(())
}
fn v_long_from_minus_two(v: &str) -> Result<(), String> {
    long_at_least(-2)(v)
}
fn v_ratio(v: &str) -> Result<(), String> {
    match v.trim().parse::<f64>() {
        Ok(r) if (0.0..=1.0).contains(&r) => Ok(()),
        _ => Err(format!("'{v}' is not a ratio between 0 and 1")),
    }
}
/// A Kafka release (`2.8`, `3.0-IV1`, `0.10.0.0`): `message.format.version` is ignored
/// from 3.0 on. As with Kafka's `MetadataVersion.fromVersionString`, segments past the
/// release's own (three for 0.x, two after) are allowed and ignored.
fn v_kafka_version(v: &str) -> Result<(), String> {
    let (release, iv) = v.trim().split_once("-IV").unwrap_or((v.trim(), "0"));
    let parts: Vec<&str> = release.split('.').collect();
    let numeric = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if (2..=4).contains(&parts.len()) && parts.iter().all(|p| numeric(p)) && numeric(iv) {
        Ok(())
    } else {
        Err(format!("'{v}' is not a Kafka version"))
    }
}
/// Throttled replicas: `*`, or `partition:broker` pairs.
fn v_throttled_replicas(v: &str) -> Result<(), String> {
    let v = v.trim();
    let pair = |p: &str| {
        p.trim().split_once(':').is_some_and(|(a, b)| {
            a.trim().parse::<i32>().is_ok() && b.trim().parse::<i32>().is_ok()
        })
    };
    if v.is_empty() || v == "*" || v.split(',').all(pair) {
        Ok(())
    } else {
        Err(format!(
            "'{v}' is not '*' or a list of partition:broker pairs"
        ))
    }
}
fn v_remote_storage(v: &str) -> Result<(), String> {
    v_bool(v)?;
    if v.trim().eq_ignore_ascii_case("true") {
        return Err("tiered storage is not available on this cluster".into());
    }
    Ok(())
}
fn v_compression(v: &str) -> Result<(), String> {
    match v.trim() {
        "producer" | "gzip" | "snappy" | "lz4" | "zstd" | "uncompressed" => Ok(()),
        other => Err(format!("'{other}' is not a valid compression type")),
    }
}

/// Every topic config Kafka 3.6 knows; unknown names are rejected, as Kafka does. Those
/// whose doc says "Stored without effect" are accepted, validated and described, but
/// nothing in Tributary reads them (the README lists them).
pub static TOPIC_CONFIGS: &[TopicConfigDef] = &[
    TopicConfigDef {
        name: "cleanup.policy",
        broker_synonym: "log.cleanup.policy",
        config_type: ConfigType::List,
        default: "delete",
        doc: "'delete' removes old segments by retention.ms and retention.bytes; 'compact' \
              keeps the latest record of each key; 'compact,delete' does both.",
        validate: v_cleanup_policy,
    },
    TopicConfigDef {
        name: "compression.type",
        broker_synonym: "compression.type",
        config_type: ConfigType::String,
        default: "producer",
        doc: "The final compression of the topic's batches: 'producer' keeps the producer's; \
              'gzip', 'snappy', 'lz4', 'zstd' or 'uncompressed' recompresses batches that \
              arrive otherwise.",
        validate: v_compression,
    },
    TopicConfigDef {
        name: "delete.retention.ms",
        broker_synonym: "log.cleaner.delete.retention.ms",
        config_type: ConfigType::Long,
        default: "86400000",
        doc: "How long the cleaner keeps tombstones (null values) of a compacted topic after \
              their segment was last written, so consumers reading from the start see deletes.",
        validate: v_non_negative,
    },
    TopicConfigDef {
        name: "file.delete.delay.ms",
        broker_synonym: "log.segment.delete.delay.ms",
        config_type: ConfigType::Long,
        default: "60000",
        doc: "Stored without effect: deleted segments are removed at once.",
        validate: v_non_negative,
    },
    TopicConfigDef {
        name: "flush.messages",
        broker_synonym: "log.flush.interval.messages",
        config_type: ConfigType::Long,
        default: "9223372036854775807",
        doc: "Force an fsync after this many messages.",
        validate: v_positive,
    },
    TopicConfigDef {
        name: "flush.ms",
        broker_synonym: "log.flush.interval.ms",
        config_type: ConfigType::Long,
        default: "9223372036854775807",
        doc: "Force an fsync when data has been unflushed this long.",
        validate: v_non_negative,
    },
    TopicConfigDef {
        name: "follower.replication.throttled.replicas",
        broker_synonym: "follower.replication.throttled.replicas",
        config_type: ConfigType::List,
        default: "",
        doc: "Stored without effect (replication throttling).",
        validate: v_throttled_replicas,
    },
    TopicConfigDef {
        name: "index.interval.bytes",
        broker_synonym: "log.index.interval.bytes",
        config_type: ConfigType::Int,
        default: "4096",
        doc: "Bytes between offset index entries.",
        validate: v_non_negative,
    },
    TopicConfigDef {
        name: "leader.replication.throttled.replicas",
        broker_synonym: "leader.replication.throttled.replicas",
        config_type: ConfigType::List,
        default: "",
        doc: "Stored without effect (replication throttling).",
        validate: v_throttled_replicas,
    },
    TopicConfigDef {
        name: "local.retention.bytes",
        broker_synonym: "log.local.retention.bytes",
        config_type: ConfigType::Long,
        default: "-2",
        doc: "Stored without effect (tiered storage).",
        validate: v_long_from_minus_two,
    },
    TopicConfigDef {
        name: "local.retention.ms",
        broker_synonym: "log.local.retention.ms",
        config_type: ConfigType::Long,
        default: "-2",
        doc: "Stored without effect (tiered storage).",
        validate: v_long_from_minus_two,
    },
    TopicConfigDef {
        name: "max.compaction.lag.ms",
        broker_synonym: "log.cleaner.max.compaction.lag.ms",
        config_type: ConfigType::Long,
        default: "9223372036854775807",
        doc: "Stored without effect (compaction).",
        validate: v_positive,
    },
    TopicConfigDef {
        name: "max.message.bytes",
        broker_synonym: "message.max.bytes",
        config_type: ConfigType::Int,
        default: "1048588",
        doc: "Largest record batch the topic accepts.",
        validate: v_non_negative,
    },
    TopicConfigDef {
        name: "message.downconversion.enable",
        broker_synonym: "log.message.downconversion.enable",
        config_type: ConfigType::Boolean,
        default: "true",
        doc: "Stored without effect: batches are served in the v2 format only.",
        validate: v_bool,
    },
    TopicConfigDef {
        name: "message.format.version",
        broker_synonym: "log.message.format.version",
        config_type: ConfigType::String,
        default: "3.0-IV1",
        doc: "Stored without effect, as in Kafka 3.x: batches are written in the v2 format.",
        validate: v_kafka_version,
    },
    TopicConfigDef {
        name: "message.timestamp.after.max.ms",
        broker_synonym: "log.message.timestamp.after.max.ms",
        config_type: ConfigType::Long,
        default: "9223372036854775807",
        doc: "Stored without effect (timestamps are not bounded).",
        validate: v_non_negative,
    },
    TopicConfigDef {
        name: "message.timestamp.before.max.ms",
        broker_synonym: "log.message.timestamp.before.max.ms",
        config_type: ConfigType::Long,
        default: "9223372036854775807",
        doc: "Stored without effect (timestamps are not bounded).",
        validate: v_non_negative,
    },
    TopicConfigDef {
        name: "message.timestamp.difference.max.ms",
        broker_synonym: "log.message.timestamp.difference.max.ms",
        config_type: ConfigType::Long,
        default: "9223372036854775807",
        doc: "Stored without effect (timestamps are not bounded).",
        validate: v_non_negative,
    },
    TopicConfigDef {
        name: "message.timestamp.type",
        broker_synonym: "log.message.timestamp.type",
        config_type: ConfigType::String,
        default: "CreateTime",
        doc: "CreateTime keeps producer timestamps; LogAppendTime stamps the broker's time.",
        validate: v_timestamp_type,
    },
    TopicConfigDef {
        name: "min.cleanable.dirty.ratio",
        broker_synonym: "log.cleaner.min.cleanable.ratio",
        config_type: ConfigType::Double,
        default: "0.5",
        doc: "The share of a compacted log not yet cleaned at which the cleaner cleans it.",
        validate: v_ratio,
    },
    TopicConfigDef {
        name: "min.compaction.lag.ms",
        broker_synonym: "log.cleaner.min.compaction.lag.ms",
        config_type: ConfigType::Long,
        default: "0",
        doc: "How old a record must be before the cleaner may remove it.",
        validate: v_non_negative,
    },
    TopicConfigDef {
        name: "min.insync.replicas",
        broker_synonym: "min.insync.replicas",
        config_type: ConfigType::Int,
        default: "1",
        doc: "Replicas that must acknowledge an acks=all write.",
        validate: v_int_positive,
    },
    TopicConfigDef {
        name: "preallocate",
        broker_synonym: "log.preallocate",
        config_type: ConfigType::Boolean,
        default: "false",
        doc: "Stored without effect: segments grow as written.",
        validate: v_bool,
    },
    TopicConfigDef {
        name: "remote.storage.enable",
        broker_synonym: "remote.storage.enable",
        config_type: ConfigType::Boolean,
        default: "false",
        doc: "Tiered storage; only false is accepted, as by a Kafka broker without it.",
        validate: v_remote_storage,
    },
    TopicConfigDef {
        name: "retention.bytes",
        broker_synonym: "log.retention.bytes",
        config_type: ConfigType::Long,
        default: "-1",
        doc: "Maximum partition size before old segments are deleted (-1: unlimited).",
        validate: v_long_any,
    },
    TopicConfigDef {
        name: "retention.ms",
        broker_synonym: "log.retention.ms",
        config_type: ConfigType::Long,
        default: "604800000",
        doc: "Age after which segments are deleted (-1: forever).",
        validate: v_long_any,
    },
    TopicConfigDef {
        name: "segment.bytes",
        broker_synonym: "log.segment.bytes",
        config_type: ConfigType::Int,
        default: "1073741824",
        doc: "Segment size before a new one is rolled.",
        validate: v_segment_bytes,
    },
    TopicConfigDef {
        name: "segment.index.bytes",
        broker_synonym: "log.index.size.max.bytes",
        config_type: ConfigType::Int,
        default: "10485760",
        doc: "Stored without effect: indexes live in memory and grow as needed.",
        validate: v_int_positive,
    },
    TopicConfigDef {
        name: "segment.jitter.ms",
        broker_synonym: "log.roll.jitter.ms",
        config_type: ConfigType::Long,
        default: "0",
        doc: "Stored without effect (segments roll at segment.ms exactly).",
        validate: v_non_negative,
    },
    TopicConfigDef {
        name: "segment.ms",
        broker_synonym: "log.roll.ms",
        config_type: ConfigType::Long,
        default: "604800000",
        doc: "Segment age before a new one is rolled.",
        validate: v_positive,
    },
    TopicConfigDef {
        name: "unclean.leader.election.enable",
        broker_synonym: "unclean.leader.election.enable",
        config_type: ConfigType::Boolean,
        default: "false",
        doc: "Allow out-of-sync replicas to become leader (data loss).",
        validate: v_bool,
    },
];

/// Looks up a topic config key.
pub fn topic_config(name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Looks up a topic config by its broker-level synonym.
pub fn topic_config_by_synonym(broker_name: &str) -> Option<&'static TopicConfigDef> {
    TOPIC_CONFIGS
        .iter()
        .find(|d| d.broker_synonym == broker_name)
}

/// A config change that cannot be accepted (INVALID_CONFIG).
#[derive(Debug, Error, PartialEq, Eq)]
#[error("Invalid value {value} for configuration {name}: {reason}")]
pub struct InvalidConfig {
    pub name: String,
    pub value: String,
    pub reason: String,
}

/// Checks a topic config key and value.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), InvalidConfig> {
    let Some(def) = topic_config(name) else {
        return Err(InvalidConfig {
            name: name.into(),
            value: value.into(),
            reason: "unknown topic config name".into(),
        });
    };
    (def.validate)(value).map_err(|reason| InvalidConfig {
        name: name.into(),
        value: value.into(),
        reason,
    })
}

/// Where topic config values come from, from most to least specific.
#[derive(Debug, Clone, Default)]
pub struct ConfigLayers<'a> {
    pub topic: Option<&'a BTreeMap<String, String>>,
    /// Dynamic per-broker overrides (broker-level names).
    pub broker: Option<&'a BTreeMap<String, String>>,
    /// Dynamic cluster-wide broker defaults (broker-level names).
    pub cluster_default: Option<&'a BTreeMap<String, String>>,
    /// Settings from flags or the properties file (broker-level names).
    pub static_broker: Option<&'a BTreeMap<String, String>>,
}

impl ConfigLayers<'_> {
    /// The effective value of a topic config and where it came from.
    pub fn resolve(&self, def: &TopicConfigDef) -> (String, ConfigSource) {
        let layers = [
            (self.topic, def.name, ConfigSource::DynamicTopic),
            (self.broker, def.broker_synonym, ConfigSource::DynamicBroker),
            (
                self.cluster_default,
                def.broker_synonym,
                ConfigSource::DynamicDefaultBroker,
            ),
            (
                self.static_broker,
                def.broker_synonym,
                ConfigSource::StaticBroker,
            ),
        ];
        for (map, key, source) in layers {
            if let Some(value) = map.and_then(|m| m.get(key)) {
                return (value.clone(), source);
            }
        }
        (def.default.to_string(), ConfigSource::Default)
    }

    /// The effective value of a known topic config (its default for an unknown name).
    pub fn value(&self, name: &str) -> String {
        topic_config(name).map_or_else(String::new, |def| self.resolve(def).0)
    }

    /// The effective value of a numeric topic config; an unparsable value falls back to
    /// the config's default.
    pub fn value_i64(&self, name: &str) -> i64 {
        let default = topic_config(name).map_or(0, |def| def.default.parse().unwrap_or(0));
        self.value(name).trim().parse().unwrap_or(default)
    }

    /// Whether a boolean topic config is `true`.
    pub fn value_bool(&self, name: &str) -> bool {
        self.value(name).trim().eq_ignore_ascii_case("true")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The topic configs of Kafka 3.6's `LogConfig`.
    const KAFKA_3_6_TOPIC_CONFIGS: &[&str] = &[
        "cleanup.policy",
        "compression.type",
        "delete.retention.ms",
        "file.delete.delay.ms",
        "flush.messages",
        "flush.ms",
        "follower.replication.throttled.replicas",
        "index.interval.bytes",
        "leader.replication.throttled.replicas",
        "local.retention.bytes",
        "local.retention.ms",
        "max.compaction.lag.ms",
        "max.message.bytes",
        "message.downconversion.enable",
        "message.format.version",
        "message.timestamp.after.max.ms",
        "message.timestamp.before.max.ms",
        "message.timestamp.difference.max.ms",
        "message.timestamp.type",
        "min.cleanable.dirty.ratio",
        "min.compaction.lag.ms",
        "min.insync.replicas",
        "preallocate",
        "remote.storage.enable",
        "retention.bytes",
        "retention.ms",
        "segment.bytes",
        "segment.index.bytes",
        "segment.jitter.ms",
        "segment.ms",
        "unclean.leader.election.enable",
    ];

    #[test]
    fn every_kafka_topic_config_is_known_with_a_valid_default() {
        for name in KAFKA_3_6_TOPIC_CONFIGS {
            let def = topic_config(name).unwrap_or_else(|| panic!("{name} unknown"));
            assert_eq!(validate_topic_config(name, def.default), Ok(()), "{name}");
        }
        assert_eq!(TOPIC_CONFIGS.len(), KAFKA_3_6_TOPIC_CONFIGS.len());
        let names: Vec<_> = TOPIC_CONFIGS.iter().map(|d| d.name).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted, "kept in name order");
    }

    #[test]
    fn values_kafka_3_accepts_are_accepted() {
        for (name, value) in [
            ("message.format.version", "2.8"),
            ("message.format.version", "0.10.0"),
            ("message.format.version", "0.10.0.0"),
            ("message.format.version", "2.8.1"),
            ("message.format.version", "3.0-IV1"),
            ("delete.retention.ms", "1000"),
            ("min.cleanable.dirty.ratio", "0.1"),
            ("leader.replication.throttled.replicas", "0:1,1:2"),
            ("follower.replication.throttled.replicas", "*"),
            ("remote.storage.enable", "false"),
            ("preallocate", "true"),
        ] {
            assert_eq!(validate_topic_config(name, value), Ok(()), "{name}={value}");
        }
        for (name, value) in [
            ("message.format.version", "latest"),
            ("min.cleanable.dirty.ratio", "2"),
            ("leader.replication.throttled.replicas", "0-1"),
            ("remote.storage.enable", "true"),
        ] {
            assert!(
                validate_topic_config(name, value).is_err(),
                "{name}={value}"
            );
        }
    }

    #[test]
    fn resolution_prefers_the_most_specific_layer() {
        let topic = BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]);
        let stat = BTreeMap::from([
            ("log.retention.ms".to_string(), "5000".to_string()),
            ("log.segment.bytes".to_string(), "4096".to_string()),
        ]);
        let layers = ConfigLayers {
            topic: Some(&topic),
            static_broker: Some(&stat),
            ..Default::default()
        };
        let retention = topic_config("retention.ms").unwrap();
        assert_eq!(
            layers.resolve(retention),
            ("1000".into(), ConfigSource::DynamicTopic)
        );
        let segment = topic_config("segment.bytes").unwrap();
        assert_eq!(
            layers.resolve(segment),
            ("4096".into(), ConfigSource::StaticBroker)
        );
        let mir = topic_config("min.insync.replicas").unwrap();
        assert_eq!(layers.resolve(mir), ("1".into(), ConfigSource::Default));
        assert_eq!(layers.value_i64("retention.ms"), 1000);
        assert_eq!(layers.value_i64("segment.bytes"), 4096);
        assert!(!layers.value_bool("unclean.leader.election.enable"));
    }

    #[test]
    fn validation_rejects_bad_values_and_unknown_names() {
        assert!(validate_topic_config("retention.ms", "86400000").is_ok());
        assert!(validate_topic_config("retention.ms", "-1").is_ok());
        assert!(validate_topic_config("retention.ms", "soon").is_err());
        assert!(validate_topic_config("segment.bytes", "0").is_err());
        assert!(validate_topic_config("no.such.config", "1").is_err());
        assert!(validate_topic_config("cleanup.policy", "compact,delete").is_ok());
        assert!(validate_topic_config("cleanup.policy", "compact,shred").is_err());
        assert!(validate_topic_config("cleanup.policy", "").is_ok());
        assert!(validate_topic_config("message.timestamp.type", "LogAppendTime").is_ok());
        assert!(validate_topic_config("min.insync.replicas", "0").is_err());
    }
}
