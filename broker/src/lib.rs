//! Tributary's broker: a Kafka wire-protocol compatible broker.
//!
//! Layers, from the wire inwards:
//! - [`server`]: connections, framing and in-order dispatch;
//! - [`protocol`]: request headers and the API version table;
//! - [`handlers`]: one module per API family, thin translations to broker calls;
//! - [`broker`]: one broker's state by role (metadata cache, replica manager, forwarding
//!   to the controller, AlterPartition, log directories);
//! - [`partition`]: a replica's rules (role, appends, follower truncation, reads,
//!   checkpoints);
//! - [`log`]: segments, indexes, leader epochs, recovery, flush jobs and compaction;
//! - [`replication`]: the leader's view of its followers and the follower fetchers;
//! - [`group`]: consumer groups (state machine, coordinator, committed offsets);
//! - [`producer`]: idempotent-producer sequence state;
//! - [`transaction`]: the transaction coordinator (so far its state machine);
//! - [`cluster`]: the controller client and the membership loops;
//! - [`probe`]: the readiness check broker pods run;
//! - [`config`]: broker settings and resolved topic policies; [`schema`]: the primitives
//!   of Kafka's internal record schemas; [`util`]: small helpers.
//!
//! The metadata image and the broker ↔ controller messages are
//! [`tributary_metadata`]'s; the controller a broker embeds when it runs alone is
//! [`tributary_controller`]'s.

pub mod broker;
pub mod cluster;
pub mod config;
pub mod fetch_session;
pub mod group;
pub mod handlers;
pub mod log;
pub mod partition;
pub mod probe;
pub mod producer;
pub mod protocol;
pub mod replication;
pub mod schema;
pub mod server;
pub mod transaction;
pub mod util;

use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use broker::Broker;
pub use config::{BrokerArgs, BrokerConfig};

/// A running broker: its bound address and a handle to stop it.
pub struct RunningBroker {
    pub broker: Arc<Broker>,
    pub local_addr: std::net::SocketAddr,
    /// The embedded controller, when the broker runs without `--controller`.
    pub controller: Option<tributary_controller::RunningController>,
    shutdown: watch::Sender<bool>,
    /// The heartbeat loop, stopped first on shutdown (a heartbeat would unfence the broker).
    heartbeats: tokio::task::JoinHandle<()>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningBroker {
    /// A controlled shutdown, as Kafka's: heartbeats stop, the controller moves this
    /// broker's leaderships while it still answers (so clients are redirected, not left
    /// waiting), then the broker stops accepting, waits for its background tasks and
    /// flushes to disk.
    pub async fn shutdown(self) -> Result<()> {
        self.heartbeats.abort();
        let _ = self.heartbeats.await;
        if cluster::membership::controlled_shutdown(&self.broker).await {
            // Keep answering for a moment, as a Kafka broker does while it shuts down:
            // clients told NOT_LEADER_OR_FOLLOWER ask this broker for metadata next, and
            // learn the new leaders from it instead of waiting out a connection timeout
            // on an address that is about to disappear.
            tokio::time::sleep(SHUTDOWN_LINGER).await;
        }
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let broker = self.broker.clone();
        let flushed = tokio::task::spawn_blocking(move || broker.shutdown()).await?;
        if let Some(controller) = self.controller {
            controller.shutdown().await;
        }
        flushed
    }
}

/// How long a broker keeps serving after its leaderships moved away, before it stops.
const SHUTDOWN_LINGER: std::time::Duration = std::time::Duration::from_millis(1500);

/// Binds the listener, joins the controller (starting an embedded one when none is
/// configured), waits for the first metadata image, and starts serving.
pub async fn start(config: BrokerConfig) -> Result<RunningBroker> {
    let addr = config.bind_addr()?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let local_addr = listener.local_addr()?;
    let mut config = config;
    if config.advertised_port == 0 {
        config.advertised_port = local_addr.port() as i32;
    }
    let (embedded, controller_addr) = match &config.controller {
        Some(addr) => (None, addr.clone()),
        None => {
            let dir = config.state_dir().join("controller");
            let running = tributary_controller::start_local(
                &dir,
                tributary_controller::ControllerConfig::from_settings(&config.settings),
                "127.0.0.1:0",
            )
            .await?;
            let addr = running.addr.to_string();
            (Some(running), addr)
        }
    };
    let broker =
        tokio::task::spawn_blocking(move || Broker::open(config, &controller_addr)).await??;
    cluster::membership::register(&broker).await?;
    cluster::membership::await_first_image(&broker).await?;
    let (shutdown, rx) = watch::channel(false);
    let serve = tokio::spawn({
        let broker = broker.clone();
        let rx = rx.clone();
        async move {
            if let Err(e) = server::serve(broker, listener, rx).await {
                tracing::error!(error = %e, "listener failed");
            }
        }
    });
    let housekeeping = tokio::spawn(server::housekeeping(broker.clone(), rx.clone()));
    let cleaner = tokio::spawn(server::log_cleaner(broker.clone(), rx.clone()));
    let heartbeats = tokio::spawn(cluster::membership::heartbeat_loop(
        broker.clone(),
        rx.clone(),
    ));
    let storage = tokio::spawn(cluster::membership::storage_watch(
        broker.clone(),
        rx.clone(),
    ));
    let group_writer = tokio::spawn({
        let broker = broker.clone();
        let rx = rx.clone();
        async move { broker.offsets.run_group_writer(rx).await }
    });
    let metadata = tokio::spawn(cluster::membership::metadata_loop(broker.clone(), rx));
    Ok(RunningBroker {
        broker,
        local_addr,
        controller: embedded,
        shutdown,
        heartbeats,
        tasks: vec![
            serve,
            housekeeping,
            cleaner,
            metadata,
            storage,
            group_writer,
        ],
    })
}
