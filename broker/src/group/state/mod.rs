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
    /// This member's metadata for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
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
    pending_members: BTreeSet<String>,
    rebalance_deadline_ms: u64,
    /// While set, the join phase waits for the deadline even if everyone has joined
    /// (`group.initial.rebalance.delay.ms`), so a starting fleet lands in one generation.
    initial_delay: bool,
    limits: GroupLimits,
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
            pending_members: BTreeSet::new(),
            rebalance_deadline_ms: 0,
            initial_delay: false,
            limits,
        }
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
        generation: i32,
        now_ms: u64,
    ) -> Result<(), ResponseError> {
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
    pub fn leave(
        &mut self,
        member_id: &str,
        now_ms: u64,
    ) -> (Result<(), ResponseError>, Vec<Effect>) {
        if self.pending_members.remove(member_id) {
            return (Ok(()), Vec::new());
        }
        if self.members.remove(member_id).is_none() {
            return (Err(ResponseError::UnknownMemberId), Vec::new());
        }
        (Ok(()), self.after_member_removed(now_ms))
    }

    fn after_member_removed(&mut self, now_ms: u64) -> Vec<Effect> {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                if self.members.is_empty() {
                    self.state = GroupState::Empty;
                    self.generation += 1;
                    self.protocol = None;
                    self.leader = None;
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
            self.members.remove(&id);
            effects.extend(self.after_member_removed(now_ms));
        }
        if self.state == GroupState::PreparingRebalance && now_ms >= self.rebalance_deadline_ms {
            effects.extend(self.complete_join());
        }
        effects
    }

    /// Checks that a member may commit offsets (OffsetCommit / TxnOffsetCommit rules).
    pub fn validate_commit(&self, member_id: &str, generation: i32) -> Result<(), ResponseError> {
        if generation < 0 && member_id.is_empty() {
            // Standalone (assign()-based) consumers and admin tools.
            return if self.members.is_empty() {
                Ok(())
            } else {
                Err(ResponseError::UnknownMemberId)
            };
        }
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
