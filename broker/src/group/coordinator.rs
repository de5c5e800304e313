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

use super::consumer::records::{self as consumer_records, Image};
use super::consumer::{
    ConsumerGroup, ConsumerGroupSettings, Heartbeat, HeartbeatReply, TopicCatalog,
};
use super::offsets::{partition_for, OffsetKey, OffsetTable, OffsetValue, OffsetWrites};
use super::snapshot::GroupSnapshot;
use tributary_metadata::{ApiError, ResponseError};

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
    /// `classic` or `consumer` (KIP-848), as ListGroups v5 reports it.
    pub group_type: &'static str,
}

type WaiterKey = (String, String);

/// Group metadata waiting to be stored in `__consumer_offsets`, in the order the groups
/// changed.
#[derive(Debug)]
pub enum Unsaved {
    /// A classic group's snapshot (`None`: the group was deleted).
    Classic(String, Option<GroupSnapshot>),
    /// The records a KIP-848 group changed (a null value deletes its key), numbered: the
    /// heartbeat that changed them is answered once they are stored.
    Consumer {
        group: String,
        ticket: u64,
        records: Vec<(Bytes, Option<Bytes>)>,
    },
}

#[derive(Debug, Default)]
struct Inner {
    groups: HashMap<String, Group>,
    /// KIP-848 groups (ConsumerGroupHeartbeat), beside the classic ones.
    consumer_groups: HashMap<String, ConsumerGroup>,
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
    unsaved: VecDeque<Unsaved>,
    /// Each KIP-848 group's revision and records as last queued: what its next change is
    /// written against.
    saved_images: HashMap<String, (u64, Image)>,
    /// The number of the next KIP-848 write.
    next_ticket: u64,
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
    consumer_settings: ConsumerGroupSettings,
    /// Partitions of `__consumer_offsets` (`offsets.topic.num.partitions`).
    pub offsets_partitions: i32,
    epoch: Instant,
    /// Wakes the writer of group metadata ([`GroupCoordinator::take_unsaved`]).
    unsaved_ready: Notify,
    /// The highest KIP-848 write ticket the writer is done with.
    stored: tokio::sync::watch::Sender<u64>,
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
    pub fn new(
        limits: GroupLimits,
        consumer_settings: ConsumerGroupSettings,
        offsets_partitions: i32,
    ) -> Self {
        GroupCoordinator {
            inner: Mutex::new(Inner::default()),
            limits,
            consumer_settings,
            offsets_partitions,
            epoch: Instant::now(),
            unsaved_ready: Notify::new(),
            stored: tokio::sync::watch::Sender::new(0),
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
            inner
                .unsaved
                .push_back(Unsaved::Classic(group.to_string(), Some(snapshot)));
            self.unsaved_ready.notify_one();
        }
    }

    /// The group metadata to store, oldest first; the writer calls this when
    /// [`GroupCoordinator::unsaved_ready`] wakes it.
    pub fn take_unsaved(&self) -> Vec<Unsaved> {
        self.lock().unsaved.drain(..).collect()
    }

    /// The writer is done with KIP-848 write `ticket` (stored, or dropped on failure).
    pub fn mark_stored(&self, ticket: u64) {
        self.stored.send_if_modified(|done| {
            let advanced = ticket > *done;
            *done = (*done).max(ticket);
            advanced
        });
    }

    /// Resolves once the writer is done with `ticket`.
    pub async fn wait_stored(&self, ticket: u64) {
        let mut done = self.stored.subscribe();
        let _ = done.wait_for(|done| *done >= ticket).await;
    }

    /// A KIP-848 write failed: the group's next change rewrites all of it.
    pub fn forget_saved(&self, group: &str) {
        self.lock().saved_images.remove(group);
    }

    /// Queues the records of KIP-848 group `group_id` that changed since its last write
    /// (all of them gone if the group is); returns the write's ticket, if any.
    fn save_consumer(&self, inner: &mut Inner, group_id: &str) -> Option<u64> {
        let group = inner.consumer_groups.get(group_id);
        let revision = group.map(ConsumerGroup::revision);
        let saved = inner.saved_images.get(group_id);
        if revision.is_some() && saved.map(|(r, _)| *r) == revision {
            return None;
        }
        let after = match group.map(consumer_records::image).transpose() {
            Ok(image) => image.unwrap_or_default(),
            Err(error) => {
                tracing::warn!(group = %group_id, %error, "consumer group not stored");
                return None;
            }
        };
        let (_, before) = inner.saved_images.remove(group_id).unwrap_or_default();
        let records = consumer_records::changes(&before, &after);
        if let Some(revision) = revision {
            inner
                .saved_images
                .insert(group_id.to_string(), (revision, after));
        }
        if records.is_empty() {
            return None;
        }
        inner.next_ticket += 1;
        let ticket = inner.next_ticket;
        inner.unsaved.push_back(Unsaved::Consumer {
            group: group_id.to_string(),
            ticket,
            records,
        });
        self.unsaved_ready.notify_one();
        Some(ticket)
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
            for (id, stored) in table.take_consumer_groups() {
                if let Some(group) =
                    ConsumerGroup::restore(&id, self.consumer_settings, stored, now)
                {
                    if let Ok(image) = consumer_records::image(&group) {
                        inner
                            .saved_images
                            .insert(id.clone(), (group.revision(), image));
                    }
                    inner.consumer_groups.insert(id, group);
                }
            }
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
        let elsewhere = |g: &String| partition_for(g, self.offsets_partitions) != partition;
        inner.consumer_groups.retain(|g, _| elsewhere(g));
        inner.saved_images.retain(|g, _| elsewhere(g));
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
            if let Err(code) = self.claim_for_classic(&mut inner, group_id) {
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
        let mut changed = Vec::new();
        for (id, group) in inner.consumer_groups.iter_mut() {
            for member in group.expire(now) {
                tracing::info!(group = %id, member = %member, "consumer group member expired");
                changed.push(id.clone());
            }
        }
        for id in changed {
            self.save_consumer(&mut inner, &id);
        }
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
    /// `version` is the OffsetCommit version (KIP-848 members need v9+).
    pub fn validate_commit(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        version: i16,
    ) -> Result<i32, ResponseError> {
        let inner = self.lock();
        let partition = self.owns(&inner, group_id)?;
        if let Some(group) = inner.consumer_groups.get(group_id) {
            group.validate_commit(member_id, generation, version)?;
            return Ok(partition);
        }
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
        if let Some(group) = inner.consumer_groups.get(group_id) {
            group.validate_txn_commit(member_id, generation)?;
        } else if let Some(group) = inner.groups.get(group_id) {
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
            || inner.consumer_groups.contains_key(group_id)
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
            || inner
                .consumer_groups
                .get(group_id)
                .is_some_and(|g| !g.is_empty())
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
            _ if inner
                .consumer_groups
                .get(group_id)
                .is_some_and(|g| !g.is_empty()) =>
            {
                inner.consumer_groups[group_id].subscribed_topics()
            }
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
        if inner.consumer_groups.remove(group_id).is_some() {
            self.save_consumer(&mut inner, group_id);
        }
        if inner.groups.remove(group_id).is_some() {
            inner
                .unsaved
                .push_back(Unsaved::Classic(group_id.to_string(), None));
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
        ids.extend(inner.consumer_groups.keys().cloned());
        for table in inner.loaded.values() {
            ids.extend(table.groups());
        }
        ids.into_iter().map(|id| summarize(&inner, &id)).collect()
    }

    /// One group: `Ok(None)` if unknown here, `Err` if not coordinated here.
    pub fn describe(&self, group_id: &str) -> Result<Option<GroupSummary>, ResponseError> {
        let inner = self.lock();
        let p = self.owns(&inner, group_id)?;
        if inner.consumer_groups.contains_key(group_id) {
            // Not a classic group: Kafka's DescribeGroups reports it as Dead.
            return Ok(None);
        }
        Ok(self
            .known(&inner, group_id, p)
            .then(|| summarize(&inner, group_id)))
    }

    /// ConsumerGroupHeartbeat. A group id held by a classic group with members is refused;
    /// an empty classic group becomes a consumer group (its offsets stay).
    ///
    /// Returns the reply and the ticket of the write storing what the heartbeat changed:
    /// the reply is to be sent once [`GroupCoordinator::wait_stored`] says it is stored,
    /// as Kafka's coordinator answers only what its log holds.
    pub fn consumer_heartbeat(
        &self,
        group_id: &str,
        heartbeat: Heartbeat,
        topics: &dyn TopicCatalog,
    ) -> (Result<HeartbeatReply, ApiError>, Option<u64>) {
        let mut inner = self.lock();
        let reply = self.consumer_heartbeat_locked(&mut inner, group_id, heartbeat, topics);
        let ticket = self.save_consumer(&mut inner, group_id);
        (reply, ticket)
    }

    fn consumer_heartbeat_locked(
        &self,
        inner: &mut Inner,
        group_id: &str,
        heartbeat: Heartbeat,
        topics: &dyn TopicCatalog,
    ) -> Result<HeartbeatReply, ApiError> {
        let now = self.now();
        self.owns(inner, group_id)
            .map_err(|code| ApiError::new(code, ""))?;
        if !inner.consumer_groups.contains_key(group_id) {
            if inner
                .groups
                .get(group_id)
                .is_some_and(|g| g.state() != GroupState::Empty)
            {
                return Err(ApiError::new(
                    ResponseError::GroupIdNotFound,
                    format!(
                        "Group {group_id} is a classic group with members, not a consumer group."
                    ),
                ));
            }
            if heartbeat.member_epoch != 0 {
                return Err(ApiError::new(
                    ResponseError::UnknownMemberId,
                    format!("Group {group_id} has no member {}.", heartbeat.member_id),
                ));
            }
            if inner.groups.remove(group_id).is_some() {
                inner
                    .unsaved
                    .push_back(Unsaved::Classic(group_id.to_string(), None));
                self.unsaved_ready.notify_one();
            }
            inner.consumer_groups.insert(
                group_id.to_string(),
                ConsumerGroup::new(group_id, self.consumer_settings),
            );
        }
        let group = inner
            .consumer_groups
            .get_mut(group_id)
            .expect("inserted above");
        let epoch = group.epoch();
        let reply = group.heartbeat(heartbeat, topics, now);
        if group.epoch() != epoch {
            tracing::info!(group = %group_id, epoch = group.epoch(), state = group.state(), "consumer group epoch bumped");
        }
        reply
    }

    /// How often KIP-848 members heartbeat.
    pub fn consumer_heartbeat_interval_ms(&self) -> i32 {
        self.consumer_settings.heartbeat_interval_ms
    }

    /// A KIP-848 group for ConsumerGroupDescribe: GROUP_ID_NOT_FOUND for an unknown or
    /// classic group (the admin client then asks DescribeGroups).
    pub fn describe_consumer_group(&self, group_id: &str) -> Result<ConsumerGroup, ApiError> {
        let inner = self.lock();
        self.owns(&inner, group_id)
            .map_err(|code| ApiError::new(code, ""))?;
        inner.consumer_groups.get(group_id).cloned().ok_or_else(|| {
            ApiError::new(
                ResponseError::GroupIdNotFound,
                format!("Group {group_id} is not a consumer group."),
            )
        })
    }

    /// OffsetFetch v9+ from a KIP-848 member must carry its current epoch.
    pub fn validate_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> Result<(), ResponseError> {
        let inner = self.lock();
        match inner.consumer_groups.get(group_id) {
            Some(group) => group.validate_fetch(member_id, member_epoch),
            None => Ok(()),
        }
    }

    /// A classic JoinGroup may take a group id only if no KIP-848 member uses it; an empty
    /// consumer group gives way (its offsets stay).
    fn claim_for_classic(&self, inner: &mut Inner, group_id: &str) -> Result<(), ResponseError> {
        match inner.consumer_groups.get(group_id) {
            Some(group) if !group.is_empty() => Err(ResponseError::InconsistentGroupProtocol),
            Some(_) => {
                inner.consumer_groups.remove(group_id);
                self.save_consumer(inner, group_id);
                Ok(())
            }
            None => Ok(()),
        }
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
    if let Some(group) = inner.consumer_groups.get(id) {
        return GroupSummary {
            id: id.to_string(),
            state: group.state(),
            protocol_type: CONSUMER_PROTOCOL_TYPE.to_string(),
            protocol: String::new(),
            members: Vec::new(),
            group_type: "consumer",
        };
    }
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
                group_type: "classic",
            }
        }
        None => GroupSummary {
            id: id.to_string(),
            state: "Empty",
            protocol_type: "consumer".to_string(),
            protocol: String::new(),
            members: Vec::new(),
            group_type: "classic",
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A coordinator of one offsets partition, not loaded yet.
    fn unloaded() -> GroupCoordinator {
        GroupCoordinator::new(
            GroupLimits {
                min_session_timeout_ms: 6000,
                max_session_timeout_ms: 300_000,
                initial_rebalance_delay_ms: 0,
            },
            ConsumerGroupSettings {
                session_timeout_ms: 45_000,
                heartbeat_interval_ms: 5_000,
            },
            1,
        )
    }

    #[test]
    fn a_marker_that_arrives_while_its_partition_loads_applies_after_the_replay() {
        let coordinator = unloaded();
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

    fn coordinator() -> GroupCoordinator {
        let coordinator = unloaded();
        coordinator.begin_loading(0);
        coordinator.finish_loading(0, OffsetTable::default());
        coordinator
    }

    fn classic_join() -> JoinRequest {
        JoinRequest {
            member_id: String::new(),
            instance_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 10_000,
            protocol_type: CONSUMER_PROTOCOL_TYPE.into(),
            protocols: vec![("range".into(), Bytes::new())],
            require_known_member_id: true,
            supports_skip_assignment: true,
        }
    }

    #[tokio::test]
    async fn a_group_id_serves_one_protocol_at_a_time() {
        let coordinator = coordinator();
        let topics: BTreeMap<String, crate::group::consumer::TopicInfo> = BTreeMap::new();
        let join = Heartbeat {
            member_id: "m".into(),
            rebalance_timeout_ms: 1000,
            topic_names: Some(vec!["t".into()]),
            ..Heartbeat::default()
        };
        let reply = coordinator
            .consumer_heartbeat("g", join.clone(), &topics)
            .0
            .unwrap();
        assert_eq!(reply.member_epoch, 1);

        let refused = coordinator.join("g", classic_join()).await;
        assert_eq!(
            refused.error,
            Some(ResponseError::InconsistentGroupProtocol)
        );
        assert_eq!(
            coordinator.delete_group("g").unwrap_err(),
            ResponseError::NonEmptyGroup
        );
        let listed = coordinator.list();
        assert_eq!(
            (listed[0].group_type, listed[0].state),
            ("consumer", "Stable")
        );
        assert!(
            coordinator.describe("g").unwrap().is_none(),
            "not a classic group"
        );
        assert_eq!(coordinator.describe_consumer_group("g").unwrap().epoch(), 1);

        // Once empty, the id may go classic; the consumer group is gone.
        let leave = Heartbeat {
            member_epoch: super::super::consumer::LEAVE_EPOCH,
            ..join
        };
        coordinator
            .consumer_heartbeat("g", leave, &topics)
            .0
            .unwrap();
        let joined = coordinator.join("g", classic_join()).await;
        assert_eq!(joined.error, Some(ResponseError::MemberIdRequired));
        assert_eq!(
            coordinator.describe_consumer_group("g").unwrap_err().code,
            ResponseError::GroupIdNotFound
        );
    }

    /// Appends what `coordinator` queued for storage to `log`, as the writer would.
    fn store(coordinator: &GroupCoordinator, log: &mut bytes::BytesMut) {
        for unsaved in coordinator.take_unsaved() {
            if let Unsaved::Consumer { records, .. } = unsaved {
                log.extend_from_slice(&super::super::offsets::encode_records(records).unwrap());
            }
        }
    }

    /// A coordinator that loaded `log`.
    fn loaded_from(log: &bytes::BytesMut) -> GroupCoordinator {
        let mut table = OffsetTable::default();
        table.replay(log.clone().freeze()).unwrap();
        let coordinator = unloaded();
        coordinator.begin_loading(0);
        coordinator.finish_loading(0, table);
        coordinator
    }

    #[test]
    fn a_consumer_group_taken_over_resumes_at_its_epochs() {
        use crate::group::consumer::{TopicInfo, TopicPartitions};
        let topic = uuid::Uuid::from_u128(9);
        let topics = BTreeMap::from([(
            "t".to_string(),
            TopicInfo {
                id: topic,
                partitions: 4,
            },
        )]);
        let first = coordinator();
        let join = |member: &str| Heartbeat {
            member_id: member.into(),
            rebalance_timeout_ms: 1000,
            topic_names: Some(vec!["t".into()]),
            instance_id: (member == "b").then(|| "static-b".to_string()),
            ..Heartbeat::default()
        };
        let (a, ticket) = first.consumer_heartbeat("g", join("a"), &topics);
        let a = a.unwrap();
        assert!(ticket.is_some(), "a join is stored");
        let (b, _) = first.consumer_heartbeat("g", join("b"), &topics);
        let b = b.unwrap();
        // a is told to give up half of its partitions.
        let beat = |member: &str, epoch: i32, owned: Option<TopicPartitions>| Heartbeat {
            member_id: member.into(),
            member_epoch: epoch,
            rebalance_timeout_ms: -1,
            owned,
            ..Heartbeat::default()
        };
        let owned_a = a.assignment.clone();
        let revoking = first
            .consumer_heartbeat("g", beat("a", a.member_epoch, owned_a), &topics)
            .0
            .unwrap();
        assert_eq!(revoking.member_epoch, a.member_epoch);
        // A heartbeat that changes nothing writes nothing.
        assert!(first
            .consumer_heartbeat("g", beat("a", a.member_epoch, None), &topics)
            .1
            .is_none());

        // Another coordinator replays the records: the group is where it was.
        let mut log = bytes::BytesMut::new();
        store(&first, &mut log);
        let second = loaded_from(&log);
        let resumed = second.describe_consumer_group("g").unwrap();
        let before = first.describe_consumer_group("g").unwrap();
        assert_eq!(
            (resumed.epoch(), resumed.assignment_epoch()),
            (before.epoch(), before.assignment_epoch())
        );
        let states = |g: &ConsumerGroup| {
            g.members()
                .map(|m| {
                    (
                        m.id.clone(),
                        m.instance_id.clone(),
                        m.assignment.clone(),
                        g.target_of(&m.id),
                    )
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(states(&resumed), states(&before));
        // a finishes its revocation there, b then gets the partitions a released.
        let done = second
            .consumer_heartbeat(
                "g",
                beat("a", a.member_epoch, revoking.assignment.clone()),
                &topics,
            )
            .0
            .unwrap();
        assert_eq!(done.member_epoch, before.epoch());
        let got = second
            .consumer_heartbeat(
                "g",
                beat("b", b.member_epoch, Some(TopicPartitions::new())),
                &topics,
            )
            .0
            .unwrap();
        assert_eq!(
            got.assignment
                .unwrap()
                .values()
                .map(|p| p.len())
                .sum::<usize>(),
            2
        );

        // A deleted group leaves nothing to resume.
        for member in ["a", "b"] {
            let leave = Heartbeat {
                member_epoch: super::super::consumer::LEAVE_EPOCH,
                ..beat(member, 0, None)
            };
            second.consumer_heartbeat("g", leave, &topics).0.unwrap();
        }
        second.delete_group("g").unwrap();
        store(&second, &mut log);
        let third = loaded_from(&log);
        assert!(third.describe_consumer_group("g").is_err());
    }
}
