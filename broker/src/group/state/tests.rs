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
        supports_skip_assignment: true,
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

    let step = group.sync(
        &id,
        None,
        1,
        vec![(id.clone(), Bytes::from_static(b"a"))],
        10,
    );
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
    assert_eq!(group.heartbeat(&id, None, 1, 20), Ok(()));
    assert_eq!(
        group.heartbeat(&id, None, 0, 20),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        group.heartbeat("nobody", None, 1, 20),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(group.validate_commit(&id, None, 1), Ok(()));
    assert_eq!(
        group.validate_commit("", None, -1),
        Err(ResponseError::UnknownMemberId)
    );
}

#[test]
fn second_member_triggers_rebalance_and_leader_gets_all_metadata() {
    let mut group = Group::new("g", LIMITS);
    let (a, _) = join_one(&mut group, 0);
    group.sync(&a, None, 1, vec![], 0);
    let step = group.join(join_req("", &["range"]), 5);
    let b = step.reply.unwrap().member_id;
    let step = group.join(join_req(&b, &["range"]), 5);
    assert!(
        step.effects.is_empty(),
        "waits for the existing member to rejoin"
    );
    assert_eq!(
        group.heartbeat(&a, None, 1, 6),
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
    let step = group.sync(&b, None, 2, vec![], 8);
    assert!(step.reply.is_none() && step.effects.is_empty());
    let step = group.sync(
        &a,
        None,
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
    group.sync(&a, None, 1, vec![], 0);
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
    group.sync(&a, None, 1, vec![], 0);
    group.tick(10_001);
    assert_eq!(group.state(), GroupState::Empty);
    assert_eq!(group.validate_commit("", None, -1), Ok(()));

    let (b, _) = join_one(&mut group, 20_000);
    assert_eq!(group.leave(&b, None, 20_001).0, Ok(()));
    assert_eq!(group.state(), GroupState::Empty);
    assert_eq!(
        group.leave(&b, None, 20_002).0,
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

#[test]
fn sessions_restart_when_the_join_phase_completes() {
    // A stable member, then a second joins: the first must rejoin within the rebalance
    // timeout (30 s), far longer than the session timeout (10 s).
    let mut group = Group::new("g", LIMITS);
    let (a, _) = join_one(&mut group, 0);
    group.sync(&a, None, 1, vec![], 0);
    let b = group
        .join(join_req("", &["range"]), 1000)
        .reply
        .unwrap()
        .member_id;
    group.join(join_req(&b, &["range"]), 1000);
    // b waits in JoinGroup for 25 s while a heartbeats, then rejoins before the deadline.
    for now in [5_000, 14_000, 23_000] {
        assert_eq!(
            group.heartbeat(&a, None, 1, now),
            Err(ResponseError::RebalanceInProgress)
        );
        assert!(joined(&group.tick(now)).is_empty());
    }
    let step = group.join(join_req(&a, &["range"]), 26_000);
    assert_eq!(joined(&step.effects).len(), 2);
    // b last heard from the group at 1 s, but its session restarted at 26 s.
    assert!(group.tick(26_001).is_empty());
    assert_eq!(group.members().count(), 2);
    let step = group.sync(&b, None, 2, vec![], 27_000);
    assert!(step.reply.is_none(), "b is still a member: its sync waits");
    // A member silent for a whole session after the join is expired.
    assert_eq!(group.heartbeat(&a, None, 2, 30_000), Ok(()));
    group.tick(37_001);
    assert_eq!(group.members().count(), 1);
}

fn static_join(instance: &str, member_id: &str) -> JoinRequest {
    JoinRequest {
        instance_id: Some(instance.into()),
        ..join_req(member_id, &["range"])
    }
}

/// A stable group of static members `instances`, assigned `assignment-<instance>`;
/// returns their member ids in the order given.
fn stable_static_group(instances: &[&str]) -> (Group, Vec<String>) {
    let limits = GroupLimits {
        initial_rebalance_delay_ms: 3000,
        ..LIMITS
    };
    let mut group = Group::new("g", limits);
    let mut ids = Vec::new();
    for instance in instances {
        let step = group.join(static_join(instance, ""), 0);
        assert!(
            step.reply.is_none(),
            "static members need no MEMBER_ID_REQUIRED"
        );
        ids.push(step.parked_member.unwrap());
    }
    let effects = group.tick(3000);
    assert_eq!(joined(&effects).len(), instances.len());
    let leader = joined(&effects)[0].leader.clone();
    let assignments = ids
        .iter()
        .zip(instances)
        .map(|(id, i)| (id.clone(), Bytes::from(format!("assignment-{i}"))))
        .collect();
    for id in ids.iter().filter(|id| **id != leader) {
        group.sync(id, None, 1, vec![], 3000);
    }
    group.sync(&leader, None, 1, assignments, 3000);
    assert_eq!(group.state(), GroupState::Stable);
    (group, ids)
}

#[test]
fn a_restarted_static_member_takes_its_place_without_a_rebalance() {
    let (mut group, ids) = stable_static_group(&["a", "b"]);
    let leader = group.leader.clone().unwrap();
    let follower = ids.iter().find(|id| **id != leader).unwrap().clone();
    let instance = if follower == ids[0] { "a" } else { "b" };
    let step = group.join(static_join(instance, ""), 100);
    let reply = step.reply.expect("answered at once");
    assert_eq!(reply.error, None);
    assert_eq!(reply.generation, 1, "no new generation");
    assert_ne!(reply.member_id, follower, "a new member id");
    assert!(!reply.skip_assignment && reply.members.is_empty());
    assert_eq!(group.state(), GroupState::Stable);
    // Its SyncGroup returns the assignment the old incarnation had.
    let sync = group.sync(&reply.member_id, Some(instance), 1, vec![], 101);
    assert_eq!(
        sync.reply.unwrap().assignment,
        Bytes::from(format!("assignment-{instance}"))
    );
    // The old incarnation is fenced everywhere.
    assert_eq!(
        group.heartbeat(&follower, Some(instance), 1, 102),
        Err(ResponseError::FencedInstanceId)
    );
    assert_eq!(
        group.validate_commit(&follower, Some(instance), 1),
        Err(ResponseError::FencedInstanceId)
    );
    assert_eq!(
        group
            .join(static_join(instance, &follower), 103)
            .reply
            .unwrap()
            .error,
        Some(ResponseError::FencedInstanceId)
    );
    assert_eq!(
        group.leave(&follower, Some(instance), 104).0,
        Err(ResponseError::FencedInstanceId)
    );
}

#[test]
fn a_restarted_static_leader_skips_assignment_or_rebalances() {
    let (mut group, _) = stable_static_group(&["a", "b"]);
    let leader = group.leader.clone().unwrap();
    let instance = group.members[&leader].instance_id.clone().unwrap();
    // KIP-814: a v9+ leader gets the members and is told to keep the assignment.
    let reply = group.join(static_join(&instance, ""), 100).reply.unwrap();
    assert_eq!((reply.error, reply.generation), (None, 1));
    assert!(reply.skip_assignment);
    assert_eq!(reply.leader, reply.member_id);
    assert_eq!(reply.members.len(), 2);
    // An older leader could not be told to skip: the group rebalances.
    let mut old_client = static_join(&instance, "");
    old_client.supports_skip_assignment = false;
    let step = group.join(old_client, 200);
    assert!(step.reply.is_none());
    assert_eq!(group.state(), GroupState::PreparingRebalance);
}

#[test]
fn a_static_member_with_a_new_subscription_triggers_a_rebalance() {
    let (mut group, _) = stable_static_group(&["a", "b"]);
    let mut req = static_join("a", "");
    req.protocols = vec![("range".into(), Bytes::from_static(b"other topics"))];
    let step = group.join(req, 100);
    assert!(step.reply.is_none(), "parked for the rebalance");
    assert_eq!(group.state(), GroupState::PreparingRebalance);
}

#[test]
fn a_static_member_parked_in_join_is_fenced_by_its_successor() {
    let mut group = Group::new("g", LIMITS);
    let (dynamic, _) = join_one(&mut group, 0);
    group.sync(&dynamic, None, 1, vec![], 0);
    // A static member joins and waits for the dynamic one to rejoin.
    let first = group.join(static_join("s", ""), 10).parked_member.unwrap();
    // It restarts before the join phase ends: the parked request is fenced.
    let step = group.join(static_join("s", ""), 20);
    assert!(step.reply.is_none());
    let fenced: Vec<_> = joined(&step.effects)
        .into_iter()
        .filter(|r| r.member_id == first)
        .collect();
    assert_eq!(fenced.len(), 1);
    assert_eq!(fenced[0].error, Some(ResponseError::FencedInstanceId));
    let step = group.join(join_req(&dynamic, &["range"]), 30);
    assert_eq!(joined(&step.effects).len(), 2);
}

#[test]
fn a_static_member_leaves_by_its_instance_id() {
    let (mut group, ids) = stable_static_group(&["a", "b"]);
    let (result, _) = group.leave("", Some("a"), 100);
    assert_eq!(result, Ok(()));
    assert!(group.members().all(|m| m.id != ids[0]));
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert_eq!(
        group.leave("", Some("a"), 101).0,
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        group.heartbeat(&ids[0], Some("a"), 1, 102),
        Err(ResponseError::UnknownMemberId)
    );
    // After it left, the instance id may join again as a new member.
    let step = group.join(static_join("a", ""), 103);
    assert!(step.reply.is_none());
}

#[test]
fn a_member_removed_while_parked_is_answered() {
    let mut group = Group::new("g", LIMITS);
    let (a, _) = join_one(&mut group, 0);
    group.sync(&a, None, 1, vec![], 0);
    let b = group
        .join(join_req("", &["range"]), 10)
        .reply
        .unwrap()
        .member_id;
    group.join(join_req(&b, &["range"]), 10);
    let (result, effects) = group.leave(&b, None, 20);
    assert_eq!(result, Ok(()));
    let answered = joined(&effects);
    assert_eq!(answered.len(), 1);
    assert_eq!(answered[0].member_id, b);
    assert_eq!(answered[0].error, Some(ResponseError::UnknownMemberId));
}

#[test]
fn a_settled_generation_is_stored_and_a_new_coordinator_resumes_it() {
    let (mut group, ids) = stable_static_group(&["a", "b"]);
    let snapshot = group.take_unsaved(123).expect("the settled generation");
    assert!(group.take_unsaved(124).is_none(), "stored once");
    assert_eq!((snapshot.generation, snapshot.members.len()), (1, 2));
    assert_eq!(snapshot.protocol.as_deref(), Some("range"));
    let a = snapshot
        .members
        .iter()
        .find(|m| m.instance_id.as_deref() == Some("a"))
        .unwrap();
    assert_eq!(a.assignment, Bytes::from_static(b"assignment-a"));
    assert_eq!(a.subscription, Bytes::from_static(b"meta-range"));

    // The new coordinator: the same generation and members, no rebalance.
    let mut resumed = Group::restore("g", snapshot, LIMITS, 50_000);
    assert_eq!(resumed.state(), GroupState::Stable);
    assert_eq!(resumed.generation(), 1);
    for (id, instance) in ids.iter().zip(["a", "b"]) {
        assert_eq!(resumed.heartbeat(id, Some(instance), 1, 50_001), Ok(()));
        assert_eq!(resumed.validate_commit(id, Some(instance), 1), Ok(()));
        let sync = resumed.sync(id, Some(instance), 1, vec![], 50_002);
        assert_eq!(
            sync.reply.unwrap().assignment,
            Bytes::from(format!("assignment-{instance}"))
        );
    }
    // Its static members are known by their instance ids.
    assert_eq!(
        resumed.heartbeat("old", Some("a"), 1, 50_003),
        Err(ResponseError::FencedInstanceId)
    );
    // Members that are gone expire as usual, and the emptied group is stored.
    resumed.tick(50_003 + 10_001);
    assert_eq!(resumed.state(), GroupState::Empty);
    let emptied = resumed.take_unsaved(125).expect("the emptied group");
    assert_eq!((emptied.generation, emptied.members.len()), (2, 0));
    let restored = Group::restore("g", emptied, LIMITS, 70_000);
    assert_eq!(restored.state(), GroupState::Empty);
    assert_eq!(restored.generation(), 2, "generations keep counting");
}

#[test]
fn a_rebalance_in_progress_is_not_stored() {
    let (mut group, _) = stable_static_group(&["a"]);
    group.take_unsaved(1);
    group.join(static_join("b", ""), 100);
    assert_eq!(group.state(), GroupState::PreparingRebalance);
    assert!(group.take_unsaved(2).is_none());
}

#[test]
fn the_first_member_to_join_leads() {
    // Member ids are random: over ten groups, the smallest id is rarely always first.
    for instances in [["a", "b", "c"], ["c", "b", "a"]].repeat(5) {
        let (group, ids) = stable_static_group(&instances);
        assert_eq!(
            group.leader.as_deref(),
            Some(ids[0].as_str()),
            "{instances:?}"
        );
    }
}
