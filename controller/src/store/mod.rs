//! Where the controller keeps the metadata image of record.
//!
//! A store is claimed by one controller at a time: [`MetadataStore::claim`] loads the last
//! image and starts a new controller epoch, which fences the previous holder, and
//! [`MetadataStore::save`] is conditional on the version the controller last saw, so two
//! controllers can never interleave their changes. The local file store and the Kubernetes
//! API store are the two implementations; the controller does not know which it has.

mod file;
mod memory;

use async_trait::async_trait;
use thiserror::Error;
use tributary_metadata::MetadataImage;

pub use file::FileMetadataStore;
pub use memory::MemoryMetadataStore;

/// What a controller starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The last saved image (the empty image of version 0 for a new store).
    pub image: MetadataImage,
    /// This controller's epoch: higher than every earlier claim's.
    pub controller_epoch: u64,
}

/// Why a store operation failed.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The stored image is not the version the controller expected, or another controller
    /// has claimed the store since: this controller must stop deciding.
    #[error("metadata store conflict: expected version {expected} in controller epoch {epoch}, found {found}")]
    Conflict {
        expected: u64,
        epoch: u64,
        found: String,
    },
    /// The stored image cannot be read.
    #[error("stored metadata is unreadable: {0}")]
    Corrupt(String),
    /// The backing storage failed.
    #[error("metadata store I/O failed: {0}")]
    Io(#[from] std::io::Error),
    /// The remote backend (the Kubernetes API) failed.
    #[error("metadata store backend failed: {0}")]
    Backend(String),
}

/// Durable, exclusively held storage for the metadata image.
#[async_trait]
pub trait MetadataStore: Send + Sync + std::fmt::Debug {
    /// Claims the store for a new controller: the last image and a new controller epoch.
    async fn claim(&self) -> Result<Claimed, StoreError>;

    /// Saves `image` durably, only if the stored image is still `expected_version` and no
    /// later controller has claimed the store. Returns once the image would survive a
    /// crash.
    async fn save(&self, image: &MetadataImage, expected_version: u64) -> Result<(), StoreError>;
}

#[cfg(any(test, feature = "store-contract"))]
pub mod contract {
    //! The behaviour every store implementation must show.

    use super::*;

    /// Runs the store contract against a fresh store from `open` (a second `open` of the
    /// same backing storage stands for a second controller).
    #[allow(clippy::unwrap_used)]
    pub async fn check<S: MetadataStore>(open: impl Fn() -> S) {
        let first = open();
        let claimed = first.claim().await.unwrap();
        assert_eq!(claimed.image, MetadataImage::default());
        let epoch = claimed.controller_epoch;
        let mut image = MetadataImage {
            cluster_id: "c".into(),
            ..Default::default()
        };
        first.save(&image, 0).await.unwrap();
        image.version = 1;
        first.save(&image, 0).await.unwrap();
        image.version = 2;
        let stale = first.save(&image, 0).await;
        assert!(
            matches!(stale, Err(StoreError::Conflict { .. })),
            "{stale:?}"
        );
        first.save(&image, 1).await.unwrap();

        let second = open();
        let reclaimed = second.claim().await.unwrap();
        assert_eq!(reclaimed.image, image);
        assert!(reclaimed.controller_epoch > epoch);
        image.version = 3;
        let fenced = first.save(&image, 2).await;
        assert!(
            matches!(fenced, Err(StoreError::Conflict { .. })),
            "{fenced:?}"
        );
        second.save(&image, 2).await.unwrap();
        assert_eq!(open().claim().await.unwrap().image.version, 3);
    }
}
