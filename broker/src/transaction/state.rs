//! The transaction coordinator's state machine, as Kafka's `TransactionCoordinator` and
//! `TransactionMetadata` define it, kept pure: each client request moves one
//! transactional id's [`TxnMetadata`] and says what must follow (a record for
//! `__transaction_state`, markers for the transaction's partitions). Writing the record,
//! sending the markers and allocating producer ids belong to the coordinator around it.

use std::collections::{BTreeSet, HashMap};

use tributary_metadata::ResponseError;

/// `transaction.max.timeout.ms`: the longest transaction timeout a producer may ask for.
pub const DEFAULT_MAX_TIMEOUT_MS: i32 = 900_000;

/// A transaction's state (`TransactionState` in Kafka, with its wire ids for
/// `__transaction_state` and DescribeTransactions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    /// No transaction under way (new, or after an epoch bump).
    Empty,
    /// Partitions have been added; records may be written.
    Ongoing,
    /// EndTxn(commit) accepted: commit markers are being written.
    PrepareCommit,
    /// EndTxn(abort) or a timeout: abort markers are being written.
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
}

impl TxnState {
    /// Every state a transactional id is stored in.
    pub const ALL: [TxnState; 6] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
    ];

    /// The id `__transaction_state` stores.
    pub fn id(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
        }
    }

    /// The state of a stored id (6 Dead and 7 PrepareEpochFence are never stored here).
    pub fn from_id(id: i8) -> Option<Self> {
        Some(match id {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            _ => return None,
        })
    }

    /// The name DescribeTransactions and `kafka-transactions.sh` show.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
        }
    }

    fn is_preparing(self) -> bool {
        matches!(self, TxnState::PrepareCommit | TxnState::PrepareAbort)
    }
}

/// A topic partition a transaction wrote to.
pub type TxnPartition = (String, i32);

/// One transactional id's state: what `__transaction_state` records for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<TxnPartition>,
    /// When the current transaction added its first partition (-1 when none is under way).
    pub start_ms: i64,
    pub last_update_ms: i64,
}

/// Markers to write once the prepare record is durable: `commit` or abort markers of
/// `producer_id` at `producer_epoch` on every partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Markers {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub commit: bool,
    pub partitions: BTreeSet<TxnPartition>,
}

/// What a request changed: the record to write to `__transaction_state` before
/// answering, and the markers to send after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub record: TxnMetadata,
    pub markers: Option<Markers>,
}

/// The answer to InitProducerId for a transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InitOutcome {
    /// The producer may start: its id and epoch, and the record to write first.
    Ready {
        producer_id: i64,
        producer_epoch: i16,
        transition: Transition,
    },
    /// An ongoing transaction of an earlier incarnation is being aborted (its epoch is
    /// fenced): the client retries on CONCURRENT_TRANSACTIONS until the abort completes.
    AbortingPrevious(Transition),
}

/// Every transactional id a coordinator owns (the ids hashing to its partitions of
/// `__transaction_state`).
#[derive(Debug, Default)]
pub struct Transactions {
    txns: HashMap<String, TxnMetadata>,
    max_timeout_ms: i32,
}

impl Transactions {
    /// An empty table allowing timeouts up to `max_timeout_ms`.
    pub fn new(max_timeout_ms: i32) -> Self {
        Transactions {
            txns: HashMap::new(),
            max_timeout_ms,
        }
    }

    /// The state of `transactional_id`, if known.
    pub fn get(&self, transactional_id: &str) -> Option<&TxnMetadata> {
        self.txns.get(transactional_id)
    }

    /// Every transaction (ListTransactions).
    pub fn all(&self) -> impl Iterator<Item = &TxnMetadata> {
        self.txns.values()
    }

    /// Installs a record read back from `__transaction_state` (or one just written).
    pub fn apply(&mut self, record: TxnMetadata) {
        self.txns.insert(record.transactional_id.clone(), record);
    }

    /// Forgets the ids of a partition of `__transaction_state` this broker stopped leading.
    pub fn retain(&mut self, keep: impl Fn(&str) -> bool) {
        self.txns.retain(|id, _| keep(id));
    }

    /// Whether InitProducerId for `transactional_id` needs a fresh producer id: the id is
    /// new, or its epoch would overflow.
    pub fn needs_producer_id(&self, transactional_id: &str) -> bool {
        self.txns
            .get(transactional_id)
            .is_none_or(|m| m.producer_epoch >= i16::MAX - 1)
    }

    /// InitProducerId with a transactional id: a new producer gets an id at epoch 0, a
    /// returning one its id at the next epoch (fencing older incarnations); an ongoing
    /// transaction is aborted first. `fresh_producer_id` is used when
    /// [`Self::needs_producer_id`] said so; `expected` is KIP-360's id and epoch of a
    /// producer that bumps its own epoch.
    pub fn init_producer_id(
        &self,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        fresh_producer_id: Option<i64>,
        now_ms: i64,
    ) -> Result<InitOutcome, ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.max_timeout_ms {
            return Err(ResponseError::InvalidTransactionTimeout);
        }
        let Some(current) = self.txns.get(transactional_id) else {
            let producer_id = fresh_producer_id.ok_or(ResponseError::CoordinatorNotAvailable)?;
            let record = TxnMetadata {
                transactional_id: transactional_id.to_string(),
                producer_id,
                producer_epoch: 0,
                timeout_ms,
                state: TxnState::Empty,
                partitions: BTreeSet::new(),
                start_ms: -1,
                last_update_ms: now_ms,
            };
            return Ok(InitOutcome::Ready {
                producer_id,
                producer_epoch: 0,
                transition: Transition {
                    record,
                    markers: None,
                },
            });
        };
        if let Some((id, epoch)) = expected {
            // KIP-360: only the current incarnation may bump its own epoch.
            if id != current.producer_id || epoch != current.producer_epoch {
                return Err(ResponseError::ProducerFenced);
            }
        }
        match current.state {
            TxnState::PrepareCommit | TxnState::PrepareAbort => {
                Err(ResponseError::ConcurrentTransactions)
            }
            TxnState::Ongoing => {
                // Fence the incarnation that left it open, then abort it.
                let mut record = current.clone();
                record.producer_epoch = current.producer_epoch.saturating_add(1);
                Ok(InitOutcome::AbortingPrevious(prepare_end(
                    record, false, now_ms,
                )))
            }
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort => {
                let (producer_id, producer_epoch) = match fresh_producer_id {
                    Some(id) if current.producer_epoch >= i16::MAX - 1 => (id, 0),
                    _ => (current.producer_id, current.producer_epoch + 1),
                };
                let record = TxnMetadata {
                    producer_id,
                    producer_epoch,
                    timeout_ms,
                    state: TxnState::Empty,
                    partitions: BTreeSet::new(),
                    start_ms: -1,
                    last_update_ms: now_ms,
                    ..current.clone()
                };
                Ok(InitOutcome::Ready {
                    producer_id,
                    producer_epoch,
                    transition: Transition {
                        record,
                        markers: None,
                    },
                })
            }
        }
    }

    /// The transaction of a producer making a request, checked as Kafka checks it: the
    /// id must map to this producer, at its current epoch, with no end under way.
    fn current_for(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
    ) -> Result<&TxnMetadata, ResponseError> {
        if transactional_id.is_empty() {
            return Err(ResponseError::InvalidRequest);
        }
        let current = self
            .txns
            .get(transactional_id)
            .ok_or(ResponseError::InvalidProducerIdMapping)?;
        if current.producer_id != producer_id {
            return Err(ResponseError::InvalidProducerIdMapping);
        }
        if current.producer_epoch != producer_epoch {
            return Err(ResponseError::ProducerFenced);
        }
        Ok(current)
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's `__consumer_offsets`
    /// partition): the transaction is under way and includes `partitions`. `Ok(None)`
    /// when it already did (nothing to write).
    pub fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TxnPartition],
        now_ms: i64,
    ) -> Result<Option<Transition>, ResponseError> {
        let current = self.current_for(transactional_id, producer_id, producer_epoch)?;
        if current.state.is_preparing() {
            return Err(ResponseError::ConcurrentTransactions);
        }
        if current.state == TxnState::Ongoing
            && partitions.iter().all(|p| current.partitions.contains(p))
        {
            return Ok(None);
        }
        let mut record = current.clone();
        if record.state != TxnState::Ongoing {
            record.partitions.clear();
            record.start_ms = now_ms;
        }
        record.state = TxnState::Ongoing;
        record.partitions.extend(partitions.iter().cloned());
        record.last_update_ms = now_ms;
        Ok(Some(Transition {
            record,
            markers: None,
        }))
    }

    /// EndTxn: commit or abort the ongoing transaction. A retry of an end already done
    /// succeeds (`Ok(None)`); the opposite end, or one with nothing under way, is
    /// INVALID_TXN_STATE; one still being written is CONCURRENT_TRANSACTIONS.
    pub fn end(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<Option<Transition>, ResponseError> {
        let current = self.current_for(transactional_id, producer_id, producer_epoch)?;
        match (current.state, commit) {
            (TxnState::Ongoing, _) => Ok(Some(prepare_end(current.clone(), commit, now_ms))),
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => Ok(None),
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(ResponseError::ConcurrentTransactions)
            }
            _ => Err(ResponseError::InvalidTxnState),
        }
    }

    /// The `commit` (or abort) markers of `transactional_id` were all written: the
    /// transaction is complete. `None` if it is no longer preparing that end at that
    /// epoch (a newer transition won).
    pub fn complete(
        &self,
        transactional_id: &str,
        producer_epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Option<Transition> {
        let current = self.txns.get(transactional_id)?;
        let state = match (current.state, commit) {
            (TxnState::PrepareCommit, true) => TxnState::CompleteCommit,
            (TxnState::PrepareAbort, false) => TxnState::CompleteAbort,
            _ => return None,
        };
        if current.producer_epoch != producer_epoch {
            return None;
        }
        let record = TxnMetadata {
            state,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now_ms,
            ..current.clone()
        };
        Some(Transition {
            record,
            markers: None,
        })
    }

    /// Transactions open longer than their timeout: each is aborted with its epoch
    /// bumped, so the producer that left it open is fenced (Kafka's
    /// `abortTimedOutTransactions`).
    pub fn expired(&self, now_ms: i64) -> Vec<Transition> {
        self.txns
            .values()
            .filter(|m| m.state == TxnState::Ongoing && now_ms > m.start_ms + m.timeout_ms as i64)
            .map(|m| {
                let mut record = m.clone();
                record.producer_epoch = m.producer_epoch.saturating_add(1);
                prepare_end(record, false, now_ms)
            })
            .collect()
    }

    /// Transactions whose end was prepared but not completed (after a coordinator
    /// change): their markers are sent again.
    pub fn unfinished(&self) -> Vec<Markers> {
        self.txns.values().filter_map(unfinished_markers).collect()
    }
}

/// The markers still owed for `metadata`, if its end was prepared and not completed.
pub fn unfinished_markers(metadata: &TxnMetadata) -> Option<Markers> {
    metadata
        .state
        .is_preparing()
        .then(|| markers_of(metadata, metadata.state == TxnState::PrepareCommit))
}

fn markers_of(metadata: &TxnMetadata, commit: bool) -> Markers {
    Markers {
        transactional_id: metadata.transactional_id.clone(),
        producer_id: metadata.producer_id,
        producer_epoch: metadata.producer_epoch,
        commit,
        partitions: metadata.partitions.clone(),
    }
}

/// Moves `record` to PrepareCommit or PrepareAbort, with the markers to write.
fn prepare_end(mut record: TxnMetadata, commit: bool, now_ms: i64) -> Transition {
    record.state = if commit {
        TxnState::PrepareCommit
    } else {
        TxnState::PrepareAbort
    };
    record.last_update_ms = now_ms;
    let markers = markers_of(&record, commit);
    Transition {
        record,
        markers: Some(markers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "payments";

    fn tp(topic: &str, partition: i32) -> TxnPartition {
        (topic.to_string(), partition)
    }

    /// A table with `ID` initialised: producer 100, epoch 0.
    fn initialised() -> Transactions {
        let mut txns = Transactions::new(DEFAULT_MAX_TIMEOUT_MS);
        assert!(txns.needs_producer_id(ID));
        let InitOutcome::Ready { transition, .. } = txns
            .init_producer_id(ID, 60_000, None, Some(100), 0)
            .unwrap()
        else {
            panic!("a new id is ready at once")
        };
        txns.apply(transition.record);
        txns
    }

    fn apply(transition: Option<Transition>, txns: &mut Transactions) -> Option<Markers> {
        let transition = transition?;
        txns.apply(transition.record);
        transition.markers
    }

    #[test]
    fn a_transaction_commits_through_prepare_and_markers() {
        let mut txns = initialised();
        let added = txns
            .add_partitions(ID, 100, 0, &[tp("orders", 0), tp("orders", 1)], 10)
            .unwrap();
        apply(added, &mut txns);
        assert_eq!(txns.get(ID).unwrap().state, TxnState::Ongoing);
        assert_eq!(txns.get(ID).unwrap().start_ms, 10);
        assert_eq!(
            txns.add_partitions(ID, 100, 0, &[tp("orders", 1)], 11),
            Ok(None),
            "already part of the transaction"
        );

        let markers = apply(txns.end(ID, 100, 0, true, 20).unwrap(), &mut txns).unwrap();
        assert!(markers.commit);
        assert_eq!(markers.partitions.len(), 2);
        assert_eq!(txns.get(ID).unwrap().state, TxnState::PrepareCommit);
        // While markers are written: a retry waits, the opposite end is refused.
        assert_eq!(
            txns.end(ID, 100, 0, true, 21),
            Err(ResponseError::ConcurrentTransactions)
        );
        assert_eq!(
            txns.end(ID, 100, 0, false, 21),
            Err(ResponseError::InvalidTxnState)
        );
        assert_eq!(
            txns.add_partitions(ID, 100, 0, &[tp("orders", 2)], 21),
            Err(ResponseError::ConcurrentTransactions)
        );

        apply(txns.complete(ID, 0, true, 30), &mut txns);
        let done = txns.get(ID).unwrap();
        assert_eq!(
            (done.state, done.partitions.len()),
            (TxnState::CompleteCommit, 0)
        );
        assert_eq!(
            txns.end(ID, 100, 0, true, 31),
            Ok(None),
            "a retried commit succeeds"
        );
        assert_eq!(
            txns.end(ID, 100, 0, false, 31),
            Err(ResponseError::InvalidTxnState)
        );
    }

    #[test]
    fn a_new_incarnation_fences_the_old_one_and_aborts_its_transaction() {
        let mut txns = initialised();
        apply(
            txns.add_partitions(ID, 100, 0, &[tp("orders", 0)], 10)
                .unwrap(),
            &mut txns,
        );
        // The producer restarts while its transaction is open.
        let InitOutcome::AbortingPrevious(abort) =
            txns.init_producer_id(ID, 60_000, None, None, 20).unwrap()
        else {
            panic!("the open transaction is aborted first")
        };
        let markers = apply(Some(abort), &mut txns).unwrap();
        assert!(!markers.commit);
        assert_eq!(markers.producer_epoch, 1, "markers carry the fencing epoch");
        assert_eq!(
            txns.init_producer_id(ID, 60_000, None, None, 21),
            Err(ResponseError::ConcurrentTransactions),
            "the client retries until the abort completes"
        );
        // The zombie is fenced from here on.
        assert_eq!(
            txns.add_partitions(ID, 100, 0, &[tp("orders", 1)], 22),
            Err(ResponseError::ProducerFenced)
        );
        apply(txns.complete(ID, 1, false, 30), &mut txns);
        let InitOutcome::Ready {
            producer_id,
            producer_epoch,
            transition,
        } = txns.init_producer_id(ID, 60_000, None, None, 31).unwrap()
        else {
            panic!("ready once aborted")
        };
        assert_eq!((producer_id, producer_epoch), (100, 2));
        assert_eq!(transition.record.state, TxnState::Empty);
    }

    #[test]
    fn requests_are_checked_against_the_producer_and_its_epoch() {
        let mut txns = initialised();
        assert_eq!(
            txns.add_partitions("other", 100, 0, &[tp("t", 0)], 1),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        assert_eq!(
            txns.add_partitions(ID, 101, 0, &[tp("t", 0)], 1),
            Err(ResponseError::InvalidProducerIdMapping)
        );
        assert_eq!(
            txns.add_partitions(ID, 100, 1, &[tp("t", 0)], 1),
            Err(ResponseError::ProducerFenced)
        );
        assert_eq!(
            txns.end(ID, 100, 0, true, 1),
            Err(ResponseError::InvalidTxnState),
            "nothing to commit"
        );
        assert_eq!(
            txns.init_producer_id(ID, 0, None, None, 1),
            Err(ResponseError::InvalidTransactionTimeout)
        );
        assert_eq!(
            txns.init_producer_id(ID, 60_000, Some((100, 3)), None, 1),
            Err(ResponseError::ProducerFenced),
            "KIP-360: only the current epoch may bump itself"
        );
        // An exhausted epoch moves to a fresh producer id.
        let mut exhausted = txns.get(ID).unwrap().clone();
        exhausted.producer_epoch = i16::MAX - 1;
        txns.apply(exhausted);
        assert!(txns.needs_producer_id(ID));
        let Ok(InitOutcome::Ready {
            producer_id,
            producer_epoch,
            ..
        }) = txns.init_producer_id(ID, 60_000, None, Some(200), 2)
        else {
            panic!()
        };
        assert_eq!((producer_id, producer_epoch), (200, 0));
    }

    #[test]
    fn timed_out_transactions_are_aborted_with_a_fencing_epoch() {
        let mut txns = initialised();
        apply(
            txns.add_partitions(ID, 100, 0, &[tp("orders", 0)], 1_000)
                .unwrap(),
            &mut txns,
        );
        assert!(txns.expired(61_000).is_empty());
        let expired = txns.expired(61_001);
        assert_eq!(expired.len(), 1);
        let markers = apply(expired.into_iter().next(), &mut txns).unwrap();
        assert_eq!((markers.commit, markers.producer_epoch), (false, 1));
        assert_eq!(txns.unfinished(), vec![markers]);
        assert_eq!(
            txns.end(ID, 100, 0, true, 61_002),
            Err(ResponseError::ProducerFenced)
        );
    }

    #[test]
    fn states_keep_their_wire_ids() {
        for state in TxnState::ALL {
            assert_eq!(
                TxnState::from_id(state.id()),
                Some(state),
                "{}",
                state.name()
            );
        }
        assert_eq!(TxnState::from_id(6), None);
    }
}
