//! One log segment: a `<base offset>.log` file of record batches plus its two indexes.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use super::batch::{self, BatchHeader, ControlType, HEADER_LEN};
use super::index::{OffsetIndex, TimeIndex};

/// File name stem Kafka uses for a segment: the base offset padded to 20 digits.
pub fn file_stem(base_offset: i64) -> String {
    format!("{base_offset:020}")
}

/// How much to trust a segment found on disk at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecoveryMode {
    /// After a clean shutdown: trust the file length; rebuild only indexes that fail checks.
    Trust,
    /// After a crash: verify every batch's CRC, truncate a torn or corrupt tail, rebuild indexes.
    Verify,
}

/// What recovery found in a segment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Bytes cut from the end of the file because they were not a complete valid batch.
    pub truncated_bytes: u64,
    /// Whether the indexes had to be rebuilt from the log.
    pub rebuilt_indexes: bool,
}

/// Walks batch headers from a file position, one positional read per batch.
struct HeaderWalk<'a> {
    file: &'a File,
    position: u64,
    end: u64,
}

impl Iterator for HeaderWalk<'_> {
    type Item = io::Result<(u64, BatchHeader)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.position + HEADER_LEN as u64 > self.end {
            return None;
        }
        let mut buf = [0u8; HEADER_LEN];
        if let Err(e) = self.file.read_exact_at(&mut buf, self.position) {
            return Some(Err(e));
        }
        let header = BatchHeader::parse(&buf).ok()?;
        let at = self.position;
        self.position += header.total_len() as u64;
        Some(Ok((at, header)))
    }
}

/// An append-only segment. Reads use positional I/O so they never contend with appends.
#[derive(Debug)]
pub struct Segment {
    base_offset: i64,
    log_path: PathBuf,
    file: Arc<File>,
    size: u64,
    /// Offset just past the last batch (the base offset while empty).
    next_offset: i64,
    max_timestamp: i64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    bytes_since_index_entry: u64,
    index_interval_bytes: u64,
    created: Instant,
    /// Set when a failed append could not be undone: the file may hold bytes the segment
    /// does not account for, so it takes no more appends until start-up recovery verifies it.
    torn: bool,
    #[cfg(test)]
    fail_next_write: bool,
}

impl Segment {
    /// Creates a new empty segment starting at `base_offset`.
    pub fn create(dir: &Path, base_offset: i64, index_interval_bytes: u64) -> io::Result<Self> {
        let log_path = dir.join(format!("{}.log", file_stem(base_offset)));
        let file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&log_path)?;
        let segment = Self::with_empty_indexes(dir, base_offset, file, index_interval_bytes)?;
        segment.persist_indexes()?;
        Ok(segment)
    }

    /// A segment over `file` with fresh (empty) indexes; nothing is known of its batches.
    fn with_empty_indexes(
        dir: &Path,
        base_offset: i64,
        file: File,
        index_interval_bytes: u64,
    ) -> io::Result<Self> {
        let stem = file_stem(base_offset);
        Ok(Segment {
            base_offset,
            log_path: dir.join(format!("{stem}.log")),
            file: Arc::new(file),
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            offset_index: OffsetIndex::new(&dir.join(format!("{stem}.index"))),
            time_index: TimeIndex::new(&dir.join(format!("{stem}.timeindex"))),
            bytes_since_index_entry: 0,
            index_interval_bytes,
            created: Instant::now(),
            torn: false,
            #[cfg(test)]
            fail_next_write: false,
        })
    }

    /// Opens a segment found on disk, recovering it as `mode` requires. `visit` sees every
    /// batch header that survives recovery, in order (to rebuild producer and epoch state).
    pub fn open(
        dir: &Path,
        base_offset: i64,
        index_interval_bytes: u64,
        mode: RecoveryMode,
        visit: &mut dyn FnMut(&BatchHeader, Option<ControlType>),
    ) -> io::Result<(Self, RecoveryReport)> {
        let log_path = dir.join(format!("{}.log", file_stem(base_offset)));
        let file = OpenOptions::new().read(true).write(true).open(&log_path)?;
        let file_len = file.metadata()?.len();

        let mut report = RecoveryReport::default();
        let mut segment = Self::with_empty_indexes(dir, base_offset, file, index_interval_bytes)?;
        // Indexes are rebuilt while walking the file; the walk is needed anyway to find the
        // end offset and feed `visit`. In `Trust` mode only headers are read.
        let valid_len = segment.walk(file_len, mode, &mut |header, position, seg| {
            seg.index_batch(header, position);
            let control = seg.control_type_at(header, position)?;
            visit(header, control);
            Ok(())
        })?;
        report.rebuilt_indexes = true;
        if valid_len < file_len {
            report.truncated_bytes = file_len - valid_len;
            segment.file.set_len(valid_len)?;
            segment.file.sync_all()?;
        }
        segment.size = valid_len;
        segment.persist_indexes()?;
        Ok((segment, report))
    }

    /// Walks batches from the start of the file, returning the length of the valid prefix.
    fn walk(
        &mut self,
        file_len: u64,
        mode: RecoveryMode,
        on_batch: &mut dyn FnMut(&BatchHeader, u64, &mut Segment) -> io::Result<()>,
    ) -> io::Result<u64> {
        let mut position = 0u64;
        let mut header_buf = [0u8; HEADER_LEN];
        let mut expected_next = self.base_offset;
        while position + HEADER_LEN as u64 <= file_len {
            self.file.read_exact_at(&mut header_buf, position)?;
            let Ok(header) = BatchHeader::parse(&header_buf) else {
                break;
            };
            let len = header.total_len() as u64;
            if position + len > file_len || header.base_offset < expected_next {
                break;
            }
            if mode == RecoveryMode::Verify {
                let mut data = vec![0u8; len as usize];
                self.file.read_exact_at(&mut data, position)?;
                if batch::validate_stored(&data).is_err() {
                    break;
                }
            }
            expected_next = header.next_offset();
            on_batch(&header, position, self)?;
            position += len;
        }
        Ok(position)
    }

    /// The marker type of the control batch at `position` (`None` for other batches).
    fn control_type_at(
        &self,
        header: &BatchHeader,
        position: u64,
    ) -> io::Result<Option<ControlType>> {
        // Markers are one small record; anything larger is no marker Tributary wrote.
        if !header.is_control() || header.total_len() > 4096 {
            return Ok(None);
        }
        let mut data = vec![0u8; header.total_len()];
        self.file.read_exact_at(&mut data, position)?;
        Ok(batch::control_type(&data))
    }

    fn index_batch(&mut self, header: &BatchHeader, position: u64) {
        let relative = (header.base_offset - self.base_offset) as u32;
        if self.offset_index.is_empty() || self.bytes_since_index_entry >= self.index_interval_bytes
        {
            self.offset_index.append(relative, position as u32);
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += header.total_len() as u64;
        if header.max_timestamp > self.max_timestamp {
            self.max_timestamp = header.max_timestamp;
            let last_relative = (header.last_offset() - self.base_offset) as u32;
            self.time_index
                .maybe_append(header.max_timestamp, last_relative);
        }
        self.next_offset = header.next_offset();
    }

    /// Appends one batch given as its stamped header prefix and its untouched body.
    ///
    /// All or nothing: if a write fails part way (as a full disk fails them), the file is
    /// cut back to where it ended, so that a retry of the same batch lands at the same
    /// position instead of behind bytes nobody accounts for.
    pub fn append(&mut self, header: &BatchHeader, prefix: &[u8], body: &[u8]) -> io::Result<()> {
        if self.torn {
            return Err(io::Error::other(
                "an earlier failed append could not be undone; the segment is verified on restart",
            ));
        }
        let position = self.size;
        if let Err(e) = self.write_batch(prefix, body, position) {
            if let Err(undo) = self.file.set_len(position) {
                self.torn = true;
                return Err(io::Error::new(
                    undo.kind(),
                    format!("undoing a failed append ({e}) failed: {undo}"),
                ));
            }
            return Err(e);
        }
        self.size += (prefix.len() + body.len()) as u64;
        self.index_batch(header, position);
        Ok(())
    }

    /// Writes the stamped header and the received body with one `pwritev` (two writes
    /// only when the kernel takes part of them).
    fn write_batch(&mut self, prefix: &[u8], body: &[u8], position: u64) -> io::Result<()> {
        #[cfg(test)]
        if std::mem::take(&mut self.fail_next_write) {
            self.file.write_all_at(prefix, position)?;
            return Err(io::Error::from_raw_os_error(28));
        }
        let written = loop {
            match rustix::io::pwritev(
                &*self.file,
                &[io::IoSlice::new(prefix), io::IoSlice::new(body)],
                position,
            ) {
                Ok(n) => break n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        };
        // What the kernel did not take, from where it stopped.
        let (prefix_rest, body_rest) = match written.checked_sub(prefix.len()) {
            None => (&prefix[written..], body),
            Some(done) => (&[][..], &body[done..]),
        };
        let at = position + written as u64;
        self.file.write_all_at(prefix_rest, at)?;
        self.file
            .write_all_at(body_rest, at + prefix_rest.len() as u64)
    }

    /// Makes the next append fail after writing its header, as a disk that fills up part
    /// way through a batch (for tests of failed appends).
    #[cfg(test)]
    pub(super) fn fail_next_write(&mut self) {
        self.fail_next_write = true;
    }

    /// Writes both indexes to their files (see [`IndexFile`](super::index::IndexFile)):
    /// when the segment stops being the active one, and at a clean shutdown.
    pub fn persist_indexes(&self) -> io::Result<()> {
        self.offset_index.persist()?;
        self.time_index.persist()
    }

    /// Reads whole batches starting with the one containing `offset`, up to `max_bytes`
    /// (but always the first batch whole, as KIP-74 requires) and never past `limit_offset`.
    pub fn read(&self, offset: i64, max_bytes: usize, limit_offset: i64) -> io::Result<Bytes> {
        let Some(start) = self.find_position(offset)? else {
            return Ok(Bytes::new());
        };
        let available = (self.size - start) as usize;
        // One read in the common case; a second only when the first batch alone is larger
        // than `max_bytes` (KIP-74: it is returned whole).
        let mut buf = self.read_at(start, max_bytes.max(HEADER_LEN).min(available))?;
        if let Ok(first) = BatchHeader::parse(&buf) {
            let first_len = first.total_len().min(available);
            if first_len > buf.len() {
                buf = self.read_at(start, first_len)?;
            }
        }
        // Keep only complete batches below the limit (the high watermark).
        let mut keep = 0;
        for (header, bytes) in batch::BatchIter::new(buf.clone()) {
            if header.next_offset() > limit_offset {
                break;
            }
            keep += bytes.len();
        }
        Ok(buf.slice(..keep))
    }

    /// `len` bytes from `position`, read into a buffer that is not zeroed first.
    fn read_at(&self, position: u64, len: usize) -> io::Result<Bytes> {
        let mut buf = Vec::with_capacity(len);
        while buf.len() < len {
            let at = position + buf.len() as u64;
            match rustix::io::pread(&*self.file, rustix::buffer::spare_capacity(&mut buf), at) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
        // The allocation may hold more than asked for, and the file more than is appended.
        buf.truncate(len);
        Ok(Bytes::from(buf))
    }

    fn headers_from(&self, position: u64) -> HeaderWalk<'_> {
        HeaderWalk {
            file: &self.file,
            position,
            end: self.size,
        }
    }

    /// Position from which to scan for `offset`, per the sparse index.
    fn scan_start(&self, offset: i64) -> u64 {
        let relative = (offset - self.base_offset).max(0) as u32;
        self.offset_index
            .lookup(relative)
            .map_or(0, |e| e.position as u64)
    }

    /// File position of the batch containing `offset`, or `None` if it is past the end.
    fn find_position(&self, offset: i64) -> io::Result<Option<u64>> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        // Fetches usually ask for the offset a batch starts at, and with batches at least
        // `index.interval.bytes` long every batch has an index entry: no scan then.
        let relative = (offset - self.base_offset).max(0) as u32;
        let floor = self.offset_index.lookup(relative);
        if let Some(entry) = floor.filter(|e| e.relative_offset == relative) {
            return Ok(Some(entry.position as u64));
        }
        for entry in self.headers_from(floor.map_or(0, |e| e.position as u64)) {
            let (position, header) = entry?;
            if header.last_offset() >= offset {
                return Ok(Some(position));
            }
        }
        Ok(None)
    }

    /// The first record at or after `min_offset` whose timestamp is at or after
    /// `timestamp`, as `(offset, timestamp)`: ListOffsets' answer, which is an exact
    /// record offset, also inside a batch. Only the batch that holds it is decoded.
    pub fn find_by_timestamp(
        &self,
        timestamp: i64,
        min_offset: i64,
    ) -> io::Result<Option<(i64, i64)>> {
        if self.max_timestamp < timestamp {
            return Ok(None);
        }
        let start_offset = self
            .time_index
            .lookup(timestamp)
            .map_or(self.base_offset, |e| {
                self.base_offset + e.relative_offset as i64
            })
            .max(min_offset);
        for entry in self.headers_from(self.scan_start(start_offset)) {
            let (position, header) = entry?;
            if header.max_timestamp < timestamp || header.last_offset() < min_offset {
                continue;
            }
            if let Some(found) =
                self.record_by_timestamp(position, &header, timestamp, min_offset)?
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Within the batch at `position`: the first record at or after `min_offset` with a
    /// timestamp at or after `timestamp`. Every record of a LogAppendTime batch carries
    /// the batch's timestamp. A batch whose records cannot be decoded (compressed
    /// batches are stored as received) answers with its first offset and its timestamp.
    fn record_by_timestamp(
        &self,
        position: u64,
        header: &BatchHeader,
        timestamp: i64,
        min_offset: i64,
    ) -> io::Result<Option<(i64, i64)>> {
        let whole_batch = (header.base_offset.max(min_offset), header.max_timestamp);
        if header.is_log_append_time() {
            return Ok(Some(whole_batch));
        }
        let mut bytes = vec![0u8; header.total_len()];
        self.file.read_exact_at(&mut bytes, position)?;
        let mut buf = Bytes::from(bytes);
        match kafka_protocol::records::RecordBatchDecoder::decode(&mut buf) {
            Ok(set) => Ok(set
                .records
                .iter()
                .find(|r| r.timestamp >= timestamp && r.offset >= min_offset)
                .map(|r| (r.offset, r.timestamp))),
            Err(error) => {
                tracing::warn!(
                    segment = %self.log_path.display(),
                    offset = header.base_offset,
                    %error,
                    "batch records undecodable: answering the batch's first offset"
                );
                Ok(Some(whole_batch))
            }
        }
    }

    /// The first record holding this segment's greatest timestamp (ListOffsets -3).
    pub fn max_timestamp_offset(&self, min_offset: i64) -> io::Result<Option<(i64, i64)>> {
        if self.max_timestamp < 0 {
            return Ok(None);
        }
        self.find_by_timestamp(self.max_timestamp, min_offset)
    }

    /// Cuts the segment so that it ends just before `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> io::Result<()> {
        let Some(position) = self.find_position(offset)? else {
            return Ok(());
        };
        self.file.set_len(position)?;
        self.size = position;
        self.offset_index.truncate_to_position(position as u32);
        self.time_index
            .truncate_after((offset - self.base_offset).max(0) as u32);
        // Recompute end offset and max timestamp from what is left.
        self.next_offset = self.base_offset;
        self.max_timestamp = -1;
        self.bytes_since_index_entry = 0;
        let remaining: Vec<BatchHeader> = self
            .headers_from(0)
            .map(|entry| entry.map(|(_, header)| header))
            .collect::<io::Result<_>>()?;
        for header in remaining {
            self.next_offset = header.next_offset();
            self.max_timestamp = self.max_timestamp.max(header.max_timestamp);
        }
        Ok(())
    }

    /// The segment's log file, for flush jobs (the indexes are derived data, rebuilt when
    /// the segment is opened, so they are never forced to disk).
    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    /// Deletes the segment's files.
    pub fn delete(self) -> io::Result<()> {
        std::fs::remove_file(&self.log_path)?;
        self.offset_index.delete()?;
        self.time_index.delete()
    }

    /// The segment's log file.
    pub fn path(&self) -> &Path {
        &self.log_path
    }

    /// First offset the segment may hold.
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Offset just past the last batch.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Bytes in the log file.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Largest record timestamp in the segment, -1 when empty.
    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }

    /// When this segment was created or opened, for `segment.ms` rolls.
    pub fn age(&self) -> std::time::Duration {
        self.created.elapsed()
    }

    /// Whether appending `len` bytes at `offset_delta` past the base would overflow the
    /// 32-bit relative offsets or positions the indexes use.
    pub fn would_overflow(&self, last_offset: i64, len: usize) -> bool {
        last_offset - self.base_offset > u32::MAX as i64 || self.size + len as u64 > u32::MAX as u64
    }
}
