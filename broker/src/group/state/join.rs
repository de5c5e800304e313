//! The join phase: JoinGroup, protocol selection, and completing the phase once every
//! member has rejoined (or the rebalance deadline passed).

use std::collections::BTreeMap;

use bytes::Bytes;
use tributary_metadata::ResponseError;

use super::{Effect, Group, GroupState, Member, Step, SyncReply};

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
    /// JoinGroup v9+ (KIP-814): a static leader that rejoins a stable group can be handed
    /// the members without being asked to assign, so its restart needs no rebalance.
    pub supports_skip_assignment: bool,
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
    /// The leader must not compute a new assignment: the group kept its current one.
    pub skip_assignment: bool,
}

impl JoinReply {
    /// A failed join: no generation, no protocol.
    pub fn error(error: ResponseError, member_id: &str) -> Self {
        JoinReply {
            error: Some(error),
            generation: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            member_id: member_id.to_string(),
            members: Vec::new(),
            skip_assignment: false,
        }
    }
}

/// The metadata `protocols` carry for `protocol` (empty if they do not name it).
pub(super) fn metadata_of(protocols: &[(String, Bytes)], protocol: &str) -> Bytes {
    protocols
        .iter()
        .find(|(name, _)| name == protocol)
        .map(|(_, m)| m.clone())
        .unwrap_or_default()
}

impl Group {
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
        // A static member that rejoins with no member id is a new incarnation of the
        // member registered under its instance id: it takes over that entry.
        let replaced = match &req.instance_id {
            Some(instance) => match self.static_members.get(instance) {
                Some(current) if req.member_id.is_empty() => Some(current.clone()),
                Some(current) if *current != req.member_id => {
                    step.reply = Some(JoinReply::error(
                        ResponseError::FencedInstanceId,
                        &req.member_id,
                    ));
                    return step;
                }
                _ => None,
            },
            None => None,
        };
        let known = self.members.contains_key(&req.member_id);
        let others_ok = {
            // A rejoining member's own old protocols must not block a protocol change.
            let mut probe = self.clone();
            probe
                .members
                .remove(replaced.as_deref().unwrap_or(&req.member_id));
            probe.supports(&req.protocol_type, &req.protocols)
        };
        if !others_ok {
            step.reply = Some(JoinReply::error(
                ResponseError::InconsistentGroupProtocol,
                &req.member_id,
            ));
            return step;
        }
        if let Some(old_id) = replaced {
            return self.replace_static_member(req, &old_id, now_ms);
        }
        let member_id = if req.member_id.is_empty() {
            match &req.instance_id {
                // Static members are known by their instance id: no MEMBER_ID_REQUIRED.
                Some(instance) => format!("{instance}-{}", uuid::Uuid::new_v4()),
                None => {
                    let id = format!("{}-{}", req.client_id, uuid::Uuid::new_v4());
                    if req.require_known_member_id {
                        self.pending_members.insert(id.clone());
                        step.reply = Some(JoinReply::error(ResponseError::MemberIdRequired, &id));
                        return step;
                    }
                    id
                }
            }
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
        if let Some(instance) = &req.instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
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
        // As in Kafka, the first member to join leads until it leaves.
        if self.leader.is_none() {
            self.leader = Some(member_id.clone());
        }
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

    /// A new incarnation of static member `old_id` (KIP-345): it gets a new member id and
    /// keeps the old entry's assignment; the old incarnation's parked requests are fenced.
    /// In a stable group whose chosen protocol and this member's subscription are
    /// unchanged, it rejoins at the current generation without a rebalance (a leader only
    /// if it can be told to skip assigning, KIP-814); otherwise a rebalance follows.
    fn replace_static_member(
        &mut self,
        req: JoinRequest,
        old_id: &str,
        now_ms: u64,
    ) -> Step<JoinReply> {
        let mut step = Step::default();
        let instance = req.instance_id.clone().unwrap_or_default();
        let Some(mut member) = self.members.remove(old_id) else {
            // The registry and the members always agree; answer as for any stale id.
            self.static_members.remove(&instance);
            step.reply = Some(JoinReply::error(ResponseError::UnknownMemberId, old_id));
            return step;
        };
        step.effects = member.parked_answers(ResponseError::FencedInstanceId);
        let new_id = format!("{instance}-{}", uuid::Uuid::new_v4());
        let protocol = self.protocol.clone().unwrap_or_default();
        let subscription_unchanged =
            member.metadata(&protocol) == metadata_of(&req.protocols, &protocol);
        let was_leader = self.leader.as_deref() == Some(old_id);
        member.id = new_id.clone();
        member.client_id = req.client_id;
        member.client_host = req.client_host;
        member.session_timeout_ms = req.session_timeout_ms;
        member.rebalance_timeout_ms = req.rebalance_timeout_ms;
        member.protocols = req.protocols;
        member.last_heartbeat_ms = now_ms;
        member.awaiting_join = false;
        member.awaiting_sync = false;
        if was_leader {
            self.leader = Some(new_id.clone());
        }
        self.static_members.insert(instance, new_id.clone());
        self.members.insert(new_id.clone(), member);
        let keeps_generation = self.state == GroupState::Stable
            && subscription_unchanged
            && self.select_protocol().as_deref() == Some(protocol.as_str())
            && (!was_leader || req.supports_skip_assignment);
        if keeps_generation {
            // The member's new id is part of the settled generation now.
            self.unsaved = true;
            step.reply = Some(JoinReply {
                error: None,
                generation: self.generation,
                protocol_type: self.protocol_type.clone(),
                protocol_name: self.protocol.clone(),
                leader: self.leader.clone().unwrap_or_default(),
                member_id: new_id,
                members: if was_leader {
                    self.member_metadata(&protocol)
                } else {
                    Vec::new()
                },
                skip_assignment: was_leader,
            });
            return step;
        }
        if let Some(member) = self.members.get_mut(&new_id) {
            member.awaiting_join = true;
        }
        step.parked_member = Some(new_id);
        if self.state != GroupState::PreparingRebalance {
            step.effects.extend(self.prepare_rebalance(now_ms));
        }
        step.effects.extend(self.try_complete_join(now_ms));
        step
    }

    /// Every member's id, instance id and metadata for `protocol`: what the leader assigns from.
    fn member_metadata(&self, protocol: &str) -> Vec<(String, Option<String>, Bytes)> {
        self.members
            .values()
            .map(|m| (m.id.clone(), m.instance_id.clone(), m.metadata(protocol)))
            .collect()
    }

    pub(super) fn prepare_rebalance(&mut self, now_ms: u64) -> Vec<Effect> {
        let mut effects = Vec::new();
        // Members waiting for an assignment must rejoin.
        for member in self.members.values_mut() {
            if member.awaiting_sync {
                member.awaiting_sync = false;
                effects.push(Effect::Sync(
                    member.id.clone(),
                    SyncReply::error(ResponseError::RebalanceInProgress),
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

    pub(super) fn try_complete_join(&mut self, now_ms: u64) -> Vec<Effect> {
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
        self.complete_join(now_ms)
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

    /// Ends the join phase: members that did not rejoin leave, and every remaining
    /// member's session restarts now, as Kafka's coordinator does, so that a member that
    /// waited in JoinGroup longer than its session timeout is not expired before its
    /// SyncGroup.
    pub(super) fn complete_join(&mut self, now_ms: u64) -> Vec<Effect> {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| !m.awaiting_join)
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id);
        }
        self.initial_delay = false;
        self.generation += 1;
        if self.members.is_empty() {
            self.state = GroupState::Empty;
            self.protocol = None;
            self.leader = None;
            self.unsaved = true;
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
        let all = self.member_metadata(&protocol);
        let mut effects = Vec::new();
        for member in self.members.values_mut() {
            member.awaiting_join = false;
            member.last_heartbeat_ms = now_ms;
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
                    skip_assignment: false,
                },
            ));
        }
        effects
    }
}
