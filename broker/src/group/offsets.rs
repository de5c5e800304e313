//! Durable committed offsets, kept in an internal append-only log like `__consumer_offsets`.
//!
//! Each commit is a record whose key names `(group, topic, partition)` and whose value holds
//! the offset (a null value deletes it). The in-memory table is rebuilt by replaying the log at
//! start-up; when the log holds mostly superseded commits it is rewritten (compacted) then.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use serde::{Deserialize, Serialize};

use crate::log::{batch, Log, LogConfig, RecoveryMode};

/// Identifies one committed offset.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OffsetKey {
    pub group: String,
    pub topic: String,
    pub partition: i32,
}

/// A committed position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp: i64,
}

/// Committed offsets of every group, durable across restarts.
#[derive(Debug)]
pub struct OffsetStore {
    log: Log,
    offsets: HashMap<OffsetKey, OffsetValue>,
}

fn encode(entries: &[(OffsetKey, Option<OffsetValue>)]) -> io::Result<BytesMut> {
    let now = crate::util::now_ms();
    let records: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (key, value))| {
            Ok(Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // Constant offset-sequence gap keeps all records in one batch whose
                // base sequence is -1 (no producer id).
                sequence: i as i32 - 1,
                timestamp: now,
                key: Some(Bytes::from(serde_json::to_vec(key)?)),
                value: value
                    .as_ref()
                    .map(|v| serde_json::to_vec(v).map(Bytes::from))
                    .transpose()?,
                headers: Default::default(),
                delete_horizon: false,
            })
        })
        .collect::<Result<_, serde_json::Error>>()
        .map_err(io::Error::other)?;
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(io::Error::other)?;
    Ok(buf)
}

impl OffsetStore {
    /// Opens the store in `dir`, replaying (and if worthwhile compacting) its log.
    pub fn open(dir: &Path, mode: RecoveryMode) -> io::Result<Self> {
        let log_dir = dir.join("__consumer_offsets-0");
        let config = LogConfig {
            segment_bytes: 64 << 20,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let log = Log::open(&log_dir, config.clone(), mode, &mut |_| {})?;
        let mut offsets = HashMap::new();
        let mut records = 0usize;
        let mut position = log.log_start_offset();
        let end = log.log_end_offset();
        while position < end {
            let data = log
                .read(position, 1 << 20, end)
                .map_err(|e| io::Error::other(e.to_string()))?;
            if data.is_empty() {
                break;
            }
            for (header, bytes) in batch::BatchIter::new(data) {
                position = header.next_offset();
                let mut buf = bytes;
                let set = RecordBatchDecoder::decode(&mut buf).map_err(io::Error::other)?;
                for record in set.records {
                    records += 1;
                    let Some(key) = record
                        .key
                        .and_then(|k| serde_json::from_slice::<OffsetKey>(&k).ok())
                    else {
                        continue;
                    };
                    match record
                        .value
                        .and_then(|v| serde_json::from_slice::<OffsetValue>(&v).ok())
                    {
                        Some(value) => offsets.insert(key, value),
                        None => offsets.remove(&key),
                    };
                }
            }
        }
        let mut store = OffsetStore { log, offsets };
        if records > 1000 && records > 4 * store.offsets.len() {
            store.compact(&log_dir, config)?;
        }
        Ok(store)
    }

    /// Rewrites the log with only live entries, via a new directory swapped in atomically.
    fn compact(&mut self, log_dir: &Path, config: LogConfig) -> io::Result<()> {
        let tmp = log_dir.with_extension("compacting");
        let _ = std::fs::remove_dir_all(&tmp);
        let mut fresh = Log::open(&tmp, config.clone(), RecoveryMode::Trust, &mut |_| {})?;
        let live: Vec<(OffsetKey, Option<OffsetValue>)> = self
            .offsets
            .iter()
            .map(|(k, v)| (k.clone(), Some(v.clone())))
            .collect();
        for chunk in live.chunks(500) {
            let bytes = encode(chunk)?;
            let header = batch::validate(&bytes).map_err(io::Error::other)?;
            fresh.append(bytes.freeze(), &header, 0, None)?;
        }
        fresh.flush()?;
        drop(fresh);
        let old = log_dir.with_extension("old");
        let _ = std::fs::remove_dir_all(&old);
        std::fs::rename(log_dir, &old)?;
        std::fs::rename(&tmp, log_dir)?;
        std::fs::remove_dir_all(&old)?;
        self.log = Log::open(log_dir, config, RecoveryMode::Trust, &mut |_| {})?;
        Ok(())
    }

    /// Durably records commits (and deletions, as `None`) in one batch.
    pub fn write(&mut self, entries: Vec<(OffsetKey, Option<OffsetValue>)>) -> io::Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let bytes = encode(&entries)?;
        let header = batch::validate(&bytes).map_err(io::Error::other)?;
        self.log.append(bytes.freeze(), &header, 0, None)?;
        for (key, value) in entries {
            match value {
                Some(v) => self.offsets.insert(key, v),
                None => self.offsets.remove(&key),
            };
        }
        Ok(())
    }

    /// The committed offset for one partition.
    pub fn get(&self, key: &OffsetKey) -> Option<&OffsetValue> {
        self.offsets.get(key)
    }

    /// Every committed offset of `group`, ordered by topic and partition.
    pub fn group_offsets(&self, group: &str) -> BTreeMap<(String, i32), OffsetValue> {
        self.offsets
            .iter()
            .filter(|(k, _)| k.group == group)
            .map(|(k, v)| ((k.topic.clone(), k.partition), v.clone()))
            .collect()
    }

    /// Groups that have committed offsets.
    pub fn groups(&self) -> std::collections::BTreeSet<String> {
        self.offsets.keys().map(|k| k.group.clone()).collect()
    }

    /// Forces the log to disk (shutdown).
    pub fn flush(&mut self) -> io::Result<()> {
        self.log.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(g: &str, p: i32) -> OffsetKey {
        OffsetKey {
            group: g.into(),
            topic: "t".into(),
            partition: p,
        }
    }

    fn value(offset: i64) -> OffsetValue {
        OffsetValue {
            offset,
            leader_epoch: -1,
            metadata: Some(String::new()),
            commit_timestamp: 0,
        }
    }

    #[test]
    fn commits_survive_reopen_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = OffsetStore::open(dir.path(), RecoveryMode::Verify).unwrap();
        for i in 0..1500 {
            store.write(vec![(key("g", 0), Some(value(i)))]).unwrap();
        }
        store
            .write(vec![
                (key("g", 1), Some(value(7))),
                (key("h", 0), Some(value(1))),
            ])
            .unwrap();
        store.write(vec![(key("h", 0), None)]).unwrap();
        drop(store);
        let store = OffsetStore::open(dir.path(), RecoveryMode::Verify).unwrap();
        assert_eq!(store.get(&key("g", 0)).unwrap().offset, 1499);
        assert_eq!(store.get(&key("g", 1)).unwrap().offset, 7);
        assert!(store.get(&key("h", 0)).is_none());
        assert_eq!(store.log.log_end_offset(), 2, "compacted to live entries");
        drop(store);
        let store = OffsetStore::open(dir.path(), RecoveryMode::Trust).unwrap();
        assert_eq!(store.group_offsets("g").len(), 2);
    }
}
