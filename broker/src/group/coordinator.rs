//! The group coordinator: owns every group's state machine, parks JoinGroup/SyncGroup
//! requests until their rebalance phase completes, runs session timers, and stores offsets.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::oneshot;

use super::offsets::{OffsetKey, OffsetStore, OffsetValue};
use super::state::{
    codes, Effect, Group, GroupLimits, GroupState, JoinReply, JoinRequest, SyncReply,
};
use crate::config::BrokerConfig;
use crate::log::RecoveryMode;

/// A summary of a group for ListGroups / DescribeGroups.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub id: String,
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    /// `(member id, instance id, client id, client host, metadata, assignment)`.
    pub members: Vec<(
        String,
        Option<String>,
        String,
        String,
        bytes::Bytes,
        bytes::Bytes,
    )>,
}

#[derive(Debug, Default)]
struct Waiters {
    join: HashMap<(String, String), oneshot::Sender<JoinReply>>,
    sync: HashMap<(String, String), oneshot::Sender<SyncReply>>,
}

#[derive(Debug)]
struct Inner {
    groups: HashMap<String, Group>,
    waiters: Waiters,
    offsets: OffsetStore,
}

/// Coordinates every group (this broker coordinates all of them when running alone).
#[derive(Debug)]
pub struct GroupCoordinator {
    inner: Mutex<Inner>,
    limits: GroupLimits,
    epoch: Instant,
}

impl Inner {
    fn deliver(&mut self, group: &str, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Join(member, reply) => {
                    if let Some(tx) = self.waiters.join.remove(&(group.to_string(), member)) {
                        let _ = tx.send(reply);
                    }
                }
                Effect::Sync(member, reply) => {
                    if let Some(tx) = self.waiters.sync.remove(&(group.to_string(), member)) {
                        let _ = tx.send(reply);
                    }
                }
            }
        }
    }
}

impl GroupCoordinator {
    /// Opens the coordinator, loading committed offsets from `state_dir`.
    pub fn open(
        state_dir: &Path,
        config: &BrokerConfig,
        mode: RecoveryMode,
    ) -> std::io::Result<Self> {
        Ok(GroupCoordinator {
            inner: Mutex::new(Inner {
                groups: HashMap::new(),
                waiters: Waiters::default(),
                offsets: OffsetStore::open(state_dir, mode)?,
            }),
            limits: GroupLimits {
                min_session_timeout_ms: config.setting_i64("group.min.session.timeout.ms") as i32,
                max_session_timeout_ms: config.setting_i64("group.max.session.timeout.ms") as i32,
                initial_rebalance_delay_ms: config
                    .setting_i64("group.initial.rebalance.delay.ms")
                    .max(0) as u64,
            },
            epoch: Instant::now(),
        })
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// JoinGroup: resolves when the join phase completes (or immediately on error).
    pub async fn join(&self, group_id: &str, req: JoinRequest) -> JoinReply {
        let now = self.now();
        let rx = {
            let mut inner = self.lock();
            let limits = self.limits;
            let group = inner
                .groups
                .entry(group_id.to_string())
                .or_insert_with(|| Group::new(group_id, limits));
            let step = group.join(req, now);
            if let Some(reply) = step.reply {
                inner.deliver(group_id, step.effects);
                return reply;
            }
            let member_id = step.parked_member.unwrap_or_default();
            let (tx, rx) = oneshot::channel();
            inner
                .waiters
                .join
                .insert((group_id.to_string(), member_id), tx);
            inner.deliver(group_id, step.effects);
            rx
        };
        rx.await.unwrap_or(JoinReply {
            error: codes::REBALANCE_IN_PROGRESS,
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: String::new(),
            members: Vec::new(),
        })
    }

    /// SyncGroup: resolves when the leader has provided assignments.
    pub async fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, bytes::Bytes)>,
    ) -> SyncReply {
        let now = self.now();
        let rx = {
            let mut inner = self.lock();
            let Some(group) = inner.groups.get_mut(group_id) else {
                return SyncReply {
                    error: codes::UNKNOWN_MEMBER_ID,
                    protocol_type: None,
                    protocol_name: None,
                    assignment: Default::default(),
                };
            };
            let step = group.sync(member_id, generation, assignments, now);
            if let Some(reply) = step.reply {
                inner.deliver(group_id, step.effects);
                return reply;
            }
            let (tx, rx) = oneshot::channel();
            inner
                .waiters
                .sync
                .insert((group_id.to_string(), member_id.to_string()), tx);
            inner.deliver(group_id, step.effects);
            rx
        };
        rx.await.unwrap_or(SyncReply {
            error: codes::REBALANCE_IN_PROGRESS,
            protocol_type: None,
            protocol_name: None,
            assignment: Default::default(),
        })
    }

    /// Heartbeat.
    pub fn heartbeat(&self, group_id: &str, member_id: &str, generation: i32) -> i16 {
        let now = self.now();
        let mut inner = self.lock();
        match inner.groups.get_mut(group_id) {
            Some(group) => group.heartbeat(member_id, generation, now),
            None => codes::UNKNOWN_MEMBER_ID,
        }
    }

    /// LeaveGroup for several members; returns each member's error code.
    pub fn leave(&self, group_id: &str, members: &[String]) -> Vec<i16> {
        let now = self.now();
        let mut inner = self.lock();
        let mut results = Vec::new();
        let mut all_effects = Vec::new();
        match inner.groups.get_mut(group_id) {
            Some(group) => {
                for member in members {
                    let (code, effects) = group.leave(member, now);
                    results.push(code);
                    all_effects.extend(effects);
                }
            }
            None => results.extend(members.iter().map(|_| codes::UNKNOWN_MEMBER_ID)),
        }
        for member in members {
            inner
                .waiters
                .join
                .remove(&(group_id.to_string(), member.clone()));
            inner
                .waiters
                .sync
                .remove(&(group_id.to_string(), member.clone()));
        }
        inner.deliver(group_id, all_effects);
        results
    }

    /// Runs timers: session expiry and rebalance deadlines. Called periodically.
    pub fn tick(&self) {
        let now = self.now();
        let mut inner = self.lock();
        let ids: Vec<String> = inner.groups.keys().cloned().collect();
        for id in ids {
            let effects = inner
                .groups
                .get_mut(&id)
                .map(|g| g.tick(now))
                .unwrap_or_default();
            inner.deliver(&id, effects);
        }
    }

    /// Validates and stores offset commits. `offsets` are `(topic, partition, value)`;
    /// returns one error code for the whole request (the group check) or per-partition ok.
    pub fn commit(
        &self,
        group_id: &str,
        member_id: &str,
        generation: i32,
        offsets: Vec<(String, i32, OffsetValue)>,
    ) -> Result<(), i16> {
        let mut inner = self.lock();
        let code = match inner.groups.get(group_id) {
            Some(group) => group.validate_commit(member_id, generation),
            None if generation < 0 => codes::NONE,
            None => codes::ILLEGAL_GENERATION,
        };
        if code != codes::NONE {
            return Err(code);
        }
        let entries = offsets
            .into_iter()
            .map(|(topic, partition, value)| {
                (
                    OffsetKey {
                        group: group_id.to_string(),
                        topic,
                        partition,
                    },
                    Some(value),
                )
            })
            .collect();
        inner.offsets.write(entries).map_err(|e| {
            tracing::error!(group = %group_id, error = %e, "writing offsets failed");
            56
        })
    }

    /// Committed offsets of a group (all, or the listed partitions).
    pub fn fetch_offsets(&self, group_id: &str) -> BTreeMap<(String, i32), OffsetValue> {
        self.lock().offsets.group_offsets(group_id)
    }

    /// Deletes committed offsets of partitions (OffsetDelete), refused while subscribed.
    pub fn delete_offsets(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<(), i16> {
        let mut inner = self.lock();
        if let Some(group) = inner.groups.get(group_id) {
            if group.state() != GroupState::Empty {
                return Err(86); // GROUP_SUBSCRIBED_TO_TOPIC
            }
        } else if !inner.offsets.groups().contains(group_id) {
            return Err(codes::GROUP_ID_NOT_FOUND);
        }
        let entries = partitions
            .into_iter()
            .map(|(topic, partition)| {
                (
                    OffsetKey {
                        group: group_id.to_string(),
                        topic,
                        partition,
                    },
                    None,
                )
            })
            .collect();
        inner.offsets.write(entries).map_err(|_| 56)
    }

    /// DeleteGroups for one group.
    pub fn delete_group(&self, group_id: &str) -> i16 {
        let mut inner = self.lock();
        let known =
            inner.groups.contains_key(group_id) || inner.offsets.groups().contains(group_id);
        if !known {
            return codes::GROUP_ID_NOT_FOUND;
        }
        if inner
            .groups
            .get(group_id)
            .is_some_and(|g| g.state() != GroupState::Empty)
        {
            return codes::NON_EMPTY_GROUP;
        }
        inner.groups.remove(group_id);
        let entries = inner
            .offsets
            .group_offsets(group_id)
            .into_keys()
            .map(|(topic, partition)| {
                (
                    OffsetKey {
                        group: group_id.to_string(),
                        topic,
                        partition,
                    },
                    None,
                )
            })
            .collect();
        match inner.offsets.write(entries) {
            Ok(()) => codes::NONE,
            Err(_) => 56,
        }
    }

    /// Drops committed offsets of a deleted topic.
    pub fn forget_topic(&self, topic: &str) {
        let mut inner = self.lock();
        let mut entries = Vec::new();
        for group in inner.offsets.groups() {
            for (t, p) in inner.offsets.group_offsets(&group).into_keys() {
                if t == topic {
                    entries.push((
                        OffsetKey {
                            group: group.clone(),
                            topic: t,
                            partition: p,
                        },
                        None,
                    ));
                }
            }
        }
        if let Err(e) = inner.offsets.write(entries) {
            tracing::warn!(topic, error = %e, "dropping offsets of deleted topic failed");
        }
    }

    /// Every known group (with members or committed offsets).
    pub fn list(&self) -> Vec<GroupSummary> {
        let inner = self.lock();
        let mut ids: std::collections::BTreeSet<String> = inner.groups.keys().cloned().collect();
        ids.extend(inner.offsets.groups());
        ids.into_iter().map(|id| summarize(&inner, &id)).collect()
    }

    /// One group, or `None` if it is unknown.
    pub fn describe(&self, group_id: &str) -> Option<GroupSummary> {
        let inner = self.lock();
        let known =
            inner.groups.contains_key(group_id) || inner.offsets.groups().contains(group_id);
        known.then(|| summarize(&inner, group_id))
    }

    /// Forces the offsets log to disk.
    pub fn flush(&self) -> std::io::Result<()> {
        self.lock().offsets.flush()
    }
}

fn summarize(inner: &Inner, id: &str) -> GroupSummary {
    match inner.groups.get(id) {
        Some(group) => {
            let protocol = group.protocol().unwrap_or_default().to_string();
            GroupSummary {
                id: id.to_string(),
                state: if group.state() == GroupState::Empty {
                    "Empty"
                } else {
                    group.state().name()
                },
                protocol_type: group.protocol_type().unwrap_or_default().to_string(),
                members: group
                    .members()
                    .map(|m| {
                        (
                            m.id.clone(),
                            m.instance_id.clone(),
                            m.client_id.clone(),
                            m.client_host.clone(),
                            m.metadata(&protocol),
                            m.assignment.clone(),
                        )
                    })
                    .collect(),
                protocol,
            }
        }
        None => GroupSummary {
            id: id.to_string(),
            state: "Empty",
            protocol_type: "consumer".to_string(),
            protocol: String::new(),
            members: Vec::new(),
        },
    }
}
