//! The broker's side of cluster membership: register with the controller, heartbeat to
//! keep the session, and pull metadata images (long poll) to apply them.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use tokio::sync::watch;
use tracing::{info, warn};

use super::client::ControllerClient;
use tributary_metadata::rpc::{ControllerRequest, ControllerResponse, Registration};
use tributary_metadata::ResponseError;

use crate::broker::{Broker, CONTROLLER_TIMEOUT};

/// How long a metadata poll waits for a change before asking again.
const METADATA_POLL_MS: u64 = 5000;

/// Why a registration attempt failed.
#[derive(Debug, thiserror::Error)]
enum RegistrationError {
    /// The data directory belongs to another cluster: retrying cannot help.
    #[error("INCONSISTENT_CLUSTER_ID: {0}")]
    OtherCluster(String),
    /// The controller is unreachable or refused for now.
    #[error(transparent)]
    Retriable(#[from] anyhow::Error),
}

/// Registers this broker, retrying until the controller answers.
pub async fn register(broker: &Broker) -> Result<()> {
    let mut logged = false;
    loop {
        match try_register(broker).await {
            Ok(()) => return Ok(()),
            Err(e @ RegistrationError::OtherCluster(_)) => return Err(e.into()),
            Err(RegistrationError::Retriable(e)) => {
                if !logged {
                    warn!(controller = %broker.controller.addr(), error = %e, "waiting for the controller");
                    logged = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn try_register(broker: &Broker) -> Result<(), RegistrationError> {
    let cluster_id = broker.cluster_id();
    let request = ControllerRequest::Register(Registration {
        broker_id: broker.config.broker_id,
        incarnation: broker.incarnation,
        rack: broker.config.rack.clone(),
        host: broker.config.advertised_host.clone(),
        port: broker.config.advertised_port,
        cluster_id: (!cluster_id.is_empty()).then_some(cluster_id),
    });
    match broker.controller.call(&request, CONTROLLER_TIMEOUT).await? {
        ControllerResponse::Registered {
            broker_epoch,
            cluster_id,
        } => {
            broker.set_cluster_id(&cluster_id)?;
            broker.set_broker_epoch(broker_epoch);
            info!(broker_epoch, %cluster_id, "registered with the controller");
            Ok(())
        }
        ControllerResponse::Error(e) if e.code == ResponseError::InconsistentClusterId => {
            Err(RegistrationError::OtherCluster(e.message))
        }
        other => Err(anyhow!("registration refused: {other:?}").into()),
    }
}

/// Waits for the first metadata image that includes this broker's registration.
pub async fn await_first_image(broker: &Arc<Broker>) -> Result<()> {
    let client = ControllerClient::new(broker.controller.addr());
    loop {
        let request = ControllerRequest::FetchMetadata {
            broker_id: broker.config.broker_id,
            known_version: 0,
            known_controller_epoch: 0,
            max_wait_ms: 1000,
        };
        if let Ok(ControllerResponse::Metadata {
            image: Some(image), ..
        }) = client.call(&request, CONTROLLER_TIMEOUT).await
        {
            if image
                .brokers
                .get(&broker.config.broker_id)
                .is_some_and(|b| b.epoch == broker.broker_epoch())
            {
                broker.apply_image(*image);
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long a stopping broker waits for the controller to move its leaderships.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks the controller to move this broker's leaderships before it stops, and waits until
/// this broker has applied the image that moved them, so in-flight acks=all requests fail
/// over to the new leaders. A controller that does not answer in time only delays the stop.
/// Returns whether the leaderships moved.
pub async fn controlled_shutdown(broker: &Broker) -> bool {
    let request = ControllerRequest::ControlledShutdown {
        broker_id: broker.config.broker_id,
        broker_epoch: broker.broker_epoch(),
    };
    let deadline = tokio::time::Instant::now() + CONTROLLED_SHUTDOWN_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match broker.controller.call(&request, left).await {
            Ok(ControllerResponse::Done {
                result: Ok(()),
                version,
            }) => {
                info!(version, "controlled shutdown: leaderships moved");
                broker
                    .metadata
                    .wait_for_version(version, CONTROLLED_SHUTDOWN_TIMEOUT)
                    .await;
                return true;
            }
            // The controller this broker knew has just been replaced: ask its successor.
            Ok(ControllerResponse::Error(e))
                if e.code == ResponseError::NotController
                    && tokio::time::Instant::now() + NOT_CONTROLLER_RETRY < deadline =>
            {
                tokio::time::sleep(NOT_CONTROLLER_RETRY).await;
            }
            Ok(other) => {
                warn!(answer = ?other, "controlled shutdown refused; stopping anyway");
                return false;
            }
            Err(e) => {
                warn!(error = %e, "controlled shutdown failed; stopping anyway");
                return false;
            }
        }
    }
}

/// How long a broker waits before asking again when its controller was just replaced.
const NOT_CONTROLLER_RETRY: Duration = Duration::from_millis(200);

/// Heartbeats every `broker.heartbeat.interval.ms`, re-registering when the controller no
/// longer knows this registration (a controller that lost it, or a session that was replaced).
pub async fn heartbeat_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let interval = Duration::from_millis(
        broker
            .config
            .setting_i64("broker.heartbeat.interval.ms")
            .max(10) as u64,
    );
    let client = ControllerClient::new(broker.controller.addr());
    let mut ticker = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        if broker.storage.is_failed() {
            // Stay fenced until the data directory takes writes again (storage_watch).
            continue;
        }
        let request = ControllerRequest::Heartbeat {
            broker_id: broker.config.broker_id,
            broker_epoch: broker.broker_epoch(),
        };
        match client.call(&request, interval * 5).await {
            Ok(ControllerResponse::Heartbeat { .. }) => broker.session_acknowledged(),
            Ok(ControllerResponse::Error(e)) if e.code == ResponseError::StaleBrokerEpoch => {
                warn!("controller does not know this registration: registering again");
                if let Err(e) = register(&broker).await {
                    warn!(error = %e, "re-registration failed");
                }
            }
            Ok(other) => warn!(answer = ?other, "unexpected heartbeat answer"),
            Err(e) => tracing::debug!(error = %e, "heartbeat failed"),
        }
    }
}

/// How often a broker whose storage failed probes whether it takes writes again.
const STORAGE_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// Handles storage failures (see [`crate::broker::storage`]): the broker asks the
/// controller to move its leaderships, if another broker is live to take them, and
/// heartbeats stop; once a probe write succeeds, heartbeats resume and the controller
/// unfences the broker, whose replicas then catch up as followers.
pub async fn storage_watch(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = broker.storage.failure() => {}
            _ = shutdown.changed() => return,
        }
        let others_live = broker
            .metadata
            .image()
            .live_brokers()
            .iter()
            .any(|id| *id != broker.config.broker_id);
        if others_live && controlled_shutdown(&broker).await {
            warn!("storage failed: leaderships moved to other brokers; serving reads");
        }
        loop {
            tokio::select! {
                _ = tokio::time::sleep(STORAGE_PROBE_INTERVAL) => {}
                _ = shutdown.changed() => return,
            }
            let dir = broker.config.data_dir.clone();
            let probed =
                tokio::task::spawn_blocking(move || crate::broker::storage::probe(&dir)).await;
            if matches!(probed, Ok(Ok(()))) {
                broker.storage.mark_recovered();
                break;
            }
        }
    }
}

/// Pulls metadata images and applies each new one.
pub async fn metadata_loop(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let client = ControllerClient::new(broker.controller.addr());
    let mut known_version = broker.metadata.image().version;
    let mut known_epoch = 0;
    loop {
        let request = ControllerRequest::FetchMetadata {
            broker_id: broker.config.broker_id,
            known_version,
            known_controller_epoch: known_epoch,
            max_wait_ms: METADATA_POLL_MS,
        };
        let response = tokio::select! {
            r = client.call(&request, Duration::from_millis(METADATA_POLL_MS) + CONTROLLER_TIMEOUT) => r,
            _ = shutdown.changed() => return,
        };
        match response {
            Ok(ControllerResponse::Metadata {
                controller_epoch,
                image,
            }) => {
                if controller_epoch != known_epoch && known_epoch != 0 {
                    info!(controller_epoch, "new controller epoch: full resync");
                }
                known_epoch = controller_epoch;
                if let Some(image) = image {
                    known_version = image.version;
                    let broker = broker.clone();
                    // Applying opens logs (blocking I/O).
                    let _ = tokio::task::spawn_blocking(move || {
                        let handle = tokio::runtime::Handle::current();
                        let _guard = handle.enter();
                        broker.apply_image(*image)
                    })
                    .await;
                }
            }
            // A replaced controller answers NOT_CONTROLLER and closes the connection: the
            // next poll reaches its successor.
            Ok(ControllerResponse::Error(e)) if e.code == ResponseError::NotController => {
                tracing::debug!(error = %e, "metadata poll reached a replaced controller");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Ok(other) => {
                warn!(answer = ?other, "unexpected metadata answer");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                tracing::debug!(error = %e, "metadata poll failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
