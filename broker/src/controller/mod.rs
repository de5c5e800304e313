//! The cluster controller: replica placement, leader election, broker liveness and the
//! metadata store of record. It runs inside a standalone broker, inside the local-cluster
//! launcher, and (later) inside the Kubernetes operator; brokers reach it over the
//! [`crate::cluster::rpc`] channel.

pub mod core;
pub mod election;
pub mod placement;
pub mod service;
