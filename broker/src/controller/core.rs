//! The controller's state machine: every cluster metadata change, as a function from the
//! current image to a new one. Nothing here does I/O; [`super::service`] persists each new
//! image before publishing it or answering the request that caused it.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::election;
use super::placement::{self, Candidate};
use crate::cluster::rpc::{
    AdminError, ConfigResource, ElectionResults, IsrChange, Registration, TopicSpec,
};
use crate::config::defs;
use crate::metadata::{self, BrokerInfo, MetadataImage, PartitionMeta, TopicMeta};

/// Kafka error codes the controller answers with.
pub mod codes {
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const INVALID_CONFIG: i16 = 40;
    pub const INVALID_REQUEST: i16 = 42;
    pub const STALE_BROKER_EPOCH: i16 = 77;
    pub const ELECTION_NOT_NEEDED: i16 = 84;
    pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
    pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
    pub const INCONSISTENT_CLUSTER_ID: i16 = 104;
}

/// How long a broker whose heartbeat connection closed has to reconnect before it is
/// fenced. A crashed process closes its sockets at once; a live broker reconnects on its
/// next heartbeat.
pub const RECONNECT_GRACE_MS: u64 = 400;

/// Producer ids handed out per AllocateProducerIds request.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// Controller settings.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// A broker that has not heartbeaten for this long is fenced.
    pub session_timeout_ms: u64,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    /// Broker-level defaults for topic configs (e.g. `min.insync.replicas`).
    pub broker_defaults: BTreeMap<String, String>,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            session_timeout_ms: 1000,
            num_partitions: 1,
            default_replication_factor: 1,
            broker_defaults: BTreeMap::new(),
        }
    }
}

/// Cluster metadata plus broker sessions.
#[derive(Debug)]
pub struct ControllerCore {
    image: MetadataImage,
    /// Session deadlines (controller clock, ms) of unfenced brokers.
    sessions: BTreeMap<i32, u64>,
    config: ControllerConfig,
}

/// The result of an operation and the image to commit, if it changed anything.
pub type Change<T> = (T, Option<MetadataImage>);

fn unclean_allowed(image: &MetadataImage, topic: &TopicMeta, config: &ControllerConfig) -> bool {
    let def = defs::topic_config("unclean.leader.election.enable").expect("known config");
    let layers = defs::ConfigLayers {
        topic: Some(&topic.configs),
        broker: None,
        cluster_default: Some(&image.cluster_configs),
        static_broker: Some(&config.broker_defaults),
    };
    layers.resolve(def).0.trim().eq_ignore_ascii_case("true")
}

impl ControllerCore {
    /// Starts from a persisted image. Unfenced brokers get a full session of grace, so a
    /// controller restart does not fence brokers that keep heartbeating.
    pub fn new(mut image: MetadataImage, config: ControllerConfig, now_ms: u64) -> Self {
        if image.cluster_id.is_empty() {
            image.cluster_id = crate::config::new_cluster_id();
        }
        let sessions = image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| (b.id, now_ms + config.session_timeout_ms))
            .collect();
        ControllerCore {
            image,
            sessions,
            config,
        }
    }

    /// The current (committed) image.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    /// Installs a committed image.
    pub fn set_image(&mut self, image: MetadataImage) {
        self.image = image;
    }

    fn next_image(&self) -> MetadataImage {
        let mut next = self.image.clone();
        next.version += 1;
        next
    }

    fn check_epoch(&self, broker_id: i32, broker_epoch: i64) -> Result<&BrokerInfo, AdminError> {
        match self.image.brokers.get(&broker_id) {
            Some(b) if b.epoch == broker_epoch => Ok(b),
            _ => Err(AdminError::new(
                codes::STALE_BROKER_EPOCH,
                format!("broker {broker_id} epoch {broker_epoch} is not current"),
            )),
        }
    }

    /// Replaces every partition for which `f` returns a new state.
    fn for_each_partition(
        next: &mut MetadataImage,
        mut f: impl FnMut(&TopicMeta, &PartitionMeta) -> Option<PartitionMeta>,
    ) {
        for topic in next.topics.values_mut() {
            for i in 0..topic.partitions.len() {
                if let Some(updated) = f(topic, &topic.partitions[i]) {
                    topic.partitions[i] = updated;
                }
            }
        }
    }

    /// Marks a broker fenced or unfenced in `next` and runs the elections that follows:
    /// fencing drops it from ISRs and moves its leaderships; unfencing gives offline
    /// partitions a leader again.
    fn set_fenced(&self, next: &mut MetadataImage, broker: i32, fenced: bool) {
        if let Some(b) = next.brokers.get_mut(&broker) {
            b.fenced = fenced;
        }
        let live = next.live_brokers();
        let image = next.clone();
        let config = &self.config;
        Self::for_each_partition(next, |topic, p| {
            let unclean = unclean_allowed(&image, topic, config);
            if fenced {
                election::on_broker_fenced(p, broker, &live, unclean)
            } else {
                election::on_broker_unfenced(p, &live, unclean)
            }
        });
    }

    /// BrokerRegistration. A new incarnation of a known broker first fences the old one, so
    /// its leaderships move and it rejoins ISRs only once caught up.
    pub fn register(
        &mut self,
        registration: Registration,
        now_ms: u64,
    ) -> Result<Change<i64>, AdminError> {
        let Registration {
            broker_id,
            incarnation,
            rack,
            host,
            port,
            cluster_id,
        } = registration;
        let cluster_id = cluster_id.as_deref();
        if let Some(id) = cluster_id {
            if !id.is_empty() && id != self.image.cluster_id {
                return Err(AdminError::new(
                    codes::INCONSISTENT_CLUSTER_ID,
                    format!(
                        "broker belongs to cluster {id}, this is {}",
                        self.image.cluster_id
                    ),
                ));
            }
        }
        if let Some(existing) = self.image.brokers.get(&broker_id) {
            if existing.incarnation == incarnation
                && existing.host == host
                && existing.port == port
                && existing.rack == rack
            {
                self.sessions
                    .insert(broker_id, now_ms + self.config.session_timeout_ms);
                if !existing.fenced {
                    return Ok((existing.epoch, None));
                }
            }
        }
        let mut next = self.next_image();
        if next.brokers.get(&broker_id).is_some_and(|b| !b.fenced) {
            self.set_fenced(&mut next, broker_id, true);
        }
        let epoch = next.version as i64;
        next.brokers.insert(
            broker_id,
            BrokerInfo {
                id: broker_id,
                rack,
                host,
                port,
                epoch,
                incarnation,
                fenced: true,
            },
        );
        self.set_fenced(&mut next, broker_id, false);
        self.sessions
            .insert(broker_id, now_ms + self.config.session_timeout_ms);
        Ok((epoch, Some(next)))
    }

    /// BrokerHeartbeat: extends the session; a fenced broker that heartbeats is unfenced.
    pub fn heartbeat(
        &mut self,
        broker_id: i32,
        broker_epoch: i64,
        now_ms: u64,
    ) -> Result<Change<bool>, AdminError> {
        let fenced = self.check_epoch(broker_id, broker_epoch)?.fenced;
        self.sessions
            .insert(broker_id, now_ms + self.config.session_timeout_ms);
        if !fenced {
            return Ok((false, None));
        }
        let mut next = self.next_image();
        self.set_fenced(&mut next, broker_id, false);
        Ok((false, Some(next)))
    }

    /// The broker's session channel closed: its session now ends within
    /// [`RECONNECT_GRACE_MS`] unless it heartbeats again.
    pub fn shorten_session(&mut self, broker_id: i32, now_ms: u64) {
        if let Some(deadline) = self.sessions.get_mut(&broker_id) {
            *deadline = (*deadline).min(now_ms + RECONNECT_GRACE_MS);
        }
    }

    /// Fences brokers whose session expired, moving their leaderships.
    pub fn expire_sessions(&mut self, now_ms: u64) -> Option<MetadataImage> {
        let expired: Vec<i32> = self
            .sessions
            .iter()
            .filter(|(_, deadline)| **deadline < now_ms)
            .map(|(id, _)| *id)
            .collect();
        if expired.is_empty() {
            return None;
        }
        let mut next = self.next_image();
        for id in expired {
            self.sessions.remove(&id);
            if next.brokers.get(&id).is_some_and(|b| !b.fenced) {
                tracing::warn!(broker = id, "broker session expired: fencing");
                self.set_fenced(&mut next, id, true);
            }
        }
        Some(next)
    }

    fn candidates(&self, image: &MetadataImage) -> Vec<Candidate> {
        image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| Candidate {
                id: b.id,
                rack: b.rack.clone(),
            })
            .collect()
    }

    fn total_partitions(image: &MetadataImage) -> usize {
        image.topics.values().map(|t| t.partitions.len()).sum()
    }

    fn new_topic(&self, image: &MetadataImage, spec: &TopicSpec) -> Result<TopicMeta, AdminError> {
        metadata::validate_topic_name(&spec.name)
            .map_err(|m| AdminError::new(codes::INVALID_TOPIC_EXCEPTION, m))?;
        if image.topics.contains_key(&spec.name) {
            return Err(AdminError::new(
                codes::TOPIC_ALREADY_EXISTS,
                format!("Topic '{}' already exists.", spec.name),
            ));
        }
        for (key, value) in &spec.configs {
            defs::validate_topic_config(key, value)
                .map_err(|e| AdminError::new(codes::INVALID_CONFIG, e.to_string()))?;
        }
        let registered: BTreeSet<i32> = image.brokers.keys().copied().collect();
        let replicas: Vec<Vec<i32>> = if !spec.assignments.is_empty() {
            if spec.partitions != -1 || spec.replication_factor != -1 {
                return Err(AdminError::new(codes::INVALID_REQUEST, "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time."));
            }
            validate_assignments(&spec.assignments, &registered, spec.assignments[0].len())?;
            spec.assignments.clone()
        } else {
            let partitions = if spec.partitions == -1 {
                self.config.num_partitions
            } else {
                spec.partitions
            };
            let rf = if spec.replication_factor == -1 {
                self.config.default_replication_factor
            } else {
                spec.replication_factor
            };
            if partitions <= 0 {
                return Err(AdminError::new(
                    codes::INVALID_PARTITIONS,
                    "Number of partitions must be larger than 0.",
                ));
            }
            if rf <= 0 {
                return Err(AdminError::new(
                    codes::INVALID_REPLICATION_FACTOR,
                    "Replication factor must be larger than 0.",
                ));
            }
            placement::assign(
                &self.candidates(image),
                partitions as usize,
                rf as usize,
                Self::total_partitions(image),
            )
            .map_err(|e| AdminError::new(codes::INVALID_REPLICATION_FACTOR, e.to_string()))?
        };
        let live = image.live_brokers();
        let partitions = replicas
            .into_iter()
            .map(|replicas| new_partition(replicas, &live))
            .collect();
        Ok(TopicMeta {
            name: spec.name.clone(),
            id: Uuid::new_v4(),
            partitions,
            configs: spec.configs.clone(),
        })
    }

    /// CreateTopics.
    pub fn create_topics(
        &self,
        specs: &[TopicSpec],
        validate_only: bool,
    ) -> Change<Vec<Result<TopicMeta, AdminError>>> {
        let mut next = self.next_image();
        let mut changed = false;
        let results = specs
            .iter()
            .map(|spec| {
                let topic = self.new_topic(&next, spec)?;
                if !validate_only {
                    next.topics.insert(topic.name.clone(), topic.clone());
                    changed = true;
                }
                Ok(topic)
            })
            .collect();
        (results, changed.then_some(next))
    }

    /// DeleteTopics.
    pub fn delete_topics(&self, names: &[String]) -> Change<Vec<Result<TopicMeta, AdminError>>> {
        let mut next = self.next_image();
        let mut changed = false;
        let results = names
            .iter()
            .map(|name| {
                let topic = next.topics.remove(name).ok_or_else(|| {
                    AdminError::new(
                        codes::UNKNOWN_TOPIC_OR_PARTITION,
                        "This server does not host this topic-partition.",
                    )
                })?;
                changed = true;
                Ok(topic)
            })
            .collect();
        (results, changed.then_some(next))
    }

    /// CreatePartitions: grows a topic, placing only the new partitions.
    pub fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Change<Result<(), AdminError>> {
        let run = || -> Result<MetadataImage, AdminError> {
            let mut next = self.next_image();
            let topic = next.topics.get(name).cloned().ok_or_else(|| {
                AdminError::new(
                    codes::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("The topic '{name}' does not exist."),
                )
            })?;
            let current = topic.partitions.len() as i32;
            if count < current {
                return Err(AdminError::new(codes::INVALID_PARTITIONS, format!("Topic currently has {current} partitions, which is higher than the requested {count}.")));
            }
            if count == current {
                return Err(AdminError::new(
                    codes::INVALID_PARTITIONS,
                    format!("Topic already has {current} partitions."),
                ));
            }
            let rf = topic.partitions.first().map_or(1, |p| p.replicas.len());
            let added = (count - current) as usize;
            let replicas = match assignments {
                Some(given) => {
                    if given.len() != added {
                        return Err(AdminError::new(codes::INVALID_REPLICA_ASSIGNMENT, format!("Increasing the number of partitions by {added} but {} assignments provided.", given.len())));
                    }
                    let registered: BTreeSet<i32> = next.brokers.keys().copied().collect();
                    validate_assignments(&given, &registered, rf)?;
                    given
                }
                None => placement::assign(
                    &self.candidates(&next),
                    added,
                    rf,
                    Self::total_partitions(&next),
                )
                .map_err(|e| AdminError::new(codes::INVALID_REPLICATION_FACTOR, e.to_string()))?,
            };
            let live = next.live_brokers();
            let entry = next.topics.get_mut(name).expect("checked above");
            for replicas in replicas {
                entry.partitions.push(new_partition(replicas, &live));
            }
            Ok(next)
        };
        match run() {
            Ok(next) if !validate_only => (Ok(()), Some(next)),
            Ok(_) => (Ok(()), None),
            Err(e) => (Err(e), None),
        }
    }

    /// AlterConfigs / IncrementalAlterConfigs (the broker computes the full new set).
    pub fn alter_configs(
        &self,
        resource: &ConfigResource,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Change<Result<(), AdminError>> {
        let check = || -> Result<MetadataImage, AdminError> {
            let mut next = self.next_image();
            match resource {
                ConfigResource::Topic(name) => {
                    for (k, v) in &configs {
                        defs::validate_topic_config(k, v)
                            .map_err(|e| AdminError::new(codes::INVALID_CONFIG, e.to_string()))?;
                    }
                    let topic = next.topics.get_mut(name).ok_or_else(|| {
                        AdminError::new(
                            codes::UNKNOWN_TOPIC_OR_PARTITION,
                            format!("The topic '{name}' does not exist."),
                        )
                    })?;
                    topic.configs = configs.clone();
                }
                ConfigResource::Broker(scope) => {
                    for (k, v) in &configs {
                        let def = defs::topic_config_by_synonym(k).ok_or_else(|| {
                            AdminError::new(
                                codes::INVALID_CONFIG,
                                format!("Cannot update broker config {k} dynamically"),
                            )
                        })?;
                        defs::validate_topic_config(def.name, v)
                            .map_err(|e| AdminError::new(codes::INVALID_CONFIG, e.to_string()))?;
                    }
                    match scope {
                        Some(id) if !next.brokers.contains_key(id) => {
                            return Err(AdminError::new(
                                codes::INVALID_REQUEST,
                                format!("Unknown broker {id}"),
                            ))
                        }
                        Some(id) => {
                            next.broker_configs.insert(*id, configs.clone());
                        }
                        None => next.cluster_configs = configs.clone(),
                    }
                }
            }
            Ok(next)
        };
        match check() {
            Ok(next) if !validate_only => (Ok(()), Some(next)),
            Ok(_) => (Ok(()), None),
            Err(e) => (Err(e), None),
        }
    }

    /// AlterPartition: an ISR change from the partition's leader.
    pub fn alter_partition(&self, change: &IsrChange) -> Change<Result<PartitionMeta, AdminError>> {
        let IsrChange {
            broker_id,
            broker_epoch,
            ref topic,
            partition,
            leader_epoch,
            partition_epoch,
            ref new_isr,
        } = *change;
        let topic = topic.as_str();
        if let Err(e) = self.check_epoch(broker_id, broker_epoch) {
            return (Err(e), None);
        }
        let Some(current) = self
            .image
            .topics
            .get(topic)
            .and_then(|t| t.partitions.get(partition as usize))
        else {
            return (
                Err(AdminError::new(
                    codes::UNKNOWN_TOPIC_OR_PARTITION,
                    "unknown partition",
                )),
                None,
            );
        };
        let live = self.image.live_brokers();
        match election::alter_isr(
            current,
            broker_id,
            leader_epoch,
            partition_epoch,
            new_isr,
            &live,
        ) {
            Ok(updated) => {
                let mut next = self.next_image();
                if let Some(t) = next.topics.get_mut(topic) {
                    t.partitions[partition as usize] = updated.clone();
                }
                (Ok(updated), Some(next))
            }
            Err(e) => (Err(AdminError::new(e.error_code(), e.to_string())), None),
        }
    }

    /// ElectLeaders (preferred or unclean) for the given partitions, or all of them.
    pub fn elect_leaders(
        &self,
        preferred: bool,
        partitions: Option<&[(String, i32)]>,
    ) -> Change<ElectionResults> {
        let mut next = self.next_image();
        let live = next.live_brokers();
        let targets: Vec<(String, i32)> = match partitions {
            Some(list) => list.to_vec(),
            None => next
                .topics
                .values()
                .flat_map(|t| (0..t.partitions.len() as i32).map(move |p| (t.name.clone(), p)))
                .collect(),
        };
        let explicit = partitions.is_some();
        let mut results = Vec::new();
        let mut changed = false;
        for (topic, p) in targets {
            let Some(state) = next
                .topics
                .get(&topic)
                .and_then(|t| t.partitions.get(p as usize))
                .cloned()
            else {
                results.push((
                    (topic, p),
                    Err(AdminError::new(
                        codes::UNKNOWN_TOPIC_OR_PARTITION,
                        "unknown partition",
                    )),
                ));
                continue;
            };
            let outcome = if preferred {
                match election::elect_preferred(&state, &live) {
                    Some(updated) => Ok(updated),
                    None if state.replicas.first() == Some(&state.leader) => Err(AdminError::new(
                        codes::ELECTION_NOT_NEEDED,
                        "Leader is already the preferred replica",
                    )),
                    None => Err(AdminError::new(
                        codes::PREFERRED_LEADER_NOT_AVAILABLE,
                        "The preferred leader is not available or not in sync",
                    )),
                }
            } else {
                match election::elect(&state, &live, true) {
                    Some(updated) if updated.leader != election::NO_LEADER => Ok(updated),
                    _ if state.leader != election::NO_LEADER && live.contains(&state.leader) => {
                        Err(AdminError::new(
                            codes::ELECTION_NOT_NEEDED,
                            "Partition has a live leader",
                        ))
                    }
                    _ => Err(AdminError::new(
                        codes::ELIGIBLE_LEADERS_NOT_AVAILABLE,
                        "No live replica",
                    )),
                }
            };
            match outcome {
                Ok(updated) => {
                    if let Some(t) = next.topics.get_mut(&topic) {
                        t.partitions[p as usize] = updated;
                    }
                    changed = true;
                    results.push(((topic, p), Ok(())));
                }
                Err(e) if explicit => results.push(((topic, p), Err(e))),
                Err(_) => {}
            }
        }
        (results, changed.then_some(next))
    }

    /// Automatic preferred-leader rebalance (`auto.leader.rebalance.enable`).
    pub fn rebalance_leaders(&self) -> Option<MetadataImage> {
        self.elect_leaders(true, None).1
    }

    /// AllocateProducerIds: a fresh block, never reused (persisted with the image).
    pub fn allocate_producer_ids(
        &self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Result<Change<(i64, i64)>, AdminError> {
        self.check_epoch(broker_id, broker_epoch)?;
        let mut next = self.next_image();
        let first = next.next_producer_id;
        next.next_producer_id += PRODUCER_ID_BLOCK;
        Ok(((first, PRODUCER_ID_BLOCK), Some(next)))
    }
}

/// A newly placed partition: its live replicas form the ISR and the first of them leads
/// (with no live replica it starts offline, its ISR the whole assignment).
fn new_partition(replicas: Vec<i32>, live: &BTreeSet<i32>) -> PartitionMeta {
    let isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|r| live.contains(r))
        .collect();
    let leader = isr.first().copied().unwrap_or(election::NO_LEADER);
    PartitionMeta {
        isr: if isr.is_empty() {
            replicas.clone()
        } else {
            isr
        },
        replicas,
        leader,
        leader_epoch: 0,
        partition_epoch: 0,
    }
}

fn validate_assignments(
    assignments: &[Vec<i32>],
    registered: &BTreeSet<i32>,
    rf: usize,
) -> Result<(), AdminError> {
    for replicas in assignments {
        let unique: BTreeSet<i32> = replicas.iter().copied().collect();
        if replicas.is_empty() || replicas.len() != rf || unique.len() != replicas.len() {
            return Err(AdminError::new(codes::INVALID_REPLICA_ASSIGNMENT, "Replica assignment lists must be non-empty, of equal length and without duplicates"));
        }
        if let Some(b) = replicas.iter().find(|b| !registered.contains(b)) {
            return Err(AdminError::new(
                codes::INVALID_REPLICA_ASSIGNMENT,
                format!("Unknown broker {b} in replica assignment"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn core_with_brokers(n: i32) -> ControllerCore {
        let mut core =
            ControllerCore::new(MetadataImage::default(), ControllerConfig::default(), 0);
        for id in 1..=n {
            let rack = Some(format!("zone-{id}"));
            let (_, image) = core
                .register(
                    Registration {
                        broker_id: id,
                        incarnation: Uuid::new_v4(),
                        rack,
                        host: "127.0.0.1".into(),
                        port: 9000 + id,
                        cluster_id: None,
                    },
                    0,
                )
                .unwrap();
            core.set_image(image.unwrap());
        }
        core
    }

    fn spec(name: &str, partitions: i32, rf: i16) -> TopicSpec {
        TopicSpec {
            name: name.into(),
            partitions,
            replication_factor: rf,
            assignments: vec![],
            configs: BTreeMap::new(),
        }
    }

    /// Applies a change's image (as the service would after persisting it).
    macro_rules! commit {
        ($core:ident, $change:expr) => {{
            let change = $change;
            if let Some(image) = change.1 {
                $core.set_image(image);
            }
            change.0
        }};
    }

    #[test]
    fn topics_are_placed_across_zones() {
        let mut core = core_with_brokers(3);
        let results = commit!(core, core.create_topics(&[spec("t", 3, 3)], false));
        let topic = results[0].as_ref().unwrap();
        assert!(topic
            .partitions
            .iter()
            .all(|p| p.replicas.len() == 3 && p.isr.len() == 3));
        let leaders: BTreeSet<i32> = topic.partitions.iter().map(|p| p.leader).collect();
        assert_eq!(leaders.len(), 3);
        let err = commit!(core, core.create_topics(&[spec("u", 1, 4)], false));
        assert_eq!(
            err[0].as_ref().unwrap_err().code,
            codes::INVALID_REPLICATION_FACTOR
        );
        let dup = commit!(core, core.create_topics(&[spec("t", 1, 1)], false));
        assert_eq!(
            dup[0].as_ref().unwrap_err().code,
            codes::TOPIC_ALREADY_EXISTS
        );
    }

    #[test]
    fn session_expiry_fences_and_moves_leadership() {
        let mut core = core_with_brokers(3);
        commit!(core, core.create_topics(&[spec("t", 1, 3)], false));
        let leader = core.image().topics["t"].partitions[0].leader;
        // Everyone but the leader heartbeats.
        for b in core.image().brokers.clone().values() {
            if b.id != leader {
                let change = core.heartbeat(b.id, b.epoch, 900).unwrap();
                commit!(core, change);
            }
        }
        let image = core.expire_sessions(1500).expect("leader fenced");
        core.set_image(image);
        let p = &core.image().topics["t"].partitions[0];
        assert_ne!(p.leader, leader);
        assert!(!p.isr.contains(&leader));
        assert_eq!(p.leader_epoch, 1);
        assert!(core.image().brokers[&leader].fenced);
        // The zombie's heartbeat with its old epoch still works (same registration): unfenced.
        let epoch = core.image().brokers[&leader].epoch;
        let change = core.heartbeat(leader, epoch, 1600).unwrap();
        commit!(core, change);
        assert!(!core.image().brokers[&leader].fenced);
        // A stale epoch is refused.
        assert_eq!(
            core.heartbeat(leader, epoch - 100, 1700).unwrap_err().code,
            codes::STALE_BROKER_EPOCH
        );
    }

    #[test]
    fn a_closed_session_channel_fences_quickly_unless_the_broker_returns() {
        let mut core = core_with_brokers(2);
        core.shorten_session(1, 100);
        assert!(core.expire_sessions(100 + RECONNECT_GRACE_MS - 1).is_none());
        let epoch = core.image().brokers[&2].epoch;
        commit!(core, core.heartbeat(2, epoch, 100).unwrap());
        core.shorten_session(2, 100);
        let epoch = core.image().brokers[&2].epoch;
        commit!(core, core.heartbeat(2, epoch, 200).unwrap());
        let image = core
            .expire_sessions(100 + RECONNECT_GRACE_MS + 1)
            .expect("broker 1 fenced");
        assert!(image.brokers[&1].fenced);
        assert!(!image.brokers[&2].fenced, "broker 2 reconnected in time");
    }

    #[test]
    fn reregistration_with_new_incarnation_fences_the_old_one() {
        let mut core = core_with_brokers(3);
        commit!(core, core.create_topics(&[spec("t", 1, 3)], false));
        let leader = core.image().topics["t"].partitions[0].leader;
        let old_epoch = core.image().brokers[&leader].epoch;
        let info = core.image().brokers[&leader].clone();
        let (epoch, image) = core
            .register(
                Registration {
                    broker_id: leader,
                    incarnation: Uuid::new_v4(),
                    rack: info.rack,
                    host: info.host,
                    port: info.port,
                    cluster_id: None,
                },
                10,
            )
            .unwrap();
        core.set_image(image.unwrap());
        assert!(epoch > old_epoch);
        let p = &core.image().topics["t"].partitions[0];
        assert_ne!(
            p.leader, leader,
            "leadership moved off the restarted broker"
        );
        assert!(!core.image().brokers[&leader].fenced);
    }

    #[test]
    fn isr_updates_and_preferred_election() {
        let mut core = core_with_brokers(3);
        commit!(core, core.create_topics(&[spec("t", 1, 3)], false));
        let p = core.image().topics["t"].partitions[0].clone();
        let leader_epoch = core.image().brokers[&p.leader].epoch;
        let shrunk = vec![p.leader];
        let shrink = IsrChange {
            broker_id: p.leader,
            broker_epoch: leader_epoch,
            topic: "t".into(),
            partition: 0,
            leader_epoch: p.leader_epoch,
            partition_epoch: p.partition_epoch,
            new_isr: shrunk.clone(),
        };
        let updated = commit!(core, core.alter_partition(&shrink)).unwrap();
        assert_eq!(updated.isr, shrunk);
        // A stale partition epoch is fenced.
        let stale = commit!(
            core,
            core.alter_partition(&IsrChange {
                new_isr: p.replicas.clone(),
                ..shrink
            })
        );
        assert_eq!(stale.unwrap_err().code, 108);
        // The leader is already the preferred replica: nothing to elect.
        let preferred = p.replicas[0];
        let results = commit!(core, core.elect_leaders(true, Some(&[("t".into(), 0)])));
        assert_eq!(
            results[0].1.as_ref().unwrap_err().code,
            codes::ELECTION_NOT_NEEDED
        );
        assert_eq!(core.image().topics["t"].partitions[0].leader, preferred);
    }

    #[test]
    fn configs_and_partitions() {
        let mut core = core_with_brokers(2);
        commit!(core, core.create_topics(&[spec("t", 1, 2)], false));
        let ok = commit!(
            core,
            core.alter_configs(
                &ConfigResource::Topic("t".into()),
                BTreeMap::from([("retention.ms".into(), "1000".into())]),
                false
            )
        );
        assert!(ok.is_ok());
        assert_eq!(core.image().topics["t"].configs["retention.ms"], "1000");
        let bad = commit!(
            core,
            core.alter_configs(
                &ConfigResource::Topic("t".into()),
                BTreeMap::from([("bogus".into(), "1".into())]),
                false
            )
        );
        assert_eq!(bad.unwrap_err().code, codes::INVALID_CONFIG);
        commit!(core, core.create_partitions("t", 3, None, false)).unwrap();
        assert_eq!(core.image().topics["t"].partitions.len(), 3);
        assert_eq!(
            commit!(core, core.create_partitions("t", 2, None, false))
                .unwrap_err()
                .code,
            codes::INVALID_PARTITIONS
        );
        let (first, _) = commit!(
            core,
            core.allocate_producer_ids(1, core.image().brokers[&1].epoch)
                .unwrap()
        );
        let (second, _) = commit!(
            core,
            core.allocate_producer_ids(1, core.image().brokers[&1].epoch)
                .unwrap()
        );
        assert_eq!(second, first + PRODUCER_ID_BLOCK);
    }
}
