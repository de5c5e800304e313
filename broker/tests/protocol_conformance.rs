//! Every API at every version the broker serves, on the wire: for each, requests that take
//! the success path and the error paths a client can reach, each encoded exactly as a
//! client of that version sends it. Every response must arrive (the broker never closes
//! the connection on a valid request), decode at the request's version, carry the
//! request's correlation id, and report no UNKNOWN_SERVER_ERROR.
//!
//! A response field that exists only in other versions, set by a handler, makes the
//! response unencodable at that version: this is the test that catches it.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tributary_broker::protocol::versions::SUPPORTED;

const TOPIC: &str = "t";
const PARTITIONS: i32 = 2;

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn topic(name: &str) -> TopicName {
    TopicName(s(name))
}

fn group(name: &str) -> GroupId {
    GroupId(s(name))
}

/// One connection to the broker, speaking raw frames.
struct Connection {
    stream: TcpStream,
    correlation: i32,
}

impl Connection {
    fn open(port: u16) -> Connection {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Connection {
            stream,
            correlation: 0,
        }
    }

    /// Sends `request` at `version` and returns the decoded response, or why there is none.
    fn call(
        &mut self,
        key: ApiKey,
        version: i16,
        request: &RequestKind,
    ) -> Result<ResponseKind, String> {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(s("conformance")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, key.request_header_version(version))
            .map_err(|e| format!("request header: {e}"))?;
        request
            .encode(&mut body, version)
            .map_err(|e| format!("the request itself does not encode: {e}"))?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream
            .write_all(&frame)
            .map_err(|e| format!("send: {e}"))?;
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .map_err(|e| format!("no response, the broker closed the connection ({e})"))?;
        let mut response = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream
            .read_exact(&mut response)
            .map_err(|e| format!("truncated response: {e}"))?;
        let mut response = Bytes::from(response);
        let header = ResponseHeader::decode(&mut response, key.response_header_version(version))
            .map_err(|e| format!("response header: {e}"))?;
        if header.correlation_id != self.correlation {
            return Err(format!(
                "correlation id {} for request {}",
                header.correlation_id, self.correlation
            ));
        }
        let decoded = ResponseKind::decode(key, &mut response, version)
            .map_err(|e| format!("response does not decode at v{version}: {e}"))?;
        if response.has_remaining() {
            return Err(format!("{} bytes after the response", response.remaining()));
        }
        Ok(decoded)
    }

    /// Like [`Connection::call`], panicking on failure: for setting up state.
    fn expect(&mut self, key: ApiKey, version: i16, request: RequestKind) -> ResponseKind {
        self.call(key, version, &request)
            .unwrap_or_else(|e| panic!("{key:?} v{version}: {e}"))
    }
}

/// A record batch of `count` small records, as a producer sends it.
fn batch(count: i64) -> Bytes {
    let records: Vec<Record> = (0..count)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i,
            sequence: -1,
            timestamp: 1_700_000_000_000 + i,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("v{i}"))),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// A consumer's JoinGroup metadata: a `ConsumerProtocolSubscription` to `t`.
fn subscription() -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(1);
    ConsumerProtocolSubscription::default()
        .with_topics(vec![s(TOPIC)])
        .encode(&mut buf, 1)
        .unwrap();
    buf.freeze()
}

fn join_request(group_id: &str, member_id: &str, instance: Option<&str>) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(group(group_id))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(s(member_id))
        .with_group_instance_id(instance.map(s))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default(
        )
        .with_name(s("range"))
        .with_metadata(subscription())])
}

/// A stable group `group_id` with one member (static when `instance` is given):
/// `(member id, generation)`.
fn stable_member(conn: &mut Connection, group_id: &str, instance: Option<&str>) -> (String, i32) {
    let ResponseKind::JoinGroup(first) = conn.expect(
        ApiKey::JoinGroup,
        5,
        RequestKind::JoinGroup(join_request(group_id, "", instance)),
    ) else {
        unreachable!()
    };
    let member_id = if first.error_code == 0 {
        first.member_id.to_string()
    } else {
        assert_eq!(first.error_code, 79, "MEMBER_ID_REQUIRED");
        let ResponseKind::JoinGroup(joined) = conn.expect(
            ApiKey::JoinGroup,
            5,
            RequestKind::JoinGroup(join_request(group_id, &first.member_id, instance)),
        ) else {
            unreachable!()
        };
        assert_eq!(joined.error_code, 0, "{joined:?}");
        joined.member_id.to_string()
    };
    let generation = 1;
    let ResponseKind::SyncGroup(synced) = conn.expect(
        ApiKey::SyncGroup,
        3,
        RequestKind::SyncGroup(
            SyncGroupRequest::default()
                .with_group_id(group(group_id))
                .with_generation_id(generation)
                .with_member_id(s(&member_id))
                .with_group_instance_id(instance.map(s))
                .with_assignments(vec![
                    sync_group_request::SyncGroupRequestAssignment::default()
                        .with_member_id(s(&member_id))
                        .with_assignment(Bytes::new()),
                ]),
        ),
    ) else {
        unreachable!()
    };
    assert_eq!(synced.error_code, 0, "{synced:?}");
    (member_id, generation)
}

/// Waits until the group coordinator answers: the offsets topic is created on first use.
fn await_coordinator(conn: &mut Connection) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        conn.expect(
            ApiKey::FindCoordinator,
            3,
            RequestKind::FindCoordinator(FindCoordinatorRequest::default().with_key(s("g"))),
        );
        let ResponseKind::OffsetFetch(response) = conn.expect(
            ApiKey::OffsetFetch,
            7,
            RequestKind::OffsetFetch(
                OffsetFetchRequest::default()
                    .with_group_id(group("g"))
                    .with_topics(None),
            ),
        ) else {
            unreachable!()
        };
        if response.error_code == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no coordinator: {response:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Committed offsets for `t` partition 0 in the (empty) group `group_id`.
fn commit_standalone(conn: &mut Connection, group_id: &str) {
    let ResponseKind::OffsetCommit(response) = conn.expect(
        ApiKey::OffsetCommit,
        8,
        RequestKind::OffsetCommit(
            OffsetCommitRequest::default()
                .with_group_id(group(group_id))
                .with_generation_id_or_member_epoch(-1)
                .with_topics(vec![commit_topic(TOPIC, 1)]),
        ),
    ) else {
        unreachable!()
    };
    assert_eq!(
        response.topics[0].partitions[0].error_code, 0,
        "{response:?}"
    );
}

fn commit_topic(name: &str, offset: i64) -> offset_commit_request::OffsetCommitRequestTopic {
    offset_commit_request::OffsetCommitRequestTopic::default()
        .with_name(topic(name))
        .with_partitions(vec![
            offset_commit_request::OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_metadata(Some(s("meta"))),
        ])
}

/// The requests sent to one API at one version, each with what it exercises.
type Cases = Vec<(&'static str, RequestKind)>;

struct Fixture {
    topic_id: uuid::Uuid,
}

fn produce_cases(v: i16) -> Cases {
    let produce = |name: &str, partition: i32, records: Bytes| {
        RequestKind::Produce(
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(5000)
                .with_topic_data(vec![produce_request::TopicProduceData::default()
                    .with_name(topic(name))
                    .with_partition_data(vec![
                        produce_request::PartitionProduceData::default()
                            .with_index(partition)
                            .with_records(Some(records)),
                    ])]),
        )
    };
    let _ = v;
    vec![
        ("appended", produce(TOPIC, 0, batch(3))),
        ("unknown topic", produce("nope", 0, batch(1))),
        ("unknown partition", produce(TOPIC, 99, batch(1))),
        (
            "corrupt batch",
            produce(TOPIC, 1, Bytes::from_static(&[0u8; 70])),
        ),
    ]
}

fn fetch_cases(v: i16, f: &Fixture, conn: &mut Connection) -> Cases {
    let session = |request: FetchRequest, id: i32, epoch: i32| {
        RequestKind::Fetch(request.with_session_id(id).with_session_epoch(epoch))
    };
    let fetch_request = |name: &str, id: uuid::Uuid, offset: i64, leader_epoch: i32| {
        let mut fetched = fetch_request::FetchTopic::default().with_partitions(vec![
            fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)
                .with_current_leader_epoch(if v >= 9 { leader_epoch } else { -1 }),
        ]);
        if v >= 13 {
            fetched = fetched.with_topic_id(id);
        } else {
            fetched = fetched.with_topic(topic(name));
        }
        let mut request = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![fetched]);
        if v >= 7 {
            request = request.with_session_epoch(-1);
        }
        request
    };
    let fetch = |name: &str, id: uuid::Uuid, offset: i64, leader_epoch: i32| {
        RequestKind::Fetch(fetch_request(name, id, offset, leader_epoch))
    };
    let mut cases = vec![
        ("records", fetch(TOPIC, f.topic_id, 0, -1)),
        ("out of range", fetch(TOPIC, f.topic_id, 1_000_000, -1)),
        ("unknown topic", fetch("nope", uuid::Uuid::new_v4(), 0, -1)),
    ];
    if v >= 9 {
        cases.push(("fenced epoch", fetch(TOPIC, f.topic_id, 0, 99)));
    }
    if v >= 7 {
        // KIP-227: a session opened here, then its next incremental fetches.
        let opened = session(fetch_request(TOPIC, f.topic_id, 0, -1), 0, 0);
        let ResponseKind::Fetch(response) = conn.expect(ApiKey::Fetch, v, opened) else {
            unreachable!()
        };
        assert!(
            response.session_id > 0,
            "v{v} opened a session: {response:?}"
        );
        let id = response.session_id;
        let none = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_min_bytes(1);
        cases.push(("incremental, nothing new", session(none.clone(), id, 1)));
        cases.push((
            "incremental, a new position",
            session(fetch_request(TOPIC, f.topic_id, 3, -1), id, 2),
        ));
        cases.push(("epoch out of order", session(none.clone(), id, 9)));
        cases.push(("unknown session", session(none.clone(), i32::MAX, 1)));
        cases.push(("session closed", session(none.clone(), id, -1)));
        cases.push((
            "new session",
            session(fetch_request(TOPIC, f.topic_id, 0, -1), 0, 0),
        ));
    }
    cases
}

fn list_offsets_cases(v: i16) -> Cases {
    let list = |name: &str, timestamp: i64, leader_epoch: i32| {
        RequestKind::ListOffsets(
            ListOffsetsRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
                    .with_name(topic(name))
                    .with_partitions(vec![
                        list_offsets_request::ListOffsetsPartition::default()
                            .with_partition_index(0)
                            .with_timestamp(timestamp)
                            .with_current_leader_epoch(if v >= 4 { leader_epoch } else { -1 }),
                    ])]),
        )
    };
    let mut cases = vec![
        ("latest", list(TOPIC, -1, -1)),
        ("earliest", list(TOPIC, -2, -1)),
        ("by timestamp", list(TOPIC, 1_700_000_000_001, -1)),
        ("unknown topic", list("nope", -1, -1)),
    ];
    if v >= 4 {
        cases.push(("unknown leader epoch", list(TOPIC, -1, 99)));
    }
    if v >= 7 {
        cases.push(("max timestamp", list(TOPIC, -3, -1)));
    }
    cases
}

fn metadata_cases(v: i16, f: &Fixture) -> Cases {
    let by_name = |names: &[&str]| {
        let topics = names
            .iter()
            .map(|n| metadata_request::MetadataRequestTopic::default().with_name(Some(topic(n))))
            .collect();
        let mut request = MetadataRequest::default().with_topics(Some(topics));
        if v >= 8 {
            request = request.with_include_topic_authorized_operations(true);
        }
        if (8..=10).contains(&v) {
            request = request.with_include_cluster_authorized_operations(true);
        }
        if v >= 4 {
            request = request.with_allow_auto_topic_creation(false);
        }
        RequestKind::Metadata(request)
    };
    let all = RequestKind::Metadata(if v == 0 {
        MetadataRequest::default().with_topics(Some(vec![]))
    } else {
        MetadataRequest::default().with_topics(None)
    });
    let mut cases = vec![
        ("all topics", all),
        ("one topic", by_name(&[TOPIC])),
        // Versions 0-3 create unknown topics (auto.create.topics.enable).
        (
            "unknown and invalid names",
            by_name(&[&format!("maybe-created-{v}"), "bad name!"]),
        ),
    ];
    if v >= 10 {
        let by_id = |id| {
            RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![
                metadata_request::MetadataRequestTopic::default().with_topic_id(id),
            ])))
        };
        cases.push(("by topic id", by_id(f.topic_id)));
        cases.push(("unknown topic id", by_id(uuid::Uuid::new_v4())));
    }
    cases
}

fn offset_commit_cases(v: i16, conn: &mut Connection) -> Cases {
    let member_group = format!("commit-member-{v}");
    let (member, generation) = stable_member(conn, &member_group, None);
    let commit = |group_id: &str, member: &str, generation: i32, name: &str| {
        let mut request = OffsetCommitRequest::default()
            .with_group_id(group(group_id))
            .with_topics(vec![commit_topic(name, 2)]);
        if v >= 1 {
            request = request
                .with_generation_id_or_member_epoch(generation)
                .with_member_id(s(member));
        }
        if (2..=4).contains(&v) {
            request = request.with_retention_time_ms(-1);
        }
        RequestKind::OffsetCommit(request)
    };
    vec![
        (
            "standalone",
            commit(&format!("commit-solo-{v}"), "", -1, TOPIC),
        ),
        ("member", commit(&member_group, &member, generation, TOPIC)),
        (
            "unknown topic",
            commit(&format!("commit-solo-{v}"), "", -1, "nope"),
        ),
        (
            "illegal generation",
            commit(&member_group, &member, generation + 5, TOPIC),
        ),
        (
            "unknown member",
            commit(&member_group, "ghost", generation, TOPIC),
        ),
    ]
}

fn offset_fetch_cases(v: i16, conn: &mut Connection) -> Cases {
    let committed = format!("fetch-{v}");
    commit_standalone(conn, &committed);
    let fetch = |group_id: &str, partitions: Option<Vec<(&str, i32)>>| {
        if v >= 8 {
            let topics = partitions.map(|list| {
                list.into_iter()
                    .map(|(name, p)| {
                        offset_fetch_request::OffsetFetchRequestTopics::default()
                            .with_name(topic(name))
                            .with_partition_indexes(vec![p])
                    })
                    .collect()
            });
            return RequestKind::OffsetFetch(OffsetFetchRequest::default().with_groups(vec![
                offset_fetch_request::OffsetFetchRequestGroup::default()
                    .with_group_id(group(group_id))
                    .with_topics(topics),
            ]));
        }
        let topics = partitions.map(|list| {
            list.into_iter()
                .map(|(name, p)| {
                    offset_fetch_request::OffsetFetchRequestTopic::default()
                        .with_name(topic(name))
                        .with_partition_indexes(vec![p])
                })
                .collect()
        });
        RequestKind::OffsetFetch(
            OffsetFetchRequest::default()
                .with_group_id(group(group_id))
                .with_topics(topics),
        )
    };
    let mut cases = vec![
        ("committed", fetch(&committed, Some(vec![(TOPIC, 0)]))),
        ("never committed", fetch(&committed, Some(vec![(TOPIC, 1)]))),
        ("unknown group", fetch("nobody", Some(vec![(TOPIC, 0)]))),
        ("unknown topic", fetch(&committed, Some(vec![("nope", 0)]))),
    ];
    if v >= 2 {
        cases.push(("every partition", fetch(&committed, None)));
    }
    cases
}

fn find_coordinator_cases(v: i16) -> Cases {
    let find = |key: &str, key_type: i8| {
        let mut request = FindCoordinatorRequest::default();
        if v >= 4 {
            request = request.with_coordinator_keys(vec![s(key)]);
        } else {
            request = request.with_key(s(key));
        }
        if v >= 1 {
            request = request.with_key_type(key_type);
        }
        RequestKind::FindCoordinator(request)
    };
    let mut cases = vec![("group", find("g", 0))];
    if v >= 1 {
        cases.push(("transaction", find("txn", 1)));
    }
    cases
}

fn join_group_cases(v: i16) -> Cases {
    let join = |group_id: &str, member: &str, instance: Option<&str>, session: i32| {
        let mut request = join_request(group_id, member, instance).with_session_timeout_ms(session);
        if v < 5 {
            request = request.with_group_instance_id(None);
        }
        if v < 1 {
            request = request.with_rebalance_timeout_ms(-1);
        }
        RequestKind::JoinGroup(request)
    };
    let mut cases = vec![
        ("new member", join(&format!("join-{v}"), "", None, 10_000)),
        (
            "unknown member",
            join(&format!("join-{v}"), "ghost", None, 10_000),
        ),
        (
            "invalid session timeout",
            join(&format!("join-{v}"), "", None, 1),
        ),
        (
            "no protocols",
            RequestKind::JoinGroup({
                let mut request =
                    join_request(&format!("join-none-{v}"), "", None).with_protocols(vec![]);
                if v < 5 {
                    request = request.with_group_instance_id(None);
                }
                request
            }),
        ),
    ];
    if v >= 5 {
        cases.push((
            "static member",
            join(&format!("join-static-{v}"), "", Some("i"), 10_000),
        ));
        cases.push((
            "static member, restarted",
            join(&format!("join-static-{v}"), "", Some("i"), 10_000),
        ));
    }
    cases
}

fn heartbeat_cases(v: i16, conn: &mut Connection) -> Cases {
    let group_id = format!("heartbeat-{v}");
    let instance = (v >= 3).then_some("hb");
    let (member, generation) = stable_member(conn, &group_id, instance);
    let beat = |member: &str, generation: i32, instance: Option<&str>| {
        RequestKind::Heartbeat(
            HeartbeatRequest::default()
                .with_group_id(group(&group_id))
                .with_member_id(s(member))
                .with_generation_id(generation)
                .with_group_instance_id(instance.map(s)),
        )
    };
    let mut cases = vec![
        ("member", beat(&member, generation, instance)),
        (
            "illegal generation",
            beat(&member, generation + 1, instance),
        ),
        ("unknown member", beat("ghost", generation, None)),
    ];
    if v >= 3 {
        cases.push((
            "fenced instance",
            beat("old-incarnation", generation, instance),
        ));
    }
    cases
}

fn sync_group_cases(v: i16, conn: &mut Connection) -> Cases {
    let group_id = format!("sync-{v}");
    let (member, generation) = stable_member(conn, &group_id, None);
    let sync = |member: &str, generation: i32, protocol_type: Option<&str>| {
        let mut request = SyncGroupRequest::default()
            .with_group_id(group(&group_id))
            .with_member_id(s(member))
            .with_generation_id(generation);
        if v >= 5 {
            request = request
                .with_protocol_type(protocol_type.map(s))
                .with_protocol_name(Some(s("range")));
        }
        RequestKind::SyncGroup(request)
    };
    let mut cases = vec![
        ("stable member", sync(&member, generation, Some("consumer"))),
        (
            "illegal generation",
            sync(&member, generation + 1, Some("consumer")),
        ),
        (
            "unknown member",
            sync("ghost", generation, Some("consumer")),
        ),
    ];
    if v >= 5 {
        cases.push((
            "inconsistent protocol",
            sync(&member, generation, Some("connect")),
        ));
    }
    cases
}

fn leave_group_cases(v: i16, conn: &mut Connection) -> Cases {
    let group_id = format!("leave-{v}");
    let instance = (v >= 3).then_some("leaver");
    let (member, _) = stable_member(conn, &group_id, instance);
    let leave = |member: &str, instance: Option<&str>| {
        let request = LeaveGroupRequest::default().with_group_id(group(&group_id));
        RequestKind::LeaveGroup(if v >= 3 {
            request.with_members(vec![leave_group_request::MemberIdentity::default()
                .with_member_id(s(member))
                .with_group_instance_id(instance.map(s))])
        } else {
            request.with_member_id(s(member))
        })
    };
    let mut cases = vec![("unknown member", leave("ghost", None))];
    if v >= 3 {
        cases.push(("fenced instance", leave("old-incarnation", instance)));
        cases.push(("by instance id", leave("", instance)));
    } else {
        cases.push(("member", leave(&member, None)));
    }
    cases
}

fn describe_groups_cases(v: i16, conn: &mut Connection) -> Cases {
    let group_id = format!("describe-{v}");
    stable_member(conn, &group_id, None);
    let mut request =
        DescribeGroupsRequest::default().with_groups(vec![group(&group_id), group("nobody")]);
    if v >= 3 {
        request = request.with_include_authorized_operations(true);
    }
    vec![(
        "stable and unknown groups",
        RequestKind::DescribeGroups(request),
    )]
}

fn list_groups_cases(v: i16) -> Cases {
    let mut cases = vec![("all", RequestKind::ListGroups(ListGroupsRequest::default()))];
    if v >= 4 {
        cases.push((
            "stable ones",
            RequestKind::ListGroups(
                ListGroupsRequest::default().with_states_filter(vec![s("Stable")]),
            ),
        ));
    }
    if v >= 5 {
        cases.push((
            "consumer ones",
            RequestKind::ListGroups(
                ListGroupsRequest::default().with_types_filter(vec![s("classic")]),
            ),
        ));
    }
    cases
}

fn api_versions_cases(v: i16) -> Cases {
    let request = if v >= 3 {
        ApiVersionsRequest::default()
            .with_client_software_name(s("conformance"))
            .with_client_software_version(s("1.0"))
    } else {
        ApiVersionsRequest::default()
    };
    vec![("versions", RequestKind::ApiVersions(request))]
}

fn create_topics_cases(v: i16) -> Cases {
    let create = |name: &str, partitions: i32, rf: i16, validate_only: bool| {
        let mut request = CreateTopicsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(topic(name))
                .with_num_partitions(partitions)
                .with_replication_factor(rf)
                .with_configs(vec![
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(s("retention.ms"))
                        .with_value(Some(s("60000"))),
                ])]);
        if v >= 1 {
            request = request.with_validate_only(validate_only);
        }
        RequestKind::CreateTopics(request)
    };
    let mut cases = vec![
        ("created", create(&format!("created-{v}"), 1, 1, false)),
        ("exists", create(TOPIC, 1, 1, false)),
        ("invalid name", create("bad name!", 1, 1, false)),
        (
            "replication factor above brokers",
            create("too-many", 1, 5, false),
        ),
        ("invalid partitions", create("no-partitions", -5, 1, false)),
        ("validate only", create("validated", 1, 1, true)),
    ];
    if v >= 4 {
        cases.push((
            "broker defaults",
            create(&format!("defaults-{v}"), -1, -1, false),
        ));
    }
    cases
}

fn delete_topics_cases(v: i16) -> Cases {
    let delete = |name: &str| {
        RequestKind::DeleteTopics(if v >= 6 {
            DeleteTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(vec![
                    delete_topics_request::DeleteTopicState::default().with_name(Some(topic(name)))
                ])
        } else {
            DeleteTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topic_names(vec![topic(name)])
        })
    };
    let mut cases = vec![
        ("deleted", delete(&format!("created-{}", v + 1))),
        ("unknown topic", delete("nope")),
    ];
    if v >= 6 {
        cases.push((
            "unknown topic id",
            RequestKind::DeleteTopics(DeleteTopicsRequest::default().with_topics(vec![
                delete_topics_request::DeleteTopicState::default()
                    .with_topic_id(uuid::Uuid::new_v4()),
            ])),
        ));
    }
    cases
}

fn delete_records_cases() -> Cases {
    let delete = |name: &str, offset: i64| {
        RequestKind::DeleteRecords(
            DeleteRecordsRequest::default()
                .with_timeout_ms(5000)
                .with_topics(vec![delete_records_request::DeleteRecordsTopic::default()
                    .with_name(topic(name))
                    .with_partitions(vec![
                        delete_records_request::DeleteRecordsPartition::default()
                            .with_partition_index(1)
                            .with_offset(offset),
                    ])]),
        )
    };
    vec![
        ("to the high watermark", delete(TOPIC, -1)),
        ("past the end", delete(TOPIC, 1_000_000)),
        ("unknown topic", delete("nope", 0)),
    ]
}

fn init_producer_id_cases(v: i16) -> Cases {
    let mut cases = vec![(
        "idempotent",
        RequestKind::InitProducerId(
            InitProducerIdRequest::default()
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ),
    )];
    cases.push((
        "transactional",
        RequestKind::InitProducerId(
            InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s("txn"))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        ),
    ));
    if v >= 3 {
        cases.push((
            "epoch bump of an unknown producer",
            RequestKind::InitProducerId(
                InitProducerIdRequest::default()
                    .with_transaction_timeout_ms(60_000)
                    .with_producer_id(ProducerId(123_456))
                    .with_producer_epoch(3),
            ),
        ));
    }
    cases
}

fn add_partitions_to_txn_cases() -> Cases {
    let add = |topic_name: &str| {
        RequestKind::AddPartitionsToTxn(
            AddPartitionsToTxnRequest::default()
                .with_v3_and_below_transactional_id(TransactionalId(s("txn-conformance")))
                .with_v3_and_below_producer_id(ProducerId(1))
                .with_v3_and_below_topics(vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                        .with_name(topic(topic_name))
                        .with_partitions(vec![0]),
                ]),
        )
    };
    vec![
        ("unknown producer", add(TOPIC)),
        ("unknown topic", add("no-such-topic")),
    ]
}

fn txn_offset_commit_cases() -> Cases {
    let commit = |topic_name: &str| {
        RequestKind::TxnOffsetCommit(
            TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(s("txn-conformance")))
                .with_group_id(GroupId(s("txn-group")))
                .with_producer_id(ProducerId(1))
                .with_topics(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(topic(topic_name))
                        .with_partitions(vec![
                            txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(0)
                                .with_committed_offset(1),
                        ]),
                ]),
        )
    };
    vec![
        ("offsets of a transaction", commit(TOPIC)),
        ("unknown topic", commit("no-such-topic")),
    ]
}

fn consumer_group_heartbeat_cases(v: i16, f: &Fixture) -> Cases {
    // v0 lets the coordinator name the member; v1 clients name themselves.
    let member = if v == 0 { "" } else { "conformance-member" };
    let beat = |group: &str, member: &str, epoch: i32| {
        ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s(member))
            .with_member_epoch(epoch)
    };
    let join = |group: &str| {
        beat(group, member, 0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![topic(TOPIC)]))
            .with_topic_partitions(Some(vec![]))
    };
    let owned = vec![consumer_group_heartbeat_request::TopicPartitions::default()
        .with_topic_id(f.topic_id)
        .with_partitions(vec![0])];
    let mut cases = vec![
        (
            "join",
            RequestKind::ConsumerGroupHeartbeat(join("cgh-conformance")),
        ),
        (
            "unknown member",
            RequestKind::ConsumerGroupHeartbeat(
                beat("cgh-conformance", "nobody", 3).with_topic_partitions(Some(owned)),
            ),
        ),
        (
            "unsupported assignor",
            RequestKind::ConsumerGroupHeartbeat(
                join("cgh-assignor").with_server_assignor(Some(s("no-such-assignor"))),
            ),
        ),
        (
            "first heartbeat without a subscription",
            RequestKind::ConsumerGroupHeartbeat(beat("cgh-incomplete", "m", 0)),
        ),
        (
            "empty group id",
            RequestKind::ConsumerGroupHeartbeat(join("")),
        ),
        (
            "leave of an unknown member",
            RequestKind::ConsumerGroupHeartbeat(beat("cgh-conformance", "nobody", -1)),
        ),
    ];
    if v >= 1 {
        cases.push((
            "invalid regex",
            RequestKind::ConsumerGroupHeartbeat(
                beat("cgh-regex", "m", 0)
                    .with_rebalance_timeout_ms(30_000)
                    .with_subscribed_topic_regex(Some(s("(")))
                    .with_topic_partitions(Some(vec![])),
            ),
        ));
    }
    cases
}

fn consumer_group_describe_cases() -> Cases {
    vec![(
        "a consumer group, a classic one and an unknown one",
        RequestKind::ConsumerGroupDescribe(
            ConsumerGroupDescribeRequest::default()
                .with_group_ids(vec![
                    GroupId(s("cgh-conformance")),
                    GroupId(s("conformance-group")),
                    GroupId(s("no-such-group")),
                ])
                .with_include_authorized_operations(true),
        ),
    )]
}

fn write_txn_markers_cases() -> Cases {
    let marker = |topic_name: &str| {
        RequestKind::WriteTxnMarkers(WriteTxnMarkersRequest::default().with_markers(vec![
            write_txn_markers_request::WritableTxnMarker::default()
                .with_producer_id(ProducerId(4242))
                .with_transaction_result(false)
                .with_topics(vec![
                    write_txn_markers_request::WritableTxnMarkerTopic::default()
                        .with_name(topic(topic_name))
                        .with_partition_indexes(vec![0]),
                ]),
        ]))
    };
    vec![
        ("abort marker", marker(TOPIC)),
        ("unknown topic", marker("no-such-topic")),
    ]
}

fn offset_for_leader_epoch_cases(v: i16) -> Cases {
    let ask = |name: &str, epoch: i32, current: i32| {
        let mut request = OffsetForLeaderEpochRequest::default().with_topics(vec![
            offset_for_leader_epoch_request::OffsetForLeaderTopic::default()
                .with_topic(topic(name))
                .with_partitions(vec![
                    offset_for_leader_epoch_request::OffsetForLeaderPartition::default()
                        .with_partition(0)
                        .with_leader_epoch(epoch)
                        .with_current_leader_epoch(current),
                ]),
        ]);
        if v >= 3 {
            request = request.with_replica_id(BrokerId(-1));
        }
        RequestKind::OffsetForLeaderEpoch(request)
    };
    vec![
        ("current epoch", ask(TOPIC, 0, -1)),
        ("future epoch", ask(TOPIC, 7, -1)),
        ("fenced", ask(TOPIC, 0, 42)),
        ("unknown topic", ask("nope", 0, -1)),
    ]
}

fn acl_cases(key: ApiKey) -> Cases {
    match key {
        ApiKey::DescribeAcls => vec![(
            "any",
            RequestKind::DescribeAcls(
                DescribeAclsRequest::default()
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1),
            ),
        )],
        ApiKey::CreateAcls => vec![(
            "one",
            RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(vec![
                create_acls_request::AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(s(TOPIC))
                    .with_resource_pattern_type(3)
                    .with_principal(s("User:alice"))
                    .with_host(s("*"))
                    .with_operation(3)
                    .with_permission_type(3),
            ])),
        )],
        _ => vec![(
            "any",
            RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(vec![
                delete_acls_request::DeleteAclsFilter::default()
                    .with_resource_type_filter(1)
                    .with_pattern_type_filter(1)
                    .with_operation(1)
                    .with_permission_type(1),
            ])),
        )],
    }
}

fn describe_configs_cases(v: i16) -> Cases {
    let describe = |resource_type: i8, name: &str, keys: Option<Vec<&str>>| {
        let mut request = DescribeConfigsRequest::default().with_resources(vec![
            describe_configs_request::DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name))
                .with_configuration_keys(keys.map(|k| k.into_iter().map(s).collect())),
        ]);
        if v >= 1 {
            request = request.with_include_synonyms(true);
        }
        if v >= 3 {
            request = request.with_include_documentation(true);
        }
        RequestKind::DescribeConfigs(request)
    };
    vec![
        ("topic", describe(2, TOPIC, None)),
        (
            "some keys",
            describe(2, TOPIC, Some(vec!["retention.ms", "no.such.key"])),
        ),
        ("broker", describe(4, "1", None)),
        ("unknown topic", describe(2, "nope", None)),
        ("invalid broker id", describe(4, "x", None)),
        ("unknown resource type", describe(9, "x", None)),
    ]
}

fn alter_configs_cases() -> Cases {
    let alter = |name: &str, key: &str, value: &str, validate_only: bool| {
        RequestKind::AlterConfigs(
            AlterConfigsRequest::default()
                .with_validate_only(validate_only)
                .with_resources(vec![alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s(name))
                    .with_configs(vec![alter_configs_request::AlterableConfig::default()
                        .with_name(s(key))
                        .with_value(Some(s(value)))])]),
        )
    };
    vec![
        ("altered", alter(TOPIC, "retention.ms", "86400000", false)),
        ("validate only", alter(TOPIC, "retention.ms", "1000", true)),
        ("invalid value", alter(TOPIC, "retention.ms", "soon", false)),
        ("unknown config", alter(TOPIC, "no.such.key", "1", false)),
        ("unknown topic", alter("nope", "retention.ms", "1", false)),
    ]
}

fn incremental_alter_configs_cases() -> Cases {
    let alter = |name: &str, key: &str, operation: i8, value: Option<&str>| {
        RequestKind::IncrementalAlterConfigs(
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s(name))
                    .with_configs(vec![
                        incremental_alter_configs_request::AlterableConfig::default()
                            .with_name(s(key))
                            .with_config_operation(operation)
                            .with_value(value.map(s)),
                    ]),
            ]),
        )
    };
    vec![
        ("set", alter(TOPIC, "retention.ms", 0, Some("86400000"))),
        ("delete", alter(TOPIC, "retention.ms", 1, None)),
        (
            "invalid operation",
            alter(TOPIC, "retention.ms", 9, Some("1")),
        ),
        ("unknown topic", alter("nope", "retention.ms", 0, Some("1"))),
    ]
}

fn describe_log_dirs_cases() -> Cases {
    vec![
        (
            "every partition",
            RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(None)),
        ),
        (
            "one topic and an unknown one",
            RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(Some(
                vec![
                describe_log_dirs_request::DescribableLogDirTopic::default()
                    .with_topic(topic(TOPIC))
                    .with_partitions(vec![0, 1]),
                describe_log_dirs_request::DescribableLogDirTopic::default()
                    .with_topic(topic("nope"))
                    .with_partitions(vec![0]),
            ],
            ))),
        ),
    ]
}

fn create_partitions_cases(v: i16) -> Cases {
    let grow = |name: &str, count: i32, validate_only: bool| {
        RequestKind::CreatePartitions(
            CreatePartitionsRequest::default()
                .with_timeout_ms(10_000)
                .with_validate_only(validate_only)
                .with_topics(vec![
                    create_partitions_request::CreatePartitionsTopic::default()
                        .with_name(topic(name))
                        .with_count(count)
                        .with_assignments(None),
                ]),
        )
    };
    vec![
        ("grown", grow(TOPIC, PARTITIONS + 1 + i32::from(v), false)),
        ("validate only", grow(TOPIC, 50, true)),
        ("fewer partitions", grow(TOPIC, 1, false)),
        ("unknown topic", grow("nope", 3, false)),
    ]
}

fn delete_groups_cases(v: i16, conn: &mut Connection) -> Cases {
    let empty = format!("delete-empty-{v}");
    commit_standalone(conn, &empty);
    let busy = format!("delete-busy-{v}");
    stable_member(conn, &busy, None);
    vec![(
        "empty, busy and unknown groups",
        RequestKind::DeleteGroups(DeleteGroupsRequest::default().with_groups_names(vec![
            group(&empty),
            group(&busy),
            group("nobody"),
        ])),
    )]
}

fn offset_delete_cases(conn: &mut Connection) -> Cases {
    let empty = "offset-delete-empty";
    commit_standalone(conn, empty);
    let busy = "offset-delete-busy";
    stable_member(conn, busy, None);
    let delete = |group_id: &str, name: &str| {
        RequestKind::OffsetDelete(
            OffsetDeleteRequest::default()
                .with_group_id(group(group_id))
                .with_topics(vec![
                    offset_delete_request::OffsetDeleteRequestTopic::default()
                        .with_name(topic(name))
                        .with_partitions(vec![
                            offset_delete_request::OffsetDeleteRequestPartition::default()
                                .with_partition_index(0),
                        ]),
                ]),
        )
    };
    vec![
        ("deleted", delete(empty, TOPIC)),
        ("subscribed topic", delete(busy, TOPIC)),
        ("unknown group", delete("nobody", TOPIC)),
        ("unknown topic", delete(empty, "nope")),
    ]
}

fn describe_cluster_cases(v: i16) -> Cases {
    let _ = v;
    vec![
        (
            "brokers",
            RequestKind::DescribeCluster(DescribeClusterRequest::default()),
        ),
        (
            "with operations",
            RequestKind::DescribeCluster(
                DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
            ),
        ),
    ]
}

fn elect_leaders_cases(v: i16) -> Cases {
    let elect = |election_type: i8, partitions: Option<Vec<(&str, i32)>>| {
        let mut request = ElectLeadersRequest::default()
            .with_timeout_ms(10_000)
            .with_topic_partitions(partitions.map(|list| {
                list.into_iter()
                    .map(|(name, p)| {
                        elect_leaders_request::TopicPartitions::default()
                            .with_topic(topic(name))
                            .with_partitions(vec![p])
                    })
                    .collect()
            }));
        if v >= 1 {
            request = request.with_election_type(election_type);
        }
        RequestKind::ElectLeaders(request)
    };
    let mut cases = vec![
        ("preferred", elect(0, Some(vec![(TOPIC, 0)]))),
        ("unknown topic", elect(0, Some(vec![("nope", 0)]))),
        ("every partition", elect(0, None)),
    ];
    if v >= 1 {
        cases.push(("unclean", elect(1, Some(vec![(TOPIC, 1)]))));
    }
    cases
}

fn list_partition_reassignments_cases() -> Cases {
    vec![
        (
            "all",
            RequestKind::ListPartitionReassignments(
                ListPartitionReassignmentsRequest::default().with_topics(None),
            ),
        ),
        (
            "one partition",
            RequestKind::ListPartitionReassignments(
                ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
                    list_partition_reassignments_request::ListPartitionReassignmentsTopics::default()
                        .with_name(topic(TOPIC))
                        .with_partition_indexes(vec![0]),
                ])),
            ),
        ),
    ]
}

fn cases(key: ApiKey, v: i16, f: &Fixture, conn: &mut Connection) -> Cases {
    match key {
        ApiKey::Produce => produce_cases(v),
        ApiKey::Fetch => fetch_cases(v, f, conn),
        ApiKey::ListOffsets => list_offsets_cases(v),
        ApiKey::Metadata => metadata_cases(v, f),
        ApiKey::OffsetCommit => offset_commit_cases(v, conn),
        ApiKey::OffsetFetch => offset_fetch_cases(v, conn),
        ApiKey::FindCoordinator => find_coordinator_cases(v),
        ApiKey::JoinGroup => join_group_cases(v),
        ApiKey::Heartbeat => heartbeat_cases(v, conn),
        ApiKey::LeaveGroup => leave_group_cases(v, conn),
        ApiKey::SyncGroup => sync_group_cases(v, conn),
        ApiKey::DescribeGroups => describe_groups_cases(v, conn),
        ApiKey::ListGroups => list_groups_cases(v),
        ApiKey::ApiVersions => api_versions_cases(v),
        ApiKey::CreateTopics => create_topics_cases(v),
        ApiKey::DeleteTopics => delete_topics_cases(v),
        ApiKey::DeleteRecords => delete_records_cases(),
        ApiKey::InitProducerId => init_producer_id_cases(v),
        ApiKey::OffsetForLeaderEpoch => offset_for_leader_epoch_cases(v),
        ApiKey::DescribeAcls | ApiKey::CreateAcls | ApiKey::DeleteAcls => acl_cases(key),
        ApiKey::DescribeConfigs => describe_configs_cases(v),
        ApiKey::AlterConfigs => alter_configs_cases(),
        ApiKey::DescribeLogDirs => describe_log_dirs_cases(),
        ApiKey::CreatePartitions => create_partitions_cases(v),
        ApiKey::DeleteGroups => delete_groups_cases(v, conn),
        ApiKey::IncrementalAlterConfigs => incremental_alter_configs_cases(),
        ApiKey::ListPartitionReassignments => list_partition_reassignments_cases(),
        ApiKey::OffsetDelete => offset_delete_cases(conn),
        ApiKey::DescribeCluster => describe_cluster_cases(v),
        ApiKey::ElectLeaders => elect_leaders_cases(v),
        ApiKey::AddPartitionsToTxn => add_partitions_to_txn_cases(),
        ApiKey::AddOffsetsToTxn => vec![(
            "unknown producer",
            RequestKind::AddOffsetsToTxn(
                AddOffsetsToTxnRequest::default()
                    .with_transactional_id(TransactionalId(s("txn-conformance")))
                    .with_producer_id(ProducerId(1))
                    .with_group_id(GroupId(s("g"))),
            ),
        )],
        ApiKey::EndTxn => vec![(
            "unknown producer",
            RequestKind::EndTxn(
                EndTxnRequest::default()
                    .with_transactional_id(TransactionalId(s("txn-conformance")))
                    .with_producer_id(ProducerId(1))
                    .with_committed(true),
            ),
        )],
        ApiKey::TxnOffsetCommit => txn_offset_commit_cases(),
        ApiKey::WriteTxnMarkers => write_txn_markers_cases(),
        ApiKey::ConsumerGroupHeartbeat => consumer_group_heartbeat_cases(v, f),
        ApiKey::DescribeProducers => vec![(
            "a partition led here and an unknown one",
            RequestKind::DescribeProducers(DescribeProducersRequest::default().with_topics(vec![
                describe_producers_request::TopicRequest::default()
                    .with_name(topic(TOPIC))
                    .with_partition_indexes(vec![0, 99]),
                describe_producers_request::TopicRequest::default()
                    .with_name(topic("no-such-topic"))
                    .with_partition_indexes(vec![0]),
            ])),
        )],
        ApiKey::DescribeTransactions => vec![(
            "an unknown transactional id",
            RequestKind::DescribeTransactions(
                DescribeTransactionsRequest::default()
                    .with_transactional_ids(vec![TransactionalId(s("txn-conformance"))]),
            ),
        )],
        ApiKey::ListTransactions => {
            let mut request = ListTransactionsRequest::default()
                .with_state_filters(vec![s("Ongoing"), s("NoSuchState")])
                .with_producer_id_filters(vec![ProducerId(1)]);
            if v >= 1 {
                request = request.with_duration_filter(1000);
            }
            let mut cases = vec![
                (
                    "all",
                    RequestKind::ListTransactions(ListTransactionsRequest::default()),
                ),
                ("filtered", RequestKind::ListTransactions(request)),
            ];
            if v >= 2 {
                cases.push((
                    "an invalid pattern",
                    RequestKind::ListTransactions(
                        ListTransactionsRequest::default()
                            .with_transactional_id_pattern(Some(s("("))),
                    ),
                ));
            }
            cases
        }
        ApiKey::ConsumerGroupDescribe => consumer_group_describe_cases(),
        other => panic!("{other:?} is served but has no conformance cases"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_at_every_served_version_answers_in_that_version() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let broker = common::start_in_process(dir.path(), port).await;
    let bootstrap = format!("127.0.0.1:{port}");
    common::traffic::create_topic(&bootstrap, TOPIC, PARTITIONS, 1).await;

    let failures = tokio::task::spawn_blocking(move || {
        let mut conn = Connection::open(port);
        // Records to read, and the topic's id.
        conn.expect(ApiKey::Produce, 9, produce_cases(9).remove(0).1);
        let ResponseKind::Metadata(metadata) = conn.expect(
            ApiKey::Metadata,
            12,
            metadata_cases(
                12,
                &Fixture {
                    topic_id: uuid::Uuid::nil(),
                },
            )
            .remove(1)
            .1,
        ) else {
            unreachable!()
        };
        let fixture = Fixture {
            topic_id: metadata.topics[0].topic_id,
        };
        await_coordinator(&mut conn);
        assert!(!fixture.topic_id.is_nil());

        let mut failures = Vec::new();
        let mut covered = BTreeSet::new();
        for &(key, _, min, max) in SUPPORTED {
            for version in min..=max {
                for (case, request) in cases(key, version, &fixture, &mut conn) {
                    match conn.call(key, version, &request) {
                        Ok(response) => {
                            covered.insert((key as i16, version));
                            let text = format!("{response:?}");
                            if std::env::var_os("CONFORMANCE_VERBOSE").is_some() {
                                let codes: Vec<&str> = text
                                    .match_indices("error_code: ")
                                    .map(|(i, m)| {
                                        let rest = &text[i + m.len()..];
                                        &rest[..rest.find(',').unwrap_or(rest.len())]
                                    })
                                    .collect();
                                eprintln!("{key:?} v{version} ({case}): error codes {codes:?}");
                            }
                            if text.contains("error_code: -1,") {
                                failures.push(format!(
                                    "{key:?} v{version} ({case}): UNKNOWN_SERVER_ERROR in {text}"
                                ));
                            }
                        }
                        Err(e) => {
                            failures.push(format!("{key:?} v{version} ({case}): {e}"));
                            conn = Connection::open(port);
                        }
                    }
                }
            }
        }
        for &(key, _, min, max) in SUPPORTED {
            for version in min..=max {
                if !covered.contains(&(key as i16, version)) {
                    failures.push(format!("{key:?} v{version}: no request answered"));
                }
            }
        }
        failures
    })
    .await
    .unwrap();
    broker.shutdown().await.unwrap();
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
