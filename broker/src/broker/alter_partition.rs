//! AlterPartition sending: leaders propose ISR changes (followers that fell behind or
//! caught up) to the controller, and adopt the committed result.

use std::sync::Arc;

use tracing::{info, warn};
use tributary_metadata::rpc::{ControllerRequest, ControllerResponse, IsrChange};

use super::{Broker, CONTROLLER_TIMEOUT};
use crate::partition::Partition;

impl Broker {
    /// Proposes the ISR changes leaders want now (run periodically).
    pub fn maintain_isr(self: &Arc<Self>) {
        let lag_max = self.config.setting_i64("replica.lag.time.max.ms").max(100) as u64;
        let now = self.now_ms();
        let live: std::collections::BTreeMap<i32, i64> = self
            .metadata
            .live_brokers()
            .iter()
            .map(|b| (b.id, b.epoch))
            .collect();
        let eligible = |id: i32, epoch: i64| live.get(&id) == Some(&epoch);
        for partition in self.replicas.all() {
            let Some(proposal) = partition.isr_proposal(now, lag_max, &eligible) else {
                continue;
            };
            info!(topic = %partition.topic, partition = partition.index, isr = ?proposal.new_isr, "proposing ISR change");
            let change = IsrChange {
                broker_id: self.config.broker_id,
                broker_epoch: self.broker_epoch(),
                topic: partition.topic.clone(),
                partition: partition.index,
                leader_epoch: proposal.leader_epoch,
                partition_epoch: proposal.partition_epoch,
                new_isr: proposal.new_isr,
                new_isr_epochs: proposal.new_isr_epochs,
            };
            tokio::spawn(self.clone().send_isr_change(partition, change));
        }
    }

    async fn send_isr_change(self: Arc<Self>, partition: Arc<Partition>, change: IsrChange) {
        let request = ControllerRequest::AlterPartition(change);
        match self.controller.call(&request, CONTROLLER_TIMEOUT).await {
            Ok(ControllerResponse::PartitionChanged(Ok(meta))) => {
                partition.isr_proposal_done(Some(&meta));
                self.notify_appended();
            }
            Ok(other) => {
                warn!(topic = %partition.topic, partition = partition.index, answer = ?other, "ISR change refused");
                partition.isr_proposal_done(None);
            }
            Err(e) => {
                warn!(topic = %partition.topic, partition = partition.index, error = %e, "ISR change failed");
                partition.isr_proposal_done(None);
            }
        }
    }
}
