use super::*;

const SETTINGS: ConsumerGroupSettings = ConsumerGroupSettings {
    session_timeout_ms: 45_000,
    heartbeat_interval_ms: 5_000,
};

const ORDERS: Uuid = Uuid::from_u128(1);
const PAYMENTS: Uuid = Uuid::from_u128(2);

type Catalog = BTreeMap<String, TopicInfo>;

impl TopicCatalog for Catalog {
    fn topic(&self, name: &str) -> Option<TopicInfo> {
        self.get(name).copied()
    }
    fn names(&self) -> Vec<String> {
        self.keys().cloned().collect()
    }
}

fn catalog(orders: i32) -> Catalog {
    Catalog::from([
        (
            "orders".into(),
            TopicInfo {
                id: ORDERS,
                partitions: orders,
            },
        ),
        (
            "payments".into(),
            TopicInfo {
                id: PAYMENTS,
                partitions: 2,
            },
        ),
    ])
}

/// A client that does what the Java consumer does: it adopts each assignment it is sent
/// (revoking and taking partitions at once) and reports what it owns when that changed.
#[derive(Debug)]
struct Client {
    id: String,
    epoch: i32,
    owned: TopicPartitions,
    report: bool,
    instance: Option<String>,
}

impl Client {
    fn new(id: &str) -> Self {
        Client {
            id: id.into(),
            epoch: 0,
            owned: TopicPartitions::new(),
            report: true,
            instance: None,
        }
    }

    fn request(&self) -> Heartbeat {
        let joining = self.epoch == 0;
        Heartbeat {
            member_id: self.id.clone(),
            member_epoch: self.epoch,
            instance_id: self.instance.clone(),
            rebalance_timeout_ms: if joining { 30_000 } else { -1 },
            topic_names: joining.then(|| vec!["orders".to_string()]),
            owned: self.report.then(|| self.owned.clone()),
            ..Heartbeat::default()
        }
    }

    fn beat(&mut self, group: &mut ConsumerGroup, topics: &Catalog, now: u64) -> HeartbeatReply {
        let reply = group
            .heartbeat(self.request(), topics, now)
            .unwrap_or_else(|e| panic!("{}: {e}", self.id));
        self.epoch = reply.member_epoch;
        self.report = false;
        if let Some(assignment) = &reply.assignment {
            if *assignment != self.owned {
                self.owned = assignment.clone();
                self.report = true;
            }
        }
        reply
    }
}

fn count(tp: &TopicPartitions) -> usize {
    tp.values().map(BTreeSet::len).sum()
}

fn assert_disjoint(clients: &[Client]) {
    let mut seen = BTreeSet::new();
    for c in clients {
        for (t, ps) in &c.owned {
            for p in ps {
                assert!(seen.insert((*t, *p)), "{t}-{p} owned twice: {clients:?}");
            }
        }
    }
}

/// Heartbeats every client in turn until the group is stable.
fn settle(group: &mut ConsumerGroup, clients: &mut [Client], topics: &Catalog, now: u64) {
    for _ in 0..10 {
        for i in 0..clients.len() {
            clients[i].beat(group, topics, now);
            assert_disjoint(clients);
        }
        if group.state() == "Stable" {
            return;
        }
    }
    panic!("group did not settle: {}", group.state());
}

#[test]
fn members_share_partitions_and_none_is_ever_owned_twice() {
    let topics = catalog(6);
    let mut group = ConsumerGroup::new("g", SETTINGS);
    let mut clients = vec![Client::new("a")];
    let first = clients[0].beat(&mut group, &topics, 0);
    assert_eq!((first.member_epoch, group.epoch()), (1, 1));
    assert_eq!(count(first.assignment.as_ref().unwrap()), 6);

    clients.push(Client::new("b"));
    let joined = clients[1].beat(&mut group, &topics, 1);
    assert_eq!(group.epoch(), 2);
    assert_eq!(
        joined.member_epoch, 2,
        "b advances at once, waiting for its partitions"
    );
    assert!(joined.assignment.unwrap().is_empty(), "a still holds them");
    assert_eq!(group.state(), "Reconciling");

    let revoke = clients[0].beat(&mut group, &topics, 2);
    assert_eq!(revoke.member_epoch, 1, "a revokes at its old epoch");
    assert_eq!(count(revoke.assignment.as_ref().unwrap()), 3);
    settle(&mut group, &mut clients, &topics, 3);
    assert_eq!(
        clients.iter().map(|c| count(&c.owned)).collect::<Vec<_>>(),
        vec![3, 3]
    );
    assert!(clients.iter().all(|c| c.epoch == 2));
}

#[test]
fn stale_and_future_epochs_are_fenced_but_a_lost_answer_is_retried() {
    let topics = catalog(2);
    let mut group = ConsumerGroup::new("g", SETTINGS);
    let mut a = Client::new("a");
    a.beat(&mut group, &topics, 0);
    let future = Heartbeat {
        member_epoch: 5,
        ..a.request()
    };
    let err = group.heartbeat(future, &topics, 1).unwrap_err();
    assert_eq!(err.code, ResponseError::FencedMemberEpoch);

    // A new partition moves a to epoch 2; the answer is lost, so a retries with epoch 1
    // and what it owns, a subset of its assignment: accepted, and told epoch 2 again.
    let mut grown = catalog(3);
    grown.remove("payments");
    let lost = group.heartbeat(a.request(), &grown, 2).unwrap();
    assert_eq!(lost.member_epoch, 2);
    let retry = Heartbeat {
        owned: Some(a.owned.clone()),
        ..a.request()
    };
    assert_eq!(group.heartbeat(retry, &grown, 3).unwrap().member_epoch, 2);
    // Without the ownership report, the old epoch is fenced.
    let stale = Heartbeat {
        owned: None,
        ..a.request()
    };
    assert_eq!(
        group.heartbeat(stale, &grown, 4).unwrap_err().code,
        ResponseError::FencedMemberEpoch
    );
    let unknown = Heartbeat {
        member_id: "nobody".into(),
        member_epoch: 3,
        ..Heartbeat::default()
    };
    assert_eq!(
        group.heartbeat(unknown, &topics, 5).unwrap_err().code,
        ResponseError::UnknownMemberId
    );
}

#[test]
fn leaving_and_expiring_members_release_their_partitions() {
    let topics = catalog(4);
    let mut group = ConsumerGroup::new("g", SETTINGS);
    let mut clients = vec![Client::new("a"), Client::new("b"), Client::new("c")];
    settle(&mut group, &mut clients, &topics, 0);
    let epoch = group.epoch();

    let leave = Heartbeat {
        member_epoch: LEAVE_EPOCH,
        ..clients[2].request()
    };
    assert_eq!(
        group.heartbeat(leave, &topics, 1).unwrap().member_epoch,
        LEAVE_EPOCH
    );
    clients.pop();
    assert_eq!(group.epoch(), epoch + 1);
    settle(&mut group, &mut clients, &topics, 2);
    assert_eq!(clients.iter().map(|c| count(&c.owned)).sum::<usize>(), 4);

    // b stops heartbeating: after the session timeout a gets everything.
    assert!(group.expire(40_000).is_empty());
    clients[0].beat(&mut group, &topics, 40_000);
    assert_eq!(group.expire(45_003), vec!["b".to_string()]);
    clients.pop();
    settle(&mut group, &mut clients, &topics, 45_004);
    assert_eq!(count(&clients[0].owned), 4);
}

#[test]
fn a_member_that_does_not_revoke_in_time_is_removed() {
    let topics = catalog(2);
    let mut group = ConsumerGroup::new("g", SETTINGS);
    let mut a = Client::new("a");
    a.beat(&mut group, &topics, 0);
    let mut b = Client::new("b");
    b.beat(&mut group, &topics, 1);
    // a is told to revoke, then stays silent about it.
    a.beat(&mut group, &topics, 2);
    a.report = false;
    a.beat(&mut group, &topics, 10_000);
    // Its rebalance timeout (30 s) runs from when it was told to revoke (t = 2).
    assert!(group.expire(30_002).is_empty());
    assert_eq!(group.expire(30_003), vec!["a".to_string()]);
    b.beat(&mut group, &topics, 30_004);
    assert_eq!(count(&b.owned), 2);
}

#[test]
fn a_static_member_keeps_its_partitions_across_a_restart() {
    let topics = catalog(4);
    let mut group = ConsumerGroup::new("g", SETTINGS);
    let mut clients = vec![Client::new("a"), Client::new("b")];
    clients[0].instance = Some("i-a".into());
    settle(&mut group, &mut clients, &topics, 0);
    let held = clients[0].owned.clone();
    let epoch = group.epoch();

    let leave = Heartbeat {
        member_epoch: STATIC_LEAVE_EPOCH,
        ..clients[0].request()
    };
    group.heartbeat(leave, &topics, 1).unwrap();
    assert_eq!(group.epoch(), epoch, "a static leave does not rebalance");

    let mut restarted = Client::new("a2");
    restarted.instance = Some("i-a".into());
    let reply = restarted.beat(&mut group, &topics, 2);
    assert_eq!(reply.assignment.unwrap(), held);
    assert_eq!(group.epoch(), epoch);

    // The old incarnation is fenced.
    let zombie = Heartbeat {
        member_epoch: reply.member_epoch.max(1),
        ..clients[0].request()
    };
    assert_eq!(
        group.heartbeat(zombie, &topics, 2).unwrap_err().code,
        ResponseError::FencedInstanceId
    );

    // While it is in the group, its instance id cannot be taken.
    let mut usurper = Client::new("a3");
    usurper.instance = Some("i-a".into());
    let err = group.heartbeat(usurper.request(), &topics, 3).unwrap_err();
    assert_eq!(err.code, ResponseError::UnreleasedInstanceId);
}

#[test]
fn new_partitions_and_regex_subscriptions_rebalance_the_group() {
    let mut topics = catalog(2);
    let mut group = ConsumerGroup::new("g", SETTINGS);
    let mut clients = vec![Client::new("a")];
    settle(&mut group, &mut clients, &topics, 0);
    let epoch = group.epoch();
    topics.get_mut("orders").unwrap().partitions = 3;
    settle(&mut group, &mut clients, &topics, 1);
    assert_eq!(group.epoch(), epoch + 1);
    assert_eq!(count(&clients[0].owned), 3);

    let regex = Heartbeat {
        member_id: "r".into(),
        rebalance_timeout_ms: 1000,
        topic_regex: Some("pay.*".into()),
        ..Heartbeat::default()
    };
    let reply = group.heartbeat(regex, &topics, 2).unwrap();
    assert_eq!(
        reply.assignment.unwrap(),
        TopicPartitions::from([(PAYMENTS, BTreeSet::from([0, 1]))])
    );
    let bad = Heartbeat {
        member_id: "x".into(),
        rebalance_timeout_ms: 1000,
        topic_regex: Some("(".into()),
        ..Heartbeat::default()
    };
    let err = group.heartbeat(bad, &topics, 3).unwrap_err();
    assert_eq!(err.code, ResponseError::InvalidRegularExpression);
    let unsupported = Heartbeat {
        server_assignor: Some("sticky".into()),
        ..Client::new("y").request()
    };
    let err = group.heartbeat(unsupported, &topics, 3).unwrap_err();
    assert_eq!(err.code, ResponseError::UnsupportedAssignor);
    let incomplete = Heartbeat {
        member_id: "z".into(),
        rebalance_timeout_ms: 1000,
        ..Heartbeat::default()
    };
    let err = group.heartbeat(incomplete, &topics, 3).unwrap_err();
    assert_eq!(err.code, ResponseError::InvalidRequest);
}

#[test]
fn commits_and_fetches_must_carry_the_members_epoch() {
    let topics = catalog(2);
    let mut group = ConsumerGroup::new("g", SETTINGS);
    assert_eq!(group.validate_commit("", -1, 9), Ok(()));
    let mut a = Client::new("a");
    a.beat(&mut group, &topics, 0);
    let stale = ResponseError::StaleMemberEpoch;
    assert_eq!(group.validate_commit("a", a.epoch, 9), Ok(()));
    assert_eq!(group.validate_commit("a", a.epoch - 1, 9), Err(stale));
    assert_eq!(
        group.validate_commit("a", a.epoch, 8),
        Err(ResponseError::UnsupportedVersion),
        "members of consumer groups commit with v9+"
    );
    assert_eq!(
        group.validate_txn_commit("a", a.epoch - 1),
        Err(ResponseError::IllegalGeneration)
    );
    assert_eq!(
        group.validate_commit("", -1, 9),
        Err(ResponseError::UnknownMemberId),
        "a group with members takes no member-less commits"
    );
    assert_eq!(group.validate_fetch(None, -1), Ok(()));
    assert_eq!(group.validate_fetch(Some("a"), a.epoch), Ok(()));
    assert_eq!(group.validate_fetch(Some("a"), a.epoch + 1), Err(stale));
    assert_eq!(
        group.validate_fetch(Some("b"), 1),
        Err(ResponseError::UnknownMemberId)
    );
    assert_eq!(
        group.validate_fetch(None, 1),
        Err(ResponseError::UnknownMemberId),
        "an epoch without a member"
    );
}
