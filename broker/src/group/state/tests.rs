//! The group protocol, scenario by scenario.

use super::*;

const LIMITS: GroupLimits = GroupLimits {
    min_session_timeout_ms: 6000,
    max_session_timeout_ms: 300_000,
    initial_rebalance_delay_ms: 0,
};

fn join_req(member_id: &str, protocols: &[&str]) -> JoinRequest {
    JoinRequest {
        member_id: member_id.into(),
        instance_id: None,
        client_id: "client".into(),
        client_host: "/127.0.0.1".into(),
        session_timeout_ms: 10_000,
        rebalance_timeout_ms: 30_000,
        protocol_type: "consumer".into(),
        protocols: protocols
            .iter()
            .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
            .collect(),
        require_known_member_id: true,
    }
}

fn joined(effects: &[Effect]) -> Vec<&JoinReply> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Join(_, r) => Some(r),
            _ => None,
        })
        .collect()
}

/// Two-step join (MEMBER_ID_REQUIRED) of a single member, returning its id.
fn join_one(group: &mut Group, now: u64) -> (String, Vec<Effect>) {
    let step = group.join(join_req("", &["range"]), now);
    let reply = step.reply.unwrap();
    assert_eq!(reply.error, Some(ResponseError::MemberIdRequired));
    let step = group.join(join_req(&reply.member_id, &["range"]), now);
    assert!(step.reply.is_none());
    (reply.member_id, step.effects)
}

#[test]
fn single_member_joins_syncs_and_heartbeats() {
    let mut group = Group::new("g", LIMITS);
    let (id, effects) = join_one(&mut group, 0);
    let replies = joined(&effects);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].generation, 1);
    assert_eq!(replies[0].leader, id);
    assert_eq!(replies[0].members.len(), 1);
    assert_eq!(replies[0].protocol_name.as_deref(), Some("range"));
    assert_eq!(group.state(), GroupState::CompletingRebalance);

    let step = group.sync(&id, 1, vec![(id.clone(), Bytes::from_static(b"a"))], 10);
    assert!(step.reply.is_none());
    assert_eq!(
        step.effects,
        vec![Effect::Sync(
            id.clone(),
            SyncReply {
                error: None,
                protocol_type: Some("consumer".into()),
                protocol_name: Some("range".into()),
                assignment: Bytes::from_static(b"a")
            }
        )]
    );
    assert_eq!(group.state(), GroupState::Stable);
    assert_eq!(group.heartbeat(&id, 1, 20), Ok(()));
    assert_eq!(
        group.heartbeat(&id, 0, 20),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        group.heartbeat("nobody", 1, 20),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(group.validate_commit(&id, 1), Ok(()));
    assert_eq!(
        group.validate_commit("", -1),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn second_member_triggers_rebalance_and_leader_gets_all_metadata() {
    let mut group = Group::new("g", LIMITS);
    let (a, _) = join_one(&mut group, 0);
    group.sync(&a, 1, vec![], 0);
    let step = group.join(join_req("", &["range"]), 5);
    let b = step.reply.unwrap().member_id;
    let step = group.join(join_req(&b, &["range"]), 5);
    assert!(
        step.effects.is_empty(),
        "waits for the existing member to rejoin"
    );
    assert_eq!(
        group.heartbeat(&a, 1, 6),
        Err(ResponseError::RebalanceInProgress)
    );
    let step = group.join(join_req(&a, &["range"]), 7);
    let replies = joined(&step.effects);
    assert_eq!(replies.len(), 2);
    assert!(replies.iter().all(|r| r.generation == 2 && r.leader == a));
    let leader_reply = replies.iter().find(|r| r.member_id == a).unwrap();
    assert_eq!(leader_reply.members.len(), 2);
    let follower_reply = replies.iter().find(|r| r.member_id == b).unwrap();
    assert!(follower_reply.members.is_empty());

    // Follower syncs first and waits; the leader's sync answers both.
    let step = group.sync(&b, 2, vec![], 8);
    assert!(step.reply.is_none() && step.effects.is_empty());
    let step = group.sync(
        &a,
        2,
        vec![(a.clone(), "x".into()), (b.clone(), "y".into())],
        9,
    );
    assert_eq!(step.effects.len(), 2);
}

#[test]
fn rebalance_deadline_drops_members_that_do_not_rejoin() {
    let mut group = Group::new("g", LIMITS);
    let (a, _) = join_one(&mut group, 0);
    group.sync(&a, 1, vec![], 0);
    let step = group.join(join_req("", &["range"]), 100);
    let b = step.reply.unwrap().member_id;
    group.join(join_req(&b, &["range"]), 100);
    assert!(group.tick(1000).is_empty());
    let effects = group.tick(100 + 30_000);
    let replies = joined(&effects);
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].member_id, b);
    assert_eq!(group.members().count(), 1);
}

#[test]
fn session_expiry_and_leave_empty_the_group() {
    let mut group = Group::new("g", LIMITS);
    let (a, _) = join_one(&mut group, 0);
    group.sync(&a, 1, vec![], 0);
    group.tick(10_001);
    assert_eq!(group.state(), GroupState::Empty);
    assert_eq!(group.validate_commit("", -1), Ok(()));

    let (b, _) = join_one(&mut group, 20_000);
    assert_eq!(group.leave(&b, 20_001).0, Ok(()));
    assert_eq!(group.state(), GroupState::Empty);
    assert_eq!(
        group.leave(&b, 20_002).0,
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn protocol_checks() {
    let mut group = Group::new("g", LIMITS);
    join_one(&mut group, 0);
    let step = group.join(join_req("", &["cooperative-sticky"]), 1);
    assert_eq!(
        step.reply.unwrap().error,
        Some(ResponseError::InconsistentGroupProtocol)
    );
    let mut req = join_req("", &["range"]);
    req.session_timeout_ms = 10;
    assert_eq!(
        group.join(req, 1).reply.unwrap().error,
        Some(ResponseError::InvalidSessionTimeout)
    );
    assert_eq!(
        group
            .join(join_req("ghost", &["range"]), 1)
            .reply
            .unwrap()
            .error,
        Some(ResponseError::UnknownMemberId)
    );
}

#[test]
fn initial_delay_holds_the_first_generation() {
    let limits = GroupLimits {
        initial_rebalance_delay_ms: 3000,
        ..LIMITS
    };
    let mut group = Group::new("g", limits);
    let (_, effects) = join_one(&mut group, 0);
    assert!(effects.is_empty(), "held by the initial delay");
    assert_eq!(joined(&group.tick(3000)).len(), 1);
}

#[test]
fn protocol_selection_prefers_common_choice() {
    let mut group = Group::new("g", LIMITS);
    let r = group
        .join(join_req("", &["sticky", "range"]), 0)
        .reply
        .unwrap();
    group.join(join_req(&r.member_id, &["sticky", "range"]), 0);
    assert_eq!(group.protocol(), Some("sticky"));
}

#[test]
fn a_consumer_groups_subscriptions_are_read_from_its_members_metadata() {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::{Encodable, StrBytes};
    let subscription = |topics: &[&'static str]| {
        let mut buf = bytes::BytesMut::new();
        buf.extend_from_slice(&1i16.to_be_bytes());
        ConsumerProtocolSubscription::default()
            .with_topics(
                topics
                    .iter()
                    .map(|t| StrBytes::from_static_str(t))
                    .collect(),
            )
            .encode(&mut buf, 1)
            .unwrap();
        buf.freeze()
    };
    let mut group = Group::new("g", LIMITS);
    assert_eq!(group.subscribed_topics(), None, "no protocol chosen");
    let mut req = join_req("", &["range"]);
    req.protocols = vec![("range".into(), subscription(&["a", "b"]))];
    let id = group.join(req.clone(), 0).reply.unwrap().member_id;
    req.member_id = id;
    group.join(req, 0);
    assert_eq!(
        group.subscribed_topics(),
        Some(BTreeSet::from(["a".to_string(), "b".to_string()]))
    );

    let mut other = Group::new("c", LIMITS);
    let mut req = join_req("", &["range"]);
    req.protocol_type = "connect".into();
    let id = other.join(req.clone(), 0).reply.unwrap().member_id;
    req.member_id = id;
    other.join(req, 0);
    assert_eq!(
        other.subscribed_topics(),
        None,
        "not Kafka's consumer protocol"
    );
}
