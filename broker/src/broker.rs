//! Shared broker state: the metadata image the controller published, the partition
//! replicas this broker hosts and their roles, producer ids, and the group coordinator.
//! Request handlers borrow it; it does the I/O they need.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::watch;
use tracing::{info, warn};
use uuid::Uuid;

use crate::cluster::client::ControllerClient;
use crate::config::policy::TopicPolicy;
use crate::config::BrokerConfig;
use crate::group::coordinator::GroupCoordinator;
use crate::group::offsets::{self, OffsetKey, OffsetTable, OffsetValue, OFFSETS_TOPIC};
use crate::group::state::GroupLimits;
use crate::log::RecoveryMode;
use crate::partition::{Partition, PartitionError, RoleChange};
use tributary_metadata::image::{BrokerInfo, MetadataImage, TopicMeta};
use tributary_metadata::rpc::{
    ConfigResource, ControllerRequest, ControllerResponse, ElectionResults, IsrChange, TopicSpec,
};
use tributary_metadata::topic_config::ConfigLayers;
use tributary_metadata::{ApiError, ResponseError};

const CLEAN_SHUTDOWN_MARKER: &str = ".clean-shutdown";
/// How long a controller request may take before the client's request fails.
pub const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(10);

type PartitionKey = (String, i32);

/// The broker.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    /// This process's identity towards the controller.
    pub incarnation: Uuid,
    broker_epoch: AtomicI64,
    cluster_id: RwLock<String>,
    image: RwLock<Arc<MetadataImage>>,
    image_version: watch::Sender<u64>,
    partitions: RwLock<HashMap<PartitionKey, Arc<Partition>>>,
    pub controller: ControllerClient,
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    pub groups: GroupCoordinator,
    /// Bumped after every append or high-watermark move, waking long-polling fetches.
    appended: watch::Sender<u64>,
    /// Bumped whenever replica roles change, waking replica fetchers.
    role_changes: watch::Sender<u64>,
    recovery_mode: RecoveryMode,
    started: Instant,
    /// Leaders this broker runs a replica fetcher for.
    pub(crate) fetchers: Mutex<HashMap<i32, tokio::task::JoinHandle<()>>>,
}

impl Broker {
    /// Opens the data directory. Partitions are opened as metadata assigns them.
    pub fn open(config: BrokerConfig, controller_addr: &str) -> Result<Arc<Self>> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let cluster_id = crate::config::read_identity(&config.data_dir, config.broker_id)?
            .or_else(|| config.cluster_id.clone())
            .unwrap_or_default();
        let marker = config.data_dir.join(CLEAN_SHUTDOWN_MARKER);
        let recovery_mode = if marker.exists() {
            RecoveryMode::Trust
        } else {
            RecoveryMode::Verify
        };
        let _ = std::fs::remove_file(&marker);
        info!(?recovery_mode, data_dir = %config.data_dir.display(), "opening broker");
        let groups = GroupCoordinator::new(
            GroupLimits {
                min_session_timeout_ms: config.setting_i64("group.min.session.timeout.ms") as i32,
                max_session_timeout_ms: config.setting_i64("group.max.session.timeout.ms") as i32,
                initial_rebalance_delay_ms: config
                    .setting_i64("group.initial.rebalance.delay.ms")
                    .max(0) as u64,
            },
            config
                .setting_i64("offsets.topic.num.partitions")
                .clamp(1, 1000) as i32,
        );
        remove_deleted_directories(&config.data_dir);
        let (image_version, _) = watch::channel(0);
        let (appended, _) = watch::channel(0);
        let (role_changes, _) = watch::channel(0);
        Ok(Arc::new(Broker {
            role_changes,
            incarnation: Uuid::new_v4(),
            broker_epoch: AtomicI64::new(-1),
            cluster_id: RwLock::new(cluster_id),
            image: RwLock::new(Arc::new(MetadataImage::default())),
            image_version,
            partitions: RwLock::new(HashMap::new()),
            controller: ControllerClient::new(controller_addr),
            producer_ids: tokio::sync::Mutex::new((0, 0)),
            groups,
            appended,
            recovery_mode,
            started: Instant::now(),
            fetchers: Mutex::new(HashMap::new()),
            config,
        }))
    }

    /// Milliseconds since start, the clock replication timers use.
    pub fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The cluster id (from the controller, persisted in `meta.properties`).
    pub fn cluster_id(&self) -> String {
        self.cluster_id
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Records the cluster id the controller answered with.
    pub fn set_cluster_id(&self, id: &str) -> Result<()> {
        crate::config::write_identity(&self.config.data_dir, self.config.broker_id, id)?;
        *self.cluster_id.write().unwrap_or_else(|p| p.into_inner()) = id.to_string();
        Ok(())
    }

    /// The epoch of this broker's current registration (-1 before registering).
    pub fn broker_epoch(&self) -> i64 {
        self.broker_epoch.load(Ordering::SeqCst)
    }

    /// Sets the registration epoch.
    pub fn set_broker_epoch(&self, epoch: i64) {
        self.broker_epoch.store(epoch, Ordering::SeqCst);
    }

    fn partition_dir(&self, topic: &str, index: i32) -> PathBuf {
        self.config.data_dir.join(format!("{topic}-{index}"))
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Runs `f` on the current image.
    pub fn with_image<R>(&self, f: impl FnOnce(&MetadataImage) -> R) -> R {
        f(&self.image.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Waits until the applied image is at least `version` (after an admin change), so the
    /// client's next Metadata request sees it. Gives up quietly after `timeout`.
    pub async fn wait_for_version(&self, version: u64, timeout: Duration) {
        let mut rx = self.image_version.subscribe();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|v| *v >= version)).await;
    }

    /// Applies a metadata image from the controller: opens, re-roles or removes replicas.
    pub fn apply_image(self: &Arc<Self>, image: MetadataImage) {
        let me = self.config.broker_id;
        let now = self.now_ms();
        let mut changes: Vec<(Arc<Partition>, RoleChange)> = Vec::new();
        {
            let mut hosted = self.partitions.write().unwrap_or_else(|p| p.into_inner());
            for topic in image.topics.values() {
                let policy = self.topic_policy(&image, topic);
                for (index, meta) in topic.partitions.iter().enumerate() {
                    let index = index as i32;
                    if !meta.replicas.contains(&me) {
                        continue;
                    }
                    let key = (topic.name.clone(), index);
                    let partition = match hosted.get(&key) {
                        Some(p) => {
                            p.set_policy(policy.clone());
                            p.clone()
                        }
                        None => match claim_replica_dir(
                            &self.partition_dir(&topic.name, index),
                            topic.id,
                        )
                        .and_then(|dir| {
                            Partition::open(
                                &dir,
                                &topic.name,
                                index,
                                me,
                                policy.clone(),
                                self.recovery_mode,
                            )
                        }) {
                            Ok(p) => {
                                let p = Arc::new(p);
                                hosted.insert(key, p.clone());
                                p
                            }
                            Err(e) => {
                                warn!(topic = %topic.name, partition = index, error = %e, "cannot open partition");
                                continue;
                            }
                        },
                    };
                    let change = partition.apply_metadata(meta, now);
                    changes.push((partition, change));
                }
            }
            // Replicas no longer assigned here (topic deleted or moved).
            let stale: Vec<PartitionKey> = hosted
                .keys()
                .filter(|(t, i)| {
                    !image.topics.get(t).is_some_and(|topic| {
                        topic
                            .partitions
                            .get(*i as usize)
                            .is_some_and(|p| p.replicas.contains(&me))
                    })
                })
                .cloned()
                .collect();
            for key in stale {
                if let Some(partition) = hosted.remove(&key) {
                    partition.go_offline();
                    changes.push((partition.clone(), RoleChange::WentOffline));
                    let dir = self.partition_dir(&key.0, key.1);
                    let doomed = self.config.data_dir.join(format!(
                        "{}-{}.{}-delete",
                        key.0,
                        key.1,
                        Uuid::new_v4().simple()
                    ));
                    drop(partition);
                    info!(topic = %key.0, partition = key.1, "removing replica");
                    if std::fs::rename(&dir, &doomed).is_ok() {
                        let _ = std::fs::remove_dir_all(&doomed);
                    }
                }
            }
        }
        let version = image.version;
        *self.image.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(image);
        if changes
            .iter()
            .any(|(_, change)| *change != RoleChange::Unchanged)
        {
            self.role_changes.send_modify(|v| *v = v.wrapping_add(1));
        }
        for (partition, change) in changes {
            if partition.topic == OFFSETS_TOPIC {
                self.on_offsets_partition_change(&partition, change);
            }
        }
        crate::replication::fetcher::reconcile(self);
        self.image_version.send_replace(version);
        self.notify_appended();
    }

    fn on_offsets_partition_change(
        self: &Arc<Self>,
        partition: &Arc<Partition>,
        change: RoleChange,
    ) {
        match change {
            RoleChange::BecameLeader => {
                self.groups.begin_loading(partition.index);
                let broker = self.clone();
                let partition = partition.clone();
                tokio::spawn(async move {
                    let table = tokio::task::spawn_blocking({
                        let partition = partition.clone();
                        move || load_offsets(&partition)
                    })
                    .await;
                    match table {
                        Ok(Ok(table)) if partition.is_leader() => {
                            broker.groups.finish_loading(partition.index, table)
                        }
                        Ok(Ok(_)) => broker.groups.unload(partition.index),
                        Ok(Err(e)) => {
                            warn!(partition = partition.index, error = %e, "loading offsets failed")
                        }
                        Err(e) => warn!(error = %e, "offsets loader panicked"),
                    }
                });
            }
            RoleChange::BecameFollower { .. } | RoleChange::WentOffline => {
                self.groups.unload(partition.index)
            }
            RoleChange::Unchanged => {}
        }
    }

    /// The hosted partition, if this broker has a replica of it.
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
        TopicPolicy::resolve(&self.config_layers(image, Some(topic)))
    }

    /// Signals long-polling fetches that data (or a high watermark) moved.
    pub fn notify_appended(&self) {
        self.appended.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Subscribes to replica role changes (for replica fetchers).
    pub fn subscribe_role_changes(&self) -> watch::Receiver<u64> {
        self.role_changes.subscribe()
    }

    /// Subscribes to append notifications.
    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// A new producer id for InitProducerId, from blocks the controller allocates.
    pub async fn allocate_producer_id(&self) -> Result<i64, ApiError> {
        let mut block = self.producer_ids.lock().await;
        if block.0 >= block.1 {
            let request = ControllerRequest::AllocateProducerIds {
                broker_id: self.config.broker_id,
                broker_epoch: self.broker_epoch(),
            };
            match self.controller.call(&request, CONTROLLER_TIMEOUT).await {
                Ok(ControllerResponse::ProducerIds { first, count }) => {
                    *block = (first, first + count)
                }
                Ok(ControllerResponse::Error(e)) => return Err(e),
                Ok(other) => {
                    return Err(ApiError::new(
                        ResponseError::UnknownServerError,
                        format!("unexpected controller answer {other:?}"),
                    ))
                }
                Err(e) => {
                    return Err(ApiError::new(
                        ResponseError::CoordinatorNotAvailable,
                        format!("controller unavailable: {e}"),
                    ))
                }
            }
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }

    /// Live (unfenced) brokers, as clients see them.
    pub fn live_brokers(&self) -> Vec<BrokerInfo> {
        self.with_image(|img| {
            img.brokers
                .values()
                .filter(|b| !b.fenced)
                .cloned()
                .collect()
        })
    }

    /// The broker id admin clients send controller requests to. Every broker forwards them
    /// to the controller, so a broker names itself, as KRaft brokers name a live broker.
    pub fn controller_id(&self) -> i32 {
        self.config.broker_id
    }

    async fn admin_call(&self, request: ControllerRequest) -> Result<ControllerResponse, ApiError> {
        match self.controller.call(&request, CONTROLLER_TIMEOUT).await {
            Ok(ControllerResponse::Error(e)) => Err(e),
            Ok(response) => Ok(response),
            Err(e) => Err(ApiError::new(
                ResponseError::RequestTimedOut,
                format!("controller request failed: {e}"),
            )),
        }
    }

    /// CreateTopics, forwarded to the controller.
    pub async fn create_topics(
        &self,
        topics: Vec<TopicSpec>,
        validate_only: bool,
    ) -> Vec<Result<TopicMeta, ApiError>> {
        let n = topics.len();
        self.topics_admin(
            ControllerRequest::CreateTopics {
                topics,
                validate_only,
            },
            n,
        )
        .await
    }

    /// Sends a per-topic admin request; returns one result per topic, after this broker's
    /// image includes the change.
    async fn topics_admin(
        &self,
        request: ControllerRequest,
        n: usize,
    ) -> Vec<Result<TopicMeta, ApiError>> {
        match self.admin_call(request).await {
            Ok(ControllerResponse::Topics { results, version }) => {
                self.wait_for_version(version, Duration::from_secs(5)).await;
                results
            }
            Ok(other) => vec![
                Err(ApiError::new(
                    ResponseError::UnknownServerError,
                    format!("unexpected controller answer {other:?}")
                ));
                n
            ],
            Err(e) => vec![Err(e); n],
        }
    }

    /// DeleteTopics, forwarded to the controller; also drops the topics' committed offsets.
    pub async fn delete_topics(&self, names: Vec<String>) -> Vec<Result<TopicMeta, ApiError>> {
        let n = names.len();
        let results = self
            .topics_admin(ControllerRequest::DeleteTopics { names }, n)
            .await;
        for topic in results.iter().flatten() {
            for (partition, entries) in self.groups.offsets_of_topic(&topic.name) {
                if let Err(e) = self.write_offsets(partition, entries).await {
                    warn!(topic = %topic.name, error = %e, "dropping offsets of deleted topic failed");
                }
            }
        }
        results
    }

    async fn simple_admin(&self, request: ControllerRequest) -> Result<(), ApiError> {
        match self.admin_call(request).await? {
            ControllerResponse::Done { result, version } => {
                self.wait_for_version(version, Duration::from_secs(5)).await;
                result
            }
            other => Err(ApiError::new(
                ResponseError::UnknownServerError,
                format!("unexpected controller answer {other:?}"),
            )),
        }
    }

    /// CreatePartitions, forwarded to the controller.
    pub async fn create_partitions(
        &self,
        topic: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        self.simple_admin(ControllerRequest::CreatePartitions {
            topic: topic.to_string(),
            count,
            assignments,
            validate_only,
        })
        .await
    }

    /// AlterConfigs (full replacement of the resource's dynamic configs), forwarded.
    pub async fn alter_configs(
        &self,
        resource: ConfigResource,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), ApiError> {
        self.simple_admin(ControllerRequest::AlterConfigs {
            resource,
            configs,
            validate_only,
        })
        .await
    }

    /// ElectLeaders, forwarded.
    pub async fn elect_leaders(
        &self,
        preferred: bool,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<ElectionResults, ApiError> {
        match self
            .admin_call(ControllerRequest::ElectLeaders {
                preferred,
                partitions,
            })
            .await?
        {
            ControllerResponse::Elections { results, version } => {
                self.wait_for_version(version, Duration::from_secs(5)).await;
                Ok(results)
            }
            other => Err(ApiError::new(
                ResponseError::UnknownServerError,
                format!("unexpected controller answer {other:?}"),
            )),
        }
    }

    /// Creates `__consumer_offsets` if it does not exist yet (on first FindCoordinator).
    pub async fn ensure_offsets_topic(&self) {
        if self.with_image(|img| img.topics.contains_key(OFFSETS_TOPIC)) {
            return;
        }
        let live = self.live_brokers().len().max(1) as i16;
        let rf = (self
            .config
            .setting_i64("offsets.topic.replication.factor")
            .clamp(1, i16::MAX as i64) as i16)
            .min(live);
        let spec = TopicSpec {
            name: OFFSETS_TOPIC.to_string(),
            partitions: self.groups.offsets_partitions,
            replication_factor: rf,
            assignments: Vec::new(),
            configs: BTreeMap::from([
                ("retention.ms".to_string(), "-1".to_string()),
                ("segment.bytes".to_string(), (64 << 20).to_string()),
            ]),
        };
        for result in self.create_topics(vec![spec], false).await {
            match result {
                Ok(_) => info!(replication_factor = rf, "created {OFFSETS_TOPIC}"),
                Err(e) if e.code == ResponseError::TopicAlreadyExists => {}
                Err(e) => warn!(error = %e, "creating {OFFSETS_TOPIC} failed"),
            }
        }
    }

    /// The coordinator broker of `group`: the leader of its offsets partition.
    pub fn coordinator_of(&self, group: &str) -> Option<BrokerInfo> {
        let partition = self.groups.partition_of(group);
        self.with_image(|img| {
            let leader = img
                .topics
                .get(OFFSETS_TOPIC)?
                .partitions
                .get(partition as usize)?
                .leader;
            img.brokers.get(&leader).filter(|b| !b.fenced).cloned()
        })
    }

    /// Durably writes offset commits (or deletions) to the group's offsets partition, then
    /// applies them to the coordinator's table. Errors are Kafka codes for the client.
    pub async fn write_offsets(
        &self,
        partition: i32,
        entries: Vec<(OffsetKey, Option<OffsetValue>)>,
    ) -> Result<(), ResponseError> {
        if entries.is_empty() {
            return Ok(());
        }
        let Some(log) = self.partition(OFFSETS_TOPIC, partition) else {
            return Err(ResponseError::NotCoordinator);
        };
        let records = offsets::encode(&entries).map_err(|_| ResponseError::UnknownServerError)?;
        let appended = log.append(records, -1).map_err(|e| offsets_error(&e))?;
        self.notify_appended();
        log.wait_for_commit(&appended, Duration::from_secs(5))
            .await
            .map_err(|e| offsets_error(&e))?;
        self.groups.apply(partition, entries);
        Ok(())
    }

    /// Leaders propose ISR changes to the controller (run periodically).
    pub fn maintain_isr(self: &Arc<Self>) {
        let lag_max = self.config.setting_i64("replica.lag.time.max.ms").max(100) as u64;
        let now = self.now_ms();
        for partition in self.all_partitions() {
            let Some(proposal) = partition.isr_proposal(now, lag_max) else {
                continue;
            };
            info!(topic = %partition.topic, partition = partition.index, isr = ?proposal.new_isr, "proposing ISR change");
            let broker = self.clone();
            tokio::spawn(async move {
                let request = ControllerRequest::AlterPartition(IsrChange {
                    broker_id: broker.config.broker_id,
                    broker_epoch: broker.broker_epoch(),
                    topic: partition.topic.clone(),
                    partition: partition.index,
                    leader_epoch: proposal.leader_epoch,
                    partition_epoch: proposal.partition_epoch,
                    new_isr: proposal.new_isr,
                });
                match broker.controller.call(&request, CONTROLLER_TIMEOUT).await {
                    Ok(ControllerResponse::PartitionChanged(Ok(meta))) => {
                        partition.isr_proposal_done(Some(&meta));
                        broker.notify_appended();
                    }
                    Ok(other) => {
                        warn!(topic = %partition.topic, partition = partition.index, answer = ?other, "ISR change refused");
                        partition.isr_proposal_done(None);
                    }
                    Err(e) => {
                        warn!(topic = %partition.topic, partition = partition.index, error = %e, "ISR change failed");
                        partition.isr_proposal_done(None);
                    }
                }
            });
        }
    }

    /// Applies retention to every partition this broker leads (followers follow the
    /// leader's log start).
    pub fn apply_retention(&self) {
        let now = crate::util::now_ms();
        for partition in self.all_partitions().into_iter().filter(|p| p.is_leader()) {
            if let Err(e) = partition.apply_retention(now) {
                warn!(topic = %partition.topic, partition = partition.index, error = %e, "retention failed");
            }
        }
    }

    /// Time-based flushing (`flush.ms`) and high-watermark checkpoints.
    pub fn flush_due(&self) {
        for partition in self.all_partitions() {
            if let Err(e) = partition
                .flush_if_due()
                .and_then(|_| partition.checkpoint_hw())
            {
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
        std::fs::write(self.config.data_dir.join(CLEAN_SHUTDOWN_MARKER), b"")?;
        info!("clean shutdown complete");
        Ok(())
    }
}

/// File naming the topic a replica directory belongs to (Kafka's `partition.metadata`).
const PARTITION_METADATA: &str = "partition.metadata";

/// Makes `dir` the replica directory of topic `topic_id`. A directory left by an earlier
/// topic of the same name (deleted while this broker was away) is discarded, never reused.
fn claim_replica_dir(dir: &std::path::Path, topic_id: Uuid) -> std::io::Result<PathBuf> {
    let marker = dir.join(PARTITION_METADATA);
    let expected = format!("version: 0\ntopic_id: {}\n", topic_id.simple());
    match std::fs::read_to_string(&marker) {
        Ok(text) if text == expected => return Ok(dir.to_path_buf()),
        Ok(_) => {
            warn!(dir = %dir.display(), "replica directory belongs to an earlier topic of the same name; discarding it");
            let doomed = dir.with_extension(format!("{}-delete", Uuid::new_v4().simple()));
            std::fs::rename(dir, &doomed)?;
            let _ = std::fs::remove_dir_all(&doomed);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(dir)?;
    let tmp = marker.with_extension("tmp");
    std::fs::write(&tmp, expected)?;
    std::fs::rename(&tmp, &marker)?;
    Ok(dir.to_path_buf())
}

/// Finishes deletions a crash interrupted: replica directories are renamed to
/// `<name>.<id>-delete` before they are removed.
fn remove_deleted_directories(data_dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().ends_with("-delete") && entry.path().is_dir() {
            warn!(dir = %entry.path().display(), "removing a replica whose deletion was interrupted");
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// What a group client is told when its offsets could not be written: Kafka's
/// coordinator answers in terms of the coordinator, not of the partition behind it.
fn offsets_error(e: &PartitionError) -> ResponseError {
    match e {
        PartitionError::NotLeader => ResponseError::NotCoordinator,
        PartitionError::NotEnoughReplicas { .. } | PartitionError::NotEnoughReplicasAfterAppend => {
            ResponseError::CoordinatorNotAvailable
        }
        other => other.kafka_error(),
    }
}

/// Replays an offsets partition from its log start to its log end.
fn load_offsets(partition: &Partition) -> std::io::Result<OffsetTable> {
    let mut table = OffsetTable::default();
    let (start, _, end) = partition.offsets();
    let mut position = start;
    while position < end {
        let data = partition
            .read_range(position, 1 << 20, end)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let Some((last, _)) = crate::log::batch::BatchIter::new(data.clone()).last() else {
            break;
        };
        position = last.next_offset();
        table.replay(data)?;
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recreated_topic_never_reuses_the_old_replica_directory() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("t-0");
        let old = Uuid::new_v4();
        claim_replica_dir(&dir, old).unwrap();
        std::fs::write(dir.join("00000000000000000000.log"), b"old data").unwrap();
        claim_replica_dir(&dir, old).unwrap();
        assert!(
            dir.join("00000000000000000000.log").exists(),
            "same topic: kept"
        );
        claim_replica_dir(&dir, Uuid::new_v4()).unwrap();
        assert!(
            !dir.join("00000000000000000000.log").exists(),
            "new topic id: old data discarded"
        );
        assert!(dir.join(PARTITION_METADATA).exists());
    }
}
