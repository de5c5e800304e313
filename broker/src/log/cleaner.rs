//! The core of log compaction (`cleanup.policy=compact`), as Kafka's `LogCleaner` does
//! it, kept pure so every rule is unit-tested: an [`OffsetMap`] of the latest offset of
//! each key in the dirty part of a log, bounded in memory as Kafka's dedupe buffer is, and
//! [`clean_batch`], which keeps a batch whole, rewrites it with the records that survive,
//! or drops it. Choosing segments, scheduling and swapping cleaned segments in belong to
//! the log; this module only decides what survives.
//!
//! A rewritten batch may have gaps between its offsets, as Kafka's cleaned batches do, so
//! the contiguity [`batch::validate`] demands of produced batches must not be asked of
//! cleaned segments (recovery and replication of compacted logs).

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions};

use super::batch::{self, BatchError, BatchHeader};

/// Bytes an [`OffsetMap`] entry costs, as Kafka counts it: a 16-byte key digest and an
/// 8-byte offset.
pub const ENTRY_BYTES: usize = 24;

/// A key's 128-bit digest: two independently seeded SipHash values, so that distinct keys
/// collide with negligible probability while the map stores 16 bytes a key, whatever the
/// key's size.
type KeyDigest = [u8; 16];

fn digest(key: &[u8]) -> KeyDigest {
    let half = |seed: u64| {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        seed.hash(&mut hasher);
        key.hash(&mut hasher);
        hasher.finish().to_be_bytes()
    };
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&half(0x9e37_79b9_7f4a_7c15));
    out[8..].copy_from_slice(&half(0xc2b2_ae3d_27d4_eb4f));
    out
}

/// The latest offset of each key seen, holding at most `capacity` keys
/// (`log.cleaner.dedupe.buffer.size` / [`ENTRY_BYTES`]).
#[derive(Debug)]
pub struct OffsetMap {
    latest: HashMap<KeyDigest, i64>,
    capacity: usize,
    /// The last offset whose record was added: the map covers the log up to here.
    last_offset: i64,
}

impl OffsetMap {
    /// A map bounded by `buffer_bytes` of dedupe buffer.
    pub fn with_buffer(buffer_bytes: usize) -> Self {
        OffsetMap {
            latest: HashMap::new(),
            capacity: (buffer_bytes / ENTRY_BYTES).max(1),
            last_offset: -1,
        }
    }

    /// Whether one more new key would exceed the bound.
    pub fn is_full(&self) -> bool {
        self.latest.len() >= self.capacity
    }

    /// Marks the map as covering the log up to `offset` without adding keys: a batch
    /// whose records supersede nothing (an aborted transaction's) was passed over.
    pub fn cover(&mut self, offset: i64) {
        self.last_offset = self.last_offset.max(offset);
    }

    /// Keys mapped.
    pub fn len(&self) -> usize {
        self.latest.len()
    }

    /// Whether no key is mapped.
    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }

    /// The last offset the map covers (-1 before any record).
    pub fn last_offset(&self) -> i64 {
        self.last_offset
    }

    /// The latest offset of `key`, if the map has seen it.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(&digest(key)).copied()
    }

    /// Adds the keyed records of one batch of the dirty section. Returns `Ok(false)`,
    /// leaving the map as it was, when the batch's new keys do not fit: the cleaning
    /// round then stops before this batch, as Kafka's does when its buffer fills.
    /// Control batches and keyless records add nothing.
    pub fn add_batch(&mut self, bytes: &Bytes) -> Result<bool, BatchError> {
        let header = BatchHeader::parse(bytes)?;
        if header.is_control() {
            self.last_offset = self.last_offset.max(header.last_offset());
            return Ok(true);
        }
        let mut buf = bytes.clone();
        let set = RecordBatchDecoder::decode(&mut buf)
            .map_err(|_| BatchError::CorruptRecord("records do not decode"))?;
        let keyed: Vec<(KeyDigest, i64)> = set
            .records
            .iter()
            .filter_map(|r| r.key.as_deref().map(|k| (digest(k), r.offset)))
            .collect();
        let new_keys = keyed
            .iter()
            .filter(|(d, _)| !self.latest.contains_key(d))
            .map(|(d, _)| d)
            .collect::<std::collections::HashSet<_>>()
            .len();
        if self.latest.len() + new_keys > self.capacity {
            return Ok(false);
        }
        for (key, offset) in keyed {
            self.latest.insert(key, offset);
        }
        self.last_offset = self.last_offset.max(header.last_offset());
        Ok(true)
    }
}

/// What cleaning does to one batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Cleaned {
    /// Every record survives: the batch is kept byte for byte.
    Kept,
    /// Some records survive: a rewritten batch with only them, in the batch's
    /// compression, ending at the same last offset.
    Rewritten(Bytes),
    /// No record survives: the batch goes. (An idempotent producer's last batch could be
    /// kept empty, as Kafka does, once producer state is rebuilt from compacted logs.)
    Dropped,
}

/// Cleans one batch against `map`. A record survives unless a later record has its key,
/// it has no key (compacted topics refuse keyless records, so any left are garbage), or
/// it is a tombstone (null value) and `retain_tombstones` is false: tombstones are kept
/// for `delete.retention.ms` after the segment holding them was last written, so that
/// consumers reading from the start see deletions. Control batches are kept.
pub fn clean_batch(
    bytes: &Bytes,
    map: &OffsetMap,
    retain_tombstones: bool,
) -> Result<Cleaned, BatchError> {
    let header = BatchHeader::parse(bytes)?;
    if header.is_control() {
        return Ok(Cleaned::Kept);
    }
    let mut buf = bytes.clone();
    let set = RecordBatchDecoder::decode(&mut buf)
        .map_err(|_| BatchError::CorruptRecord("records do not decode"))?;
    let total = set.records.len();
    let survivors: Vec<_> = set
        .records
        .into_iter()
        .filter(|record| {
            let Some(key) = record.key.as_deref() else {
                return false;
            };
            let superseded = map.get(key).is_some_and(|latest| record.offset < latest);
            let expired_tombstone = record.value.is_none() && !retain_tombstones;
            !superseded && !expired_tombstone
        })
        .collect();
    if survivors.len() == total {
        return Ok(Cleaned::Kept);
    }
    if survivors.is_empty() {
        return Ok(Cleaned::Dropped);
    }
    let compression = batch::codec_of(header.compression());
    let mut out = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut out,
        &survivors,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(|_| BatchError::Invalid("surviving records cannot be encoded"))?;
    let rewritten = BatchHeader::parse(&out)?;
    if rewritten.total_len() != out.len() {
        // The survivors did not fit one batch (they always share the batch's producer).
        return Err(BatchError::Invalid(
            "surviving records span several batches",
        ));
    }
    let delta = header.last_offset() - rewritten.base_offset;
    let delta = i32::try_from(delta).map_err(|_| BatchError::Invalid("offset delta overflow"))?;
    batch::set_last_offset_delta(&mut out, delta);
    Ok(Cleaned::Rewritten(out.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{Compression, Record, TimestampType};

    /// A batch of `(offset, key, value)` records from one producer.
    fn batch(records: &[(i64, Option<&str>, Option<&str>)], compression: Compression) -> Bytes {
        let records: Vec<Record> = records
            .iter()
            .map(|(offset, key, value)| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: 42,
                producer_epoch: 0,
                timestamp_type: TimestampType::Creation,
                offset: *offset,
                sequence: *offset as i32,
                timestamp: 1_700_000_000_000 + offset,
                key: key.map(|k| Bytes::from(k.to_string())),
                value: value.map(|v| Bytes::from(v.to_string())),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        batch::encode_records(&records, compression)
            .unwrap()
            .freeze()
    }

    fn survivors(cleaned: &Cleaned) -> Vec<(i64, Option<Bytes>)> {
        let Cleaned::Rewritten(bytes) = cleaned else {
            panic!("not rewritten: {cleaned:?}");
        };
        let mut buf = bytes.clone();
        RecordBatchDecoder::decode(&mut buf)
            .unwrap()
            .records
            .into_iter()
            .map(|r| (r.offset, r.value))
            .collect()
    }

    #[test]
    fn only_the_latest_record_of_each_key_survives() {
        let first = batch(
            &[
                (0, Some("a"), Some("a0")),
                (1, Some("b"), Some("b1")),
                (2, Some("a"), Some("a2")),
            ],
            Compression::None,
        );
        let second = batch(
            &[(3, Some("b"), Some("b3")), (4, Some("c"), Some("c4"))],
            Compression::Gzip,
        );
        let mut map = OffsetMap::with_buffer(1 << 20);
        assert!(map.add_batch(&first).unwrap());
        assert!(map.add_batch(&second).unwrap());
        assert_eq!(
            (map.get(b"a"), map.get(b"b"), map.get(b"c")),
            (Some(2), Some(3), Some(4))
        );
        assert_eq!(map.last_offset(), 4);

        let cleaned = clean_batch(&first, &map, true).unwrap();
        assert_eq!(survivors(&cleaned), vec![(2, Some(Bytes::from("a2")))]);
        // The rewritten batch still ends where the original did, and is sound.
        let Cleaned::Rewritten(bytes) = &cleaned else {
            unreachable!()
        };
        let header = batch::validate(bytes).unwrap();
        assert_eq!((header.base_offset, header.last_offset()), (2, 2));
        assert_eq!(header.producer_id, 42);
        assert_eq!(clean_batch(&second, &map, true).unwrap(), Cleaned::Kept);
    }

    #[test]
    fn a_rewritten_batch_keeps_its_last_offset_and_compression() {
        let compressed = batch(
            &[
                (10, Some("x"), Some("old")),
                (11, Some("y"), Some("y")),
                (12, Some("x"), Some("new")),
                (13, Some("z"), Some("gone")),
            ],
            Compression::Lz4,
        );
        let later = batch(&[(14, Some("z"), Some("z"))], Compression::None);
        let mut map = OffsetMap::with_buffer(1 << 20);
        map.add_batch(&compressed).unwrap();
        map.add_batch(&later).unwrap();
        let cleaned = clean_batch(&compressed, &map, true).unwrap();
        assert_eq!(
            survivors(&cleaned),
            vec![(11, Some(Bytes::from("y"))), (12, Some(Bytes::from("new")))]
        );
        let Cleaned::Rewritten(bytes) = &cleaned else {
            unreachable!()
        };
        let header = batch::validate(bytes).unwrap();
        assert_eq!(header.compression(), batch::codec_id(Compression::Lz4));
        assert_eq!((header.base_offset, header.last_offset()), (11, 13));
        assert_eq!(header.record_count, 2);
    }

    #[test]
    fn tombstones_survive_until_their_retention_ends_and_keyless_records_go() {
        let records = batch(
            &[
                (0, Some("k"), Some("v")),
                (1, Some("k"), None),
                (2, None, Some("no key")),
                (3, Some("j"), Some("j")),
            ],
            Compression::None,
        );
        let mut map = OffsetMap::with_buffer(1 << 20);
        map.add_batch(&records).unwrap();
        let kept = clean_batch(&records, &map, true).unwrap();
        assert_eq!(
            survivors(&kept),
            vec![(1, None), (3, Some(Bytes::from("j")))],
            "the tombstone is the latest record of its key"
        );
        let expired = clean_batch(&records, &map, false).unwrap();
        assert_eq!(survivors(&expired), vec![(3, Some(Bytes::from("j")))]);
        let only_old = batch(&[(0, Some("j"), Some("old"))], Compression::None);
        assert_eq!(
            clean_batch(&only_old, &map, true).unwrap(),
            Cleaned::Dropped
        );
    }

    #[test]
    fn the_map_stops_at_its_memory_bound() {
        // Room for three keys.
        let mut map = OffsetMap::with_buffer(3 * ENTRY_BYTES);
        let two = batch(
            &[(0, Some("a"), Some("1")), (1, Some("b"), Some("1"))],
            Compression::None,
        );
        let again = batch(
            &[(2, Some("a"), Some("2")), (3, Some("c"), Some("1"))],
            Compression::None,
        );
        let more = batch(
            &[(4, Some("d"), Some("1")), (5, Some("e"), Some("1"))],
            Compression::None,
        );
        assert!(map.add_batch(&two).unwrap());
        assert!(map.add_batch(&again).unwrap(), "one new key fits");
        assert!(map.is_full());
        assert!(!map.add_batch(&more).unwrap(), "two new keys do not");
        assert_eq!(
            map.last_offset(),
            3,
            "the map covers the log up to offset 3"
        );
        assert_eq!(map.get(b"d"), None);
    }
}
