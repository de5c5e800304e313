//! Shared broker state: the metadata image, the partitions this broker hosts, producer ids
//! and the group coordinator. Request handlers borrow it; it does the I/O they need.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Context, Result};
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;

use crate::config::defs::{self, ConfigLayers, TopicPolicy};
use crate::config::BrokerConfig;
use crate::group::coordinator::GroupCoordinator;
use crate::log::RecoveryMode;
use crate::metadata::{
    self, FileMetadataStore, MetadataImage, MetadataStore, PartitionMeta, TopicMeta,
};
use crate::partition::Partition;
use crate::producer::ids::ProducerIdAllocator;

const CLEAN_SHUTDOWN_MARKER: &str = ".clean-shutdown";

/// Kafka error codes used by topic administration.
pub mod codes {
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const INVALID_CONFIG: i16 = 40;
    pub const INVALID_REQUEST: i16 = 42;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
}

/// A failed admin operation: a Kafka error code and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminError {
    pub code: i16,
    pub message: String,
}

impl AdminError {
    pub fn new(code: i16, message: impl Into<String>) -> Self {
        AdminError {
            code,
            message: message.into(),
        }
    }
}

/// How a topic should be created.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    /// -1: the broker default (`num.partitions`).
    pub partitions: i32,
    /// -1: the broker default (`default.replication.factor`).
    pub replication_factor: i16,
    /// Explicit replica lists per partition, if given.
    pub assignments: Vec<Vec<i32>>,
    pub configs: BTreeMap<String, String>,
}

type PartitionKey = (String, i32);

/// The broker.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    pub cluster_id: String,
    store: Box<dyn MetadataStore>,
    image: RwLock<MetadataImage>,
    partitions: RwLock<HashMap<PartitionKey, Arc<Partition>>>,
    producer_ids: Mutex<ProducerIdAllocator>,
    pub groups: GroupCoordinator,
    /// Bumped after every append, waking long-polling fetches.
    appended: watch::Sender<u64>,
    recovery_mode: RecoveryMode,
}

impl Broker {
    /// Opens the data directory, recovering every partition.
    pub fn open(config: BrokerConfig) -> Result<Arc<Self>> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let cluster_id = crate::config::load_or_init_identity(
            &config.data_dir,
            config.broker_id,
            config.cluster_id.as_deref(),
        )?;
        let state_dir = config.state_dir();
        std::fs::create_dir_all(&state_dir)?;
        let marker = config.data_dir.join(CLEAN_SHUTDOWN_MARKER);
        let recovery_mode = if marker.exists() {
            RecoveryMode::Trust
        } else {
            RecoveryMode::Verify
        };
        let _ = std::fs::remove_file(&marker);
        info!(?recovery_mode, data_dir = %config.data_dir.display(), "opening logs");

        let store = FileMetadataStore::new(&state_dir)?;
        let image = store.load().context("loading metadata")?;
        let producer_ids = ProducerIdAllocator::open(&state_dir)?;
        let groups = GroupCoordinator::open(&state_dir, &config, recovery_mode)?;
        let (appended, _) = watch::channel(0);
        let broker = Arc::new(Broker {
            cluster_id,
            store: Box::new(store),
            image: RwLock::new(image),
            partitions: RwLock::new(HashMap::new()),
            producer_ids: Mutex::new(producer_ids),
            groups,
            appended,
            recovery_mode,
            config,
        });
        broker.open_partitions()?;
        broker.remove_stray_directories();
        Ok(broker)
    }

    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{index}"))
    }

    fn open_partitions(&self) -> Result<()> {
        let image = self.image();
        let mut partitions = self.partitions.write().unwrap_or_else(|p| p.into_inner());
        for topic in image.topics.values() {
            let policy = self.topic_policy(&image, topic);
            for (index, meta) in topic.partitions.iter().enumerate() {
                let index = index as i32;
                if meta.leader != self.config.broker_id {
                    continue;
                }
                let partition = Partition::open(
                    &self.partition_dir(&topic.name, index),
                    &topic.name,
                    index,
                    meta.leader_epoch,
                    policy.clone(),
                    self.recovery_mode,
                )
                .with_context(|| format!("opening partition {}-{index}", topic.name))?;
                partitions.insert((topic.name.clone(), index), Arc::new(partition));
            }
        }
        Ok(())
    }

    /// Deletes partition directories no topic owns (e.g. a deletion interrupted by a crash).
    fn remove_stray_directories(&self) {
        let image = self.image();
        let Ok(entries) = std::fs::read_dir(&self.config.data_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            if !entry.path().is_dir() || name.starts_with("__tributary") {
                continue;
            }
            let partition_key = name
                .rsplit_once('-')
                .and_then(|(t, p)| Some((t.to_string(), p.parse::<i32>().ok()?)));
            let stray = match partition_key {
                Some((topic, index)) => !image
                    .topics
                    .get(&topic)
                    .is_some_and(|t| index >= 0 && (index as usize) < t.partitions.len()),
                None => name.ends_with("-delete"),
            };
            if stray {
                warn!(dir = %name, "removing directory of a deleted topic");
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// A snapshot of the metadata image.
    pub fn image(&self) -> MetadataImage {
        self.image.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `f` on the current image without copying it.
    pub fn with_image<R>(&self, f: impl FnOnce(&MetadataImage) -> R) -> R {
        f(&self.image.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The hosted partition, if this broker leads it.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(topic.to_string(), index))
            .cloned()
    }

    /// Every hosted partition.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
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

    /// Config layers for a topic in `image`.
    pub fn config_layers<'a>(
        &'a self,
        image: &'a MetadataImage,
        topic: Option<&'a TopicMeta>,
    ) -> ConfigLayers<'a> {
        ConfigLayers {
            topic: topic.map(|t| &t.configs),
            broker: image.broker_configs.get(&self.config.broker_id),
            cluster_default: Some(&image.cluster_configs),
            static_broker: Some(&self.config.settings),
        }
    }

    fn topic_policy(&self, image: &MetadataImage, topic: &TopicMeta) -> TopicPolicy {
        self.config_layers(image, Some(topic)).topic_policy()
    }

    /// Signals long-polling fetches that data arrived.
    pub fn notify_appended(&self) {
        self.appended.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Subscribes to append notifications.
    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// A new producer id for InitProducerId.
    pub fn allocate_producer_id(&self) -> std::io::Result<i64> {
        self.producer_ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .allocate()
    }

    /// The live brokers: `(id, host, port, rack)`. Alone, that is this broker.
    pub fn brokers(&self) -> Vec<(i32, String, i32, Option<String>)> {
        vec![(
            self.config.broker_id,
            self.config.advertised_host.clone(),
            self.config.advertised_port,
            self.config.rack.clone(),
        )]
    }

    /// The broker id admin clients send controller requests to.
    pub fn controller_id(&self) -> i32 {
        self.config.broker_id
    }

    /// Persists a new image and then applies it: the store is written before anyone acts.
    fn commit(&self, mut image: MetadataImage) -> Result<(), AdminError> {
        image.version += 1;
        self.store
            .save(&image)
            .map_err(|e| AdminError::new(-1, format!("persisting metadata failed: {e}")))?;
        *self.image.write().unwrap_or_else(|p| p.into_inner()) = image;
        Ok(())
    }

    fn validate_spec(
        &self,
        image: &MetadataImage,
        spec: &TopicSpec,
    ) -> Result<(i32, i16), AdminError> {
        metadata::validate_topic_name(&spec.name)
            .map_err(|m| AdminError::new(codes::INVALID_TOPIC_EXCEPTION, m))?;
        if image.topics.contains_key(&spec.name) {
            return Err(AdminError::new(
                codes::TOPIC_ALREADY_EXISTS,
                format!("Topic '{}' already exists.", spec.name),
            ));
        }
        for (key, value) in &spec.configs {
            defs::validate_topic_config(key, value)
                .map_err(|e| AdminError::new(codes::INVALID_CONFIG, e.to_string()))?;
        }
        let live: Vec<i32> = self.brokers().iter().map(|b| b.0).collect();
        if !spec.assignments.is_empty() {
            if spec.partitions != -1 || spec.replication_factor != -1 {
                return Err(AdminError::new(
                    codes::INVALID_REQUEST,
                    "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
                ));
            }
            let rf = spec.assignments[0].len();
            for replicas in &spec.assignments {
                let mut unique = replicas.clone();
                unique.sort_unstable();
                unique.dedup();
                if replicas.is_empty() || replicas.len() != rf || unique.len() != replicas.len() {
                    return Err(AdminError::new(codes::INVALID_REPLICA_ASSIGNMENT, "Replica assignment lists must be non-empty, of equal length and without duplicates"));
                }
                if let Some(b) = replicas.iter().find(|b| !live.contains(b)) {
                    return Err(AdminError::new(
                        codes::INVALID_REPLICA_ASSIGNMENT,
                        format!("Unknown broker {b} in replica assignment"),
                    ));
                }
            }
            return Ok((spec.assignments.len() as i32, rf as i16));
        }
        let partitions = if spec.partitions == -1 {
            self.config.setting_i64("num.partitions") as i32
        } else {
            spec.partitions
        };
        let rf = if spec.replication_factor == -1 {
            self.config.setting_i64("default.replication.factor") as i16
        } else {
            spec.replication_factor
        };
        if partitions <= 0 {
            return Err(AdminError::new(
                codes::INVALID_PARTITIONS,
                "Number of partitions must be larger than 0.",
            ));
        }
        if rf <= 0 {
            return Err(AdminError::new(
                codes::INVALID_REPLICATION_FACTOR,
                "Replication factor must be larger than 0.",
            ));
        }
        if rf as usize > live.len() {
            return Err(AdminError::new(
                codes::INVALID_REPLICATION_FACTOR,
                format!("Unable to replicate the partition {rf} time(s): The target replication factor of {rf} cannot be reached because only {} broker(s) are registered.", live.len()),
            ));
        }
        Ok((partitions, rf))
    }

    /// CreateTopics for one topic. With `validate_only` nothing changes.
    pub fn create_topic(
        &self,
        spec: &TopicSpec,
        validate_only: bool,
    ) -> Result<TopicMeta, AdminError> {
        let mut image = self.image();
        let (partitions, rf) = self.validate_spec(&image, spec)?;
        let live: Vec<i32> = self.brokers().iter().map(|b| b.0).collect();
        let metas: Vec<PartitionMeta> = (0..partitions)
            .map(|p| {
                let replicas = spec
                    .assignments
                    .get(p as usize)
                    .cloned()
                    .unwrap_or_else(|| {
                        (0..rf as usize)
                            .map(|r| live[(p as usize + r) % live.len()])
                            .collect()
                    });
                PartitionMeta {
                    leader: replicas[0],
                    isr: replicas.clone(),
                    replicas,
                    leader_epoch: 0,
                }
            })
            .collect();
        let topic = TopicMeta {
            name: spec.name.clone(),
            id: Uuid::new_v4(),
            partitions: metas,
            configs: spec.configs.clone(),
        };
        if validate_only {
            return Ok(topic);
        }
        let policy = self.topic_policy(&image, &topic);
        let mut opened = Vec::new();
        for (index, meta) in topic.partitions.iter().enumerate() {
            let index = index as i32;
            if meta.leader != self.config.broker_id {
                continue;
            }
            let dir = self.partition_dir(&topic.name, index);
            // A leftover directory from an earlier topic of the same name is stale.
            let _ = std::fs::remove_dir_all(&dir);
            let partition = Partition::open(
                &dir,
                &topic.name,
                index,
                0,
                policy.clone(),
                RecoveryMode::Trust,
            )
            .map_err(|e| AdminError::new(-1, format!("creating partition log failed: {e}")))?;
            opened.push(((topic.name.clone(), index), Arc::new(partition)));
        }
        image.topics.insert(topic.name.clone(), topic.clone());
        self.commit(image)?;
        self.partitions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .extend(opened);
        info!(topic = %topic.name, partitions, replication_factor = rf, "created topic");
        Ok(topic)
    }

    /// Auto-creation on Metadata when `auto.create.topics.enable` is on.
    pub fn auto_create_topic(&self, name: &str) -> Result<TopicMeta, AdminError> {
        self.create_topic(
            &TopicSpec {
                name: name.to_string(),
                partitions: -1,
                replication_factor: -1,
                assignments: Vec::new(),
                configs: BTreeMap::new(),
            },
            false,
        )
    }

    /// DeleteTopics for one topic.
    pub fn delete_topic(&self, name: &str) -> Result<Uuid, AdminError> {
        let mut image = self.image();
        let Some(topic) = image.topics.remove(name) else {
            return Err(AdminError::new(
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                "This server does not host this topic-partition.",
            ));
        };
        if metadata::is_internal_topic(name) {
            return Err(AdminError::new(
                codes::INVALID_REQUEST,
                "Internal topics cannot be deleted",
            ));
        }
        self.commit(image)?;
        let removed: Vec<Arc<Partition>> = {
            let mut partitions = self.partitions.write().unwrap_or_else(|p| p.into_inner());
            (0..topic.partitions.len() as i32)
                .filter_map(|i| partitions.remove(&(name.to_string(), i)))
                .collect()
        };
        for partition in removed {
            let dir = self.partition_dir(name, partition.index);
            let doomed = self.config.data_dir.join(format!(
                "{name}-{}.{}-delete",
                partition.index,
                topic.id.simple()
            ));
            drop(partition);
            if std::fs::rename(&dir, &doomed).is_ok() {
                let _ = std::fs::remove_dir_all(&doomed);
            }
        }
        self.groups.forget_topic(name);
        info!(topic = %name, "deleted topic");
        Ok(topic.id)
    }

    /// CreatePartitions: grows a topic to `count` partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        let mut image = self.image();
        let Some(topic) = image.topics.get(name).cloned() else {
            return Err(AdminError::new(
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("The topic '{name}' does not exist."),
            ));
        };
        let current = topic.partitions.len() as i32;
        if count < current {
            return Err(AdminError::new(codes::INVALID_PARTITIONS, format!("Topic currently has {current} partitions, which is higher than the requested {count}.")));
        }
        if count == current {
            return Err(AdminError::new(
                codes::INVALID_PARTITIONS,
                format!("Topic already has {current} partitions."),
            ));
        }
        let live: Vec<i32> = self.brokers().iter().map(|b| b.0).collect();
        let rf = topic.partitions.first().map_or(1, |p| p.replicas.len());
        let new_count = (count - current) as usize;
        let new_replicas: Vec<Vec<i32>> = match assignments {
            Some(given) => {
                if given.len() != new_count {
                    return Err(AdminError::new(codes::INVALID_REPLICA_ASSIGNMENT, format!("Increasing the number of partitions by {new_count} but {} assignments provided.", given.len())));
                }
                if given
                    .iter()
                    .any(|r| r.len() != rf || r.iter().any(|b| !live.contains(b)))
                {
                    return Err(AdminError::new(
                        codes::INVALID_REPLICA_ASSIGNMENT,
                        "Invalid replica assignment",
                    ));
                }
                given
            }
            None => (current..count)
                .map(|p| {
                    (0..rf)
                        .map(|r| live[(p as usize + r) % live.len()])
                        .collect()
                })
                .collect(),
        };
        if validate_only {
            return Ok(());
        }
        let policy = self.topic_policy(&image, &topic);
        let mut opened = Vec::new();
        let entry = image.topics.get_mut(name).expect("checked above");
        for (offset, replicas) in new_replicas.into_iter().enumerate() {
            let index = current + offset as i32;
            if replicas[0] == self.config.broker_id {
                let dir = self.partition_dir(name, index);
                let _ = std::fs::remove_dir_all(&dir);
                let partition =
                    Partition::open(&dir, name, index, 0, policy.clone(), RecoveryMode::Trust)
                        .map_err(|e| {
                            AdminError::new(-1, format!("creating partition log failed: {e}"))
                        })?;
                opened.push(((name.to_string(), index), Arc::new(partition)));
            }
            entry.partitions.push(PartitionMeta {
                leader: replicas[0],
                isr: replicas.clone(),
                replicas,
                leader_epoch: 0,
            });
        }
        self.commit(image)?;
        self.partitions
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .extend(opened);
        Ok(())
    }

    /// Replaces a topic's config overrides (AlterConfigs / IncrementalAlterConfigs).
    pub fn set_topic_configs(
        &self,
        name: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        for (key, value) in &configs {
            defs::validate_topic_config(key, value)
                .map_err(|e| AdminError::new(codes::INVALID_CONFIG, e.to_string()))?;
        }
        let mut image = self.image();
        let Some(topic) = image.topics.get_mut(name) else {
            return Err(AdminError::new(
                codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("The topic '{name}' does not exist."),
            ));
        };
        if validate_only {
            return Ok(());
        }
        topic.configs = configs;
        self.commit(image)?;
        self.refresh_policies();
        Ok(())
    }

    /// Replaces dynamic broker configs: `broker` is `None` for the cluster-wide default.
    pub fn set_broker_configs(
        &self,
        broker: Option<i32>,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), AdminError> {
        for (key, value) in &configs {
            let Some(def) = defs::topic_config_by_synonym(key) else {
                return Err(AdminError::new(
                    codes::INVALID_CONFIG,
                    format!("Cannot update broker config {key} dynamically"),
                ));
            };
            defs::validate_topic_config(def.name, value)
                .map_err(|e| AdminError::new(codes::INVALID_CONFIG, e.to_string()))?;
        }
        if validate_only {
            return Ok(());
        }
        let mut image = self.image();
        match broker {
            Some(id) => {
                image.broker_configs.insert(id, configs);
            }
            None => image.cluster_configs = configs,
        }
        self.commit(image)?;
        self.refresh_policies();
        Ok(())
    }

    fn refresh_policies(&self) {
        let image = self.image();
        for partition in self.all_partitions() {
            if let Some(topic) = image.topics.get(&partition.topic) {
                partition.set_policy(self.topic_policy(&image, topic));
            }
        }
    }

    /// Applies retention to every partition.
    pub fn apply_retention(&self) {
        let now = crate::util::now_ms();
        for partition in self.all_partitions() {
            if let Err(e) = partition.apply_retention(now) {
                warn!(topic = %partition.topic, partition = partition.index, error = %e, "retention failed");
            }
        }
    }

    /// Time-based flushing (`flush.ms`) for partitions with unflushed data.
    pub fn flush_due(&self) {
        for partition in self.all_partitions() {
            if let Err(e) = partition.flush_if_due() {
                warn!(topic = %partition.topic, partition = partition.index, error = %e, "flush failed");
            }
        }
    }

    /// Flushes everything and marks the shutdown clean, so the next start trusts the logs.
    pub fn shutdown(&self) -> Result<()> {
        for partition in self.all_partitions() {
            partition
                .flush()
                .with_context(|| format!("flushing {}-{}", partition.topic, partition.index))?;
        }
        self.groups.flush()?;
        std::fs::write(self.config.data_dir.join(CLEAN_SHUTDOWN_MARKER), b"")?;
        info!("clean shutdown complete");
        Ok(())
    }
}
