//! Helpers shared by the broker's integration tests: brokers in-process or as a child
//! process, on ephemeral loopback ports, with throwaway data directories.

#![allow(dead_code)]

pub mod cluster;
pub mod groups;
pub mod traffic;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tributary_broker::{BrokerConfig, RunningBroker};
use tributary_metadata::launch::BrokerLaunch;

/// A free loopback port (bound and released, so a broker can take it).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// How a test broker starts: alone on `port`, with a fast group coordinator.
pub fn test_launch(data_dir: &Path, port: u16) -> BrokerLaunch {
    let mut launch = BrokerLaunch::new(1, data_dir, format!("127.0.0.1:{port}"));
    launch
        .overrides
        .insert("group.initial.rebalance.delay.ms".into(), "0".into());
    launch
}

/// Configuration for a test broker on `port` with a fast group coordinator.
pub fn test_config(data_dir: &Path, port: u16) -> BrokerConfig {
    BrokerConfig::from_launch(&test_launch(data_dir, port)).expect("valid test config")
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
            .args(test_launch(data_dir, port).args())
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
