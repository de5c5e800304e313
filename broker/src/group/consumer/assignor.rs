//! Server-side assignors of KIP-848 groups: the coordinator, not a group leader, decides
//! which member consumes which partition. `uniform` (the default, as in Kafka) balances
//! partition counts and keeps partitions where they are when it can, so a rebalance moves
//! as few partitions as possible; `range` gives each member contiguous ranges per topic,
//! for applications that co-partition topics.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::TopicPartitions;

/// An assignor a member may name in `ServerAssignor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Assignor {
    Uniform,
    Range,
}

/// The assignor a group uses when no member names one (Kafka's `group.consumer.assignors`
/// lists `uniform` first).
pub const DEFAULT_ASSIGNOR: Assignor = Assignor::Uniform;

impl Assignor {
    /// The assignor of a name a client sends, if this broker has it.
    pub fn named(name: &str) -> Option<Assignor> {
        match name {
            "uniform" => Some(Assignor::Uniform),
            "range" => Some(Assignor::Range),
            _ => None,
        }
    }

    /// The name clients and ConsumerGroupDescribe use.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Uniform => "uniform",
            Assignor::Range => "range",
        }
    }

    /// The target assignment: every partition of a subscribed topic goes to exactly one
    /// member subscribed to it. `subscriptions` maps members to the topic ids they
    /// subscribe to, `partitions` gives each topic's partition count, `current` is the
    /// previous target (which `uniform` keeps where balance allows).
    pub fn assign(
        self,
        subscriptions: &BTreeMap<String, BTreeSet<Uuid>>,
        partitions: &BTreeMap<Uuid, i32>,
        current: &BTreeMap<String, TopicPartitions>,
    ) -> BTreeMap<String, TopicPartitions> {
        match self {
            Assignor::Uniform => uniform(subscriptions, partitions, current),
            Assignor::Range => range(subscriptions, partitions),
        }
    }
}

type Partition = (Uuid, i32);

/// Balanced and sticky: members keep the partitions they had (if still subscribed), new
/// or orphaned partitions go to the least loaded subscriber, then partitions move from
/// the most to the least loaded subscriber until no move narrows the gap.
fn uniform(
    subscriptions: &BTreeMap<String, BTreeSet<Uuid>>,
    partitions: &BTreeMap<Uuid, i32>,
    current: &BTreeMap<String, TopicPartitions>,
) -> BTreeMap<String, TopicPartitions> {
    let mut owned: BTreeMap<&str, BTreeSet<Partition>> = subscriptions
        .keys()
        .map(|m| (m.as_str(), BTreeSet::new()))
        .collect();
    let mut taken: BTreeSet<Partition> = BTreeSet::new();
    for (member, topics) in subscriptions {
        let Some(previous) = current.get(member) else {
            continue;
        };
        for (topic, parts) in previous {
            let count = partitions.get(topic).copied().unwrap_or(0);
            if !topics.contains(topic) {
                continue;
            }
            for &p in parts.iter().filter(|&&p| p < count) {
                if taken.insert((*topic, p)) {
                    owned.entry(member).or_default().insert((*topic, p));
                }
            }
        }
    }
    let subscribers = |topic: &Uuid| -> Vec<&str> {
        subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(m, _)| m.as_str())
            .collect()
    };
    for (topic, &count) in partitions {
        let eligible = subscribers(topic);
        if eligible.is_empty() {
            continue;
        }
        for p in 0..count {
            if taken.contains(&(*topic, p)) {
                continue;
            }
            if let Some(least) = eligible.iter().min_by_key(|m| (owned[*m].len(), **m)) {
                owned.entry(least).or_default().insert((*topic, p));
                taken.insert((*topic, p));
            }
        }
    }
    // Partitions move from the most loaded member to the least loaded subscriber of
    // their topic while that narrows the gap by two or more; a member that can give
    // nothing away is set aside. Each move takes O(members), so P moves at most.
    let mut loads: BTreeSet<(usize, &str)> = owned.iter().map(|(m, ps)| (ps.len(), *m)).collect();
    let mut stuck: BTreeSet<&str> = BTreeSet::new();
    while let Some(&(load, from)) = loads.iter().rev().find(|(_, m)| !stuck.contains(m)) {
        let mut moved = None;
        for partition in owned[from].iter().rev() {
            let lightest = subscriptions
                .iter()
                .filter(|(m, topics)| m.as_str() != from && topics.contains(&partition.0))
                .map(|(m, _)| (owned[m.as_str()].len(), m.as_str()))
                .min();
            if let Some((to_load, to)) = lightest.filter(|(l, _)| l + 1 < load) {
                moved = Some((*partition, to, to_load));
                break;
            }
        }
        let Some((partition, to, to_load)) = moved else {
            stuck.insert(from);
            continue;
        };
        loads.remove(&(load, from));
        loads.remove(&(to_load, to));
        owned.entry(from).or_default().remove(&partition);
        owned.entry(to).or_default().insert(partition);
        loads.insert((load - 1, from));
        loads.insert((to_load + 1, to));
    }
    owned
        .into_iter()
        .map(|(m, parts)| (m.to_string(), group_by_topic(parts)))
        .collect()
}

/// Per topic, its subscribers in member-id order each take a contiguous range; the first
/// `partitions % subscribers` take one more.
fn range(
    subscriptions: &BTreeMap<String, BTreeSet<Uuid>>,
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, TopicPartitions> {
    let mut assignment: BTreeMap<String, TopicPartitions> = subscriptions
        .keys()
        .map(|m| (m.clone(), TopicPartitions::new()))
        .collect();
    for (topic, &count) in partitions {
        let subscribers: Vec<&String> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let n = subscribers.len() as i32;
        let mut next = 0;
        for (i, member) in subscribers.into_iter().enumerate() {
            let share = count / n + i32::from((i as i32) < count % n);
            if share > 0 {
                let parts = assignment.entry(member.clone()).or_default();
                parts.entry(*topic).or_default().extend(next..next + share);
            }
            next += share;
        }
    }
    assignment
}

fn group_by_topic(parts: BTreeSet<Partition>) -> TopicPartitions {
    let mut by_topic = TopicPartitions::new();
    for (topic, p) in parts {
        by_topic.entry(topic).or_default().insert(p);
    }
    by_topic
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn subs(members: &[(&str, &[u128])]) -> BTreeMap<String, BTreeSet<Uuid>> {
        members
            .iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| topic(*t)).collect()))
            .collect()
    }

    fn counts(a: &BTreeMap<String, TopicPartitions>) -> Vec<usize> {
        a.values()
            .map(|tp| tp.values().map(BTreeSet::len).sum())
            .collect()
    }

    /// Every partition of a subscribed topic is assigned exactly once, to a subscriber.
    fn check_complete(
        a: &BTreeMap<String, TopicPartitions>,
        s: &BTreeMap<String, BTreeSet<Uuid>>,
        partitions: &BTreeMap<Uuid, i32>,
    ) {
        let mut seen = BTreeSet::new();
        for (member, tp) in a {
            for (t, parts) in tp {
                assert!(s[member].contains(t), "{member} got an unsubscribed topic");
                for p in parts {
                    assert!(seen.insert((*t, *p)), "{t}-{p} assigned twice");
                }
            }
        }
        for (t, n) in partitions {
            if s.values().any(|ts| ts.contains(t)) {
                for p in 0..*n {
                    assert!(seen.contains(&(*t, p)), "{t}-{p} unassigned");
                }
            }
        }
    }

    #[test]
    fn uniform_balances_and_keeps_partitions_in_place() {
        let partitions = BTreeMap::from([(topic(1), 6), (topic(2), 3)]);
        let two = subs(&[("a", &[1, 2]), ("b", &[1, 2])]);
        let first = Assignor::Uniform.assign(&two, &partitions, &BTreeMap::new());
        check_complete(&first, &two, &partitions);
        assert_eq!(
            counts(&first).iter().max().unwrap() - counts(&first).iter().min().unwrap(),
            1
        );

        // A third member takes three partitions; a and b keep everything else they had.
        let three = subs(&[("a", &[1, 2]), ("b", &[1, 2]), ("c", &[1, 2])]);
        let second = Assignor::Uniform.assign(&three, &partitions, &first);
        check_complete(&second, &three, &partitions);
        assert_eq!(counts(&second), vec![3, 3, 3]);
        for m in ["a", "b"] {
            for (t, parts) in &second[m] {
                assert!(
                    parts.is_subset(&first[m][t]),
                    "{m} lost a partition it kept"
                );
            }
        }

        // c leaves: its partitions return, nothing else moves.
        let third = Assignor::Uniform.assign(&two, &partitions, &second);
        check_complete(&third, &two, &partitions);
        for m in ["a", "b"] {
            for (t, parts) in &second[m] {
                assert!(parts.is_subset(&third[m][t]));
            }
        }
    }

    #[test]
    fn uniform_respects_heterogeneous_subscriptions() {
        let partitions = BTreeMap::from([(topic(1), 4), (topic(2), 4)]);
        let s = subs(&[("a", &[1]), ("b", &[1, 2]), ("c", &[2])]);
        let a = Assignor::Uniform.assign(&s, &partitions, &BTreeMap::new());
        check_complete(&a, &s, &partitions);
        assert!(counts(&a).iter().all(|&c| c >= 2), "{a:?}");
        // A topic without subscribers is not assigned; a member without topics gets none.
        let s = subs(&[("a", &[1]), ("z", &[])]);
        let a = Assignor::Uniform.assign(&s, &partitions, &BTreeMap::new());
        check_complete(&a, &s, &partitions);
        assert!(a["z"].is_empty());
    }

    #[test]
    fn uniform_drops_partitions_of_unsubscribed_or_shrunk_topics() {
        let s = subs(&[("a", &[1])]);
        let before = BTreeMap::from([(
            "a".to_string(),
            TopicPartitions::from([
                (topic(1), BTreeSet::from([0, 5])),
                (topic(2), BTreeSet::from([0])),
            ]),
        )]);
        let a = Assignor::Uniform.assign(&s, &BTreeMap::from([(topic(1), 2)]), &before);
        assert_eq!(
            a["a"],
            TopicPartitions::from([(topic(1), BTreeSet::from([0, 1]))])
        );
    }

    #[test]
    fn uniform_stays_fast_on_large_groups() {
        let partitions = BTreeMap::from([(topic(1), 20_000)]);
        let one = subs(&[("a", &[1])]);
        let first = Assignor::Uniform.assign(&one, &partitions, &BTreeMap::new());
        let members: Vec<(String, Vec<u128>)> =
            (0..50).map(|i| (format!("m{i:02}"), vec![1])).collect();
        let many: BTreeMap<String, BTreeSet<Uuid>> = members
            .iter()
            .map(|(m, ts)| (m.clone(), ts.iter().map(|t| topic(*t)).collect()))
            .collect();
        let mut current = first.clone();
        current.insert("m00".into(), current["a"].clone());
        let spread = Assignor::Uniform.assign(&many, &partitions, &current);
        check_complete(&spread, &many, &partitions);
        assert!(
            counts(&spread).iter().all(|&c| c == 400),
            "{:?}",
            counts(&spread)
        );
    }

    #[test]
    fn range_gives_contiguous_ranges_in_member_order() {
        let partitions = BTreeMap::from([(topic(1), 7)]);
        let s = subs(&[("a", &[1]), ("b", &[1]), ("c", &[1])]);
        let a = Assignor::Range.assign(&s, &partitions, &BTreeMap::new());
        check_complete(&a, &s, &partitions);
        assert_eq!(a["a"][&topic(1)], BTreeSet::from([0, 1, 2]));
        assert_eq!(a["b"][&topic(1)], BTreeSet::from([3, 4]));
        assert_eq!(a["c"][&topic(1)], BTreeSet::from([5, 6]));
        assert_eq!(Assignor::named("range"), Some(Assignor::Range));
        assert_eq!(Assignor::named("sticky"), None);
    }
}
