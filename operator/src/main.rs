//! `tributary-operator`: the Kubernetes operator and cluster controller.
//!
//! It will reconcile `KafkaCluster` and `KafkaTopic` resources and act as the controller
//! that places replicas and elects leaders. This binary currently only reports its version.

use clap::Parser;

/// Command-line interface.
#[derive(Debug, Parser)]
#[command(
    name = "tributary-operator",
    version,
    about = "Tributary operator and controller"
)]
struct Args {}

fn main() {
    let _args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    eprintln!(
        "tributary-operator {}: no controller is implemented yet",
        env!("CARGO_PKG_VERSION")
    );
    std::process::exit(2);
}
