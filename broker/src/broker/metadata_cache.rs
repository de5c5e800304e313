//! The metadata image as this broker has applied it: what request handlers route by.
//! Handlers read a consistent snapshot (`image()`), and admin requests wait here until the
//! controller's change has reached this broker (`wait_for_version`).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tributary_metadata::topic_config::ConfigLayers;
use tributary_metadata::{BrokerInfo, MetadataImage, TopicMeta};
use uuid::Uuid;

use crate::config::BrokerConfig;

/// The applied metadata image.
#[derive(Debug)]
pub struct MetadataCache {
    image: RwLock<Arc<MetadataImage>>,
    version: watch::Sender<u64>,
}

impl Default for MetadataCache {
    fn default() -> Self {
        MetadataCache {
            image: RwLock::new(Arc::new(MetadataImage::default())),
            version: watch::channel(0).0,
        }
    }
}

impl MetadataCache {
    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `f` on the current image.
    pub fn with_image<R>(&self, f: impl FnOnce(&MetadataImage) -> R) -> R {
        f(&self.image.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Makes `image` current and wakes whoever waits for its version.
    pub fn install(&self, image: MetadataImage) {
        let version = image.version;
        *self.image.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(image);
        self.version.send_replace(version);
    }

    /// Waits until the applied image is at least `version` (after an admin change), so the
    /// client's next Metadata request sees it. Gives up quietly after `timeout`.
    pub async fn wait_for_version(&self, version: u64, timeout: Duration) {
        let mut rx = self.version.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|v| *v >= version)).await;
    }

    /// Topic name for a topic id.
    pub fn topic_name(&self, id: Uuid) -> Option<String> {
        self.with_image(|img| {
            img.topics
                .values()
                .find(|t| t.id == id)
                .map(|t| t.name.clone())
        })
    }

    /// Topic id for a topic name (nil if unknown).
    pub fn topic_id(&self, name: &str) -> Uuid {
        self.with_image(|img| img.topics.get(name).map_or(Uuid::nil(), |t| t.id))
    }

    /// Whether `topic` has a partition `index`.
    pub fn has_partition(&self, topic: &str, index: i32) -> bool {
        self.with_image(|img| {
            img.topics
                .get(topic)
                .is_some_and(|t| index >= 0 && (index as usize) < t.partitions.len())
        })
    }

    /// Every registered broker, fenced or not: the brokers clients are told about. A
    /// fenced broker is listed while its registration stands, so that a client that
    /// refreshed while brokers were briefly down still knows every broker that may come
    /// back; leaderships are only ever given to live brokers.
    pub fn registered_brokers(&self) -> Vec<BrokerInfo> {
        self.with_image(|img| img.brokers.values().cloned().collect())
    }

    /// Live (unfenced) brokers: the ones that may lead, coordinate or receive forwards.
    pub fn live_brokers(&self) -> Vec<BrokerInfo> {
        self.with_image(|img| {
            img.brokers
                .values()
                .filter(|b| !b.fenced)
                .cloned()
                .collect()
        })
    }

    /// The live broker leading partition `index` of `topic`.
    pub fn live_leader(&self, topic: &str, index: i32) -> Option<BrokerInfo> {
        self.with_image(|img| {
            let leader = img
                .topics
                .get(topic)?
                .partitions
                .get(index as usize)?
                .leader;
            img.brokers.get(&leader).filter(|b| !b.fenced).cloned()
        })
    }
}

/// Where a live broker of `image` is reached (`host:port`).
pub fn address_of(image: &MetadataImage, broker: i32) -> Option<String> {
    image
        .brokers
        .get(&broker)
        .filter(|b| !b.fenced)
        .map(|b| format!("{}:{}", b.host, b.port))
}

/// The config layers a topic's settings resolve through on this broker.
pub fn config_layers<'a>(
    config: &'a BrokerConfig,
    image: &'a MetadataImage,
    topic: Option<&'a TopicMeta>,
) -> ConfigLayers<'a> {
    ConfigLayers {
        topic: topic.map(|t| &t.configs),
        broker: image.broker_configs.get(&config.broker_id),
        cluster_default: Some(&image.cluster_configs),
        static_broker: Some(&config.settings),
    }
}
