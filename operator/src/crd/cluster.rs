//! `KafkaCluster`: a Kafka cluster of `brokersPerZone` brokers in each of `zones`, each
//! broker with a volume of its own, reachable through the listeners it declares.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The node label that names a node's zone, unless the spec names another.
pub const DEFAULT_ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// What a Kafka cluster should look like.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tributary.dev",
    version = "v1alpha1",
    kind = "KafkaCluster",
    plural = "kafkaclusters",
    shortname = "kc",
    namespaced,
    status = "KafkaClusterStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Brokers","type":"string","jsonPath":".status.readyBrokers"}"#,
    printcolumn = r#"{"name":"Bootstrap Servers","type":"string","jsonPath":".status.bootstrapServers"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterSpec {
    /// The broker image (default: the release matching the operator).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// The Kafka version the brokers present to clients (informational).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The zones brokers are spread over, by the value of each node's zone label (a set:
    /// each zone once).
    #[schemars(
        length(min = 1, max = 16),
        inner(length(min = 1, max = 63)),
        extend("x-kubernetes-list-type" = "set")
    )]
    #[x_kube(validation = Rule::new("oldSelf.all(z, self.indexOf(z) == oldSelf.indexOf(z))").message("zones can only be added at the end: broker ids follow each zone's position, and brokers cannot be removed until partitions can be reassigned"))]
    pub zones: Vec<String>,
    /// The node label whose value is a node's zone.
    #[serde(default = "default_zone_label")]
    pub zone_label: String,
    /// Brokers in each zone.
    #[schemars(range(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("self >= oldSelf").message("brokersPerZone cannot shrink until partitions can be reassigned"))]
    pub brokers_per_zone: i32,
    /// Each broker's volume.
    pub storage: StorageSpec,
    /// CPU and memory of each broker container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Broker settings by their Kafka names (`min.insync.replicas`, `num.partitions`,
    /// `default.replication.factor`, `auto.create.topics.enable`, `log.retention.ms`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "super::kafka_settings")]
    pub config: BTreeMap<String, serde_json::Value>,
    /// How clients reach the brokers.
    #[serde(default = "default_listeners")]
    #[schemars(
        length(min = 1, max = 4),
        extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"])
    )]
    #[x_kube(validation = Rule::new("self.all(l, self.exists_one(m, m.port == l.port))").message("listener ports must be unique"))]
    pub listeners: Vec<Listener>,
    /// What the broker pods carry beyond what the operator sets.
    #[serde(default, skip_serializing_if = "PodTemplate::is_empty")]
    pub template: PodTemplate,
}

fn default_zone_label() -> String {
    DEFAULT_ZONE_LABEL.to_string()
}

fn default_listeners() -> Vec<Listener> {
    vec![Listener {
        name: "plain".to_string(),
        port: 9092,
        kind: ListenerKind::Internal,
        tls: false,
    }]
}

/// A broker's persistent volume.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("isQuantity(self.size) && quantity(self.size).isGreaterThan(quantity('0'))").message("storage.size must be a positive quantity such as 100Gi"))]
#[x_kube(validation = Rule::new("!isQuantity(self.size) || !isQuantity(oldSelf.size) || quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0").message("storage.size can only grow"))]
#[x_kube(validation = Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)").message("storage.storageClassName cannot change"))]
pub struct StorageSpec {
    /// Capacity of each broker's volume (a quantity: `100Gi`).
    #[schemars(length(min = 1, max = 32))]
    pub size: String,
    /// The StorageClass of the volumes (default: the cluster's default class).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
    /// Whether deleting the cluster deletes the volumes too (default: they are kept).
    #[serde(default)]
    pub delete_claim: bool,
}

/// One way into the cluster.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!self.tls").message("TLS listeners are not supported yet: set tls to false"))]
pub struct Listener {
    /// The listener's name (lower-case letters and digits).
    #[schemars(regex(pattern = "^[a-z0-9]{1,11}$"), length(min = 1, max = 11))]
    pub name: String,
    /// The port brokers listen on.
    #[schemars(range(min = 9092, max = 65535))]
    pub port: i32,
    /// Where the listener is reachable from.
    #[serde(rename = "type")]
    pub kind: ListenerKind,
    /// Whether connections are encrypted.
    #[serde(default)]
    pub tls: bool,
}

/// Where a listener is reachable from.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ListenerKind {
    /// Inside the Kubernetes cluster, through Services.
    Internal,
}

/// Pod settings users add to the broker pods.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplate {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
}

impl PodTemplate {
    fn is_empty(&self) -> bool {
        *self == PodTemplate::default()
    }
}

/// What the operator observed of a cluster.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KafkaClusterStatus {
    /// The spec generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Progressing` and `Degraded`, each with a reason and a message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// Where clients connect: comma-separated `host:port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_servers: Option<String>,
    /// The Kafka cluster id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Ready brokers over desired brokers (`3/3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_brokers: Option<String>,
    /// One row per broker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub brokers: Vec<BrokerStatus>,
}

/// One broker as the operator sees it.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BrokerStatus {
    pub id: i32,
    pub zone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    pub pod: String,
    pub ready: bool,
    /// Partitions this broker leads.
    pub leaders: i32,
}
