//! Tributary's cluster controller: replica placement, leader election, broker liveness and
//! the metadata image of record. It runs inside a standalone broker, inside
//! `tributary-operator local`, and inside the Kubernetes operator; brokers reach it over
//! the [`tributary_metadata::rpc`] channel.
//!
//! Layers, from pure to I/O:
//! - [`placement`] and [`election`]: pure rules for one topic or one partition;
//! - [`state`]: the state machine, every change a function from one image to the next;
//! - [`store`]: where the image of record lives (a local directory, the Kubernetes API),
//!   claimed by one controller at a time and written conditionally;
//! - [`service`]: runs changes, saves them before publishing, and keeps the timers;
//! - [`server`]: the TCP endpoint brokers talk to.

pub mod election;
pub mod placement;
pub mod server;
pub mod service;
pub mod state;
pub mod store;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;

pub use server::{ControllerSet, RunningController, RunningServer};
pub use service::Controller;
pub use state::ControllerConfig;
pub use store::{FileMetadataStore, MetadataStore};

/// Starts a controller on the local store in `dir`, serving on `listen`.
pub async fn start_local(
    dir: &Path,
    config: ControllerConfig,
    listen: &str,
) -> anyhow::Result<RunningController> {
    let store: Arc<dyn MetadataStore> = Arc::new(FileMetadataStore::new(dir));
    let controller = Controller::open(store, config)
        .await
        .with_context(|| format!("opening the controller's metadata in {}", dir.display()))?;
    server::serve(controller, listen).await
}
