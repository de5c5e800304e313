//! Helpers shared by the broker's integration tests: brokers in-process or as a child
//! process, on ephemeral loopback ports, with throwaway data directories.

#![allow(dead_code)]

pub mod cluster;
pub mod traffic;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tributary_broker::{BrokerArgs, BrokerConfig, RunningBroker};

/// A free loopback port (bound and released, so a broker can take it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// Configuration for a test broker on `port` with a fast group coordinator.
pub fn test_config(data_dir: &Path, port: u16) -> BrokerConfig {
    let args = BrokerArgs {
        data_dir: data_dir.to_path_buf(),
        listen: format!("127.0.0.1:{port}"),
        advertised_listener: None,
        broker_id: 1,
        rack: None,
        cluster_id: None,
        config: None,
        overrides: vec!["group.initial.rebalance.delay.ms=0".into()],
        controller: None,
    };
    BrokerConfig::from_args(&args).expect("valid test config")
}

/// Starts a broker inside the test process.
pub async fn start_in_process(data_dir: &Path, port: u16) -> RunningBroker {
    tributary_broker::start(test_config(data_dir, port))
        .await
        .expect("broker starts")
}

/// A broker running as a child process (so it can be killed with SIGKILL).
pub struct BrokerProcess {
    pub child: Child,
    pub port: u16,
}

impl BrokerProcess {
    /// Spawns `tributary-broker` and waits until it accepts connections.
    pub fn spawn(data_dir: &Path, port: u16) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_tributary-broker"))
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--override")
            .arg("group.initial.rebalance.delay.ms=0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn broker");
        wait_for_port(port);
        BrokerProcess { child, port }
    }

    /// `kill -9`.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(mut self) {
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let status = self.child.wait().expect("wait broker");
        assert!(status.success(), "broker exited with {status}");
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until something listens on `port`.
pub fn wait_for_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("broker did not listen on {port}");
}
