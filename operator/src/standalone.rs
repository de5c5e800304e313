//! `tributary-operator controller`: the controller alone on a socket, its metadata in a
//! local directory, for brokers started by other means (a StatefulSet, a process
//! supervisor). Runs until SIGTERM or Ctrl-C.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use tokio::signal::unix::{signal, SignalKind};
use tributary_controller::ControllerConfig;

/// Options of `tributary-operator controller`.
#[derive(Debug, Clone, Args)]
pub struct ControllerArgs {
    /// Directory of the controller's metadata (the image and the controller epoch).
    #[arg(
        long,
        env = "TRIBUTARY_CONTROLLER_DATA_DIR",
        default_value = "./tributary-controller"
    )]
    pub data_dir: PathBuf,
    /// Address brokers reach the controller on.
    #[arg(
        long,
        env = "TRIBUTARY_CONTROLLER_LISTEN",
        default_value = "0.0.0.0:9090"
    )]
    pub listen: String,
    /// Cluster-wide broker settings, key=value (`default.replication.factor`,
    /// `min.insync.replicas`, `num.partitions`, ...); repeatable.
    #[arg(long = "override")]
    pub overrides: Vec<String>,
}

/// Parses `key=value` pairs.
pub fn settings(pairs: &[String]) -> Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .with_context(|| format!("--override {pair}: expected key=value"))?;
            Ok((key.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

/// Serves the controller until SIGTERM or Ctrl-C.
pub async fn run(args: ControllerArgs) -> Result<()> {
    let config = ControllerConfig::from_settings(&settings(&args.overrides)?);
    let running = tributary_controller::start_local(&args.data_dir, config, &args.listen).await?;
    println!("controller listening on {}", running.addr);
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = interrupt.recv() => {}
    }
    running.shutdown().await;
    Ok(())
}
