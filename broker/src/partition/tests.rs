//! Tests of a replica's rules, one scenario each.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use tributary_metadata::image::PartitionMeta;

use super::*;
use crate::log::batch::tests::make_batch;
use kafka_protocol::records::Compression;
use std::collections::BTreeMap;
use tributary_metadata::topic_config::ConfigLayers;

/// `(log start, high watermark, log end)`.
fn bounds(p: &Partition) -> (i64, i64, i64) {
    let o = p.offsets();
    (o.log_start, o.high_watermark, o.log_end)
}

/// The topic policy with these topic-level overrides.
fn policy(overrides: &[(&str, &str)]) -> TopicPolicy {
    let topic: BTreeMap<String, String> = overrides
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    TopicPolicy::resolve(&ConfigLayers {
        topic: Some(&topic),
        ..Default::default()
    })
}

fn open(dir: &Path, overrides: &[(&str, &str)]) -> Partition {
    let p = Partition::open(dir, "t", 0, 1, policy(overrides), RecoveryMode::Verify).unwrap();
    let meta = meta(&[1], &[1], 1, 3, 0);
    assert_eq!(p.apply_metadata(&meta, 0), RoleChange::BecameLeader);
    p
}

#[test]
fn appends_assign_offsets_and_stamp_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), &[]);
    let first = p.append(batch(5), -1).unwrap();
    let second = p
        .append(make_batch(2, -1, -1, -1, Compression::Lz4).freeze(), -1)
        .unwrap();
    assert_eq!((first.base_offset, second.base_offset), (0, 5));
    assert_eq!(first.log_append_time, -1);
    let data = p.read(0, 1 << 20, false).unwrap();
    assert_eq!(data.high_watermark, 7);
    let headers: Vec<_> = batch::BatchIter::new(data.records)
        .map(|(h, _)| h)
        .collect();
    assert_eq!(headers.len(), 2);
    assert!(headers.iter().all(|h| h.partition_leader_epoch == 3));
    assert_eq!(p.end_offset_for_epoch(3), (3, 7));
    assert!(matches!(
        p.read(8, 100, false),
        Err(PartitionError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn oversized_batches_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), &[("max.message.bytes", "200")]);
    let err = p.append(batch(5), -1).unwrap_err();
    assert_eq!(err.kafka_error(), ResponseError::MessageTooLarge);
    assert_eq!(bounds(&p), (0, 0, 0), "nothing appended");
}

#[tokio::test]
async fn a_due_flush_runs_off_the_lock_before_the_write_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), &[("flush.messages", "5")]);
    let mut small = p.append(batch(3), -1).unwrap();
    assert!(
        small.flush.take().is_none(),
        "3 of 5 messages: nothing to sync"
    );
    let mut due = p.append(batch(3), -1).unwrap();
    let flush = due.flush.take().expect("flush.messages reached");
    // The partition serves other requests while the fsync is pending.
    assert_eq!(bounds(&p).2, 6);
    flush.start().wait().await.unwrap();
    let mut next = p.append(batch(1), -1).unwrap();
    assert!(next.flush.take().is_none(), "the counter restarted");
}

#[test]
fn log_append_time_is_stamped() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), &[("message.timestamp.type", "LogAppendTime")]);
    let before = crate::util::now_ms();
    let done = p
        .append(make_batch(3, -1, -1, -1, Compression::Gzip).freeze(), -1)
        .unwrap();
    assert!(done.log_append_time >= before);
    let data = p.read(0, 1 << 20, false).unwrap();
    let (header, bytes) = batch::BatchIter::new(data.records).next().unwrap();
    assert!(header.is_log_append_time());
    assert_eq!(header.max_timestamp, done.log_append_time);
    batch::validate(&bytes).expect("CRC recomputed");
    assert_eq!(
        p.offset_for_timestamp(MAX_TIMESTAMP, false).unwrap(),
        (0, done.log_append_time)
    );
}

#[test]
fn idempotent_retries_are_deduplicated_across_restart() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), &[]);
    let batch = make_batch(4, 42, 0, 0, Compression::None).freeze();
    assert_eq!(p.append(batch.clone(), -1).unwrap().base_offset, 0);
    p.append(make_batch(4, 42, 0, 4, Compression::None).freeze(), -1)
        .unwrap();
    assert_eq!(
        p.append(batch.clone(), -1).unwrap().base_offset,
        0,
        "retry answered with the original offset"
    );
    assert_eq!(p.offsets().log_end, 8);
    let gap = p
        .append(make_batch(1, 42, 0, 20, Compression::None).freeze(), -1)
        .unwrap_err();
    assert_eq!(gap.kafka_error(), ResponseError::OutOfOrderSequenceNumber);
    drop(p);
    let p = open(dir.path(), &[]);
    assert_eq!(p.producer_count(), 1, "producer state rebuilt from the log");
    assert_eq!(p.append(batch, -1).unwrap().base_offset, 0);
    assert_eq!(p.offsets().log_end, 8);
}

#[test]
fn malformed_records_are_refused_without_appending() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), &[]);
    let mut corrupt = make_batch(2, -1, -1, -1, Compression::None);
    let n = corrupt.len();
    corrupt[n - 1] ^= 1;
    assert_eq!(
        p.append(corrupt.freeze(), -1).unwrap_err().kafka_error(),
        ResponseError::CorruptMessage
    );
    assert_eq!(
        p.append(Bytes::from_static(b"nonsense"), -1)
            .unwrap_err()
            .kafka_error(),
        ResponseError::CorruptMessage
    );
    assert_eq!(bounds(&p), (0, 0, 0));
}

#[test]
fn delete_records_moves_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), &[]);
    p.append(batch(10), -1).unwrap();
    assert_eq!(p.delete_records(4).unwrap(), 4);
    assert_eq!(
        p.offset_for_timestamp(EARLIEST_TIMESTAMP, false).unwrap().0,
        4
    );
    assert!(p.delete_records(11).is_err());
    assert_eq!(p.delete_records(-1).unwrap(), 10);
}

fn meta(
    replicas: &[i32],
    isr: &[i32],
    leader: i32,
    leader_epoch: i32,
    partition_epoch: i32,
) -> PartitionMeta {
    PartitionMeta {
        replicas: replicas.to_vec(),
        isr: isr.to_vec(),
        leader,
        leader_epoch,
        partition_epoch,
    }
}

/// An uncompressed batch of `records` records, as a producer sends it.
fn batch(records: usize) -> Bytes {
    make_batch(records, -1, -1, -1, Compression::None).freeze()
}

fn replica(dir: &Path, broker: i32, meta: &PartitionMeta) -> Partition {
    let policy = TopicPolicy::resolve(&ConfigLayers::default());
    let p = Partition::open(dir, "t", 0, broker, policy, RecoveryMode::Verify).unwrap();
    p.apply_metadata(meta, 0);
    p
}

#[tokio::test]
async fn replication_advances_the_high_watermark_over_the_isr() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let meta = meta(&[1, 2], &[1, 2], 1, 4, 0);
    let leader = replica(dirs.0.path(), 1, &meta);
    let follower = replica(dirs.1.path(), 2, &meta);
    assert_eq!(follower.following(), Some(1));
    let done = leader.append(batch(3), -1).unwrap();
    assert_eq!(
        leader.offsets().high_watermark,
        0,
        "not committed before the follower has it"
    );
    assert!(matches!(
        leader
            .wait_for_commit(&done, Duration::from_millis(50), &|| false)
            .await,
        Err(PartitionError::Timeout)
    ));
    // Consumers see nothing yet; the follower fetches everything up to the log end.
    assert!(leader.read(0, 1 << 20, false).unwrap().records.is_empty());
    let (data, moved) = leader.read_for_follower(2, 1, 0, 1 << 20, 10).unwrap();
    assert!(!moved);
    follower
        .append_replicated(4, data.records, data.high_watermark, data.log_start_offset)
        .unwrap();
    assert_eq!(bounds(&follower), (0, 0, 3));
    // Its next fetch proves it has offsets 0..3: the HW moves and acks=all completes.
    let (_, moved) = leader.read_for_follower(2, 1, 3, 1 << 20, 20).unwrap();
    assert!(moved);
    leader
        .wait_for_commit(&done, Duration::from_millis(50), &|| false)
        .await
        .unwrap();
    let (data, _) = leader.read_for_follower(2, 1, 3, 1 << 20, 30).unwrap();
    follower
        .append_replicated(4, data.records, data.high_watermark, data.log_start_offset)
        .unwrap();
    assert_eq!(
        follower.offsets().high_watermark,
        3,
        "follower adopts the leader's HW"
    );
    // A follower never accepts client writes; a non-replica's fetch is refused.
    assert_eq!(
        follower.append(batch(1), 1).unwrap_err().kafka_error(),
        ResponseError::NotLeaderOrFollower
    );
    assert!(leader.read_for_follower(9, 1, 0, 100, 40).is_err());
}

#[test]
fn min_insync_replicas_is_checked_before_appending() {
    let dir = tempfile::tempdir().unwrap();
    let meta = meta(&[1, 2, 3], &[1], 1, 0, 0);
    let policy = policy(&[("min.insync.replicas", "2")]);
    let p = Partition::open(dir.path(), "t", 0, 1, policy, RecoveryMode::Verify).unwrap();
    p.apply_metadata(&meta, 0);
    let err = p.append(batch(1), -1).unwrap_err();
    assert_eq!(err.kafka_error(), ResponseError::NotEnoughReplicas);
    assert_eq!(p.offsets().log_end, 0, "nothing appended");
    assert!(p.append(batch(1), 1).is_ok(), "acks=1 is not held back");
}

#[test]
fn a_new_follower_truncates_its_divergent_tail() {
    let dir = tempfile::tempdir().unwrap();
    let lead = meta(&[1, 2], &[1], 1, 1, 0);
    let p = replica(dir.path(), 1, &lead);
    p.append(batch(5), 1).unwrap();
    p.append(batch(5), 1).unwrap();
    // Broker 2 took over at epoch 2; the leader says epoch 1 ended at offset 5.
    let follow = meta(&[1, 2], &[2], 2, 2, 1);
    assert_eq!(
        p.apply_metadata(&follow, 0),
        RoleChange::BecameFollower { leader: 2 }
    );
    let position = p.follower_position();
    assert_eq!(
        (
            position.fetch_offset,
            position.leader_epoch,
            position.needs_truncation,
            position.latest_epoch
        ),
        (10, 2, true, 1)
    );
    // The leader's answer for our epoch 1: it ends at offset 5 there.
    p.truncate_to_leader_epoch(2, 1, 1, 5).unwrap();
    let position = p.follower_position();
    assert_eq!(
        (position.fetch_offset, position.needs_truncation),
        (5, false)
    );
    // A follower behind the leader's log start restarts its log there.
    p.reset_to(2, 100).unwrap();
    // Answers to requests made in an older epoch are ignored.
    p.truncate_diverged(1, 0).unwrap();
    assert_eq!(bounds(&p), (100, 100, 100));
}

#[tokio::test]
async fn isr_shrinking_below_min_after_the_append_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(&[("min.insync.replicas", "2")]);
    let p = Partition::open(dir.path(), "t", 0, 1, policy, RecoveryMode::Verify).unwrap();
    let mut meta = meta(&[1, 2], &[1, 2], 1, 0, 0);
    p.apply_metadata(&meta, 0);
    let done = p.append(batch(2), -1).unwrap();
    // The controller drops the follower from the ISR: the leader alone commits the data,
    // which is fewer replicas than min.insync.replicas.
    meta.isr = vec![1];
    meta.partition_epoch = 1;
    p.apply_metadata(&meta, 0);
    let err = p
        .wait_for_commit(&done, Duration::from_secs(1), &|| false)
        .await
        .unwrap_err();
    assert_eq!(
        err.kafka_error(),
        ResponseError::NotEnoughReplicasAfterAppend
    );
}

#[test]
fn truncation_uses_the_epoch_both_logs_share() {
    // Our log: epoch 2 at 0..5, epoch 3 at 5..7 and 7..10. The leader never saw epoch 3:
    // it answers for its floor epoch 2, which ends at 8 in its log. Our epoch 2 ends at
    // 5, so offsets from 5 on are ours alone and must go (KIP-279).
    let dir = tempfile::tempdir().unwrap();
    let p = replica(dir.path(), 1, &meta(&[1, 2], &[1], 1, 2, 0));
    p.append(batch(5), 1).unwrap();
    p.apply_metadata(&meta(&[1, 2], &[1], 1, 3, 1), 0);
    p.append(batch(2), 1).unwrap();
    p.append(batch(3), 1).unwrap();
    p.apply_metadata(&meta(&[1, 2], &[2], 2, 4, 2), 0);
    p.truncate_to_leader_epoch(4, 3, 2, 8).unwrap();
    assert_eq!(p.offsets().log_end, 5);
}

#[tokio::test]
async fn a_leader_whose_controller_session_lapsed_stops_holding_acks_all_writes() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let meta = meta(&[1, 2], &[1, 2], 1, 4, 0);
    let leader = replica(dirs.0.path(), 1, &meta);
    let done = leader.append(batch(3), -1).unwrap();
    // The follower does not fetch. With the session alive, the write waits out its timeout.
    let started = tokio::time::Instant::now();
    assert!(matches!(
        leader
            .wait_for_commit(&done, Duration::from_secs(1), &|| false)
            .await,
        Err(PartitionError::Timeout)
    ));
    assert!(started.elapsed() >= Duration::from_secs(1));
    // With the session lapsed, it is sent to find the new leader after the grace period.
    let started = tokio::time::Instant::now();
    assert!(matches!(
        leader
            .wait_for_commit(&done, Duration::from_secs(5), &|| true)
            .await,
        Err(PartitionError::NotLeader)
    ));
    let waited = started.elapsed();
    assert!(
        waited >= super::append::LAPSED_SESSION_GRACE && waited < Duration::from_secs(1),
        "{waited:?}"
    );
}

#[test]
fn a_leader_knows_when_every_follower_in_its_isr_went_silent() {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let shared = meta(&[1, 2], &[1, 2], 1, 4, 0);
    let leader = replica(dirs.0.path(), 1, &shared);
    let follower = replica(dirs.1.path(), 2, &shared);
    assert_eq!(follower.followers_cut_off(0), None, "not a leader");
    // Followers count as fetching when the leader takes over.
    assert_eq!(leader.followers_cut_off(500), Some(false));
    leader.read_for_follower(2, 1, 0, 1 << 20, 800).unwrap();
    assert_eq!(leader.followers_cut_off(1700), Some(false));
    assert_eq!(
        leader.followers_cut_off(1900),
        Some(true),
        "silent for over 1 s"
    );
    let alone = meta(&[1, 2], &[1], 1, 4, 1);
    leader.apply_metadata(&alone, 2000);
    assert_eq!(leader.followers_cut_off(5000), None, "alone in its ISR");
}

/// `n` records of a transactional producer, from sequence `seq`.
fn txn_batch(producer_id: i64, epoch: i16, seq: i32, n: usize) -> Bytes {
    let records: Vec<kafka_protocol::records::Record> = (0..n)
        .map(|i| kafka_protocol::records::Record {
            transactional: true,
            control: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: kafka_protocol::records::TimestampType::Creation,
            offset: i as i64,
            sequence: seq + i as i32,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from_static(b"txn")),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    batch::encode_records(&records, Compression::None)
        .unwrap()
        .freeze()
}

#[test]
fn open_transactions_hold_back_read_committed_fetches_until_their_markers() {
    use crate::log::batch::ControlType;
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), &[]);
    p.append(batch(2), -1).unwrap(); // 0..2, not transactional
    p.append(txn_batch(7, 0, 0, 3), -1).unwrap(); // 2..5, producer 7
    p.append(txn_batch(8, 0, 0, 1), -1).unwrap(); // 5, producer 8
    let committed = p.read(0, 1 << 20, true).unwrap();
    assert_eq!(
        (committed.high_watermark, committed.last_stable_offset),
        (6, 2)
    );
    assert_eq!(
        batch::BatchIter::new(committed.records).count(),
        1,
        "only the first batch"
    );
    assert_eq!(p.offset_for_timestamp(LATEST_TIMESTAMP, true).unwrap().0, 2);
    assert_eq!(
        p.offset_for_timestamp(LATEST_TIMESTAMP, false).unwrap().0,
        6
    );

    // DescribeProducers: both producers, their transactions open since their first batch.
    let producers: Vec<(i64, Option<i64>)> = p
        .active_producers()
        .unwrap()
        .into_iter()
        .map(|(producer, since)| (producer.producer_id, since))
        .collect();
    assert_eq!(producers, [(7, Some(2)), (8, Some(5))]);

    // Producer 7 aborts, producer 8 commits: everything is stable, 7's records are named.
    p.write_marker(7, 0, ControlType::Abort, 0).unwrap(); // 6
    assert_eq!(p.offsets().last_stable, 5, "producer 8 is still open");
    p.write_marker(8, 0, ControlType::Commit, 0).unwrap(); // 7
    let fetched = p.read(0, 1 << 20, true).unwrap();
    assert_eq!(fetched.last_stable_offset, 8);
    assert!(p
        .active_producers()
        .unwrap()
        .iter()
        .all(|(_, since)| since.is_none()));
    assert_eq!(fetched.aborted, [(7, 2)]);
    assert!(
        p.read(7, 1 << 20, true).unwrap().aborted.is_empty(),
        "past its marker"
    );
    // A marker fences the producer's older epochs.
    assert!(matches!(
        p.write_marker(7, -1, ControlType::Abort, 0),
        Err(PartitionError::StaleMarker { .. })
    ));
    // Producers cannot write markers themselves.
    let forged = batch::control_batch(9, 0, ControlType::Commit, 0, 0).unwrap();
    assert!(matches!(
        p.append(forged, -1),
        Err(PartitionError::ControlBatchProduced)
    ));

    // A restart rebuilds the transactions from the log, markers included.
    p.append(txn_batch(9, 0, 0, 1), -1).unwrap(); // 8, left open
    drop(p);
    let p = open(dir.path(), &[]);
    assert_eq!(p.offsets().last_stable, 8);
    assert_eq!(p.read(0, 1 << 20, true).unwrap().aborted, [(7, 2)]);

    // Once the log starts past an abort's marker, the abort is forgotten.
    assert_eq!(p.delete_records(6).unwrap(), 6);
    assert_eq!(
        p.lock().txns.aborted().len(),
        1,
        "its marker is still in the log"
    );
    assert_eq!(p.delete_records(7).unwrap(), 7);
    assert!(p.lock().txns.aborted().is_empty());
}

/// One keyed record, transactional when `producer` is given.
fn keyed(key: &str, value: &str, producer: Option<(i64, i32)>) -> Bytes {
    let (producer_id, sequence) = producer.unwrap_or((-1, -1));
    let record = kafka_protocol::records::Record {
        transactional: producer.is_some(),
        control: false,
        partition_leader_epoch: 0,
        producer_id,
        producer_epoch: if producer.is_some() { 0 } else { -1 },
        timestamp_type: kafka_protocol::records::TimestampType::Creation,
        offset: 0,
        sequence,
        timestamp: 1_700_000_000_000,
        key: Some(Bytes::from(key.to_string())),
        value: Some(Bytes::from(value.to_string())),
        headers: Default::default(),
        delete_horizon: false,
    };
    batch::encode_records(&[record], Compression::None)
        .unwrap()
        .freeze()
}

#[test]
fn an_aborted_transaction_never_supersedes_a_committed_value() {
    use crate::log::batch::ControlType;
    let dir = tempfile::tempdir().unwrap();
    let p = open(
        dir.path(),
        &[
            ("cleanup.policy", "compact"),
            ("segment.bytes", "300"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    );
    p.append(keyed("account", "committed", None), -1).unwrap();
    p.append(keyed("account", "aborted", Some((7, 0))), -1)
        .unwrap();
    p.write_marker(7, 0, ControlType::Abort, 0).unwrap();
    for i in 0..20 {
        p.append(keyed(&format!("other-{i}"), "v", None), -1)
            .unwrap();
    }
    let report = p.clean(1 << 20, crate::util::now_ms()).unwrap();
    assert!(
        report.is_some_and(|r| r.segments_rewritten > 0),
        "the log was cleaned"
    );
    let mut values = Vec::new();
    for (_, bytes) in batch::BatchIter::new(p.read(0, 1 << 20, true).unwrap().records) {
        let mut buf = bytes;
        for record in kafka_protocol::records::RecordBatchDecoder::decode(&mut buf)
            .unwrap()
            .records
        {
            if record.key.as_deref() == Some(b"account".as_slice()) && !record.control {
                values.push(record.value.unwrap());
            }
        }
    }
    assert_eq!(values, [Bytes::from_static(b"committed")]);
}
