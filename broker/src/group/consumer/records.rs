//! KIP-848 groups as `__consumer_offsets` stores them, in Kafka's coordinator record
//! schemas: `ConsumerGroupMetadata` (record type 3: the group epoch),
//! `ConsumerGroupMemberMetadata` (5: a member's subscription),
//! `ConsumerGroupTargetAssignmentMetadata` (6) and `ConsumerGroupTargetAssignmentMember`
//! (7: the target assignment) and `ConsumerGroupCurrentMemberAssignment` (8: a member's
//! epochs, state and partitions). A group is written as the records that changed since
//! its last write, tombstones for members gone, so that a coordinator taking the group
//! over resumes it: members keep their epochs and partitions, nobody rejoins.

use std::collections::{BTreeMap, BTreeSet};
use std::io;

use bytes::{BufMut, Bytes, BytesMut};

use super::{ConsumerGroup, MemberAssignment, MemberState, TopicPartitions};
use crate::schema::{
    invalid, put_compact_len, put_compact_string, put_no_tags, put_string, put_uuid, put_uvarint,
    Reader,
};

const GROUP_METADATA: i16 = 3;
const MEMBER_METADATA: i16 = 5;
const TARGET_METADATA: i16 = 6;
const TARGET_MEMBER: i16 = 7;
const CURRENT_ASSIGNMENT: i16 = 8;
const VALUE_VERSION: i16 = 0;
/// `ConsumerGroupMetadataValue`'s tagged `MetadataHash` (KIP-1101): here a digest of the
/// subscribed topics, so that a group taken over is not rebalanced for nothing.
const METADATA_HASH_TAG: u64 = 0;

/// A group's records by key: what its last write left in the log.
pub type Image = BTreeMap<Bytes, Bytes>;

/// A member's subscription as stored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StoredSubscription {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub topic_names: Vec<String>,
    pub topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// What a replay found of one member.
#[derive(Debug, Clone, Default)]
pub struct StoredMember {
    pub subscription: Option<StoredSubscription>,
    pub target: Option<TopicPartitions>,
    pub current: Option<MemberAssignment>,
}

/// What a replay found of one group.
#[derive(Debug, Clone, Default)]
pub struct StoredGroup {
    pub epoch: Option<i32>,
    pub subscription_hash: i64,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, StoredMember>,
}

impl StoredSubscription {
    /// `ConsumerGroupMemberMetadataValue` v0's fields.
    fn encode(&self, buf: &mut BytesMut) {
        put_compact_string(buf, self.instance_id.as_deref());
        put_compact_string(buf, self.rack_id.as_deref());
        put_compact_string(buf, Some(&self.client_id));
        put_compact_string(buf, Some(&self.client_host));
        put_compact_len(buf, self.topic_names.len());
        for name in &self.topic_names {
            put_compact_string(buf, Some(name));
        }
        put_compact_string(buf, self.topic_regex.as_deref());
        buf.put_i32(self.rebalance_timeout_ms);
        put_compact_string(buf, self.server_assignor.as_deref());
        put_no_tags(buf);
    }
}

fn key(kind: i16, group: &str, member: Option<&str>) -> io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(6 + group.len() + member.map_or(0, str::len));
    buf.put_i16(kind);
    put_string(&mut buf, group)?;
    if let Some(member) = member {
        put_string(&mut buf, member)?;
    }
    Ok(buf.freeze())
}

fn value(fill: impl FnOnce(&mut BytesMut)) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(VALUE_VERSION);
    fill(&mut buf);
    buf.freeze()
}

fn put_partitions(buf: &mut BytesMut, parts: &TopicPartitions) {
    put_compact_len(buf, parts.len());
    for (topic, ps) in parts {
        put_uuid(buf, topic);
        put_compact_len(buf, ps.len());
        for p in ps {
            buf.put_i32(*p);
        }
        put_no_tags(buf);
    }
}

fn read_partitions(r: &mut Reader) -> io::Result<TopicPartitions> {
    let mut parts = TopicPartitions::new();
    for _ in 0..r.compact_len()?.unwrap_or(0) {
        let topic = r.uuid()?;
        let mut ps = BTreeSet::new();
        for _ in 0..r.compact_len()?.unwrap_or(0) {
            ps.insert(r.i32()?);
        }
        r.skip_tags()?;
        if !ps.is_empty() {
            parts.insert(topic, ps);
        }
    }
    Ok(parts)
}

fn state_code(state: MemberState) -> i8 {
    match state {
        MemberState::Stable => 0,
        MemberState::UnrevokedPartitions => 1,
        MemberState::UnreleasedPartitions => 2,
    }
}

/// The records that describe `group` now.
pub fn image(group: &ConsumerGroup) -> io::Result<Image> {
    let id = group.id.as_str();
    let mut image = Image::new();
    image.insert(
        key(GROUP_METADATA, id, None)?,
        value(|buf| {
            buf.put_i32(group.epoch);
            // One tagged field: the subscription digest (8 bytes).
            put_uvarint(buf, 1);
            put_uvarint(buf, METADATA_HASH_TAG);
            put_uvarint(buf, 8);
            buf.put_i64(group.subscription_hash);
        }),
    );
    image.insert(
        key(TARGET_METADATA, id, None)?,
        value(|buf| {
            buf.put_i32(group.assignment_epoch);
            put_no_tags(buf);
        }),
    );
    for member in group.members.values() {
        let m = Some(member.id.as_str());
        image.insert(
            key(MEMBER_METADATA, id, m)?,
            value(|buf| member.subscription().encode(buf)),
        );
        image.insert(
            key(TARGET_MEMBER, id, m)?,
            value(|buf| {
                put_partitions(buf, &group.target_of(&member.id));
                put_no_tags(buf);
            }),
        );
        let current = &member.assignment;
        image.insert(
            key(CURRENT_ASSIGNMENT, id, m)?,
            value(|buf| {
                buf.put_i32(current.epoch);
                buf.put_i32(current.previous_epoch);
                buf.put_i8(state_code(current.state));
                put_partitions(buf, &current.assigned);
                put_partitions(buf, &current.revoking);
                put_no_tags(buf);
            }),
        );
    }
    Ok(image)
}

/// The records to write to go from `before` to `after`: changed and new records, and
/// tombstones for the ones gone. The group's own metadata record goes last on a
/// deletion (as Kafka writes it), so a replay never sees members of a deleted group.
pub fn changes(before: &Image, after: &Image) -> Vec<(Bytes, Option<Bytes>)> {
    let mut out: Vec<(Bytes, Option<Bytes>)> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    let mut gone: Vec<(Bytes, Option<Bytes>)> = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .map(|k| (k.clone(), None))
        .collect();
    // Keys start with their record type: the group metadata record (3) sorts first.
    gone.reverse();
    out.extend(gone);
    out
}

/// Replays one `__consumer_offsets` record into `groups`; `false` if it is not a
/// consumer group record. An unreadable value is an error: the caller drops the group.
pub fn replay(
    groups: &mut BTreeMap<String, StoredGroup>,
    key_bytes: &[u8],
    value_bytes: Option<&[u8]>,
) -> Result<bool, (String, io::Error)> {
    let mut k = Reader(key_bytes);
    let Ok(kind) = k.i16() else {
        return Ok(false);
    };
    if !matches!(
        kind,
        GROUP_METADATA | MEMBER_METADATA | TARGET_METADATA | TARGET_MEMBER | CURRENT_ASSIGNMENT
    ) {
        return Ok(false);
    }
    let Ok(group) = k.string() else {
        return Ok(false);
    };
    let member = match kind {
        GROUP_METADATA | TARGET_METADATA => None,
        _ => match k.string() {
            Ok(member) => Some(member),
            Err(_) => return Ok(false),
        },
    };
    apply(groups, kind, &group, member, value_bytes).map_err(|e| (group, e))?;
    Ok(true)
}

fn apply(
    groups: &mut BTreeMap<String, StoredGroup>,
    kind: i16,
    group: &str,
    member: Option<String>,
    value_bytes: Option<&[u8]>,
) -> io::Result<()> {
    let Some(bytes) = value_bytes else {
        // A tombstone.
        match (kind, member) {
            (GROUP_METADATA, _) => {
                groups.remove(group);
            }
            (_, Some(member)) => {
                if let Some(stored) = groups.get_mut(group) {
                    let entry = stored.members.entry(member.clone()).or_default();
                    match kind {
                        MEMBER_METADATA => entry.subscription = None,
                        TARGET_MEMBER => entry.target = None,
                        _ => entry.current = None,
                    }
                    if entry.subscription.is_none()
                        && entry.target.is_none()
                        && entry.current.is_none()
                    {
                        stored.members.remove(&member);
                    }
                }
            }
            _ => {}
        }
        return Ok(());
    };
    let mut r = Reader(bytes);
    if r.i16()? != VALUE_VERSION {
        return Err(invalid("unknown consumer group record version"));
    }
    let stored = groups.entry(group.to_string()).or_default();
    match (kind, member) {
        (GROUP_METADATA, _) => {
            stored.epoch = Some(r.i32()?);
            for _ in 0..r.uvarint()? {
                let tag = r.uvarint()?;
                let size = r.uvarint()?;
                if tag == METADATA_HASH_TAG && size == 8 {
                    stored.subscription_hash = r.i64()?;
                } else {
                    r.skip(usize::try_from(size).map_err(|_| invalid("tag too long"))?)?;
                }
            }
        }
        (TARGET_METADATA, _) => stored.assignment_epoch = r.i32()?,
        (MEMBER_METADATA, Some(member)) => {
            let instance_id = r.compact_nullable_string()?;
            let rack_id = r.compact_nullable_string()?;
            let client_id = r.compact_string()?;
            let client_host = r.compact_string()?;
            let mut topic_names = Vec::new();
            for _ in 0..r.compact_len()?.unwrap_or(0) {
                topic_names.push(r.compact_string()?);
            }
            let subscription = StoredSubscription {
                instance_id,
                rack_id,
                client_id,
                client_host,
                topic_names,
                topic_regex: r.compact_nullable_string()?,
                rebalance_timeout_ms: r.i32()?,
                server_assignor: r.compact_nullable_string()?,
            };
            stored.members.entry(member).or_default().subscription = Some(subscription);
        }
        (TARGET_MEMBER, Some(member)) => {
            stored.members.entry(member).or_default().target = Some(read_partitions(&mut r)?);
        }
        (CURRENT_ASSIGNMENT, Some(member)) => {
            let epoch = r.i32()?;
            let previous_epoch = r.i32()?;
            let state = match r.i8()? {
                0 => MemberState::Stable,
                1 => MemberState::UnrevokedPartitions,
                2 => MemberState::UnreleasedPartitions,
                _ => return Err(invalid("unknown member state")),
            };
            let assigned = read_partitions(&mut r)?;
            let revoking = read_partitions(&mut r)?;
            stored.members.entry(member).or_default().current = Some(MemberAssignment {
                epoch,
                previous_epoch,
                state,
                assigned,
                revoking,
            });
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::consumer::{ConsumerGroupSettings, Heartbeat, TopicInfo};

    fn group() -> ConsumerGroup {
        let settings = ConsumerGroupSettings {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
        };
        let mut group = ConsumerGroup::new("g", settings);
        let topics = BTreeMap::from([(
            "t".to_string(),
            TopicInfo {
                id: uuid::Uuid::from_u128(3),
                partitions: 3,
            },
        )]);
        for member in ["a", "b"] {
            let join = Heartbeat {
                member_id: member.into(),
                rebalance_timeout_ms: 500,
                topic_names: Some(vec!["t".into()]),
                topic_regex: (member == "b").then(|| "x.*".to_string()),
                ..Heartbeat::default()
            };
            group.heartbeat(join, &topics, 0).unwrap();
        }
        group
    }

    #[test]
    fn a_group_survives_its_records() {
        let before = group();
        let mut stored = BTreeMap::new();
        for (key, value) in changes(&Image::new(), &image(&before).unwrap()) {
            assert!(replay(&mut stored, &key, value.as_deref()).unwrap());
        }
        let after =
            ConsumerGroup::restore("g", before.settings, stored.remove("g").unwrap(), 9).unwrap();
        assert_eq!(image(&after).unwrap(), image(&before).unwrap());

        // Deleting the group writes tombstones, its own metadata last.
        let gone = changes(&image(&before).unwrap(), &Image::new());
        assert!(gone.iter().all(|(_, v)| v.is_none()));
        assert_eq!(gone.last().unwrap().0[..2], GROUP_METADATA.to_be_bytes());
        let mut stored = BTreeMap::new();
        for (key, value) in changes(&Image::new(), &image(&before).unwrap())
            .into_iter()
            .chain(gone)
        {
            replay(&mut stored, &key, value.as_deref()).unwrap();
        }
        assert!(stored.is_empty());
    }

    #[test]
    fn damaged_records_are_errors_and_other_records_are_not_ours() {
        let image = image(&group()).unwrap();
        let mut stored = BTreeMap::new();
        for (key, value) in &image {
            for cut in 0..value.len() {
                // Never a panic; a truncated value is an error (or, cut at a boundary of
                // trailing optional data, still a record).
                let _ = replay(&mut stored, key, Some(&value[..cut]));
            }
        }
        let offset_key = [0u8, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 0];
        assert!(!replay(&mut stored, &offset_key, None).unwrap());
        assert!(!replay(&mut stored, &[0], None).unwrap());
    }
}
