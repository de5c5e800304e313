//! Broker registration, sessions and fencing. A broker that misses its session, or whose
//! process is replaced by a new incarnation, is fenced: it leaves every ISR and its
//! leaderships move.

use tributary_metadata::rpc::Registration;
use tributary_metadata::{ApiError, BrokerInfo, MetadataImage, ResponseError};

use super::{Change, ControllerState};
use crate::election;

/// How long a broker whose heartbeat connection closed has to reconnect before it is
/// fenced. A crashed process closes its sockets at once; a live broker reconnects on its
/// next heartbeat.
pub const RECONNECT_GRACE_MS: u64 = 400;

impl ControllerState {
    /// Marks a broker fenced or unfenced in `next` and runs the elections that follow:
    /// fencing drops it from ISRs and moves its leaderships; unfencing gives offline
    /// partitions a leader again.
    fn set_fenced(&self, next: &mut MetadataImage, broker: i32, fenced: bool) {
        if let Some(b) = next.brokers.get_mut(&broker) {
            b.fenced = fenced;
        }
        let live = next.live_brokers();
        let before = next.clone();
        for topic in next.topics.values_mut() {
            let unclean = self.unclean_allowed(&before, topic);
            for partition in topic.partitions.iter_mut() {
                let updated = if fenced {
                    election::on_broker_fenced(partition, broker, &live, unclean)
                } else {
                    election::on_broker_unfenced(partition, &live, unclean)
                };
                if let Some(updated) = updated {
                    *partition = updated;
                }
            }
        }
    }

    /// BrokerRegistration: answered with the broker's new epoch. A new incarnation of a
    /// known broker first fences the old one, so its leaderships move and it rejoins ISRs
    /// only once caught up.
    pub fn register(
        &mut self,
        registration: Registration,
        now_ms: u64,
    ) -> Change<Result<i64, ApiError>> {
        let Registration {
            broker_id,
            incarnation,
            rack,
            host,
            port,
            cluster_id,
        } = registration;
        if let Some(id) = cluster_id.as_deref() {
            if !id.is_empty() && id != self.image.cluster_id {
                return Change::refused(ApiError::new(
                    ResponseError::InconsistentClusterId,
                    format!(
                        "broker belongs to cluster {id}, this is {}",
                        self.image.cluster_id
                    ),
                ));
            }
        }
        self.heard_from_a_broker(now_ms);
        if let Some(existing) = self.image.brokers.get(&broker_id) {
            if existing.incarnation == incarnation
                && existing.host == host
                && existing.port == port
                && existing.rack == rack
            {
                self.sessions
                    .insert(broker_id, now_ms + self.config.session_timeout_ms);
                if !existing.fenced {
                    return Change::unchanged(Ok(existing.epoch));
                }
            }
        }
        let mut next = self.next_image();
        if next.brokers.get(&broker_id).is_some_and(|b| !b.fenced) {
            self.set_fenced(&mut next, broker_id, true);
        }
        let epoch = next.version as i64;
        next.brokers.insert(
            broker_id,
            BrokerInfo {
                id: broker_id,
                rack,
                host,
                port,
                epoch,
                incarnation,
                fenced: true,
            },
        );
        self.set_fenced(&mut next, broker_id, false);
        self.sessions
            .insert(broker_id, now_ms + self.config.session_timeout_ms);
        self.live_since.insert(broker_id, now_ms);
        Change::to(Ok(epoch), next)
    }

    /// BrokerHeartbeat: extends the session; a fenced broker that heartbeats is unfenced.
    /// The reply is whether the broker is still fenced.
    pub fn heartbeat(
        &mut self,
        broker_id: i32,
        broker_epoch: i64,
        now_ms: u64,
    ) -> Change<Result<bool, ApiError>> {
        let fenced = match self.check_epoch(broker_id, broker_epoch) {
            Ok(broker) => broker.fenced,
            Err(e) => return Change::refused(e),
        };
        self.heard_from_a_broker(now_ms);
        self.sessions
            .insert(broker_id, now_ms + self.config.session_timeout_ms);
        if !fenced {
            return Change::unchanged(Ok(false));
        }
        let mut next = self.next_image();
        self.set_fenced(&mut next, broker_id, false);
        self.live_since.insert(broker_id, now_ms);
        Change::to(Ok(false), next)
    }

    /// Notes that a broker was heard from. After a silence longer than a session (the
    /// controller was cut off, or everyone was down), every broker gets a full session to
    /// be heard from too before any is fenced.
    fn heard_from_a_broker(&mut self, now_ms: u64) {
        if now_ms.saturating_sub(self.last_heard_ms) > self.config.session_timeout_ms {
            tracing::info!("brokers heard from again after a silence: every session renewed");
            for deadline in self.sessions.values_mut() {
                *deadline = (*deadline).max(now_ms + self.config.session_timeout_ms);
            }
        }
        self.last_heard_ms = self.last_heard_ms.max(now_ms);
    }

    /// ControlledShutdown: fences a broker that is about to stop, so its leaderships move
    /// while it still answers (Kafka's controlled shutdown). It is unfenced again when it
    /// heartbeats or registers after its restart.
    pub fn controlled_shutdown(
        &mut self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Change<Result<(), ApiError>> {
        let fenced = match self.check_epoch(broker_id, broker_epoch) {
            Ok(broker) => broker.fenced,
            Err(e) => return Change::refused(e),
        };
        self.sessions.remove(&broker_id);
        self.live_since.remove(&broker_id);
        if fenced {
            return Change::unchanged(Ok(()));
        }
        tracing::info!(
            broker = broker_id,
            "controlled shutdown: moving leaderships"
        );
        let mut next = self.next_image();
        self.set_fenced(&mut next, broker_id, true);
        Change::to(Ok(()), next)
    }

    /// The broker's session channel closed: its session now ends within
    /// [`RECONNECT_GRACE_MS`] unless it heartbeats again.
    pub fn shorten_session(&mut self, broker_id: i32, now_ms: u64) {
        if let Some(deadline) = self.sessions.get_mut(&broker_id) {
            *deadline = (*deadline).min(now_ms + RECONNECT_GRACE_MS);
        }
    }

    /// Fences brokers whose session expired, moving their leaderships.
    ///
    /// A broker is fenced only if the controller heard from some broker during the last
    /// half of its session: a controller that hears from no one fences no one. Either it is
    /// the one cut off from the brokers (which keep serving, and fencing them would move
    /// every leadership to whichever broker it hears from first when it returns), or every
    /// broker is down and there is no one to move leaderships to. Brokers heartbeat several
    /// times per half session, so one that died is fenced as soon as its session ends.
    pub fn expire_sessions(&mut self, now_ms: u64) -> Option<MetadataImage> {
        let heard = self.last_heard_ms + self.config.session_timeout_ms / 2;
        let expired: Vec<i32> = self
            .sessions
            .iter()
            .filter(|(_, deadline)| **deadline < now_ms && **deadline < heard)
            .map(|(id, _)| *id)
            .collect();
        if expired.is_empty() {
            return None;
        }
        let mut next = self.next_image();
        for id in expired {
            self.sessions.remove(&id);
            self.live_since.remove(&id);
            if next.brokers.get(&id).is_some_and(|b| !b.fenced) {
                tracing::warn!(broker = id, "broker session expired: fencing");
                self.set_fenced(&mut next, id, true);
            }
        }
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::state::testing::{commit, state_with_brokers, state_with_topic};

    #[test]
    fn a_controller_that_hears_from_no_broker_fences_none() {
        let mut state = state_with_topic(3, "t", 1, 3);
        let before = state.image().clone();
        // Brokers heartbeat a little apart, then the controller hears nothing: their
        // sessions end one after the other, and none is fenced.
        for (i, b) in before.brokers.values().enumerate() {
            let change = state.heartbeat(b.id, b.epoch, 1000 + 100 * i as u64);
            commit(&mut state, change).unwrap();
        }
        for now in [2050, 2150, 2250, 60_000] {
            assert!(state.expire_sessions(now).is_none(), "fenced at {now}");
        }
        assert_eq!(state.image(), &before);
        // Two brokers are heard from again: everyone gets a fresh session first.
        for b in before.brokers.values().filter(|b| b.id != 1) {
            let change = state.heartbeat(b.id, b.epoch, 60_100);
            commit(&mut state, change).unwrap();
        }
        assert!(state.expire_sessions(60_200).is_none());
        // Broker 1 stays silent while the others heartbeat: it is fenced a session later.
        for b in before.brokers.values().filter(|b| b.id != 1) {
            let change = state.heartbeat(b.id, b.epoch, 61_000);
            commit(&mut state, change).unwrap();
        }
        let image = state
            .expire_sessions(61_150)
            .expect("the broker still silent is fenced");
        assert!(image.brokers[&1].fenced);
        assert!(!image.brokers[&2].fenced && !image.brokers[&3].fenced);
    }

    #[test]
    fn session_expiry_fences_and_moves_leadership() {
        let mut state = state_with_topic(3, "t", 1, 3);
        let leader = state.image().topics["t"].partitions[0].leader;
        // Everyone but the leader heartbeats.
        for b in state.image().brokers.clone().values() {
            if b.id != leader {
                let change = state.heartbeat(b.id, b.epoch, 900);
                commit(&mut state, change).unwrap();
            }
        }
        let image = state.expire_sessions(1500).expect("leader fenced");
        state.set_image(image);
        let p = &state.image().topics["t"].partitions[0];
        assert_ne!(p.leader, leader);
        assert!(!p.isr.contains(&leader));
        assert_eq!(p.leader_epoch, 1);
        assert!(state.image().brokers[&leader].fenced);
        // The zombie's heartbeat with its old epoch still works (same registration): unfenced.
        let epoch = state.image().brokers[&leader].epoch;
        let change = state.heartbeat(leader, epoch, 1600);
        commit(&mut state, change).unwrap();
        assert!(!state.image().brokers[&leader].fenced);
        // A stale epoch is refused.
        let stale = state.heartbeat(leader, epoch - 100, 1700);
        assert!(stale.image.is_none());
        assert_eq!(
            stale.reply.unwrap_err().code,
            ResponseError::StaleBrokerEpoch
        );
    }

    #[test]
    fn a_closed_session_channel_fences_quickly_unless_the_broker_returns() {
        let mut state = state_with_brokers(2);
        state.shorten_session(1, 100);
        assert!(state
            .expire_sessions(100 + RECONNECT_GRACE_MS - 1)
            .is_none());
        let epoch = state.image().brokers[&2].epoch;
        let change = state.heartbeat(2, epoch, 100);
        commit(&mut state, change).unwrap();
        state.shorten_session(2, 100);
        let change = state.heartbeat(2, epoch, 200);
        commit(&mut state, change).unwrap();
        let image = state
            .expire_sessions(100 + RECONNECT_GRACE_MS + 1)
            .expect("broker 1 fenced");
        assert!(image.brokers[&1].fenced);
        assert!(!image.brokers[&2].fenced, "broker 2 reconnected in time");
    }

    #[test]
    fn reregistration_with_new_incarnation_fences_the_old_one() {
        let mut state = state_with_topic(3, "t", 1, 3);
        let leader = state.image().topics["t"].partitions[0].leader;
        let info = state.image().brokers[&leader].clone();
        let change = state.register(
            Registration {
                broker_id: leader,
                incarnation: Uuid::new_v4(),
                rack: info.rack,
                host: info.host,
                port: info.port,
                cluster_id: None,
            },
            10,
        );
        let epoch = commit(&mut state, change).unwrap();
        assert!(epoch > info.epoch);
        let p = &state.image().topics["t"].partitions[0];
        assert_ne!(
            p.leader, leader,
            "leadership moved off the restarted broker"
        );
        assert!(!state.image().brokers[&leader].fenced);
    }

    #[test]
    fn a_controlled_shutdown_moves_leadership_at_once() {
        let mut state = state_with_topic(3, "t", 1, 3);
        let leader = state.image().topics["t"].partitions[0].leader;
        let epoch = state.image().brokers[&leader].epoch;
        let change = state.controlled_shutdown(leader, epoch);
        commit(&mut state, change).unwrap();
        let p = &state.image().topics["t"].partitions[0];
        assert_ne!(p.leader, leader);
        assert!(!p.isr.contains(&leader));
        assert!(state.image().brokers[&leader].fenced);
        assert!(
            !state.sessions.contains_key(&leader),
            "no session left to expire"
        );
        let again = state.controlled_shutdown(leader, epoch);
        assert!(again.image.is_none(), "already fenced: nothing to do");
        let stale = state.controlled_shutdown(leader, epoch - 1);
        assert_eq!(
            stale.reply.unwrap_err().code,
            ResponseError::StaleBrokerEpoch
        );
    }

    #[test]
    fn a_broker_of_another_cluster_is_refused() {
        let mut state = state_with_brokers(1);
        let change = state.register(
            Registration {
                broker_id: 2,
                incarnation: Uuid::new_v4(),
                rack: None,
                host: "127.0.0.1".into(),
                port: 9002,
                cluster_id: Some("another-cluster".into()),
            },
            0,
        );
        assert!(change.image.is_none());
        assert_eq!(
            change.reply.unwrap_err().code,
            ResponseError::InconsistentClusterId
        );
    }
}
