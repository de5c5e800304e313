//! Committed offsets: the records written to the replicated internal topic
//! `__consumer_offsets`, and the in-memory table a coordinator rebuilds from them.
//!
//! Each commit is a record whose key names `(group, topic, partition)` and whose value holds
//! the offset (a null value deletes it). The partition of `__consumer_offsets` a group lives
//! in is `abs(javaHash(group)) % partitions`, as in Kafka, so its leader is the group's
//! coordinator and a coordinator failover replays the same records on the new leader.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;

use bytes::Bytes;
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, TimestampType};
use serde::{Deserialize, Serialize};

use crate::log::batch;

/// Name of the internal offsets topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Identifies one committed offset.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OffsetKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

/// A committed position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp: i64,
}

/// Offset commits (`Some`) and deletions (`None`) to write together.
pub type OffsetWrites = Vec<(OffsetKey, Option<OffsetValue>)>;

/// Kafka's `Utils.abs(groupId.hashCode) % partitions` (Java `String.hashCode`).
pub fn partition_for(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for unit in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(unit as i32);
    }
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions.max(1)
}

/// Encodes commits (and deletions, as `None`) as one record batch.
pub fn encode(entries: &[(OffsetKey, Option<OffsetValue>)]) -> io::Result<Bytes> {
    let now = crate::util::now_ms();
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (key, value))| {
            Ok(Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // A constant offset-sequence gap keeps all records in one batch whose base
                // sequence is -1 (no producer id).
                sequence: i as i32 - 1,
                timestamp: now,
                key: Some(Bytes::from(serde_json::to_vec(key)?)),
                value: value
                    .as_ref()
                    .map(|v| serde_json::to_vec(v).map(Bytes::from))
                    .transpose()?,
                headers: Default::default(),
                delete_horizon: false,
            })
        })
        .collect::<Result<_, serde_json::Error>>()
        .map_err(io::Error::other)?;
    Ok(batch::encode_records(&records, Compression::None)?.freeze())
}

/// The committed offsets of the groups in one `__consumer_offsets` partition.
#[derive(Debug, Clone, Default)]
pub struct OffsetTable {
    offsets: HashMap<OffsetKey, OffsetValue>,
}

impl OffsetTable {
    /// Replays batches read from the offsets partition (in offset order).
    pub fn replay(&mut self, data: Bytes) -> io::Result<()> {
        for (_, bytes) in batch::BatchIter::new(data) {
            let mut buf = bytes;
            let set = RecordBatchDecoder::decode(&mut buf).map_err(io::Error::other)?;
            for record in set.records {
                let Some(key) = record
                    .key
                    .and_then(|k| serde_json::from_slice::<OffsetKey>(&k).ok())
                else {
                    continue;
                };
                match record
                    .value
                    .and_then(|v| serde_json::from_slice::<OffsetValue>(&v).ok())
                {
                    Some(value) => self.offsets.insert(key, value),
                    None => self.offsets.remove(&key),
                };
            }
        }
        Ok(())
    }

    /// Applies committed entries.
    pub fn apply(&mut self, entries: Vec<(OffsetKey, Option<OffsetValue>)>) {
        for (key, value) in entries {
            match value {
                Some(v) => self.offsets.insert(key, v),
                None => self.offsets.remove(&key),
            };
        }
    }

    /// Every committed offset of `group`, ordered by topic and partition.
    pub fn group_offsets(&self, group: &str) -> BTreeMap<(String, i32), OffsetValue> {
        self.offsets
            .iter()
            .filter(|(k, _)| k.group == group)
            .map(|(k, v)| ((k.topic.clone(), k.partition), v.clone()))
            .collect()
    }

    /// Groups that have committed offsets.
    pub fn groups(&self) -> BTreeSet<String> {
        self.offsets.keys().map(|k| k.group.clone()).collect()
    }

    /// Keys of every committed offset on `topic` (for topic deletion).
    pub fn keys_of_topic(&self, topic: &str) -> Vec<OffsetKey> {
        self.offsets
            .keys()
            .filter(|k| k.topic == topic)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    fn key(g: &str, p: i32) -> OffsetKey {
        OffsetKey {
            group: g.into(),
            topic: "t".into(),
            partition: p,
        }
    }

    fn value(offset: i64) -> OffsetValue {
        OffsetValue {
            offset,
            leader_epoch: -1,
            metadata: Some(String::new()),
            commit_timestamp: 0,
        }
    }

    #[test]
    fn replay_rebuilds_latest_commits_and_deletions() {
        let mut data = BytesMut::new();
        data.extend_from_slice(
            &encode(&[(key("g", 0), Some(value(1))), (key("g", 1), Some(value(7)))]).unwrap(),
        );
        data.extend_from_slice(
            &encode(&[(key("g", 0), Some(value(5))), (key("h", 0), Some(value(2)))]).unwrap(),
        );
        data.extend_from_slice(&encode(&[(key("h", 0), None)]).unwrap());
        let mut table = OffsetTable::default();
        table.replay(data.freeze()).unwrap();
        let g = table.group_offsets("g");
        assert_eq!(g[&("t".into(), 0)].offset, 5);
        assert_eq!(g[&("t".into(), 1)].offset, 7);
        assert!(table.group_offsets("h").is_empty());
        assert_eq!(table.groups(), BTreeSet::from(["g".to_string()]));
    }

    #[test]
    fn partition_for_matches_java_hash() {
        // "console-consumer-1".hashCode() == 35782224 in Java; % 50 == 24.
        assert_eq!(partition_for("console-consumer-1", 50), 24);
        // "polygenelubricants".hashCode() == i32::MIN: Kafka's Utils.abs maps it to 0.
        assert_eq!(partition_for("polygenelubricants", 50), 0);
        assert_eq!(partition_for("", 50), 0);
        assert!((0..5).contains(&partition_for("any-group", 5)));
    }
}
