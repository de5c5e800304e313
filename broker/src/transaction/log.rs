//! Transaction state as `__transaction_state` stores it, in Kafka's record schemas
//! (`TransactionLogKey` v0, `TransactionLogValue` v0), so Kafka's own formatter reads it:
//! one record per transactional id, the latest winning (the topic is compacted).

use std::collections::{BTreeMap, HashMap};
use std::io;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, TimestampType};

use super::state::{TxnMetadata, TxnState};
use crate::log::batch;
use crate::schema::{invalid, put_string, Reader};

/// `TransactionLogKey` schema version.
const KEY_VERSION: i16 = 0;
/// `TransactionLogValue` schema version written (v0: not flexible).
const VALUE_VERSION: i16 = 0;

/// The record key of `transactional_id`.
pub fn encode_key(transactional_id: &str) -> io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(4 + transactional_id.len());
    buf.put_i16(KEY_VERSION);
    put_string(&mut buf, transactional_id)?;
    Ok(buf.freeze())
}

/// The transactional id a record key names.
pub fn decode_key(bytes: &[u8]) -> io::Result<String> {
    let mut reader = Reader(bytes);
    match reader.i16()? {
        KEY_VERSION => reader.string(),
        other => Err(invalid(&format!(
            "unknown TransactionLogKey version {other}"
        ))),
    }
}

/// The record value of `metadata`.
pub fn encode_value(metadata: &TxnMetadata) -> io::Result<Bytes> {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(VALUE_VERSION);
    buf.put_i64(metadata.producer_id);
    buf.put_i16(metadata.producer_epoch);
    buf.put_i32(metadata.timeout_ms);
    buf.put_i8(metadata.state.id());
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &metadata.partitions {
        by_topic.entry(topic).or_default().push(*partition);
    }
    buf.put_i32(by_topic.len() as i32);
    for (topic, partitions) in by_topic {
        put_string(&mut buf, topic)?;
        buf.put_i32(partitions.len() as i32);
        for partition in partitions {
            buf.put_i32(partition);
        }
    }
    buf.put_i64(metadata.last_update_ms);
    buf.put_i64(metadata.start_ms);
    Ok(buf.freeze())
}

/// The state of `transactional_id` a record value holds.
pub fn decode_value(transactional_id: &str, bytes: &[u8]) -> io::Result<TxnMetadata> {
    let mut reader = Reader(bytes);
    let version = reader.i16()?;
    if !(0..=1).contains(&version) {
        return Err(invalid(&format!(
            "unknown TransactionLogValue version {version}"
        )));
    }
    if version >= 1 {
        // Flexible versions prefix compact fields; not written here.
        return Err(invalid("flexible TransactionLogValue is not read yet"));
    }
    let producer_id = reader.i64()?;
    let producer_epoch = reader.i16()?;
    let timeout_ms = reader.i32()?;
    let state = TxnState::from_id(reader.i8()?).ok_or_else(|| invalid("unknown state"))?;
    let mut partitions = std::collections::BTreeSet::new();
    let topics = reader.i32()?;
    for _ in 0..topics.max(0) {
        let topic = reader.string()?;
        let count = reader.i32()?;
        for _ in 0..count.max(0) {
            partitions.insert((topic.clone(), reader.i32()?));
        }
    }
    let last_update_ms = reader.i64()?;
    let start_ms = reader.i64()?;
    Ok(TxnMetadata {
        transactional_id: transactional_id.to_string(),
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
    })
}

/// `metadata` as a batch of one record, ready to append to `__transaction_state`.
pub fn encode(metadata: &TxnMetadata) -> io::Result<Bytes> {
    let record = Record {
        transactional: false,
        control: false,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: metadata.last_update_ms,
        key: Some(encode_key(&metadata.transactional_id)?),
        value: Some(encode_value(metadata)?),
        headers: Default::default(),
        delete_horizon: false,
    };
    Ok(batch::encode_records(&[record], Compression::None)?.freeze())
}

/// Replays batches read from a `__transaction_state` partition into the latest state of
/// each transactional id. A record that cannot be read is skipped with a warning (its id
/// starts over at its next InitProducerId).
pub fn replay(data: Bytes, into: &mut HashMap<String, TxnMetadata>) -> io::Result<()> {
    for (_, bytes) in batch::BatchIter::new(data) {
        let mut buf = bytes;
        let set = RecordBatchDecoder::decode(&mut buf).map_err(io::Error::other)?;
        for record in set.records {
            let Some(id) = record.key.as_deref().and_then(|k| decode_key(k).ok()) else {
                continue;
            };
            match record.value.as_deref().map(|v| decode_value(&id, v)) {
                None => {
                    into.remove(&id);
                }
                Some(Ok(metadata)) => {
                    into.insert(id, metadata);
                }
                Some(Err(error)) => {
                    tracing::warn!(transactional_id = %id, %error, "unreadable transaction state");
                    into.remove(&id);
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_state_round_trips_in_kafkas_schema() {
        let metadata = TxnMetadata {
            transactional_id: "payments".into(),
            producer_id: 4000,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::PrepareCommit,
            partitions: [
                ("orders".to_string(), 1),
                ("orders".to_string(), 0),
                ("audit".to_string(), 2),
            ]
            .into_iter()
            .collect(),
            start_ms: 1_700_000_000_000,
            last_update_ms: 1_700_000_000_500,
        };
        let key = encode_key("payments").unwrap();
        assert_eq!(&key[..], b"\x00\x00\x00\x08payments");
        assert_eq!(decode_key(&key).unwrap(), "payments");
        let value = encode_value(&metadata).unwrap();
        // Version, producer id, epoch, timeout and state, as Kafka lays them out.
        assert_eq!(
            &value[..17],
            b"\x00\x00\x00\x00\x00\x00\x00\x00\x0f\xa0\x00\x03\x00\x00\xea\x60\x02"
        );
        assert_eq!(decode_value("payments", &value).unwrap(), metadata);
        for cut in 0..value.len() {
            assert!(
                decode_value("payments", &value[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut replayed = HashMap::new();
        let mut later = metadata.clone();
        later.state = TxnState::CompleteCommit;
        let mut log = BytesMut::new();
        log.extend_from_slice(&encode(&metadata).unwrap());
        log.extend_from_slice(&encode(&later).unwrap());
        replay(log.freeze(), &mut replayed).unwrap();
        assert_eq!(replayed["payments"], later, "the latest record wins");
    }
}
