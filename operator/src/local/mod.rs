//! A local multi-zone cluster: the controller in this process, brokers as supervised child
//! processes, data kept under one directory across runs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use tokio::process::Child;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tributary_controller::ControllerConfig;
use tributary_metadata::launch::BrokerLaunch;

use supervise::RestartBackoff;

pub mod supervise;

/// Options of `tributary-operator local`.
#[derive(Debug, Clone, Args)]
pub struct LocalArgs {
    /// Number of zones (racks); brokers are spread across them.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=26))]
    pub zones: u16,
    /// Brokers in each zone.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub brokers_per_zone: u16,
    /// Directory for the controller's metadata and every broker's logs.
    #[arg(long, default_value = "./tributary-data")]
    pub data_dir: PathBuf,
    /// Port of the first broker; the others take the following ports.
    #[arg(long, default_value_t = 9092)]
    pub base_port: u16,
    /// Port of the controller (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub controller_port: u16,
    /// The broker binary (default: `tributary-broker` next to this binary).
    #[arg(long, env = "TRIBUTARY_BROKER_BIN")]
    pub broker_bin: Option<PathBuf>,
    /// Extra broker settings, key=value, passed to every broker (repeatable).
    #[arg(long = "override")]
    pub overrides: Vec<String>,
}

/// One broker slot of the cluster.
#[derive(Debug, Clone)]
struct BrokerSlot {
    id: i32,
    zone: String,
    port: u16,
    data_dir: PathBuf,
}

fn zone_name(index: u16) -> String {
    format!("zone-{}", (b'a' + index as u8) as char)
}

fn slots(args: &LocalArgs) -> Vec<BrokerSlot> {
    let total = args.zones * args.brokers_per_zone;
    (0..total)
        .map(|i| {
            let id = i as i32 + 1;
            BrokerSlot {
                id,
                zone: zone_name(i % args.zones),
                port: args.base_port + i,
                data_dir: args.data_dir.join(format!("broker-{id}")),
            }
        })
        .collect()
}

/// Cluster-wide defaults for a cluster of `brokers`: replicated like MSK's defaults.
fn cluster_defaults(brokers: usize) -> BTreeMap<String, String> {
    let rf = brokers.min(3);
    let min_isr = if rf >= 3 { 2 } else { 1 };
    BTreeMap::from([
        ("default.replication.factor".to_string(), rf.to_string()),
        (
            "offsets.topic.replication.factor".to_string(),
            rf.to_string(),
        ),
        ("min.insync.replicas".to_string(), min_isr.to_string()),
    ])
}

fn broker_binary(args: &LocalArgs) -> Result<PathBuf> {
    if let Some(bin) = &args.broker_bin {
        return Ok(bin.clone());
    }
    let exe = std::env::current_exe().context("locating this binary")?;
    let bin = exe.with_file_name("tributary-broker");
    if !bin.exists() {
        bail!(
            "{} not found; build it (cargo build --release) or pass --broker-bin",
            bin.display()
        );
    }
    Ok(bin)
}

/// Runtime threads for each of `brokers` brokers sharing `cores` cores: an equal share,
/// at least one. Each broker's runtime would otherwise start a thread per core, and the
/// surplus threads would spend the cores parking and waking one another.
fn worker_threads_per_broker(cores: usize, brokers: usize) -> usize {
    (cores / brokers.max(1)).max(1)
}

/// How broker `slot` is started: on loopback, in its zone, joined to `controller`, with
/// `worker_threads` runtime threads.
fn launch(
    slot: &BrokerSlot,
    controller: &str,
    overrides: &BTreeMap<String, String>,
    worker_threads: usize,
) -> BrokerLaunch {
    let mut launch = BrokerLaunch::new(
        slot.id,
        slot.data_dir.clone(),
        format!("127.0.0.1:{}", slot.port),
    );
    launch.rack = Some(slot.zone.clone());
    launch.controller = Some(controller.to_string());
    launch.overrides = overrides.clone();
    launch.worker_threads = Some(worker_threads);
    launch
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// One supervised broker: its process (absent while waiting to restart), when it started,
/// and its restart delays.
struct Supervised {
    slot: BrokerSlot,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
    started: Instant,
    restart_at: Option<Instant>,
    backoff: RestartBackoff,
}

impl Supervised {
    /// Starts the broker's process; a failure to start it counts as an exit.
    fn start(&mut self, bin: &Path) {
        self.started = Instant::now();
        self.restart_at = None;
        let spawned = std::fs::create_dir_all(&self.slot.data_dir)
            .with_context(|| format!("creating {}", self.slot.data_dir.display()))
            .and_then(|()| supervise::spawn_broker(bin, &self.args, &self.log));
        match spawned {
            Ok(child) => self.child = Some(child),
            Err(e) => self.exited(format!("not started: {e:#}")),
        }
    }

    /// Handles the exit of this broker's process: says why, and schedules its restart.
    fn exited(&mut self, status: String) {
        self.child = None;
        let delay = self.backoff.after_exit(self.started.elapsed());
        let reason = supervise::exit_reason(&self.log)
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        let when = if delay.is_zero() {
            "restarting".to_string()
        } else {
            format!(
                "restarting in {:.1}s (log: {})",
                delay.as_secs_f64(),
                self.log.display()
            )
        };
        say(&format!(
            "broker {} ({}) exited ({status}){reason}; {when}",
            self.slot.id, self.slot.zone
        ));
        self.restart_at = Some(Instant::now() + delay);
    }
}

/// Waits for the first broker process to exit; pending forever if none runs.
async fn next_exit(brokers: &mut [Supervised]) -> (usize, String) {
    let waits: Vec<_> = brokers
        .iter_mut()
        .enumerate()
        .filter_map(|(i, b)| {
            b.child
                .as_mut()
                .map(|c| Box::pin(async move { (i, c.wait().await) }))
        })
        .collect();
    if waits.is_empty() {
        return futures::future::pending().await;
    }
    let ((i, status), _, _) = futures::future::select_all(waits).await;
    (
        i,
        status
            .map(|s| s.to_string())
            .unwrap_or_else(|e| e.to_string()),
    )
}

/// The earliest pending restart, if any.
fn next_restart(brokers: &[Supervised]) -> Option<Instant> {
    brokers.iter().filter_map(|b| b.restart_at).min()
}

/// Restarts every broker whose delay has passed.
fn restart_due(brokers: &mut [Supervised], bin: &Path) {
    let now = Instant::now();
    for broker in brokers.iter_mut() {
        if broker.restart_at.is_some_and(|at| at <= now) {
            broker.start(bin);
        }
    }
}

/// One step of supervision: a broker exits (it is scheduled to restart), a restart falls
/// due, or a signal asks the cluster to stop (`false`).
async fn supervise_step(
    brokers: &mut [Supervised],
    bin: &Path,
    term: &mut Signal,
    interrupt: &mut Signal,
) -> bool {
    let restart = next_restart(brokers);
    let event = tokio::select! {
        _ = term.recv() => return false,
        _ = interrupt.recv() => return false,
        _ = sleep_until(restart) => None,
        exit = next_exit(brokers) => Some(exit),
    };
    if let Some((i, status)) = event {
        brokers[i].exited(status);
    }
    restart_due(brokers, bin);
    true
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => futures::future::pending().await,
    }
}

/// Runs the cluster until Ctrl-C or SIGTERM.
pub async fn run(args: LocalArgs) -> Result<()> {
    let slots = slots(&args);
    let bin = broker_binary(&args)?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let defaults = cluster_defaults(slots.len());
    let config = ControllerConfig::from_settings(&defaults);
    let controller = tributary_controller::start_local(
        &args.data_dir.join("controller"),
        config,
        &format!("127.0.0.1:{}", args.controller_port),
    )
    .await?;
    let controller_addr = controller.addr.to_string();
    say(&format!(
        "Tributary local cluster: {} zone(s) x {} broker(s), data in {}",
        args.zones,
        args.brokers_per_zone,
        args.data_dir.display()
    ));
    say(&format!("controller listening on {controller_addr}"));

    let mut overrides = defaults;
    overrides.extend(crate::standalone::settings(&args.overrides)?);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let worker_threads = worker_threads_per_broker(cores, slots.len());
    let mut brokers: Vec<Supervised> = slots
        .iter()
        .map(|slot| Supervised {
            args: launch(slot, &controller_addr, &overrides, worker_threads).args(),
            log: slot.data_dir.join("broker.log"),
            slot: slot.clone(),
            child: None,
            started: Instant::now(),
            restart_at: None,
            backoff: RestartBackoff::default(),
        })
        .collect();
    for broker in &mut brokers {
        say(&format!(
            "starting broker {} in {} on 127.0.0.1:{} ...",
            broker.slot.id, broker.slot.zone, broker.slot.port
        ));
        broker.start(&bin);
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;

    // Until every broker has registered: a broker that cannot start says why and is retried.
    let started = Instant::now();
    let mut ready = vec![false; brokers.len()];
    let mut running = true;
    while running && ready.iter().any(|r| !r) {
        let image = controller.controller.image();
        for (i, broker) in brokers.iter().enumerate() {
            if !ready[i]
                && image
                    .brokers
                    .get(&broker.slot.id)
                    .is_some_and(|b| !b.fenced)
            {
                ready[i] = true;
                say(&format!(
                    "broker {} ({}) ready after {:.1}s",
                    broker.slot.id,
                    broker.slot.zone,
                    started.elapsed().as_secs_f64()
                ));
            }
        }
        running = tokio::select! {
            step = supervise_step(&mut brokers, &bin, &mut term, &mut interrupt) => step,
            _ = tokio::time::sleep(Duration::from_millis(50)) => true,
        };
    }
    if running {
        let bootstrap: Vec<String> = slots
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect();
        say(&format!("bootstrap servers: {}", bootstrap.join(",")));
    }
    // A broker that exits is restarted the moment it exits: its new incarnation registers
    // and the controller moves the old one's leaderships at once.
    while running {
        running = supervise_step(&mut brokers, &bin, &mut term, &mut interrupt).await;
    }

    say("stopping brokers ...");
    for broker in &brokers {
        if let Some(child) = &broker.child {
            supervise::terminate(child);
        }
    }
    for broker in &mut brokers {
        let Some(child) = broker.child.as_mut() else {
            continue;
        };
        if tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .is_err()
        {
            say(&format!(
                "broker {} did not stop in 30s; killing it",
                broker.slot.id
            ));
            let _ = child.kill().await;
        }
    }
    controller.shutdown().await;
    say("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brokers_share_the_cores() {
        assert_eq!(worker_threads_per_broker(2, 3), 1);
        assert_eq!(worker_threads_per_broker(8, 3), 2);
        assert_eq!(worker_threads_per_broker(16, 1), 16);
        assert_eq!(worker_threads_per_broker(4, 0), 4);
    }

    #[test]
    fn slots_spread_over_zones() {
        let args = LocalArgs {
            zones: 3,
            brokers_per_zone: 2,
            data_dir: "/d".into(),
            base_port: 9092,
            controller_port: 0,
            broker_bin: None,
            overrides: vec![],
        };
        let s = slots(&args);
        assert_eq!(s.len(), 6);
        assert_eq!(
            s.iter().map(|b| b.zone.as_str()).collect::<Vec<_>>(),
            ["zone-a", "zone-b", "zone-c", "zone-a", "zone-b", "zone-c"]
        );
        assert_eq!(s[5].port, 9097);
        assert_eq!(cluster_defaults(6)["min.insync.replicas"], "2");
        assert_eq!(cluster_defaults(1)["default.replication.factor"], "1");
    }
}
