//! What a partition leader tracks about its followers, and the rules that follow from it:
//! the high watermark is the smallest log end offset in the ISR and never moves back; a
//! follower that has not caught up for `replica.lag.time.max.ms` leaves the ISR; a follower
//! that reaches the high watermark rejoins it. These are Kafka's `Partition.scala` rules,
//! as pure functions of the leader's view.

use std::collections::BTreeMap;

/// A follower rejoins the ISR only while it is fetching: one that has not fetched for this
/// long (paused, fenced, partitioned) is not proposed back, however far it had got.
pub const FETCH_RECENT_MS: u64 = 1000;

/// A follower as the leader sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowerState {
    /// The offset the follower will fetch next, i.e. its log end offset. -1 until it fetches.
    pub log_end_offset: i64,
    /// Last time (ms) the follower had fetched everything the leader had.
    pub last_caught_up_ms: u64,
    /// The leader's log end offset and the time at the follower's previous fetch: reaching
    /// that offset later proves the follower was caught up as of that time (Kafka's rule,
    /// which keeps a follower in sync under continuous writes).
    pub last_fetch_leader_leo: i64,
    pub last_fetch_ms: u64,
    /// The broker epoch (registration) the follower last fetched with, -1 before its first
    /// fetch. A restarted follower fetches with a new one, and only its new incarnation's
    /// fetches may take it back into the ISR (KIP-903): what the old one had may be gone.
    pub broker_epoch: i64,
}

/// The leader's view of one partition's replicas.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderView {
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub followers: BTreeMap<i32, FollowerState>,
    /// The leader's log end when it took over: a follower must reach it to rejoin the ISR
    /// (KAFKA-7128), since the new leader's high watermark may lag what was committed.
    pub epoch_start_offset: i64,
}

impl LeaderView {
    /// A fresh view when becoming leader: followers start as caught up now, so none is
    /// dropped from the ISR before it had a chance to fetch.
    pub fn new(
        leader: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        epoch_start_offset: i64,
        now_ms: u64,
    ) -> Self {
        let followers = replicas
            .iter()
            .filter(|r| **r != leader)
            .map(|r| {
                (
                    *r,
                    FollowerState {
                        log_end_offset: -1,
                        last_caught_up_ms: now_ms,
                        last_fetch_leader_leo: -1,
                        last_fetch_ms: now_ms,
                        broker_epoch: -1,
                    },
                )
            })
            .collect();
        LeaderView {
            leader,
            replicas,
            isr,
            followers,
            epoch_start_offset,
        }
    }

    /// Records a fetch by `replica`, registered as `broker_epoch`, at `fetch_offset` while
    /// the leader's log ends at `leader_leo`.
    pub fn on_follower_fetch(
        &mut self,
        replica: i32,
        broker_epoch: i64,
        fetch_offset: i64,
        leader_leo: i64,
        now_ms: u64,
    ) {
        if let Some(f) = self.followers.get_mut(&replica) {
            if f.broker_epoch != broker_epoch {
                // A new incarnation: what the previous one fetched proves nothing now.
                f.broker_epoch = broker_epoch;
                f.last_fetch_leader_leo = -1;
            }
            f.log_end_offset = fetch_offset;
            if fetch_offset >= leader_leo {
                f.last_caught_up_ms = now_ms;
            } else if f.last_fetch_leader_leo >= 0 && fetch_offset >= f.last_fetch_leader_leo {
                f.last_caught_up_ms = f.last_caught_up_ms.max(f.last_fetch_ms);
            }
            f.last_fetch_leader_leo = leader_leo;
            f.last_fetch_ms = now_ms;
        }
    }

    /// The high watermark the ISR supports, never below `current`. Replicas being added
    /// (`pending`) count too — Kafka's "maximal ISR" — so nothing is acknowledged that a
    /// replica about to join the ISR lacks.
    pub fn high_watermark(&self, leader_leo: i64, current: i64, pending: Option<&[i32]>) -> i64 {
        let min_isr_leo = self
            .isr
            .iter()
            .chain(
                pending
                    .unwrap_or_default()
                    .iter()
                    .filter(|r| !self.isr.contains(r)),
            )
            .map(|r| {
                if *r == self.leader {
                    leader_leo
                } else {
                    self.followers.get(r).map_or(-1, |f| f.log_end_offset)
                }
            })
            .min()
            .unwrap_or(leader_leo);
        min_isr_leo.max(current)
    }

    /// Whether every other member of the ISR has stopped fetching (none within
    /// `silence_ms`): the leader is cut off from its followers, so it can no longer commit
    /// writes. Never true for a leader alone in its ISR, which needs no one to commit.
    pub fn followers_silent(&self, now_ms: u64, silence_ms: u64) -> bool {
        let mut others = self.isr.iter().filter(|r| **r != self.leader).peekable();
        others.peek().is_some()
            && others.all(|r| {
                self.followers
                    .get(r)
                    .is_none_or(|f| now_ms.saturating_sub(f.last_fetch_ms) > silence_ms)
            })
    }

    /// The ISR the leader should propose now, if it differs from the current one: lagging
    /// followers removed, caught-up replicas added. The leader always stays in. `eligible`
    /// says whether a replica fetching with a broker epoch is that broker's live
    /// registration.
    pub fn proposed_isr(
        &self,
        high_watermark: i64,
        now_ms: u64,
        lag_max_ms: u64,
        eligible: &dyn Fn(i32, i64) -> bool,
    ) -> Option<Vec<i32>> {
        let keep = |r: &i32| -> bool {
            if *r == self.leader {
                return true;
            }
            match self.followers.get(r) {
                Some(f) if self.isr.contains(r) => {
                    now_ms.saturating_sub(f.last_caught_up_ms) <= lag_max_ms
                }
                // A fenced or stopping broker is not proposed back (KIP-841), nor one whose
                // fetches came from an earlier incarnation (KIP-903): the controller would
                // refuse the whole change, and replicas that did catch up with it.
                Some(f) => {
                    eligible(*r, f.broker_epoch)
                        && f.log_end_offset >= high_watermark.max(self.epoch_start_offset)
                        && f.log_end_offset >= 0
                        && now_ms.saturating_sub(f.last_fetch_ms) <= FETCH_RECENT_MS
                }
                None => false,
            }
        };
        let proposed: Vec<i32> = self.replicas.iter().copied().filter(keep).collect();
        let mut current = self.isr.clone();
        current.sort_unstable();
        let mut sorted = proposed.clone();
        sorted.sort_unstable();
        (sorted != current).then_some(proposed)
    }

    /// The broker epochs `isr`'s followers fetched with (-1 for the leader and for replicas
    /// that have not fetched), for the controller's KIP-903 check.
    pub fn broker_epochs(&self, isr: &[i32]) -> Vec<i64> {
        isr.iter()
            .map(|r| self.followers.get(r).map_or(-1, |f| f.broker_epoch))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_is_cut_off_only_when_every_follower_in_the_isr_went_silent() {
        let mut view = LeaderView::new(1, vec![1, 2, 3], vec![1, 2, 3], 0, 0);
        assert!(!view.followers_silent(1000, 1000));
        view.on_follower_fetch(2, 1, 0, 0, 1500);
        assert!(
            !view.followers_silent(2400, 1000),
            "follower 2 fetched recently"
        );
        assert!(
            view.followers_silent(2600, 1000),
            "neither follower fetched for 1 s"
        );
        let alone = LeaderView::new(1, vec![1, 2], vec![1], 0, 0);
        assert!(
            !alone.followers_silent(10_000, 1000),
            "a lone leader commits by itself"
        );
    }

    #[test]
    fn hw_is_min_isr_leo_and_monotonic() {
        let mut view = LeaderView::new(1, vec![1, 2, 3], vec![1, 2, 3], 0, 0);
        assert_eq!(
            view.high_watermark(10, 0, None),
            0,
            "followers have not fetched yet"
        );
        view.on_follower_fetch(2, 1, 10, 10, 5);
        view.on_follower_fetch(3, 1, 7, 10, 5);
        assert_eq!(view.high_watermark(10, 0, None), 7);
        view.on_follower_fetch(3, 1, 10, 10, 6);
        assert_eq!(view.high_watermark(12, 7, None), 10);
        // Only ISR members count.
        view.isr = vec![1, 2];
        view.on_follower_fetch(3, 1, 0, 12, 7);
        assert_eq!(view.high_watermark(12, 10, None), 10, "never moves back");
        view.on_follower_fetch(2, 1, 12, 12, 8);
        assert_eq!(view.high_watermark(12, 10, None), 12);
    }

    #[test]
    fn lagging_followers_leave_and_caught_up_ones_rejoin() {
        let mut view = LeaderView::new(1, vec![1, 2, 3], vec![1, 2, 3], 0, 0);
        view.on_follower_fetch(2, 1, 10, 10, 100);
        view.on_follower_fetch(3, 1, 4, 10, 100);
        assert_eq!(
            view.proposed_isr(4, 500, 1000, &|_, _| true),
            None,
            "within the lag bound"
        );
        assert_eq!(
            view.proposed_isr(4, 1050, 1000, &|_, _| true),
            Some(vec![1, 2]),
            "replica 3 lags"
        );
        view.isr = vec![1, 2];
        view.on_follower_fetch(3, 1, 10, 10, 1100);
        assert_eq!(
            view.proposed_isr(10, 1100, 1000, &|_, _| true),
            Some(vec![1, 2, 3]),
            "caught up: rejoins"
        );
        view.on_follower_fetch(2, 1, 12, 12, 1200);
        view.on_follower_fetch(3, 1, 9, 12, 1200);
        view.isr = vec![1, 2];
        assert_eq!(
            view.proposed_isr(10, 1200, 1000, &|_, _| true),
            None,
            "below the HW: not yet"
        );
    }

    #[test]
    fn only_the_registered_incarnation_of_a_follower_rejoins() {
        let mut view = LeaderView::new(1, vec![1, 2, 3], vec![1, 2], 0, 0);
        // Broker 3 fetched up to the leader's end as epoch 7, then crashed and came back
        // registered as epoch 9, its log cut short: only epoch 9's fetches count.
        view.on_follower_fetch(3, 7, 10, 10, 100);
        let registered_as_9 = |_: i32, epoch: i64| epoch == 9;
        assert_eq!(view.proposed_isr(10, 200, 1000, &registered_as_9), None);
        view.on_follower_fetch(3, 9, 4, 10, 300);
        assert_eq!(view.proposed_isr(10, 300, 1000, &registered_as_9), None);
        view.on_follower_fetch(3, 9, 10, 10, 400);
        assert_eq!(
            view.proposed_isr(10, 400, 1000, &registered_as_9),
            Some(vec![1, 2, 3])
        );
        assert_eq!(view.broker_epochs(&[1, 2, 3]), vec![-1, -1, 9]);
    }

    #[test]
    fn pending_additions_hold_the_hw_and_epoch_start_gates_rejoining() {
        let mut view = LeaderView::new(1, vec![1, 2, 3], vec![1, 2], 50, 0);
        view.on_follower_fetch(2, 1, 60, 60, 10);
        view.on_follower_fetch(3, 1, 55, 60, 10);
        assert_eq!(view.high_watermark(60, 40, None), 60);
        assert_eq!(
            view.high_watermark(60, 40, Some(&[1, 2, 3])),
            55,
            "replica 3 is joining"
        );
        // Replica 3 is past the HW (45) but not past where this leader's epoch began.
        let mut late = LeaderView::new(1, vec![1, 2, 3], vec![1, 2], 70, 0);
        late.on_follower_fetch(2, 1, 70, 70, 10);
        late.on_follower_fetch(3, 1, 60, 70, 10);
        assert_eq!(late.proposed_isr(45, 10, 1000, &|_, _| true), None);
        late.on_follower_fetch(3, 1, 70, 70, 20);
        assert_eq!(
            late.proposed_isr(45, 20, 1000, &|_, _| true),
            Some(vec![1, 2, 3])
        );
    }

    #[test]
    fn a_follower_keeping_up_under_load_stays_in_sync() {
        let mut view = LeaderView::new(1, vec![1, 2], vec![1, 2], 0, 0);
        // The leader keeps writing: the follower is always one fetch behind the tip.
        let mut leo = 10;
        for t in 1..100u64 {
            let follower_at = leo;
            leo += 5;
            view.on_follower_fetch(2, 1, follower_at, leo, t * 100);
        }
        assert_eq!(
            view.proposed_isr(leo - 5, 100 * 100, 1000, &|_, _| true),
            None
        );
    }

    #[test]
    fn single_replica_hw_follows_leader() {
        let view = LeaderView::new(1, vec![1], vec![1], 0, 0);
        assert_eq!(view.high_watermark(42, 0, None), 42);
        assert_eq!(view.proposed_isr(42, 10_000, 10, &|_, _| true), None);
    }
}
