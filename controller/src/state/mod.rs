//! The controller's state machine: every cluster metadata change, as a function from the
//! current image to the next. Nothing here does I/O; [`crate::service`] persists each new
//! image before publishing it or answering the request that caused it.
//!
//! One file per thing the controller manages: `brokers` (registration, sessions,
//! fencing), `topics` (topics and partitions), `isr` (AlterPartition), `leadership`
//! (ElectLeaders and preferred-leader rebalancing), `configs` (dynamic configs) and
//! `producer_ids` (producer-id blocks).

mod brokers;
mod configs;
mod isr;
mod leadership;
mod producer_ids;
mod topics;

use std::collections::BTreeMap;

use tributary_metadata::image::new_cluster_id;
use tributary_metadata::topic_config::ConfigLayers;
use tributary_metadata::{ApiError, BrokerInfo, MetadataImage, ResponseError, TopicMeta};

pub use brokers::RECONNECT_GRACE_MS;
pub use producer_ids::PRODUCER_ID_BLOCK;

/// Controller settings.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// A broker that has not heartbeaten for this long is fenced.
    pub session_timeout_ms: u64,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    /// Broker-level defaults for topic configs (e.g. `min.insync.replicas`).
    pub broker_defaults: BTreeMap<String, String>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig::from_settings(&BTreeMap::new())
    }
}

impl ControllerConfig {
    /// The controller's settings from broker settings by their Kafka names
    /// (`broker.session.timeout.ms`, `num.partitions`, `default.replication.factor`); all
    /// of them are also the broker-level defaults of topic configs. Every host of the
    /// controller (an embedded one, the local launcher, the operator) derives it here.
    pub fn from_settings(settings: &BTreeMap<String, String>) -> Self {
        let number = |key: &str, default: i64| {
            settings
                .get(key)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(default)
        };
        ControllerConfig {
            session_timeout_ms: number("broker.session.timeout.ms", 1000).max(100) as u64,
            num_partitions: number("num.partitions", 1).clamp(1, i32::MAX as i64) as i32,
            default_replication_factor: number("default.replication.factor", 1)
                .clamp(1, i16::MAX as i64) as i16,
            broker_defaults: settings.clone(),
        }
    }
}

/// The outcome of one operation: the reply for whoever asked, and the image to commit
/// when the operation changed anything. The reply may be shown only once the image is
/// persisted.
#[derive(Debug)]
#[must_use = "a change must be committed (or dropped deliberately)"]
pub struct Change<T> {
    pub reply: T,
    pub image: Option<MetadataImage>,
}

impl<T> Change<T> {
    /// A reply that changed nothing.
    pub fn unchanged(reply: T) -> Self {
        Change { reply, image: None }
    }

    /// A reply that becomes true with `image`.
    pub fn to(reply: T, image: MetadataImage) -> Self {
        Change {
            reply,
            image: Some(image),
        }
    }

    /// A reply that becomes true with `image`, if there is one.
    pub fn maybe(reply: T, image: Option<MetadataImage>) -> Self {
        Change { reply, image }
    }
}

impl<T> Change<Result<T, ApiError>> {
    /// A refusal: an error reply, no change.
    pub fn refused(error: ApiError) -> Self {
        Change::unchanged(Err(error))
    }
}

impl Change<Result<(), ApiError>> {
    /// The outcome of an admin request that may be only validated: a valid `next` image
    /// is committed unless `validate_only`.
    pub fn validated(next: Result<MetadataImage, ApiError>, validate_only: bool) -> Self {
        match next {
            Ok(next) if !validate_only => Change::to(Ok(()), next),
            Ok(_) => Change::unchanged(Ok(())),
            Err(e) => Change::refused(e),
        }
    }
}

/// Cluster metadata plus broker sessions.
#[derive(Debug)]
pub struct ControllerState {
    image: MetadataImage,
    /// Session deadlines (controller clock, ms) of unfenced brokers.
    sessions: BTreeMap<i32, u64>,
    /// When (controller clock, ms) each unfenced broker was last unfenced.
    live_since: BTreeMap<i32, u64>,
    /// When (controller clock, ms) the controller last heard from any broker.
    last_heard_ms: u64,
    config: ControllerConfig,
}

impl ControllerState {
    /// Starts from a persisted image. Unfenced brokers get a full session of grace, so a
    /// controller restart does not fence brokers that keep heartbeating.
    pub fn new(mut image: MetadataImage, config: ControllerConfig, now_ms: u64) -> Self {
        if image.cluster_id.is_empty() {
            image.cluster_id = new_cluster_id();
        }
        let sessions = image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| (b.id, now_ms + config.session_timeout_ms))
            .collect();
        let live_since = image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| (b.id, now_ms))
            .collect();
        ControllerState {
            image,
            sessions,
            live_since,
            last_heard_ms: now_ms,
            config,
        }
    }

    /// The current (committed) image.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// Replaces the configuration (cluster-wide broker settings changed); it applies to
    /// the changes that follow.
    pub fn set_config(&mut self, config: ControllerConfig) {
        self.config = config;
    }

    /// Installs a committed image.
    pub fn set_image(&mut self, image: MetadataImage) {
        self.image = image;
    }

    /// The controller's settings.
    pub fn config(&self) -> &ControllerConfig {
        &self.config
    }

    /// A copy of the current image with the next version, to build a change on.
    fn next_image(&self) -> MetadataImage {
        let mut next = self.image.clone();
        next.version += 1;
        next
    }

    /// The registered broker, if `broker_epoch` is its current registration.
    fn check_epoch(&self, broker_id: i32, broker_epoch: i64) -> Result<&BrokerInfo, ApiError> {
        match self.image.brokers.get(&broker_id) {
            Some(b) if b.epoch == broker_epoch => Ok(b),
            _ => Err(ApiError::new(
                ResponseError::StaleBrokerEpoch,
                format!("broker {broker_id} epoch {broker_epoch} is not current"),
            )),
        }
    }

    /// Whether `topic` may elect an out-of-sync leader
    /// (`unclean.leader.election.enable`, resolved over the cluster's config layers).
    fn unclean_allowed(&self, image: &MetadataImage, topic: &TopicMeta) -> bool {
        ConfigLayers {
            topic: Some(&topic.configs),
            broker: None,
            cluster_default: Some(&image.cluster_configs),
            static_broker: Some(&self.config.broker_defaults),
        }
        .value_bool("unclean.leader.election.enable")
    }
}

/// Shared fixtures of the state machine's tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::BTreeMap;

    use tributary_metadata::rpc::{IsrChange, Registration, TopicSpec};
    use tributary_metadata::MetadataImage;
    use uuid::Uuid;

    use super::{Change, ControllerConfig, ControllerState};

    /// A controller with brokers `1..=n`, each in a zone of its own.
    pub fn state_with_brokers(n: i32) -> ControllerState {
        let mut state =
            ControllerState::new(MetadataImage::default(), ControllerConfig::default(), 0);
        for id in 1..=n {
            let change = state.register(
                Registration {
                    broker_id: id,
                    incarnation: Uuid::new_v4(),
                    rack: Some(format!("zone-{id}")),
                    host: "127.0.0.1".into(),
                    port: 9000 + id,
                    cluster_id: None,
                },
                0,
            );
            commit(&mut state, change).unwrap();
        }
        state
    }

    /// A controller with brokers `1..=brokers` and topic `name` created.
    pub fn state_with_topic(brokers: i32, name: &str, partitions: i32, rf: i16) -> ControllerState {
        let mut state = state_with_brokers(brokers);
        let created = state.create_topics(&[spec(name, partitions, rf)], false);
        assert!(commit(&mut state, created)[0].is_ok());
        state
    }

    /// An AlterPartition from the current leader of partition 0 of `topic`, proposing
    /// `new_isr`.
    pub fn isr_change(state: &ControllerState, topic: &str, new_isr: Vec<i32>) -> IsrChange {
        let p = &state.image().topics[topic].partitions[0];
        IsrChange {
            broker_id: p.leader,
            broker_epoch: state.image().brokers[&p.leader].epoch,
            topic: topic.into(),
            partition: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr_epochs: new_isr
                .iter()
                .map(|r| state.image().brokers.get(r).map_or(-1, |b| b.epoch))
                .collect(),
            new_isr,
        }
    }

    /// A topic spec with a partition count and replication factor.
    pub fn spec(name: &str, partitions: i32, rf: i16) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            partitions,
            replication_factor: rf,
            assignments: vec![],
            configs: BTreeMap::new(),
        }
    }

    /// Applies a change's image, as the service does once it is persisted.
    pub fn commit<T>(state: &mut ControllerState, change: Change<T>) -> T {
        if let Some(image) = change.image {
            state.set_image(image);
        }
        change.reply
    }
}
