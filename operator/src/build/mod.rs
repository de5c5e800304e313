//! The Kubernetes objects a `KafkaCluster` should have, as pure functions of its spec: the
//! reconcile loop applies them (server-side apply, one field manager) in the order of
//! [`Desired::in_apply_order`], and tests compare them with fixtures.
//!
//! Per cluster: the brokers' ServiceAccount, a ConfigMap with the broker settings, a headless Service that gives every
//! broker a stable DNS name, a bootstrap Service, a PodDisruptionBudget (one broker down at
//! a time), and one StatefulSet per zone pinned to that zone's nodes.

mod names;
mod network;
mod statefulset;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use thiserror::Error;

use crate::crd::KafkaCluster;
pub use names::ClusterNames;
pub use statefulset::broker_id;

/// Where broker settings are mounted in a broker pod.
pub const CONFIG_DIR: &str = "/etc/tributary";
/// The settings file in [`CONFIG_DIR`].
pub const CONFIG_FILE: &str = "server.properties";
/// Pod annotation holding a hash of the broker settings: it changes, and rolls the
/// brokers, only when the settings do.
pub const CONFIG_HASH_ANNOTATION: &str = "tributary.dev/config-hash";

/// What the builders need besides the spec.
#[derive(Debug, Clone)]
pub struct BuildContext {
    /// `host:port` of the controller the brokers join.
    pub controller: String,
    /// The broker image when the spec names none.
    pub default_image: String,
    /// The owner every object carries, so deleting the cluster removes them.
    pub owner: Option<OwnerReference>,
}

/// A spec the builders cannot turn into objects (reported as a status condition).
#[derive(Debug, Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("the KafkaCluster has no name or namespace")]
    Unnamed,
    #[error("zone {0:?} gives no valid Kubernetes name")]
    BadZone(String),
    #[error("broker setting {key}: {reason}")]
    BadSetting { key: String, reason: String },
}

/// Every object a cluster should have.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// The brokers' ServiceAccount (no API access, no token mounted).
    pub account: ServiceAccount,
    pub config: ConfigMap,
    pub headless: Service,
    pub bootstrap: Service,
    pub disruption_budget: PodDisruptionBudget,
    /// One per zone, in the spec's zone order.
    pub stateful_sets: Vec<StatefulSet>,
}

impl Desired {
    /// The objects as JSON values in apply order: the account and configuration first, then Services and
    /// the PodDisruptionBudget, StatefulSets last (they need all the rest).
    pub fn in_apply_order(&self) -> Result<Vec<serde_json::Value>, serde_json::Error> {
        let mut objects = vec![
            to_object(&self.account, "v1", "ServiceAccount")?,
            to_object(&self.config, "v1", "ConfigMap")?,
            to_object(&self.headless, "v1", "Service")?,
            to_object(&self.bootstrap, "v1", "Service")?,
            to_object(&self.disruption_budget, "policy/v1", "PodDisruptionBudget")?,
        ];
        for set in &self.stateful_sets {
            objects.push(to_object(set, "apps/v1", "StatefulSet")?);
        }
        Ok(objects)
    }
}

/// The objects as one multi-document YAML stream, in apply order (`kubectl apply -f -`).
pub fn to_yaml(desired: &Desired) -> anyhow::Result<String> {
    let documents = desired
        .in_apply_order()?
        .iter()
        .map(serde_norway::to_string)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(documents.join("---\n"))
}

/// A typed object with its `apiVersion` and `kind`, as an apply request carries it.
fn to_object<T: serde::Serialize>(
    object: &T,
    api_version: &str,
    kind: &str,
) -> Result<serde_json::Value, serde_json::Error> {
    let mut value = serde_json::to_value(object)?;
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), api_version.into());
        map.insert("kind".into(), kind.into());
    }
    Ok(value)
}

/// The objects `cluster` should have.
pub fn desired(cluster: &KafkaCluster, ctx: &BuildContext) -> Result<Desired, SpecError> {
    let names = ClusterNames::of(cluster)?;
    let properties = broker_properties(&cluster.spec.config)?;
    let config_hash = format!("{:016x}", fnv1a(properties.as_bytes()));
    let config = ConfigMap {
        metadata: names.meta(names.config(), ctx),
        data: Some(BTreeMap::from([(CONFIG_FILE.to_string(), properties)])),
        ..Default::default()
    };
    let stateful_sets = cluster
        .spec
        .zones
        .iter()
        .enumerate()
        .map(|(index, zone)| statefulset::for_zone(cluster, &names, ctx, index, zone, &config_hash))
        .collect::<Result<_, _>>()?;
    Ok(Desired {
        account: ServiceAccount {
            metadata: names.meta(names.broker_account(), ctx),
            automount_service_account_token: Some(false),
            ..Default::default()
        },
        config,
        headless: network::headless(cluster, &names, ctx),
        bootstrap: network::bootstrap(cluster, &names, ctx),
        disruption_budget: PodDisruptionBudget {
            metadata: names.meta(names.brokers(), ctx),
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: Some(IntOrString::Int(1)),
                selector: Some(LabelSelector {
                    match_labels: Some(names.selector()),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
        stateful_sets,
    })
}

/// The brokers clients bootstrap from: every broker's stable address, comma-separated, as
/// MSK's "client information" lists them.
pub fn bootstrap_servers(cluster: &KafkaCluster) -> Result<String, SpecError> {
    let names = ClusterNames::of(cluster)?;
    let port = network::client_port(cluster);
    let mut servers = Vec::new();
    for zone in &cluster.spec.zones {
        let set = names.stateful_set(zone)?;
        for ordinal in 0..cluster.spec.brokers_per_zone.max(0) {
            servers.push(format!(
                "{}:{port}",
                names.broker_host(&format!("{set}-{ordinal}"))
            ));
        }
    }
    Ok(servers.join(","))
}

/// The broker settings as a `server.properties` file, keys sorted. Values keep what the
/// user wrote (`2`, `false`, `"604800000"`); lists and objects are refused.
fn broker_properties(config: &BTreeMap<String, serde_json::Value>) -> Result<String, SpecError> {
    let mut out = String::new();
    for (key, value) in config {
        let text = match value {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            _ => {
                return Err(SpecError::BadSetting {
                    key: key.clone(),
                    reason: "a setting is a string, a number or a boolean".into(),
                })
            }
        };
        if key.contains(['=', ':', '\n']) || text.contains('\n') {
            return Err(SpecError::BadSetting {
                key: key.clone(),
                reason: "names and values are single lines without '=' or ':' in names".into(),
            });
        }
        out.push_str(&format!("{key}={text}\n"));
    }
    Ok(out)
}

/// 64-bit FNV-1a: a stable fingerprint of settings or names (not a security measure).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Object metadata for `name` in the cluster's namespace, with its labels and owner.
impl ClusterNames {
    fn meta(&self, name: String, ctx: &BuildContext) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels()),
            owner_references: ctx.owner.clone().map(|o| vec![o]),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests;
