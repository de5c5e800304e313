//! One KafkaCluster's reconcile: host its controller, apply its objects, write its status.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, PodCondition, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::NamespaceResourceScope;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::{Api, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use thiserror::Error;
use tracing::{info, instrument, warn};
use tributary_controller::{Controller, ControllerConfig, MetadataStore};

use super::roll::{self, RollCandidate, RollDecision};
use super::status::{self, Observed, PodView};
use super::storage;
use super::{Context, Hosted, FIELD_MANAGER};
use crate::build::{self, BuildContext, ClusterNames};
use crate::crd::{KafkaCluster, KafkaClusterStatus};
use crate::store::KubeMetadataStore;

/// How soon a cluster that is not ready yet is looked at again.
const REQUEUE_UNREADY: Duration = Duration::from_secs(3);
/// How often a ready cluster's status is refreshed (leaders move without any object
/// changing).
const REQUEUE_READY: Duration = Duration::from_secs(15);

/// Why a reconcile failed (it is retried with backoff).
#[derive(Debug, Error)]
pub enum ReconcileError {
    #[error("the KafkaCluster has no name or namespace")]
    Unnamed,
    #[error("opening the cluster's controller: {0}")]
    Controller(#[from] tributary_controller::store::StoreError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("encoding objects: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Storage(#[from] super::storage::GrowError),
}

/// `namespace/name` of a cluster: the key its controller is hosted under.
pub fn key_of(cluster: &KafkaCluster) -> Option<String> {
    Some(format!(
        "{}/{}",
        cluster.namespace()?,
        cluster.metadata.name.as_ref()?
    ))
}

/// Forgets what was recorded about a hosted controller that stopped.
pub fn forget(context: &Context, key: &str) {
    context
        .hosted
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(key);
}

/// Makes sure this operator hosts the cluster's controller, configured with the cluster's
/// current settings.
async fn host_controller(
    cluster: &KafkaCluster,
    names: &ClusterNames,
    context: &Context,
    key: &str,
) -> Result<Arc<Controller>, ReconcileError> {
    let wanted = crate::crd::settings_as_strings(&cluster.spec.config);
    let current = context
        .hosted
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(key)
        .map(|hosted| hosted.settings.clone());
    if let Some(controller) = context.controllers.get(key) {
        if current.as_ref() != Some(&wanted) {
            info!(cluster = %key, "broker settings changed: reconfiguring the controller");
            controller
                .reconfigure(ControllerConfig::from_settings(&wanted))
                .await;
            if let Some(hosted) = context
                .hosted
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_mut(key)
            {
                hosted.settings = wanted;
            }
        }
        return Ok(controller);
    }
    let store: Arc<dyn MetadataStore> = Arc::new(KubeMetadataStore::new(
        Api::namespaced(context.client.clone(), &names.namespace),
        names.metadata(),
        names.labels(),
        cluster.controller_owner_ref(&()),
    ));
    let controller = Controller::open(store, ControllerConfig::from_settings(&wanted)).await?;
    info!(cluster = %key, epoch = controller.epoch, "hosting the cluster's controller");
    context.controllers.insert(key, controller.clone());
    let topics_of = super::topic::ClusterOfTopics {
        namespace: names.namespace.clone(),
        name: names.cluster.clone(),
        owner: cluster.controller_owner_ref(&()),
    };
    let mirror = tokio::spawn(super::topic::mirror_topics(
        context.client.clone(),
        topics_of,
        controller.clone(),
    ));
    let hosted = Hosted {
        settings: wanted,
        mirror,
    };
    context
        .hosted
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key.to_string(), hosted);
    Ok(controller)
}

/// Server-side applies `object` (a namespaced `K`) under the operator's field manager.
async fn apply_as<K>(
    client: &kube::Client,
    namespace: &str,
    object: &serde_json::Value,
) -> Result<(), kube::Error>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    Api::<K>::namespaced(client.clone(), namespace)
        .patch(name, &params, &Patch::Apply(object))
        .await
        .map(drop)
}

/// Applies the desired objects in order.
async fn apply_all(
    context: &Context,
    namespace: &str,
    desired: &build::Desired,
) -> Result<(), ReconcileError> {
    let client = &context.client;
    let sets = Api::<StatefulSet>::namespaced(client.clone(), namespace);
    for want in &desired.stateful_sets {
        let name = want.metadata.name.clone().unwrap_or_default();
        if let Some(have) = sets.get_opt(&name).await? {
            storage::grow_if_needed(client, namespace, &have, want).await?;
        }
    }
    for object in desired.in_apply_order()? {
        match object["kind"].as_str() {
            Some("ServiceAccount") => {
                apply_as::<ServiceAccount>(client, namespace, &object).await?
            }
            Some("ConfigMap") => apply_as::<ConfigMap>(client, namespace, &object).await?,
            Some("Service") => apply_as::<Service>(client, namespace, &object).await?,
            Some("PodDisruptionBudget") => {
                apply_as::<PodDisruptionBudget>(client, namespace, &object).await?
            }
            Some("StatefulSet") => apply_as::<StatefulSet>(client, namespace, &object).await?,
            other => warn!(kind = ?other, "no apply route for this kind"),
        }
    }
    Ok(())
}

/// Every desired broker as the roll sees it: its pod's readiness, and whether the pod runs
/// an older revision of its StatefulSet's template.
fn roll_candidates(
    cluster: &KafkaCluster,
    names: &ClusterNames,
    sets: &[StatefulSet],
    pods: &[Pod],
) -> Vec<RollCandidate> {
    let mut candidates = Vec::new();
    for (index, zone) in cluster.spec.zones.iter().enumerate() {
        let Ok(set_name) = names.stateful_set(zone) else {
            continue;
        };
        let revision = sets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(set_name.as_str()))
            .and_then(|s| s.status.as_ref())
            .and_then(|s| s.update_revision.clone());
        for ordinal in 0..cluster.spec.brokers_per_zone.max(0) {
            let name = format!("{set_name}-{ordinal}");
            let pod = pods
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(name.as_str()));
            let pod_revision = pod
                .and_then(|p| p.metadata.labels.as_ref())
                .and_then(|l| l.get("controller-revision-hash"));
            candidates.push(RollCandidate {
                broker_id: build::broker_id(index, ordinal),
                ready_for: pod.and_then(ready_for),
                outdated: matches!((pod_revision, &revision), (Some(have), Some(want)) if have != want),
                pod: name,
            });
        }
    }
    candidates
}

/// Takes the roll's next step: restarts one outdated broker when that is safe. Returns
/// what the roll is doing or waiting for while brokers run an older spec.
async fn roll(
    context: &Context,
    cluster: &KafkaCluster,
    namespace: &str,
    candidates: &[RollCandidate],
    image: &tributary_metadata::MetadataImage,
) -> Result<Option<String>, ReconcileError> {
    match roll::next_step(candidates, image) {
        RollDecision::Done => Ok(None),
        RollDecision::Wait(why) => Ok(Some(why)),
        RollDecision::Restart { pod, broker_id } => {
            let note = format!("restarting broker {broker_id} ({pod}) to apply the current spec");
            info!(%pod, broker = broker_id, "restarting a broker to apply the current spec");
            publish(
                context,
                cluster,
                EventType::Normal,
                "RestartingBroker",
                note.clone(),
            )
            .await;
            Api::<Pod>::namespaced(context.client.clone(), namespace)
                .delete(&pod, &Default::default())
                .await?;
            Ok(Some(note))
        }
    }
}

/// The Ready condition of a pod that is Ready and not being deleted.
fn ready_condition(pod: &Pod) -> Option<&PodCondition> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready" && c.status == "True")
}

/// How long `pod` has been Ready, if it is.
fn ready_for(pod: &Pod) -> Option<Duration> {
    let since = ready_condition(pod)?.last_transition_time.as_ref()?;
    let elapsed = k8s_openapi::jiff::Timestamp::now().duration_since(since.0);
    Some(Duration::try_from(elapsed).unwrap_or_default())
}

fn pod_view(pod: &Pod) -> PodView {
    PodView {
        name: pod.name_any(),
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        ready: ready_condition(pod).is_some(),
    }
}

fn selector(labels: &BTreeMap<String, String>) -> String {
    labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Publishes an Event on the cluster, logging (not failing) when that is refused.
async fn publish(
    context: &Context,
    cluster: &KafkaCluster,
    kind: EventType,
    reason: &str,
    note: String,
) {
    let event = Event {
        type_: kind,
        reason: reason.into(),
        note: Some(note),
        action: "Reconcile".into(),
        secondary: None,
    };
    if let Err(e) = context
        .recorder
        .publish(&event, &cluster.object_ref(&()))
        .await
    {
        warn!(error = %e, "publishing an event failed");
    }
}

/// Publishes the transitions between `before` and `after` as Events: a cluster becoming
/// ready, a ready cluster losing readiness (a warning), and degradation starting or ending.
async fn announce(
    context: &Context,
    cluster: &KafkaCluster,
    before: Option<&KafkaClusterStatus>,
    after: &KafkaClusterStatus,
) {
    let find = |status: Option<&KafkaClusterStatus>, kind: &str| {
        status
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == kind))
            .map(|c| (c.status == "True", c.reason.clone(), c.message.clone()))
    };
    let was_ready = find(before, status::READY).is_some_and(|(ready, ..)| ready);
    let was_degraded = find(before, status::DEGRADED).is_some_and(|(degraded, ..)| degraded);
    if let Some((ready, reason, message)) = find(Some(after), status::READY) {
        if ready && !was_ready {
            publish(context, cluster, EventType::Normal, &reason, message).await;
        } else if !ready && was_ready {
            publish(context, cluster, EventType::Warning, &reason, message).await;
        }
    }
    if let Some((degraded, reason, message)) = find(Some(after), status::DEGRADED) {
        if degraded && !was_degraded {
            publish(context, cluster, EventType::Warning, &reason, message).await;
        } else if !degraded && was_degraded {
            publish(context, cluster, EventType::Normal, "Recovered", message).await;
        }
    }
}

/// Reconciles one KafkaCluster.
#[instrument(skip_all, fields(cluster = %cluster.name_any(), namespace = cluster.namespace().unwrap_or_default()))]
pub async fn reconcile(
    cluster: Arc<KafkaCluster>,
    context: Arc<Context>,
) -> Result<Action, ReconcileError> {
    let key = key_of(&cluster).ok_or(ReconcileError::Unnamed)?;
    let names = ClusterNames::of(&cluster).map_err(|_| ReconcileError::Unnamed)?;
    let namespace = names.namespace.clone();
    let build_context = BuildContext {
        controller: format!("{}/{key}", context.controller_address),
        default_image: context.default_image.clone(),
        owner: cluster.controller_owner_ref(&()),
    };
    let mut observed = Observed::default();
    let mut image = None;
    let desired = match build::desired(&cluster, &build_context) {
        Ok(desired) => Some(desired),
        Err(e) => {
            observed.spec_error = Some(e.to_string());
            None
        }
    };
    if let Some(desired) = &desired {
        let controller = host_controller(&cluster, &names, &context, &key).await?;
        image = Some(controller.image());
        if let Err(e) = apply_all(&context, &namespace, desired).await {
            observed.apply_error = Some(e.to_string());
        }
        let sets = Api::<StatefulSet>::namespaced(context.client.clone(), &namespace)
            .list(&ListParams::default().labels(&selector(&names.selector())))
            .await?;
        let pods = Api::<Pod>::namespaced(context.client.clone(), &namespace)
            .list(&ListParams::default().labels(&selector(&names.selector())))
            .await?;
        let candidates = roll_candidates(&cluster, &names, &sets.items, &pods.items);
        observed.rollout = roll(
            &context,
            &cluster,
            &namespace,
            &candidates,
            &controller.image(),
        )
        .await?;
        observed.pods = pods.items.iter().map(pod_view).collect();
    }
    observed.image = image.as_deref();
    let now = super::now();
    let status = status::cluster_status(&cluster, &observed, &now);
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == status::READY && c.status == "True");
    if cluster.status.as_ref() != Some(&status) {
        announce(&context, &cluster, cluster.status.as_ref(), &status).await;
        let patch = serde_json::json!({ "status": status });
        Api::<KafkaCluster>::namespaced(context.client.clone(), &namespace)
            .patch_status(
                &cluster.name_any(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
    }
    if let Some(error) = observed.apply_error {
        warn!(%error, "applying the cluster's objects failed");
        return Ok(Action::requeue(REQUEUE_UNREADY));
    }
    let settled = ready && observed.rollout.is_none();
    Ok(match (desired, settled) {
        // An invalid spec waits for the next edit.
        (None, _) => Action::await_change(),
        (Some(_), true) => Action::requeue(REQUEUE_READY),
        (Some(_), false) => Action::requeue(REQUEUE_UNREADY),
    })
}

/// Backs off after a failed reconcile.
pub fn error_policy(cluster: Arc<KafkaCluster>, error: &ReconcileError, _: Arc<Context>) -> Action {
    warn!(cluster = %cluster.name_any(), %error, "reconcile failed: retrying");
    Action::requeue(Duration::from_secs(5))
}
