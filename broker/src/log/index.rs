//! Sparse offset and time indexes for one segment.
//!
//! Both use Kafka's on-disk entry layout (big-endian, offsets relative to the segment's
//! base offset) and are append-only. They are derived data: opening a segment rebuilds
//! them from its batch headers, so a missing or damaged index can never be served.

use std::io;
use std::path::{Path, PathBuf};

/// One offset-index entry: the first batch at or after `relative_offset` starts at `position`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

/// One time-index entry: batches up to `relative_offset` have timestamps up to `timestamp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

/// An entry of an index file: fixed-size and big-endian on disk, with keys that strictly
/// increase from one entry to the next.
pub trait IndexEntry: Copy {
    /// Bytes per entry on disk.
    const SIZE: usize;
    /// Whether this entry advances every key past `last` (a sparse index skips the rest).
    fn follows(&self, last: &Self) -> bool;
    /// Writes the entry's on-disk form into `buf` (`SIZE` bytes).
    fn encode(&self, buf: &mut [u8]);
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;

    fn follows(&self, last: &Self) -> bool {
        self.relative_offset > last.relative_offset && self.position > last.position
    }

    fn encode(&self, buf: &mut [u8]) {
        buf[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        buf[4..8].copy_from_slice(&self.position.to_be_bytes());
    }
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;

    fn follows(&self, last: &Self) -> bool {
        self.timestamp > last.timestamp && self.relative_offset > last.relative_offset
    }

    fn encode(&self, buf: &mut [u8]) {
        buf[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        buf[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
    }
}

/// A sparse index, kept in memory, with its file.
///
/// The file is derived data, never read back: opening a segment rebuilds its indexes from
/// the batch headers anyway. It is written whole when the segment is opened, rolls or is
/// shut down cleanly ([`IndexFile::persist`]), so that Kafka's tools find Kafka's layout,
/// and appends never touch it: no write per entry, and no descriptor held open per index
/// (a broker with tens of thousands of partitions would otherwise need three per segment).
#[derive(Debug)]
pub struct IndexFile<E> {
    path: PathBuf,
    entries: Vec<E>,
}

/// Sparse mapping from offsets to file positions, one entry every `index.interval.bytes`.
pub type OffsetIndex = IndexFile<OffsetEntry>;

/// Sparse mapping from timestamps to offsets, for ListOffsets by time.
pub type TimeIndex = IndexFile<TimeEntry>;

impl<E: IndexEntry> IndexFile<E> {
    /// An empty index whose file is `path` (written by [`IndexFile::persist`]).
    pub fn new(path: &Path) -> Self {
        IndexFile {
            path: path.to_path_buf(),
            entries: Vec::new(),
        }
    }

    /// Appends `entry` if it advances every key; otherwise the sparse index skips it.
    fn push(&mut self, entry: E) {
        if self.entries.last().is_none_or(|last| entry.follows(last)) {
            self.entries.push(entry);
        }
    }

    /// Keeps the first `keep` entries.
    pub(super) fn truncate(&mut self, keep: usize) {
        self.entries.truncate(keep);
    }

    /// Writes the entries to the index file in Kafka's on-disk layout, replacing it.
    pub fn persist(&self) -> io::Result<()> {
        let mut bytes = vec![0u8; self.entries.len() * E::SIZE];
        for (entry, slot) in self.entries.iter().zip(bytes.chunks_exact_mut(E::SIZE)) {
            entry.encode(slot);
        }
        std::fs::write(&self.path, bytes)
    }

    /// Removes the index file (if it was ever written).
    pub fn delete(self) -> io::Result<()> {
        match std::fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Number of entries (for tests and metrics).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The last entry.
    pub fn last(&self) -> Option<E> {
        self.entries.last().copied()
    }
}

impl OffsetIndex {
    /// Records that the batch starting at `position` begins with `relative_offset`.
    pub fn append(&mut self, relative_offset: u32, position: u32) {
        self.push(OffsetEntry {
            relative_offset,
            position,
        })
    }

    /// The entry with the greatest offset not above `relative_offset`: where a scan starts.
    pub fn lookup(&self, relative_offset: u32) -> Option<OffsetEntry> {
        let idx = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        idx.checked_sub(1).map(|i| self.entries[i])
    }

    /// Drops entries at or beyond `position` (used when the segment is truncated).
    pub fn truncate_to_position(&mut self, position: u32) {
        let keep = self.entries.partition_point(|e| e.position < position);
        self.truncate(keep)
    }
}

impl TimeIndex {
    /// Records a new maximum timestamp reached by the batch ending at `relative_offset`.
    pub fn maybe_append(&mut self, timestamp: i64, relative_offset: u32) {
        self.push(TimeEntry {
            timestamp,
            relative_offset,
        })
    }

    /// The greatest entry whose timestamp is below `timestamp`: batches before it cannot
    /// contain a record at or after `timestamp`, so a search may start there.
    pub fn lookup(&self, timestamp: i64) -> Option<TimeEntry> {
        let idx = self.entries.partition_point(|e| e.timestamp < timestamp);
        idx.checked_sub(1).map(|i| self.entries[i])
    }

    /// Drops entries beyond `relative_offset` (used when the segment is truncated).
    pub fn truncate_after(&mut self, relative_offset: u32) {
        let keep = self
            .entries
            .partition_point(|e| e.relative_offset < relative_offset);
        self.truncate(keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_floor_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut index = OffsetIndex::new(&path);
        index.append(0, 0);
        index.append(10, 4096);
        index.append(20, 8192);
        index.append(15, 9000); // not monotonic: ignored
        assert_eq!(index.lookup(0).unwrap().position, 0);
        assert_eq!(index.lookup(15).unwrap().position, 4096);
        assert_eq!(index.lookup(25).unwrap().position, 8192);
        assert!(!path.exists(), "written only when persisted");
        index.persist().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), 24);
        assert_eq!(&bytes[8..16], &[0, 0, 0, 10, 0, 0, 16, 0], "Kafka's layout");
    }

    #[test]
    fn truncation_and_garbage_are_handled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.index");
        let mut index = OffsetIndex::new(&path);
        index.append(0, 0);
        index.append(10, 4096);
        index.persist().unwrap();
        index.truncate_to_position(4096);
        assert_eq!(index.len(), 1);
        index.persist().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 8);
        index.delete().unwrap();
        assert!(!path.exists());
    }

    #[test]
    fn time_lookup_finds_last_entry_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.timeindex");
        let mut index = TimeIndex::new(&path);
        index.maybe_append(100, 0);
        index.maybe_append(200, 5);
        index.maybe_append(150, 6); // not a new maximum
        assert!(index.lookup(100).is_none());
        assert_eq!(index.lookup(150).unwrap().relative_offset, 0);
        assert_eq!(index.lookup(300).unwrap().relative_offset, 5);
        assert_eq!(index.last().unwrap().timestamp, 200);
        index.truncate_after(5);
        assert_eq!(index.last().unwrap().timestamp, 100);
    }
}
