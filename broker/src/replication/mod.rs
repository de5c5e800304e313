//! Leader/follower replication: the leader's view of its followers (pure rules), the
//! follower's fetcher, and a minimal Kafka-protocol client the fetcher uses.

pub mod client;
pub mod fetcher;
pub mod leader;
