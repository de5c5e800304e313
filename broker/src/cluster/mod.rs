//! Broker ↔ controller: the broker's controller client and its membership loops
//! (registration, heartbeats, metadata propagation). The messages are
//! [`tributary_metadata::rpc`].

pub mod client;
pub mod membership;
