//! Leader election and ISR changes for one partition, as pure functions.
//!
//! Rules follow Kafka's KRaft controller: a clean election picks the first replica (in
//! assignment order) that is live and in the ISR; an unclean one, only where the topic
//! allows it, any live replica. Every leadership change bumps the leader epoch, and every
//! change at all bumps the partition epoch, so stale leaders and stale ISR updates are
//! fenced.

use std::collections::{BTreeMap, BTreeSet};

use thiserror::Error;

use tributary_metadata::{PartitionMeta, ResponseError};

/// No leader.
pub const NO_LEADER: i32 = -1;

/// Why an AlterPartition (ISR change) request is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IsrChangeError {
    /// The sender is not the current leader, or its leader epoch is stale (FENCED_LEADER_EPOCH).
    #[error("leader {leader} epoch {epoch} is not the current leader")]
    FencedLeaderEpoch { leader: i32, epoch: i32 },
    /// The partition changed since the leader last saw it (INVALID_UPDATE_VERSION).
    #[error("partition epoch {got} is stale (current {current})")]
    InvalidUpdateVersion { got: i32, current: i32 },
    /// The new ISR names a replica that is not assigned or not live (INELIGIBLE_REPLICA).
    #[error("replica {0} cannot be in the ISR")]
    IneligibleReplica(i32),
    /// The leader must stay in its own ISR (INVALID_REQUEST).
    #[error("the ISR must contain the leader")]
    LeaderNotInIsr,
}

impl IsrChangeError {
    /// The Kafka error the leader is answered with.
    pub fn kafka_error(&self) -> ResponseError {
        match self {
            IsrChangeError::FencedLeaderEpoch { .. } => ResponseError::FencedLeaderEpoch,
            IsrChangeError::InvalidUpdateVersion { .. } => ResponseError::InvalidUpdateVersion,
            IsrChangeError::IneligibleReplica(_) => ResponseError::IneligibleReplica,
            IsrChangeError::LeaderNotInIsr => ResponseError::InvalidRequest,
        }
    }
}

fn with_leader(state: &PartitionMeta, leader: i32, isr: Vec<i32>) -> PartitionMeta {
    PartitionMeta {
        replicas: state.replicas.clone(),
        isr,
        leader,
        leader_epoch: state.leader_epoch + 1,
        partition_epoch: state.partition_epoch + 1,
    }
}

/// Elects a leader among live replicas; `None` when the current leader is fine or no
/// change is possible. An unclean election resets the ISR to the new leader alone.
pub fn elect(
    state: &PartitionMeta,
    live: &BTreeSet<i32>,
    unclean_allowed: bool,
) -> Option<PartitionMeta> {
    if state.leader != NO_LEADER && live.contains(&state.leader) {
        return None;
    }
    let clean = state
        .replicas
        .iter()
        .copied()
        .find(|r| live.contains(r) && state.isr.contains(r));
    match clean {
        Some(leader) => {
            let isr = state
                .isr
                .iter()
                .copied()
                .filter(|r| live.contains(r) || *r == leader)
                .collect();
            Some(with_leader(state, leader, isr))
        }
        None if unclean_allowed => {
            let leader = state.replicas.iter().copied().find(|r| live.contains(r))?;
            Some(with_leader(state, leader, vec![leader]))
        }
        None if state.leader != NO_LEADER => {
            // Offline: keep the ISR so the last in-sync replica can lead when it returns.
            Some(PartitionMeta {
                leader: NO_LEADER,
                leader_epoch: state.leader_epoch + 1,
                partition_epoch: state.partition_epoch + 1,
                ..state.clone()
            })
        }
        None => None,
    }
}

/// A broker was fenced: drop it from the ISR (keeping at least one member, so the log that
/// has every committed record stays known) and move leadership if it led.
pub fn on_broker_fenced(
    state: &PartitionMeta,
    broker: i32,
    live: &BTreeSet<i32>,
    unclean_allowed: bool,
) -> Option<PartitionMeta> {
    if !state.replicas.contains(&broker) {
        return None;
    }
    let mut next = state.clone();
    if next.isr.len() > 1 && next.isr.contains(&broker) {
        next.isr.retain(|r| *r != broker);
        next.partition_epoch += 1;
    }
    if next.leader == broker {
        return elect(&next, live, unclean_allowed).or(Some(next));
    }
    (next != *state).then_some(next)
}

/// A broker came back: an offline partition whose ISR includes it gets a leader again.
pub fn on_broker_unfenced(
    state: &PartitionMeta,
    live: &BTreeSet<i32>,
    unclean_allowed: bool,
) -> Option<PartitionMeta> {
    if state.leader == NO_LEADER {
        elect(state, live, unclean_allowed)
    } else {
        None
    }
}

/// Moves leadership back to the preferred (first) replica when it is live and in sync.
pub fn elect_preferred(state: &PartitionMeta, live: &BTreeSet<i32>) -> Option<PartitionMeta> {
    let preferred = *state.replicas.first()?;
    if state.leader == preferred || !live.contains(&preferred) || !state.isr.contains(&preferred) {
        return None;
    }
    Some(with_leader(state, preferred, state.isr.clone()))
}

/// Validates and applies an ISR change proposed by the partition's leader.
pub fn alter_isr(
    state: &PartitionMeta,
    leader: i32,
    leader_epoch: i32,
    partition_epoch: i32,
    new_isr: &[i32],
    new_isr_epochs: &[i64],
    registered: &BTreeMap<i32, i64>,
) -> Result<PartitionMeta, IsrChangeError> {
    if leader != state.leader || leader_epoch != state.leader_epoch {
        return Err(IsrChangeError::FencedLeaderEpoch {
            leader,
            epoch: leader_epoch,
        });
    }
    if partition_epoch != state.partition_epoch {
        return Err(IsrChangeError::InvalidUpdateVersion {
            got: partition_epoch,
            current: state.partition_epoch,
        });
    }
    if !new_isr.contains(&leader) {
        return Err(IsrChangeError::LeaderNotInIsr);
    }
    let added: Vec<i32> = new_isr
        .iter()
        .copied()
        .filter(|r| !state.isr.contains(r))
        .collect();
    // A replica joins only as the live registration whose fetches caught it up (KIP-903):
    // an earlier incarnation's progress may have been lost in a crash.
    let eligible = |i: usize, r: i32| {
        registered
            .get(&r)
            .is_some_and(|epoch| new_isr_epochs.get(i) == Some(epoch))
    };
    if let Some((_, bad)) = new_isr
        .iter()
        .copied()
        .enumerate()
        .find(|&(i, r)| !state.replicas.contains(&r) || (added.contains(&r) && !eligible(i, r)))
    {
        return Err(IsrChangeError::IneligibleReplica(bad));
    }
    let mut isr: Vec<i32> = state
        .replicas
        .iter()
        .copied()
        .filter(|r| new_isr.contains(r))
        .collect();
    isr.dedup();
    Ok(PartitionMeta {
        isr,
        partition_epoch: state.partition_epoch + 1,
        ..state.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn partition(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionMeta {
        PartitionMeta {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 5,
            partition_epoch: 9,
        }
    }

    fn live(ids: &[i32]) -> BTreeSet<i32> {
        ids.iter().copied().collect()
    }

    /// Live brokers, each registered as epoch 1.
    fn registered(ids: &[i32]) -> BTreeMap<i32, i64> {
        ids.iter().map(|id| (*id, 1)).collect()
    }

    #[test]
    fn clean_election_picks_next_in_sync_replica() {
        let state = partition(&[1, 2, 3], &[1, 2, 3], 1);
        let next = on_broker_fenced(&state, 1, &live(&[2, 3]), false).unwrap();
        assert_eq!(next.leader, 2);
        assert_eq!(next.isr, vec![2, 3]);
        assert_eq!(next.leader_epoch, 6);
        assert!(next.partition_epoch > state.partition_epoch);
    }

    #[test]
    fn out_of_sync_replicas_need_unclean_election() {
        let state = partition(&[1, 2, 3], &[1], 1);
        let offline = on_broker_fenced(&state, 1, &live(&[2, 3]), false).unwrap();
        assert_eq!(offline.leader, NO_LEADER);
        assert_eq!(offline.isr, vec![1], "last in-sync replica remembered");
        let unclean = on_broker_fenced(&state, 1, &live(&[2, 3]), true).unwrap();
        assert_eq!(unclean.leader, 2);
        assert_eq!(unclean.isr, vec![2]);
        // The last in-sync replica returns: it leads again.
        let back = on_broker_unfenced(&offline, &live(&[1, 2, 3]), false).unwrap();
        assert_eq!(back.leader, 1);
        assert_eq!(back.leader_epoch, offline.leader_epoch + 1);
    }

    #[test]
    fn follower_loss_shrinks_isr_without_leader_change() {
        let state = partition(&[1, 2, 3], &[1, 2, 3], 1);
        let next = on_broker_fenced(&state, 3, &live(&[1, 2]), false).unwrap();
        assert_eq!((next.leader, next.leader_epoch), (1, 5));
        assert_eq!(next.isr, vec![1, 2]);
        assert!(on_broker_fenced(&state, 7, &live(&[1, 2, 3]), false).is_none());
    }

    #[test]
    fn preferred_leader_returns_when_in_sync() {
        let state = partition(&[1, 2, 3], &[2, 3], 2);
        assert!(
            elect_preferred(&state, &live(&[1, 2, 3])).is_none(),
            "not in ISR yet"
        );
        let synced = partition(&[1, 2, 3], &[1, 2, 3], 2);
        let next = elect_preferred(&synced, &live(&[1, 2, 3])).unwrap();
        assert_eq!((next.leader, next.leader_epoch), (1, 6));
    }

    #[test]
    fn isr_changes_are_fenced_by_epochs() {
        let state = partition(&[1, 2, 3], &[1, 2], 1);
        let all = registered(&[1, 2, 3]);
        let next = alter_isr(&state, 1, 5, 9, &[1, 2, 3], &[1, 1, 1], &all).unwrap();
        assert_eq!(next.isr, vec![1, 2, 3]);
        assert_eq!(next.partition_epoch, 10);
        assert_eq!(
            alter_isr(&state, 2, 5, 9, &[2], &[1], &all),
            Err(IsrChangeError::FencedLeaderEpoch {
                leader: 2,
                epoch: 5
            })
        );
        assert_eq!(
            alter_isr(&state, 1, 4, 9, &[1], &[1], &all),
            Err(IsrChangeError::FencedLeaderEpoch {
                leader: 1,
                epoch: 4
            })
        );
        assert_eq!(
            alter_isr(&state, 1, 5, 8, &[1], &[1], &all),
            Err(IsrChangeError::InvalidUpdateVersion { got: 8, current: 9 })
        );
        assert_eq!(
            alter_isr(&state, 1, 5, 9, &[1, 4], &[1, 1], &all),
            Err(IsrChangeError::IneligibleReplica(4))
        );
        assert_eq!(
            alter_isr(&state, 1, 5, 9, &[1, 3], &[1, 1], &registered(&[1, 2])),
            Err(IsrChangeError::IneligibleReplica(3))
        );
        assert_eq!(
            alter_isr(&state, 1, 5, 9, &[1, 3], &[1, 0], &all),
            Err(IsrChangeError::IneligibleReplica(3)),
            "caught up in an earlier incarnation"
        );
        assert_eq!(
            alter_isr(&state, 1, 5, 9, &[2], &[1], &all),
            Err(IsrChangeError::LeaderNotInIsr)
        );
    }

    proptest! {
        /// Whatever fails, a clean election never picks a replica outside the ISR, and
        /// leader epochs only grow.
        #[test]
        fn elections_are_clean_and_monotonic(fail_order in proptest::sample::subsequence(vec![1, 2, 3, 4, 5], 0..5)) {
            let mut state = partition(&[1, 2, 3, 4, 5], &[1, 2, 3], 1);
            let mut alive = live(&[1, 2, 3, 4, 5]);
            for broker in fail_order {
                alive.remove(&broker);
                let before = state.clone();
                if let Some(next) = on_broker_fenced(&state, broker, &alive, false) {
                    prop_assert!(next.leader_epoch >= before.leader_epoch);
                    prop_assert!(next.partition_epoch > before.partition_epoch);
                    if next.leader != NO_LEADER {
                        prop_assert!(before.isr.contains(&next.leader));
                        prop_assert!(alive.contains(&next.leader));
                    }
                    prop_assert!(!next.isr.is_empty());
                    state = next;
                }
            }
        }
    }
}
