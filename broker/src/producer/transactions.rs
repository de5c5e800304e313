//! A partition's transactions, as Kafka's `ProducerStateManager` and transaction index
//! keep them: the first offset of each producer's open transaction, which holds the last
//! stable offset back (a `read_committed` consumer reads no further), and the aborted
//! transactions a `read_committed` fetch names so the consumer can drop their records.
//! Fed every batch in log order: by appends, by replication and by recovery at start-up.

use std::collections::HashMap;

use crate::log::batch::{BatchHeader, ControlType};

/// An aborted transaction: its producer's records from `first_offset` up to the abort
/// marker at `last_offset` are not to be delivered to `read_committed` consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// The transactions of one partition.
#[derive(Debug, Clone, Default)]
pub struct PartitionTxns {
    /// Producer id → first offset of its open transaction.
    ongoing: HashMap<i64, i64>,
    /// Aborted transactions in the order of their markers.
    aborted: Vec<AbortedTxn>,
}

impl PartitionTxns {
    /// Follows one batch appended to the log (`control`: the marker type of a control
    /// batch).
    pub fn on_batch(&mut self, header: &BatchHeader, control: Option<ControlType>) {
        if !header.is_transactional() {
            return;
        }
        if !header.is_control() {
            self.ongoing
                .entry(header.producer_id)
                .or_insert(header.base_offset);
            return;
        }
        let Some(first_offset) = self.ongoing.remove(&header.producer_id) else {
            return;
        };
        if control == Some(ControlType::Abort) {
            self.aborted.push(AbortedTxn {
                producer_id: header.producer_id,
                first_offset,
                last_offset: header.base_offset,
            });
        }
    }

    /// Where `producer_id`'s open transaction began, if it has one here.
    pub fn open_since(&self, producer_id: i64) -> Option<i64> {
        self.ongoing.get(&producer_id).copied()
    }

    /// The first offset of the oldest open transaction, if any: the last stable offset
    /// cannot pass it.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.values().min().copied()
    }

    /// The aborted transactions a fetch of `[from, to)` must name: those whose records
    /// may lie in the range (`(producer id, first offset)`, as the Fetch response has them).
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<(i64, i64)> {
        self.aborted
            .iter()
            .filter(|t| t.last_offset >= from && t.first_offset < to)
            .map(|t| (t.producer_id, t.first_offset))
            .collect()
    }

    /// Every aborted transaction still in the log (the cleaner drops their records).
    pub fn aborted(&self) -> Vec<AbortedTxn> {
        self.aborted.clone()
    }

    /// The log was truncated at `offset`: transactions that began there or later are gone,
    /// and an abort whose marker is gone is open again.
    pub fn truncate_from(&mut self, offset: i64) {
        self.ongoing.retain(|_, first| *first < offset);
        let (kept, reopened): (Vec<_>, Vec<_>) =
            self.aborted.drain(..).partition(|t| t.last_offset < offset);
        self.aborted = kept;
        for txn in reopened.into_iter().filter(|t| t.first_offset < offset) {
            self.ongoing.insert(txn.producer_id, txn.first_offset);
        }
    }

    /// The log now starts at `offset`: aborted transactions wholly before it are dropped.
    pub fn retain_from(&mut self, offset: i64) {
        self.aborted.retain(|t| t.last_offset >= offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(
        producer_id: i64,
        base_offset: i64,
        transactional: bool,
        control: bool,
    ) -> BatchHeader {
        let mut attributes = 0;
        if transactional {
            attributes |= 0x10;
        }
        if control {
            attributes |= 0x20;
        }
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes,
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: 0,
            base_sequence: if control { -1 } else { 0 },
            record_count: 1,
        }
    }

    fn data(txns: &mut PartitionTxns, producer: i64, offset: i64) {
        txns.on_batch(&header(producer, offset, true, false), None);
    }

    fn marker(txns: &mut PartitionTxns, producer: i64, offset: i64, control: ControlType) {
        txns.on_batch(&header(producer, offset, true, true), Some(control));
    }

    #[test]
    fn open_transactions_hold_the_stable_offset_and_aborts_are_named() {
        let mut txns = PartitionTxns::default();
        txns.on_batch(&header(-1, 0, false, false), None);
        assert_eq!(txns.first_unstable_offset(), None);
        data(&mut txns, 1, 1);
        data(&mut txns, 2, 2);
        data(&mut txns, 1, 3);
        assert_eq!(txns.first_unstable_offset(), Some(1));
        marker(&mut txns, 1, 4, ControlType::Commit);
        assert_eq!(txns.first_unstable_offset(), Some(2));
        marker(&mut txns, 2, 5, ControlType::Abort);
        assert_eq!(txns.first_unstable_offset(), None);
        assert_eq!(txns.aborted_between(0, 10), [(2, 2)]);
        assert_eq!(txns.aborted_between(6, 10), []);
        assert_eq!(
            txns.aborted_between(0, 2),
            [],
            "the range ends before it began"
        );
        // A marker without an open transaction (a retried marker) changes nothing.
        marker(&mut txns, 2, 6, ControlType::Abort);
        assert_eq!(txns.aborted_between(0, 10).len(), 1);
    }

    #[test]
    fn truncation_reopens_what_lost_its_marker() {
        let mut txns = PartitionTxns::default();
        data(&mut txns, 1, 0);
        marker(&mut txns, 1, 1, ControlType::Abort);
        data(&mut txns, 2, 2);
        txns.truncate_from(1);
        assert_eq!(
            txns.first_unstable_offset(),
            Some(0),
            "the abort marker is gone"
        );
        assert!(txns.aborted_between(0, 10).is_empty());
        marker(&mut txns, 1, 1, ControlType::Abort);
        txns.retain_from(2);
        assert!(
            txns.aborted_between(0, 10).is_empty(),
            "before the log start"
        );
    }
}
