//! The classic consumer-group protocol as a pure state machine.
//!
//! States and transitions follow Kafka's `GroupMetadata`/`GroupCoordinator`: Empty →
//! PreparingRebalance → CompletingRebalance → Stable, with rebalances on joins, leaves and
//! session expiry. Time is passed in as milliseconds, and completions that answer parked
//! JoinGroup/SyncGroup requests are returned as [`Effect`]s, so the coordinator owns all I/O
//! and timers while every rule here is unit-testable. The join phase is in `join`, the
//! sync phase in `sync`; membership, timers and commit checks are here.

mod join;
mod sync;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use tributary_metadata::ResponseError;

use super::snapshot::{GroupSnapshot, MemberSnapshot};

pub use join::{JoinReply, JoinRequest};

/// The protocol type of Kafka's consumers (as opposed to Connect workers, say).
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// The topics of a `ConsumerProtocolSubscription` (its version leads the bytes).
fn subscription_topics(mut metadata: Bytes) -> Option<Vec<String>> {
    use bytes::Buf;
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Decodable;
    if metadata.len() < 2 {
        return None;
    }
    // Newer versions only add fields, so a newer subscription reads as the newest known.
    let version = metadata.get_i16().clamp(0, 3);
    let subscription = ConsumerProtocolSubscription::decode(&mut metadata, version).ok()?;
    Some(subscription.topics.iter().map(|t| t.to_string()).collect())
}
pub use sync::SyncReply;

/// Group lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
}

impl GroupState {
    /// The name Kafka's admin APIs report.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// Broker-side limits that shape the protocol.
#[derive(Debug, Clone, Copy)]
pub struct GroupLimits {
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub initial_rebalance_delay_ms: u64,
}

/// One member of the group.
#[derive(Debug, Clone)]
pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// `(protocol name, metadata)` in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    last_heartbeat_ms: u64,
    awaiting_join: bool,
    awaiting_sync: bool,
}

impl Member {
    /// Answers, with `error`, the JoinGroup or SyncGroup this member has parked: it was
    /// removed from the group or replaced by a newer incarnation.
    fn parked_answers(&self, error: ResponseError) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.awaiting_join {
            effects.push(Effect::Join(
                self.id.clone(),
                JoinReply::error(error, &self.id),
            ));
        }
        if self.awaiting_sync {
            effects.push(Effect::Sync(self.id.clone(), SyncReply::error(error)));
        }
        effects
    }

    /// This member's metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        join::metadata_of(&self.protocols, protocol)
    }
}

impl<R> Default for Step<R> {
    fn default() -> Self {
        Step {
            reply: None,
            parked_member: None,
            effects: Vec::new(),
        }
    }
}

/// A parked request that can now be answered.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Join(String, JoinReply),
    Sync(String, SyncReply),
}

/// Result of a request: an immediate answer, or parked (answered later by an [`Effect`]).
#[derive(Debug)]
pub struct Step<R> {
    pub reply: Option<R>,
    /// When parked: the member whose request waits (its id may have just been assigned).
    pub parked_member: Option<String>,
    pub effects: Vec<Effect>,
}

/// A consumer group.
#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    state: GroupState,
    generation: i32,
    protocol_type: Option<String>,
    protocol: Option<String>,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Static members (KIP-345): `group.instance.id` → the member id of its current
    /// incarnation. A restarted static member takes over its entry without a rebalance,
    /// and requests from the incarnation it replaced are fenced.
    static_members: BTreeMap<String, String>,
    pending_members: BTreeSet<String>,
    rebalance_deadline_ms: u64,
    /// While set, the join phase waits for the deadline even if everyone has joined
    /// (`group.initial.rebalance.delay.ms`), so a starting fleet lands in one generation.
    initial_delay: bool,
    limits: GroupLimits,
    /// The group reached a state worth storing (a generation settled with its
    /// assignments, or the group emptied) since the coordinator last took a snapshot.
    unsaved: bool,
}

impl Group {
    /// A new, empty group.
    pub fn new(id: &str, limits: GroupLimits) -> Self {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            pending_members: BTreeSet::new(),
            rebalance_deadline_ms: 0,
            initial_delay: false,
            limits,
            unsaved: false,
        }
    }

    /// A group resumed from its stored metadata, as a coordinator taking it over finds
    /// it: stable at its generation when it has members (whose sessions start now, so
    /// members that are gone expire as usual), empty otherwise.
    pub fn restore(id: &str, snapshot: GroupSnapshot, limits: GroupLimits, now_ms: u64) -> Self {
        let mut group = Group::new(id, limits);
        group.generation = snapshot.generation;
        group.protocol_type = Some(snapshot.protocol_type).filter(|t| !t.is_empty());
        group.protocol = snapshot.protocol;
        group.leader = snapshot.leader;
        let protocol = group.protocol.clone().unwrap_or_default();
        for stored in snapshot.members {
            if let Some(instance) = &stored.instance_id {
                group
                    .static_members
                    .insert(instance.clone(), stored.member_id.clone());
            }
            group.members.insert(
                stored.member_id.clone(),
                Member {
                    id: stored.member_id,
                    instance_id: stored.instance_id,
                    client_id: stored.client_id,
                    client_host: stored.client_host,
                    session_timeout_ms: stored.session_timeout_ms,
                    rebalance_timeout_ms: stored.rebalance_timeout_ms,
                    protocols: vec![(protocol.clone(), stored.subscription)],
                    assignment: stored.assignment,
                    last_heartbeat_ms: now_ms,
                    awaiting_join: false,
                    awaiting_sync: false,
                },
            );
        }
        group.state = if group.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        group
    }

    /// The group as it should be stored, if it changed in a way worth storing since the
    /// last call: a generation that settled (every member has its assignment) or a group
    /// that emptied. States in between are not stored, as with Kafka: a coordinator that
    /// takes over mid-rebalance resumes the last settled generation, whose members then
    /// rejoin.
    pub fn take_unsaved(&mut self, now_wall_ms: i64) -> Option<GroupSnapshot> {
        if !std::mem::take(&mut self.unsaved) {
            return None;
        }
        let protocol = self.protocol.clone().unwrap_or_default();
        Some(GroupSnapshot {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp_ms: now_wall_ms,
            members: self
                .members
                .values()
                .map(|m| MemberSnapshot {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    session_timeout_ms: m.session_timeout_ms,
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    pub fn state(&self) -> GroupState {
        self.state
    }
    pub fn generation(&self) -> i32 {
        self.generation
    }
    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The topics this group's members subscribe to, when it uses Kafka's consumer
    /// protocol (each member's metadata is a `ConsumerProtocolSubscription`); `None` for
    /// other protocols, before a protocol is chosen, or when a subscription cannot be read.
    pub fn subscribed_topics(&self) -> Option<BTreeSet<String>> {
        if self.protocol_type() != Some(CONSUMER_PROTOCOL_TYPE) {
            return None;
        }
        let protocol = self.protocol()?;
        let mut topics = BTreeSet::new();
        for member in self.members() {
            topics.extend(subscription_topics(member.metadata(protocol))?);
        }
        Some(topics)
    }

    /// Handles Heartbeat, returning its error code.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now_ms: u64,
    ) -> Result<(), ResponseError> {
        self.check_instance(member_id, instance_id)?;
        let Some(member) = self.members.get_mut(member_id) else {
            return Err(ResponseError::UnknownMemberId);
        };
        member.last_heartbeat_ms = now_ms;
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        match self.state {
            GroupState::Empty => Err(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => Err(ResponseError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
        }
    }

    /// Handles LeaveGroup for one member, returning its error code and any completions.
    /// A static member may leave by its `group.instance.id` alone (KIP-345: an operator
    /// removing a member that is gone for good); given both, they must still match.
    pub fn leave(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: u64,
    ) -> (Result<(), ResponseError>, Vec<Effect>) {
        let member_id = match instance_id {
            Some(instance) => match self.static_members.get(instance) {
                None => return (Err(ResponseError::UnknownMemberId), Vec::new()),
                Some(current) if !member_id.is_empty() && current != member_id => {
                    return (Err(ResponseError::FencedInstanceId), Vec::new())
                }
                Some(current) => current.clone(),
            },
            None => member_id.to_string(),
        };
        if self.pending_members.remove(&member_id) {
            return (Ok(()), Vec::new());
        }
        let Some(member) = self.remove_member(&member_id) else {
            return (Err(ResponseError::UnknownMemberId), Vec::new());
        };
        let mut effects = member.parked_answers(ResponseError::UnknownMemberId);
        effects.extend(self.after_member_removed(now_ms));
        (Ok(()), effects)
    }

    /// Checks a request's `group.instance.id` (Kafka's `validateCurrentMember`): a request
    /// from an older incarnation of a static member, whose instance id now belongs to
    /// another member id, is fenced (FENCED_INSTANCE_ID); an instance id the group does
    /// not know is an unknown member.
    fn check_instance(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), ResponseError> {
        let Some(instance) = instance_id else {
            return Ok(());
        };
        match self.static_members.get(instance) {
            Some(current) if current == member_id => Ok(()),
            Some(_) => Err(ResponseError::FencedInstanceId),
            None => Err(ResponseError::UnknownMemberId),
        }
    }

    /// Removes a member, and its static registration if it has one.
    fn remove_member(&mut self, member_id: &str) -> Option<Member> {
        let member = self.members.remove(member_id)?;
        if let Some(instance) = &member.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        Some(member)
    }

    fn after_member_removed(&mut self, now_ms: u64) -> Vec<Effect> {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.state = GroupState::Empty;
                    self.generation += 1;
                    self.protocol = None;
                    self.leader = None;
                    self.unsaved = true;
                    Vec::new()
                } else {
                    let mut effects = self.prepare_rebalance(now_ms);
                    effects.extend(self.try_complete_join(now_ms));
                    effects
                }
            }
            GroupState::PreparingRebalance => self.try_complete_join(now_ms),
            GroupState::Empty => Vec::new(),
        }
    }

    /// Expires members whose session lapsed and finishes a join phase whose deadline passed.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Effect> {
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| {
                !m.awaiting_join
                    && now_ms > m.last_heartbeat_ms + m.session_timeout_ms.max(0) as u64
            })
            .map(|m| m.id.clone())
            .collect();
        let mut effects = Vec::new();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            if let Some(member) = self.remove_member(&id) {
                effects.extend(member.parked_answers(ResponseError::UnknownMemberId));
            }
            effects.extend(self.after_member_removed(now_ms));
        }
        if self.state == GroupState::PreparingRebalance && now_ms >= self.rebalance_deadline_ms {
            effects.extend(self.complete_join(now_ms));
        }
        effects
    }

    /// Checks a TxnOffsetCommit, as Kafka's coordinator does: a known member (when one is
    /// named) at the group's generation (when one is given); a rebalance does not stop it.
    pub fn validate_txn_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if member_id.is_empty() && generation < 0 {
            // TxnOffsetCommit before v3 carries no member.
            return Ok(());
        }
        self.check_instance(member_id, instance_id)?;
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation >= 0 && generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }

    /// Checks that a member may commit offsets (OffsetCommit rules).
    pub fn validate_commit(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), ResponseError> {
        if generation < 0 && member_id.is_empty() {
            // Standalone (assign()-based) consumers and admin tools.
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(ResponseError::UnknownMemberId)
            };
        }
        self.check_instance(member_id, instance_id)?;
        if self.state == GroupState::CompletingRebalance {
            return Err(ResponseError::RebalanceInProgress);
        }
        if !self.members.contains_key(member_id) {
            return Err(ResponseError::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(ResponseError::IllegalGeneration);
        }
        Ok(())
    }
}
