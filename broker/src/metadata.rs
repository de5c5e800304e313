//! The cluster metadata image this broker serves: topics, their ids, partition
//! assignments, leaders and epochs, and dynamic configs.
//!
//! A broker running alone is its own controller and keeps the image in a local
//! [`MetadataStore`]; a controller-managed broker will receive the same image from the
//! controller instead. A change is persisted before it is applied or answered.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One partition's assignment and leadership.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    /// Bumped on every change (leader or ISR), fencing stale AlterPartition requests.
    #[serde(default)]
    pub partition_epoch: i32,
}

/// A registered broker: where clients reach it and whether it is alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub id: i32,
    pub rack: Option<String>,
    pub host: String,
    pub port: i32,
    /// Assigned at each registration; requests carrying an older epoch come from a zombie.
    pub epoch: i64,
    /// Identifies one run of the broker process.
    pub incarnation: Uuid,
    /// A fenced broker missed its session: it leads nothing and is not advertised.
    pub fenced: bool,
}

/// A topic and its partitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub name: String,
    pub id: Uuid,
    pub partitions: Vec<PartitionMeta>,
    /// Topic-level config overrides (DYNAMIC_TOPIC_CONFIG).
    pub configs: BTreeMap<String, String>,
}

/// Everything a broker needs to route and serve requests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataImage {
    /// Incremented on every change, so consumers of the image can detect staleness.
    pub version: u64,
    /// The cluster this image describes.
    #[serde(default)]
    pub cluster_id: String,
    pub topics: BTreeMap<String, TopicMeta>,
    /// Registered brokers by id.
    #[serde(default)]
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Next producer id block start (AllocateProducerIds).
    #[serde(default)]
    pub next_producer_id: i64,
    /// Dynamic broker configs by broker id (DYNAMIC_BROKER_CONFIG).
    pub broker_configs: BTreeMap<i32, BTreeMap<String, String>>,
    /// Dynamic cluster-wide broker defaults (DYNAMIC_DEFAULT_BROKER_CONFIG).
    pub cluster_configs: BTreeMap<String, String>,
}

/// Durable storage for the metadata image.
pub trait MetadataStore: Send + Sync + std::fmt::Debug {
    /// Loads the last saved image (empty if none).
    fn load(&self) -> io::Result<MetadataImage>;
    /// Saves an image durably; returns only once it is on stable storage.
    fn save(&self, image: &MetadataImage) -> io::Result<()>;
}

/// A JSON file replaced atomically (write, fsync, rename, fsync directory).
#[derive(Debug)]
pub struct FileMetadataStore {
    path: PathBuf,
}

impl FileMetadataStore {
    /// A store at `dir/metadata.json`.
    pub fn new(dir: &Path) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(FileMetadataStore {
            path: dir.join("metadata.json"),
        })
    }
}

impl MetadataStore for FileMetadataStore {
    fn load(&self) -> io::Result<MetadataImage> {
        match fs::read(&self.path) {
            Ok(data) => serde_json::from_slice(&data)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(MetadataImage::default()),
            Err(e) => Err(e),
        }
    }

    fn save(&self, image: &MetadataImage) -> io::Result<()> {
        let tmp = self.path.with_extension("json.tmp");
        let data = serde_json::to_vec_pretty(image).map_err(io::Error::other)?;
        fs::write(&tmp, data)?;
        fs::File::open(&tmp)?.sync_all()?;
        fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent() {
            fs::File::open(dir)?.sync_all()?;
        }
        Ok(())
    }
}

/// Kafka's topic name rules: 1-249 chars of `[a-zA-Z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("Topic name is illegal, it can't be empty".into());
    }
    if name == "." || name == ".." {
        return Err("Topic name cannot be \".\" or \"..\"".into());
    }
    if name.len() > 249 {
        return Err(format!(
            "Topic name is illegal, it can't be longer than 249 characters, topic name: {name}"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!("Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"));
    }
    Ok(())
}

impl MetadataImage {
    /// Ids of brokers that are registered and not fenced.
    pub fn live_brokers(&self) -> std::collections::BTreeSet<i32> {
        self.brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| b.id)
            .collect()
    }
}

/// Names of internal topics, reported with `is_internal`.
pub fn is_internal_topic(name: &str) -> bool {
    name == "__consumer_offsets" || name == "__transaction_state"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileMetadataStore::new(dir.path()).unwrap();
        assert_eq!(store.load().unwrap(), MetadataImage::default());
        let mut image = MetadataImage {
            version: 3,
            ..Default::default()
        };
        image.topics.insert(
            "t".into(),
            TopicMeta {
                name: "t".into(),
                id: Uuid::new_v4(),
                partitions: vec![PartitionMeta {
                    replicas: vec![1],
                    isr: vec![1],
                    leader: 1,
                    leader_epoch: 0,
                    partition_epoch: 0,
                }],
                configs: BTreeMap::new(),
            },
        );
        store.save(&image).unwrap();
        assert_eq!(store.load().unwrap(), image);
    }

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("testtopic").is_ok());
        assert!(validate_topic_name("a.b_c-1").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("bad/name").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }
}
