//! How a broker process is started. The local launcher, the tests and the operator's
//! StatefulSet all describe a broker with one [`BrokerLaunch`], so the flags the broker
//! takes are spelled in one place.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The environment variable a broker reads its StatefulSet pod index from: the operator
/// sets it from the pod's `apps.kubernetes.io/pod-index` label, and the broker's id is
/// [`BrokerLaunch::broker_id`] plus the index.
pub const POD_INDEX_ENV: &str = "TRIBUTARY_POD_INDEX";

/// Everything a `tributary-broker` process is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerLaunch {
    /// The node id; in a StatefulSet whose pods get [`POD_INDEX_ENV`], the id of its first
    /// pod, each pod adding its index.
    pub broker_id: i32,
    pub data_dir: PathBuf,
    /// `HOST:PORT` the Kafka listener binds.
    pub listen: String,
    /// `HOST:PORT` clients are told to connect to (default: the bound address).
    pub advertised_listener: Option<String>,
    /// The broker's zone (Kafka's `broker.rack`).
    pub rack: Option<String>,
    /// The controller's `HOST:PORT`; without one the broker embeds its own.
    pub controller: Option<String>,
    /// The cluster this broker must belong to, if fixed in advance.
    pub cluster_id: Option<String>,
    /// A `server.properties`-style file of broker settings.
    pub config_file: Option<PathBuf>,
    /// Broker settings by Kafka name (`--override key=value`).
    pub overrides: BTreeMap<String, String>,
    /// Threads of the broker's async runtime (default: one per core). Brokers sharing a
    /// machine's cores take a share each: more threads than cores only add wake-ups.
    pub worker_threads: Option<usize>,
}

impl BrokerLaunch {
    /// A broker with default settings.
    pub fn new(broker_id: i32, data_dir: impl Into<PathBuf>, listen: impl Into<String>) -> Self {
        BrokerLaunch {
            broker_id,
            data_dir: data_dir.into(),
            listen: listen.into(),
            advertised_listener: None,
            rack: None,
            controller: None,
            cluster_id: None,
            config_file: None,
            overrides: BTreeMap::new(),
            worker_threads: None,
        }
    }

    /// The command-line arguments (without the program name).
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--broker-id".to_string(),
            self.broker_id.to_string(),
            "--data-dir".to_string(),
            self.data_dir.display().to_string(),
            "--listen".to_string(),
            self.listen.clone(),
        ];
        let optional = [
            ("--advertised-listener", &self.advertised_listener),
            ("--rack", &self.rack),
            ("--controller", &self.controller),
            ("--cluster-id", &self.cluster_id),
        ];
        for (flag, value) in optional {
            if let Some(value) = value {
                args.push(flag.to_string());
                args.push(value.clone());
            }
        }
        if let Some(file) = &self.config_file {
            args.push("--config".to_string());
            args.push(file.display().to_string());
        }
        for (key, value) in &self.overrides {
            args.push("--override".to_string());
            args.push(format!("{key}={value}"));
        }
        if let Some(threads) = self.worker_threads {
            args.push("--worker-threads".to_string());
            args.push(threads.to_string());
        }
        args
    }

    /// The same description as `TRIBUTARY_*` environment variables, for containers whose
    /// values come from the pod (its name, its zone).
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "TRIBUTARY_BROKER_ID".to_string(),
                self.broker_id.to_string(),
            ),
            (
                "TRIBUTARY_DATA_DIR".to_string(),
                self.data_dir.display().to_string(),
            ),
            ("TRIBUTARY_LISTEN".to_string(), self.listen.clone()),
        ];
        let optional = [
            ("TRIBUTARY_ADVERTISED_LISTENER", &self.advertised_listener),
            ("TRIBUTARY_RACK", &self.rack),
            ("TRIBUTARY_CONTROLLER", &self.controller),
            ("TRIBUTARY_CLUSTER_ID", &self.cluster_id),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                env.push((name.to_string(), value.clone()));
            }
        }
        if let Some(file) = &self.config_file {
            env.push(("TRIBUTARY_CONFIG".to_string(), file.display().to_string()));
        }
        if !self.overrides.is_empty() {
            let joined: Vec<String> = self
                .overrides
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            env.push(("TRIBUTARY_OVERRIDES".to_string(), joined.join(",")));
        }
        if let Some(threads) = self.worker_threads {
            env.push(("TRIBUTARY_WORKER_THREADS".to_string(), threads.to_string()));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_environment_describe_the_same_broker() {
        let mut launch = BrokerLaunch::new(2, "/data/broker-2", "127.0.0.1:9093");
        launch.rack = Some("zone-b".into());
        launch.controller = Some("127.0.0.1:9000".into());
        launch
            .overrides
            .insert("min.insync.replicas".into(), "2".into());
        launch.worker_threads = Some(1);
        assert_eq!(
            launch.args(),
            [
                "--broker-id",
                "2",
                "--data-dir",
                "/data/broker-2",
                "--listen",
                "127.0.0.1:9093",
                "--rack",
                "zone-b",
                "--controller",
                "127.0.0.1:9000",
                "--override",
                "min.insync.replicas=2",
                "--worker-threads",
                "1"
            ]
        );
        let env: BTreeMap<_, _> = launch.env().into_iter().collect();
        assert_eq!(env["TRIBUTARY_RACK"], "zone-b");
        assert_eq!(env["TRIBUTARY_OVERRIDES"], "min.insync.replicas=2");
        assert_eq!(env["TRIBUTARY_WORKER_THREADS"], "1");
        assert!(!env.contains_key("TRIBUTARY_CLUSTER_ID"));
    }
}
