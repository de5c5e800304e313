//! ElectLeaders (preferred or unclean, on request) and the periodic restoration of
//! preferred leaders.

use tributary_metadata::rpc::ElectionResults;
use tributary_metadata::{ApiError, MetadataImage, PartitionMeta, ResponseError};

use super::{Change, ControllerState};
use crate::election::{self, NO_LEADER};

impl ControllerState {
    /// ElectLeaders for the given partitions, or all of them. Only explicitly named
    /// partitions get a per-partition error; an election over everything reports what it
    /// changed.
    pub fn elect_leaders(
        &self,
        preferred: bool,
        partitions: Option<&[(String, i32)]>,
    ) -> Change<ElectionResults> {
        let mut next = self.next_image();
        let live = next.live_brokers();
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
                preferred_election(&state, &live)
            } else {
                unclean_election(&state, &live)
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

    /// Automatic preferred-leader rebalance (`auto.leader.rebalance.enable`).
    pub fn rebalance_leaders(&self) -> Option<MetadataImage> {
        self.elect_leaders(true, None).image
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
    use super::*;
    use crate::state::testing::state_with_topic;

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
        assert!(state.rebalance_leaders().is_none());
    }
}
