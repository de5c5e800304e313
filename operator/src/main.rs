//! `tributary-operator`: the cluster controller, and the launcher of local clusters.
//!
//! `tributary-operator local` runs the controller in this process and the brokers as child
//! processes on 127.0.0.1, one per zone slot — the embedded default for machines without
//! Kubernetes. The Kubernetes operator mode embeds the same controller.

use tributary_operator::{build, crd, local, operate, standalone};

use anyhow::{Context, Result};
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
    /// Run the Kubernetes operator: KafkaClusters and KafkaTopics, and the controllers of
    /// their clusters (one active replica, elected with a Lease).
    Run(operate::RunArgs),
    /// Run the controller alone, for brokers started by other means.
    Controller(standalone::ControllerArgs),
    /// Print the Kubernetes objects a KafkaCluster manifest should have, as YAML.
    Render {
        /// The KafkaCluster manifest.
        #[arg(short = 'f', long)]
        file: std::path::PathBuf,
        /// The namespace, when the manifest names none.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// `host:port` of the controller the brokers join.
        #[arg(long)]
        controller: String,
        /// The broker image, when the manifest names none.
        #[arg(long, default_value = "tributary/broker:dev")]
        image: String,
    },
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
        // Colours only on a terminal: log files and `kubectl logs` get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Args::parse().command {
        Command::Local(args) => local::run(args).await,
        Command::Run(args) => operate::run(args).await,
        Command::Controller(args) => standalone::run(args).await,
        Command::Render {
            file,
            namespace,
            controller,
            image,
        } => {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let manifest: serde_json::Value = serde_norway::from_str(&text)
                .with_context(|| format!("{} is not YAML", file.display()))?;
            let (api_version, kind) = (&manifest["apiVersion"], &manifest["kind"]);
            if api_version != "tributary.dev/v1alpha1" || kind != "KafkaCluster" {
                anyhow::bail!(
                    "{} is {kind} {api_version}, not a tributary.dev/v1alpha1 KafkaCluster",
                    file.display()
                );
            }
            let mut cluster: crd::KafkaCluster = serde_json::from_value(manifest)
                .with_context(|| format!("{} is not a valid KafkaCluster", file.display()))?;
            cluster.metadata.namespace.get_or_insert(namespace);
            let context = build::BuildContext {
                controller,
                default_image: image,
                owner: None,
            };
            print!("{}", build::to_yaml(&build::desired(&cluster, &context)?)?);
            Ok(())
        }
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
