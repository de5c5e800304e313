//! The cluster's Services: a headless one that gives every broker pod a stable DNS name
//! (what brokers advertise), and a bootstrap one clients start from.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{BuildContext, ClusterNames};
use crate::crd::KafkaCluster;

/// The port of the cluster's first listener (the one clients bootstrap from).
pub fn client_port(cluster: &KafkaCluster) -> i32 {
    cluster.spec.listeners.first().map_or(9092, |l| l.port)
}

fn ports(cluster: &KafkaCluster) -> Vec<ServicePort> {
    cluster
        .spec
        .listeners
        .iter()
        .map(|l| ServicePort {
            name: Some(l.name.clone()),
            port: l.port,
            target_port: Some(IntOrString::String(l.name.clone())),
            ..Default::default()
        })
        .collect()
}

/// The headless Service: `<pod>.<cluster>-brokers.<namespace>.svc` for every broker,
/// published before the pods are ready so brokers find each other while starting.
pub fn headless(cluster: &KafkaCluster, names: &ClusterNames, ctx: &BuildContext) -> Service {
    Service {
        metadata: names.meta(names.brokers(), ctx),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(names.selector()),
            ports: Some(ports(cluster)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The bootstrap Service: any ready broker answers a client's first Metadata request.
pub fn bootstrap(cluster: &KafkaCluster, names: &ClusterNames, ctx: &BuildContext) -> Service {
    Service {
        metadata: names.meta(names.bootstrap(), ctx),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(names.selector()),
            ports: Some(ports(cluster)),
            ..Default::default()
        }),
        ..Default::default()
    }
}
