//! The replica's role: adopting the controller's assignment (leader, follower or
//! offline, fenced by leader and partition epochs) and the ISR changes a leader proposes.

use tracing::info;
use tributary_metadata::image::PartitionMeta;

use super::{Partition, Role};
use crate::replication::leader::LeaderView;

/// How applying metadata changed the partition's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleChange {
    Unchanged,
    BecameLeader,
    BecameFollower { leader: i32 },
    WentOffline,
}

/// An ISR change the leader wants the controller to commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IsrProposal {
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<i32>,
    /// The broker epoch each member of `new_isr` fetched with (-1 unknown).
    pub new_isr_epochs: Vec<i64>,
}

impl Partition {
    /// Adopts the controller's assignment for this partition.
    pub fn apply_metadata(&self, meta: &PartitionMeta, now_ms: u64) -> RoleChange {
        let mut state = self.lock();
        let me = self.broker_id;
        // Epochs only move forward: a late answer (e.g. to an ISR proposal) must not undo a
        // newer assignment.
        if (meta.leader_epoch, meta.partition_epoch) < (state.leader_epoch, state.partition_epoch) {
            return RoleChange::Unchanged;
        }
        if meta.leader == me {
            let same_term =
                matches!(state.role, Role::Leader(_)) && state.leader_epoch == meta.leader_epoch;
            if same_term {
                if meta.partition_epoch > state.partition_epoch {
                    if let Role::Leader(view) = &mut state.role {
                        view.isr = meta.isr.clone();
                        view.replicas = meta.replicas.clone();
                    }
                    state.partition_epoch = meta.partition_epoch;
                    state.pending_isr = None;
                    self.advance_hw(&mut state);
                }
                return RoleChange::Unchanged;
            }
            info!(topic = %self.topic, partition = self.index, epoch = meta.leader_epoch, isr = ?meta.isr, "becoming leader");
            let epoch_start = state.log.log_end_offset();
            state.role = Role::Leader(LeaderView::new(
                me,
                meta.replicas.clone(),
                meta.isr.clone(),
                epoch_start,
                now_ms,
            ));
            state.leader_epoch = meta.leader_epoch;
            state.partition_epoch = meta.partition_epoch;
            state.pending_isr = None;
            state.needs_truncation = false;
            if meta.isr == [me] {
                // Alone in the ISR: everything in the log is committed.
                let leo = state.log.log_end_offset();
                self.set_hw(&mut state, leo);
            }
            self.advance_hw(&mut state);
            return RoleChange::BecameLeader;
        }
        if meta.leader >= 0 {
            let same = state.role
                == Role::Follower {
                    leader: meta.leader,
                }
                && state.leader_epoch == meta.leader_epoch;
            state.partition_epoch = meta.partition_epoch;
            if same {
                return RoleChange::Unchanged;
            }
            info!(topic = %self.topic, partition = self.index, leader = meta.leader, epoch = meta.leader_epoch, "becoming follower");
            state.role = Role::Follower {
                leader: meta.leader,
            };
            state.leader_epoch = meta.leader_epoch;
            state.needs_truncation = true;
            state.pending_isr = None;
            return RoleChange::BecameFollower {
                leader: meta.leader,
            };
        }
        state.leader_epoch = meta.leader_epoch;
        state.partition_epoch = meta.partition_epoch;
        if state.role == Role::Offline {
            return RoleChange::Unchanged;
        }
        state.role = Role::Offline;
        RoleChange::WentOffline
    }

    /// The ISR change the leader should propose now, if any and none is pending.
    /// Only replicas `eligible` says are live, in the incarnation that fetched, may be added.
    pub fn isr_proposal(
        &self,
        now_ms: u64,
        lag_max_ms: u64,
        eligible: &dyn Fn(i32, i64) -> bool,
    ) -> Option<IsrProposal> {
        let mut state = self.lock();
        if state.pending_isr.is_some() {
            return None;
        }
        let hw = state.high_watermark;
        let Role::Leader(view) = &state.role else {
            return None;
        };
        let new_isr = view.proposed_isr(hw, now_ms, lag_max_ms, eligible)?;
        let new_isr_epochs = view.broker_epochs(&new_isr);
        state.pending_isr = Some(new_isr.clone());
        Some(IsrProposal {
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
            new_isr,
            new_isr_epochs,
        })
    }

    /// The controller answered an ISR proposal: adopt it, or clear the pending flag.
    pub fn isr_proposal_done(&self, committed: Option<&PartitionMeta>) {
        match committed {
            Some(meta) => {
                self.apply_metadata(meta, 0);
            }
            None => self.lock().pending_isr = None,
        }
    }
}
