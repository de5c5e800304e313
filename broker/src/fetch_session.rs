//! Incremental fetch sessions (KIP-227). A consumer that fetches many partitions names
//! them once; later fetches name only the partitions whose position changed, and the
//! answer carries only the partitions with something new (records, an error, a moved
//! high watermark or log start). The cache is pure bookkeeping: the fetch handler reads
//! the partitions a [`FetchPlan`] lists and hands the outcomes back to
//! [`FetchSessionCache::finish`], which decides what an incremental answer includes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Instant;

use tributary_metadata::ResponseError;
use uuid::Uuid;

/// `session_epoch` that opens a new session.
pub const INITIAL_EPOCH: i32 = 0;
/// `session_epoch` of a fetch outside any session (and of the one closing a session).
pub const FINAL_EPOCH: i32 = -1;

/// A partition of a session: by topic id from Fetch v13, by name before.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    pub topic_id: Uuid,
    pub topic: String,
    pub partition: i32,
}

/// Where a client reads a partition from, as its latest request said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchPosition {
    pub fetch_offset: i64,
    pub partition_max_bytes: i32,
    pub current_leader_epoch: i32,
}

/// What an answer told the client about a partition, to leave it out while unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOutcome {
    pub high_watermark: i64,
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub has_records: bool,
    /// An error, or anything else the client must always hear (a preferred replica).
    pub must_send: bool,
}

#[derive(Debug, Clone)]
struct SessionPartition {
    position: FetchPosition,
    /// `(high watermark, last stable offset, log start)` last sent; `None` before the
    /// first answer.
    sent: Option<(i64, i64, i64)>,
}

#[derive(Debug)]
struct FetchSession {
    partitions: BTreeMap<SessionKey, SessionPartition>,
    /// The epoch the next incremental fetch must carry.
    next_epoch: i32,
    last_used: Instant,
}

/// What one fetch reads, and how its answer is shaped.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchPlan {
    /// The session the answer names (0: none).
    pub session_id: i32,
    /// Whether the answer leaves out unchanged partitions.
    pub incremental: bool,
    /// Every partition to read, with its position.
    pub partitions: Vec<(SessionKey, FetchPosition)>,
}

/// The fetch sessions of one broker, bounded by `max.incremental.fetch.session.cache.slots`.
#[derive(Debug)]
pub struct FetchSessionCache {
    slots: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    sessions: HashMap<i32, FetchSession>,
    last_id: i32,
}

fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

impl FetchSessionCache {
    /// A cache of at most `slots` sessions (0 declines every session).
    pub fn new(slots: usize) -> Self {
        FetchSessionCache {
            slots,
            inner: Mutex::new(CacheInner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Plans a fetch from its session fields and the partitions it names (`requested`,
    /// added or updated) and drops (`forgotten`). Errors are the fetch's top-level error:
    /// an unknown session or an epoch out of order.
    pub fn plan(
        &self,
        session_id: i32,
        epoch: i32,
        requested: Vec<(SessionKey, FetchPosition)>,
        forgotten: &[SessionKey],
        now: Instant,
    ) -> Result<FetchPlan, ResponseError> {
        let mut inner = self.lock();
        if epoch == FINAL_EPOCH {
            // A fetch outside sessions; one naming a session closes it.
            inner.sessions.remove(&session_id);
            return Ok(FetchPlan {
                session_id: 0,
                incremental: false,
                partitions: requested,
            });
        }
        if epoch == INITIAL_EPOCH {
            inner.sessions.remove(&session_id);
            let session_id = self.open(&mut inner, &requested, now);
            return Ok(FetchPlan {
                session_id,
                incremental: false,
                partitions: requested,
            });
        }
        let session = inner
            .sessions
            .get_mut(&session_id)
            .ok_or(ResponseError::FetchSessionIdNotFound)?;
        if session.next_epoch != epoch {
            return Err(ResponseError::InvalidFetchSessionEpoch);
        }
        session.next_epoch = next_epoch(epoch);
        session.last_used = now;
        for key in forgotten {
            session.partitions.remove(key);
        }
        for (key, position) in requested {
            session
                .partitions
                .entry(key)
                .and_modify(|p| p.position = position)
                .or_insert(SessionPartition {
                    position,
                    sent: None,
                });
        }
        Ok(FetchPlan {
            session_id,
            incremental: true,
            partitions: session
                .partitions
                .iter()
                .map(|(k, p)| (k.clone(), p.position))
                .collect(),
        })
    }

    /// A new session over `partitions`, evicting the least recently used one when the
    /// cache is full; 0 when sessions are disabled.
    fn open(
        &self,
        inner: &mut CacheInner,
        partitions: &[(SessionKey, FetchPosition)],
        now: Instant,
    ) -> i32 {
        if self.slots == 0 {
            return 0;
        }
        if inner.sessions.len() >= self.slots {
            let oldest = inner
                .sessions
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(id, _)| *id);
            if let Some(id) = oldest {
                inner.sessions.remove(&id);
            }
        }
        let mut id = inner.last_id;
        loop {
            id = if id == i32::MAX { 1 } else { id + 1 };
            if !inner.sessions.contains_key(&id) {
                break;
            }
        }
        inner.last_id = id;
        tracing::debug!(
            session = id,
            partitions = partitions.len(),
            "fetch session opened"
        );
        inner.sessions.insert(
            id,
            FetchSession {
                partitions: partitions
                    .iter()
                    .map(|(k, position)| {
                        let partition = SessionPartition {
                            position: *position,
                            sent: None,
                        };
                        (k.clone(), partition)
                    })
                    .collect(),
                next_epoch: 1,
                last_used: now,
            },
        );
        id
    }

    /// Records what the answer to `plan` holds and says, for each partition read (in the
    /// plan's order), whether the answer includes it: always for a full answer; for an
    /// incremental one, a partition with records, an error, or a high watermark, last
    /// stable offset or log start the client has not been told.
    pub fn finish(&self, plan: &FetchPlan, outcomes: &[PartitionOutcome]) -> Vec<bool> {
        let mut inner = self.lock();
        let session = inner.sessions.get_mut(&plan.session_id);
        let Some(session) = session else {
            return vec![true; outcomes.len()];
        };
        plan.partitions
            .iter()
            .zip(outcomes)
            .map(|((key, _), outcome)| {
                let Some(partition) = session.partitions.get_mut(key) else {
                    return true;
                };
                let now = (
                    outcome.high_watermark,
                    outcome.last_stable_offset,
                    outcome.log_start_offset,
                );
                let include = !plan.incremental
                    || outcome.has_records
                    || outcome.must_send
                    || partition.sent != Some(now);
                if include {
                    partition.sent = Some(now);
                }
                include
            })
            .collect()
    }

    /// Sessions open now.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether no session is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(partition: i32) -> SessionKey {
        SessionKey {
            topic_id: Uuid::nil(),
            topic: "t".into(),
            partition,
        }
    }

    fn at(offset: i64) -> FetchPosition {
        FetchPosition {
            fetch_offset: offset,
            partition_max_bytes: 1 << 20,
            current_leader_epoch: -1,
        }
    }

    fn outcome(hw: i64, has_records: bool) -> PartitionOutcome {
        PartitionOutcome {
            high_watermark: hw,
            last_stable_offset: hw,
            log_start_offset: 0,
            has_records,
            must_send: false,
        }
    }

    #[test]
    fn a_session_answers_only_what_changed() {
        let cache = FetchSessionCache::new(10);
        let now = Instant::now();
        let full = cache
            .plan(
                0,
                INITIAL_EPOCH,
                vec![(key(0), at(0)), (key(1), at(0))],
                &[],
                now,
            )
            .unwrap();
        assert!(full.session_id > 0 && !full.incremental);
        let sent = cache.finish(&full, &[outcome(5, true), outcome(0, false)]);
        assert_eq!(
            sent,
            vec![true, true],
            "a full answer names every partition"
        );

        // Epoch 1 names partition 0 at its new position; partition 1 is unchanged.
        let next = cache
            .plan(full.session_id, 1, vec![(key(0), at(5))], &[], now)
            .unwrap();
        assert!(next.incremental);
        assert_eq!(next.partitions, vec![(key(0), at(5)), (key(1), at(0))]);
        let sent = cache.finish(&next, &[outcome(5, false), outcome(0, false)]);
        assert_eq!(sent, vec![false, false], "nothing new");
        // New data on partition 1; an error on partition 0 is always sent.
        let next = cache.plan(full.session_id, 2, vec![], &[], now).unwrap();
        let error = PartitionOutcome {
            must_send: true,
            ..outcome(5, false)
        };
        let sent = cache.finish(&next, &[error, outcome(3, true)]);
        assert_eq!(sent, vec![true, true]);
        // A moved high watermark alone is news too.
        let next = cache.plan(full.session_id, 3, vec![], &[], now).unwrap();
        assert_eq!(
            cache.finish(&next, &[outcome(6, false), outcome(3, false)]),
            vec![true, false]
        );
        // Forgotten partitions leave the session.
        let next = cache
            .plan(full.session_id, 4, vec![], &[key(1)], now)
            .unwrap();
        assert_eq!(next.partitions, vec![(key(0), at(5))]);
    }

    #[test]
    fn epochs_and_ids_are_checked() {
        let cache = FetchSessionCache::new(10);
        let now = Instant::now();
        let plan = cache
            .plan(0, INITIAL_EPOCH, vec![(key(0), at(0))], &[], now)
            .unwrap();
        let id = plan.session_id;
        assert_eq!(
            cache.plan(id, 2, vec![], &[], now),
            Err(ResponseError::InvalidFetchSessionEpoch)
        );
        assert_eq!(
            cache.plan(id + 1, 1, vec![], &[], now),
            Err(ResponseError::FetchSessionIdNotFound)
        );
        assert!(cache.plan(id, 1, vec![], &[], now).is_ok());
        // The final epoch closes the session and fetches without one.
        let closing = cache
            .plan(id, FINAL_EPOCH, vec![(key(0), at(0))], &[], now)
            .unwrap();
        assert_eq!((closing.session_id, closing.incremental), (0, false));
        assert!(cache.is_empty());
        assert_eq!(
            cache.plan(id, 2, vec![], &[], now),
            Err(ResponseError::FetchSessionIdNotFound)
        );
    }

    #[test]
    fn a_full_cache_evicts_its_least_recently_used_session() {
        let cache = FetchSessionCache::new(2);
        let start = Instant::now();
        let later = |ms| start + std::time::Duration::from_millis(ms);
        let first = cache.plan(0, 0, vec![], &[], later(0)).unwrap().session_id;
        let second = cache.plan(0, 0, vec![], &[], later(1)).unwrap().session_id;
        cache.plan(first, 1, vec![], &[], later(2)).unwrap();
        let third = cache.plan(0, 0, vec![], &[], later(3)).unwrap().session_id;
        assert_eq!(cache.len(), 2);
        assert!(cache.plan(first, 2, vec![], &[], later(4)).is_ok());
        assert_eq!(
            cache.plan(second, 1, vec![], &[], later(5)),
            Err(ResponseError::FetchSessionIdNotFound),
            "the idle one went"
        );
        assert!(third > second);
        // No slots: sessions are declined, fetches are full.
        let none = FetchSessionCache::new(0);
        assert_eq!(
            none.plan(0, 0, vec![], &[], later(6)).unwrap().session_id,
            0
        );
    }
}
