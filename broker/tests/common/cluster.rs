//! A three-zone test cluster: the controller in the test process, brokers as processes
//! that can be killed, paused and restarted.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tributary_controller::{start_local, ControllerConfig, RunningController};
use tributary_metadata::launch::BrokerLaunch;

/// A three-zone cluster: the controller in this process, three broker processes.
pub struct Cluster {
    controller: Option<RunningController>,
    pub brokers: BTreeMap<i32, (Child, u16)>,
    pub root: tempfile::TempDir,
    config: ControllerConfig,
}

fn spawn(root: &Path, id: i32, port: u16, controller: &str) -> Child {
    let zone = ["zone-a", "zone-b", "zone-c"][(id as usize - 1) % 3];
    let mut launch = BrokerLaunch::new(
        id,
        root.join(format!("broker-{id}")),
        format!("127.0.0.1:{port}"),
    );
    launch.rack = Some(zone.into());
    launch.controller = Some(controller.into());
    launch.overrides = [
        ("min.insync.replicas", "2"),
        ("default.replication.factor", "3"),
        ("group.initial.rebalance.delay.ms", "0"),
        ("log.cleaner.backoff.ms", "100"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Command::new(env!("CARGO_BIN_EXE_tributary-broker"))
        .args(launch.args())
        .env(
            "RUST_LOG",
            std::env::var("BROKER_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn broker")
}

impl Cluster {
    /// Starts the controller and three brokers and waits until all are live.
    pub async fn start() -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let config = ControllerConfig::from_settings(&BTreeMap::from([
            ("min.insync.replicas".to_string(), "2".to_string()),
            ("default.replication.factor".to_string(), "3".to_string()),
        ]));
        let controller = start_local(
            &root.path().join("controller"),
            config.clone(),
            "127.0.0.1:0",
        )
        .await
        .unwrap();
        let addr = controller.addr.to_string();
        let mut brokers = BTreeMap::new();
        for id in 1..=3 {
            let port = super::free_port();
            brokers.insert(id, (spawn(root.path(), id, port, &addr), port));
        }
        let cluster = Cluster {
            controller: Some(controller),
            brokers,
            root,
            config,
        };
        cluster
            .wait_until(|c| c.live() == 3, "three live brokers")
            .await;
        cluster
    }

    /// Starts the cluster with `topic` (one partition, replication factor 3) created and
    /// its ISR complete, as the failure tests begin.
    pub async fn start_with_topic(topic: &str) -> Cluster {
        let cluster = Cluster::start().await;
        super::traffic::create_topic(&cluster.bootstrap(), topic, 1, 3).await;
        cluster
            .wait_until(|c| c.partition(topic).1.len() == 3, "ISR of 3")
            .await;
        cluster
    }

    pub fn bootstrap(&self) -> String {
        self.brokers
            .values()
            .map(|(_, port)| format!("127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn live(&self) -> usize {
        self.controller().controller.image().live_brokers().len()
    }

    /// `(leader, isr)` of partition 0 of `topic` as the controller sees it.
    pub fn partition(&self, topic: &str) -> (i32, Vec<i32>) {
        let image = self.controller().controller.image();
        let p = &image.topics[topic].partitions[0];
        (p.leader, p.isr.clone())
    }

    /// Polls `check` until it holds (60 s at most).
    pub async fn wait_until(&self, check: impl Fn(&Cluster) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !check(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `kill -9` of a broker process.
    pub fn kill9(&mut self, id: i32) {
        let (child, _) = self.brokers.get_mut(&id).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// Starts a broker again on its port and data directory.
    pub fn restart(&mut self, id: i32) {
        let addr = self.controller().addr.to_string();
        let port = self.brokers[&id].1;
        let child = spawn(self.root.path(), id, port, &addr);
        self.brokers.insert(id, (child, port));
    }

    /// Sends a signal (e.g. "-STOP") to a broker process.
    pub fn signal(&self, id: i32, signal: &str) {
        let pid = self.brokers[&id].0.id().to_string();
        assert!(Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success());
    }
}

impl Cluster {
    /// The running controller.
    pub fn controller(&self) -> &RunningController {
        self.controller.as_ref().expect("controller running")
    }

    /// Stops the controller and starts a new one on the same address and store.
    pub async fn restart_controller(&mut self) {
        let addr = self.controller().addr.to_string();
        if let Some(old) = self.controller.take() {
            old.shutdown().await;
        }
        let dir = self.root.path().join("controller");
        self.controller = Some(start_local(&dir, self.config.clone(), &addr).await.unwrap());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (child, _) in self.brokers.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
