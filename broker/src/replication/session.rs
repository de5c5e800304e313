//! The follower's half of an incremental fetch session (KIP-227) with one leader. A
//! follower of many partitions names them all once; afterwards each fetch names only the
//! partitions whose position changed (usually those that just received records) and the
//! leader answers only for partitions with news, so an idle partition costs nothing per
//! round trip. Pure bookkeeping: the fetcher asks what to send and reports the outcome.

use std::collections::HashMap;

use kafka_protocol::messages::fetch_request::FetchPartition;
use uuid::Uuid;

use crate::fetch_session::INITIAL_EPOCH;

/// A partition of the session: topic id and partition index.
pub type SessionPartition = (Uuid, i32);

/// What one fetch carries: its session fields, the partitions it names, and the ones it
/// drops from the session.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SessionRequest {
    pub session_id: i32,
    pub session_epoch: i32,
    pub partitions: Vec<(Uuid, FetchPartition)>,
    pub forgotten: Vec<SessionPartition>,
}

/// The session as the leader knows it: its id, the epoch the next fetch carries, and the
/// position the leader holds for every partition.
#[derive(Debug, Default)]
pub struct FollowerSession {
    id: i32,
    epoch: i32,
    known: HashMap<SessionPartition, FetchPartition>,
    /// The fetch in flight: what it names becomes `known` once it is answered.
    in_flight: Option<SessionRequest>,
}

impl FollowerSession {
    /// The fetch for `wanted` (every partition to follow, at its current position): the
    /// whole list while no session is open, else only what the leader does not know yet.
    pub fn request(&mut self, wanted: Vec<(Uuid, FetchPartition)>) -> SessionRequest {
        let request = if self.id == 0 {
            SessionRequest {
                session_id: 0,
                session_epoch: INITIAL_EPOCH,
                partitions: wanted,
                forgotten: Vec::new(),
            }
        } else {
            // Usually every known partition is still wanted: no set to build then.
            let still_known = wanted
                .iter()
                .filter(|(topic, p)| self.known.contains_key(&(*topic, p.partition)))
                .count();
            let mut forgotten: Vec<SessionPartition> = Vec::new();
            if still_known < self.known.len() {
                let wanted_keys: std::collections::HashSet<SessionPartition> = wanted
                    .iter()
                    .map(|(topic, p)| (*topic, p.partition))
                    .collect();
                forgotten.extend(self.known.keys().filter(|k| !wanted_keys.contains(k)));
                forgotten.sort();
            }
            let changed = wanted
                .into_iter()
                .filter(|(topic, p)| self.known.get(&(*topic, p.partition)) != Some(p))
                .collect();
            SessionRequest {
                session_id: self.id,
                session_epoch: self.epoch,
                partitions: changed,
                forgotten,
            }
        };
        self.in_flight = Some(request.clone());
        request
    }

    /// Records the leader's answer to the last request: `session_id` as answered (0 when
    /// the leader keeps no session for this follower).
    pub fn answered(&mut self, session_id: i32) {
        let Some(SessionRequest {
            partitions: sent,
            forgotten,
            ..
        }) = self.in_flight.take()
        else {
            return;
        };
        if session_id == 0 {
            self.reset();
            return;
        }
        if self.id == 0 {
            self.id = session_id;
            self.epoch = INITIAL_EPOCH;
            self.known.clear();
        }
        self.epoch = if self.epoch == i32::MAX {
            1
        } else {
            self.epoch + 1
        };
        for key in forgotten {
            self.known.remove(&key);
        }
        for (topic, p) in sent {
            self.known.insert((topic, p.partition), p);
        }
    }

    /// Forgets the session (a failed fetch, a new connection): the next fetch opens a new one.
    pub fn reset(&mut self) {
        *self = FollowerSession::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: i32, offset: i64) -> (Uuid, FetchPartition) {
        (
            Uuid::from_u128(7),
            FetchPartition::default()
                .with_partition(partition)
                .with_fetch_offset(offset),
        )
    }

    fn partitions(request: &SessionRequest) -> Vec<(i32, i64)> {
        request
            .partitions
            .iter()
            .map(|(_, p)| (p.partition, p.fetch_offset))
            .collect()
    }

    #[test]
    fn opens_with_everything_then_sends_only_what_moved() {
        let mut session = FollowerSession::default();
        let first = session.request(vec![at(0, 5), at(1, 9)]);
        assert_eq!((first.session_id, first.session_epoch), (0, INITIAL_EPOCH));
        assert_eq!(partitions(&first), [(0, 5), (1, 9)]);
        session.answered(42);

        let second = session.request(vec![at(0, 5), at(1, 12)]);
        assert_eq!((second.session_id, second.session_epoch), (42, 1));
        assert_eq!(partitions(&second), [(1, 12)]);
        session.answered(42);

        let idle = session.request(vec![at(0, 5), at(1, 12)]);
        assert_eq!(idle.session_epoch, 2);
        assert!(idle.partitions.is_empty() && idle.forgotten.is_empty());
    }

    #[test]
    fn dropped_partitions_are_forgotten_once() {
        let mut session = FollowerSession::default();
        session.request(vec![at(0, 5), at(1, 9)]);
        session.answered(3);
        let request = session.request(vec![at(1, 9)]);
        assert_eq!(request.forgotten, [(Uuid::from_u128(7), 0)]);
        session.answered(3);
        assert!(session.request(vec![at(1, 9)]).forgotten.is_empty());
    }

    #[test]
    fn a_declined_or_failed_session_starts_over_in_full() {
        let mut session = FollowerSession::default();
        session.request(vec![at(0, 5)]);
        session.answered(0);
        let again = session.request(vec![at(0, 5)]);
        assert_eq!((again.session_id, again.session_epoch), (0, INITIAL_EPOCH));
        assert_eq!(partitions(&again), [(0, 5)]);

        session.answered(8);
        session.request(vec![at(0, 6)]);
        session.reset();
        let fresh = session.request(vec![at(0, 6)]);
        assert_eq!((fresh.session_id, fresh.session_epoch), (0, INITIAL_EPOCH));
        assert_eq!(partitions(&fresh), [(0, 6)]);
    }

    #[test]
    fn an_unanswered_request_changes_nothing() {
        let mut session = FollowerSession::default();
        session.request(vec![at(0, 5)]);
        session.answered(8);
        session.request(vec![at(0, 6)]);
        // The fetch failed: the caller resets, or, if it never sent, asks again.
        let retry = session.request(vec![at(0, 6)]);
        assert_eq!(retry.session_epoch, 1);
        assert_eq!(partitions(&retry), [(0, 6)]);
    }
}
