//! Group metadata as `__consumer_offsets` stores it: the members, generation, protocol and
//! assignments of a group, in Kafka's record schemas (`GroupMetadataKey` v2,
//! `GroupMetadataValue` v3). The coordinator writes a snapshot whenever a generation
//! settles (every member has its assignment) and when the group empties, so a coordinator
//! that takes over a group resumes it at that generation instead of forcing every member
//! to rejoin.

use std::io;

use bytes::{BufMut, Bytes, BytesMut};

use crate::schema::{invalid, put_bytes, put_nullable_string, put_string, Reader};

/// `GroupMetadataKey` schema version (0 and 1 are offset commit keys).
pub const GROUP_KEY_VERSION: i16 = 2;
/// `GroupMetadataValue` schema version written (v3: with static member ids).
const GROUP_VALUE_VERSION: i16 = 3;

/// A group as stored: enough to resume it at its generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<MemberSnapshot>,
}

/// A member as stored: its subscription is its metadata for the chosen protocol.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSnapshot {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// The record key of `group`'s metadata.
pub fn encode_key(group: &str) -> io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(4 + group.len());
    buf.put_i16(GROUP_KEY_VERSION);
    put_string(&mut buf, group)?;
    Ok(buf.freeze())
}

/// The group a record key names, if it is a group metadata key.
pub fn decode_key(bytes: &[u8]) -> Option<String> {
    let mut reader = Reader(bytes);
    if reader.i16().ok()? != GROUP_KEY_VERSION {
        return None;
    }
    reader.string().ok()
}

impl GroupSnapshot {
    /// The record value, in `GroupMetadataValue` v3.
    pub fn encode(&self) -> io::Result<Bytes> {
        let mut buf = BytesMut::with_capacity(64 + self.members.len() * 128);
        buf.put_i16(GROUP_VALUE_VERSION);
        put_string(&mut buf, &self.protocol_type)?;
        buf.put_i32(self.generation);
        put_nullable_string(&mut buf, self.protocol.as_deref())?;
        put_nullable_string(&mut buf, self.leader.as_deref())?;
        buf.put_i64(self.state_timestamp_ms);
        let count = i32::try_from(self.members.len()).map_err(|_| invalid("too many members"))?;
        buf.put_i32(count);
        for member in &self.members {
            put_string(&mut buf, &member.member_id)?;
            put_nullable_string(&mut buf, member.instance_id.as_deref())?;
            put_string(&mut buf, &member.client_id)?;
            put_string(&mut buf, &member.client_host)?;
            buf.put_i32(member.rebalance_timeout_ms);
            buf.put_i32(member.session_timeout_ms);
            put_bytes(&mut buf, &member.subscription)?;
            put_bytes(&mut buf, &member.assignment)?;
        }
        Ok(buf.freeze())
    }

    /// A snapshot from any `GroupMetadataValue` version Kafka writes without tagged
    /// fields (0 to 3).
    pub fn decode(bytes: &[u8]) -> io::Result<GroupSnapshot> {
        let mut reader = Reader(bytes);
        let version = reader.i16()?;
        if !(0..=3).contains(&version) {
            return Err(invalid("unknown group metadata version"));
        }
        let protocol_type = reader.string()?;
        let generation = reader.i32()?;
        let protocol = reader.nullable_string()?;
        let leader = reader.nullable_string()?;
        let state_timestamp_ms = if version >= 2 { reader.i64()? } else { -1 };
        let count = reader.i32()?.max(0);
        let mut members = Vec::with_capacity(count.min(1024) as usize);
        for _ in 0..count {
            let member_id = reader.string()?;
            let instance_id = if version >= 3 {
                reader.nullable_string()?
            } else {
                None
            };
            let client_id = reader.string()?;
            let client_host = reader.string()?;
            let rebalance_timeout_ms = if version >= 1 { reader.i32()? } else { -1 };
            let session_timeout_ms = reader.i32()?;
            let rebalance_timeout_ms = if version >= 1 {
                rebalance_timeout_ms
            } else {
                session_timeout_ms
            };
            members.push(MemberSnapshot {
                member_id,
                instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms,
                session_timeout_ms,
                subscription: reader.bytes()?,
                assignment: reader.bytes()?,
            });
        }
        Ok(GroupSnapshot {
            protocol_type,
            generation,
            protocol,
            leader,
            state_timestamp_ms,
            members,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot() -> GroupSnapshot {
        GroupSnapshot {
            protocol_type: "consumer".into(),
            generation: 7,
            protocol: Some("range".into()),
            leader: Some("a-1".into()),
            state_timestamp_ms: 1_700_000_000_000,
            members: vec![
                MemberSnapshot {
                    member_id: "a-1".into(),
                    instance_id: Some("a".into()),
                    client_id: "client".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"assigned"),
                },
                MemberSnapshot {
                    member_id: "b-2".into(),
                    instance_id: None,
                    client_id: "client".into(),
                    client_host: "/127.0.0.2".into(),
                    rebalance_timeout_ms: 300_000,
                    session_timeout_ms: 45_000,
                    subscription: Bytes::new(),
                    assignment: Bytes::new(),
                },
            ],
        }
    }

    #[test]
    fn snapshots_round_trip_in_kafkas_schema() {
        let value = snapshot().encode().unwrap();
        assert_eq!(&value[..2], &[0, 3], "GroupMetadataValue v3");
        assert_eq!(GroupSnapshot::decode(&value).unwrap(), snapshot());
        let key = encode_key("my-group").unwrap();
        assert_eq!(&key[..], b"\x00\x02\x00\x08my-group");
        assert_eq!(decode_key(&key).as_deref(), Some("my-group"));
        // Offset commit keys (v0, v1) are not group keys.
        assert_eq!(decode_key(b"\x00\x01\x00\x01g"), None);
    }

    #[test]
    fn empty_groups_and_truncated_values() {
        let empty = GroupSnapshot {
            protocol: None,
            leader: None,
            members: vec![],
            ..snapshot()
        };
        assert_eq!(
            GroupSnapshot::decode(&empty.encode().unwrap()).unwrap(),
            empty
        );
        let value = snapshot().encode().unwrap();
        for cut in [0, 1, 5, value.len() - 1] {
            assert!(
                GroupSnapshot::decode(&value[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
}
