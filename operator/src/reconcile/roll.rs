//! Restarting brokers whose pod spec changed, safely: one broker at a time across the
//! whole cluster, only while every broker is ready, and only when each partition the
//! broker holds is fully in sync, so no partition drops below its `min.insync.replicas`
//! and the broker restarted before is back in every ISR before the next one goes (the
//! rule of Strimzi's KafkaRoller, gated on the ISR rather than on pod readiness alone).
//! A broker must also have been ready for [`SETTLE`] before the next one goes: a restarted
//! broker pod has a new IP address, and Java clients keep resolved addresses for 30 s
//! (`networkaddress.cache.ttl`), so a client that must reach the broker restarted before
//! would otherwise wait out a connection timeout on its old address.

use std::time::Duration;

use tributary_metadata::MetadataImage;

/// How long every broker must have been ready before another one is restarted.
pub const SETTLE: Duration = Duration::from_secs(35);

/// A broker pod as the roll sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollCandidate {
    pub pod: String,
    pub broker_id: i32,
    /// How long the pod has been Ready (`None`: it is not).
    pub ready_for: Option<Duration>,
    /// The pod runs an older revision of its StatefulSet's template.
    pub outdated: bool,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RollDecision {
    /// Every broker runs the current spec.
    Done,
    /// Restart this pod now.
    Restart { pod: String, broker_id: i32 },
    /// Some brokers are outdated, but restarting one now could cost availability.
    Wait(String),
}

/// Whether every partition `broker` holds a replica of has all its replicas in sync.
fn fully_in_sync(image: &MetadataImage, broker: i32) -> Result<(), String> {
    for topic in image.topics.values() {
        for (index, partition) in topic.partitions.iter().enumerate() {
            if partition.replicas.contains(&broker)
                && partition.isr.len() < partition.replicas.len()
            {
                return Err(format!(
                    "partition {}-{index} has {} of {} replicas in sync",
                    topic.name,
                    partition.isr.len(),
                    partition.replicas.len()
                ));
            }
        }
    }
    Ok(())
}

/// The next step of a roll over `brokers` (every desired broker, present or not).
pub fn next_step(brokers: &[RollCandidate], image: &MetadataImage) -> RollDecision {
    let outdated: Vec<&RollCandidate> = brokers.iter().filter(|b| b.outdated).collect();
    if outdated.is_empty() {
        return RollDecision::Done;
    }
    let live = image.live_brokers();
    if let Some(down) = brokers
        .iter()
        .find(|b| b.ready_for.is_none() || !live.contains(&b.broker_id))
    {
        return RollDecision::Wait(format!(
            "waiting for broker {} ({}) to be ready",
            down.broker_id, down.pod
        ));
    }
    if let Some(settling) = brokers.iter().find(|b| b.ready_for < Some(SETTLE)) {
        return RollDecision::Wait(format!(
            "waiting for broker {} ({}) to settle after its restart",
            settling.broker_id, settling.pod
        ));
    }
    let mut reasons = Vec::new();
    for candidate in outdated {
        match fully_in_sync(image, candidate.broker_id) {
            Ok(()) => {
                return RollDecision::Restart {
                    pod: candidate.pod.clone(),
                    broker_id: candidate.broker_id,
                }
            }
            Err(reason) => reasons.push(reason),
        }
    }
    RollDecision::Wait(format!(
        "waiting before restarting a broker: {}",
        reasons.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(isr: &[&[i32]]) -> MetadataImage {
        let partitions: Vec<(i32, &[i32])> = isr.iter().map(|isr| (isr[0], *isr)).collect();
        super::super::fixtures::image(&[1000, 2000, 3000], &partitions)
    }

    fn brokers(outdated: [bool; 3], ready: [bool; 3]) -> Vec<RollCandidate> {
        [1000, 2000, 3000]
            .into_iter()
            .enumerate()
            .map(|(i, id)| RollCandidate {
                pod: format!("pod-{id}"),
                broker_id: id,
                ready_for: ready[i].then_some(Duration::from_secs(60)),
                outdated: outdated[i],
            })
            .collect()
    }

    #[test]
    fn nothing_to_do_when_every_broker_is_current() {
        let image = image(&[&[1000]]);
        assert_eq!(
            next_step(&brokers([false; 3], [false; 3]), &image),
            RollDecision::Done
        );
    }

    #[test]
    fn one_outdated_broker_restarts_when_all_are_in_sync() {
        let image = image(&[&[1000, 2000, 3000]]);
        let step = next_step(&brokers([false, true, true], [true; 3]), &image);
        assert_eq!(
            step,
            RollDecision::Restart {
                pod: "pod-2000".into(),
                broker_id: 2000
            }
        );
    }

    #[test]
    fn the_roll_waits_for_readiness_and_for_the_isr() {
        let in_sync = image(&[&[1000, 2000, 3000]]);
        // The broker restarted last is not ready yet.
        let step = next_step(
            &brokers([false, false, true], [true, false, true]),
            &in_sync,
        );
        assert!(
            matches!(step, RollDecision::Wait(ref why) if why.contains("2000")),
            "{step:?}"
        );
        // Ready again, but not yet back in the ISR.
        let catching_up = image(&[&[1000, 3000]]);
        let step = next_step(&brokers([false, false, true], [true; 3]), &catching_up);
        assert!(
            matches!(step, RollDecision::Wait(ref why) if why.contains("t-0 has 2 of 3")),
            "{step:?}"
        );
        // Ready, but only just: clients have not caught up with its restart yet.
        let mut settling = brokers([false, false, true], [true; 3]);
        settling[1].ready_for = Some(Duration::from_secs(3));
        let step = next_step(&settling, &in_sync);
        assert!(
            matches!(step, RollDecision::Wait(ref why) if why.contains("settle")),
            "{step:?}"
        );
        // A fenced broker is not ready, whatever its pod says.
        let mut fenced = in_sync.clone();
        fenced.brokers.get_mut(&1000).unwrap().fenced = true;
        let step = next_step(&brokers([false, false, true], [true; 3]), &fenced);
        assert!(
            matches!(step, RollDecision::Wait(ref why) if why.contains("1000")),
            "{step:?}"
        );
    }
}
