//! Log recovery at start-up: a log of valid batches is written through the log's own API,
//! then its files (segments and indexes) get the fuzzer's damage: bytes changed, files cut
//! short. Re-opened after a crash (`Verify`), the log must keep exactly a run of valid
//! batches and accept new appends; re-opened after a clean shutdown (`Trust`, which checks
//! indexes but not CRCs), damaged indexes must never send a read to the wrong batch.
#![no_main]

use std::path::{Path, PathBuf};

use bytes::Bytes;
use kafka_protocol::records::{Compression, Record, TimestampType};
use libfuzzer_sys::fuzz_target;
use tributary_broker::log::batch::{self, BatchIter};
use tributary_broker::log::{Log, LogConfig, RecoveryMode};

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

fn batch_of(first: i64, records: usize) -> Bytes {
    let records: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1 + i as i32,
            timestamp: 1_700_000_000_000 + first + i as i64,
            key: Some(Bytes::from(format!("key-{}", first + i as i64))),
            value: Some(Bytes::from(vec![b'v'; 40])),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    batch::encode_records(&records, Compression::None)
        .expect("encode")
        .freeze()
}

fn append(log: &mut Log, records: usize) {
    let bytes = batch_of(log.log_end_offset(), records);
    let header = batch::validate(&bytes).expect("valid batch");
    log.append(bytes, &header, 3, None).expect("append");
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
}

/// Every batch from the log start to its end, checking offsets only increase.
fn read_all(log: &Log, verify_crc: bool) -> i64 {
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let data = log.read(offset, 1 << 20, end).expect("read within range");
        if data.is_empty() {
            break;
        }
        let mut progressed = false;
        for (header, bytes) in BatchIter::new(data) {
            if header.next_offset() <= offset {
                continue;
            }
            assert!(
                header.last_offset() >= offset,
                "a read returned an earlier batch"
            );
            if verify_crc {
                batch::validate_stored(&bytes).expect("recovery keeps only valid batches");
            }
            offset = header.next_offset();
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    offset
}

fuzz_target!(|input: &[u8]| {
    let [flags, batches, damage @ ..] = input else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    {
        let mut log =
            Log::open(dir.path(), config(), RecoveryMode::Verify, &mut |_, _| {}).expect("open");
        for i in 0..(*batches % 24) as usize + 1 {
            append(&mut log, 1 + i % 4);
        }
    }
    let targets = files(dir.path());
    for change in damage.chunks_exact(4) {
        let path = &targets[change[0] as usize % targets.len()];
        let mut bytes = std::fs::read(path).expect("read file");
        if bytes.is_empty() {
            continue;
        }
        let at = u16::from_le_bytes([change[1], change[2]]) as usize % bytes.len();
        if change[3] == 0 {
            bytes.truncate(at);
        } else {
            bytes[at] ^= change[3];
        }
        std::fs::write(path, bytes).expect("write file");
    }

    let mode = if flags & 1 == 0 {
        RecoveryMode::Verify
    } else {
        RecoveryMode::Trust
    };
    let mut log =
        Log::open(dir.path(), config(), mode, &mut |_, _| {}).expect("recovery never fails");
    if mode == RecoveryMode::Verify {
        let end = read_all(&log, true);
        assert_eq!(
            end,
            log.log_end_offset(),
            "the log ends where its last valid batch ends"
        );
        append(&mut log, 2);
        assert_eq!(read_all(&log, true), log.log_end_offset());
    } else {
        read_all(&log, false);
    }
});
