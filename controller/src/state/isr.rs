//! AlterPartition: ISR changes proposed by partition leaders, fenced by the leader's broker
//! epoch, leader epoch and the partition epoch it last saw.

use tributary_metadata::rpc::IsrChange;
use tributary_metadata::{ApiError, PartitionMeta, ResponseError};

use super::{Change, ControllerState};
use crate::election;

impl ControllerState {
    /// AlterPartition: answered with the partition's new state.
    pub fn alter_partition(&self, change: &IsrChange) -> Change<Result<PartitionMeta, ApiError>> {
        if let Err(e) = self.check_epoch(change.broker_id, change.broker_epoch) {
            return Change::refused(e);
        }
        let index = change.partition as usize;
        let Some(current) = self
            .image
            .topics
            .get(&change.topic)
            .and_then(|t| t.partitions.get(index))
        else {
            return Change::refused(ApiError::new(
                ResponseError::UnknownTopicOrPartition,
                "unknown partition",
            ));
        };
        let registered = self
            .image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .map(|b| (b.id, b.epoch))
            .collect();
        match election::alter_isr(
            current,
            change.broker_id,
            change.leader_epoch,
            change.partition_epoch,
            &change.new_isr,
            &change.new_isr_epochs,
            &registered,
        ) {
            Ok(updated) => {
                let mut next = self.next_image();
                if let Some(t) = next.topics.get_mut(&change.topic) {
                    t.partitions[index] = updated.clone();
                }
                Change::to(Ok(updated), next)
            }
            Err(e) => Change::refused(ApiError::new(e.kafka_error(), e.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::testing::{commit, isr_change, state_with_topic};

    #[test]
    fn isr_changes_are_fenced_by_the_partition_epoch() {
        let mut state = state_with_topic(3, "t", 1, 3);
        let p = state.image().topics["t"].partitions[0].clone();
        let shrink = isr_change(&state, "t", vec![p.leader]);
        let shrunk = state.alter_partition(&shrink);
        assert_eq!(commit(&mut state, shrunk).unwrap().isr, vec![p.leader]);
        let stale = state.alter_partition(&IsrChange {
            new_isr: p.replicas.clone(),
            ..shrink.clone()
        });
        assert!(stale.image.is_none());
        assert_eq!(
            stale.reply.unwrap_err().code,
            ResponseError::InvalidUpdateVersion
        );
        let zombie = state.alter_partition(&IsrChange {
            broker_epoch: -5,
            ..shrink
        });
        assert_eq!(
            zombie.reply.unwrap_err().code,
            ResponseError::StaleBrokerEpoch
        );
    }
}
