//! The controller as a service: answers broker requests by running the state machine,
//! persists every new image through the [`MetadataStore`] before anyone can observe it,
//! publishes images to long-polling brokers, and runs the session and leader-rebalance
//! timers. How requests arrive is [`crate::server`]'s business.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Mutex, MutexGuard};
use tracing::{error, info, warn};
use tributary_metadata::rpc::{ControllerRequest, ControllerResponse};
use tributary_metadata::{ApiError, MetadataImage, ResponseError};

use crate::state::{Change, ControllerConfig, ControllerState};
use crate::store::{MetadataStore, StoreError};

/// How often preferred leaders are restored (`leader.imbalance.check.interval.seconds`;
/// Kafka checks every 300 s, this is shorter so zones rebalance soon after a broker returns).
pub const REBALANCE_INTERVAL: Duration = Duration::from_secs(10);

/// How often broker sessions are checked for expiry.
pub const SESSION_CHECK_INTERVAL: Duration = Duration::from_millis(100);

/// The longest a metadata long poll is held open.
const MAX_METADATA_WAIT: Duration = Duration::from_secs(30);

/// The controller: the state machine behind the store of record.
#[derive(Debug)]
pub struct Controller {
    /// Held across a change and its save, so commits are ordered.
    state: Mutex<ControllerState>,
    store: Arc<dyn MetadataStore>,
    published: watch::Sender<Arc<MetadataImage>>,
    /// This controller's epoch (from the store's claim): brokers resync fully when it
    /// changes.
    pub epoch: u64,
    /// Set when the store reports that another controller holds it: this one then refuses
    /// every change.
    deposed: AtomicBool,
    started: Instant,
}

impl Controller {
    /// Claims `store` (starting a new controller epoch) and starts from its image.
    pub async fn open(
        store: Arc<dyn MetadataStore>,
        config: ControllerConfig,
    ) -> Result<Arc<Self>, StoreError> {
        let claimed = store.claim().await?;
        let state = ControllerState::new(claimed.image, config, 0);
        let first = state.image().clone();
        if first.version == 0 {
            // A new cluster: its generated id is saved before any broker hears of it.
            store.save(&first, 0).await?;
        }
        let (published, _) = watch::channel(Arc::new(first));
        info!(epoch = claimed.controller_epoch, cluster_id = %state.image().cluster_id, "controller started");
        Ok(Arc::new(Controller {
            state: Mutex::new(state),
            store,
            published,
            epoch: claimed.controller_epoch,
            deposed: AtomicBool::new(false),
            started: Instant::now(),
        }))
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.published.borrow().clone()
    }

    /// Applies new cluster-wide settings to the changes that follow, without a new
    /// controller epoch.
    pub async fn reconfigure(&self, config: ControllerConfig) {
        self.state.lock().await.set_config(config);
    }

    /// Follows the published image: every committed change, newest first.
    pub fn subscribe(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.published.subscribe()
    }

    /// Stops this controller deciding: it answers NOT_CONTROLLER from now on (its host
    /// no longer holds the cluster).
    pub fn retire(&self) {
        self.depose();
    }

    /// Marks this controller deposed and wakes its long polls, so brokers waiting on it
    /// learn at once to look for the current controller.
    fn depose(&self) {
        self.deposed.store(true, Ordering::SeqCst);
        self.published.send_modify(|_| {});
    }

    /// Whether another controller has taken the store over.
    pub fn is_deposed(&self) -> bool {
        self.deposed.load(Ordering::SeqCst)
    }

    async fn lock(&self) -> Result<MutexGuard<'_, ControllerState>, ApiError> {
        if self.is_deposed() {
            return Err(not_controller());
        }
        Ok(self.state.lock().await)
    }

    /// Persists a change's image, then makes it current and publishes it; returns the
    /// reply and the version that includes it (the current one when nothing changed).
    async fn commit<T>(
        &self,
        state: &mut ControllerState,
        change: Change<T>,
    ) -> Result<(T, u64), ApiError> {
        let Some(image) = change.image else {
            return Ok((change.reply, state.image().version));
        };
        if let Err(e) = self.store.save(&image, state.image().version).await {
            if matches!(e, StoreError::Conflict { .. }) {
                error!(error = %e, "another controller holds the metadata store: stepping down");
                self.depose();
                return Err(not_controller());
            }
            return Err(ApiError::new(
                ResponseError::UnknownServerError,
                format!("persisting metadata failed: {e}"),
            ));
        }
        let version = image.version;
        state.set_image(image.clone());
        self.published.send_replace(Arc::new(image));
        Ok((change.reply, version))
    }

    /// Handles one request from a broker.
    pub async fn handle(&self, request: ControllerRequest) -> ControllerResponse {
        use ControllerRequest as Req;
        use ControllerResponse as Resp;
        if let Req::FetchMetadata {
            known_version,
            known_controller_epoch,
            max_wait_ms,
            ..
        } = request
        {
            return self
                .fetch_metadata(known_version, known_controller_epoch, max_wait_ms)
                .await;
        }
        let now = self.now();
        let mut state = match self.lock().await {
            Ok(state) => state,
            Err(e) => return Resp::Error(e),
        };
        let state = &mut *state;
        macro_rules! commit {
            ($change:expr) => {{
                let change = $change;
                match self.commit(state, change).await {
                    Ok(committed) => committed,
                    Err(e) => return Resp::Error(e),
                }
            }};
        }
        match request {
            Req::FetchMetadata { .. } => unreachable!("answered above"),
            // A host with one controller serves whichever cluster a broker names.
            Req::Attach { .. } => Resp::Done {
                result: Ok(()),
                version: state.image().version,
            },
            Req::Register(registration) => {
                let broker_id = registration.broker_id;
                let change = state.register(registration, now);
                match commit!(change) {
                    (Ok(broker_epoch), _) => {
                        info!(broker = broker_id, broker_epoch, "broker registered");
                        Resp::Registered {
                            broker_epoch,
                            cluster_id: state.image().cluster_id.clone(),
                        }
                    }
                    (Err(e), _) => Resp::Error(e),
                }
            }
            Req::Heartbeat {
                broker_id,
                broker_epoch,
            } => {
                let change = state.heartbeat(broker_id, broker_epoch, now);
                match commit!(change) {
                    (Ok(fenced), _) => Resp::Heartbeat { fenced },
                    (Err(e), _) => Resp::Error(e),
                }
            }
            Req::ControlledShutdown {
                broker_id,
                broker_epoch,
            } => {
                let (result, version) = commit!(state.controlled_shutdown(broker_id, broker_epoch));
                Resp::Done { result, version }
            }
            Req::AlterPartition(change) => {
                let (result, _) = commit!(state.alter_partition(&change));
                Resp::PartitionChanged(result)
            }
            Req::AllocateProducerIds {
                broker_id,
                broker_epoch,
            } => match commit!(state.allocate_producer_ids(broker_id, broker_epoch)) {
                (Ok((first, count)), _) => Resp::ProducerIds { first, count },
                (Err(e), _) => Resp::Error(e),
            },
            Req::CreateTopics {
                topics,
                validate_only,
            } => {
                let (results, version) = commit!(state.create_topics(&topics, validate_only));
                Resp::Topics { results, version }
            }
            Req::DeleteTopics { names } => {
                let (results, version) = commit!(state.delete_topics(&names));
                Resp::Topics { results, version }
            }
            Req::CreatePartitions {
                topic,
                count,
                assignments,
                validate_only,
            } => {
                let (result, version) =
                    commit!(state.create_partitions(&topic, count, assignments, validate_only));
                Resp::Done { result, version }
            }
            Req::AlterConfigs {
                resource,
                configs,
                validate_only,
            } => {
                let (result, version) =
                    commit!(state.alter_configs(&resource, configs, validate_only));
                Resp::Done { result, version }
            }
            Req::ElectLeaders {
                preferred,
                partitions,
            } => {
                let (results, version) =
                    commit!(state.elect_leaders(preferred, partitions.as_deref()));
                Resp::Elections { results, version }
            }
        }
    }

    /// The metadata long poll: answers as soon as the image is newer than the broker's (or
    /// at once for a broker that knew another controller), or "no change" after the wait.
    async fn fetch_metadata(
        &self,
        known_version: u64,
        known_epoch: u64,
        max_wait_ms: u64,
    ) -> ControllerResponse {
        let mut rx = self.published.subscribe();
        let wait = Duration::from_millis(max_wait_ms).min(MAX_METADATA_WAIT);
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let current = rx.borrow_and_update().clone();
            if self.is_deposed() {
                return ControllerResponse::Error(not_controller());
            }
            if current.version > known_version || known_epoch != self.epoch {
                return ControllerResponse::Metadata {
                    controller_epoch: self.epoch,
                    image: Some(Box::new((*current).clone())),
                };
            }
            tokio::select! {
                changed = rx.changed() => if changed.is_err() { break },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        ControllerResponse::Metadata {
            controller_epoch: self.epoch,
            image: None,
        }
    }

    /// A broker's heartbeat connection closed: expect it back within the grace period.
    pub async fn session_channel_closed(&self, broker: i32) {
        let now = self.now();
        if let Ok(mut state) = self.lock().await {
            state.shorten_session(broker, now);
        }
    }

    /// Fences brokers whose session expired.
    pub async fn tick_sessions(&self) {
        let now = self.now();
        let Ok(mut state) = self.lock().await else {
            return;
        };
        if let Some(image) = state.expire_sessions(now) {
            if let Err(e) = self.commit(&mut state, Change::to((), image)).await {
                warn!(error = %e, "committing fencing failed");
            }
        }
    }

    /// Restores preferred leaders that are back in sync.
    pub async fn tick_rebalance(&self) {
        let Ok(mut state) = self.lock().await else {
            return;
        };
        if let Some(image) = state.rebalance_leaders(self.now()) {
            info!("restoring preferred leaders");
            if let Err(e) = self.commit(&mut state, Change::to((), image)).await {
                warn!(error = %e, "committing preferred leader election failed");
            }
        }
    }
}

fn not_controller() -> ApiError {
    ApiError::new(
        ResponseError::NotController,
        "this controller no longer holds the metadata store",
    )
}

#[cfg(test)]
mod tests {
    use tributary_metadata::rpc::Registration;
    use uuid::Uuid;

    use super::*;
    use crate::store::MemoryMetadataStore;

    fn register(id: i32) -> ControllerRequest {
        ControllerRequest::Register(Registration {
            broker_id: id,
            incarnation: Uuid::new_v4(),
            rack: None,
            host: "127.0.0.1".into(),
            port: 9092,
            cluster_id: None,
        })
    }

    #[tokio::test]
    async fn changes_are_saved_before_they_are_published_and_a_newer_controller_wins() {
        let store = MemoryMetadataStore::default();
        let first = Controller::open(Arc::new(store.clone()), ControllerConfig::default())
            .await
            .unwrap();
        let cluster_id = first.image().cluster_id.clone();
        assert!(matches!(
            first.handle(register(1)).await,
            ControllerResponse::Registered { .. }
        ));
        let published = first.image();
        assert_eq!(published.brokers.len(), 1);

        let second = Controller::open(Arc::new(store.clone()), ControllerConfig::default())
            .await
            .unwrap();
        assert!(second.epoch > first.epoch);
        assert_eq!(
            *second.image(),
            *published,
            "the new controller starts from what was saved"
        );
        assert_eq!(second.image().cluster_id, cluster_id);

        match first.handle(register(2)).await {
            ControllerResponse::Error(e) => assert_eq!(e.code, ResponseError::NotController),
            other => panic!("a deposed controller answered {other:?}"),
        }
        assert!(first.is_deposed());
        assert_eq!(
            first.image().brokers.len(),
            1,
            "nothing unsaved was published"
        );
        assert!(matches!(
            second.handle(register(2)).await,
            ControllerResponse::Registered { .. }
        ));
    }
}
