//! Broker settings: command-line flags (each also a `TRIBUTARY_*` environment variable),
//! an optional `server.properties`-style file, and `--override key=value` pairs.

pub mod policy;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Parser;
use tributary_metadata::launch::BrokerLaunch;

/// Command-line interface of `tributary-broker`.
#[derive(Debug, Clone, Parser)]
#[command(name = "tributary-broker", version, about = "Kafka-compatible broker")]
pub struct BrokerArgs {
    /// Directory holding partition logs and broker state.
    #[arg(long, env = "TRIBUTARY_DATA_DIR", default_value = "./tributary-data")]
    pub data_dir: PathBuf,
    /// Address the Kafka listener binds.
    #[arg(long, env = "TRIBUTARY_LISTEN", default_value = "127.0.0.1:9092")]
    pub listen: String,
    /// HOST:PORT advertised to clients in Metadata (defaults to the bound address).
    #[arg(long, env = "TRIBUTARY_ADVERTISED_LISTENER")]
    pub advertised_listener: Option<String>,
    /// This broker's node id.
    #[arg(long, env = "TRIBUTARY_BROKER_ID", default_value_t = 1)]
    pub broker_id: i32,
    /// The index of this broker's pod in its StatefulSet. With it the node id is
    /// `--broker-id` plus the index, so the pods of one StatefulSet share one description
    /// (the operator passes the pod's `apps.kubernetes.io/pod-index` label here).
    #[arg(long, env = "TRIBUTARY_POD_INDEX")]
    pub pod_index: Option<i32>,
    /// Rack (availability zone) of this broker.
    #[arg(long, env = "TRIBUTARY_RACK")]
    pub rack: Option<String>,
    /// Cluster id; generated and stored in the data directory when absent.
    #[arg(long, env = "TRIBUTARY_CLUSTER_ID")]
    pub cluster_id: Option<String>,
    /// A `server.properties`-style file of broker settings.
    #[arg(long, env = "TRIBUTARY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Extra broker settings as key=value (repeatable; overrides the file).
    #[arg(long = "override", env = "TRIBUTARY_OVERRIDES", value_delimiter = ',')]
    pub overrides: Vec<String>,
    /// HOST:PORT of the cluster controller. Without it the broker runs its own embedded
    /// controller and forms a single-broker cluster.
    #[arg(long, env = "TRIBUTARY_CONTROLLER")]
    pub controller: Option<String>,
    /// Threads of the async runtime that serves requests (default: one per core). Brokers
    /// sharing a machine do better with a share of its cores each: threads beyond the
    /// cores only park and wake one another.
    #[arg(long, env = "TRIBUTARY_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub worker_threads: Option<u16>,
    /// Instead of running a broker, check that the broker these flags describe is ready
    /// (serving, registered and live) and exit 0 if it is: a pod's readiness probe.
    #[arg(long)]
    pub check_ready: bool,
}

/// Fully resolved broker configuration.
#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub data_dir: PathBuf,
    pub listen: String,
    pub advertised_host: String,
    pub advertised_port: i32,
    pub broker_id: i32,
    pub rack: Option<String>,
    pub cluster_id: Option<String>,
    /// The controller to join; `None` runs an embedded one.
    pub controller: Option<String>,
    /// Broker-level settings as given (Kafka names), the STATIC_BROKER_CONFIG layer.
    pub settings: BTreeMap<String, String>,
}

/// Broker settings that are not topic defaults, with Kafka's names and defaults.
pub const BROKER_SETTINGS: &[(&str, &str)] = &[
    ("auto.create.topics.enable", "true"),
    ("num.partitions", "1"),
    ("default.replication.factor", "1"),
    ("socket.request.max.bytes", "104857600"),
    // Kafka leaves these three unbounded; a bound keeps a flood of connections or of large
    // requests from exhausting memory (see README, "Limits").
    ("max.connections", "20000"),
    ("max.connections.per.ip", "10000"),
    ("queued.max.request.bytes", "268435456"),
    ("connections.max.idle.ms", "600000"),
    ("group.initial.rebalance.delay.ms", "3000"),
    ("group.min.session.timeout.ms", "6000"),
    ("max.incremental.fetch.session.cache.slots", "1000"),
    ("group.max.session.timeout.ms", "1800000"),
    // KIP-848 consumer groups (group.protocol=consumer).
    ("group.consumer.session.timeout.ms", "45000"),
    ("group.consumer.heartbeat.interval.ms", "5000"),
    ("log.retention.check.interval.ms", "300000"),
    // The log cleaner (compacted topics): how long it rests when nothing is dirty enough,
    // and the memory its map of keys may take (24 bytes a key).
    ("log.cleaner.enable", "true"),
    ("log.cleaner.backoff.ms", "15000"),
    ("log.cleaner.dedupe.buffer.size", "134217728"),
    ("offsets.retention.minutes", "10080"),
    ("offsets.topic.num.partitions", "5"),
    ("offsets.topic.replication.factor", "3"),
    ("offsets.topic.segment.bytes", "104857600"),
    ("transaction.state.log.num.partitions", "5"),
    ("transaction.state.log.replication.factor", "3"),
    ("transaction.state.log.min.isr", "2"),
    ("transaction.state.log.segment.bytes", "104857600"),
    ("transaction.max.timeout.ms", "900000"),
    ("replica.lag.time.max.ms", "10000"),
    ("broker.heartbeat.interval.ms", "200"),
    ("broker.session.timeout.ms", "1000"),
];

/// Parses `server.properties` text: `key=value` or `key: value`, `#`/`!` comments.
pub fn parse_properties(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
        .filter_map(|l| {
            let idx = l.find(['=', ':'])?;
            Some((l[..idx].trim().to_string(), l[idx + 1..].trim().to_string()))
        })
        .collect()
}

/// Kafka allows retention and roll in hours/minutes; fold them into the `.ms` keys.
fn normalise_time_units(settings: &mut BTreeMap<String, String>) {
    for (base, ms_key) in [
        ("log.retention", "log.retention.ms"),
        ("log.roll", "log.roll.ms"),
    ] {
        if settings.contains_key(ms_key) {
            continue;
        }
        for (suffix, factor) in [("minutes", 60_000i64), ("hours", 3_600_000i64)] {
            let key = format!("{base}.{suffix}");
            if let Some(v) = settings.get(&key).and_then(|v| v.parse::<i64>().ok()) {
                settings.insert(ms_key.to_string(), (v * factor).to_string());
                break;
            }
        }
    }
}

fn split_host_port(addr: &str) -> Result<(String, i32)> {
    let (host, port) = addr
        .rsplit_once(':')
        .with_context(|| format!("'{addr}' is not HOST:PORT"))?;
    let port: i32 = port
        .parse()
        .with_context(|| format!("bad port in '{addr}'"))?;
    if !(0..=65535).contains(&port) {
        bail!("port {port} out of range");
    }
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

impl BrokerConfig {
    /// The configuration a [`BrokerLaunch`] describes, read as the broker reads its flags.
    pub fn from_launch(launch: &BrokerLaunch) -> Result<Self> {
        let program = std::iter::once("tributary-broker".to_string());
        let args = BrokerArgs::try_parse_from(program.chain(launch.args()))
            .context("parsing the broker's launch flags")?;
        Self::from_args(&args)
    }

    /// Resolves flags, file and overrides into one configuration.
    pub fn from_args(args: &BrokerArgs) -> Result<Self> {
        let mut settings = match &args.config {
            Some(path) => parse_properties(
                &std::fs::read_to_string(path)
                    .with_context(|| format!("reading config file {}", path.display()))?,
            ),
            None => BTreeMap::new(),
        };
        for item in &args.overrides {
            let (k, v) = item
                .split_once('=')
                .with_context(|| format!("override '{item}' is not key=value"))?;
            settings.insert(k.trim().to_string(), v.trim().to_string());
        }
        normalise_time_units(&mut settings);
        for (key, value) in &settings {
            if let Some(def) = tributary_metadata::topic_config::topic_config_by_synonym(key) {
                tributary_metadata::topic_config::validate_topic_config(def.name, value)
                    .with_context(|| format!("broker setting {key}"))?;
            }
        }
        let (listen_host, listen_port) = split_host_port(&args.listen)?;
        let (advertised_host, advertised_port) = match &args.advertised_listener {
            Some(a) => split_host_port(a)?,
            None => {
                let host = if listen_host == "0.0.0.0" || listen_host == "::" {
                    "127.0.0.1".to_string()
                } else {
                    listen_host
                };
                (host, listen_port)
            }
        };
        Ok(BrokerConfig {
            data_dir: args.data_dir.clone(),
            listen: args.listen.clone(),
            advertised_host,
            advertised_port,
            broker_id: match args.pod_index {
                Some(index) if index < 0 => bail!("pod index {index} is negative"),
                Some(index) => args
                    .broker_id
                    .checked_add(index)
                    .context("broker id out of range")?,
                None => args.broker_id,
            },
            rack: args.rack.clone(),
            cluster_id: args.cluster_id.clone(),
            controller: args.controller.clone(),
            settings,
        })
    }

    /// A broker setting (Kafka name) or its default.
    pub fn setting(&self, key: &str) -> Option<String> {
        self.settings.get(key).cloned().or_else(|| {
            BROKER_SETTINGS
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.to_string())
        })
    }

    /// A numeric broker setting.
    pub fn setting_i64(&self, key: &str) -> i64 {
        self.setting(key).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// A boolean broker setting.
    pub fn setting_bool(&self, key: &str) -> bool {
        self.setting(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    }

    /// Where the broker keeps its own state (metadata, producer ids, group offsets).
    pub fn state_dir(&self) -> PathBuf {
        self.data_dir.join("__tributary")
    }

    /// Largest request frame accepted (`socket.request.max.bytes`).
    pub fn max_request_bytes(&self) -> usize {
        self.setting_i64("socket.request.max.bytes")
            .clamp(1024, i32::MAX as i64) as usize
    }

    /// The socket address to bind.
    pub fn bind_addr(&self) -> Result<SocketAddr> {
        use std::net::ToSocketAddrs;
        self.listen
            .to_socket_addrs()
            .with_context(|| format!("resolving listen address {}", self.listen))?
            .next()
            .with_context(|| format!("no address for {}", self.listen))
    }
}

/// Reads `meta.properties` (cluster id and node id), refusing a directory that belongs to
/// another node. `None` when the directory is new.
pub fn read_identity(dir: &Path, broker_id: i32) -> Result<Option<String>> {
    let Ok(text) = std::fs::read_to_string(dir.join("meta.properties")) else {
        return Ok(None);
    };
    let props = parse_properties(&text);
    if let Some(node) = props.get("node.id") {
        if node != &broker_id.to_string() {
            bail!("data directory belongs to node {node}, not {broker_id}");
        }
    }
    Ok(props.get("cluster.id").cloned())
}

/// Records the cluster this data directory belongs to, refusing to switch clusters.
pub fn write_identity(dir: &Path, broker_id: i32, cluster_id: &str) -> Result<()> {
    if let Some(existing) = read_identity(dir, broker_id)? {
        if existing == cluster_id {
            return Ok(());
        }
        bail!("data directory belongs to cluster {existing}, not {cluster_id}");
    }
    std::fs::create_dir_all(dir)?;
    let path = dir.join("meta.properties");
    let tmp = path.with_extension("tmp");
    std::fs::write(
        &tmp,
        format!("version=1\ncluster.id={cluster_id}\nnode.id={broker_id}\n"),
    )?;
    std::fs::rename(&tmp, &path)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_and_units() {
        let mut props = parse_properties("# c\nlog.retention.hours=2\nnum.partitions: 3\n\n");
        normalise_time_units(&mut props);
        assert_eq!(props["log.retention.ms"], "7200000");
        assert_eq!(props["num.partitions"], "3");
    }

    #[test]
    fn a_pod_index_offsets_the_broker_id() {
        let launch = BrokerLaunch::new(1001, "/tmp/unused", "0.0.0.0:9092");
        assert_eq!(BrokerConfig::from_launch(&launch).unwrap().broker_id, 1001);
        let args = BrokerArgs::try_parse_from(
            ["tributary-broker"]
                .into_iter()
                .map(String::from)
                .chain(launch.args())
                .chain(["--pod-index".to_string(), "2".to_string()]),
        )
        .unwrap();
        assert_eq!(BrokerConfig::from_args(&args).unwrap().broker_id, 1003);
    }

    #[test]
    fn identity_is_persisted_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_identity(dir.path(), 1).unwrap(), None);
        write_identity(dir.path(), 1, "abc").unwrap();
        assert_eq!(
            read_identity(dir.path(), 1).unwrap().as_deref(),
            Some("abc")
        );
        write_identity(dir.path(), 1, "abc").unwrap();
        assert!(read_identity(dir.path(), 2).is_err());
        assert!(write_identity(dir.path(), 1, "other").is_err());
    }
}
