//! One cleaning round over a compacted log, as Kafka's `Cleaner.clean` runs it: find the
//! dirty section (from the last round's end to the first uncleanable offset), map the
//! latest offset of each of its keys, rewrite every segment up to the end of the map with
//! [`clean_batch`], and swap the rewritten segments in.
//!
//! The partition lock is held only to take a [`CleanerView`] of the log and to swap each
//! rewritten segment in; reading and writing segments happens off it. Segments before the
//! active one and wholly below the high watermark are immutable (only retention,
//! DeleteRecords or an unclean truncation touch them), so a swap checks that its segment is
//! still the one that was read, and drops the rewrite otherwise.
//!
//! A rewrite is written to `<base>.log.cleaned`, synced, and renamed over `<base>.log`: a
//! crash leaves either segment whole, and start-up removes stray `.cleaned` files. The
//! rewritten segment keeps the original's modification time, which dates its tombstones.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use thiserror::Error;

use super::batch::{self, BatchError, BatchHeader, LOG_OVERHEAD};
use super::cleaner::{clean_batch, Cleaned, OffsetMap};
use super::segment::{RecoveryMode, Segment};
use super::{Log, LogConfig};
use crate::producer::transactions::AbortedTxn;

/// Where a log's cleaner keeps the offset the next round starts mapping from.
const CLEANER_OFFSET_FILE: &str = "cleaner-offset";
/// Suffix of a segment being rewritten.
const CLEANED_SUFFIX: &str = ".cleaned";
/// Read and write buffers of a round.
const IO_BUFFER: usize = 1 << 20;

/// Why a cleaning round stopped.
#[derive(Debug, Error)]
pub enum CleanError {
    #[error("segment I/O: {0}")]
    Io(#[from] io::Error),
    #[error("segment {base} holds a batch that cannot be cleaned: {source}")]
    Batch { base: i64, source: BatchError },
    /// One batch has more distinct keys than the map holds: raise
    /// `log.cleaner.dedupe.buffer.size`.
    #[error("one batch has more keys than log.cleaner.dedupe.buffer.size can map")]
    MapTooSmall,
}

/// A segment as a round sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct SegmentFile {
    pub base: i64,
    pub next_offset: i64,
    pub size: u64,
    pub max_timestamp: i64,
    /// Last written, milliseconds since the epoch (dates its tombstones).
    pub modified_ms: i64,
    pub path: PathBuf,
}

/// What a round needs of a log, taken under the partition lock in one step.
#[derive(Debug, Clone)]
pub struct CleanerView {
    pub dir: PathBuf,
    pub config: LogConfig,
    /// The segments a round may rewrite: those before the active one that end at or below
    /// the high watermark, in offset order.
    pub segments: Vec<SegmentFile>,
    /// Where the last round's map ended: records from here on are dirty.
    pub first_dirty: i64,
    /// Base offsets of each producer's latest batch: kept, empty if need be, so that a
    /// restart still knows the producer's sequence and epoch.
    pub producers_last_batches: HashSet<i64>,
    /// Aborted transactions: their records never supersede a key, and go.
    pub aborted: Vec<AbortedTxn>,
}

impl CleanerView {
    /// Whether `header` is a data batch of an aborted transaction.
    fn is_aborted(&self, header: &BatchHeader) -> bool {
        header.is_transactional()
            && !header.is_control()
            && self.aborted.iter().any(|t| {
                t.producer_id == header.producer_id
                    && (t.first_offset..=t.last_offset).contains(&header.base_offset)
            })
    }
}

/// Which segments a round cleans: `segments[..end]`, mapping keys from `first_dirty`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    pub end: usize,
    /// The dirty share of the cleanable log that made the round worth running.
    pub dirty_ratio: f64,
}

/// What one round did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct RoundReport {
    /// Segments rewritten (by [`clean`]) or swapped in (by the partition).
    pub segments_rewritten: usize,
    pub bytes_read: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub keys_mapped: usize,
    /// Where the next round starts mapping.
    pub first_dirty: i64,
}

/// Whether a round is due and over which segments (pure): the dirty section runs from
/// `first_dirty` to the first segment holding a record younger than
/// `min.compaction.lag.ms`, and must be at least `min.cleanable.dirty.ratio` of the
/// cleanable log.
pub fn plan(view: &CleanerView, now_ms: i64) -> Option<Plan> {
    let lag = view.config.min_compaction_lag_ms;
    let end = view
        .segments
        .iter()
        .position(|s| lag > 0 && s.max_timestamp > now_ms - lag)
        .unwrap_or(view.segments.len());
    let cleanable = &view.segments[..end];
    let (mut clean, mut dirty) = (0u64, 0u64);
    for segment in cleanable {
        if segment.next_offset <= view.first_dirty {
            clean += segment.size;
        } else {
            dirty += segment.size;
        }
    }
    if dirty == 0 {
        return None;
    }
    let dirty_ratio = dirty as f64 / (clean + dirty) as f64;
    (dirty_ratio >= view.config.min_cleanable_dirty_ratio).then_some(Plan { end, dirty_ratio })
}

/// The batches of a segment file, read through a large buffer (one allocation a batch,
/// shared by the map and the rewrite).
struct SegmentBatches {
    reader: BufReader<File>,
    remaining: u64,
}

impl SegmentBatches {
    fn open(segment: &SegmentFile) -> io::Result<Self> {
        Ok(SegmentBatches {
            reader: BufReader::with_capacity(IO_BUFFER, File::open(&segment.path)?),
            remaining: segment.size,
        })
    }

    fn next_batch(&mut self) -> io::Result<Option<(BatchHeader, Bytes)>> {
        if self.remaining < batch::HEADER_LEN as u64 {
            return Ok(None);
        }
        let mut prefix = [0u8; LOG_OVERHEAD];
        self.reader.read_exact(&mut prefix)?;
        let length = i32::from_be_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
        let total = LOG_OVERHEAD as u64 + u64::try_from(length).unwrap_or(0);
        if length < 0 || total > self.remaining {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "batch runs past the segment",
            ));
        }
        let mut bytes = BytesMut::zeroed(total as usize);
        bytes[..LOG_OVERHEAD].copy_from_slice(&prefix);
        self.reader.read_exact(&mut bytes[LOG_OVERHEAD..])?;
        self.remaining -= total;
        let bytes = bytes.freeze();
        let header = BatchHeader::parse(&bytes)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        Ok(Some((header, bytes)))
    }
}

/// Maps the latest offset of each key from `first_dirty` through `segments`, stopping
/// where the map is full. The map covers the log up to its `last_offset`.
fn build_map(
    view: &CleanerView,
    segments: &[SegmentFile],
    buffer_bytes: usize,
    report: &mut RoundReport,
) -> Result<OffsetMap, CleanError> {
    let first_dirty = view.first_dirty;
    let mut map = OffsetMap::with_buffer(buffer_bytes);
    for segment in segments.iter().filter(|s| s.next_offset > first_dirty) {
        let mut batches = SegmentBatches::open(segment)?;
        while let Some((header, bytes)) = batches.next_batch()? {
            report.bytes_read += bytes.len() as u64;
            if header.last_offset() < first_dirty {
                continue;
            }
            if view.is_aborted(&header) {
                map.cover(header.last_offset());
                continue;
            }
            let fitted = map.add_batch(&bytes).map_err(|source| CleanError::Batch {
                base: segment.base,
                source,
            })?;
            if !fitted {
                return if map.last_offset() < first_dirty {
                    Err(CleanError::MapTooSmall)
                } else {
                    Ok(map)
                };
            }
        }
    }
    Ok(map)
}

/// Rewrites `segment` against `map` into its `.cleaned` file. Returns `None`, writing
/// nothing, when every batch would be kept as it is.
fn rewrite(
    segment: &SegmentFile,
    map: &OffsetMap,
    view: &CleanerView,
    now_ms: i64,
    report: &mut RoundReport,
) -> Result<Option<(PathBuf, u64)>, CleanError> {
    let retain_tombstones = segment.modified_ms > now_ms - view.config.delete_retention_ms;
    let mut batches = SegmentBatches::open(segment)?;
    let mut out: Vec<Bytes> = Vec::new();
    let mut changed = false;
    let mut pending = batches.next_batch()?;
    while let Some((header, bytes)) = pending.take() {
        report.bytes_read += bytes.len() as u64;
        pending = batches.next_batch()?;
        let last_in_segment = pending.is_none();
        // The segment's last batch keeps the segment ending where it did (the next segment
        // starts there); a producer's last batch keeps its sequence and epoch.
        let needed = last_in_segment
            || (header.has_producer_id()
                && view.producers_last_batches.contains(&header.base_offset));
        if view.is_aborted(&header) {
            // An aborted transaction's records are never read by read_committed
            // consumers and supersede nothing: they go, as in Kafka.
            changed = true;
            if needed {
                out.push(batch::empty_batch(&header));
            }
            continue;
        }
        if header.record_count == 0 && !header.is_control() {
            // An empty batch an earlier round left: it goes once nothing needs it.
            if needed {
                out.push(bytes);
            } else {
                changed = true;
            }
            continue;
        }
        let cleaned =
            clean_batch(&bytes, map, retain_tombstones).map_err(|source| CleanError::Batch {
                base: segment.base,
                source,
            })?;
        match cleaned {
            Cleaned::Kept => out.push(bytes),
            Cleaned::Rewritten(rewritten) => {
                changed = true;
                out.push(rewritten);
            }
            Cleaned::Dropped => {
                changed = true;
                if needed {
                    out.push(batch::empty_batch(&header));
                }
            }
        }
    }
    if !changed {
        return Ok(None);
    }
    let path = cleaned_path(&segment.path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(&path)?;
    let mut writer = BufWriter::with_capacity(IO_BUFFER, file);
    let mut size = 0u64;
    for bytes in &out {
        writer.write_all(bytes)?;
        size += bytes.len() as u64;
    }
    let file = writer
        .into_inner()
        .map_err(io::IntoInnerError::into_error)?;
    file.sync_all()?;
    let modified = UNIX_EPOCH + Duration::from_millis(segment.modified_ms.max(0) as u64);
    file.set_modified(modified)?;
    Ok(Some((path, size)))
}

fn cleaned_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(CLEANED_SUFFIX);
    PathBuf::from(name)
}

/// A rewritten segment, ready to be swapped in under the partition lock.
#[derive(Debug)]
pub struct Rewritten {
    pub original: SegmentFile,
    pub cleaned: PathBuf,
}

/// Runs the read-only part of a round: maps the dirty section and rewrites the segments
/// the map covers. The caller swaps each [`Rewritten`] in with [`Log::swap_cleaned`] and
/// then records `report.first_dirty` with [`Log::checkpoint_cleaned`].
pub fn clean(
    view: &CleanerView,
    plan: Plan,
    buffer_bytes: usize,
    now_ms: i64,
) -> Result<(Vec<Rewritten>, RoundReport), CleanError> {
    let mut report = RoundReport::default();
    let segments = &view.segments[..plan.end];
    let map = build_map(view, segments, buffer_bytes, &mut report)?;
    report.keys_mapped = map.len();
    // Records past the map's reach are only known not to be superseded by what it saw:
    // the segment holding its last offset is rewritten too, keeping those records.
    let covered = map.last_offset() + 1;
    let end_of_section = segments.last().map_or(view.first_dirty, |s| s.next_offset);
    report.first_dirty = covered.min(end_of_section).max(view.first_dirty);
    let mut rewritten = Vec::new();
    for segment in segments.iter().filter(|s| s.base < covered) {
        report.bytes_before += segment.size;
        match rewrite(segment, &map, view, now_ms, &mut report) {
            Ok(Some((cleaned, size))) => {
                report.bytes_after += size;
                rewritten.push(Rewritten {
                    original: segment.clone(),
                    cleaned,
                });
            }
            Ok(None) => report.bytes_after += segment.size,
            Err(e) => {
                for done in rewritten {
                    let _ = fs::remove_file(done.cleaned);
                }
                return Err(e);
            }
        }
    }
    report.segments_rewritten = rewritten.len();
    Ok((rewritten, report))
}

fn modified_ms(path: &Path) -> i64 {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64)
}

impl Log {
    /// What a cleaning round needs of this log, or `None` when it is not compacted. Only
    /// segments wholly below `stable_offset` are offered: uncommitted records may still
    /// be truncated away, and open transactions may still abort (Kafka's first
    /// uncleanable offset: the high watermark, held back by open transactions).
    pub fn cleaner_view(
        &self,
        stable_offset: i64,
        producers_last_batches: HashSet<i64>,
        aborted: Vec<AbortedTxn>,
    ) -> Option<CleanerView> {
        if !self.config.compact {
            return None;
        }
        let active = self.active().base_offset();
        let segments = self
            .segments
            .values()
            .filter(|s| s.base_offset() != active && s.next_offset() <= stable_offset)
            .map(|s| SegmentFile {
                base: s.base_offset(),
                next_offset: s.next_offset(),
                size: s.size(),
                max_timestamp: s.max_timestamp(),
                modified_ms: modified_ms(s.path()),
                path: s.path().to_path_buf(),
            })
            .collect();
        let first_dirty = fs::read_to_string(self.dir.join(CLEANER_OFFSET_FILE))
            .ok()
            .and_then(|text| text.trim().parse::<i64>().ok())
            .unwrap_or(0)
            .max(self.log_start_offset);
        Some(CleanerView {
            dir: self.dir.clone(),
            config: self.config.clone(),
            segments,
            first_dirty,
            producers_last_batches,
            aborted,
        })
    }

    /// Swaps a rewritten segment in for its original, if the log still holds the original
    /// as it was read. Returns whether it did; a stale rewrite is removed.
    pub fn swap_cleaned(&mut self, rewritten: &Rewritten) -> io::Result<bool> {
        let original = &rewritten.original;
        let active = self.active().base_offset();
        let unchanged = self.segments.get(&original.base).is_some_and(|s| {
            s.base_offset() != active
                && s.size() == original.size
                && s.next_offset() == original.next_offset
        });
        if !unchanged {
            fs::remove_file(&rewritten.cleaned)?;
            return Ok(false);
        }
        fs::rename(&rewritten.cleaned, &original.path)?;
        File::open(&self.dir)?.sync_all()?;
        let (segment, _) = Segment::open(
            &self.dir,
            original.base,
            self.config.index_interval_bytes,
            RecoveryMode::Trust,
            &mut |_, _| {},
        )?;
        self.segments.insert(original.base, segment);
        Ok(true)
    }

    /// Records where the next cleaning round starts mapping.
    pub fn checkpoint_cleaned(&self, first_dirty: i64) -> io::Result<()> {
        let tmp = self.dir.join(format!("{CLEANER_OFFSET_FILE}.tmp"));
        fs::write(&tmp, first_dirty.to_string())?;
        fs::rename(&tmp, self.dir.join(CLEANER_OFFSET_FILE))
    }
}

/// Removes rewrites a crash left behind (their originals are whole).
pub(super) fn remove_stray_rewrites(dir: &Path) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with(CLEANED_SUFFIX))
        {
            fs::remove_file(path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{Compression, Record, RecordBatchDecoder, TimestampType};

    const HOUR_MS: i64 = 3_600_000;

    fn config() -> LogConfig {
        LogConfig {
            segment_bytes: 600,
            delete: false,
            compact: true,
            ..Default::default()
        }
    }

    /// A one-record batch of producer 7, sequence `seq`, written at `timestamp`.
    fn record(key: &str, value: Option<&str>, seq: i32, timestamp: i64) -> Bytes {
        let record = Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: 7,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: seq,
            timestamp,
            key: Some(Bytes::from(key.to_string())),
            value: value.map(|v| Bytes::from(v.to_string())),
            headers: Default::default(),
            delete_horizon: false,
        };
        batch::encode_records(&[record], Compression::Lz4)
            .unwrap()
            .freeze()
    }

    fn append(log: &mut Log, key: &str, value: Option<&str>, timestamp: i64) {
        let seq = log.log_end_offset() as i32;
        let bytes = record(key, value, seq, timestamp);
        let header = batch::validate(&bytes).unwrap();
        log.append(bytes, &header, 0, None).unwrap();
    }

    /// Every record in the log: `(offset, key, value)`.
    fn contents(log: &Log) -> Vec<(i64, String, Option<String>)> {
        let mut out = Vec::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let bytes = log.read(offset, 1 << 20, log.log_end_offset()).unwrap();
            assert!(!bytes.is_empty(), "nothing readable at {offset}");
            for (header, batch) in batch::BatchIter::new(bytes) {
                batch::validate_stored(&batch).expect("stored batches stay valid");
                let mut buf = batch.clone();
                for r in RecordBatchDecoder::decode(&mut buf).unwrap().records {
                    let text = |b: Bytes| String::from_utf8(b.to_vec()).unwrap();
                    out.push((r.offset, text(r.key.unwrap()), r.value.map(text)));
                }
                offset = header.next_offset();
            }
        }
        out
    }

    fn round(log: &mut Log, now_ms: i64) -> Option<RoundReport> {
        let view = log.cleaner_view(log.log_end_offset(), HashSet::new(), Vec::new())?;
        let plan = plan(&view, now_ms)?;
        let (rewritten, report) = clean(&view, plan, 1 << 20, now_ms).unwrap();
        for segment in &rewritten {
            assert!(log.swap_cleaned(segment).unwrap());
        }
        log.checkpoint_cleaned(report.first_dirty).unwrap();
        Some(report)
    }

    fn now() -> i64 {
        crate::util::now_ms()
    }

    #[test]
    fn cleaning_keeps_the_latest_record_of_each_key_and_every_offset_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config(), RecoveryMode::Trust, &mut |_, _| {}).unwrap();
        for round in 0..10 {
            for key in 0..5 {
                append(
                    &mut log,
                    &format!("k{key}"),
                    Some(&format!("v{round}")),
                    now(),
                );
            }
        }
        let end = log.log_end_offset();
        let active = log.active().base_offset();
        let before = log.size_bytes();
        let report = round(&mut log, now()).expect("a dirty log is cleaned");
        assert!(
            report.segments_rewritten > 0 && report.keys_mapped == 5,
            "{report:?}"
        );
        assert!(
            log.size_bytes() < before / 2,
            "{} of {before} bytes left",
            log.size_bytes()
        );
        assert_eq!(log.log_end_offset(), end, "offsets never move");
        let records = contents(&log);
        let cleaned: Vec<_> = records.iter().filter(|(o, ..)| *o < active).collect();
        let mut keys: Vec<_> = cleaned.iter().map(|(_, k, _)| k.clone()).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(
            keys.len(),
            cleaned.len(),
            "one record per key below the active segment"
        );
        for key in 0..5 {
            let key = format!("k{key}");
            let last = records.iter().rfind(|(_, k, _)| *k == key).unwrap();
            assert_eq!(last.2.as_deref(), Some("v9"), "{key}");
        }
        assert!(records.windows(2).all(|w| w[0].0 < w[1].0));

        // What was cleaned reads back the same after a crash-mode recovery, gaps and all.
        drop(log);
        let reopened =
            Log::open(dir.path(), config(), RecoveryMode::Verify, &mut |_, _| {}).unwrap();
        assert_eq!(reopened.log_end_offset(), end);
        assert_eq!(contents(&reopened), records);
    }

    #[test]
    fn a_clean_log_waits_for_new_dirt() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config(), RecoveryMode::Trust, &mut |_, _| {}).unwrap();
        for i in 0..40 {
            append(&mut log, &format!("k{}", i % 4), Some("v"), now());
        }
        assert!(round(&mut log, now()).is_some());
        assert_eq!(round(&mut log, now()), None, "nothing new is dirty");
        let view = log
            .cleaner_view(log.log_end_offset(), HashSet::new(), Vec::new())
            .unwrap();
        assert!(view.first_dirty > 0 && view.first_dirty <= log.active().base_offset());
    }

    #[test]
    fn tombstones_stay_for_delete_retention_then_go() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config(), RecoveryMode::Trust, &mut |_, _| {}).unwrap();
        append(&mut log, "gone", Some("v"), now());
        append(&mut log, "gone", None, now());
        for i in 0..30 {
            append(&mut log, &format!("k{}", i % 3), Some("v"), now());
        }
        round(&mut log, now()).unwrap();
        let records = contents(&log);
        let gone: Vec<_> = records.iter().filter(|(_, k, _)| k == "gone").collect();
        assert_eq!(gone.len(), 1, "only the tombstone is left: {gone:?}");
        assert_eq!(gone[0].2, None);

        // Once delete.retention.ms has passed since its segment was written, it goes too.
        log.set_config(LogConfig {
            delete_retention_ms: HOUR_MS,
            min_cleanable_dirty_ratio: 0.0,
            ..config()
        });
        let later = now() + 2 * HOUR_MS;
        for i in 0..10 {
            append(&mut log, &format!("k{}", i % 3), Some("w"), now());
        }
        round(&mut log, later).unwrap();
        assert!(contents(&log).iter().all(|(_, k, _)| k != "gone"));
    }

    #[test]
    fn a_segment_whose_records_all_go_keeps_an_empty_batch_at_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = Log::open(dir.path(), config(), RecoveryMode::Trust, &mut |_, _| {}).unwrap();
        for _ in 0..30 {
            append(&mut log, "same", Some("v"), now());
        }
        round(&mut log, now()).unwrap();
        let bases: Vec<i64> = log.segments.keys().copied().collect();
        for (segment, next) in log.segments.values().zip(bases.iter().skip(1)) {
            assert_eq!(
                segment.next_offset(),
                *next,
                "segments still continue one another"
            );
        }
        let records = contents(&log);
        let below_active = records
            .iter()
            .filter(|(o, ..)| *o < log.active().base_offset())
            .count();
        // The map ends with the last segment before the active one: its record stays.
        assert_eq!(below_active, 1, "{records:?}");
    }

    fn view(sizes: &[(i64, u64, i64)], first_dirty: i64, config: LogConfig) -> CleanerView {
        CleanerView {
            dir: PathBuf::new(),
            config,
            segments: sizes
                .iter()
                .map(|&(base, size, max_timestamp)| SegmentFile {
                    base,
                    next_offset: base + 10,
                    size,
                    max_timestamp,
                    modified_ms: max_timestamp,
                    path: PathBuf::new(),
                })
                .collect(),
            first_dirty,
            producers_last_batches: HashSet::new(),
            aborted: Vec::new(),
        }
    }

    #[test]
    fn rounds_wait_for_the_dirty_ratio_and_the_compaction_lag() {
        let segments = [(0, 100, 1000), (10, 100, 2000), (20, 100, 3000)];
        // 1 of 3 segments dirty: below the 0.5 default.
        assert_eq!(plan(&view(&segments, 20, config()), 10_000), None);
        let due = plan(&view(&segments, 10, config()), 10_000).unwrap();
        assert_eq!(due.end, 3);
        assert!((due.dirty_ratio - 2.0 / 3.0).abs() < 1e-9);
        // Records younger than min.compaction.lag.ms end the dirty section.
        let lagging = LogConfig {
            min_compaction_lag_ms: 8_500,
            ..config()
        };
        let due = plan(&view(&segments, 0, lagging.clone()), 10_000).unwrap();
        assert_eq!(due.end, 1, "the segment with a record at 2000 is too young");
        assert_eq!(plan(&view(&segments, 0, lagging), 8_000), None);
    }
}

/// The cleaner's throughput, a measurement rather than a check: `cargo test --release -p
/// tributary-broker --lib cleaner_throughput -- --ignored --nocapture`.
#[cfg(test)]
mod throughput {
    use super::*;
    use kafka_protocol::records::{Compression, Record, TimestampType};

    #[test]
    #[ignore = "a measurement: run it in release mode"]
    fn cleaner_throughput() {
        const KEYS: usize = 100_000;
        const RECORDS: usize = 1_000_000;
        const PER_BATCH: usize = 100;
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            segment_bytes: 64 << 20,
            delete: false,
            compact: true,
            ..Default::default()
        };
        let mut log = Log::open(dir.path(), config, RecoveryMode::Trust, &mut |_, _| {}).unwrap();
        let value = Bytes::from(vec![b'v'; 100]);
        for first in (0..RECORDS).step_by(PER_BATCH) {
            let records: Vec<Record> = (first..first + PER_BATCH)
                .map(|i| Record {
                    transactional: false,
                    control: false,
                    partition_leader_epoch: 0,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: TimestampType::Creation,
                    offset: (i - first) as i64,
                    sequence: (i - first) as i32 - 1,
                    timestamp: 1_700_000_000_000,
                    key: Some(Bytes::from(format!("key-{:08}", (i * 7919) % KEYS))),
                    value: Some(value.clone()),
                    headers: Default::default(),
                    delete_horizon: false,
                })
                .collect();
            let bytes = batch::encode_records(&records, Compression::Lz4)
                .unwrap()
                .freeze();
            let header = batch::validate(&bytes).unwrap();
            log.append(bytes, &header, 0, None).unwrap();
        }
        // Roll, so every record is in a cleanable segment.
        let bytes = batch::encode_records(
            &[Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: 0,
                sequence: -1,
                timestamp: 1_700_000_000_000,
                key: Some(Bytes::from_static(b"roll")),
                value: None,
                headers: Default::default(),
                delete_horizon: false,
            }],
            Compression::None,
        )
        .unwrap()
        .freeze();
        let header = batch::validate(&bytes).unwrap();
        log.maybe_roll(&header, usize::MAX >> 1).unwrap();
        log.append(bytes, &header, 0, None).unwrap();
        let before = log.size_bytes();
        let view = log
            .cleaner_view(log.log_end_offset(), HashSet::new(), Vec::new())
            .unwrap();
        let plan = plan(&view, crate::util::now_ms()).unwrap();
        let started = std::time::Instant::now();
        let buffer = 128 << 20;
        let (rewritten, report) = clean(&view, plan, buffer, crate::util::now_ms()).unwrap();
        for segment in &rewritten {
            assert!(log.swap_cleaned(segment).unwrap());
        }
        let elapsed = started.elapsed();
        println!(
            "cleaned {RECORDS} records ({KEYS} keys, lz4): {:.1} MB -> {:.1} MB in {:.2} s, \
             {:.0} MB/s read; map of {} keys = {:.1} MB of the {} MB buffer",
            before as f64 / 1e6,
            log.size_bytes() as f64 / 1e6,
            elapsed.as_secs_f64(),
            report.bytes_read as f64 / 1e6 / elapsed.as_secs_f64(),
            report.keys_mapped,
            (report.keys_mapped * super::super::cleaner::ENTRY_BYTES) as f64 / 1e6,
            buffer >> 20,
        );
    }
}
