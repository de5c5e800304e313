//! A metadata store in memory, shared by handles cloned from one another: for tests of the
//! controller and for hosts that keep no state across restarts.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tributary_metadata::MetadataImage;

use super::{Claimed, MetadataStore, StoreError};

#[derive(Debug, Default)]
struct Stored {
    image: MetadataImage,
    controller_epoch: u64,
}

/// An in-memory store; clones share the stored image, each clone is one controller.
#[derive(Debug, Default)]
pub struct MemoryMetadataStore {
    stored: Arc<Mutex<Stored>>,
    claimed_epoch: Mutex<u64>,
}

impl Clone for MemoryMetadataStore {
    fn clone(&self) -> Self {
        MemoryMetadataStore {
            stored: self.stored.clone(),
            claimed_epoch: Mutex::new(0),
        }
    }
}

impl MemoryMetadataStore {
    fn stored(&self) -> std::sync::MutexGuard<'_, Stored> {
        self.stored.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl MetadataStore for MemoryMetadataStore {
    async fn claim(&self) -> Result<Claimed, StoreError> {
        let mut stored = self.stored();
        stored.controller_epoch += 1;
        *self.claimed_epoch.lock().unwrap_or_else(|p| p.into_inner()) = stored.controller_epoch;
        Ok(Claimed {
            image: stored.image.clone(),
            controller_epoch: stored.controller_epoch,
        })
    }

    async fn save(&self, image: &MetadataImage, expected_version: u64) -> Result<(), StoreError> {
        let epoch = *self.claimed_epoch.lock().unwrap_or_else(|p| p.into_inner());
        let mut stored = self.stored();
        if stored.controller_epoch != epoch || stored.image.version != expected_version {
            return Err(StoreError::Conflict {
                expected: expected_version,
                epoch,
                found: format!(
                    "version {} in controller epoch {}",
                    stored.image.version, stored.controller_epoch
                ),
            });
        }
        stored.image = image.clone();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_memory_store_keeps_the_contract() {
        let shared = MemoryMetadataStore::default();
        super::super::contract::check(|| shared.clone()).await;
    }
}
