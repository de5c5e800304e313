//! Tributary's broker: a Kafka wire-protocol compatible broker.
//!
//! Layers, from the wire inwards: [`server`] (connections and dispatch), [`protocol`]
//! (framing and versions), [`handlers`] (one module per API family), [`broker`] (shared
//! state and metadata changes), [`partition`] (a replica's append/read rules), [`log`]
//! (segments and indexes), [`group`] (consumer groups) and [`producer`] (idempotence).

pub mod broker;
pub mod config;
pub mod group;
pub mod handlers;
pub mod log;
pub mod metadata;
pub mod partition;
pub mod producer;
pub mod protocol;
pub mod server;
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
    shutdown: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl RunningBroker {
    /// Stops accepting, waits for background tasks and flushes to disk.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let broker = self.broker.clone();
        tokio::task::spawn_blocking(move || broker.shutdown()).await?
    }
}

/// Opens the data directory, binds the listener and starts serving.
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
    let broker = tokio::task::spawn_blocking(move || Broker::open(config)).await??;
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
    let housekeeping = tokio::spawn(server::housekeeping(broker.clone(), rx));
    Ok(RunningBroker {
        broker,
        local_addr,
        shutdown,
        tasks: vec![serve, housekeeping],
    })
}
