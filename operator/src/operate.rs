//! `tributary-operator run`: the Kubernetes operator. Replicas elect one active member with a
//! `coordination.k8s.io` Lease; the active one hosts every cluster's controller on one
//! socket, runs the reconcile loops, and labels its own pod so the controller Service
//! routes brokers to it alone. A replica that loses the lease exits, and comes back as a
//! standby: nothing it decided can be written after that, because the metadata store
//! fences it (see [`crate::store`]).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use clap::Args;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{info, warn};
use tributary_controller::{server, ControllerSet};

use crate::reconcile::{self, Context};

/// The pod label the active replica carries; the controller Service selects it.
pub const ACTIVE_LABEL: &str = "tributary.dev/controller-active";

/// Options of `tributary-operator run`.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// Where the controller endpoint listens (brokers connect here).
    #[arg(
        long,
        env = "TRIBUTARY_CONTROLLER_LISTEN",
        default_value = "0.0.0.0:9090"
    )]
    pub listen: String,
    /// `host:port` brokers reach the controller endpoint on (the operator's Service).
    #[arg(long, env = "TRIBUTARY_CONTROLLER_ADDRESS")]
    pub controller_address: String,
    /// The broker image of clusters whose spec names none.
    #[arg(
        long,
        env = "TRIBUTARY_BROKER_IMAGE",
        default_value = "tributary/broker:dev"
    )]
    pub broker_image: String,
    /// Watch KafkaClusters in this namespace only (default: every namespace).
    #[arg(long, env = "TRIBUTARY_WATCH_NAMESPACE")]
    pub watch_namespace: Option<String>,
    /// This replica's pod (labelled when active).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: String,
    /// The operator's namespace (its Lease lives there).
    #[arg(long, env = "POD_NAMESPACE")]
    pub pod_namespace: String,
    /// The Lease the replicas compete for.
    #[arg(long, default_value = "tributary-operator")]
    pub lease_name: String,
    /// Seconds a lease holder may go without renewing before a standby takes over.
    #[arg(long, default_value_t = 6)]
    pub lease_duration: u64,
    /// Where `/healthz` answers (the pod's liveness and readiness).
    #[arg(long, env = "TRIBUTARY_HEALTH_LISTEN", default_value = "0.0.0.0:8080")]
    pub health_listen: String,
}

/// Sets or clears this pod's active label.
async fn mark_active(pods: &Api<Pod>, pod: &str, active: bool) -> Result<()> {
    let value = if active {
        serde_json::json!("true")
    } else {
        serde_json::Value::Null
    };
    let patch = serde_json::json!({ "metadata": { "labels": { ACTIVE_LABEL: value } } });
    pods.patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .with_context(|| format!("labelling pod {pod}"))?;
    Ok(())
}

/// Answers every HTTP request with `200 ok`: the process is up and its runtime responsive.
async fn serve_health(listener: TcpListener) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        tokio::spawn(async move {
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n")
                .await;
        });
    }
}

/// Runs the operator until SIGTERM, or until this replica loses the lease.
pub async fn run(args: RunArgs) -> Result<()> {
    let client = Client::try_default()
        .await
        .context("connecting to the Kubernetes API")?;
    let health = TcpListener::bind(&args.health_listen)
        .await
        .with_context(|| format!("binding {}", args.health_listen))?;
    tokio::spawn(serve_health(health));
    let pods: Api<Pod> = Api::namespaced(client.clone(), &args.pod_namespace);
    // A replica restarting after it lost the lease must not attract brokers.
    mark_active(&pods, &args.pod_name, false).await?;

    // One identity per process: a restarted replica must wait out its predecessor's lease
    // like any standby, not inherit it.
    let identity = format!(
        "{}-{}",
        args.pod_name,
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let lease = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&args.pod_namespace)
        .with_identity(&identity)
        .with_duration(args.lease_duration)
        .with_grace(2.min(args.lease_duration.saturating_sub(1)).max(1))
        .build()
        .await
        .context("setting up leader election")?;
    let (mut leading, lease_task) = lease.watch().await;
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;

    info!(%identity, "standing by for the lease");
    let waited = Instant::now();
    loop {
        if *leading.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = leading.changed() => changed.context("leader election stopped")?,
            _ = term.recv() => return Ok(()),
            _ = interrupt.recv() => return Ok(()),
        }
    }
    info!(%identity, waited_ms = waited.elapsed().as_millis() as u64, "leading: hosting the controllers");

    let controllers = Arc::new(ControllerSet::default());
    let endpoint = server::serve_set(controllers.clone(), &args.listen).await?;
    mark_active(&pods, &args.pod_name, true).await?;
    let context = Arc::new(Context::new(
        client.clone(),
        controllers,
        args.controller_address.clone(),
        args.broker_image.clone(),
        Some(args.pod_name.clone()),
    ));
    let namespace = args.watch_namespace.clone();
    let mut loops = tokio::spawn(async move {
        reconcile::run(context, namespace.as_deref()).await;
    });

    let outcome = loop {
        tokio::select! {
            changed = leading.changed() => {
                if changed.is_err() || !*leading.borrow_and_update() {
                    break Err(anyhow::anyhow!("lost the lease: exiting so a standby takes over"));
                }
            }
            _ = &mut loops => break Err(anyhow::anyhow!("the reconcile loop ended")),
            _ = term.recv() => break Ok(()),
            _ = interrupt.recv() => break Ok(()),
        }
    };
    // Stop deciding first, then hand the lease over at once rather than at its expiry.
    loops.abort();
    endpoint.shutdown().await;
    if let Err(e) = mark_active(&pods, &args.pod_name, false).await {
        warn!(error = %e, "clearing the active label failed");
    }
    drop(leading);
    match lease_task.await {
        Ok(Ok(_)) => info!("lease released"),
        Ok(Err(e)) => warn!(error = %e, "releasing the lease failed"),
        Err(e) => warn!(error = %e, "the lease task failed"),
    }
    outcome
}
