//! `tributary-operator`: the cluster controller, and the launcher of local clusters.
//!
//! `tributary-operator local` runs the controller in this process and the brokers as child
//! processes on 127.0.0.1, one per zone slot — the embedded default for machines without
//! Kubernetes. The Kubernetes operator mode embeds the same controller.

use tributary_operator::{crd, local};

use anyhow::Result;
use clap::{Parser, Subcommand};

/// Command-line interface.
#[derive(Debug, Parser)]
#[command(
    name = "tributary-operator",
    version,
    about = "Tributary operator and cluster controller"
)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local multi-zone cluster: the controller plus broker processes on 127.0.0.1.
    Local(local::LocalArgs),
    /// Print the CustomResourceDefinitions (KafkaCluster, KafkaTopic) as YAML, or write
    /// them into a directory, one file each.
    Crd {
        /// Write `<plural>.tributary.dev.yaml` files into this directory instead.
        #[arg(long)]
        write: Option<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Args::parse().command {
        Command::Local(args) => local::run(args).await,
        Command::Crd { write: Some(dir) } => crd::write_all(&dir),
        Command::Crd { write: None } => {
            let documents = crd::definitions()
                .iter()
                .map(crd::to_yaml)
                .collect::<Result<Vec<_>>>()?;
            print!("{}", documents.join("---\n"));
            Ok(())
        }
    }
}
