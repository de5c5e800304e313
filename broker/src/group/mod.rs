//! Consumer groups: the classic protocol state machine ([`state`]), its coordinator, the
//! offsets record format ([`offsets`]) and committed-offset I/O ([`persistence`]).

pub mod consumer;
pub mod coordinator;
pub mod offsets;
pub mod persistence;
pub mod snapshot;
pub mod state;
