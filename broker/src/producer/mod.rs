//! Producer state of a partition: idempotent producers' sequences ([`state`]) and the
//! open and aborted transactions ([`transactions`]). Producer ids come from the
//! controller in blocks (see [`crate::broker::Broker::allocate_producer_id`]).

pub mod state;
pub mod transactions;
