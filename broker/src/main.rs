//! `tributary-broker`: runs one broker until SIGTERM or Ctrl-C.

use anyhow::Result;
use clap::Parser;
use tokio::signal::unix::{signal, SignalKind};
use tributary_broker::{BrokerArgs, BrokerConfig};

/// A broker that cannot run says why on one line, which supervisors (the local launcher,
/// `kubectl logs`) show as the reason it exited.
fn main() -> std::process::ExitCode {
    let args = BrokerArgs::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(threads) = args.worker_threads {
        builder.worker_threads(threads.into());
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(e) => return fatal(&anyhow::Error::from(e)),
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => fatal(&e),
    }
}

fn fatal(error: &anyhow::Error) -> std::process::ExitCode {
    eprintln!("tributary-broker: fatal: {error:#}");
    std::process::ExitCode::FAILURE
}

/// Every hosted partition keeps its active segment's log and index files open, and every
/// client a socket: the soft open-file limit (often 1024) is raised to the hard one, as
/// Kafka's documentation asks operators to raise it.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open file limit"),
        Err(e) => tracing::warn!(error = %e, "cannot raise the open file limit"),
    }
}

async fn run(args: BrokerArgs) -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        // Colours only on a terminal: log files and `kubectl logs` get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    raise_open_file_limit();
    let config = BrokerConfig::from_args(&args)?;
    if args.check_ready {
        return tributary_broker::probe::check_ready(&config).await;
    }
    let running = tributary_broker::start(config).await?;
    let b = &running.broker.config;
    println!(
        "Tributary broker {} listening on {} (cluster {})\nbootstrap servers: {}:{}",
        b.broker_id,
        running.local_addr,
        running.broker.cluster_id(),
        b.advertised_host,
        b.advertised_port
    );
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("shutting down");
    running.shutdown().await
}
