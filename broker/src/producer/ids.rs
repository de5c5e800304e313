//! Producer id allocation for InitProducerId.
//!
//! Ids are handed out from blocks whose upper bound is persisted before any id in the block
//! is used, so a restarted broker never reissues an id (mirroring Kafka's ProducerIdsRecord).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

const BLOCK_SIZE: i64 = 1000;

/// Allocates unique, never-reused producer ids.
#[derive(Debug)]
pub struct ProducerIdAllocator {
    path: PathBuf,
    next: i64,
    block_end: i64,
}

impl ProducerIdAllocator {
    /// Loads the allocator state from `dir`, starting a fresh block.
    pub fn open(dir: &Path) -> io::Result<Self> {
        let path = dir.join("producer-id-block");
        let start = match fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<i64>().unwrap_or(0),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        let mut allocator = ProducerIdAllocator {
            path,
            next: start,
            block_end: start,
        };
        allocator.reserve_block()?;
        Ok(allocator)
    }

    fn reserve_block(&mut self) -> io::Result<()> {
        let end = self.next + BLOCK_SIZE;
        let tmp = self.path.with_extension("tmp");
        fs::write(&tmp, end.to_string())?;
        fs::File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        self.block_end = end;
        Ok(())
    }

    /// The next unused producer id.
    pub fn allocate(&mut self) -> io::Result<i64> {
        if self.next >= self.block_end {
            self.reserve_block()?;
        }
        let id = self.next;
        self.next += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_never_reused_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = ProducerIdAllocator::open(dir.path()).unwrap();
        let first: Vec<i64> = (0..1500).map(|_| a.allocate().unwrap()).collect();
        drop(a);
        let mut b = ProducerIdAllocator::open(dir.path()).unwrap();
        let next = b.allocate().unwrap();
        assert!(next > *first.iter().max().unwrap());
    }
}
