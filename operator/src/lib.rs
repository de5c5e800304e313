//! The Tributary operator: the cluster controller's hosts.
//!
//! - [`local`]: `tributary-operator local`, the controller in-process and brokers as
//!   supervised child processes, for machines without Kubernetes;
//! - [`standalone`]: `tributary-operator controller`, the controller alone on a socket;
//! - [`crd`]: the `KafkaCluster` and `KafkaTopic` custom resources;
//! - [`build`]: the Kubernetes objects a `KafkaCluster` should have, as pure functions
//!   of its spec (what the reconcile loop applies).

pub mod build;
pub mod crd;
pub mod local;
pub mod operate;
pub mod reconcile;
pub mod standalone;
pub mod store;
