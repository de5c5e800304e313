//! The controller's metadata store on Kubernetes: one ConfigMap per cluster
//! (`<cluster>-metadata`), its `image.json` the metadata image and its
//! `tributary.dev/controller-epoch` annotation the epoch of the last claim.
//!
//! Every write is a replace conditional on the `resourceVersion` this store last read or
//! wrote, so etcd decides between racing controllers: a claim changes the resourceVersion,
//! which fences every earlier holder's next save. One object per cluster keeps a claim and
//! a save to one conditional write each; its limit is the API server's object size (1 MiB
//! of data), about 9,000 partitions at three replicas.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, PostParams};
use tributary_controller::store::{Claimed, MetadataStore, StoreError};
use tributary_metadata::MetadataImage;

/// The ConfigMap key holding the image.
pub const IMAGE_KEY: &str = "image.json";
/// The annotation holding the controller epoch of the last claim.
pub const EPOCH_ANNOTATION: &str = "tributary.dev/controller-epoch";

/// How often a claim retries when another claim races it.
const CLAIM_ATTEMPTS: usize = 5;

/// What this handle claimed and last wrote.
#[derive(Debug, Clone)]
struct Held {
    controller_epoch: u64,
    resource_version: String,
    image_version: u64,
}

/// A metadata store in one ConfigMap.
#[derive(Debug)]
pub struct KubeMetadataStore {
    api: Api<ConfigMap>,
    name: String,
    labels: BTreeMap<String, String>,
    owner: Option<OwnerReference>,
    held: Mutex<Option<Held>>,
}

impl KubeMetadataStore {
    /// A store in ConfigMap `name` of `api`'s namespace, carrying `labels` and `owner` (so
    /// deleting the cluster deletes its metadata).
    pub fn new(
        api: Api<ConfigMap>,
        name: impl Into<String>,
        labels: BTreeMap<String, String>,
        owner: Option<OwnerReference>,
    ) -> Self {
        KubeMetadataStore {
            api,
            name: name.into(),
            labels,
            owner,
            held: Mutex::new(None),
        }
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Option<Held>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn object(
        &self,
        image: &MetadataImage,
        epoch: u64,
        resource_version: Option<String>,
    ) -> Result<ConfigMap, StoreError> {
        let json = serde_json::to_string(image).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                labels: Some(self.labels.clone()),
                annotations: Some(BTreeMap::from([(
                    EPOCH_ANNOTATION.to_string(),
                    epoch.to_string(),
                )])),
                owner_references: self.owner.clone().map(|o| vec![o]),
                resource_version,
                ..Default::default()
            },
            data: Some(BTreeMap::from([(IMAGE_KEY.to_string(), json)])),
            ..Default::default()
        })
    }
}

/// The image and epoch a stored ConfigMap holds.
fn decode(map: &ConfigMap) -> Result<(MetadataImage, u64), StoreError> {
    let json = map
        .data
        .as_ref()
        .and_then(|data| data.get(IMAGE_KEY))
        .ok_or_else(|| StoreError::Corrupt(format!("no {IMAGE_KEY} in the metadata ConfigMap")))?;
    let image = serde_json::from_str(json).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let epoch = map
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(EPOCH_ANNOTATION))
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    Ok((image, epoch))
}

fn is_conflict(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status) if status.code == 409)
}

fn backend(error: kube::Error) -> StoreError {
    StoreError::Backend(error.to_string())
}

#[async_trait]
impl MetadataStore for KubeMetadataStore {
    async fn claim(&self) -> Result<Claimed, StoreError> {
        for _ in 0..CLAIM_ATTEMPTS {
            let (image, controller_epoch, written) =
                match self.api.get_opt(&self.name).await.map_err(backend)? {
                    None => {
                        let image = MetadataImage::default();
                        let object = self.object(&image, 1, None)?;
                        match self.api.create(&PostParams::default(), &object).await {
                            Ok(written) => (image, 1, written),
                            Err(e) if is_conflict(&e) => continue,
                            Err(e) => return Err(backend(e)),
                        }
                    }
                    Some(stored) => {
                        let (image, epoch) = decode(&stored)?;
                        let object =
                            self.object(&image, epoch + 1, stored.metadata.resource_version)?;
                        match self
                            .api
                            .replace(&self.name, &PostParams::default(), &object)
                            .await
                        {
                            Ok(written) => (image, epoch + 1, written),
                            Err(e) if is_conflict(&e) => continue,
                            Err(e) => return Err(backend(e)),
                        }
                    }
                };
            *self.held() = Some(Held {
                controller_epoch,
                resource_version: written.metadata.resource_version.unwrap_or_default(),
                image_version: image.version,
            });
            return Ok(Claimed {
                image,
                controller_epoch,
            });
        }
        Err(StoreError::Backend(format!(
            "claiming ConfigMap {} lost {CLAIM_ATTEMPTS} races in a row",
            self.name
        )))
    }

    async fn save(&self, image: &MetadataImage, expected_version: u64) -> Result<(), StoreError> {
        let Some(held) = self.held().clone() else {
            return Err(StoreError::Backend("the store was never claimed".into()));
        };
        let conflict = |found: String| StoreError::Conflict {
            expected: expected_version,
            epoch: held.controller_epoch,
            found,
        };
        if held.image_version != expected_version {
            return Err(conflict(format!("version {}", held.image_version)));
        }
        let object = self.object(
            image,
            held.controller_epoch,
            Some(held.resource_version.clone()),
        )?;
        let written = match self
            .api
            .replace(&self.name, &PostParams::default(), &object)
            .await
        {
            Ok(written) => written,
            Err(e) if is_conflict(&e) => {
                return Err(conflict(
                    "a newer write (another controller claimed the store)".into(),
                ))
            }
            Err(e) => return Err(backend(e)),
        };
        *self.held() = Some(Held {
            resource_version: written.metadata.resource_version.unwrap_or_default(),
            image_version: image.version,
            ..held
        });
        Ok(())
    }
}
