//! The controller as a network service: serves the broker RPC channel, persists every new
//! metadata image before anyone can observe it, publishes images to long-polling brokers,
//! and runs the session and leader-rebalance timers.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::io::{BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn, Instrument};

use super::core::{ControllerConfig, ControllerCore};
use crate::cluster::rpc::{self, AdminError, ControllerRequest, ControllerResponse};
use crate::metadata::{FileMetadataStore, MetadataImage, MetadataStore};

const CONTROLLER_EPOCH_FILE: &str = "controller-epoch";
/// How often preferred leaders are restored (`leader.imbalance.check.interval.seconds`;
/// Kafka checks every 300 s, this is shorter so zones rebalance soon after a broker returns).
const REBALANCE_INTERVAL: Duration = Duration::from_secs(10);

/// Shared controller state.
#[derive(Debug)]
pub struct Controller {
    core: Mutex<ControllerCore>,
    store: Box<dyn MetadataStore>,
    published: watch::Sender<Arc<MetadataImage>>,
    /// Incremented on every controller start: brokers resync fully when it changes.
    pub epoch: u64,
    started: Instant,
}

impl Controller {
    /// Opens the store in `dir` and bumps the controller epoch.
    pub fn open(dir: &Path, config: ControllerConfig) -> Result<Arc<Self>> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let store = FileMetadataStore::new(dir)?;
        let image = store.load().context("loading controller metadata")?;
        let epoch_path = dir.join(CONTROLLER_EPOCH_FILE);
        let epoch = std::fs::read_to_string(&epoch_path)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        let tmp = epoch_path.with_extension("tmp");
        std::fs::write(&tmp, epoch.to_string())?;
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, &epoch_path)?;
        let core = ControllerCore::new(image, config, 0);
        let first = core.image().clone();
        if first.version == 0 {
            store
                .save(&first)
                .context("initialising controller metadata")?;
        }
        let (published, _) = watch::channel(Arc::new(first));
        info!(epoch, cluster_id = %core.image().cluster_id, "controller started");
        Ok(Arc::new(Controller {
            core: Mutex::new(core),
            store: Box::new(store),
            published,
            epoch,
            started: Instant::now(),
        }))
    }

    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ControllerCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Persists `image`, then makes it current and publishes it. Holding the core lock
    /// across both keeps commits ordered.
    fn commit(&self, core: &mut ControllerCore, image: MetadataImage) -> Result<u64, AdminError> {
        self.store
            .save(&image)
            .map_err(|e| AdminError::new(-1, format!("persisting metadata failed: {e}")))?;
        let version = image.version;
        core.set_image(image.clone());
        self.published.send_replace(Arc::new(image));
        Ok(version)
    }

    /// The current image.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.published.borrow().clone()
    }

    /// Handles one RPC.
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
        let mut core = self.lock();
        let version_of = |core: &ControllerCore| core.image().version;
        macro_rules! apply {
            ($change:expr) => {{
                let (outcome, image) = $change;
                let version = match image {
                    Some(image) => match self.commit(&mut core, image) {
                        Ok(v) => v,
                        Err(e) => return Resp::Error(e),
                    },
                    None => version_of(&core),
                };
                (outcome, version)
            }};
        }
        match request {
            Req::FetchMetadata { .. } => unreachable!("handled above"),
            Req::Register(registration) => {
                let broker_id = registration.broker_id;
                match core.register(registration, now) {
                    Ok(change) => {
                        let (broker_epoch, _) = apply!(change);
                        info!(broker = broker_id, broker_epoch, "broker registered");
                        Resp::Registered {
                            broker_epoch,
                            cluster_id: core.image().cluster_id.clone(),
                        }
                    }
                    Err(e) => Resp::Error(e),
                }
            }
            Req::Heartbeat {
                broker_id,
                broker_epoch,
            } => match core.heartbeat(broker_id, broker_epoch, now) {
                Ok(change) => {
                    let (fenced, _) = apply!(change);
                    Resp::Heartbeat { fenced }
                }
                Err(e) => Resp::Error(e),
            },
            Req::AlterPartition(change) => {
                let (result, _) = apply!(core.alter_partition(&change));
                Resp::PartitionChanged(result)
            }
            Req::AllocateProducerIds {
                broker_id,
                broker_epoch,
            } => match core.allocate_producer_ids(broker_id, broker_epoch) {
                Ok(change) => {
                    let ((first, count), _) = apply!(change);
                    Resp::ProducerIds { first, count }
                }
                Err(e) => Resp::Error(e),
            },
            Req::CreateTopics {
                topics,
                validate_only,
            } => {
                let (results, version) = apply!(core.create_topics(&topics, validate_only));
                Resp::Topics { results, version }
            }
            Req::DeleteTopics { names } => {
                let (results, version) = apply!(core.delete_topics(&names));
                Resp::Topics { results, version }
            }
            Req::CreatePartitions {
                topic,
                count,
                assignments,
                validate_only,
            } => {
                let (result, version) =
                    apply!(core.create_partitions(&topic, count, assignments, validate_only));
                Resp::Done { result, version }
            }
            Req::AlterConfigs {
                resource,
                configs,
                validate_only,
            } => {
                let (result, version) =
                    apply!(core.alter_configs(&resource, configs, validate_only));
                Resp::Done { result, version }
            }
            Req::ElectLeaders {
                preferred,
                partitions,
            } => {
                let (results, version) =
                    apply!(core.elect_leaders(preferred, partitions.as_deref()));
                Resp::Elections { results, version }
            }
        }
    }

    async fn fetch_metadata(
        &self,
        known_version: u64,
        known_epoch: u64,
        max_wait_ms: u64,
    ) -> ControllerResponse {
        let mut rx = self.published.subscribe();
        let deadline = tokio::time::Instant::now() + Duration::from_millis(max_wait_ms.min(30_000));
        loop {
            let current = rx.borrow_and_update().clone();
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
    fn session_channel_closed(&self, broker: i32) {
        let now = self.now();
        self.lock().shorten_session(broker, now);
    }

    /// Session expiry, run every 100 ms.
    fn tick_sessions(&self) {
        let now = self.now();
        let mut core = self.lock();
        if let Some(image) = core.expire_sessions(now) {
            if let Err(e) = self.commit(&mut core, image) {
                warn!(error = %e, "committing fencing failed");
            }
        }
    }

    fn tick_rebalance(&self) {
        let mut core = self.lock();
        if let Some(image) = core.rebalance_leaders() {
            info!("restoring preferred leaders");
            if let Err(e) = self.commit(&mut core, image) {
                warn!(error = %e, "committing preferred leader election failed");
            }
        }
    }
}

/// Binds with SO_REUSEADDR, so a restarted controller can take its port back at once.
async fn bind_reusable(listen: &str) -> std::io::Result<TcpListener> {
    let addr = tokio::net::lookup_host(listen)
        .await?
        .next()
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("no address for {listen}"),
            )
        })?;
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// A controller serving on a socket.
pub struct RunningController {
    pub controller: Arc<Controller>,
    pub addr: std::net::SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningController {
    /// Stops serving.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            task.abort();
            let _ = task.await;
        }
    }
}

/// Opens the controller's store in `dir` and serves on `listen`.
pub async fn start(
    dir: &Path,
    config: ControllerConfig,
    listen: &str,
) -> Result<RunningController> {
    let controller = Controller::open(dir, config)?;
    let listener = bind_reusable(listen)
        .await
        .with_context(|| format!("binding controller listener {listen}"))?;
    let addr = listener.local_addr()?;
    let (shutdown, rx) = watch::channel(false);
    let accept = tokio::spawn({
        let controller = controller.clone();
        let mut rx = rx.clone();
        async move {
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, peer)) => {
                            let controller = controller.clone();
                            let mut stop = rx.clone();
                            tokio::spawn(async move {
                                // A stopped controller drops its connections, so brokers
                                // reconnect to whichever controller serves next.
                                tokio::select! {
                                    served = serve_connection(controller, stream) => {
                                        if let Err(e) = served {
                                            debug!(error = %e, "controller connection closed");
                                        }
                                    }
                                    _ = stop.changed() => {}
                                }
                            }.instrument(tracing::debug_span!("controller-conn", %peer)));
                        }
                        Err(e) => warn!(error = %e, "controller accept failed"),
                    },
                    _ = rx.changed() => return,
                }
            }
        }
    });
    let timers = tokio::spawn({
        let controller = controller.clone();
        let mut rx = rx.clone();
        async move {
            let mut sessions = tokio::time::interval(Duration::from_millis(100));
            let mut rebalance = tokio::time::interval(REBALANCE_INTERVAL);
            loop {
                tokio::select! {
                    _ = sessions.tick() => controller.tick_sessions(),
                    _ = rebalance.tick() => controller.tick_rebalance(),
                    _ = rx.changed() => return,
                }
            }
        }
    });
    Ok(RunningController {
        controller,
        addr,
        shutdown,
        tasks: vec![accept, timers],
    })
}

/// Serves one connection. The connection a broker heartbeats on is its session channel:
/// when it closes (the broker process died), the session is cut short, so a crashed broker
/// is fenced in a fraction of the session timeout.
async fn serve_connection(controller: Arc<Controller>, stream: TcpStream) -> std::io::Result<()> {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut writer = BufWriter::new(write);
    let mut heartbeating: Option<i32> = None;
    let result = async {
        while let Some(request) = rpc::read_message::<_, ControllerRequest>(&mut reader).await? {
            if let ControllerRequest::Heartbeat { broker_id, .. } = &request {
                heartbeating = Some(*broker_id);
            }
            let response = controller.handle(request).await;
            rpc::write_message(&mut writer, &response).await?;
        }
        Ok(())
    }
    .await;
    if let Some(broker) = heartbeating {
        controller.session_channel_closed(broker);
    }
    result
}
