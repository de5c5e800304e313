//! The names and labels of a cluster's objects, derived from the cluster's own name.

use std::collections::BTreeMap;

use super::SpecError;
use crate::crd::KafkaCluster;

/// The label every object of a cluster carries, with the cluster's name.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// The label naming what an object is part of.
pub const NAME_LABEL: &str = "app.kubernetes.io/name";
/// The label naming a broker pod's zone.
pub const ZONE_LABEL: &str = "tributary.dev/zone";

/// Names within one cluster's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNames {
    pub cluster: String,
    pub namespace: String,
}

impl ClusterNames {
    /// The names of `cluster`'s objects.
    pub fn of(cluster: &KafkaCluster) -> Result<Self, SpecError> {
        match (&cluster.metadata.name, &cluster.metadata.namespace) {
            (Some(cluster), Some(namespace)) => Ok(ClusterNames {
                cluster: cluster.clone(),
                namespace: namespace.clone(),
            }),
            _ => Err(SpecError::Unnamed),
        }
    }

    /// The ConfigMap of broker settings.
    pub fn config(&self) -> String {
        format!("{}-config", self.cluster)
    }

    /// The ServiceAccount broker pods run as.
    pub fn broker_account(&self) -> String {
        format!("{}-broker", self.cluster)
    }

    /// The ConfigMap holding the controller's metadata image.
    pub fn metadata(&self) -> String {
        format!("{}-metadata", self.cluster)
    }

    /// The headless Service (broker DNS names) and the PodDisruptionBudget.
    pub fn brokers(&self) -> String {
        format!("{}-brokers", self.cluster)
    }

    /// The bootstrap Service.
    pub fn bootstrap(&self) -> String {
        format!("{}-bootstrap", self.cluster)
    }

    /// The StatefulSet of `zone`: `<cluster>-<zone>`, the zone made a DNS label.
    pub fn stateful_set(&self, zone: &str) -> Result<String, SpecError> {
        let label: String = zone
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        let label = label.trim_matches('-');
        let name = format!("{}-{label}", self.cluster);
        // Pod names add "-<ordinal>" and must stay within a DNS label.
        if label.is_empty() || name.len() > 60 {
            return Err(SpecError::BadZone(zone.to_string()));
        }
        Ok(name)
    }

    /// A broker pod's stable DNS name.
    pub fn broker_host(&self, pod: &str) -> String {
        format!(
            "{pod}.{}.{}.svc.cluster.local",
            self.brokers(),
            self.namespace
        )
    }

    /// Labels of every object of the cluster.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (NAME_LABEL.to_string(), "tributary-broker".to_string()),
            (INSTANCE_LABEL.to_string(), self.cluster.clone()),
            (
                "app.kubernetes.io/managed-by".to_string(),
                "tributary-operator".to_string(),
            ),
        ])
    }

    /// The labels that select the cluster's broker pods.
    pub fn selector(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (NAME_LABEL.to_string(), "tributary-broker".to_string()),
            (INSTANCE_LABEL.to_string(), self.cluster.clone()),
        ])
    }
}
