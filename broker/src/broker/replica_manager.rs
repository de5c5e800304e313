//! The replicas this broker hosts. Applying a metadata image opens the replicas newly
//! assigned here, gives each its role (leader with the image's epoch and ISR, follower of
//! the named leader, or offline) and removes the replicas no longer assigned. The
//! periodic log work (retention, time-based flushes, checkpoints) runs over them here.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use anyhow::Context;
use tracing::{info, warn};
use tributary_metadata::{MetadataImage, TopicMeta, TopicPartition};

use super::log_dirs::LogDirs;
use crate::config::policy::TopicPolicy;
use crate::log::RecoveryMode;
use crate::partition::{Partition, RoleChange};

/// The hosted replicas, by partition.
#[derive(Debug)]
pub struct ReplicaManager {
    broker_id: i32,
    dirs: LogDirs,
    recovery_mode: RecoveryMode,
    partitions: RwLock<HashMap<TopicPartition, Arc<Partition>>>,
}

impl ReplicaManager {
    /// Replicas of broker `broker_id` in `dirs`; none is open until an image assigns it.
    pub fn new(broker_id: i32, dirs: LogDirs) -> Self {
        let recovery_mode = dirs.take_recovery_mode();
        dirs.remove_interrupted_deletions();
        tracing::info!(?recovery_mode, data_dir = %dirs.root().display(), "opening replicas");
        ReplicaManager {
            broker_id,
            dirs,
            recovery_mode,
            partitions: RwLock::new(HashMap::new()),
        }
    }

    /// Applies `image`'s assignments: each hosted replica with how its role changed.
    /// `policy` resolves a topic's settings.
    pub fn apply(
        &self,
        image: &MetadataImage,
        policy: impl Fn(&TopicMeta) -> TopicPolicy,
        now_ms: u64,
    ) -> Vec<(Arc<Partition>, RoleChange)> {
        let me = self.broker_id;
        let mut changes = Vec::new();
        let mut hosted = self.partitions.write().unwrap_or_else(|p| p.into_inner());
        for topic in image.topics.values() {
            let policy = policy(topic);
            for (index, meta) in topic.partitions.iter().enumerate() {
                if !meta.replicas.contains(&me) {
                    continue;
                }
                let key = TopicPartition::new(topic.name.clone(), index as i32);
                let partition = match hosted.get(&key) {
                    Some(p) => {
                        p.set_policy(policy.clone());
                        p.clone()
                    }
                    None => match self.open_replica(topic, key.partition, policy.clone()) {
                        Ok(p) => {
                            hosted.insert(key, p.clone());
                            p
                        }
                        Err(e) => {
                            warn!(topic = %topic.name, partition = index, error = %e, "cannot open partition");
                            continue;
                        }
                    },
                };
                let change = partition.apply_metadata(meta, now_ms);
                changes.push((partition, change));
            }
        }
        let unassigned: Vec<TopicPartition> = hosted
            .keys()
            .filter(|tp| !assigned_to(image, tp, me))
            .cloned()
            .collect();
        for key in unassigned {
            if let Some(partition) = hosted.remove(&key) {
                partition.go_offline();
                changes.push((partition, RoleChange::WentOffline));
                self.dirs.delete_replica(&key.topic, key.partition);
            }
        }
        changes
    }

    fn open_replica(
        &self,
        topic: &TopicMeta,
        index: i32,
        policy: TopicPolicy,
    ) -> anyhow::Result<Arc<Partition>> {
        let dir = self.dirs.claim_replica(&topic.name, index, topic.id)?;
        let partition = Partition::open(
            &dir,
            &topic.name,
            index,
            self.broker_id,
            policy,
            self.recovery_mode,
        )
        .with_context(|| format!("opening {}", dir.display()))?;
        Ok(Arc::new(partition))
    }

    /// The hosted replica of a partition.
    pub fn get(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&TopicPartition::new(topic, index))
            .cloned()
    }

    /// Every hosted replica.
    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The replicas following each leader.
    pub fn followers_by_leader(&self) -> BTreeMap<i32, Vec<Arc<Partition>>> {
        let mut by_leader: BTreeMap<i32, Vec<Arc<Partition>>> = BTreeMap::new();
        for partition in self.all() {
            if let Some(leader) = partition.following() {
                by_leader.entry(leader).or_default().push(partition);
            }
        }
        by_leader
    }

    /// Applies retention to every partition this broker leads (followers follow the
    /// leader's log start).
    pub fn apply_retention(&self) {
        let now = crate::util::now_ms();
        for partition in self.all().into_iter().filter(|p| p.is_leader()) {
            if let Err(e) = partition.apply_retention(now) {
                warn!(topic = %partition.topic, partition = partition.index, error = %e, "retention failed");
            }
        }
    }

    /// One pass of the log cleaner over every compacted replica here, leaders and
    /// followers alike (each replica cleans its own log, as in Kafka). Returns whether any
    /// log was cleaned, so the cleaner rests only when none was.
    pub fn clean_logs(&self, buffer_bytes: usize) -> bool {
        let mut cleaned = false;
        for partition in self.all() {
            let started = std::time::Instant::now();
            match partition.clean(buffer_bytes, crate::util::now_ms()) {
                Ok(None) => {}
                Ok(Some(report)) => {
                    cleaned = true;
                    info!(
                        topic = %partition.topic,
                        partition = partition.index,
                        segments = report.segments_rewritten,
                        keys = report.keys_mapped,
                        bytes_before = report.bytes_before,
                        bytes_after = report.bytes_after,
                        bytes_read = report.bytes_read,
                        elapsed_ms = started.elapsed().as_millis() as u64,
                        "log cleaned"
                    );
                }
                Err(e) => {
                    warn!(topic = %partition.topic, partition = partition.index, error = %e, "cleaning the log failed");
                }
            }
        }
        cleaned
    }

    /// Time-based flushing (`flush.ms`) and high-watermark checkpoints.
    pub fn flush_due(&self) {
        for partition in self.all() {
            if let Err(e) = partition.flush_if_due() {
                super::storage::sync_failed(&e);
            }
            if let Err(e) = partition.checkpoint_hw() {
                warn!(topic = %partition.topic, partition = partition.index, error = %e, "high watermark checkpoint failed");
            }
        }
    }

    /// Flushes everything and marks the shutdown clean, so the next start trusts the logs.
    pub fn shutdown(&self) -> anyhow::Result<()> {
        for partition in self.all() {
            partition
                .flush()
                .with_context(|| format!("flushing {}-{}", partition.topic, partition.index))?;
        }
        self.dirs.mark_clean_shutdown()?;
        tracing::info!("clean shutdown complete");
        Ok(())
    }
}

fn assigned_to(image: &MetadataImage, tp: &TopicPartition, broker: i32) -> bool {
    image.topics.get(&tp.topic).is_some_and(|topic| {
        topic
            .partitions
            .get(tp.partition as usize)
            .is_some_and(|p| p.replicas.contains(&broker))
    })
}
