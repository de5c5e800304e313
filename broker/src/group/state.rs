//! The classic consumer-group protocol as a pure state machine.
//!
//! States and transitions follow Kafka's `GroupMetadata`/`GroupCoordinator`: Empty →
//! PreparingRebalance → CompletingRebalance → Stable, with rebalances on joins, leaves and
//! session expiry. Time is passed in as milliseconds, and completions that answer parked
//! JoinGroup/SyncGroup requests are returned as [`Effect`]s, so the coordinator owns all I/O
//! and timers while every rule here is unit-testable.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use tributary_metadata::ResponseError;

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

/// A JoinGroup request, reduced to what the state machine needs.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new member must first obtain an id (MEMBER_ID_REQUIRED).
    pub require_known_member_id: bool,
}

/// The answer to a JoinGroup request.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinReply {
    pub error: Option<ResponseError>,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Filled for the leader only: every member's id, instance id and metadata.
    pub members: Vec<(String, Option<String>, Bytes)>,
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

impl JoinReply {
    fn error(error: ResponseError, member_id: &str) -> Self {
        JoinReply {
            error: Some(error),
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// The answer to a SyncGroup request.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncReply {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
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

    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return true;
        }
        if self.protocol_type.as_deref() != Some(protocol_type) {
            return false;
        }
        protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    /// Handles JoinGroup.
    pub fn join(&mut self, req: JoinRequest, now_ms: u64) -> Step<JoinReply> {
        let mut step = Step::default();
        if req.protocol_type.is_empty() || req.protocols.is_empty() {
            step.reply = Some(JoinReply::error(
                ResponseError::InconsistentGroupProtocol,
                &req.member_id,
            ));
            return step;
        }
        if req.session_timeout_ms < self.limits.min_session_timeout_ms
            || req.session_timeout_ms > self.limits.max_session_timeout_ms
        {
            step.reply = Some(JoinReply::error(
                ResponseError::InvalidSessionTimeout,
                &req.member_id,
            ));
            return step;
        }
        let known = self.members.contains_key(&req.member_id);
        let others_ok = {
            // A rejoining member's own old protocols must not block a protocol change.
            let mut probe = self.clone();
            probe.members.remove(&req.member_id);
            probe.supports(&req.protocol_type, &req.protocols)
        };
        if !others_ok {
            step.reply = Some(JoinReply::error(
                ResponseError::InconsistentGroupProtocol,
                &req.member_id,
            ));
            return step;
        }
        let member_id = if req.member_id.is_empty() {
            let id = format!("{}-{}", req.client_id, uuid::Uuid::new_v4());
            if req.require_known_member_id {
                self.pending_members.insert(id.clone());
                step.reply = Some(JoinReply::error(ResponseError::MemberIdRequired, &id));
                return step;
            }
            id
        } else if known || self.pending_members.remove(&req.member_id) {
            req.member_id.clone()
        } else {
            step.reply = Some(JoinReply::error(
                ResponseError::UnknownMemberId,
                &req.member_id,
            ));
            return step;
        };
        let assignment = self
            .members
            .get(&member_id)
            .map(|m| m.assignment.clone())
            .unwrap_or_default();
        self.members.insert(
            member_id.clone(),
            Member {
                id: member_id.clone(),
                instance_id: req.instance_id,
                client_id: req.client_id,
                client_host: req.client_host,
                session_timeout_ms: req.session_timeout_ms,
                rebalance_timeout_ms: req.rebalance_timeout_ms,
                protocols: req.protocols,
                assignment,
                last_heartbeat_ms: now_ms,
                awaiting_join: true,
                awaiting_sync: false,
            },
        );
        if self.protocol_type.is_none() || self.members.len() == 1 {
            self.protocol_type = Some(req.protocol_type);
        }
        step.parked_member = Some(member_id);
        if self.state != GroupState::PreparingRebalance {
            step.effects.extend(self.prepare_rebalance(now_ms));
        }
        step.effects.extend(self.try_complete_join(now_ms));
        step
    }

    fn prepare_rebalance(&mut self, now_ms: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        // Members waiting for an assignment must rejoin.
        for member in self.members.values_mut() {
            if member.awaiting_sync {
                member.awaiting_sync = false;
                effects.push(Effect::Sync(
                    member.id.clone(),
                    SyncReply {
                        error: Some(ResponseError::RebalanceInProgress),
                        protocol_type: None,
                        protocol_name: None,
                        assignment: Bytes::new(),
                    },
                ));
            }
        }
        let max_rebalance = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms.max(0) as u64)
            .max()
            .unwrap_or(0);
        self.initial_delay =
            self.state == GroupState::Empty && self.limits.initial_rebalance_delay_ms > 0;
        self.rebalance_deadline_ms = if self.initial_delay {
            now_ms
                + self
                    .limits
                    .initial_rebalance_delay_ms
                    .min(max_rebalance.max(1))
        } else {
            now_ms + max_rebalance
        };
        self.state = GroupState::PreparingRebalance;
        effects
    }

    fn try_complete_join(&mut self, now_ms: u64) -> Vec<Effect> {
        if self.state != GroupState::PreparingRebalance {
            return Vec::new();
        }
        let everyone_joined = self.members.values().all(|m| m.awaiting_join);
        let deadline_passed = now_ms >= self.rebalance_deadline_ms;
        if self.initial_delay && !deadline_passed {
            return Vec::new();
        }
        if !(everyone_joined || deadline_passed) {
            return Vec::new();
        }
        self.complete_join()
    }

    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .collect();
        let mut votes: BTreeMap<&String, usize> = BTreeMap::new();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n))
            {
                *votes.entry(name).or_default() += 1;
            }
        }
        candidates
            .iter()
            .max_by_key(|c| {
                (
                    votes.get(*c).copied().unwrap_or(0),
                    std::cmp::Reverse(candidates.iter().position(|x| x == *c)),
                )
            })
            .map(|c| (*c).clone())
    }

    fn complete_join(&mut self) -> Vec<Effect> {
        self.members.retain(|_, m| m.awaiting_join);
        self.initial_delay = false;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            return Vec::new();
        }
        self.protocol = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = GroupState::CompletingRebalance;
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let all: Vec<(String, Option<String>, Bytes)> = self
            .members
            .values()
            .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(&protocol)))
            .collect();
        let mut effects = Vec::new();
        for member in self.members.values_mut() {
            member.awaiting_join = false;
            effects.push(Effect::Join(
                member.id.clone(),
                JoinReply {
                    error: None,
                    generation: self.generation,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: Some(protocol.clone()),
                    leader: leader.clone(),
                    member_id: member.id.clone(),
                    members: if member.id == leader {
                        all.clone()
                    } else {
                        Vec::new()
                    },
                },
            ));
        }
        effects
    }

    /// Handles SyncGroup.
    pub fn sync(
        &mut self,
        member_id: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now_ms: u64,
    ) -> Step<SyncReply> {
        let mut step = Step::default();
        let error = |code| SyncReply {
            error: Some(code),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        };
        if !self.members.contains_key(member_id) {
            step.reply = Some(error(ResponseError::UnknownMemberId));
            return step;
        }
        if generation != self.generation {
            step.reply = Some(error(ResponseError::IllegalGeneration));
            return step;
        }
        match self.state {
            GroupState::Empty => step.reply = Some(error(ResponseError::UnknownMemberId)),
            GroupState::PreparingRebalance => {
                step.reply = Some(error(ResponseError::RebalanceInProgress))
            }
            GroupState::Stable => {
                let member = &self.members[member_id];
                step.reply = Some(self.sync_reply(member.assignment.clone()));
            }
            GroupState::CompletingRebalance => {
                step.parked_member = Some(member_id.to_string());
                if let Some(member) = self.members.get_mut(member_id) {
                    member.awaiting_sync = true;
                    member.last_heartbeat_ms = now_ms;
                }
                if self.leader.as_deref() == Some(member_id) {
                    let mut given: BTreeMap<String, Bytes> = assignments.into_iter().collect();
                    for member in self.members.values_mut() {
                        member.assignment = given.remove(&member.id).unwrap_or_default();
                    }
                    self.state = GroupState::Stable;
                    let waiting: Vec<(String, Bytes)> = self
                        .members
                        .values_mut()
                        .filter(|m| m.awaiting_sync)
                        .map(|m| {
                            m.awaiting_sync = false;
                            (m.id.clone(), m.assignment.clone())
                        })
                        .collect();
                    for (id, assignment) in waiting {
                        let reply = self.sync_reply(assignment);
                        step.effects.push(Effect::Sync(id, reply));
                    }
                }
            }
        }
        step
    }

    fn sync_reply(&self, assignment: Bytes) -> SyncReply {
        SyncReply {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: GroupLimits = GroupLimits {
        min_session_timeout_ms: 6000,
        max_session_timeout_ms: 300_000,
        initial_rebalance_delay_ms: 0,
    };

    fn join_req(member_id: &str, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: member_id.into(),
            instance_id: None,
            client_id: "client".into(),
            client_host: "/127.0.0.1".into(),
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from(format!("meta-{p}"))))
                .collect(),
            require_known_member_id: true,
        }
    }

    fn joined(effects: &[Effect]) -> Vec<&JoinReply> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Join(_, r) => Some(r),
                _ => None,
            })
            .collect()
    }

    /// Two-step join (MEMBER_ID_REQUIRED) of a single member, returning its id.
    fn join_one(group: &mut Group, now: u64) -> (String, Vec<Effect>) {
        let step = group.join(join_req("", &["range"]), now);
        let reply = step.reply.unwrap();
        assert_eq!(reply.error, Some(ResponseError::MemberIdRequired));
        let step = group.join(join_req(&reply.member_id, &["range"]), now);
        assert!(step.reply.is_none());
        (reply.member_id, step.effects)
    }

    #[test]
    fn single_member_joins_syncs_and_heartbeats() {
        let mut group = Group::new("g", LIMITS);
        let (id, effects) = join_one(&mut group, 0);
        let replies = joined(&effects);
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].generation, 1);
        assert_eq!(replies[0].leader, id);
        assert_eq!(replies[0].members.len(), 1);
        assert_eq!(replies[0].protocol_name.as_deref(), Some("range"));
        assert_eq!(group.state(), GroupState::CompletingRebalance);

        let step = group.sync(&id, 1, vec![(id.clone(), Bytes::from_static(b"a"))], 10);
        assert!(step.reply.is_none());
        assert_eq!(
            step.effects,
            vec![Effect::Sync(
                id.clone(),
                SyncReply {
                    error: None,
                    protocol_type: Some("consumer".into()),
                    protocol_name: Some("range".into()),
                    assignment: Bytes::from_static(b"a")
                }
            )]
        );
        assert_eq!(group.state(), GroupState::Stable);
        assert_eq!(group.heartbeat(&id, 1, 20), Ok(()));
        assert_eq!(
            group.heartbeat(&id, 0, 20),
            Err(ResponseError::IllegalGeneration)
        );
        assert_eq!(
            group.heartbeat("nobody", 1, 20),
            Err(ResponseError::UnknownMemberId)
        );
        assert_eq!(group.validate_commit(&id, 1), Ok(()));
        assert_eq!(
            group.validate_commit("", -1),
            Err(ResponseError::UnknownMemberId)
        );
    }

    #[test]
    fn second_member_triggers_rebalance_and_leader_gets_all_metadata() {
        let mut group = Group::new("g", LIMITS);
        let (a, _) = join_one(&mut group, 0);
        group.sync(&a, 1, vec![], 0);
        let step = group.join(join_req("", &["range"]), 5);
        let b = step.reply.unwrap().member_id;
        let step = group.join(join_req(&b, &["range"]), 5);
        assert!(
            step.effects.is_empty(),
            "waits for the existing member to rejoin"
        );
        assert_eq!(
            group.heartbeat(&a, 1, 6),
            Err(ResponseError::RebalanceInProgress)
        );
        let step = group.join(join_req(&a, &["range"]), 7);
        let replies = joined(&step.effects);
        assert_eq!(replies.len(), 2);
        assert!(replies.iter().all(|r| r.generation == 2 && r.leader == a));
        let leader_reply = replies.iter().find(|r| r.member_id == a).unwrap();
        assert_eq!(leader_reply.members.len(), 2);
        let follower_reply = replies.iter().find(|r| r.member_id == b).unwrap();
        assert!(follower_reply.members.is_empty());

        // Follower syncs first and waits; the leader's sync answers both.
        let step = group.sync(&b, 2, vec![], 8);
        assert!(step.reply.is_none() && step.effects.is_empty());
        let step = group.sync(
            &a,
            2,
            vec![(a.clone(), "x".into()), (b.clone(), "y".into())],
            9,
        );
        assert_eq!(step.effects.len(), 2);
    }

    #[test]
    fn rebalance_deadline_drops_members_that_do_not_rejoin() {
        let mut group = Group::new("g", LIMITS);
        let (a, _) = join_one(&mut group, 0);
        group.sync(&a, 1, vec![], 0);
        let step = group.join(join_req("", &["range"]), 100);
        let b = step.reply.unwrap().member_id;
        group.join(join_req(&b, &["range"]), 100);
        assert!(group.tick(1000).is_empty());
        let effects = group.tick(100 + 30_000);
        let replies = joined(&effects);
        assert_eq!(replies.len(), 1);
        assert_eq!(replies[0].member_id, b);
        assert_eq!(group.members().count(), 1);
    }

    #[test]
    fn session_expiry_and_leave_empty_the_group() {
        let mut group = Group::new("g", LIMITS);
        let (a, _) = join_one(&mut group, 0);
        group.sync(&a, 1, vec![], 0);
        group.tick(10_001);
        assert_eq!(group.state(), GroupState::Empty);
        assert_eq!(group.validate_commit("", -1), Ok(()));

        let (b, _) = join_one(&mut group, 20_000);
        assert_eq!(group.leave(&b, 20_001).0, Ok(()));
        assert_eq!(group.state(), GroupState::Empty);
        assert_eq!(
            group.leave(&b, 20_002).0,
            Err(ResponseError::UnknownMemberId)
        );
    }

    #[test]
    fn protocol_checks() {
        let mut group = Group::new("g", LIMITS);
        join_one(&mut group, 0);
        let step = group.join(join_req("", &["cooperative-sticky"]), 1);
        assert_eq!(
            step.reply.unwrap().error,
            Some(ResponseError::InconsistentGroupProtocol)
        );
        let mut req = join_req("", &["range"]);
        req.session_timeout_ms = 10;
        assert_eq!(
            group.join(req, 1).reply.unwrap().error,
            Some(ResponseError::InvalidSessionTimeout)
        );
        assert_eq!(
            group
                .join(join_req("ghost", &["range"]), 1)
                .reply
                .unwrap()
                .error,
            Some(ResponseError::UnknownMemberId)
        );
    }

    #[test]
    fn initial_delay_holds_the_first_generation() {
        let limits = GroupLimits {
            initial_rebalance_delay_ms: 3000,
            ..LIMITS
        };
        let mut group = Group::new("g", limits);
        let (_, effects) = join_one(&mut group, 0);
        assert!(effects.is_empty(), "held by the initial delay");
        assert_eq!(joined(&group.tick(3000)).len(), 1);
    }

    #[test]
    fn protocol_selection_prefers_common_choice() {
        let mut group = Group::new("g", LIMITS);
        let r = group
            .join(join_req("", &["sticky", "range"]), 0)
            .reply
            .unwrap();
        group.join(join_req(&r.member_id, &["sticky", "range"]), 0);
        assert_eq!(group.protocol(), Some("sticky"));
    }
}
