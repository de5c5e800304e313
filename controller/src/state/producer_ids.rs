//! AllocateProducerIds: blocks of producer ids that brokers hand out in InitProducerId.
//! A block is persisted with the image before it is used, so no id is ever handed out
//! twice, across controller restarts included.

use tributary_metadata::ApiError;

use super::{Change, ControllerState};

/// Producer ids handed out per AllocateProducerIds request.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

impl ControllerState {
    /// A fresh block for a registered broker: `(first id, count)`.
    pub fn allocate_producer_ids(
        &self,
        broker_id: i32,
        broker_epoch: i64,
    ) -> Change<Result<(i64, i64), ApiError>> {
        if let Err(e) = self.check_epoch(broker_id, broker_epoch) {
            return Change::refused(e);
        }
        let mut next = self.next_image();
        let first = next.next_producer_id;
        next.next_producer_id += PRODUCER_ID_BLOCK;
        Change::to(Ok((first, PRODUCER_ID_BLOCK)), next)
    }
}

#[cfg(test)]
mod tests {
    use tributary_metadata::ResponseError;

    use super::*;
    use crate::state::testing::{commit, state_with_brokers};

    #[test]
    fn blocks_never_overlap() {
        let mut state = state_with_brokers(1);
        let epoch = state.image().brokers[&1].epoch;
        let first = state.allocate_producer_ids(1, epoch);
        let (first, count) = commit(&mut state, first).unwrap();
        let second = state.allocate_producer_ids(1, epoch);
        let (second, _) = commit(&mut state, second).unwrap();
        assert_eq!(count, PRODUCER_ID_BLOCK);
        assert_eq!(second, first + PRODUCER_ID_BLOCK);
        let stale = state.allocate_producer_ids(1, epoch - 1);
        assert_eq!(
            stale.reply.unwrap_err().code,
            ResponseError::StaleBrokerEpoch
        );
    }
}
