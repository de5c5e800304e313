//! Idempotent-producer support: producer id allocation and per-partition sequence state.

pub mod ids;
pub mod state;
