//! The partition log: an ordered set of segments with retention, recovery and reads.

pub mod batch;
pub mod cleaner;
pub mod compaction;
pub mod epochs;
pub mod flush;
pub mod index;
pub mod segment;

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use thiserror::Error;
use tracing::{debug, info, warn};

use batch::{BatchHeader, Stamp};
use epochs::LeaderEpochCache;
use flush::{FlushJob, OwedSyncs};
pub use segment::RecoveryMode;
use segment::Segment;

const LOG_START_OFFSET_FILE: &str = "log-start-offset";

/// Per-partition storage settings, resolved from topic configs and broker defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub segment_bytes: u64,
    pub segment_ms: u64,
    /// -1 keeps data forever.
    pub retention_ms: i64,
    /// -1 means no size limit.
    pub retention_bytes: i64,
    pub index_interval_bytes: u64,
    /// fsync after this many messages (`i64::MAX` leaves it to the page cache).
    pub flush_messages: u64,
    /// fsync when the oldest unflushed write is this old.
    pub flush_ms: u64,
    /// `cleanup.policy` has `delete`: retention removes old segments.
    pub delete: bool,
    /// `cleanup.policy` has `compact`: the cleaner keeps the latest record of each key.
    pub compact: bool,
    /// The dirty share of a compacted log at which the cleaner cleans it.
    pub min_cleanable_dirty_ratio: f64,
    /// Records younger than this stay uncleaned.
    pub min_compaction_lag_ms: i64,
    /// How long tombstones stay after their segment was last written.
    pub delete_retention_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            flush_messages: i64::MAX as u64,
            flush_ms: i64::MAX as u64,
            delete: true,
            compact: false,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            delete_retention_ms: 24 * 3600 * 1000,
        }
    }
}

/// Errors the log reports to request handlers.
#[derive(Debug, Error)]
pub enum LogError {
    /// The requested offset is outside `[log start, log end]`.
    #[error("offset {offset} is out of range [{start}, {end}]")]
    OffsetOutOfRange { offset: i64, start: i64, end: i64 },
    /// A filesystem error; the partition is likely unusable (KAFKA_STORAGE_ERROR).
    #[error("storage error: {0}")]
    Io(#[from] io::Error),
}

/// Checkpoints a log's start offset in `dir` (write, then rename). Whoever moves the start
/// calls it once the partition is unlocked; [`Log::open`] reads it back. A crash before
/// the checkpoint can bring records between the first segment and the new start back,
/// as a lagging log-start checkpoint does in Kafka.
pub fn write_start_offset(dir: &Path, offset: i64) -> io::Result<()> {
    let tmp = dir.join(format!("{LOG_START_OFFSET_FILE}.tmp"));
    fs::write(&tmp, offset.to_string())?;
    fs::rename(&tmp, dir.join(LOG_START_OFFSET_FILE))
}

/// A partition's durable log.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    segments: BTreeMap<i64, Segment>,
    log_start_offset: i64,
    config: LogConfig,
    epochs: LeaderEpochCache,
    unflushed_messages: u64,
    last_flush: Instant,
    /// Rolled segments whose tails still need an fsync.
    owed: OwedSyncs,
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering segments as `mode` says. `visit` sees
    /// every batch header that survives, in offset order, with the marker type of control
    /// batches.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        mode: RecoveryMode,
        visit: &mut dyn FnMut(&BatchHeader, Option<batch::ControlType>),
    ) -> io::Result<Log> {
        fs::create_dir_all(dir)?;
        compaction::remove_stray_rewrites(dir)?;
        let mut bases: Vec<i64> = Vec::new();
        for entry in fs::read_dir(dir)? {
            let name = entry?.file_name();
            let name = name.to_string_lossy();
            if let Some(stem) = name.strip_suffix(".log") {
                if let Ok(base) = stem.parse::<i64>() {
                    bases.push(base);
                }
            } else if name.ends_with(".index") || name.ends_with(".timeindex") {
                // Orphaned indexes are rebuilt with their segments; stray ones are removed.
                let stem = name.split('.').next().unwrap_or_default();
                if !dir.join(format!("{stem}.log")).exists() {
                    let _ = fs::remove_file(dir.join(name.as_ref()));
                }
            }
        }
        bases.sort_unstable();

        let mut epochs = LeaderEpochCache::default();
        let mut segments = BTreeMap::new();
        let mut truncated_from: Option<i64> = None;
        let mut previous_end: Option<i64> = None;
        for base in bases {
            if truncated_from.is_none() && previous_end.is_some_and(|end| end != base) {
                // Segments continue one another; a hole or an overlap means a segment lost
                // data (a file cut short or emptied), and what follows it cannot be served
                // as if the missing offsets existed.
                warn!(dir = %dir.display(), base, expected = previous_end,
                      "segment does not continue the log");
                truncated_from = previous_end;
            }
            if truncated_from.is_some() {
                // Everything after a corrupt segment is unreachable: drop it.
                warn!(dir = %dir.display(), base, "removing segment after corrupt data");
                let stem = segment::file_stem(base);
                for ext in ["log", "index", "timeindex"] {
                    let _ = fs::remove_file(dir.join(format!("{stem}.{ext}")));
                }
                continue;
            }
            let (segment, report) = Segment::open(
                dir,
                base,
                config.index_interval_bytes,
                mode,
                &mut |h: &BatchHeader, control| {
                    epochs.observe(h.partition_leader_epoch, h.base_offset);
                    visit(h, control)
                },
            )?;
            if report.truncated_bytes > 0 {
                warn!(dir = %dir.display(), base, bytes = report.truncated_bytes,
                      "truncated torn or corrupt log tail");
                truncated_from = Some(segment.next_offset());
            }
            previous_end = Some(segment.next_offset());
            segments.insert(base, segment);
        }
        let log_end = segments.values().next_back().map_or(0, |s| s.next_offset());
        let mut log_start_offset = segments.keys().next().copied().unwrap_or(0);
        if let Ok(text) = fs::read_to_string(dir.join(LOG_START_OFFSET_FILE)) {
            if let Ok(saved) = text.trim().parse::<i64>() {
                log_start_offset = log_start_offset.max(saved.min(log_end));
            }
        }
        if segments.is_empty() {
            // A deleted-records checkpoint may be ahead of an empty directory.
            let segment = Segment::create(dir, log_start_offset, config.index_interval_bytes)?;
            segments.insert(log_start_offset, segment);
        }
        debug!(dir = %dir.display(), log_start_offset, log_end, "log opened");
        Ok(Log {
            dir: dir.to_path_buf(),
            segments,
            log_start_offset,
            config,
            epochs,
            unflushed_messages: 0,
            last_flush: Instant::now(),
            owed: OwedSyncs::default(),
        })
    }

    fn active(&self) -> &Segment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut Segment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    /// Offset the next appended record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    /// Earliest offset still readable.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Total bytes on disk.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(Segment::size).sum()
    }

    /// Leader epoch history, for OffsetForLeaderEpoch and follower truncation.
    pub fn epochs(&self) -> &LeaderEpochCache {
        &self.epochs
    }

    /// Replaces the storage settings (after a config change).
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// Appends one validated batch, assigning it the next offsets.
    pub fn append(
        &mut self,
        bytes: Bytes,
        header: &BatchHeader,
        leader_epoch: i32,
        log_append_time: Option<i64>,
    ) -> io::Result<BatchHeader> {
        let base_offset = self.log_end_offset();
        let mut stamped = *header;
        stamped.base_offset = base_offset;
        stamped.partition_leader_epoch = leader_epoch;
        if let Some(now) = log_append_time {
            stamped.max_timestamp = now;
        }
        self.maybe_roll(&stamped, bytes.len())?;
        let prefix = batch::stamped_header(
            &bytes,
            Stamp {
                base_offset,
                partition_leader_epoch: leader_epoch,
                log_append_time,
            },
        );
        self.active_mut()
            .append(&stamped, &prefix, &bytes[batch::HEADER_LEN..])?;
        self.epochs.observe(leader_epoch, base_offset);
        self.unflushed_messages += header.record_count.max(0) as u64;
        Ok(stamped)
    }

    /// Appends a batch replicated from the leader exactly as the leader stored it (its
    /// offsets and leader epoch are already assigned). It must start at or after the log
    /// end: past it when the leader's cleaner removed the records in between.
    pub fn append_replica(&mut self, bytes: Bytes, header: &BatchHeader) -> io::Result<()> {
        if header.base_offset < self.log_end_offset() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "replicated batch at {} does not continue the log at {}",
                    header.base_offset,
                    self.log_end_offset()
                ),
            ));
        }
        self.maybe_roll(header, bytes.len())?;
        self.active_mut().append(
            header,
            &bytes[..batch::HEADER_LEN],
            &bytes[batch::HEADER_LEN..],
        )?;
        self.epochs
            .observe(header.partition_leader_epoch, header.base_offset);
        self.unflushed_messages += header.record_count.max(0) as u64;
        Ok(())
    }

    /// Discards the whole log and restarts it empty at `offset` (a follower that fell behind
    /// the leader's log start).
    pub fn reset_start(&mut self, offset: i64) -> io::Result<()> {
        for (_, segment) in std::mem::take(&mut self.segments) {
            segment.delete()?;
        }
        self.epochs = LeaderEpochCache::default();
        let segment = Segment::create(&self.dir, offset, self.config.index_interval_bytes)?;
        self.segments.insert(offset, segment);
        self.log_start_offset = offset;
        Ok(())
    }

    /// The partition's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn maybe_roll(&mut self, header: &BatchHeader, len: usize) -> io::Result<()> {
        let active = self.active();
        let full = active.size() > 0 && active.size() + len as u64 > self.config.segment_bytes;
        let old =
            active.size() > 0 && active.age() >= Duration::from_millis(self.config.segment_ms);
        if full || old || active.would_overflow(header.last_offset(), len) {
            // The new segment starts where the log ends, also when the batch starts later
            // (a compacted leader's gap): segments continue one another.
            let base = self.log_end_offset();
            info!(dir = %self.dir.display(), base, "rolling new segment");
            self.active().persist_indexes()?;
            self.owed.owe([self.active().file()]);
            let segment = Segment::create(&self.dir, base, self.config.index_interval_bytes)?;
            self.segments.insert(base, segment);
        }
        Ok(())
    }

    /// Whether `flush.messages` or `flush.ms` asks for an fsync now.
    pub fn flush_due(&self) -> bool {
        self.unflushed_messages > 0
            && (self.unflushed_messages >= self.config.flush_messages
                || self.last_flush.elapsed() >= Duration::from_millis(self.config.flush_ms))
    }

    /// Writes the active segment's indexes to their files (a rolled segment's were written
    /// when it rolled), at a clean shutdown.
    pub fn persist_indexes(&self) -> io::Result<()> {
        self.active().persist_indexes()
    }

    /// Everything written and not yet known to be on disk, as a job to run once the caller
    /// has released the partition: the log counts its messages as flushed from now on.
    pub fn take_flush(&mut self) -> FlushJob {
        self.unflushed_messages = 0;
        self.last_flush = Instant::now();
        FlushJob::new(&self.owed, [self.active().file()])
    }

    /// The tails of rolled segments still owed an fsync (Kafka flushes a rolled segment in
    /// the background, not before acknowledging the write that rolled it).
    pub fn take_owed(&self) -> Option<FlushJob> {
        (!self.owed.is_empty()).then(|| FlushJob::new(&self.owed, []))
    }

    /// Reads batches starting at `offset`, at most `max_bytes` (at least one whole batch),
    /// never returning data at or beyond `limit_offset` (the high watermark for consumers).
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        limit_offset: i64,
    ) -> Result<Bytes, LogError> {
        let end = self.log_end_offset();
        if offset < self.log_start_offset || offset > end {
            return Err(LogError::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end,
            });
        }
        for (_, segment) in self
            .segments
            .range(..=offset)
            .next_back()
            .into_iter()
            .chain(self.segments.range(offset + 1..))
        {
            if segment.next_offset() <= offset {
                continue;
            }
            let data = segment.read(offset, max_bytes, limit_offset)?;
            return Ok(data);
        }
        Ok(Bytes::new())
    }

    /// The first record from the log start with a timestamp at or after `timestamp`:
    /// `(offset, timestamp)`, as ListOffsets answers it.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> io::Result<Option<(i64, i64)>> {
        for segment in self.segments.values() {
            if let Some(found) = segment.find_by_timestamp(timestamp, self.log_start_offset)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// The first record holding the log's greatest timestamp: `(offset, timestamp)`
    /// (ListOffsets -3, as Kafka answers it since 3.8: the record, not its batch).
    pub fn max_timestamp_offset(&self) -> io::Result<Option<(i64, i64)>> {
        let mut latest: Option<&Segment> = None;
        for segment in self.segments.values() {
            if segment.max_timestamp() > latest.map_or(-1, |s| s.max_timestamp()) {
                latest = Some(segment);
            }
        }
        match latest {
            Some(segment) => segment.max_timestamp_offset(self.log_start_offset),
            None => Ok(None),
        }
    }

    /// Moves the log start offset forward (DeleteRecords), deleting whole segments below it.
    pub fn advance_start_offset(&mut self, offset: i64) -> io::Result<()> {
        if offset <= self.log_start_offset {
            return Ok(());
        }
        self.log_start_offset = offset.min(self.log_end_offset());
        self.delete_segments_below(self.log_start_offset)
    }

    fn delete_segments_below(&mut self, offset: i64) -> io::Result<()> {
        let doomed: Vec<i64> = self
            .segments
            .iter()
            .filter(|(_, s)| s.next_offset() <= offset)
            .map(|(base, _)| *base)
            .collect();
        let active_base = self.active().base_offset();
        for base in doomed {
            if base == active_base {
                // Keep an (empty) active segment positioned at the new start.
                let end = self.log_end_offset();
                if let Some(old) = self.segments.remove(&base) {
                    old.delete()?;
                }
                let segment = Segment::create(&self.dir, end, self.config.index_interval_bytes)?;
                self.segments.insert(end, segment);
            } else if let Some(old) = self.segments.remove(&base) {
                old.delete()?;
            }
        }
        Ok(())
    }

    /// Applies `retention.ms` and `retention.bytes`; returns the number of segments removed.
    /// The active segment is never removed.
    pub fn apply_retention(&mut self, now_ms: i64) -> io::Result<usize> {
        if !self.config.delete {
            return Ok(0);
        }
        let mut removed = 0;
        let active_base = self.active().base_offset();
        let mut total = self.size_bytes() as i64;
        let bases: Vec<i64> = self.segments.keys().copied().collect();
        for base in bases {
            if base == active_base {
                break;
            }
            let Some(segment) = self.segments.get(&base) else {
                continue;
            };
            let expired = self.config.retention_ms >= 0
                && segment.max_timestamp() >= 0
                && now_ms - segment.max_timestamp() > self.config.retention_ms;
            let oversized = self.config.retention_bytes >= 0
                && total - segment.size() as i64 >= self.config.retention_bytes;
            if !(expired || oversized) {
                break;
            }
            total -= segment.size() as i64;
            let next = segment.next_offset();
            if let Some(old) = self.segments.remove(&base) {
                old.delete()?;
            }
            self.log_start_offset = self.log_start_offset.max(next);
            removed += 1;
        }
        if removed > 0 {
            info!(dir = %self.dir.display(), removed, log_start_offset = self.log_start_offset,
                  "retention removed segments");
        }
        Ok(removed)
    }

    /// Removes everything at or after `offset` (follower truncation, divergent tails).
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        if offset >= self.log_end_offset() {
            return Ok(());
        }
        let doomed: Vec<i64> = self.segments.range(offset + 1..).map(|(b, _)| *b).collect();
        for base in doomed {
            if self.segments.len() == 1 {
                break;
            }
            if let Some(old) = self.segments.remove(&base) {
                old.delete()?;
            }
        }
        self.active_mut().truncate_to(offset)?;
        if self.active().next_offset() < offset.max(self.log_start_offset)
            && self.active().size() == 0
        {
            let base = offset.max(self.log_start_offset);
            if let Some(old) = self.segments.pop_last() {
                old.1.delete()?;
            }
            let segment = Segment::create(&self.dir, base, self.config.index_interval_bytes)?;
            self.segments.insert(base, segment);
        }
        self.epochs.truncate_from(offset);
        Ok(())
    }

    /// Deletes the whole log directory (topic deletion).
    pub fn delete(self) -> io::Result<()> {
        let dir = self.dir.clone();
        drop(self);
        fs::remove_dir_all(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use batch::tests::make_batch;
    use kafka_protocol::records::Compression;

    fn append_n(log: &mut Log, batches: usize, per_batch: usize) {
        for _ in 0..batches {
            let bytes = make_batch(per_batch, -1, -1, -1, Compression::None).freeze();
            let header = batch::validate(&bytes).unwrap();
            log.append(bytes, &header, 0, None).unwrap();
        }
    }

    /// Opens a log with no recovery callback, as most tests want.
    fn open_log(dir: &Path, config: LogConfig, mode: RecoveryMode) -> Log {
        Log::open(dir, config, mode, &mut |_, _| {}).unwrap()
    }

    fn small_config() -> LogConfig {
        LogConfig {
            segment_bytes: 2048,
            index_interval_bytes: 512,
            ..LogConfig::default()
        }
    }

    #[test]
    fn fsyncs_are_handed_out_as_jobs_never_run_by_appends() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            flush_messages: 4,
            ..small_config()
        };
        let mut log = open_log(dir.path(), config, RecoveryMode::Verify);
        append_n(&mut log, 1, 3);
        assert!(!log.flush_due(), "3 of 4 messages");
        append_n(&mut log, 1, 3);
        assert!(log.flush_due(), "flush.messages reached");
        let job = log.take_flush();
        assert!(!job.is_empty());
        assert!(!log.flush_due(), "counted as flushed once taken");
        job.run().unwrap();
        assert!(log.take_owed().is_none(), "nothing rolled yet");
        append_n(&mut log, 40, 3);
        let owed = log.take_owed().expect("rolled segments are owed a flush");
        let again = log.take_owed().expect("still owed until a sync succeeds");
        owed.run().unwrap();
        assert!(log.take_owed().is_none(), "settled by the successful sync");
        again.run().unwrap();
    }

    #[test]
    fn a_failed_append_leaves_no_trace_and_its_retry_lands_once() {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 1 << 20,
            index_interval_bytes: 1,
            ..LogConfig::default()
        };
        let mut log = open_log(dir.path(), config.clone(), RecoveryMode::Verify);
        append_n(&mut log, 3, 2);
        let bytes = make_batch(2, -1, -1, -1, Compression::None).freeze();
        let header = batch::validate(&bytes).unwrap();
        // The batch's header reaches the file, then the disk fills up.
        let size = log.active().size();
        log.active_mut().fail_next_write();
        assert!(log.append(bytes.clone(), &header, 0, None).is_err());
        assert_eq!(log.log_end_offset(), 6, "nothing appended");
        let file = dir.path().join(format!("{}.log", segment::file_stem(0)));
        assert_eq!(std::fs::metadata(&file).unwrap().len(), size, "no trace");
        log.append(bytes, &header, 0, None).unwrap();
        append_n(&mut log, 2, 2);
        assert_eq!(log.log_end_offset(), 12);

        let check = |log: &Log| {
            let data = log.read(0, 1 << 20, 12).unwrap();
            let bases: Vec<i64> = batch::BatchIter::new(data.clone())
                .map(|(h, _)| h.base_offset)
                .collect();
            assert_eq!(bases, vec![0, 2, 4, 6, 8, 10], "each batch once, in order");
            for offset in 0..12 {
                let (h, _) = batch::BatchIter::new(log.read(offset, 1, 12).unwrap())
                    .next()
                    .expect("a batch at every offset");
                assert!(h.base_offset <= offset && offset <= h.last_offset());
            }
        };
        check(&log);
        drop(log);
        let reopened = open_log(dir.path(), config, RecoveryMode::Trust);
        check(&reopened);
    }

    #[test]
    fn append_read_across_segments_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_log(dir.path(), small_config(), RecoveryMode::Verify);
        append_n(&mut log, 50, 3);
        assert_eq!(log.log_end_offset(), 150);
        assert!(log.segments.len() > 5, "segments rolled by size");
        for offset in [0, 1, 77, 149] {
            let data = log.read(offset, 1, 150).unwrap();
            let (header, _) = batch::BatchIter::new(data).next().expect("one batch");
            assert!(header.base_offset <= offset && offset <= header.last_offset());
        }
        assert!(log.read(150, 1000, 150).unwrap().is_empty());
        assert!(matches!(
            log.read(151, 1000, 151),
            Err(LogError::OffsetOutOfRange { .. })
        ));
        // The high-watermark limit hides batches at or beyond it.
        let limited = log.read(0, 1 << 20, 6).unwrap();
        let last = batch::BatchIter::new(limited).last().unwrap().0;
        assert_eq!(last.next_offset(), 6);
        drop(log);

        let mut seen = 0;
        let log = Log::open(
            dir.path(),
            small_config(),
            RecoveryMode::Trust,
            &mut |h, _| seen += h.record_count,
        )
        .unwrap();
        assert_eq!(seen, 150);
        assert_eq!(log.log_end_offset(), 150);
        let data = log.read(0, 1 << 20, 150).unwrap();
        let offsets: Vec<i64> = batch::BatchIter::new(data)
            .map(|(h, _)| h.base_offset)
            .collect();
        assert_eq!(offsets[0], 0);
    }

    #[test]
    fn torn_tail_is_truncated_on_recovery() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_log(dir.path(), LogConfig::default(), RecoveryMode::Verify);
        append_n(&mut log, 5, 2);
        drop(log);
        let path = dir.path().join(format!("{}.log", segment::file_stem(0)));
        let len = fs::metadata(&path).unwrap().len();
        // A half-written batch and then garbage at the tail.
        let mut data = fs::read(&path).unwrap();
        let one = make_batch(2, -1, -1, -1, Compression::None);
        data.extend_from_slice(&one[..one.len() / 2]);
        fs::write(&path, &data).unwrap();
        let log = open_log(dir.path(), LogConfig::default(), RecoveryMode::Verify);
        assert_eq!(log.log_end_offset(), 10);
        assert_eq!(fs::metadata(&path).unwrap().len(), len);

        // A flipped byte inside the last batch: that batch is dropped, never served.
        drop(log);
        let mut data = fs::read(&path).unwrap();
        let n = data.len();
        data[n - 3] ^= 0x55;
        fs::write(&path, &data).unwrap();
        let log = open_log(dir.path(), LogConfig::default(), RecoveryMode::Verify);
        assert_eq!(log.log_end_offset(), 8);
        let all = log.read(0, 1 << 20, 100).unwrap();
        for (_, bytes) in batch::BatchIter::new(all) {
            batch::validate(&bytes).expect("only valid batches are served");
        }
    }

    #[test]
    fn an_emptied_segment_ends_the_log_where_its_data_ends() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_log(dir.path(), small_config(), RecoveryMode::Verify);
        append_n(&mut log, 30, 3);
        let bases: Vec<i64> = log.segments.keys().copied().collect();
        assert!(bases.len() >= 4, "{bases:?}");
        drop(log);
        // A middle segment loses its contents (a crash before its data reached the disk).
        let emptied = bases[1];
        fs::write(
            dir.path()
                .join(format!("{}.log", segment::file_stem(emptied))),
            b"",
        )
        .unwrap();
        let log = open_log(dir.path(), small_config(), RecoveryMode::Verify);
        assert_eq!(log.log_end_offset(), emptied);
        assert_eq!(log.segments.keys().next_back(), Some(&emptied));
        for later in &bases[2..] {
            assert!(!dir
                .path()
                .join(format!("{}.log", segment::file_stem(*later)))
                .exists());
        }
    }

    #[test]
    fn missing_indexes_are_rebuilt() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_log(dir.path(), small_config(), RecoveryMode::Verify);
        append_n(&mut log, 30, 3);
        drop(log);
        for entry in fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path
                .extension()
                .is_some_and(|e| e == "index" || e == "timeindex")
            {
                fs::remove_file(path).unwrap();
            }
        }
        let log = open_log(dir.path(), small_config(), RecoveryMode::Trust);
        let data = log.read(61, 1, 90).unwrap();
        let (h, _) = batch::BatchIter::new(data).next().unwrap();
        assert!(h.base_offset <= 61 && 61 <= h.last_offset());
        assert!(dir
            .path()
            .join(format!("{}.index", segment::file_stem(0)))
            .exists());
    }

    #[test]
    fn retention_and_delete_records_move_log_start() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = small_config();
        config.retention_bytes = 4096;
        let mut log = open_log(dir.path(), config, RecoveryMode::Verify);
        append_n(&mut log, 60, 3);
        let before = log.size_bytes();
        let removed = log.apply_retention(0).unwrap();
        assert!(removed > 0);
        assert!(log.size_bytes() < before);
        assert!(log.log_start_offset() > 0);
        let start = log.log_start_offset();
        assert!(matches!(
            log.read(start - 1, 100, 180),
            Err(LogError::OffsetOutOfRange { .. })
        ));

        log.advance_start_offset(170).unwrap();
        assert_eq!(log.log_start_offset(), 170);
        write_start_offset(dir.path(), log.log_start_offset()).unwrap();
        drop(log);
        let log = open_log(dir.path(), small_config(), RecoveryMode::Trust);
        assert_eq!(log.log_start_offset(), 170, "log start offset is durable");
        assert_eq!(log.log_end_offset(), 180);
    }

    #[test]
    fn timestamps_and_truncation() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_log(dir.path(), small_config(), RecoveryMode::Verify);
        append_n(&mut log, 10, 3);
        // make_batch timestamps are 1_700_000_000_000 + i within each batch.
        let (offset, ts) = log
            .offset_for_timestamp(1_700_000_000_002)
            .unwrap()
            .unwrap();
        assert_eq!((offset, ts), (2, 1_700_000_000_002));
        assert!(log
            .offset_for_timestamp(1_800_000_000_000)
            .unwrap()
            .is_none());
        log.truncate_to(12).unwrap();
        assert_eq!(log.log_end_offset(), 12);
        append_n(&mut log, 1, 3);
        assert_eq!(log.log_end_offset(), 15);
    }

    #[test]
    fn timestamps_find_the_exact_record_in_compressed_and_plain_batches() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_log(dir.path(), small_config(), RecoveryMode::Verify);
        // Batches of 5 records stamped T+0..T+4 (T = 1_700_000_000_000), the second one
        // compressed; offsets 0-4, 5-9, 10-14.
        const T: i64 = 1_700_000_000_000;
        for compression in [Compression::None, Compression::Gzip, Compression::None] {
            let bytes = make_batch(5, -1, -1, -1, compression).freeze();
            let header = batch::validate(&bytes).unwrap();
            log.append(bytes, &header, 0, None).unwrap();
        }
        assert_eq!(log.offset_for_timestamp(T + 3).unwrap(), Some((3, T + 3)));
        assert_eq!(log.offset_for_timestamp(T).unwrap(), Some((0, T)));
        // The greatest timestamp is first held by offset 4.
        assert_eq!(log.max_timestamp_offset().unwrap(), Some((4, T + 4)));
        // Below the log start, records are gone: the first batch's are skipped, and the
        // compressed batch answers from inside.
        log.advance_start_offset(7).unwrap();
        assert_eq!(log.offset_for_timestamp(T + 1).unwrap(), Some((7, T + 2)));
        assert_eq!(log.offset_for_timestamp(T + 3).unwrap(), Some((8, T + 3)));
        assert_eq!(log.max_timestamp_offset().unwrap(), Some((9, T + 4)));
    }
}
