//! Growing brokers' volumes. A StatefulSet's `volumeClaimTemplates` cannot change, so a
//! larger `storage.size` is applied the way Kubernetes allows: each existing claim is
//! resized (its StorageClass must allow expansion), then the StatefulSet is deleted with
//! its pods orphaned and applied again with the new template, adopting the same pods
//! without restarting them.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::api::{DeleteParams, Patch, PatchParams, PropagationPolicy};
use kube::Api;
use thiserror::Error;
use tracing::info;

/// Why volumes could not grow (shown in the Degraded condition).
#[derive(Debug, Error)]
#[error("growing volume {claim} to {size}: {reason}")]
pub struct GrowError {
    claim: String,
    size: String,
    reason: String,
}

/// What the API server said, without the client's wrapping.
fn reason(error: kube::Error) -> String {
    match error {
        kube::Error::Api(status) => status.message,
        other => other.to_string(),
    }
}

/// The storage size a StatefulSet's data volume template asks for.
pub fn claim_size(set: &StatefulSet) -> Option<String> {
    let template = set
        .spec
        .as_ref()?
        .volume_claim_templates
        .as_ref()?
        .first()?;
    let requests = template
        .spec
        .as_ref()?
        .resources
        .as_ref()?
        .requests
        .as_ref()?;
    requests.get("storage").map(|q| q.0.clone())
}

/// Names of the claims a StatefulSet made for its data template.
fn claims_of(set: &StatefulSet) -> Vec<String> {
    let name = set.metadata.name.clone().unwrap_or_default();
    let template = set
        .spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
        .and_then(|t| t.first())
        .and_then(|t| t.metadata.name.clone())
        .unwrap_or_else(|| "data".into());
    let replicas = set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    (0..replicas)
        .map(|ordinal| format!("{template}-{name}-{ordinal}"))
        .collect()
}

/// When `existing` asks for less storage than `desired`, resizes its claims and deletes
/// it (orphaning its pods) so `desired` can be applied; returns whether it did.
pub async fn grow_if_needed(
    client: &kube::Client,
    namespace: &str,
    existing: &StatefulSet,
    desired: &StatefulSet,
) -> Result<bool, GrowError> {
    let (Some(have), Some(want)) = (claim_size(existing), claim_size(desired)) else {
        return Ok(false);
    };
    if have == want {
        return Ok(false);
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let patch = serde_json::json!({ "spec": { "resources": { "requests": { "storage": want } } } });
    for claim in claims_of(existing) {
        let error = |source| GrowError {
            claim: claim.clone(),
            size: want.clone(),
            reason: reason(source),
        };
        if claims.get_opt(&claim).await.map_err(error)?.is_none() {
            continue;
        }
        claims
            .patch(&claim, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(error)?;
        info!(%claim, size = %want, "volume resized");
    }
    let name = existing.metadata.name.clone().unwrap_or_default();
    let orphan = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..Default::default()
    };
    Api::<StatefulSet>::namespaced(client.clone(), namespace)
        .delete(&name, &orphan)
        .await
        .map_err(|source| GrowError {
            claim: name.clone(),
            size: want.clone(),
            reason: reason(source),
        })?;
    info!(statefulset = %name, "StatefulSet recreated for the new volume size; pods keep running");
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::{self, BuildContext};
    use crate::crd::KafkaCluster;

    #[test]
    fn a_stateful_set_names_its_size_and_claims() {
        let mut cluster: KafkaCluster =
            serde_norway::from_str(include_str!("../../../examples/cluster.yaml")).unwrap();
        cluster.metadata.namespace = Some("kafka".into());
        cluster.spec.brokers_per_zone = 2;
        let context = BuildContext {
            controller: "c:9090".into(),
            default_image: "b".into(),
            owner: None,
        };
        let set = &build::desired(&cluster, &context).unwrap().stateful_sets[1];
        assert_eq!(claim_size(set).as_deref(), Some("10Gi"));
        assert_eq!(claims_of(set), ["data-demo-zone-b-0", "data-demo-zone-b-1"]);
    }
}
