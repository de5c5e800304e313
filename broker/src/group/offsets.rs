//! Committed offsets: the records written to the replicated internal topic
//! `__consumer_offsets`, and the in-memory table a coordinator rebuilds from them.
//!
//! Each commit is a record whose key names `(group, topic, partition)` and whose value holds
//! the offset (a null value deletes it), in Kafka's binary schemas (`OffsetCommitKey` v1,
//! `OffsetCommitValue` v3): about 60 bytes a partition, so that a consumer committing
//! 10,000 partitions at once stays within the topic's `max.message.bytes`, as with Kafka,
//! and Kafka's offsets formatter reads the topic. The partition of `__consumer_offsets` a group lives
//! in is `abs(javaHash(group)) % partitions`, as in Kafka, so its leader is the group's
//! coordinator and a coordinator failover replays the same records on the new leader.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, TimestampType};
use serde::{Deserialize, Serialize};

use super::consumer::records::{self as consumer_records, StoredGroup};
use super::snapshot::{self, GroupSnapshot};
use crate::log::batch;
use crate::schema::put_string;

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

/// `OffsetCommitKey` schema version: 0 and 1 are offset commits (2 is group metadata).
const OFFSET_KEY_VERSION: i16 = 1;
/// `OffsetCommitValue` schema version written (v3: with the leader epoch, no expiry).
const OFFSET_VALUE_VERSION: i16 = 3;

fn get_string(buf: &mut &[u8]) -> Option<String> {
    let len = usize::try_from(get_i16(buf)?).ok()?;
    let bytes = buf.get(..len)?;
    let s = String::from_utf8(bytes.to_vec()).ok()?;
    *buf = &buf[len..];
    Some(s)
}

fn get_i16(buf: &mut &[u8]) -> Option<i16> {
    (buf.len() >= 2).then(|| buf.get_i16())
}

fn get_i32(buf: &mut &[u8]) -> Option<i32> {
    (buf.len() >= 4).then(|| buf.get_i32())
}

fn get_i64(buf: &mut &[u8]) -> Option<i64> {
    (buf.len() >= 8).then(|| buf.get_i64())
}

impl OffsetKey {
    fn encode(&self) -> io::Result<Bytes> {
        let mut buf = BytesMut::with_capacity(10 + self.group.len() + self.topic.len());
        buf.put_i16(OFFSET_KEY_VERSION);
        put_string(&mut buf, &self.group)?;
        put_string(&mut buf, &self.topic)?;
        buf.put_i32(self.partition);
        Ok(buf.freeze())
    }

    /// The key of an offset commit record; `None` for other records (group metadata).
    /// Records written as JSON by earlier releases are read too.
    fn decode(bytes: &[u8]) -> Option<OffsetKey> {
        if bytes.first() == Some(&b'{') {
            return serde_json::from_slice(bytes).ok();
        }
        let mut buf = bytes;
        if !matches!(get_i16(&mut buf)?, 0 | 1) {
            return None;
        }
        Some(OffsetKey {
            group: get_string(&mut buf)?,
            topic: get_string(&mut buf)?,
            partition: get_i32(&mut buf)?,
        })
    }
}

impl OffsetValue {
    fn encode(&self) -> io::Result<Bytes> {
        let metadata = self.metadata.as_deref().unwrap_or_default();
        let mut buf = BytesMut::with_capacity(24 + metadata.len());
        buf.put_i16(OFFSET_VALUE_VERSION);
        buf.put_i64(self.offset);
        buf.put_i32(self.leader_epoch);
        put_string(&mut buf, metadata)?;
        buf.put_i64(self.commit_timestamp);
        Ok(buf.freeze())
    }

    /// A committed position, from any `OffsetCommitValue` version Kafka wrote (0 to 3)
    /// or the JSON of earlier releases.
    fn decode(bytes: &[u8]) -> Option<OffsetValue> {
        if bytes.first() == Some(&b'{') {
            return serde_json::from_slice(bytes).ok();
        }
        let mut buf = bytes;
        let version = get_i16(&mut buf)?;
        let offset = get_i64(&mut buf)?;
        let leader_epoch = if version >= 3 { get_i32(&mut buf)? } else { -1 };
        let metadata = get_string(&mut buf)?;
        let commit_timestamp = get_i64(&mut buf)?;
        Some(OffsetValue {
            offset,
            leader_epoch,
            metadata: Some(metadata),
            commit_timestamp,
        })
    }
}

/// Encodes commits (and deletions, as `None`) as one record batch.
pub fn encode(entries: &[(OffsetKey, Option<OffsetValue>)]) -> io::Result<Bytes> {
    encode_entries(entries, None)
}

/// Encodes a TxnOffsetCommit's offsets as one batch of `producer`'s transaction
/// (`(producer id, epoch)`): they count only once a commit marker follows.
pub fn encode_txn(
    entries: &[(OffsetKey, Option<OffsetValue>)],
    producer: (i64, i16),
) -> io::Result<Bytes> {
    encode_entries(entries, Some(producer))
}

fn encode_entries(
    entries: &[(OffsetKey, Option<OffsetValue>)],
    producer: Option<(i64, i16)>,
) -> io::Result<Bytes> {
    let pairs = entries
        .iter()
        .map(|(key, value)| {
            Ok((
                key.encode()?,
                value.as_ref().map(OffsetValue::encode).transpose()?,
            ))
        })
        .collect::<io::Result<Vec<_>>>()?;
    record_batch(pairs, producer)
}

/// Encodes raw `(key, value)` records (a null value deletes its key) as one batch.
pub fn encode_records(pairs: Vec<(Bytes, Option<Bytes>)>) -> io::Result<Bytes> {
    record_batch(pairs, None)
}

/// Encodes a group's metadata (a tombstone for `None`: the group was deleted) as a
/// record batch of its own.
pub fn encode_group(group: &str, snapshot: Option<&GroupSnapshot>) -> io::Result<Bytes> {
    let value = snapshot.map(GroupSnapshot::encode).transpose()?;
    record_batch(vec![(snapshot::encode_key(group)?, value)], None)
}

/// One uncompressed batch of `(key, value)` records, stamped now; transactional when a
/// producer is given.
fn record_batch(
    pairs: Vec<(Bytes, Option<Bytes>)>,
    producer: Option<(i64, i16)>,
) -> io::Result<Bytes> {
    let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
    let now = crate::util::now_ms();
    let records: Vec<Record> = pairs
        .into_iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: producer.is_some(),
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // A constant offset-sequence gap keeps all records in one batch whose base
            // sequence is -1 (no producer id).
            sequence: i as i32 - 1,
            timestamp: now,
            key: Some(key),
            value,
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    Ok(batch::encode_records(&records, Compression::None)?.freeze())
}

/// The committed offsets of the groups in one `__consumer_offsets` partition, and (while
/// the partition is being loaded) the last metadata stored for each group.
#[derive(Debug, Clone, Default)]
pub struct OffsetTable {
    offsets: HashMap<OffsetKey, OffsetValue>,
    groups: HashMap<String, GroupSnapshot>,
    /// KIP-848 groups replayed (while the partition is being loaded).
    consumer_groups: BTreeMap<String, StoredGroup>,
    /// Offsets committed inside a transaction, by producer id, until its marker.
    pending: HashMap<i64, OffsetWrites>,
}

impl OffsetTable {
    /// Replays batches read from the offsets partition (in offset order).
    pub fn replay(&mut self, data: Bytes) -> io::Result<()> {
        for (header, bytes) in batch::BatchIter::new(data) {
            if header.is_control() {
                let commit = batch::control_type(&bytes) == Some(batch::ControlType::Commit);
                self.complete_txn(header.producer_id, commit);
                continue;
            }
            let transactional = header.is_transactional();
            let mut buf = bytes;
            let set = RecordBatchDecoder::decode(&mut buf).map_err(io::Error::other)?;
            for record in set.records {
                let Some(key_bytes) = record.key.as_deref() else {
                    continue;
                };
                if let Some(group) = snapshot::decode_key(key_bytes) {
                    self.replay_group(group, record.value.as_deref());
                    continue;
                }
                match consumer_records::replay(
                    &mut self.consumer_groups,
                    key_bytes,
                    record.value.as_deref(),
                ) {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err((group, error)) => {
                        // Its members are fenced at their next heartbeat and rejoin.
                        tracing::warn!(%group, %error, "unreadable consumer group record: the group starts empty");
                        self.consumer_groups.remove(&group);
                        continue;
                    }
                }
                let Some(key) = OffsetKey::decode(key_bytes) else {
                    continue;
                };
                // A null value (a tombstone) deletes the offset.
                let value = match record.value.as_deref() {
                    None => None,
                    Some(bytes) => Some(OffsetValue::decode(bytes).ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("undecodable offset commit for {key:?}"),
                        )
                    })?),
                };
                if transactional {
                    self.stage_txn(header.producer_id, vec![(key, value)]);
                } else {
                    self.apply(vec![(key, value)]);
                }
            }
        }
        Ok(())
    }

    /// A group metadata record: the latest snapshot wins, a tombstone deletes the group.
    /// A snapshot that cannot be read is dropped with a warning: its group starts empty
    /// and its members rejoin, which loses nothing.
    fn replay_group(&mut self, group: String, value: Option<&[u8]>) {
        match value.map(GroupSnapshot::decode) {
            None => {
                self.groups.remove(&group);
            }
            Some(Ok(snapshot)) => {
                self.groups.insert(group, snapshot);
            }
            Some(Err(error)) => {
                tracing::warn!(%group, %error, "unreadable group metadata: the group starts empty");
                self.groups.remove(&group);
            }
        }
    }

    /// The group metadata replayed, handed over once: the coordinator owns the groups
    /// from then on.
    pub fn take_group_snapshots(&mut self) -> HashMap<String, GroupSnapshot> {
        std::mem::take(&mut self.groups)
    }

    /// The KIP-848 groups replayed, handed over once.
    pub fn take_consumer_groups(&mut self) -> BTreeMap<String, StoredGroup> {
        std::mem::take(&mut self.consumer_groups)
    }

    /// Holds offsets a transaction committed until its marker says whether they count.
    pub fn stage_txn(&mut self, producer_id: i64, entries: OffsetWrites) {
        self.pending.entry(producer_id).or_default().extend(entries);
    }

    /// A transaction marker: a commit applies the producer's staged offsets, an abort
    /// drops them.
    pub fn complete_txn(&mut self, producer_id: i64, commit: bool) {
        if let Some(entries) = self.pending.remove(&producer_id) {
            if commit {
                self.apply(entries);
            }
        }
    }

    /// The partitions of `group` with offsets a transaction committed but whose marker
    /// has not arrived (OffsetFetch with `require_stable` answers UNSTABLE_OFFSET_COMMIT).
    pub fn pending_of(&self, group: &str) -> BTreeSet<(String, i32)> {
        self.pending
            .values()
            .flatten()
            .filter(|(key, _)| key.group == group)
            .map(|(key, _)| (key.topic.clone(), key.partition))
            .collect()
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
    fn records_use_kafkas_schemas_and_json_from_earlier_releases_still_loads() {
        let k = OffsetKey {
            group: "g".into(),
            topic: "t".into(),
            partition: 7,
        };
        assert_eq!(
            &k.encode().unwrap()[..],
            &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 7],
            "OffsetCommitKey v1"
        );
        let v = OffsetValue {
            offset: 42,
            leader_epoch: 3,
            metadata: Some("m".into()),
            commit_timestamp: 1000,
        };
        let encoded = v.encode().unwrap();
        assert_eq!(encoded.len(), 2 + 8 + 4 + 3 + 8, "OffsetCommitValue v3");
        assert_eq!(OffsetValue::decode(&encoded), Some(v.clone()));
        assert_eq!(OffsetKey::decode(&k.encode().unwrap()), Some(k.clone()));
        let legacy_key = serde_json::to_vec(&k).unwrap();
        let legacy_value = serde_json::to_vec(&v).unwrap();
        assert_eq!(OffsetKey::decode(&legacy_key), Some(k));
        assert_eq!(OffsetValue::decode(&legacy_value), Some(v));
        assert_eq!(
            OffsetKey::decode(&[0, 2, 0, 1, b'g']),
            None,
            "group metadata"
        );
        assert_eq!(OffsetValue::decode(&[0, 3, 0]), None, "truncated");
    }

    #[test]
    fn ten_thousand_partitions_commit_in_one_batch_under_a_mebibyte() {
        let entries: OffsetWrites = (0..10_000)
            .map(|p| {
                let mut k = key("a-consumer-group", p);
                k.topic = "a-topic-name".into();
                (k, Some(value(123_456)))
            })
            .collect();
        let len = encode(&entries).unwrap().len();
        assert!(len < 1 << 20, "{len} bytes");
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

    #[test]
    fn replay_keeps_the_last_metadata_of_each_group() {
        use crate::group::snapshot::GroupSnapshot;
        let snapshot = |generation| GroupSnapshot {
            protocol_type: "consumer".into(),
            generation,
            protocol: None,
            leader: None,
            state_timestamp_ms: 0,
            members: vec![],
        };
        let mut data = bytes::BytesMut::new();
        data.extend_from_slice(&encode_group("g", Some(&snapshot(1))).unwrap());
        data.extend_from_slice(&encode(&[(key("g", 0), Some(value(5)))]).unwrap());
        data.extend_from_slice(&encode_group("g", Some(&snapshot(2))).unwrap());
        data.extend_from_slice(&encode_group("gone", Some(&snapshot(9))).unwrap());
        data.extend_from_slice(&encode_group("gone", None).unwrap());
        let mut table = OffsetTable::default();
        table.replay(data.freeze()).unwrap();
        let groups = table.take_group_snapshots();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups["g"].generation, 2);
        assert_eq!(
            table.group_offsets("g").len(),
            1,
            "offsets replay alongside"
        );
        assert!(table.take_group_snapshots().is_empty(), "handed over once");
    }
}
