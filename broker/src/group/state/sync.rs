//! The sync phase: the leader's assignments handed to every member with SyncGroup.

use std::collections::BTreeMap;

use bytes::Bytes;
use tributary_metadata::ResponseError;

use super::{Effect, Group, GroupState, Step};

/// The answer to a SyncGroup request.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncReply {
    pub error: Option<ResponseError>,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncReply {
    /// A failed sync: no assignment.
    pub fn error(error: ResponseError) -> Self {
        SyncReply {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

impl Group {
    /// Handles SyncGroup.
    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
        now_ms: u64,
    ) -> Step<SyncReply> {
        let mut step = Step::default();
        let error = SyncReply::error;
        if let Err(fenced) = self.check_instance(member_id, instance_id) {
            step.reply = Some(error(fenced));
            return step;
        }
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
                    self.unsaved = true;
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

    pub(super) fn sync_reply(&self, assignment: Bytes) -> SyncReply {
        SyncReply {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment,
        }
    }
}
