//! Leader epoch history of a partition: which epoch wrote which offsets.
//!
//! Consumers (KIP-320) and followers use it through OffsetForLeaderEpoch to detect and
//! truncate divergent logs after a leader change. It is derived from batch headers, so it
//! is rebuilt whenever the log is opened.

/// Returned for an epoch that is unknown.
pub const UNDEFINED_EPOCH: i32 = -1;
/// Returned as the end offset of an unknown epoch.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// Ordered `(epoch, start offset)` entries with strictly increasing epochs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeaderEpochCache {
    entries: Vec<(i32, i64)>,
}

impl LeaderEpochCache {
    /// Notes that a batch of `epoch` starts at `offset`; only new, higher epochs add entries.
    pub fn observe(&mut self, epoch: i32, offset: i64) {
        if epoch < 0 {
            return;
        }
        match self.entries.last() {
            Some(&(last, _)) if epoch <= last => {}
            _ => self.entries.push((epoch, offset)),
        }
    }

    /// The latest epoch seen, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|e| e.0)
    }

    /// Kafka's `endOffsetFor`: the largest epoch not above `requested` and the offset where
    /// the next higher epoch starts (the log end offset for the latest epoch).
    pub fn end_offset_for(&self, requested: i32, log_end_offset: i64) -> (i32, i64) {
        if requested == UNDEFINED_EPOCH {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        }
        if self.latest_epoch() == Some(requested) {
            return (requested, log_end_offset);
        }
        let higher = self.entries.iter().find(|(e, _)| *e > requested);
        let Some(&(_, higher_start)) = higher else {
            return (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET);
        };
        match self.entries.iter().rev().find(|(e, _)| *e <= requested) {
            Some(&(floor, _)) => (floor, higher_start),
            None => (requested, higher_start),
        }
    }

    /// Forgets epochs that start at or after `offset` (the log was truncated there).
    pub fn truncate_from(&mut self, offset: i64) {
        self.entries.retain(|&(_, start)| start < offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offsets_follow_kafka() {
        let mut cache = LeaderEpochCache::default();
        cache.observe(0, 0);
        cache.observe(0, 5); // same epoch, no new entry
        cache.observe(2, 10);
        cache.observe(1, 12); // stale epoch ignored
        cache.observe(5, 20);
        assert_eq!(cache.end_offset_for(5, 30), (5, 30));
        assert_eq!(cache.end_offset_for(0, 30), (0, 10));
        assert_eq!(cache.end_offset_for(1, 30), (0, 10));
        assert_eq!(cache.end_offset_for(3, 30), (2, 20));
        assert_eq!(
            cache.end_offset_for(9, 30),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
        assert_eq!(
            cache.end_offset_for(-1, 30),
            (UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET)
        );
        cache.truncate_from(20);
        assert_eq!(cache.latest_epoch(), Some(2));
    }

    #[test]
    fn requested_epoch_below_earliest() {
        let mut cache = LeaderEpochCache::default();
        cache.observe(3, 100);
        cache.observe(4, 150);
        assert_eq!(cache.end_offset_for(1, 200), (1, 100));
    }
}
