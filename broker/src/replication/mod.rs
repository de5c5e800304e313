//! Leader/follower replication: the leader's view of its followers (pure rules), the
//! follower's fetchers, their incremental fetch sessions and their manager, and a minimal
//! Kafka-protocol client the fetchers use.

pub mod client;
pub mod fetcher;
pub mod fetcher_manager;
pub mod leader;
pub mod session;
