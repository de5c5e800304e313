//! How a member moves toward its target assignment (Kafka's `CurrentAssignmentBuilder`):
//! partitions it must give up are revoked first, at its current epoch; only once it
//! reports them released does it advance to the target epoch, and it gains a partition
//! only when no other member still holds it. So no partition is ever consumed by two
//! members at once, without a group-wide barrier like the classic protocol's.

use super::TopicPartitions;
use uuid::Uuid;

/// Where a member stands in its reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberState {
    /// It holds its target assignment at the group's assignment epoch.
    Stable,
    /// It must revoke `revoking` before it may advance.
    UnrevokedPartitions,
    /// It advanced, but some target partitions are still held by other members.
    UnreleasedPartitions,
}

impl MemberState {
    /// The name Kafka's tools show.
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Stable => "stable",
            MemberState::UnrevokedPartitions => "unrevoked_partitions",
            MemberState::UnreleasedPartitions => "unreleased_partitions",
        }
    }
}

/// A member's assignment and its epochs: what reconciliation changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberAssignment {
    pub epoch: i32,
    /// The epoch before the last bump: a heartbeat carrying it is a retry of one whose
    /// answer was lost, not a zombie.
    pub previous_epoch: i32,
    pub state: MemberState,
    /// Partitions the member may consume.
    pub assigned: TopicPartitions,
    /// Partitions the member was told to give up and has not yet reported released.
    pub revoking: TopicPartitions,
}

impl MemberAssignment {
    /// A member that just joined: epoch 0, nothing assigned.
    pub fn joining() -> Self {
        MemberAssignment {
            epoch: 0,
            previous_epoch: 0,
            state: MemberState::Stable,
            assigned: TopicPartitions::new(),
            revoking: TopicPartitions::new(),
        }
    }

    /// The next step toward `target` (of `target_epoch`), given the partitions the member
    /// reported owning in this heartbeat (`None`: not reported) and which partitions
    /// another member still holds.
    pub fn reconcile(
        &self,
        target_epoch: i32,
        target: &TopicPartitions,
        owned: Option<&TopicPartitions>,
        held_elsewhere: impl Fn(Uuid, i32) -> bool,
    ) -> MemberAssignment {
        match self.state {
            MemberState::Stable if self.epoch == target_epoch => self.clone(),
            MemberState::UnrevokedPartitions if !releases(owned, &self.revoking) => self.clone(),
            _ => self.advance(target_epoch, target, owned, held_elsewhere),
        }
    }

    fn advance(
        &self,
        target_epoch: i32,
        target: &TopicPartitions,
        owned: Option<&TopicPartitions>,
        held_elsewhere: impl Fn(Uuid, i32) -> bool,
    ) -> MemberAssignment {
        let keep = intersection(&self.assigned, target);
        let revoke = difference(&self.assigned, target);
        let wanted = difference(target, &self.assigned);
        // A member that reports owning none of them (one rejoining after a fence, say)
        // has nothing to revoke: it moves on at once, as Kafka's builder does.
        if !revoke.is_empty() && !releases(owned, &revoke) {
            return MemberAssignment {
                epoch: self.epoch,
                previous_epoch: self.previous_epoch,
                state: MemberState::UnrevokedPartitions,
                assigned: keep,
                revoking: revoke,
            };
        }
        let mut assigned = keep;
        let mut unreleased = false;
        for (topic, parts) in wanted {
            for p in parts {
                if held_elsewhere(topic, p) {
                    unreleased = true;
                } else {
                    assigned.entry(topic).or_default().insert(p);
                }
            }
        }
        MemberAssignment {
            epoch: target_epoch,
            previous_epoch: if target_epoch == self.epoch {
                self.previous_epoch
            } else {
                self.epoch
            },
            state: if unreleased {
                MemberState::UnreleasedPartitions
            } else {
                MemberState::Stable
            },
            assigned,
            revoking: TopicPartitions::new(),
        }
    }
}

/// Whether the member's report shows none of `revoking` still owned.
fn releases(owned: Option<&TopicPartitions>, revoking: &TopicPartitions) -> bool {
    owned.is_some_and(|owned| intersection(owned, revoking).is_empty())
}

/// Partitions in both.
pub fn intersection(a: &TopicPartitions, b: &TopicPartitions) -> TopicPartitions {
    a.iter()
        .filter_map(|(topic, parts)| {
            let common: std::collections::BTreeSet<i32> =
                parts.intersection(b.get(topic)?).copied().collect();
            (!common.is_empty()).then_some((*topic, common))
        })
        .collect()
}

/// Partitions of `a` not in `b`.
pub fn difference(a: &TopicPartitions, b: &TopicPartitions) -> TopicPartitions {
    a.iter()
        .filter_map(|(topic, parts)| {
            let rest: std::collections::BTreeSet<i32> = match b.get(topic) {
                Some(other) => parts.difference(other).copied().collect(),
                None => parts.clone(),
            };
            (!rest.is_empty()).then_some((*topic, rest))
        })
        .collect()
}

/// Whether every partition of `a` is in `b`.
pub fn is_subset(a: &TopicPartitions, b: &TopicPartitions) -> bool {
    difference(a, b).is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const T: Uuid = Uuid::from_u128(7);

    fn parts(ps: &[i32]) -> TopicPartitions {
        if ps.is_empty() {
            return TopicPartitions::new();
        }
        TopicPartitions::from([(T, ps.iter().copied().collect::<BTreeSet<_>>())])
    }

    /// A stable member at `epoch` holding `assigned`.
    fn stable(epoch: i32, previous_epoch: i32, assigned: &[i32]) -> MemberAssignment {
        MemberAssignment {
            epoch,
            previous_epoch,
            state: MemberState::Stable,
            assigned: parts(assigned),
            revoking: TopicPartitions::new(),
        }
    }

    #[test]
    fn a_joining_member_takes_free_partitions_at_the_target_epoch() {
        let next = MemberAssignment::joining().reconcile(3, &parts(&[0, 1]), None, |_, _| false);
        assert_eq!(next.epoch, 3);
        assert_eq!(next.previous_epoch, 0);
        assert_eq!(next.state, MemberState::Stable);
        assert_eq!(next.assigned, parts(&[0, 1]));
    }

    #[test]
    fn partitions_are_revoked_before_the_epoch_advances() {
        let member = stable(2, 1, &[0, 1, 2]);
        let target = parts(&[0, 1]);
        let revoking = member.reconcile(3, &target, None, |_, _| false);
        assert_eq!(revoking.state, MemberState::UnrevokedPartitions);
        assert_eq!(revoking.epoch, 2, "the epoch waits for the revocation");
        assert_eq!(revoking.assigned, parts(&[0, 1]));
        assert_eq!(revoking.revoking, parts(&[2]));
        // Not reported, or still owned: it waits.
        assert_eq!(revoking.reconcile(3, &target, None, |_, _| false), revoking);
        let still = parts(&[0, 1, 2]);
        assert_eq!(
            revoking.reconcile(3, &target, Some(&still), |_, _| false),
            revoking
        );
        // Released: it advances.
        let done = revoking.reconcile(3, &target, Some(&parts(&[0, 1])), |_, _| false);
        assert_eq!((done.epoch, done.previous_epoch), (3, 2));
        assert_eq!(done.state, MemberState::Stable);
        assert!(done.revoking.is_empty());
    }

    #[test]
    fn a_partition_another_member_holds_is_given_once_released() {
        let member = stable(2, 1, &[0]);
        let target = parts(&[0, 1]);
        let waiting = member.reconcile(3, &target, None, |_, p| p == 1);
        assert_eq!(waiting.state, MemberState::UnreleasedPartitions);
        assert_eq!((waiting.epoch, waiting.assigned.clone()), (3, parts(&[0])));
        let got = waiting.reconcile(3, &target, None, |_, _| false);
        assert_eq!(got.state, MemberState::Stable);
        assert_eq!((got.epoch, got.previous_epoch), (3, 2));
        assert_eq!(got.assigned, parts(&[0, 1]));
    }

    #[test]
    fn a_member_that_owns_none_of_what_goes_advances_at_once() {
        let rejoining = stable(0, 0, &[0, 1, 2]);
        let next = rejoining.reconcile(4, &parts(&[0]), Some(&parts(&[])), |_, _| false);
        assert_eq!((next.epoch, next.state), (4, MemberState::Stable));
        assert_eq!(next.assigned, parts(&[0]));
        // Still owning one of them: it must revoke first.
        let next = rejoining.reconcile(4, &parts(&[0]), Some(&parts(&[2])), |_, _| false);
        assert_eq!(next.state, MemberState::UnrevokedPartitions);
    }

    #[test]
    fn set_helpers() {
        assert_eq!(intersection(&parts(&[0, 1]), &parts(&[1, 2])), parts(&[1]));
        assert_eq!(difference(&parts(&[0, 1]), &parts(&[1, 2])), parts(&[0]));
        assert!(is_subset(&parts(&[1]), &parts(&[1, 2])));
        assert!(!is_subset(&parts(&[3]), &parts(&[1, 2])));
        assert!(difference(&parts(&[1]), &parts(&[1])).is_empty());
    }
}
