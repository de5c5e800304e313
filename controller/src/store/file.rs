//! The local metadata store: the image as `metadata.json` and the controller epoch as
//! `controller-epoch`, both in one directory, each replaced atomically (write, fsync,
//! rename, fsync the directory). It serves a standalone broker's embedded controller and
//! `tributary-operator local`.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use tributary_metadata::MetadataImage;

use super::{Claimed, MetadataStore, StoreError};

const IMAGE_FILE: &str = "metadata.json";
const EPOCH_FILE: &str = "controller-epoch";
const LOCK_FILE: &str = ".lock";

/// Runs `f` holding an exclusive lock on the store's directory, so a claim by another
/// process cannot fall between a save's epoch check and its write.
fn with_dir_lock<T>(
    dir: &Path,
    f: impl FnOnce() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(LOCK_FILE))?;
    lock.lock()?;
    let result = f();
    drop(lock);
    result
}

/// A metadata store in a local directory.
#[derive(Debug)]
pub struct FileMetadataStore {
    dir: PathBuf,
    /// What this handle claimed and last saved: (controller epoch, image version).
    held: Mutex<Option<(u64, u64)>>,
}

impl FileMetadataStore {
    /// A store in `dir` (created on first claim).
    pub fn new(dir: &Path) -> Self {
        FileMetadataStore {
            dir: dir.to_path_buf(),
            held: Mutex::new(None),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<(u64, u64)>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Replaces `path` with `data` so that a crash leaves either the old or the new file.
fn replace_durably(path: &Path, data: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, data)?;
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

fn read_epoch(dir: &Path) -> io::Result<u64> {
    match fs::read_to_string(dir.join(EPOCH_FILE)) {
        Ok(text) => Ok(text.trim().parse().unwrap_or(0)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(e) => Err(e),
    }
}

fn read_image(dir: &Path) -> Result<MetadataImage, StoreError> {
    match fs::read(dir.join(IMAGE_FILE)) {
        Ok(data) => serde_json::from_slice(&data).map_err(|e| StoreError::Corrupt(e.to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(MetadataImage::default()),
        Err(e) => Err(e.into()),
    }
}

fn claim_blocking(dir: &Path) -> Result<Claimed, StoreError> {
    fs::create_dir_all(dir)?;
    let image = read_image(dir)?;
    let controller_epoch = read_epoch(dir)? + 1;
    replace_durably(
        &dir.join(EPOCH_FILE),
        controller_epoch.to_string().as_bytes(),
    )?;
    Ok(Claimed {
        image,
        controller_epoch,
    })
}

#[async_trait]
impl MetadataStore for FileMetadataStore {
    async fn claim(&self) -> Result<Claimed, StoreError> {
        let dir = self.dir.clone();
        let claimed = tokio::task::spawn_blocking(move || claim_blocking(&dir))
            .await
            .map_err(|e| StoreError::Backend(e.to_string()))??;
        *self.held() = Some((claimed.controller_epoch, claimed.image.version));
        Ok(claimed)
    }

    async fn save(&self, image: &MetadataImage, expected_version: u64) -> Result<(), StoreError> {
        let Some((epoch, version)) = *self.held() else {
            return Err(StoreError::Backend("the store was not claimed".into()));
        };
        if version != expected_version {
            return Err(StoreError::Conflict {
                expected: expected_version,
                epoch,
                found: format!("version {version}"),
            });
        }
        let data = serde_json::to_vec_pretty(image).map_err(io::Error::other)?;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            with_dir_lock(&dir, || {
                let current = read_epoch(&dir)?;
                if current != epoch {
                    return Err(StoreError::Conflict {
                        expected: expected_version,
                        epoch,
                        found: format!("controller epoch {current}"),
                    });
                }
                replace_durably(&dir.join(IMAGE_FILE), &data)?;
                Ok(())
            })
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))??;
        *self.held() = Some((epoch, image.version));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_file_store_keeps_the_contract() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("controller");
        super::super::contract::check(|| FileMetadataStore::new(&path)).await;
        assert!(path.join(IMAGE_FILE).exists());
        assert_eq!(read_epoch(&path).unwrap(), 3);
    }

    #[tokio::test]
    async fn an_unreadable_image_is_reported_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(IMAGE_FILE), b"{ not json").unwrap();
        let claimed = FileMetadataStore::new(dir.path()).claim().await;
        assert!(
            matches!(claimed, Err(StoreError::Corrupt(_))),
            "{claimed:?}"
        );
    }
}
