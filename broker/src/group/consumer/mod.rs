//! KIP-848 consumer groups (`group.protocol=consumer`): members send only heartbeats
//! (ConsumerGroupHeartbeat) carrying their subscription and the partitions they own; the
//! coordinator assigns partitions itself ([`assignor`]) and moves each member toward its
//! target one epoch at a time ([`reconcile`]). A rebalance stops nobody: members keep
//! consuming what they keep while partitions move.
//!
//! The group is pure state: the coordinator feeds it heartbeats, the clock and a view of
//! the cluster's topics.

pub mod assignor;
pub mod reconcile;
pub mod records;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use tributary_metadata::{ApiError, ResponseError};
use uuid::Uuid;

pub use assignor::{Assignor, DEFAULT_ASSIGNOR};
pub use reconcile::{MemberAssignment, MemberState};

/// Partitions by topic id, as the protocol carries them.
pub type TopicPartitions = BTreeMap<Uuid, BTreeSet<i32>>;

/// The member epoch of a heartbeat that leaves the group.
pub const LEAVE_EPOCH: i32 = -1;
/// The member epoch of a static member's temporary leave: its assignment is held for it
/// until its session times out.
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// A topic as assignment needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopicInfo {
    pub id: Uuid,
    pub partitions: i32,
}

/// The cluster's topics, against which subscriptions resolve.
pub trait TopicCatalog {
    /// A topic by name, if it exists.
    fn topic(&self, name: &str) -> Option<TopicInfo>;
    /// Names regex subscriptions may match: every topic, internal ones included, as
    /// Kafka's coordinator resolves them.
    fn names(&self) -> Vec<String>;
}

impl TopicCatalog for tributary_metadata::MetadataImage {
    fn topic(&self, name: &str) -> Option<TopicInfo> {
        self.topics.get(name).map(|t| TopicInfo {
            id: t.id,
            partitions: t.partitions.len() as i32,
        })
    }

    fn names(&self) -> Vec<String> {
        self.topics.keys().cloned().collect()
    }
}

/// Timers of consumer groups (Kafka's `group.consumer.*` settings).
#[derive(Debug, Clone, Copy)]
pub struct ConsumerGroupSettings {
    /// A member that has not heartbeated for this long is removed.
    pub session_timeout_ms: u64,
    /// How often members heartbeat, told to them in every response.
    pub heartbeat_interval_ms: i32,
}

/// One ConsumerGroupHeartbeat, as the group needs it. `None` fields were not sent: they
/// keep their previous value.
#[derive(Debug, Clone, Default)]
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// `-1`: unchanged.
    pub rebalance_timeout_ms: i32,
    pub topic_names: Option<Vec<String>>,
    /// `Some("")` clears a regex subscription.
    pub topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    pub owned: Option<TopicPartitions>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatReply {
    pub member_id: String,
    pub member_epoch: i32,
    /// The member's assignment, when it changed or the heartbeat was a full one.
    pub assignment: Option<TopicPartitions>,
}

/// A member of a consumer group.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub topic_names: BTreeSet<String>,
    pub topic_regex: Option<String>,
    pub server_assignor: Option<Assignor>,
    pub rebalance_timeout_ms: i32,
    pub assignment: MemberAssignment,
    /// `topic_regex`, compiled.
    regex: Option<regex::Regex>,
    /// Topics its subscription resolved to at the last heartbeat.
    resolved: BTreeSet<String>,
    last_heartbeat_ms: u64,
    /// When a pending revocation must be done by, or the member is fenced.
    revoke_deadline_ms: Option<u64>,
}

impl Member {
    fn new(id: &str) -> Self {
        Member {
            id: id.to_string(),
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            topic_names: BTreeSet::new(),
            topic_regex: None,
            server_assignor: None,
            rebalance_timeout_ms: 0,
            assignment: MemberAssignment::joining(),
            regex: None,
            resolved: BTreeSet::new(),
            last_heartbeat_ms: 0,
            revoke_deadline_ms: None,
        }
    }

    /// Whether this is a static member that left temporarily.
    pub fn departed(&self) -> bool {
        self.assignment.epoch == STATIC_LEAVE_EPOCH
    }

    /// Its subscription as `__consumer_offsets` stores it.
    pub fn subscription(&self) -> records::StoredSubscription {
        records::StoredSubscription {
            instance_id: self.instance_id.clone(),
            rack_id: self.rack_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            topic_names: self.topic_names.iter().cloned().collect(),
            topic_regex: self.topic_regex.clone(),
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            server_assignor: self.server_assignor.map(|a| a.name().to_string()),
        }
    }
}

/// A KIP-848 consumer group.
#[derive(Debug, Clone)]
pub struct ConsumerGroup {
    id: String,
    settings: ConsumerGroupSettings,
    /// Bumped whenever what assignment depends on changes (members, subscriptions,
    /// subscribed topics' partitions, the assignor).
    epoch: i32,
    /// The group epoch the target assignment was computed at.
    assignment_epoch: i32,
    members: BTreeMap<String, Member>,
    targets: BTreeMap<String, TopicPartitions>,
    /// Which member holds each partition (assigned or still revoking).
    holders: HashMap<(Uuid, i32), String>,
    /// The subscribed topics as of the last assignment input.
    subscribed: BTreeMap<String, TopicInfo>,
    /// A digest of `subscribed`, stored with the group: a change of it rebalances.
    subscription_hash: i64,
    assignor: Assignor,
    /// Bumped by every change to what `__consumer_offsets` stores of the group, so that
    /// a heartbeat that changes none of it costs no encoding.
    revision: u64,
}

fn refusal(code: ResponseError, message: impl Into<String>) -> ApiError {
    ApiError::new(code, message)
}

impl ConsumerGroup {
    /// An empty group.
    pub fn new(id: &str, settings: ConsumerGroupSettings) -> Self {
        ConsumerGroup {
            id: id.to_string(),
            settings,
            epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            targets: BTreeMap::new(),
            holders: HashMap::new(),
            subscribed: BTreeMap::new(),
            subscription_hash: 0,
            assignor: DEFAULT_ASSIGNOR,
            revision: 0,
        }
    }

    /// The number of stored-state changes so far (see the field).
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// A group as a replay of `__consumer_offsets` found it: members keep their epochs,
    /// partitions and targets; their sessions start over at `now_ms`.
    pub fn restore(
        id: &str,
        settings: ConsumerGroupSettings,
        stored: records::StoredGroup,
        now_ms: u64,
    ) -> Option<Self> {
        let mut group = ConsumerGroup::new(id, settings);
        group.epoch = stored.epoch?;
        group.assignment_epoch = stored.assignment_epoch;
        group.subscription_hash = stored.subscription_hash;
        for (member_id, stored_member) in stored.members {
            let (Some(subscription), Some(current)) =
                (stored_member.subscription, stored_member.current)
            else {
                continue;
            };
            let mut member = Member::new(&member_id);
            member.instance_id = subscription.instance_id;
            member.rack_id = subscription.rack_id;
            member.client_id = subscription.client_id;
            member.client_host = subscription.client_host;
            member.topic_names = subscription.topic_names.into_iter().collect();
            member.regex = subscription
                .topic_regex
                .as_deref()
                .and_then(|p| compile(p).ok());
            member.topic_regex = subscription.topic_regex;
            member.rebalance_timeout_ms = subscription.rebalance_timeout_ms;
            member.server_assignor = subscription
                .server_assignor
                .as_deref()
                .and_then(Assignor::named);
            member.resolved = member.topic_names.clone();
            member.last_heartbeat_ms = now_ms;
            if current.state == MemberState::UnrevokedPartitions {
                member.revoke_deadline_ms =
                    Some(now_ms + member.rebalance_timeout_ms.max(0) as u64);
            }
            member.assignment = current;
            if let Some(target) = stored_member.target {
                group.targets.insert(member_id.clone(), target);
            }
            group.hold(&member_id, [], &member.assignment.clone());
            group.members.insert(member_id, member);
        }
        group.assignor = group.preferred_assignor();
        Some(group)
    }

    /// The group epoch.
    pub fn epoch(&self) -> i32 {
        self.epoch
    }

    /// The epoch of the current target assignment.
    pub fn assignment_epoch(&self) -> i32 {
        self.assignment_epoch
    }

    /// The assignor in use.
    pub fn assignor(&self) -> Assignor {
        self.assignor
    }

    /// Members by id.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// A member's target assignment.
    pub fn target_of(&self, member: &str) -> TopicPartitions {
        self.targets.get(member).cloned().unwrap_or_default()
    }

    /// Whether no member is in the group.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Topics the members subscribe to (for OffsetDelete's GROUP_SUBSCRIBED_TO_TOPIC).
    pub fn subscribed_topics(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.resolved.iter().cloned())
            .collect()
    }

    /// The group state Kafka's tools show.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.epoch != self.assignment_epoch {
            "Assigning"
        } else if self.members.values().any(|m| {
            m.assignment.epoch != self.assignment_epoch || m.assignment.state != MemberState::Stable
        }) {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Handles one heartbeat: joins, leaves, subscription changes, acknowledgements of
    /// revoked partitions; answers the member's epoch and, when it changed, assignment.
    pub fn heartbeat(
        &mut self,
        hb: Heartbeat,
        topics: &dyn TopicCatalog,
        now_ms: u64,
    ) -> Result<HeartbeatReply, ApiError> {
        if hb.member_epoch == LEAVE_EPOCH || hb.member_epoch == STATIC_LEAVE_EPOCH {
            return self.leave(&hb.member_id, hb.member_epoch, now_ms);
        }
        let assignor = match hb.server_assignor.as_deref() {
            Some(name) => Some(Assignor::named(name).ok_or_else(|| {
                refusal(
                    ResponseError::UnsupportedAssignor,
                    format!(
                        "Assignor {name} is not supported. Supported assignors: uniform, range."
                    ),
                )
            })?),
            None => None,
        };
        let regex = match hb.topic_regex.as_deref() {
            Some(pattern) if !pattern.is_empty() => Some(compile(pattern)?),
            _ => None,
        };
        // What the member held before this heartbeat, to release what it no longer holds.
        let prior = self
            .members
            .get(&hb.member_id)
            .map(|m| m.assignment.clone());
        let stored_before = self.stored_view(&hb.member_id);
        let (mut member, mut changed) = if hb.member_epoch == 0 {
            self.joining(&hb)?
        } else {
            (self.current(&hb)?, false)
        };
        let before = member.assignment.clone();
        if let Some(names) = &hb.topic_names {
            let names: BTreeSet<String> = names.iter().cloned().collect();
            changed |= names != member.topic_names;
            member.topic_names = names;
        }
        if let Some(pattern) = &hb.topic_regex {
            let pattern = (!pattern.is_empty()).then(|| pattern.clone());
            changed |= pattern != member.topic_regex;
            member.topic_regex = pattern;
            member.regex = regex;
        }
        if hb.rebalance_timeout_ms >= 0 {
            member.rebalance_timeout_ms = hb.rebalance_timeout_ms;
        }
        if assignor.is_some() {
            member.server_assignor = assignor;
        }
        if hb.rack_id.is_some() {
            member.rack_id = hb.rack_id.clone();
        }
        if hb.instance_id.is_some() {
            member.instance_id = hb.instance_id.clone();
        }
        member.client_id = hb.client_id.clone();
        member.client_host = hb.client_host.clone();
        member.last_heartbeat_ms = now_ms;
        let id = member.id.clone();
        self.members.insert(id.clone(), member);

        changed |= self.refresh_subscriptions(topics);
        let preferred = self.preferred_assignor();
        changed |= preferred != self.assignor;
        self.assignor = preferred;
        if changed {
            self.epoch += 1;
        }
        if self.epoch > self.assignment_epoch {
            self.compute_targets();
        }

        let target = self.target_of(&id);
        let next = {
            let holders = &self.holders;
            before.reconcile(self.assignment_epoch, &target, hb.owned.as_ref(), |t, p| {
                holders.get(&(t, p)).is_some_and(|holder| *holder != id)
            })
        };
        self.hold(&id, [prior.as_ref(), Some(&before)], &next);
        let member = self.members.get_mut(&id).expect("inserted above");
        member.revoke_deadline_ms = match next.state {
            MemberState::UnrevokedPartitions => Some(
                member
                    .revoke_deadline_ms
                    .unwrap_or(now_ms + member.rebalance_timeout_ms.max(0) as u64),
            ),
            _ => None,
        };
        let full = hb.member_epoch == 0 || hb.owned.is_some();
        let assignment = (full || next.assigned != before.assigned).then(|| next.assigned.clone());
        let epoch = next.epoch;
        member.assignment = next;
        if self.stored_view(&id) != stored_before {
            self.revision += 1;
        }
        Ok(HeartbeatReply {
            member_id: id,
            member_epoch: epoch,
            assignment,
        })
    }

    /// The member a heartbeat of epoch 0 speaks for: a new one, a known one rejoining, or
    /// a static member's replacement. Returns it and whether the group changed.
    fn joining(&mut self, hb: &Heartbeat) -> Result<(Member, bool), ApiError> {
        if hb.topic_names.is_none() && hb.topic_regex.is_none() {
            return Err(refusal(
                ResponseError::InvalidRequest,
                "SubscribedTopicNames or SubscribedTopicRegex must be set in first request.",
            ));
        }
        if hb.rebalance_timeout_ms < 0 {
            return Err(refusal(
                ResponseError::InvalidRequest,
                "RebalanceTimeoutMs must be provided in first request.",
            ));
        }
        if let Some(instance) = &hb.instance_id {
            let previous = self
                .members
                .values()
                .find(|m| m.instance_id.as_deref() == Some(instance) && m.id != hb.member_id)
                .map(|m| m.id.clone());
            if let Some(previous) = previous {
                if !self.members[&previous].departed() {
                    return Err(refusal(
                        ResponseError::UnreleasedInstanceId,
                        format!(
                            "Static member {previous} with instance id {instance} is still in group {}.",
                            self.id
                        ),
                    ));
                }
                // The replacement takes the departed member's place and partitions.
                let mut member = self.members.remove(&previous).expect("found above");
                if let Some(target) = self.targets.remove(&previous) {
                    self.targets.insert(hb.member_id.clone(), target);
                }
                for holder in self.holders.values_mut() {
                    if *holder == previous {
                        *holder = hb.member_id.clone();
                    }
                }
                member.id = hb.member_id.clone();
                member.assignment.epoch = 0;
                member.assignment.previous_epoch = 0;
                self.revision += 1;
                return Ok((member, false));
            }
        }
        if let Some(known) = self.members.get(&hb.member_id) {
            // A member fenced or restarted with the same id starts over at epoch 0; the
            // partitions it held stay its own if the target still gives them to it.
            let mut member = known.clone();
            member.assignment.epoch = 0;
            member.assignment.previous_epoch = 0;
            member.assignment.state = MemberState::Stable;
            member.assignment.revoking.clear();
            return Ok((member, false));
        }
        Ok((Member::new(&hb.member_id), true))
    }

    /// The known member a heartbeat of a positive epoch speaks for, if it is not fenced.
    fn current(&self, hb: &Heartbeat) -> Result<Member, ApiError> {
        // A static member replaced by a newer incarnation of its instance is a zombie.
        if let Some(instance) = &hb.instance_id {
            let holder = self
                .members
                .values()
                .find(|m| m.instance_id.as_deref() == Some(instance.as_str()));
            if holder.is_some_and(|m| m.id != hb.member_id) {
                return Err(refusal(
                    ResponseError::FencedInstanceId,
                    format!(
                        "Instance id {instance} belongs to another member of group {}.",
                        self.id
                    ),
                ));
            }
        }
        let member = self
            .members
            .get(&hb.member_id)
            .filter(|m| !m.departed())
            .ok_or_else(|| {
                refusal(
                    ResponseError::UnknownMemberId,
                    format!(
                        "Member {} is not a member of group {}.",
                        hb.member_id, self.id
                    ),
                )
            })?;
        if hb.instance_id.is_some() && hb.instance_id != member.instance_id {
            return Err(refusal(
                ResponseError::FencedInstanceId,
                format!(
                    "Member {} does not hold instance id {:?}.",
                    member.id, hb.instance_id
                ),
            ));
        }
        let ours = &member.assignment;
        let retry = hb.member_epoch == ours.previous_epoch
            && hb
                .owned
                .as_ref()
                .is_some_and(|owned| reconcile::is_subset(owned, &ours.assigned));
        if hb.member_epoch > ours.epoch || (hb.member_epoch < ours.epoch && !retry) {
            return Err(refusal(
                ResponseError::FencedMemberEpoch,
                format!(
                    "The member epoch {} of {} is fenced: the group knows epoch {}.",
                    hb.member_epoch, member.id, ours.epoch
                ),
            ));
        }
        Ok(member.clone())
    }

    /// A leave heartbeat: a dynamic member goes at once; a static one (epoch -2) keeps its
    /// place until its session times out.
    fn leave(
        &mut self,
        member_id: &str,
        epoch: i32,
        now_ms: u64,
    ) -> Result<HeartbeatReply, ApiError> {
        let Some(member) = self.members.get_mut(member_id) else {
            return Err(refusal(
                ResponseError::UnknownMemberId,
                format!("Member {member_id} is not a member of group {}.", self.id),
            ));
        };
        if epoch == STATIC_LEAVE_EPOCH {
            if member.instance_id.is_none() {
                return Err(refusal(
                    ResponseError::InvalidRequest,
                    format!("Member {member_id} has no instance id: it cannot leave temporarily (epoch -2)."),
                ));
            }
            member.assignment.epoch = STATIC_LEAVE_EPOCH;
            member.last_heartbeat_ms = now_ms;
            self.revision += 1;
        } else {
            self.remove(member_id);
        }
        Ok(HeartbeatReply {
            member_id: member_id.to_string(),
            member_epoch: epoch,
            assignment: None,
        })
    }

    /// Removes a member: its partitions are released and the group is rebalanced.
    fn remove(&mut self, member_id: &str) {
        if self.members.remove(member_id).is_some() {
            self.holders.retain(|_, holder| holder != member_id);
            self.targets.remove(member_id);
            self.epoch += 1;
            self.assignor = self.preferred_assignor();
            self.revision += 1;
        }
    }

    /// What the group stores that a heartbeat of `member_id` may change: the group's
    /// epochs and the member's subscription and assignment. (Its target changes only
    /// with the assignment epoch.)
    fn stored_view(
        &self,
        member_id: &str,
    ) -> (
        i32,
        i32,
        Option<(records::StoredSubscription, MemberAssignment)>,
    ) {
        let member = self
            .members
            .get(member_id)
            .map(|m| (m.subscription(), m.assignment.clone()));
        (self.epoch, self.assignment_epoch, member)
    }

    /// Removes members whose session or revocation deadline passed; returns their ids.
    pub fn expire(&mut self, now_ms: u64) -> Vec<String> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                now_ms.saturating_sub(m.last_heartbeat_ms) > self.settings.session_timeout_ms
                    || m.revoke_deadline_ms
                        .is_some_and(|deadline| now_ms > deadline)
            })
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            self.remove(id);
        }
        expired
    }

    /// Re-resolves the members' topics (regular expressions against the topics there are
    /// now); whether the subscribed topics changed.
    fn refresh_subscriptions(&mut self, topics: &dyn TopicCatalog) -> bool {
        let all_names = self
            .members
            .values()
            .any(|m| m.regex.is_some())
            .then(|| topics.names());
        for member in self.members.values_mut() {
            member.resolved = member.topic_names.clone();
            if let (Some(regex), Some(names)) = (&member.regex, &all_names) {
                member
                    .resolved
                    .extend(names.iter().filter(|n| regex.is_match(n)).cloned());
            }
        }
        let names: BTreeSet<&String> = self.members.values().flat_map(|m| &m.resolved).collect();
        let subscribed: BTreeMap<String, TopicInfo> = names
            .into_iter()
            .filter_map(|name| Some((name.clone(), topics.topic(name)?)))
            .collect();
        let hash = digest(&subscribed);
        let changed = hash != self.subscription_hash;
        self.subscribed = subscribed;
        self.subscription_hash = hash;
        changed
    }

    /// The assignor most members ask for (the default when none does, or on a tie).
    fn preferred_assignor(&self) -> Assignor {
        let mut votes: BTreeMap<Assignor, usize> = BTreeMap::new();
        for assignor in self.members.values().filter_map(|m| m.server_assignor) {
            *votes.entry(assignor).or_default() += 1;
        }
        let Some(most) = votes.values().max().copied() else {
            return DEFAULT_ASSIGNOR;
        };
        let leaders: Vec<Assignor> = votes
            .into_iter()
            .filter(|(_, n)| *n == most)
            .map(|(a, _)| a)
            .collect();
        match leaders.as_slice() {
            [only] => *only,
            _ => DEFAULT_ASSIGNOR,
        }
    }

    fn compute_targets(&mut self) {
        let subscriptions: BTreeMap<String, BTreeSet<Uuid>> = self
            .members
            .values()
            .map(|m| {
                let ids = m
                    .resolved
                    .iter()
                    .filter_map(|name| self.subscribed.get(name).map(|t| t.id))
                    .collect();
                (m.id.clone(), ids)
            })
            .collect();
        let partitions: BTreeMap<Uuid, i32> = self
            .subscribed
            .values()
            .map(|t| (t.id, t.partitions))
            .collect();
        self.targets = self
            .assignor
            .assign(&subscriptions, &partitions, &self.targets);
        self.assignment_epoch = self.epoch;
    }

    /// Records that `member` now holds what `next` gives it instead of what the
    /// `previous` assignments gave it.
    fn hold<'a>(
        &mut self,
        member: &str,
        previous: impl IntoIterator<Item = Option<&'a MemberAssignment>>,
        next: &MemberAssignment,
    ) {
        for old in previous.into_iter().flatten() {
            for parts in [&old.assigned, &old.revoking] {
                for (topic, ps) in parts {
                    for p in ps {
                        if self.holders.get(&(*topic, *p)).is_some_and(|h| h == member) {
                            self.holders.remove(&(*topic, *p));
                        }
                    }
                }
            }
        }
        for parts in [&next.assigned, &next.revoking] {
            for (topic, ps) in parts {
                for p in ps {
                    self.holders.insert((*topic, *p), member.to_string());
                }
            }
        }
    }

    /// OffsetCommit validation, as Kafka's consumer groups do it: a commit without a
    /// member is accepted only while the group is empty; a member's must use OffsetCommit
    /// v9+ (`version`) and carry its current epoch (`STALE_MEMBER_EPOCH` otherwise).
    pub fn validate_commit(
        &self,
        member_id: &str,
        epoch: i32,
        version: i16,
    ) -> Result<(), ResponseError> {
        if epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if version < 9 {
            return Err(ResponseError::UnsupportedVersion);
        }
        self.check_epoch(member_id, epoch, ResponseError::StaleMemberEpoch)
    }

    /// TxnOffsetCommit validation: as OffsetCommit's, any version, with
    /// `ILLEGAL_GENERATION` for an outdated epoch (what its clients understand).
    pub fn validate_txn_commit(&self, member_id: &str, epoch: i32) -> Result<(), ResponseError> {
        if epoch < 0 && self.members.is_empty() {
            return Ok(());
        }
        self.check_epoch(member_id, epoch, ResponseError::IllegalGeneration)
    }

    /// OffsetFetch validation (v9+): a member's fetch must carry its current epoch; one
    /// with neither member nor epoch (admin tools) is always accepted.
    pub fn validate_fetch(&self, member_id: Option<&str>, epoch: i32) -> Result<(), ResponseError> {
        if member_id.is_none() && epoch < 0 {
            return Ok(());
        }
        let member_id = member_id.unwrap_or_default();
        self.check_epoch(member_id, epoch, ResponseError::StaleMemberEpoch)
    }

    /// `member_id` must be a member at `epoch`; `stale` is the error when it is not.
    fn check_epoch(
        &self,
        member_id: &str,
        epoch: i32,
        stale: ResponseError,
    ) -> Result<(), ResponseError> {
        let member = self
            .members
            .get(member_id)
            .ok_or(ResponseError::UnknownMemberId)?;
        if epoch != member.assignment.epoch {
            return Err(stale);
        }
        Ok(())
    }
}

/// A digest of the subscribed topics (FNV-1a over names, ids and partition counts):
/// stable across restarts, so a group taken over compares it with the stored one.
fn digest(subscribed: &BTreeMap<String, TopicInfo>) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    };
    for (name, topic) in subscribed {
        feed(name.as_bytes());
        feed(topic.id.as_bytes());
        feed(&topic.partitions.to_be_bytes());
    }
    if subscribed.is_empty() {
        0
    } else {
        hash as i64
    }
}

/// Compiles a subscription regex: the whole topic name must match (RE2J's `matches`).
fn compile(pattern: &str) -> Result<regex::Regex, ApiError> {
    regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
        refusal(
            ResponseError::InvalidRegularExpression,
            format!("SubscribedTopicRegex `{pattern}` is not a valid regular expression: {e}"),
        )
    })
}
