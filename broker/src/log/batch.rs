//! Zero-copy access to Kafka v2 record batches.
//!
//! The broker stores batches exactly as producers sent them. It only reads the fixed
//! 61-byte header and patches the fields the broker owns (base offset, partition leader
//! epoch, and for `LogAppendTime` topics the max timestamp), so records are never decoded
//! or copied on the produce or fetch path.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};
use thiserror::Error;
use tributary_metadata::ResponseError;

/// Size of the fixed v2 batch header, up to and including the record count.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batchLength` ends: base offset (8) + batch length (4).
pub const LOG_OVERHEAD: usize = 12;

const BASE_OFFSET: usize = 0;
const BATCH_LENGTH: usize = 8;
const LEADER_EPOCH: usize = 12;
const MAGIC: usize = 16;
const CRC: usize = 17;
const ATTRIBUTES: usize = 21;
const LAST_OFFSET_DELTA: usize = 23;
const BASE_TIMESTAMP: usize = 27;
const MAX_TIMESTAMP: usize = 35;
const PRODUCER_ID: usize = 43;
const PRODUCER_EPOCH: usize = 51;
const BASE_SEQUENCE: usize = 53;
const RECORD_COUNT: usize = 57;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_FLAG: i16 = 0x08;
const TRANSACTIONAL_FLAG: i16 = 0x10;
const CONTROL_FLAG: i16 = 0x20;

/// Why a batch was refused; each maps onto a Kafka error code.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BatchError {
    /// The bytes end in the middle of a batch header or body.
    #[error("truncated record batch")]
    Truncated,
    /// Only magic v2 is accepted (every supported client writes it).
    #[error("unsupported record batch magic {0}")]
    UnsupportedMagic(i8),
    /// The stored CRC32C does not match the batch contents.
    #[error("record batch CRC mismatch")]
    CorruptCrc,
    /// Header fields contradict each other (negative counts, bad compression id, ...).
    #[error("invalid record batch: {0}")]
    Invalid(&'static str),
    /// A record inside an uncompressed batch is not well formed (its length, a varint or a
    /// key, value or header running past the record).
    #[error("corrupt record: {0}")]
    CorruptRecord(&'static str),
}

impl BatchError {
    /// The Kafka error a produce response carries for this failure.
    pub fn kafka_error(&self) -> ResponseError {
        match self {
            BatchError::UnsupportedMagic(_) => ResponseError::UnsupportedForMessageFormat,
            BatchError::Truncated | BatchError::CorruptCrc | BatchError::CorruptRecord(_) => {
                ResponseError::CorruptMessage
            }
            BatchError::Invalid(_) => ResponseError::InvalidRecord,
        }
    }
}

/// Decoded view of a batch header. Cheap to copy; the bytes stay where they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// Length of the batch after the `batchLength` field.
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Parses the header at the start of `buf` without checking the CRC.
    pub fn parse(buf: &[u8]) -> Result<Self, BatchError> {
        if buf.len() < LOG_OVERHEAD + 5 {
            return Err(BatchError::Truncated);
        }
        let magic = buf[MAGIC] as i8;
        if magic != 2 {
            return Err(BatchError::UnsupportedMagic(magic));
        }
        if buf.len() < HEADER_LEN {
            return Err(BatchError::Truncated);
        }
        let mut b = buf;
        let header = BatchHeader {
            base_offset: (&b[BASE_OFFSET..]).get_i64(),
            batch_length: (&b[BATCH_LENGTH..]).get_i32(),
            partition_leader_epoch: (&b[LEADER_EPOCH..]).get_i32(),
            magic,
            crc: (&b[CRC..]).get_u32(),
            attributes: (&b[ATTRIBUTES..]).get_i16(),
            last_offset_delta: (&b[LAST_OFFSET_DELTA..]).get_i32(),
            base_timestamp: (&b[BASE_TIMESTAMP..]).get_i64(),
            max_timestamp: (&b[MAX_TIMESTAMP..]).get_i64(),
            producer_id: (&b[PRODUCER_ID..]).get_i64(),
            producer_epoch: (&b[PRODUCER_EPOCH..]).get_i16(),
            base_sequence: (&b[BASE_SEQUENCE..]).get_i32(),
            record_count: {
                b = &b[RECORD_COUNT..];
                b.get_i32()
            },
        };
        if (header.batch_length as i64) < (HEADER_LEN - LOG_OVERHEAD) as i64 {
            return Err(BatchError::Invalid("batch length shorter than header"));
        }
        Ok(header)
    }

    /// Total size of the batch on the wire and on disk.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    /// Offset just past the batch: where the next batch starts.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & COMPRESSION_MASK
    }

    /// Whether the producer asked for LogAppendTime in this batch.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & TIMESTAMP_TYPE_FLAG != 0
    }

    /// Part of a transaction (transactions are not supported yet; see README).
    pub fn is_transactional(&self) -> bool {
        self.attributes & TRANSACTIONAL_FLAG != 0
    }

    /// A transaction marker rather than user data.
    pub fn is_control(&self) -> bool {
        self.attributes & CONTROL_FLAG != 0
    }

    /// Whether this batch carries idempotent-producer state.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence number of the last record (sequences wrap at `i32::MAX`).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return self.base_sequence;
        }
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        (last % (i32::MAX as i64 + 1)) as i32
    }
}

/// CRC32C over everything after the CRC field, as the v2 format defines.
fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES..])
}

/// Checks that `batch` is exactly one well-formed v2 batch with a valid CRC, as a
/// producer must send it: its records fill its offsets one by one.
pub fn validate(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    validate_as(batch, Origin::Produced)
}

/// Checks a batch read back from a log or replicated from a leader: as [`validate`], but
/// a batch the cleaner rewrote may have fewer records than offsets, or none.
pub fn validate_stored(batch: &[u8]) -> Result<BatchHeader, BatchError> {
    validate_as(batch, Origin::Stored)
}

/// Where a batch comes from, which decides how its offsets must be filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Produced,
    Stored,
}

fn validate_as(batch: &[u8], origin: Origin) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.total_len() != batch.len() {
        return Err(if header.total_len() > batch.len() {
            BatchError::Truncated
        } else {
            BatchError::Invalid("trailing bytes after batch")
        });
    }
    if compute_crc(batch) != header.crc {
        return Err(BatchError::CorruptCrc);
    }
    if header.compression() > 4 {
        return Err(BatchError::Invalid("unknown compression codec"));
    }
    if header.record_count < 0 || header.last_offset_delta < 0 {
        return Err(BatchError::Invalid("negative record count or offset delta"));
    }
    let offsets = header.last_offset_delta as i64 + 1;
    let count_fits = match origin {
        Origin::Produced => header.compression() != 0 || header.record_count as i64 == offsets,
        Origin::Stored => header.record_count as i64 <= offsets,
    };
    if !count_fits {
        return Err(BatchError::Invalid(
            "record count does not match last offset delta",
        ));
    }
    if header.record_count == 0 && !header.is_control() && origin == Origin::Produced {
        return Err(BatchError::Invalid("empty batch"));
    }
    if header.compression() == 0 {
        check_records(&batch[HEADER_LEN..], header.record_count)?;
    }
    Ok(header)
}

/// Walks the records of an uncompressed batch without copying them: exactly `count`
/// well-formed records must fill `body`, as a consumer will parse them. Compressed batches
/// are stored as received; their records are checked by the consumer's decompression
/// (see README, "Known divergences").
fn check_records(mut body: &[u8], count: i32) -> Result<(), BatchError> {
    for _ in 0..count {
        let len = read_varint(&mut body)?;
        let len = usize::try_from(len).map_err(|_| BatchError::CorruptRecord("negative length"))?;
        if len > body.len() {
            return Err(BatchError::CorruptRecord("record runs past the batch"));
        }
        let (mut record, rest) = body.split_at(len);
        body = rest;
        take(&mut record, 1)?; // attributes
        read_varlong(&mut record)?; // timestamp delta
        read_varint(&mut record)?; // offset delta
        take_bytes(&mut record, true)?; // key
        take_bytes(&mut record, true)?; // value
        let headers = read_varint(&mut record)?;
        if headers < 0 {
            return Err(BatchError::CorruptRecord("negative header count"));
        }
        for _ in 0..headers {
            take_bytes(&mut record, false)?; // header key
            take_bytes(&mut record, true)?; // header value
        }
        if !record.is_empty() {
            return Err(BatchError::CorruptRecord(
                "record length does not match its fields",
            ));
        }
    }
    if !body.is_empty() {
        return Err(BatchError::CorruptRecord("bytes after the last record"));
    }
    Ok(())
}

fn take<'a>(buf: &mut &'a [u8], n: usize) -> Result<&'a [u8], BatchError> {
    if n > buf.len() {
        return Err(BatchError::CorruptRecord("field runs past the record"));
    }
    let (head, rest) = buf.split_at(n);
    *buf = rest;
    Ok(head)
}

/// A length-prefixed byte string; `-1` is null where `nullable`.
fn take_bytes(buf: &mut &[u8], nullable: bool) -> Result<(), BatchError> {
    match read_varint(buf)? {
        -1 if nullable => Ok(()),
        len if len >= 0 => take(buf, len as usize).map(|_| ()),
        _ => Err(BatchError::CorruptRecord("negative length")),
    }
}

/// A zigzag varint of at most 5 bytes (Kafka's `ByteUtils.readVarint`).
fn read_varint(buf: &mut &[u8]) -> Result<i32, BatchError> {
    let raw = read_unsigned(buf, 5)?;
    let raw = u32::try_from(raw).map_err(|_| BatchError::CorruptRecord("varint too long"))?;
    Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32))
}

/// A zigzag varlong of at most 10 bytes.
fn read_varlong(buf: &mut &[u8]) -> Result<i64, BatchError> {
    let raw = read_unsigned(buf, 10)?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

fn read_unsigned(buf: &mut &[u8], max_bytes: usize) -> Result<u64, BatchError> {
    let mut value = 0u64;
    for i in 0..max_bytes {
        let Some((&byte, rest)) = buf.split_first() else {
            return Err(BatchError::CorruptRecord("varint runs past the record"));
        };
        *buf = rest;
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(BatchError::CorruptRecord("varint too long"))
}

/// Splits a produce request's record bytes into batches, validating each.
///
/// Returns the header and byte range of every batch; the bytes themselves are not copied.
pub fn split_batches(
    records: &[u8],
) -> Result<Vec<(BatchHeader, std::ops::Range<usize>)>, BatchError> {
    let mut batches = Vec::new();
    let mut pos = 0;
    while pos < records.len() {
        let rest = &records[pos..];
        let header = BatchHeader::parse(rest)?;
        let len = header.total_len();
        if len > rest.len() {
            return Err(BatchError::Truncated);
        }
        validate(&rest[..len])?;
        batches.push((header, pos..pos + len));
        pos += len;
    }
    Ok(batches)
}

/// Fields the broker stamps on a batch when it appends it.
#[derive(Debug, Clone, Copy)]
pub struct Stamp {
    pub base_offset: i64,
    pub partition_leader_epoch: i32,
    /// `Some(now)` for topics with `message.timestamp.type=LogAppendTime`.
    pub log_append_time: Option<i64>,
}

/// The batch's header with the broker-owned fields patched. Only this 61-byte prefix is
/// rewritten; the rest of the batch is written from the request buffer untouched. The CRC is
/// recomputed only when the timestamp changes, because base offset and leader epoch lie
/// outside the CRC's range.
pub fn stamped_header(batch: &[u8], stamp: Stamp) -> [u8; HEADER_LEN] {
    let mut header = [0u8; HEADER_LEN];
    header.copy_from_slice(&batch[..HEADER_LEN]);
    (&mut header[BASE_OFFSET..BASE_OFFSET + 8]).put_i64(stamp.base_offset);
    (&mut header[LEADER_EPOCH..LEADER_EPOCH + 4]).put_i32(stamp.partition_leader_epoch);
    if let Some(now) = stamp.log_append_time {
        let attributes = (&header[ATTRIBUTES..]).get_i16() | TIMESTAMP_TYPE_FLAG;
        (&mut header[ATTRIBUTES..ATTRIBUTES + 2]).put_i16(attributes);
        (&mut header[MAX_TIMESTAMP..MAX_TIMESTAMP + 8]).put_i64(now);
        let crc =
            crc32c::crc32c_append(crc32c::crc32c(&header[ATTRIBUTES..]), &batch[HEADER_LEN..]);
        (&mut header[CRC..CRC + 4]).put_u32(crc);
    }
    header
}

/// Iterates over the complete batches in a byte buffer read from a segment, stopping at
/// the first incomplete or invalid one (the end of a read, or a torn tail).
pub struct BatchIter {
    buf: Bytes,
}

impl BatchIter {
    /// Wraps bytes that start at a batch boundary.
    pub fn new(buf: Bytes) -> Self {
        BatchIter { buf }
    }
}

impl Iterator for BatchIter {
    type Item = (BatchHeader, Bytes);

    fn next(&mut self) -> Option<Self::Item> {
        let header = BatchHeader::parse(&self.buf).ok()?;
        let len = header.total_len();
        if len > self.buf.len() {
            return None;
        }
        Some((header, self.buf.split_to(len)))
    }
}

/// Sets a batch's last offset delta and seals its CRC again: a batch rewritten with fewer
/// records keeps the last offset it had (Kafka's cleaner does the same), so its producer's
/// last sequence and the offsets after it are unchanged.
pub fn set_last_offset_delta(batch: &mut [u8], delta: i32) {
    if batch.len() < HEADER_LEN {
        return;
    }
    (&mut batch[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4]).put_i32(delta);
    let crc = compute_crc(batch);
    (&mut batch[CRC..CRC + 4]).put_u32(crc);
}

/// A batch with no records spanning `header`'s offsets, as Kafka's cleaner leaves one when
/// every record of a batch goes but the batch must stay: its producer's last sequence and
/// epoch, or the end offset of its segment, live on in the header. Uncompressed; the
/// timestamp type, transactional and control flags are kept.
pub fn empty_batch(header: &BatchHeader) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN);
    out.put_i64(header.base_offset);
    out.put_i32((HEADER_LEN - LOG_OVERHEAD) as i32);
    out.put_i32(header.partition_leader_epoch);
    out.put_i8(2);
    out.put_u32(0); // CRC, computed below
    out.put_i16(header.attributes & !COMPRESSION_MASK);
    out.put_i32(header.last_offset_delta);
    out.put_i64(header.max_timestamp);
    out.put_i64(header.max_timestamp);
    out.put_i64(header.producer_id);
    out.put_i16(header.producer_epoch);
    out.put_i32(header.base_sequence);
    out.put_i32(0);
    let crc = compute_crc(&out);
    (&mut out[CRC..CRC + 4]).put_u32(crc);
    out.freeze()
}

/// The indexes, within `batch`, of its records without a key, which a compacted topic
/// refuses (it could never clean them). Compressed batches are decompressed to look.
pub fn keyless_records(batch: &Bytes) -> Result<Vec<i32>, BatchError> {
    let header = BatchHeader::parse(batch)?;
    if header.is_control() {
        return Ok(Vec::new());
    }
    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode(&mut buf)
        .map_err(|_| BatchError::CorruptRecord("records do not decode"))?;
    Ok(set
        .records
        .iter()
        .enumerate()
        .filter(|(_, record)| record.key.is_none())
        .map(|(index, _)| index as i32)
        .collect())
}

/// What a transaction marker (a control record) ends a transaction with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlType {
    Abort,
    Commit,
}

/// The marker type of a control batch: its first record's key is a version (i16) and a
/// type (i16: 0 abort, 1 commit). `None` for other batches and unknown types.
pub fn control_type(batch: &[u8]) -> Option<ControlType> {
    let header = BatchHeader::parse(batch).ok()?;
    if !header.is_control() || header.compression() != 0 || header.record_count < 1 {
        return None;
    }
    let mut record = batch.get(HEADER_LEN..)?;
    read_varint(&mut record).ok()?; // length
    take(&mut record, 1).ok()?; // attributes
    read_varlong(&mut record).ok()?; // timestamp delta
    read_varint(&mut record).ok()?; // offset delta
    let key_len = usize::try_from(read_varint(&mut record).ok()?).ok()?;
    let key = record.get(..key_len.min(4))?;
    match key {
        [_, _, 0, 0] => Some(ControlType::Abort),
        [_, _, 0, 1] => Some(ControlType::Commit),
        _ => None,
    }
}

/// A transaction marker for `producer_id` at `producer_epoch`, as the partition leader
/// appends it on the coordinator's WriteTxnMarkers: one control record whose key holds
/// the type and whose value holds the coordinator's epoch.
pub fn control_batch(
    producer_id: i64,
    producer_epoch: i16,
    control: ControlType,
    coordinator_epoch: i32,
    timestamp: i64,
) -> std::io::Result<Bytes> {
    let kind: i16 = match control {
        ControlType::Abort => 0,
        ControlType::Commit => 1,
    };
    let mut key = BytesMut::with_capacity(4);
    key.put_i16(0);
    key.put_i16(kind);
    let mut value = BytesMut::with_capacity(6);
    value.put_i16(0);
    value.put_i32(coordinator_epoch);
    let record = Record {
        transactional: true,
        control: true,
        partition_leader_epoch: 0,
        producer_id,
        producer_epoch,
        timestamp_type: kafka_protocol::records::TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp,
        key: Some(key.freeze()),
        value: Some(value.freeze()),
        headers: Default::default(),
        delete_horizon: false,
    };
    encode_records(&[record], Compression::None).map(BytesMut::freeze)
}

/// Kafka's codec id of `compression` (the low bits of a batch's attributes).
pub fn codec_id(compression: Compression) -> i16 {
    match compression {
        Compression::None => 0,
        Compression::Gzip => 1,
        Compression::Snappy => 2,
        Compression::Lz4 => 3,
        Compression::Zstd => 4,
    }
}

/// The codec of a batch's compression id ([`codec_id`]'s inverse; unknown ids, which
/// validation refuses, read as none).
pub fn codec_of(id: i16) -> Compression {
    match id {
        1 => Compression::Gzip,
        2 => Compression::Snappy,
        3 => Compression::Lz4,
        4 => Compression::Zstd,
        _ => Compression::None,
    }
}

/// Rewrites the batches of a produce request that are not compressed with `target`
/// (a topic's `compression.type` naming a codec, or `uncompressed`): each is decoded and
/// encoded again with `target`, keeping its records, producer, sequences and timestamps,
/// as Kafka's log validator does. Batches already in `target` are kept as received, and
/// when all are, `records` is returned as it is, without a copy.
pub fn recompress(records: Bytes, target: Compression) -> Result<Bytes, BatchError> {
    let batches = split_batches(&records)?;
    let wanted = codec_id(target);
    if batches
        .iter()
        .all(|(header, _)| header.compression() == wanted)
    {
        return Ok(records);
    }
    let mut out = BytesMut::with_capacity(records.len());
    for (header, range) in batches {
        if header.compression() == wanted || header.record_count == 0 {
            out.extend_from_slice(&records[range]);
            continue;
        }
        let mut bytes = records.slice(range);
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut bytes)
            .map_err(|_| BatchError::CorruptRecord("records do not decompress"))?;
        if set.records.len() != header.record_count as usize {
            return Err(BatchError::Invalid("record count differs from the records"));
        }
        RecordBatchEncoder::encode(
            &mut out,
            &set.records,
            &RecordEncodeOptions {
                version: 2,
                compression: target,
            },
        )
        .map_err(|_| BatchError::Invalid("records cannot be recompressed"))?;
    }
    Ok(out.freeze())
}

/// Encodes `records` as one v2 batch with the protocol crate's encoder: the broker's own
/// writes (committed offsets) and test batches are built the way clients build theirs.
pub fn encode_records(records: &[Record], compression: Compression) -> std::io::Result<BytesMut> {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .map_err(std::io::Error::other)?;
    Ok(buf)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::TimestampType;

    /// Builds a real v2 batch with the reference encoder.
    pub(crate) fn make_batch(
        n: usize,
        producer_id: i64,
        epoch: i16,
        base_seq: i32,
        compression: Compression,
    ) -> BytesMut {
        let records: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder batches records whose offset-sequence gap is constant; a batch
                // without a producer gets base sequence -1 from its first record.
                sequence: base_seq + i as i32,
                timestamp: 1_700_000_000_000 + i as i64,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(vec![b'x'; 100])),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        encode_records(&records, compression).expect("encode batch")
    }

    #[test]
    fn markers_say_what_they_end() {
        for control in [ControlType::Abort, ControlType::Commit] {
            let marker = control_batch(42, 3, control, 7, 1_700_000_000_000).unwrap();
            let header = validate(&marker).expect("a valid control batch");
            assert!(header.is_control() && header.is_transactional());
            assert_eq!((header.producer_id, header.producer_epoch), (42, 3));
            assert_eq!(control_type(&marker), Some(control));
        }
        let data = make_batch(2, 42, 3, 0, Compression::None);
        assert_eq!(control_type(&data), None);
    }

    #[test]
    fn cleaned_batches_pass_only_the_stored_check() {
        let batch = make_batch(3, 7, 1, 5, Compression::Lz4).freeze();
        let header = validate(&batch).unwrap();
        let empty = empty_batch(&header);
        let stored = validate_stored(&empty).expect("an empty batch is a valid stored batch");
        assert_eq!(
            (stored.base_offset, stored.last_offset()),
            (header.base_offset, header.last_offset())
        );
        assert_eq!(
            (stored.record_count, stored.producer_id),
            (0, header.producer_id)
        );
        assert!(validate(&empty).is_err(), "a producer may not send it");
    }

    #[test]
    fn parses_and_validates_reference_batches() {
        for compression in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = make_batch(10, 7, 1, 5, compression);
            let header = validate(&batch).expect("valid batch");
            assert_eq!(header.record_count, 10);
            assert_eq!(header.last_offset_delta, 9);
            assert_eq!(header.producer_id, 7);
            assert_eq!(header.base_sequence, 5);
            assert_eq!(header.last_sequence(), 14);
            assert_eq!(header.total_len(), batch.len());
        }
    }

    /// Recomputes the CRC of a batch whose contents a test edited.
    fn reseal(batch: &mut [u8]) {
        let crc = compute_crc(batch);
        (&mut batch[CRC..CRC + 4]).put_u32(crc);
    }

    #[test]
    fn records_with_headers_and_null_values_are_well_formed() {
        let mut record = Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 1,
            key: None,
            value: None,
            headers: Default::default(),
            delete_horizon: false,
        };
        record.headers.insert(
            StrBytes::from_static_str("trace"),
            Some(Bytes::from_static(b"abc")),
        );
        record
            .headers
            .insert(StrBytes::from_static_str("empty"), None);
        let mut second = record.clone();
        second.offset = 1;
        second.sequence = 0;
        let batch = encode_records(&[record, second], Compression::None).unwrap();
        assert_eq!(validate(&batch).unwrap().record_count, 2);
    }

    #[test]
    fn malformed_records_under_a_valid_crc_are_corrupt() {
        let batch = make_batch(3, -1, -1, -1, Compression::None);
        // The first record claims to be longer than the batch.
        let mut long = batch.clone();
        long[HEADER_LEN] = 0x7e;
        reseal(&mut long);
        assert!(matches!(validate(&long), Err(BatchError::CorruptRecord(_))));
        assert_eq!(
            validate(&long).unwrap_err().kafka_error(),
            ResponseError::CorruptMessage
        );
        // One record fewer than the header counts.
        let mut short = batch.clone();
        (&mut short[RECORD_COUNT..RECORD_COUNT + 4]).put_i32(4);
        (&mut short[LAST_OFFSET_DELTA..LAST_OFFSET_DELTA + 4]).put_i32(3);
        reseal(&mut short);
        assert!(matches!(
            validate(&short),
            Err(BatchError::CorruptRecord(_))
        ));
        // A key length running past its record.
        let mut key = batch.clone();
        // length (a 2-byte varint: the records are over 63 bytes), attributes, timestamp
        // delta, offset delta, then the key's length.
        let key_len_at = HEADER_LEN + 2 + 1 + 1 + 1;
        key[key_len_at] = 0x7e;
        reseal(&mut key);
        assert!(matches!(validate(&key), Err(BatchError::CorruptRecord(_))));
    }

    #[test]
    fn detects_corruption_and_truncation() {
        let batch = make_batch(3, -1, -1, -1, Compression::None);
        let mut corrupt = batch.clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        assert_eq!(validate(&corrupt), Err(BatchError::CorruptCrc));
        assert_eq!(
            validate(&batch[..batch.len() - 1]),
            Err(BatchError::Truncated)
        );
        assert_eq!(validate(&batch[..10]), Err(BatchError::Truncated));
        let mut old_magic = batch.clone();
        old_magic[MAGIC] = 1;
        assert_eq!(validate(&old_magic), Err(BatchError::UnsupportedMagic(1)));
    }

    #[test]
    fn stamping_keeps_crc_valid() {
        let original = make_batch(4, -1, -1, -1, Compression::None);
        let restamp = |batch: &[u8], stamp: Stamp| {
            let mut out = BytesMut::from(&stamped_header(batch, stamp)[..]);
            out.extend_from_slice(&batch[HEADER_LEN..]);
            out
        };
        let batch = restamp(
            &original,
            Stamp {
                base_offset: 42,
                partition_leader_epoch: 3,
                log_append_time: None,
            },
        );
        let header = validate(&batch).expect("still valid");
        assert_eq!(header.base_offset, 42);
        assert_eq!(header.partition_leader_epoch, 3);
        assert_eq!(header.last_offset(), 45);
        let batch = restamp(
            &batch,
            Stamp {
                base_offset: 42,
                partition_leader_epoch: 3,
                log_append_time: Some(99),
            },
        );
        let header = validate(&batch).expect("valid after timestamp patch");
        assert!(header.is_log_append_time());
        assert_eq!(header.max_timestamp, 99);
    }

    #[test]
    fn splits_concatenated_batches() {
        let mut all = make_batch(2, -1, -1, -1, Compression::None);
        all.extend_from_slice(&make_batch(3, -1, -1, -1, Compression::Gzip));
        let batches = split_batches(&all).expect("two batches");
        assert_eq!(batches.len(), 2);
        assert_eq!(batches[1].0.record_count, 3);
        let iter: Vec<_> = BatchIter::new(all.freeze()).collect();
        assert_eq!(iter.len(), 2);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let _ = split_batches(&data);
            let _ = BatchIter::new(Bytes::from(data)).count();
        }

        #[test]
        fn any_single_bit_flip_is_detected(bit in 0usize..(8 * 200)) {
            let batch = make_batch(2, -1, -1, -1, Compression::None);
            let bit = bit % (batch.len() * 8);
            let byte = bit / 8;
            // Base offset, length and leader epoch are outside the CRC by design.
            proptest::prop_assume!(byte >= CRC);
            let mut flipped = batch.clone();
            flipped[byte] ^= 1 << (bit % 8);
            proptest::prop_assert!(validate(&flipped).is_err());
        }
    }

    #[test]
    fn batches_are_recompressed_to_the_target_codec_with_their_records_intact() {
        let gzip = make_batch(20, 7, 2, 40, Compression::Gzip).freeze();
        let none = make_batch(5, 7, 2, 60, Compression::None).freeze();
        let mut both = BytesMut::new();
        both.extend_from_slice(&gzip);
        both.extend_from_slice(&none);
        let both = both.freeze();

        // Already in the target codec: the very same bytes come back.
        let kept = recompress(gzip.clone(), Compression::Gzip).unwrap();
        assert_eq!(kept.as_ptr(), gzip.as_ptr());

        let rewritten = recompress(both.clone(), Compression::Zstd).unwrap();
        let batches = split_batches(&rewritten).unwrap();
        assert_eq!(batches.len(), 2);
        for ((header, range), (original, original_range)) in
            batches.iter().zip(split_batches(&both).unwrap())
        {
            assert_eq!(header.compression(), codec_id(Compression::Zstd));
            assert_eq!(header.record_count, original.record_count);
            assert_eq!(header.producer_id, original.producer_id);
            assert_eq!(header.producer_epoch, original.producer_epoch);
            assert_eq!(header.base_sequence, original.base_sequence);
            assert_eq!(header.max_timestamp, original.max_timestamp);
            let mut new = rewritten.slice(range.clone());
            let mut old = both.slice(original_range);
            let new = kafka_protocol::records::RecordBatchDecoder::decode(&mut new).unwrap();
            let old = kafka_protocol::records::RecordBatchDecoder::decode(&mut old).unwrap();
            assert_eq!(new.records, old.records);
        }
        // Garbage inside a compressed batch is refused, not stored.
        let mut corrupt = BytesMut::from(&gzip[..]);
        let end = corrupt.len();
        corrupt[end - 8..].copy_from_slice(&[0xff; 8]);
        reseal(&mut corrupt);
        assert!(recompress(corrupt.freeze(), Compression::Lz4).is_err());
    }
}
