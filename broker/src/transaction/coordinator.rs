//! Which transactional ids this broker coordinates, and their state: an id belongs to
//! the leader of its `__transaction_state` partition (Java `hashCode` of the id, as
//! Kafka places it), which loads the partition's records when it becomes leader and
//! forgets them when it stops leading.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use tributary_metadata::ResponseError;

use super::state::{Transactions, TxnMetadata};

/// The internal topic of transaction state.
pub const TRANSACTION_TOPIC: &str = "__transaction_state";

#[derive(Debug)]
struct Inner {
    txns: Transactions,
    loaded: BTreeSet<i32>,
    loading: BTreeSet<i32>,
}

/// The transactional ids of the `__transaction_state` partitions this broker leads.
#[derive(Debug)]
pub struct TransactionCoordinator {
    /// Partitions of `__transaction_state` (`transaction.state.log.num.partitions`).
    pub partitions: i32,
    inner: Mutex<Inner>,
    /// Serialises changes: each computes its transition from the state the previous one
    /// left, writes it, and applies it before the next starts (Kafka's pending state).
    pub changes: tokio::sync::Mutex<()>,
}

impl TransactionCoordinator {
    /// A coordinator over `partitions` partitions allowing timeouts up to `max_timeout_ms`.
    pub fn new(partitions: i32, max_timeout_ms: i32) -> Self {
        TransactionCoordinator {
            partitions,
            inner: Mutex::new(Inner {
                txns: Transactions::new(max_timeout_ms),
                loaded: BTreeSet::new(),
                loading: BTreeSet::new(),
            }),
            changes: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `__transaction_state` partition of `transactional_id`.
    pub fn partition_of(&self, transactional_id: &str) -> i32 {
        crate::group::offsets::partition_for(transactional_id, self.partitions)
    }

    /// The partition of `transactional_id` if this broker coordinates it now, else the
    /// error that sends the client elsewhere or makes it wait.
    pub fn owner_of(&self, transactional_id: &str) -> Result<i32, ResponseError> {
        let partition = self.partition_of(transactional_id);
        let inner = self.lock();
        if inner.loaded.contains(&partition) {
            Ok(partition)
        } else if inner.loading.contains(&partition) {
            Err(ResponseError::CoordinatorLoadInProgress)
        } else {
            Err(ResponseError::NotCoordinator)
        }
    }

    /// Reads the transactions (to compute a transition).
    pub fn read<R>(&self, f: impl FnOnce(&Transactions) -> R) -> R {
        f(&self.lock().txns)
    }

    /// Every transactional id coordinated here (ListTransactions); an error while a
    /// partition is still being loaded, as Kafka answers.
    pub fn list(&self) -> Result<Vec<TxnMetadata>, ResponseError> {
        let inner = self.lock();
        if !inner.loading.is_empty() {
            return Err(ResponseError::CoordinatorLoadInProgress);
        }
        Ok(inner.txns.all().cloned().collect())
    }

    /// Applies a record now durable in `__transaction_state`, if its partition is still
    /// loaded here.
    pub fn apply(&self, record: TxnMetadata) {
        let partition = self.partition_of(&record.transactional_id);
        let mut inner = self.lock();
        if inner.loaded.contains(&partition) {
            inner.txns.apply(record);
        }
    }

    /// This broker became the leader of `partition`: its ids wait for the load.
    pub fn begin_loading(&self, partition: i32) {
        let mut inner = self.lock();
        inner.loaded.remove(&partition);
        inner.loading.insert(partition);
    }

    /// The records of `partition`, replayed: its ids are served from now on. Returns
    /// whether the partition was still waiting for them.
    pub fn finish_loading(&self, partition: i32, records: HashMap<String, TxnMetadata>) -> bool {
        let mut inner = self.lock();
        if !inner.loading.remove(&partition) {
            return false;
        }
        for record in records.into_values() {
            inner.txns.apply(record);
        }
        inner.loaded.insert(partition);
        true
    }

    /// This broker no longer leads `partition`: its ids are forgotten here.
    pub fn unload(&self, partition: i32) {
        let mut inner = self.lock();
        inner.loaded.remove(&partition);
        inner.loading.remove(&partition);
        let partitions = self.partitions;
        inner
            .txns
            .retain(|id| crate::group::offsets::partition_for(id, partitions) != partition);
    }
}
