//! Consumer groups: the classic protocol state machine, its coordinator, and durable offsets.

pub mod coordinator;
pub mod offsets;
pub mod state;
