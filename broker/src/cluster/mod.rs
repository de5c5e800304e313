//! Broker ↔ controller: the RPC messages, the broker's controller client, and the broker's
//! membership loops (registration, heartbeats, metadata propagation).

pub mod client;
pub mod membership;
pub mod rpc;
