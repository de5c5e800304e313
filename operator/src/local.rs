//! A local multi-zone cluster: the controller in this process, brokers as supervised child
//! processes, data kept under one directory across runs.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use tokio::process::{Child, Command};
use tokio::signal::unix::{signal, SignalKind};
use tributary_controller::ControllerConfig;
use tributary_metadata::launch::BrokerLaunch;

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

/// How broker `slot` is started: on loopback, in its zone, joined to `controller`.
fn launch(
    slot: &BrokerSlot,
    controller: &str,
    overrides: &BTreeMap<String, String>,
) -> BrokerLaunch {
    let mut launch = BrokerLaunch::new(
        slot.id,
        slot.data_dir.clone(),
        format!("127.0.0.1:{}", slot.port),
    );
    launch.rack = Some(slot.zone.clone());
    launch.controller = Some(controller.to_string());
    launch.overrides = overrides.clone();
    launch
}

fn spawn_broker(bin: &Path, slot: &BrokerSlot, launch: &BrokerLaunch) -> Result<Child> {
    std::fs::create_dir_all(&slot.data_dir)?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(slot.data_dir.join("broker.log"))?;
    Command::new(bin)
        .args(launch.args())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting broker {}", slot.id))
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
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
    let launches: Vec<BrokerLaunch> = slots
        .iter()
        .map(|slot| launch(slot, &controller_addr, &overrides))
        .collect();
    let mut children: Vec<Child> = Vec::with_capacity(slots.len());
    for (slot, launch) in slots.iter().zip(&launches) {
        say(&format!(
            "starting broker {} in {} on 127.0.0.1:{} ...",
            slot.id, slot.zone, slot.port
        ));
        children.push(spawn_broker(&bin, slot, launch)?);
    }
    let started = Instant::now();
    let mut ready = vec![false; slots.len()];
    while ready.iter().any(|r| !r) {
        let image = controller.controller.image();
        for (i, slot) in slots.iter().enumerate() {
            if !ready[i] && image.brokers.get(&slot.id).is_some_and(|b| !b.fenced) {
                ready[i] = true;
                say(&format!(
                    "broker {} ({}) ready after {:.1}s",
                    slot.id,
                    slot.zone,
                    started.elapsed().as_secs_f64()
                ));
            }
        }
        for (i, child) in children.iter_mut().enumerate() {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "broker {} exited during start-up ({status}); see {}",
                    slots[i].id,
                    slots[i].data_dir.join("broker.log").display()
                );
            }
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("brokers did not become ready within 60s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let bootstrap: Vec<String> = slots
        .iter()
        .map(|s| format!("127.0.0.1:{}", s.port))
        .collect();
    say(&format!("bootstrap servers: {}", bootstrap.join(",")));

    let mut term = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    loop {
        // Restart a broker the moment it exits: its new incarnation registers and the
        // controller moves the old one's leaderships at once.
        let exited = {
            let any_exit =
                futures::future::select_all(children.iter_mut().map(|c| Box::pin(c.wait())));
            tokio::select! {
                _ = term.recv() => None,
                _ = interrupt.recv() => None,
                (status, i, _) = any_exit => Some((i, status.map(|s| s.to_string()).unwrap_or_else(|e| e.to_string()))),
            }
        };
        let Some((i, status)) = exited else {
            break;
        };
        let slot = &slots[i];
        say(&format!(
            "broker {} ({}) exited ({status}); restarting",
            slot.id, slot.zone
        ));
        children[i] = spawn_broker(&bin, slot, &launches[i])?;
    }
    say("stopping brokers ...");
    for child in &children {
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status();
        }
    }
    for (i, child) in children.iter_mut().enumerate() {
        match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                say(&format!(
                    "broker {} did not stop in 30s; killing it",
                    slots[i].id
                ));
                let _ = child.kill().await;
            }
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
