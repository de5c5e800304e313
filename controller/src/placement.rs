//! Replica placement: which brokers hold each partition, rack (zone) aware.
//!
//! Brokers are ordered so that consecutive entries alternate between racks; partition `p`
//! takes `rf` consecutive brokers of that ordering starting at a rotating offset, skipping
//! brokers whose rack is already used while unused racks remain. Consecutive partitions
//! therefore rotate their preferred leader (the first replica) over every broker, and each
//! broker holds an equal share of replicas, as Kafka's rack-aware assignment does.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

/// A broker that can host replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: i32,
    pub rack: Option<String>,
}

/// Why no placement is possible.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum PlacementError {
    /// More replicas than live brokers (INVALID_REPLICATION_FACTOR).
    #[error("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {live} broker(s) are registered.")]
    NotEnoughBrokers { rf: usize, live: usize },
    /// A replication factor or partition count below one.
    #[error("replication factor and partition count must be positive")]
    Invalid,
}

/// Orders brokers so that racks alternate: r1b1, r2b1, r3b1, r1b2, ...
pub fn rack_alternating(brokers: &[Candidate]) -> Vec<Candidate> {
    let mut by_rack: BTreeMap<Option<String>, Vec<Candidate>> = BTreeMap::new();
    for b in brokers {
        by_rack.entry(b.rack.clone()).or_default().push(b.clone());
    }
    for list in by_rack.values_mut() {
        list.sort_by_key(|b| b.id);
    }
    let longest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::with_capacity(brokers.len());
    for i in 0..longest {
        for list in by_rack.values() {
            if let Some(b) = list.get(i) {
                out.push(b.clone());
            }
        }
    }
    out
}

/// Replica lists for `count` new partitions, continuing a rotation at `start` (the number
/// of partitions already placed, so successive topics and added partitions stay balanced).
pub fn assign(
    brokers: &[Candidate],
    count: usize,
    rf: usize,
    start: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if rf == 0 || count == 0 {
        return Err(PlacementError::Invalid);
    }
    if rf > brokers.len() {
        return Err(PlacementError::NotEnoughBrokers {
            rf,
            live: brokers.len(),
        });
    }
    let order = rack_alternating(brokers);
    let n = order.len();
    let racks: BTreeSet<Option<String>> = order.iter().map(|b| b.rack.clone()).collect();
    Ok((0..count)
        .map(|i| {
            let first = (start + i) % n;
            let mut chosen: Vec<usize> = vec![first];
            let mut used_racks: BTreeSet<Option<String>> =
                BTreeSet::from([order[first].rack.clone()]);
            // First pass: only brokers in racks not used yet; second pass: anyone left.
            for pass in 0..2 {
                for step in 1..n {
                    if chosen.len() == rf {
                        break;
                    }
                    let idx = (first + step) % n;
                    if chosen.contains(&idx) {
                        continue;
                    }
                    let rack = &order[idx].rack;
                    if pass == 0 && used_racks.contains(rack) && used_racks.len() < racks.len() {
                        continue;
                    }
                    used_racks.insert(rack.clone());
                    chosen.push(idx);
                }
            }
            chosen.into_iter().map(|idx| order[idx].id).collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cluster(zones: usize, per_zone: usize) -> Vec<Candidate> {
        (0..zones * per_zone)
            .map(|i| Candidate {
                id: i as i32 + 1,
                rack: Some(format!("zone-{}", (b'a' + (i % zones) as u8) as char)),
            })
            .collect()
    }

    fn rack_of(brokers: &[Candidate], id: i32) -> Option<String> {
        brokers
            .iter()
            .find(|b| b.id == id)
            .and_then(|b| b.rack.clone())
    }

    #[test]
    fn three_zones_rf3_spreads_every_partition() {
        let brokers = cluster(3, 1);
        let plan = assign(&brokers, 6, 3, 0).unwrap();
        for replicas in &plan {
            let racks: BTreeSet<_> = replicas.iter().map(|r| rack_of(&brokers, *r)).collect();
            assert_eq!(racks.len(), 3);
        }
        let leaders: Vec<i32> = plan.iter().map(|r| r[0]).collect();
        assert_eq!(leaders, vec![1, 2, 3, 1, 2, 3], "preferred leaders rotate");
    }

    #[test]
    fn too_few_brokers_is_an_error() {
        assert_eq!(
            assign(&cluster(1, 2), 1, 3, 0),
            Err(PlacementError::NotEnoughBrokers { rf: 3, live: 2 })
        );
    }

    #[test]
    fn adding_partitions_continues_the_rotation() {
        let brokers = cluster(3, 2);
        let first = assign(&brokers, 4, 2, 0).unwrap();
        let more = assign(&brokers, 2, 2, 4).unwrap();
        let all = assign(&brokers, 6, 2, 0).unwrap();
        assert_eq!([first, more].concat(), all);
    }

    proptest! {
        #[test]
        fn placements_are_valid_and_balanced(zones in 1usize..5, per_zone in 1usize..4, rf in 1usize..4, count in 1usize..40, start in 0usize..10) {
            let brokers = cluster(zones, per_zone);
            prop_assume!(rf <= brokers.len());
            let plan = assign(&brokers, count, rf, start).unwrap();
            let mut replica_counts: BTreeMap<i32, usize> = BTreeMap::new();
            let mut leader_counts: BTreeMap<i32, usize> = BTreeMap::new();
            for replicas in &plan {
                prop_assert_eq!(replicas.len(), rf);
                let unique: BTreeSet<_> = replicas.iter().collect();
                prop_assert_eq!(unique.len(), rf, "distinct brokers");
                let racks: BTreeSet<_> = replicas.iter().map(|r| rack_of(&brokers, *r)).collect();
                prop_assert_eq!(racks.len(), rf.min(zones), "distinct zones while zones allow");
                *leader_counts.entry(replicas[0]).or_default() += 1;
                for r in replicas {
                    *replica_counts.entry(*r).or_default() += 1;
                }
            }
            let n = brokers.len();
            if count % n == 0 {
                prop_assert!(brokers.iter().all(|b| leader_counts.get(&b.id).copied().unwrap_or(0) == count / n));
                prop_assert!(brokers.iter().all(|b| replica_counts.get(&b.id).copied().unwrap_or(0) == count * rf / n));
            }
            let max = leader_counts.values().max().copied().unwrap_or(0);
            let min = brokers.iter().map(|b| leader_counts.get(&b.id).copied().unwrap_or(0)).min().unwrap_or(0);
            prop_assert!(max - min <= 1, "leaderships balanced");
        }
    }
}
