//! The follower fetchers of one broker: one task per leader it follows from, as Kafka's
//! `ReplicaFetcherManager` keeps one fetcher thread per source broker. The broker tells the
//! manager which partitions follow which leader after every metadata change; the manager
//! starts, re-points and stops the tasks.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tracing::Instrument;
use uuid::Uuid;

use super::fetcher;
use crate::broker::storage::StorageHealth;
use crate::partition::Partition;
use crate::util::Signal;

/// What one fetcher follows: the partitions whose leader is one broker, and where that
/// broker is reached (`None` while it is fenced).
#[derive(Debug, Clone, Default)]
pub struct FollowerSet {
    pub leader_addr: Option<String>,
    pub partitions: Vec<Arc<Partition>>,
    /// The ids of the partitions' topics (Fetch names topics by id).
    pub topic_ids: HashMap<String, Uuid>,
    /// This broker's registration, which its fetches carry so that the leader counts only
    /// this incarnation's progress.
    pub broker_epoch: i64,
}

impl PartialEq for FollowerSet {
    fn eq(&self, other: &Self) -> bool {
        self.leader_addr == other.leader_addr
            && self.broker_epoch == other.broker_epoch
            && self.topic_ids == other.topic_ids
            && self.partitions.len() == other.partitions.len()
            && self
                .partitions
                .iter()
                .zip(&other.partitions)
                .all(|(a, b)| Arc::ptr_eq(a, b))
    }
}

#[derive(Debug)]
struct Fetcher {
    assignment: watch::Sender<Arc<FollowerSet>>,
    task: tokio::task::JoinHandle<()>,
}

/// The replica fetchers of this broker, by leader.
#[derive(Debug)]
pub struct FetcherManager {
    broker_id: i32,
    appended: Signal,
    storage: StorageHealth,
    fetchers: Mutex<HashMap<i32, Fetcher>>,
}

impl FetcherManager {
    /// Fetchers for broker `broker_id`; `appended` is notified after every replicated
    /// append (it wakes consumers reading from this follower); `storage` hears of failed
    /// writes.
    pub fn new(broker_id: i32, appended: Signal, storage: StorageHealth) -> Self {
        FetcherManager {
            broker_id,
            appended,
            storage,
            fetchers: Mutex::new(HashMap::new()),
        }
    }

    /// Makes the fetchers follow `assignments` (leader → what follows it). A fetcher whose
    /// set changed, or every fetcher when `roles_changed`, restarts its long poll, so a
    /// new follower replicates at once and a re-elected leader is asked for truncation.
    pub fn assign(&self, mut assignments: BTreeMap<i32, FollowerSet>, roles_changed: bool) {
        let mut fetchers = self.fetchers.lock().unwrap_or_else(|p| p.into_inner());
        fetchers.retain(|leader, fetcher| {
            let keep = !fetcher.task.is_finished()
                && assignments
                    .get(leader)
                    .is_some_and(|set| !set.partitions.is_empty());
            if !keep {
                fetcher.task.abort();
            }
            keep
        });
        for (leader, fetcher) in fetchers.iter() {
            if let Some(set) = assignments.remove(leader) {
                if roles_changed || **fetcher.assignment.borrow() != set {
                    fetcher.assignment.send_replace(Arc::new(set));
                }
            }
        }
        for (leader, set) in assignments {
            if set.partitions.is_empty() {
                continue;
            }
            let (assignment, rx) = watch::channel(Arc::new(set));
            let span = tracing::info_span!("replica-fetcher", broker = self.broker_id, leader);
            let task = tokio::spawn(
                fetcher::run(
                    self.broker_id,
                    leader,
                    rx,
                    self.appended.clone(),
                    self.storage.clone(),
                )
                .instrument(span),
            );
            fetchers.insert(leader, Fetcher { assignment, task });
        }
    }

    /// Stops every fetcher.
    pub fn shutdown(&self) {
        for (_, fetcher) in self
            .fetchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain()
        {
            fetcher.task.abort();
        }
    }
}
