//! Transactions (KIP-98): the transaction coordinator that owns each transactional id
//! (the leader of its `__transaction_state` partition), moving it through Kafka's states
//! and having its partitions' leaders write commit or abort markers.
//!
//! - [`state`]: the state machine of one transactional id, pure;
//! - [`log`]: its records on `__transaction_state`, in Kafka's schemas;
//! - [`coordinator`]: which ids this broker coordinates, loaded and unloaded with the
//!   leadership of their partitions.
//!
//! Writing records, delivering markers and answering clients happen in
//! [`crate::broker::transactions`].

pub mod coordinator;
pub mod log;
pub mod state;
