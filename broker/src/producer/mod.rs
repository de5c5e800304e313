//! Idempotent-producer support: per-partition sequence state. Producer ids come from the
//! controller in blocks (see [`crate::broker::Broker::allocate_producer_id`]).

pub mod state;
