//! ElectLeaders (preferred or unclean, on request) and the periodic restoration of
//! preferred leaders.

use std::collections::BTreeSet;

use tributary_metadata::rpc::ElectionResults;
use tributary_metadata::{ApiError, MetadataImage, PartitionMeta, ResponseError};

use super::{Change, ControllerState};
use crate::election::{self, NO_LEADER};

/// How long a broker must have been live before the automatic rebalance gives it its
/// preferred leaderships back. A broker back from a restart often has a new address (a new
/// pod IP), and Java clients keep a host's old address for 30 s (`networkaddress.cache.ttl`):
/// moving leadership to it sooner leaves them unable to reach the leader until then.
pub const PREFERRED_LEADER_SETTLE_MS: u64 = 60_000;

impl ControllerState {
    /// ElectLeaders for the given partitions, or all of them. Only explicitly named
    /// partitions get a per-partition error; an election over everything reports what it
    /// changed.
    pub fn elect_leaders(
        &self,
        preferred: bool,
        partitions: Option<&[(String, i32)]>,
    ) -> Change<ElectionResults> {
        self.elections(preferred, partitions, &self.image.live_brokers())
    }

    /// Elections among `eligible` brokers.
    fn elections(
        &self,
        preferred: bool,
        partitions: Option<&[(String, i32)]>,
        eligible: &BTreeSet<i32>,
    ) -> Change<ElectionResults> {
        let mut next = self.next_image();
        let targets: Vec<(String, i32)> = match partitions {
            Some(list) => list.to_vec(),
            None => next
                .topics
                .values()
                .flat_map(|t| (0..t.partitions.len() as i32).map(move |p| (t.name.clone(), p)))
                .collect(),
        };
        let explicit = partitions.is_some();
        let mut results = Vec::new();
        let mut changed = false;
        for (topic, p) in targets {
            let Some(state) = next
                .topics
                .get(&topic)
                .and_then(|t| t.partitions.get(p as usize))
                .cloned()
            else {
                results.push((
                    (topic, p),
                    Err(ApiError::new(
                        ResponseError::UnknownTopicOrPartition,
                        "unknown partition",
                    )),
                ));
                continue;
            };
            let outcome = if preferred {
                preferred_election(&state, eligible)
            } else {
                unclean_election(&state, eligible)
            };
            match outcome {
                Ok(updated) => {
                    if let Some(t) = next.topics.get_mut(&topic) {
                        t.partitions[p as usize] = updated;
                    }
                    changed = true;
                    results.push(((topic, p), Ok(())));
                }
                Err(e) if explicit => results.push(((topic, p), Err(e))),
                Err(_) => {}
            }
        }
        Change::maybe(results, changed.then_some(next))
    }

    /// Automatic preferred-leader rebalance (`auto.leader.rebalance.enable`). Only brokers
    /// live for [`PREFERRED_LEADER_SETTLE_MS`] take their leaderships back.
    pub fn rebalance_leaders(&self, now_ms: u64) -> Option<MetadataImage> {
        let settled: BTreeSet<i32> = self
            .live_since
            .iter()
            .filter(|(_, since)| now_ms.saturating_sub(**since) >= PREFERRED_LEADER_SETTLE_MS)
            .map(|(id, _)| *id)
            .collect();
        self.elections(true, None, &settled).image
    }
}

fn preferred_election(
    state: &PartitionMeta,
    live: &std::collections::BTreeSet<i32>,
) -> Result<PartitionMeta, ApiError> {
    match election::elect_preferred(state, live) {
        Some(updated) => Ok(updated),
        None if state.replicas.first() == Some(&state.leader) => Err(ApiError::new(
            ResponseError::ElectionNotNeeded,
            "Leader is already the preferred replica",
        )),
        None => Err(ApiError::new(
            ResponseError::PreferredLeaderNotAvailable,
            "The preferred leader is not available or not in sync",
        )),
    }
}

fn unclean_election(
    state: &PartitionMeta,
    live: &std::collections::BTreeSet<i32>,
) -> Result<PartitionMeta, ApiError> {
    match election::elect(state, live, true) {
        Some(updated) if updated.leader != NO_LEADER => Ok(updated),
        _ if state.leader != NO_LEADER && live.contains(&state.leader) => Err(ApiError::new(
            ResponseError::ElectionNotNeeded,
            "Partition has a live leader",
        )),
        _ => Err(ApiError::new(
            ResponseError::EligibleLeadersNotAvailable,
            "No live replica",
        )),
    }
}

#[cfg(test)]
mod tests {
    use tributary_metadata::rpc::Registration;
    use uuid::Uuid;

    use super::*;
    use crate::state::testing::{commit, isr_change, state_with_topic};

    #[test]
    fn elections_report_what_they_could_not_do() {
        let state = state_with_topic(3, "t", 1, 3);
        let preferred = state.image().topics["t"].partitions[0].replicas[0];
        let elected = state.elect_leaders(true, Some(&[("t".into(), 0), ("u".into(), 0)]));
        assert!(elected.image.is_none());
        assert_eq!(
            elected.reply[0].1.as_ref().unwrap_err().code,
            ResponseError::ElectionNotNeeded
        );
        assert_eq!(
            elected.reply[1].1.as_ref().unwrap_err().code,
            ResponseError::UnknownTopicOrPartition
        );
        assert_eq!(state.image().topics["t"].partitions[0].leader, preferred);
        let unclean = state.elect_leaders(false, Some(&[("t".into(), 0)]));
        assert_eq!(
            unclean.reply[0].1.as_ref().unwrap_err().code,
            ResponseError::ElectionNotNeeded
        );
        assert!(state.rebalance_leaders(0).is_none());
    }

    #[test]
    fn a_restarted_broker_leads_again_only_once_settled() {
        let mut state = state_with_topic(3, "t", 1, 3);
        let preferred = state.image().topics["t"].partitions[0].leader;
        let info = state.image().brokers[&preferred].clone();
        // The preferred leader restarts at t = 1 s: a new incarnation, fenced, then back.
        let restart = state.register(
            Registration {
                broker_id: preferred,
                incarnation: Uuid::new_v4(),
                rack: info.rack.clone(),
                host: info.host.clone(),
                port: info.port,
                cluster_id: None,
            },
            1_000,
        );
        commit(&mut state, restart).unwrap();
        let p = state.image().topics["t"].partitions[0].clone();
        assert_ne!(p.leader, preferred);
        // Its new leader takes it back into the ISR once it has caught up.
        let rejoin = state.alter_partition(&isr_change(&state, "t", p.replicas.clone()));
        commit(&mut state, rejoin).unwrap();
        assert!(
            state
                .rebalance_leaders(1_000 + PREFERRED_LEADER_SETTLE_MS - 1)
                .is_none(),
            "clients may still hold the restarted broker's old address"
        );
        let image = state
            .rebalance_leaders(1_000 + PREFERRED_LEADER_SETTLE_MS)
            .expect("settled: the preferred leader leads again");
        assert_eq!(image.topics["t"].partitions[0].leader, preferred);
    }
}
