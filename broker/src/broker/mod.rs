//! One broker process's state, by role: [`metadata_cache`] (the metadata image as applied
//! here), [`replica_manager`] (the replicas hosted here and their roles), [`forwarding`]
//! (admin requests and producer-id blocks from the controller), [`alter_partition`] (ISR
//! changes leaders propose) and [`log_dirs`] (the data directory). Committed offsets are
//! the group layer's ([`crate::group::persistence`]), follower fetchers the replication
//! layer's ([`crate::replication::fetcher_manager`]). Request handlers borrow the broker.

pub mod alter_partition;
pub mod forwarding;
pub mod log_dirs;
pub mod metadata_cache;
pub mod replica_manager;
pub mod storage;
pub mod transactions;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::watch;
use tributary_metadata::{MetadataImage, TopicMeta};
use uuid::Uuid;

use self::forwarding::ProducerIdBlock;
use self::log_dirs::LogDirs;
use self::metadata_cache::{address_of, config_layers, MetadataCache};
use self::replica_manager::ReplicaManager;
use self::storage::StorageHealth;
use crate::cluster::client::ControllerClient;
use crate::config::policy::TopicPolicy;
use crate::config::BrokerConfig;
use crate::fetch_session::FetchSessionCache;
use crate::group::consumer::ConsumerGroupSettings;
use crate::group::coordinator::GroupCoordinator;
use crate::group::offsets::OFFSETS_TOPIC;
use crate::group::persistence::OffsetsLog;
use crate::group::state::GroupLimits;
use crate::partition::{Partition, RoleChange};
use crate::replication::fetcher_manager::{FetcherManager, FollowerSet};
use crate::transaction::coordinator::{TransactionCoordinator, TRANSACTION_TOPIC};
use crate::util::Signal;

/// How long a controller request may take before the client's request fails.
pub const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(10);

/// The broker.
#[derive(Debug)]
pub struct Broker {
    pub config: BrokerConfig,
    /// This process's identity towards the controller.
    pub incarnation: Uuid,
    broker_epoch: AtomicI64,
    /// Whether the data directory takes writes.
    pub storage: StorageHealth,
    /// When (broker clock, ms) the controller last acknowledged this broker's session.
    session_acknowledged_ms: AtomicU64,
    cluster_id: RwLock<String>,
    /// The applied metadata image.
    pub metadata: MetadataCache,
    /// The hosted replicas.
    pub replicas: Arc<ReplicaManager>,
    pub controller: ControllerClient,
    producer_ids: tokio::sync::Mutex<ProducerIdBlock>,
    pub groups: Arc<GroupCoordinator>,
    /// The transactional ids this broker coordinates.
    pub transactions: Arc<TransactionCoordinator>,
    /// Committed offsets on `__consumer_offsets`.
    pub offsets: OffsetsLog,
    /// The follower fetchers.
    pub fetchers: FetcherManager,
    /// Consumers' incremental fetch sessions (KIP-227).
    pub fetch_sessions: FetchSessionCache,
    /// Notified after every append or high-watermark move, waking long-polling fetches.
    appended: Signal,
    started: Instant,
}

impl Broker {
    /// Opens the data directory. Partitions are opened as metadata assigns them.
    pub fn open(config: BrokerConfig, controller_addr: &str) -> Result<Arc<Self>> {
        let dirs = LogDirs::open(&config.data_dir)
            .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
        let cluster_id = crate::config::read_identity(&config.data_dir, config.broker_id)?
            .or_else(|| config.cluster_id.clone())
            .unwrap_or_default();
        let groups = Arc::new(GroupCoordinator::new(
            GroupLimits {
                min_session_timeout_ms: config.setting_i64("group.min.session.timeout.ms") as i32,
                max_session_timeout_ms: config.setting_i64("group.max.session.timeout.ms") as i32,
                initial_rebalance_delay_ms: config
                    .setting_i64("group.initial.rebalance.delay.ms")
                    .max(0) as u64,
            },
            ConsumerGroupSettings {
                session_timeout_ms: config
                    .setting_i64("group.consumer.session.timeout.ms")
                    .max(1) as u64,
                heartbeat_interval_ms: config
                    .setting_i64("group.consumer.heartbeat.interval.ms")
                    .clamp(1, i32::MAX as i64) as i32,
            },
            config
                .setting_i64("offsets.topic.num.partitions")
                .clamp(1, 1000) as i32,
        ));
        let replicas = Arc::new(ReplicaManager::new(config.broker_id, dirs));
        let appended = Signal::default();
        let storage = StorageHealth::default();
        Ok(Arc::new(Broker {
            storage: storage.clone(),
            incarnation: Uuid::new_v4(),
            broker_epoch: AtomicI64::new(-1),
            session_acknowledged_ms: AtomicU64::new(0),
            cluster_id: RwLock::new(cluster_id),
            metadata: MetadataCache::default(),
            offsets: OffsetsLog::new(groups.clone(), replicas.clone(), appended.clone()),
            fetchers: FetcherManager::new(config.broker_id, appended.clone(), storage),
            fetch_sessions: FetchSessionCache::new(
                config
                    .setting_i64("max.incremental.fetch.session.cache.slots")
                    .max(0) as usize,
            ),
            replicas,
            controller: ControllerClient::new(controller_addr),
            producer_ids: tokio::sync::Mutex::new(ProducerIdBlock::default()),
            groups,
            transactions: Arc::new(TransactionCoordinator::new(
                config
                    .setting_i64("transaction.state.log.num.partitions")
                    .clamp(1, 1000) as i32,
                config
                    .setting_i64("transaction.max.timeout.ms")
                    .clamp(1, i32::MAX as i64) as i32,
            )),
            appended,
            started: Instant::now(),
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
        self.session_acknowledged();
    }

    /// Whether this broker leads `partition` but is cut off from the controller and from
    /// every follower in the ISR: a zombie leader, which refuses writes and stops
    /// advertising itself as leader rather than keep clients waiting on writes that cannot
    /// commit (and that the new leader will truncate).
    pub fn is_isolated_leader(&self, partition: &Partition) -> bool {
        self.session_lapsed() && partition.is_cut_off_leader(self.now_ms())
    }

    /// Whether this broker is cut off from the cluster: its controller session lapsed and
    /// no follower fetches any partition it leads with others. Its metadata is stale (the
    /// controller has likely moved its leaderships), so Metadata leaves it out of the
    /// broker list. A broker cut off from the controller alone keeps serving.
    pub fn is_cut_off(&self) -> bool {
        if !self.session_lapsed() {
            return false;
        }
        let now = self.now_ms();
        let mut led = self
            .replicas
            .all()
            .into_iter()
            .filter_map(|p| p.followers_cut_off(now))
            .peekable();
        led.peek().is_some() && led.all(|silent| silent)
    }

    /// The controller answered a registration or heartbeat: the session is alive now.
    pub fn session_acknowledged(&self) {
        self.session_acknowledged_ms
            .store(self.now_ms(), Ordering::SeqCst);
    }

    /// Whether the controller has not acknowledged this broker for longer than a session
    /// (`broker.session.timeout.ms`): it has probably fenced this broker and moved its
    /// leaderships. Used to stop holding acks=all writes that followers no longer fetch.
    pub fn session_lapsed(&self) -> bool {
        let session = self.config.setting_i64("broker.session.timeout.ms").max(0) as u64;
        self.now_ms()
            .saturating_sub(self.session_acknowledged_ms.load(Ordering::SeqCst))
            > session
    }

    /// The broker id admin clients send controller requests to. Every broker forwards them
    /// to the controller, so a broker names itself, as KRaft brokers name a live broker.
    pub fn controller_id(&self) -> i32 {
        self.config.broker_id
    }

    /// The settings of `topic` as this broker resolves them.
    pub fn topic_policy(&self, image: &MetadataImage, topic: &TopicMeta) -> TopicPolicy {
        TopicPolicy::resolve(&config_layers(&self.config, image, Some(topic)))
    }

    /// Applies a metadata image from the controller: re-roles the hosted replicas, loads or
    /// unloads the groups of offsets partitions, re-points the follower fetchers, and only
    /// then makes the image current.
    pub fn apply_image(self: &Arc<Self>, image: MetadataImage) {
        let changes = self.replicas.apply(
            &image,
            |topic| self.topic_policy(&image, topic),
            self.now_ms(),
        );
        let roles_changed = changes
            .iter()
            .any(|(_, change)| *change != RoleChange::Unchanged);
        for (partition, change) in &changes {
            if partition.topic == OFFSETS_TOPIC {
                self.offsets.on_role_change(partition, *change);
            } else if partition.topic == TRANSACTION_TOPIC {
                self.on_transaction_partition_role_change(partition, *change);
            }
        }
        let broker_epoch = self.broker_epoch();
        let assignments: BTreeMap<i32, FollowerSet> = self
            .replicas
            .followers_by_leader()
            .into_iter()
            .map(|(leader, partitions)| {
                let leader_addr = address_of(&image, leader);
                let topic_ids = partitions
                    .iter()
                    .filter_map(|p| image.topics.get(&p.topic).map(|t| (p.topic.clone(), t.id)))
                    .collect();
                (
                    leader,
                    FollowerSet {
                        leader_addr,
                        partitions,
                        topic_ids,
                        broker_epoch,
                    },
                )
            })
            .collect();
        self.fetchers.assign(assignments, roles_changed);
        self.metadata.install(image);
        self.notify_appended();
    }

    /// Signals long-polling fetches that data (or a high watermark) moved.
    pub fn notify_appended(&self) {
        self.appended.notify();
    }

    /// Subscribes to append notifications.
    pub fn subscribe_appends(&self) -> watch::Receiver<u64> {
        self.appended.subscribe()
    }

    /// Stops the fetchers, flushes everything and marks the shutdown clean.
    pub fn shutdown(&self) -> Result<()> {
        self.fetchers.shutdown();
        self.replicas.shutdown()
    }
}
