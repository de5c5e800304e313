//! The group coordinator: owns the groups whose `__consumer_offsets` partition this broker
//! leads, parks JoinGroup/SyncGroup requests until their rebalance phase completes, runs
//! session timers, and keeps each loaded partition's committed offsets in memory. Writing
//! offsets (through the replicated partition) is the broker's job; this type validates
//! commits and applies them once they are durable.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::{oneshot, Notify};

use super::offsets::{partition_for, OffsetKey, OffsetTable, OffsetValue, OffsetWrites};
use super::snapshot::GroupSnapshot;
use tributary_metadata::ResponseError;

use super::state::{
    Effect, Group, GroupLimits, GroupState, JoinReply, JoinRequest, SyncReply,
    CONSUMER_PROTOCOL_TYPE,
};

/// A member as DescribeGroups reports it.
#[derive(Debug, Clone)]
pub struct MemberSummary {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A group for ListGroups / DescribeGroups.
#[derive(Debug, Clone)]
pub struct GroupSummary {
    pub id: String,
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol: String,
    pub members: Vec<MemberSummary>,
}

type WaiterKey = (String, String);

#[derive(Debug, Default)]
struct Inner {
    groups: HashMap<String, Group>,
    join_waiters: HashMap<WaiterKey, oneshot::Sender<JoinReply>>,
    sync_waiters: HashMap<WaiterKey, oneshot::Sender<SyncReply>>,
    /// Offsets partitions led and loaded here, with their committed offsets.
    loaded: HashMap<i32, OffsetTable>,
    /// Offsets partitions led here but still being replayed.
    loading: BTreeSet<i32>,
    /// Transaction markers that reached a partition while it was being replayed, past
    /// what the replay reads: `(producer id, commit)`, applied once it is loaded.
    markers_while_loading: HashMap<i32, Vec<(i64, bool)>>,
    /// Group metadata to store, in the order the groups changed (`None` deletes a group).
    unsaved: VecDeque<(String, Option<GroupSnapshot>)>,
}

impl Inner {
    fn deliver(&mut self, group: &str, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Join(member, reply) => {
                    if let Some(tx) = self.join_waiters.remove(&(group.to_string(), member)) {
                        let _ = tx.send(reply);
                    }
                }
                Effect::Sync(member, reply) => {
                    if let Some(tx) = self.sync_waiters.remove(&(group.to_string(), member)) {
                        let _ = tx.send(reply);
                    }
                }
            }
        }
    }
}

/// Coordinates the groups of the offsets partitions this broker leads.
#[derive(Debug)]
pub struct GroupCoordinator {
    inner: Mutex<Inner>,
    limits: GroupLimits,
    /// Partitions of `__consumer_offsets` (`offsets.topic.num.partitions`).
    pub offsets_partitions: i32,
    epoch: Instant,
    /// Wakes the writer of group metadata ([`GroupCoordinator::take_unsaved`]).
    unsaved_ready: Notify,
}

/// Answers every parked request of `group` with `reply()`.
fn answer_parked<R>(
    waiters: &mut HashMap<WaiterKey, oneshot::Sender<R>>,
    group: &str,
    reply: impl Fn() -> R,
) {
    let parked: Vec<WaiterKey> = waiters.keys().filter(|k| k.0 == group).cloned().collect();
    for key in parked {
        if let Some(tx) = waiters.remove(&key) {
            let _ = tx.send(reply());
        }
    }
}

fn join_error(code: ResponseError) -> JoinReply {
    JoinReply::error(code, "")
}

fn sync_error(code: ResponseError) -> SyncReply {
    SyncReply::error(code)
}

impl GroupCoordinator {
    /// A coordinator with no partitions loaded.
    pub fn new(limits: GroupLimits, offsets_partitions: i32) -> Self {
        GroupCoordinator {
            inner: Mutex::new(Inner::default()),
            limits,
            offsets_partitions,
            epoch: Instant::now(),
            unsaved_ready: Notify::new(),
        }
    }

    /// Answers what `effects` completes for `group`, and queues the group's metadata if it
    /// reached a state worth storing. Every change to a group ends here.
    fn settle(&self, inner: &mut Inner, group: &str, effects: Vec<Effect>) {
        inner.deliver(group, effects);
        let unsaved = inner
            .groups
            .get_mut(group)
            .and_then(|g| g.take_unsaved(crate::util::now_ms()));
        if let Some(snapshot) = unsaved {
            inner.unsaved.push_back((group.to_string(), Some(snapshot)));
            self.unsaved_ready.notify_one();
        }
    }

    /// The group metadata to store, oldest first; the writer calls this when
    /// [`GroupCoordinator::unsaved_ready`] wakes it.
    pub fn take_unsaved(&self) -> Vec<(String, Option<GroupSnapshot>)> {
        self.lock().unsaved.drain(..).collect()
    }

    /// Resolves when group metadata is waiting to be stored.
    pub async fn unsaved_ready(&self) {
        self.unsaved_ready.notified().await
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `__consumer_offsets` partition holding `group`.
    pub fn partition_of(&self, group: &str) -> i32 {
        partition_for(group, self.offsets_partitions)
    }

    fn owns(&self, inner: &Inner, group: &str) -> Result<i32, ResponseError> {
        let p = self.partition_of(group);
        if inner.loaded.contains_key(&p) {
            Ok(p)
        } else if inner.loading.contains(&p) {
            Err(ResponseError::CoordinatorLoadInProgress)
        } else {
            Err(ResponseError::NotCoordinator)
        }
    }

    /// Marks an offsets partition as being loaded (this broker just became its leader).
    pub fn begin_loading(&self, partition: i32) {
        self.lock().loading.insert(partition);
    }

    /// Installs a loaded partition's offsets: its groups are now served here.
    pub fn finish_loading(&self, partition: i32, mut table: OffsetTable) {
        let now = self.now();
        let mut inner = self.lock();
        if inner.loading.remove(&partition) {
            let snapshots = table.take_group_snapshots();
            let restored = snapshots.len();
            for (id, snapshot) in snapshots {
                let group = Group::restore(&id, snapshot, self.limits, now);
                inner.groups.insert(id, group);
            }
            for (producer_id, commit) in inner
                .markers_while_loading
                .remove(&partition)
                .unwrap_or_default()
            {
                table.complete_txn(producer_id, commit);
            }
            inner.loaded.insert(partition, table);
            tracing::info!(partition, groups = restored, "group metadata restored");
            tracing::info!(
                partition,
                "offsets partition loaded: coordinating its groups"
            );
        }
    }

    /// Drops an offsets partition this broker no longer leads, failing its parked requests.
    pub fn unload(&self, partition: i32) {
        let mut inner = self.lock();
        inner.loading.remove(&partition);
        inner.markers_while_loading.remove(&partition);
        if inner.loaded.remove(&partition).is_none() {
            return;
        }
        let gone: Vec<String> = inner
            .groups
            .keys()
            .filter(|g| self.partition_of(g) == partition)
            .cloned()
            .collect();
        for group in gone {
            inner.groups.remove(&group);
            answer_parked(&mut inner.join_waiters, &group, || {
                join_error(ResponseError::NotCoordinator)
            });
            answer_parked(&mut inner.sync_waiters, &group, || {
                sync_error(ResponseError::NotCoordinator)
            });
        }
        tracing::info!(partition, "offsets partition unloaded");
    }

    /// JoinGroup: resolves when the join phase completes (or immediately on error).
    pub async fn join(&self, group_id: &str, req: JoinRequest) -> JoinReply {
        let now = self.now();
        let rx = {
            let mut inner = self.lock();
            if let Err(code) = self.owns(&inner, group_id) {
                return join_error(code);
            }
            let limits = self.limits;
            let group = inner
                .groups
                .entry(group_id.to_string())
                .or_insert_with(|| Group::new(group_id, limits));
            let step = group.join(req, now);
            if let Some(reply) = step.reply {
                self.settle(&mut inner, group_id, step.effects);
                return reply;
            }
            let member_id = step.parked_member.unwrap_or_default();
            let (tx, rx) = oneshot::channel();
            inner
                .join_waiters
                .insert((group_id.to_string(), member_id), tx);
            self.settle(&mut inner, group_id, step.effects);
            rx
        };
        rx.await
            .unwrap_or_else(|_| join_error(ResponseError::RebalanceInProgress))
    }

    /// SyncGroup: resolves when the leader has provided assignments.
    pub async fn sync(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncReply {
        let now = self.now();
        let rx = {
            let mut inner = self.lock();
            if let Err(code) = self.owns(&inner, group_id) {
                return sync_error(code);
            }
            let Some(group) = inner.groups.get_mut(group_id) else {
                return sync_error(ResponseError::UnknownMemberId);
            };
            let step = group.sync(member_id, instance_id, generation, assignments, now);
            if let Some(reply) = step.reply {
                self.settle(&mut inner, group_id, step.effects);
                return reply;
            }
            let (tx, rx) = oneshot::channel();
            inner
                .sync_waiters
                .insert((group_id.to_string(), member_id.to_string()), tx);
            self.settle(&mut inner, group_id, step.effects);
            rx
        };
        rx.await
            .unwrap_or_else(|_| sync_error(ResponseError::RebalanceInProgress))
    }

    /// Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        let now = self.now();
        let mut inner = self.lock();
        self.owns(&inner, group_id)?;
        match inner.groups.get_mut(group_id) {
            Some(group) => group.heartbeat(member_id, instance_id, generation, now),
            None => Err(ResponseError::UnknownMemberId),
        }
    }

    /// LeaveGroup for several members, each `(member id, group.instance.id)`; the group
    /// error, or each member's error code. Their parked requests are answered.
    pub fn leave(
        &self,
        group_id: &str,
        members: &[(String, Option<String>)],
    ) -> Result<Vec<Result<(), ResponseError>>, ResponseError> {
        let now = self.now();
        let mut inner = self.lock();
        self.owns(&inner, group_id)?;
        let mut results = Vec::new();
        let mut effects = Vec::new();
        match inner.groups.get_mut(group_id) {
            Some(group) => {
                for (member, instance) in members {
                    let (code, more) = group.leave(member, instance.as_deref(), now);
                    results.push(code);
                    effects.extend(more);
                }
            }
            None => results.extend(members.iter().map(|_| Err(ResponseError::UnknownMemberId))),
        }
        self.settle(&mut inner, group_id, effects);
        Ok(results)
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
            self.settle(&mut inner, &id, effects);
        }
    }

    /// Checks that `member_id` of `generation` may commit for `group_id`; returns the
    /// offsets partition to write to.
    pub fn validate_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<i32, ResponseError> {
        let inner = self.lock();
        let partition = self.owns(&inner, group_id)?;
        match inner.groups.get(group_id) {
            Some(group) => group.validate_commit(member_id, instance_id, generation)?,
            None if generation < 0 => {}
            None => return Err(ResponseError::IllegalGeneration),
        }
        Ok(partition)
    }

    /// Checks that `member_id` of `generation` may commit offsets in a transaction
    /// (TxnOffsetCommit); returns the offsets partition to write to.
    pub fn validate_txn_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<i32, ResponseError> {
        let inner = self.lock();
        let partition = self.owns(&inner, group_id)?;
        if let Some(group) = inner.groups.get(group_id) {
            group.validate_txn_commit(member_id, instance_id, generation)?;
        }
        Ok(partition)
    }

    /// Stages transactional offsets now durable in the offsets partition.
    pub fn stage_txn(&self, partition: i32, producer_id: i64, entries: OffsetWrites) {
        if let Some(table) = self.lock().loaded.get_mut(&partition) {
            table.stage_txn(producer_id, entries);
        }
    }

    /// A transaction marker reached offsets partition `partition` (kept for after the
    /// replay while the partition is being loaded).
    pub fn complete_txn(&self, partition: i32, producer_id: i64, commit: bool) {
        let mut inner = self.lock();
        if let Some(table) = inner.loaded.get_mut(&partition) {
            table.complete_txn(producer_id, commit);
        } else if inner.loading.contains(&partition) {
            inner
                .markers_while_loading
                .entry(partition)
                .or_default()
                .push((producer_id, commit));
        }
    }

    /// Applies entries that are now durable in the offsets partition.
    pub fn apply(&self, partition: i32, entries: Vec<(OffsetKey, Option<OffsetValue>)>) {
        if let Some(table) = self.lock().loaded.get_mut(&partition) {
            table.apply(entries);
        }
    }

    /// The partitions of a group whose offsets a transaction holds undecided.
    pub fn pending_txn_offsets(
        &self,
        group_id: &str,
    ) -> Result<BTreeSet<(String, i32)>, ResponseError> {
        let inner = self.lock();
        let p = self.owns(&inner, group_id)?;
        Ok(inner
            .loaded
            .get(&p)
            .map(|t| t.pending_of(group_id))
            .unwrap_or_default())
    }

    /// Committed offsets of a group.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
    ) -> Result<BTreeMap<(String, i32), OffsetValue>, ResponseError> {
        let inner = self.lock();
        let p = self.owns(&inner, group_id)?;
        Ok(inner
            .loaded
            .get(&p)
            .map(|t| t.group_offsets(group_id))
            .unwrap_or_default())
    }

    fn known(&self, inner: &Inner, group_id: &str, partition: i32) -> bool {
        inner.groups.contains_key(group_id)
            || inner
                .loaded
                .get(&partition)
                .is_some_and(|t| t.groups().contains(group_id))
    }

    /// Offsets of a group may only be deleted here, for a known group without members;
    /// `busy` is the error for a group that still has members. Returns its partition.
    fn check_deletable(
        &self,
        inner: &Inner,
        group_id: &str,
        busy: ResponseError,
    ) -> Result<i32, ResponseError> {
        let p = self.owns(inner, group_id)?;
        if !self.known(inner, group_id, p) {
            return Err(ResponseError::GroupIdNotFound);
        }
        if inner
            .groups
            .get(group_id)
            .is_some_and(|g| g.state() != GroupState::Empty)
        {
            return Err(busy);
        }
        Ok(p)
    }

    /// OffsetDelete validation, as Kafka's coordinator decides it: an empty group's offsets
    /// all go; a consumer group's go except on the topics its members subscribe to (all
    /// of them while the subscriptions are unknown), which are returned to be answered
    /// GROUP_SUBSCRIBED_TO_TOPIC; any other group with members keeps them (NON_EMPTY_GROUP).
    pub fn offsets_to_delete(
        &self,
        group_id: &str,
        partitions: Vec<(String, i32)>,
    ) -> Result<(i32, OffsetWrites, BTreeSet<String>), ResponseError> {
        let inner = self.lock();
        let p = self.owns(&inner, group_id)?;
        if !self.known(&inner, group_id, p) {
            return Err(ResponseError::GroupIdNotFound);
        }
        let subscribed = match inner.groups.get(group_id) {
            Some(group) if group.state() != GroupState::Empty => {
                if group.protocol_type() != Some(CONSUMER_PROTOCOL_TYPE) {
                    return Err(ResponseError::NonEmptyGroup);
                }
                match group.subscribed_topics() {
                    Some(topics) => topics,
                    None => partitions.iter().map(|(t, _)| t.clone()).collect(),
                }
            }
            _ => BTreeSet::new(),
        };
        let (kept, deleted): (Vec<_>, Vec<_>) = partitions
            .into_iter()
            .partition(|(topic, _)| subscribed.contains(topic));
        let refused = kept.into_iter().map(|(topic, _)| topic).collect();
        Ok((p, deletions(group_id, deleted), refused))
    }

    /// DeleteGroups validation: removes the (empty) group; returns its offsets to delete.
    pub fn delete_group(&self, group_id: &str) -> Result<(i32, OffsetWrites), ResponseError> {
        let mut inner = self.lock();
        let p = self.check_deletable(&inner, group_id, ResponseError::NonEmptyGroup)?;
        if inner.groups.remove(group_id).is_some() {
            inner.unsaved.push_back((group_id.to_string(), None));
            self.unsaved_ready.notify_one();
        }
        let committed = inner
            .loaded
            .get(&p)
            .map(|t| t.group_offsets(group_id))
            .unwrap_or_default();
        Ok((p, deletions(group_id, committed.into_keys())))
    }

    /// Deletions of every committed offset on `topic`, per offsets partition.
    pub fn offsets_of_topic(&self, topic: &str) -> Vec<(i32, OffsetWrites)> {
        let inner = self.lock();
        inner
            .loaded
            .iter()
            .map(|(p, t)| {
                (
                    *p,
                    t.keys_of_topic(topic)
                        .into_iter()
                        .map(|k| (k, None))
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, e)| !e.is_empty())
            .collect()
    }

    /// Groups coordinated here (with members or committed offsets).
    pub fn list(&self) -> Vec<GroupSummary> {
        let inner = self.lock();
        let mut ids: BTreeSet<String> = inner.groups.keys().cloned().collect();
        for table in inner.loaded.values() {
            ids.extend(table.groups());
        }
        ids.into_iter().map(|id| summarize(&inner, &id)).collect()
    }

    /// One group: `Ok(None)` if unknown here, `Err` if not coordinated here.
    pub fn describe(&self, group_id: &str) -> Result<Option<GroupSummary>, ResponseError> {
        let inner = self.lock();
        let p = self.owns(&inner, group_id)?;
        Ok(self
            .known(&inner, group_id, p)
            .then(|| summarize(&inner, group_id)))
    }
}

/// Tombstones for a group's offsets on `(topic, partition)`s.
fn deletions(group_id: &str, partitions: impl IntoIterator<Item = (String, i32)>) -> OffsetWrites {
    partitions
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
        .collect()
}

fn summarize(inner: &Inner, id: &str) -> GroupSummary {
    match inner.groups.get(id) {
        Some(group) => {
            let protocol = group.protocol().unwrap_or_default().to_string();
            GroupSummary {
                id: id.to_string(),
                state: group.state().name(),
                protocol_type: group.protocol_type().unwrap_or_default().to_string(),
                members: group
                    .members()
                    .map(|m| MemberSummary {
                        member_id: m.id.clone(),
                        instance_id: m.instance_id.clone(),
                        client_id: m.client_id.clone(),
                        client_host: m.client_host.clone(),
                        metadata: m.metadata(&protocol),
                        assignment: m.assignment.clone(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_that_arrives_while_its_partition_loads_applies_after_the_replay() {
        let coordinator = GroupCoordinator::new(
            GroupLimits {
                min_session_timeout_ms: 6000,
                max_session_timeout_ms: 300_000,
                initial_rebalance_delay_ms: 0,
            },
            1,
        );
        let partition = coordinator.partition_of("g");
        coordinator.begin_loading(partition);
        // The replay read the transaction's offsets but not its commit marker.
        let mut table = OffsetTable::default();
        let key = OffsetKey {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
        };
        let value = OffsetValue {
            offset: 5,
            leader_epoch: -1,
            metadata: None,
            commit_timestamp: 0,
        };
        table.stage_txn(7, vec![(key, Some(value))]);
        coordinator.complete_txn(partition, 7, true);
        coordinator.finish_loading(partition, table);
        let offsets = coordinator.fetch_offsets("g").unwrap();
        assert_eq!(offsets[&("t".to_string(), 0)].offset, 5);
        assert!(coordinator.pending_txn_offsets("g").unwrap().is_empty());
    }
}
