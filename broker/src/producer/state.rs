//! Per-partition idempotence state: the last batches of each producer, so retried batches
//! are recognised as duplicates and gaps are refused, as Kafka's `ProducerStateManager` does.

use std::collections::{HashMap, VecDeque};
use tributary_metadata::ResponseError;

use thiserror::Error;

use crate::log::batch::BatchHeader;

/// How many recent batches per producer are remembered (the clients' max in-flight requests).
pub const BATCHES_RETAINED: usize = 5;

/// A batch a producer wrote, enough to answer a retry of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchMetadata {
    first_sequence: i32,
    last_sequence: i32,
    base_offset: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ProducerEntry {
    epoch: i16,
    batches: VecDeque<BatchMetadata>,
    /// The max timestamp of its last batch or marker.
    last_timestamp: i64,
}

/// A producer's state as DescribeProducers reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerSnapshot {
    pub producer_id: i64,
    pub epoch: i16,
    /// The last sequence of its last batch (-1: none since its epoch began).
    pub last_sequence: i32,
    pub last_timestamp: i64,
}

/// Why a batch from an idempotent producer is refused.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SequenceError {
    /// The producer's epoch is older than one already seen (a zombie producer).
    #[error("producer epoch {got} is older than current epoch {current}")]
    InvalidProducerEpoch { got: i16, current: i16 },
    /// The batch does not directly follow the producer's last batch.
    #[error("out of order sequence: expected {expected}, got {got}")]
    OutOfOrderSequence { expected: i32, got: i32 },
}

impl SequenceError {
    /// The Kafka error a produce response carries for this refusal.
    pub fn kafka_error(&self) -> ResponseError {
        match self {
            SequenceError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
            SequenceError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        }
    }
}

/// What to do with a batch from an idempotent producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceCheck {
    /// New data: append it.
    Append,
    /// A retry of a batch already in the log at `base_offset`: acknowledge without appending.
    Duplicate { base_offset: i64 },
}

/// Sequence state of every producer that wrote to one partition.
#[derive(Debug, Clone, Default)]
pub struct ProducerStateTable {
    producers: HashMap<i64, ProducerEntry>,
}

fn in_sequence(last: i32, next: i32) -> bool {
    next == last.wrapping_add(1) || (last == i32::MAX && next == 0)
}

impl ProducerStateTable {
    /// Decides whether `header` (not yet appended) is new, a duplicate or invalid.
    pub fn check(&self, header: &BatchHeader) -> Result<SequenceCheck, SequenceError> {
        if !header.has_producer_id() || header.base_sequence < 0 {
            return Ok(SequenceCheck::Append);
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            // Unknown producer (new, or its state aged out): accept any sequence, as Kafka does.
            return Ok(SequenceCheck::Append);
        };
        if header.producer_epoch < entry.epoch {
            return Err(SequenceError::InvalidProducerEpoch {
                got: header.producer_epoch,
                current: entry.epoch,
            });
        }
        if header.producer_epoch > entry.epoch {
            // A bumped epoch must restart its sequences.
            return if header.base_sequence == 0 {
                Ok(SequenceCheck::Append)
            } else {
                Err(SequenceError::OutOfOrderSequence {
                    expected: 0,
                    got: header.base_sequence,
                })
            };
        }
        if let Some(dup) = entry.batches.iter().find(|b| {
            b.first_sequence == header.base_sequence && b.last_sequence == header.last_sequence()
        }) {
            return Ok(SequenceCheck::Duplicate {
                base_offset: dup.base_offset,
            });
        }
        match entry.batches.back() {
            Some(last) if !in_sequence(last.last_sequence, header.base_sequence) => {
                Err(SequenceError::OutOfOrderSequence {
                    expected: last.last_sequence.wrapping_add(1),
                    got: header.base_sequence,
                })
            }
            _ => Ok(SequenceCheck::Append),
        }
    }

    /// Records a batch that is now in the log (with its assigned base offset).
    pub fn record(&mut self, header: &BatchHeader) {
        if !header.has_producer_id() || header.base_sequence < 0 {
            return;
        }
        let entry = self.producers.entry(header.producer_id).or_default();
        entry.last_timestamp = header.max_timestamp;
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        if entry.batches.len() == BATCHES_RETAINED {
            entry.batches.pop_front();
        }
        entry.batches.push_back(BatchMetadata {
            first_sequence: header.base_sequence,
            last_sequence: header.last_sequence(),
            base_offset: header.base_offset,
        });
    }

    /// The epoch a producer is known at, if any.
    pub fn epoch_of(&self, producer_id: i64) -> Option<i16> {
        self.producers.get(&producer_id).map(|entry| entry.epoch)
    }

    /// Follows a transaction marker: one at a newer epoch fences the producer's older
    /// epochs (the coordinator bumped it), so their writes are refused from now on.
    pub fn record_marker(&mut self, header: &BatchHeader) {
        let entry = self.producers.entry(header.producer_id).or_default();
        entry.last_timestamp = header.max_timestamp;
        if header.producer_epoch > entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
    }

    /// Forgets batches at or after `offset` (the log was truncated there), and producers
    /// left with none, as Kafka's `truncateAndReload` does for the truncated range.
    pub fn truncate_from(&mut self, offset: i64) {
        self.producers.retain(|_, entry| {
            entry.batches.retain(|b| b.base_offset < offset);
            !entry.batches.is_empty()
        });
    }

    /// The base offset of each producer's latest batch: compaction keeps those batches
    /// (empty if need be), so that a restart rebuilds every producer's sequence and epoch.
    pub fn last_batch_offsets(&self) -> std::collections::HashSet<i64> {
        self.producers
            .values()
            .filter_map(|entry| entry.batches.back().map(|b| b.base_offset))
            .collect()
    }

    /// Every producer with state, by id.
    pub fn snapshot(&self) -> Vec<ProducerSnapshot> {
        let mut producers: Vec<ProducerSnapshot> = self
            .producers
            .iter()
            .map(|(id, entry)| ProducerSnapshot {
                producer_id: *id,
                epoch: entry.epoch,
                last_sequence: entry.batches.back().map_or(-1, |b| b.last_sequence),
                last_timestamp: entry.last_timestamp,
            })
            .collect();
        producers.sort_by_key(|p| p.producer_id);
        producers
    }

    /// Number of producers with state (for tests and metrics).
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer has state.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(pid: i64, epoch: i16, seq: i32, count: i32, base_offset: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 100,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            record_count: count,
        }
    }

    #[test]
    fn accepts_in_order_and_detects_retries() {
        let mut table = ProducerStateTable::default();
        let first = header(1, 0, 0, 5, 0);
        assert_eq!(table.check(&first), Ok(SequenceCheck::Append));
        table.record(&first);
        let second = header(1, 0, 5, 5, 5);
        assert_eq!(table.check(&second), Ok(SequenceCheck::Append));
        table.record(&second);
        assert_eq!(
            table.check(&header(1, 0, 0, 5, -1)),
            Ok(SequenceCheck::Duplicate { base_offset: 0 })
        );
        assert_eq!(
            table.check(&header(1, 0, 12, 1, -1)),
            Err(SequenceError::OutOfOrderSequence {
                expected: 10,
                got: 12
            })
        );
    }

    #[test]
    fn epochs_fence_and_reset() {
        let mut table = ProducerStateTable::default();
        table.record(&header(1, 3, 0, 2, 0));
        assert_eq!(
            table.check(&header(1, 2, 2, 1, -1)),
            Err(SequenceError::InvalidProducerEpoch { got: 2, current: 3 })
        );
        assert!(table.check(&header(1, 4, 5, 1, -1)).is_err());
        assert_eq!(
            table.check(&header(1, 4, 0, 1, -1)),
            Ok(SequenceCheck::Append)
        );
        // Unknown producers and non-idempotent batches are always appended.
        assert_eq!(
            table.check(&header(9, 0, 77, 1, -1)),
            Ok(SequenceCheck::Append)
        );
        assert_eq!(
            table.check(&header(-1, -1, -1, 1, -1)),
            Ok(SequenceCheck::Append)
        );
    }

    #[test]
    fn truncation_forgets_truncated_batches() {
        let mut table = ProducerStateTable::default();
        table.record(&header(1, 0, 0, 5, 0));
        table.record(&header(1, 0, 5, 5, 5));
        table.record(&header(2, 0, 0, 1, 10));
        table.truncate_from(5);
        // The retry of the truncated batch is new data again, not a duplicate.
        assert_eq!(
            table.check(&header(1, 0, 5, 5, -1)),
            Ok(SequenceCheck::Append)
        );
        assert_eq!(
            table.check(&header(1, 0, 0, 5, -1)),
            Ok(SequenceCheck::Duplicate { base_offset: 0 })
        );
        assert_eq!(table.len(), 1, "producer 2 had nothing left");
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        let mut table = ProducerStateTable::default();
        table.record(&header(1, 0, i32::MAX - 1, 2, 0));
        assert_eq!(
            table.check(&header(1, 0, 0, 1, -1)),
            Ok(SequenceCheck::Append)
        );
    }

    proptest::proptest! {
        /// Replaying any prefix of an in-order stream is always recognised as duplicates of
        /// the last five batches or rejected, never appended twice.
        #[test]
        fn retries_never_append_twice(sizes in proptest::collection::vec(1i32..20, 1..30), retry in 0usize..30) {
            let mut table = ProducerStateTable::default();
            let mut seq = 0;
            let mut offset = 0;
            let mut written = Vec::new();
            for size in &sizes {
                let h = header(7, 0, seq, *size, offset);
                proptest::prop_assert_eq!(table.check(&h), Ok(SequenceCheck::Append));
                table.record(&h);
                written.push(h);
                seq += size;
                offset += *size as i64;
            }
            let retry = retry % written.len();
            let mut again = written[retry];
            again.base_offset = -1;
            let result = table.check(&again);
            if written.len() - retry <= BATCHES_RETAINED {
                proptest::prop_assert_eq!(result, Ok(SequenceCheck::Duplicate { base_offset: written[retry].base_offset }));
            } else {
                proptest::prop_assert!(result.is_err());
            }
        }
    }
}
