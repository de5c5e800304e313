//! KafkaTopics and the topics of a cluster, kept as one: a KafkaTopic creates, grows and
//! configures its topic and deleting it deletes the topic (a finalizer holds the resource
//! until the controller has deleted it); a topic created through the Admin API gets a
//! KafkaTopic, and one deleted through the Admin API loses it.
//!
//! Which side wins depends on who wrote the KafkaTopic. One written by a user is the
//! source of truth (as Strimzi's topic operator has it): its `config` is the topic's whole
//! set of overrides, so an Admin API change to that topic is undone at the next reconcile.
//! One the operator wrote for a topic created through the Admin API (annotated
//! [`ORIGIN_ANNOTATION`]) follows the topic instead: Admin API changes are adopted into its
//! spec, and only a later edit of the spec is applied to Kafka.
//!
//! A KafkaTopic is bound to one topic by its topic id (in its status): when its topic is
//! deleted through the Admin API, also when a topic of the same name is created again,
//! the KafkaTopic goes without touching the new topic, and the new one gets its own.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, OwnerReference, Time};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{finalizer, Event as Finalizer};
use kube::{Api, ResourceExt};
use thiserror::Error;
use tracing::{info, instrument, warn};
use tributary_controller::Controller;
use tributary_metadata::rpc::{ConfigResource, ControllerRequest, ControllerResponse, TopicSpec};
use tributary_metadata::{ApiError, MetadataImage, ResponseError, TopicMeta};

use super::Context;
use crate::crd::{KafkaCluster, KafkaTopic, KafkaTopicSpec, KafkaTopicStatus, PartitionStatus};

/// Holds a KafkaTopic until its topic is deleted.
pub const FINALIZER: &str = "tributary.dev/topic";
/// Label naming the cluster a KafkaTopic belongs to (set on KafkaTopics the operator
/// creates for Admin API topics).
pub const CLUSTER_LABEL: &str = "tributary.dev/cluster";

/// Annotation marking a KafkaTopic the operator wrote for a topic created through the
/// Admin API: its spec follows the topic's Admin API changes.
pub const ORIGIN_ANNOTATION: &str = "tributary.dev/created-by";
/// The [`ORIGIN_ANNOTATION`] value of KafkaTopics mirrored from the Admin API.
pub const ORIGIN_ADMIN_API: &str = "admin-api";

/// How often a topic's status is refreshed (leaders and ISR change without any object
/// changing).
const REFRESH: Duration = Duration::from_secs(10);
/// How soon a topic whose cluster is not ready is looked at again.
const RETRY: Duration = Duration::from_secs(3);
/// How often a topic whose cluster does not exist is looked at again.
const CLUSTER_WAIT: Duration = Duration::from_secs(30);

/// Why a topic reconcile failed (it is retried with backoff).
#[derive(Debug, Error)]
pub enum TopicError {
    #[error("the KafkaTopic has no namespace")]
    Unnamespaced,
    #[error("the controller of cluster {0} is not running here yet")]
    NoController(String),
    #[error("the controller refused: {0}")]
    Refused(ApiError),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
}

/// The topic's name in Kafka.
pub fn topic_name(topic: &KafkaTopic) -> String {
    topic
        .spec
        .topic_name
        .clone()
        .unwrap_or_else(|| topic.name_any())
}

/// The change that brings `existing` (the topic as the controller has it) to `spec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicChange {
    Create(TopicSpec),
    AddPartitions(i32),
    SetConfigs(BTreeMap<String, String>),
    /// Nothing to change; a message when the spec asks for what cannot be done.
    None(Option<String>),
}

/// The next change for a topic (pure): create it, grow it, or set its configs, one step
/// per reconcile.
pub fn next_change(name: &str, spec: &KafkaTopicSpec, existing: Option<&TopicMeta>) -> TopicChange {
    let configs = crate::crd::settings_as_strings(&spec.config);
    let Some(existing) = existing else {
        return TopicChange::Create(TopicSpec {
            name: name.to_string(),
            partitions: spec.partitions,
            replication_factor: spec.replicas as i16,
            assignments: Vec::new(),
            configs,
        });
    };
    let partitions = existing.partitions.len() as i32;
    if partitions < spec.partitions {
        return TopicChange::AddPartitions(spec.partitions);
    }
    if existing.configs != configs {
        return TopicChange::SetConfigs(configs);
    }
    let replicas = existing.partitions.first().map_or(0, |p| p.replicas.len()) as i32;
    let mut problems = Vec::new();
    if partitions > spec.partitions {
        problems.push(format!(
            "the topic has {partitions} partitions and partitions cannot shrink"
        ));
    }
    if replicas != spec.replicas {
        problems.push(format!(
            "the topic has {replicas} replicas per partition; changing them is not supported yet"
        ));
    }
    TopicChange::None((!problems.is_empty()).then(|| problems.join("; ")))
}

/// Whether the operator wrote `topic` for a topic created through the Admin API.
pub fn is_mirrored(topic: &KafkaTopic) -> bool {
    topic
        .annotations()
        .get(ORIGIN_ANNOTATION)
        .is_some_and(|origin| origin == ORIGIN_ADMIN_API)
}

/// Whether `existing` is not the topic `topic` was bound to: that one was deleted through
/// the Admin API and a topic of the same name created since.
pub fn is_superseded(topic: &KafkaTopic, existing: &TopicMeta) -> bool {
    topic
        .status
        .as_ref()
        .and_then(|s| s.topic_id.as_deref())
        .is_some_and(|bound| bound != existing.id.to_string())
}

/// Whether the spec changed since the last reconcile that saw it (a user's edit).
fn spec_edited(topic: &KafkaTopic) -> bool {
    let observed = topic.status.as_ref().and_then(|s| s.observed_generation);
    matches!((observed, topic.metadata.generation), (Some(seen), Some(now)) if now > seen)
}

/// For a mirrored KafkaTopic, the spec that takes in the Admin API changes made to its
/// topic, if any (pure). Partitions only grow; replicas are left to the spec's checks.
pub fn adopted_spec(spec: &KafkaTopicSpec, existing: &TopicMeta) -> Option<KafkaTopicSpec> {
    let configs = crate::crd::settings_as_strings(&spec.config);
    let partitions = existing.partitions.len() as i32;
    if configs == existing.configs && partitions <= spec.partitions {
        return None;
    }
    Some(KafkaTopicSpec {
        partitions: partitions.max(spec.partitions),
        config: existing
            .configs
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect(),
        ..spec.clone()
    })
}

/// The status a KafkaTopic shows for `existing` (pure).
pub fn topic_status(
    topic: &KafkaTopic,
    existing: Option<&TopicMeta>,
    problem: Option<String>,
    now: &Time,
) -> KafkaTopicStatus {
    let previous = topic.status.as_ref();
    let (ready, reason, message) = match (existing, problem) {
        (_, Some(problem)) => (false, "SpecNotApplied", problem),
        (None, None) => (false, "Creating", "the topic is being created".to_string()),
        (Some(meta), None) if meta.partitions.iter().any(|p| p.leader < 0) => (
            false,
            "LeaderNotAvailable",
            "some partitions have no leader".to_string(),
        ),
        (Some(meta), None) => (
            true,
            "Ready",
            format!("{} partitions, each with a leader", meta.partitions.len()),
        ),
    };
    let status = if ready { "True" } else { "False" };
    let since = previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == "Ready"))
        .filter(|c| c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    let partitions: Vec<PartitionStatus> = existing
        .map(|meta| {
            meta.partitions
                .iter()
                .enumerate()
                .map(|(index, p)| PartitionStatus {
                    partition: index as i32,
                    leader: p.leader,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replicas.clone(),
                    isr: p.isr.clone(),
                })
                .collect()
        })
        .unwrap_or_default();
    let join = |ids: &[i32]| ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
    KafkaTopicStatus {
        observed_generation: topic.metadata.generation,
        conditions: vec![Condition {
            type_: "Ready".into(),
            status: status.into(),
            reason: reason.into(),
            message,
            observed_generation: topic.metadata.generation,
            last_transition_time: since,
        }],
        topic_id: existing.map(|meta| meta.id.to_string()),
        leaders: existing.map(|_| {
            partitions
                .iter()
                .map(|p| p.leader.to_string())
                .collect::<Vec<_>>()
                .join(",")
        }),
        isr: existing.map(|_| {
            partitions
                .iter()
                .map(|p| join(&p.isr))
                .collect::<Vec<_>>()
                .join(";")
        }),
        partitions,
    }
}

/// Turns a controller answer for one topic into a result.
fn outcome(response: ControllerResponse) -> Result<(), ApiError> {
    match response {
        ControllerResponse::Topics { results, .. } => {
            results.into_iter().next().map_or(Ok(()), |r| r.map(drop))
        }
        ControllerResponse::Done { result, .. } => result,
        ControllerResponse::Error(e) => Err(e),
        other => Err(ApiError::new(
            ResponseError::UnknownServerError,
            format!("unexpected controller answer {other:?}"),
        )),
    }
}

/// Runs `change` on the controller.
async fn run_change(
    controller: &Controller,
    name: &str,
    change: TopicChange,
) -> Result<(), ApiError> {
    let request = match change {
        TopicChange::None(_) => return Ok(()),
        TopicChange::Create(spec) => ControllerRequest::CreateTopics {
            topics: vec![spec],
            validate_only: false,
        },
        TopicChange::AddPartitions(count) => ControllerRequest::CreatePartitions {
            topic: name.to_string(),
            count,
            assignments: None,
            validate_only: false,
        },
        TopicChange::SetConfigs(configs) => ControllerRequest::AlterConfigs {
            resource: ConfigResource::Topic(name.to_string()),
            configs,
            validate_only: false,
        },
    };
    outcome(controller.handle(request).await)
}

fn controller_of(context: &Context, topic: &KafkaTopic) -> Result<Arc<Controller>, TopicError> {
    let namespace = topic.namespace().ok_or(TopicError::Unnamespaced)?;
    let key = format!("{namespace}/{}", topic.spec.cluster_ref);
    context
        .controllers
        .get(&key)
        .ok_or(TopicError::NoController(key))
}

/// Writes `status` unless the KafkaTopic already shows it.
async fn write_status(
    context: &Context,
    topic: &KafkaTopic,
    status: KafkaTopicStatus,
) -> Result<(), kube::Error> {
    if topic.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let namespace = topic.namespace().unwrap_or_default();
    let patch = serde_json::json!({ "status": status });
    Api::<KafkaTopic>::namespaced(context.client.clone(), &namespace)
        .patch_status(
            &topic.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map(drop)
}

/// Writes `spec`, the topic's state as the Admin API left it, into a mirrored KafkaTopic.
async fn adopt(
    context: &Context,
    topic: &KafkaTopic,
    spec: &KafkaTopicSpec,
) -> Result<(), kube::Error> {
    let namespace = topic.namespace().unwrap_or_default();
    // A merge patch: overrides the topic no longer has are removed with nulls.
    let mut config: serde_json::Map<String, serde_json::Value> = topic
        .spec
        .config
        .keys()
        .map(|key| (key.clone(), serde_json::Value::Null))
        .collect();
    config.extend(spec.config.clone());
    let patch = serde_json::json!({
        "metadata": { "resourceVersion": topic.resource_version() },
        "spec": { "partitions": spec.partitions, "config": config },
    });
    Api::<KafkaTopic>::namespaced(context.client.clone(), &namespace)
        .patch(
            &topic.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .map(drop)
}

/// Whether the KafkaCluster a topic names exists.
async fn cluster_exists(context: &Context, topic: &KafkaTopic) -> Result<bool, kube::Error> {
    let namespace = topic.namespace().unwrap_or_default();
    let clusters = Api::<KafkaCluster>::namespaced(context.client.clone(), &namespace);
    Ok(clusters.get_opt(&topic.spec.cluster_ref).await?.is_some())
}

/// Brings the topic to the KafkaTopic's spec and writes its status.
async fn apply(topic: Arc<KafkaTopic>, context: &Context) -> Result<Action, TopicError> {
    let name = topic_name(&topic);
    let controller = match controller_of(context, &topic) {
        Ok(controller) => controller,
        Err(e) => {
            if cluster_exists(context, &topic).await? {
                return Err(e);
            }
            let problem = format!("KafkaCluster {} does not exist", topic.spec.cluster_ref);
            let mut status = topic_status(&topic, None, Some(problem), &super::now());
            status.conditions[0].reason = "ClusterNotFound".into();
            write_status(context, &topic, status).await?;
            return Ok(Action::requeue(CLUSTER_WAIT));
        }
    };
    let image = controller.image();
    let existing = image.topics.get(&name);
    if let Some(existing) = existing {
        if is_superseded(&topic, existing) {
            // The mirror deletes this KafkaTopic; the new topic is not its to change.
            info!(topic = %name, "the topic was deleted and created again through the Admin API: leaving it to its own KafkaTopic");
            return Ok(Action::requeue(RETRY));
        }
        if is_mirrored(&topic) && !spec_edited(&topic) {
            if let Some(spec) = adopted_spec(&topic.spec, existing) {
                info!(topic = %name, "adopting the topic's Admin API changes into its KafkaTopic");
                adopt(context, &topic, &spec).await?;
                return Ok(Action::requeue(Duration::ZERO));
            }
        }
    }
    let change = next_change(&name, &topic.spec, existing);
    let mut problem = match &change {
        TopicChange::None(problem) => problem.clone(),
        _ => None,
    };
    if !matches!(change, TopicChange::None(_)) {
        info!(topic = %name, change = ?change, "changing the topic");
        if let Err(e) = run_change(&controller, &name, change).await {
            problem = Some(e.to_string());
        }
    }
    let image = controller.image();
    let status = topic_status(&topic, image.topics.get(&name), problem, &super::now());
    write_status(context, &topic, status).await?;
    Ok(Action::requeue(REFRESH))
}

/// Deletes the topic of a KafkaTopic that is being deleted.
async fn cleanup(topic: Arc<KafkaTopic>, context: &Context) -> Result<Action, TopicError> {
    let name = topic_name(&topic);
    let controller = match controller_of(context, &topic) {
        Ok(controller) => controller,
        // Without its cluster there is no topic left to delete.
        Err(_) if !cluster_exists(context, &topic).await? => return Ok(Action::await_change()),
        Err(e) => return Err(e),
    };
    let image = controller.image();
    if image
        .topics
        .get(&name)
        .is_some_and(|existing| is_superseded(&topic, existing))
    {
        // Its topic is gone already; the one of the same name belongs to another KafkaTopic.
        return Ok(Action::await_change());
    }
    let request = ControllerRequest::DeleteTopics {
        names: vec![name.clone()],
    };
    match outcome(controller.handle(request).await) {
        Ok(()) => info!(topic = %name, "topic deleted"),
        Err(e) if e.code == ResponseError::UnknownTopicOrPartition => {}
        Err(e) => return Err(TopicError::Refused(e)),
    }
    Ok(Action::await_change())
}

/// Reconciles one KafkaTopic.
#[instrument(skip_all, fields(topic = %topic.name_any(), cluster = %topic.spec.cluster_ref))]
pub async fn reconcile(
    topic: Arc<KafkaTopic>,
    context: Arc<Context>,
) -> Result<Action, kube::runtime::finalizer::Error<TopicError>> {
    let namespace = topic.namespace().unwrap_or_default();
    let api = Api::<KafkaTopic>::namespaced(context.client.clone(), &namespace);
    finalizer(&api, FINALIZER, topic, |event| async {
        match event {
            Finalizer::Apply(topic) => apply(topic, &context).await,
            Finalizer::Cleanup(topic) => cleanup(topic, &context).await,
        }
    })
    .await
}

/// Backs off after a failed topic reconcile.
pub fn error_policy(
    topic: Arc<KafkaTopic>,
    error: &kube::runtime::finalizer::Error<TopicError>,
    _: Arc<Context>,
) -> Action {
    warn!(topic = %topic.name_any(), %error, "topic reconcile failed: retrying");
    Action::requeue(RETRY)
}

/// A Kubernetes name for a topic created through the Admin API: the topic's own name when
/// it is one, otherwise a lower-cased, dashed form with a fingerprint of the original.
pub fn resource_name_for(topic: &str) -> String {
    let valid = topic.len() <= 253
        && topic
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && topic.starts_with(|c: char| c.is_ascii_alphanumeric())
        && topic.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        return topic.to_string();
    }
    let base: String = topic
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(200)
        .collect();
    let hash = crate::build::fnv1a(topic.as_bytes());
    format!("{}-{:08x}", base.trim_matches('-'), hash as u32)
}

/// The KafkaTopic that describes `meta`, a topic created through the Admin API; `owner`
/// (the cluster) takes it away with the cluster.
pub fn resource_for(
    cluster: &str,
    namespace: &str,
    meta: &TopicMeta,
    owner: Option<OwnerReference>,
) -> KafkaTopic {
    let name = resource_name_for(&meta.name);
    let mut resource = KafkaTopic::new(
        &name,
        KafkaTopicSpec {
            cluster_ref: cluster.to_string(),
            topic_name: (name != meta.name).then(|| meta.name.clone()),
            partitions: meta.partitions.len() as i32,
            replicas: meta.partitions.first().map_or(1, |p| p.replicas.len()) as i32,
            config: meta
                .configs
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
        },
    );
    resource.metadata = ObjectMeta {
        name: Some(name),
        namespace: Some(namespace.to_string()),
        labels: Some(BTreeMap::from([(
            CLUSTER_LABEL.to_string(),
            cluster.to_string(),
        )])),
        annotations: Some(BTreeMap::from([(
            ORIGIN_ANNOTATION.to_string(),
            ORIGIN_ADMIN_API.to_string(),
        )])),
        owner_references: owner.map(|o| vec![o]),
        ..Default::default()
    };
    resource
}

/// The cluster whose topics are mirrored, and the owner reference its KafkaTopics get.
#[derive(Debug, Clone)]
pub struct ClusterOfTopics {
    pub namespace: String,
    pub name: String,
    pub owner: Option<OwnerReference>,
}

/// Follows a hosted controller's image and mirrors Admin API topic changes into
/// KafkaTopics as they are committed, until the task is aborted.
pub async fn mirror_topics(
    client: kube::Client,
    cluster: ClusterOfTopics,
    controller: Arc<Controller>,
) {
    let mut images = controller.subscribe();
    loop {
        let image = images.borrow_and_update().clone();
        if let Err(e) = mirror_admin_changes(&client, &cluster, &image).await {
            warn!(error = %e, cluster = %cluster.name, "mirroring Admin API topics into KafkaTopics failed");
            tokio::time::sleep(RETRY).await;
            continue;
        }
        // Also look again now and then: a KafkaTopic that held a topic's name may be gone.
        if let Ok(Err(_)) = tokio::time::timeout(REFRESH, images.changed()).await {
            return;
        }
        // Changes come in bursts (a topic and then its leaders): mirror once per burst.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Whether a topic is internal to the brokers (`__consumer_offsets`): those get no
/// KafkaTopic.
fn is_internal(topic: &str) -> bool {
    topic.starts_with("__")
}

/// Mirrors Admin API creations and deletions of the cluster's topics into KafkaTopics.
async fn mirror_admin_changes(
    client: &kube::Client,
    cluster: &ClusterOfTopics,
    image: &MetadataImage,
) -> Result<(), kube::Error> {
    let (namespace, cluster_name) = (cluster.namespace.as_str(), cluster.name.as_str());
    let api = Api::<KafkaTopic>::namespaced(client.clone(), namespace);
    let resources: Vec<KafkaTopic> = api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|t| t.spec.cluster_ref == cluster_name)
        .collect();
    for (name, meta) in &image.topics {
        if is_internal(name) || resources.iter().any(|r| topic_name(r) == *name) {
            continue;
        }
        let resource = resource_for(cluster_name, namespace, meta, cluster.owner.clone());
        info!(topic = %name, resource = %resource.name_any(), "topic created through the Admin API: adding its KafkaTopic");
        match api.create(&PostParams::default(), &resource).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    for resource in &resources {
        let name = topic_name(resource);
        let created = resource.status.as_ref().and_then(|s| s.topic_id.as_deref());
        // Only a KafkaTopic whose topic once existed lost it; a new one waits for its topic.
        if created.is_none() {
            continue;
        }
        let gone = image
            .topics
            .get(&name)
            .is_none_or(|existing| is_superseded(resource, existing));
        if resource.metadata.deletion_timestamp.is_none() && gone {
            info!(topic = %name, "topic deleted through the Admin API: deleting its KafkaTopic");
            api.delete(&resource.name_any(), &DeleteParams::default())
                .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::jiff::Timestamp;
    use tributary_metadata::PartitionMeta;

    fn spec(partitions: i32, replicas: i32, config: &[(&str, &str)]) -> KafkaTopicSpec {
        KafkaTopicSpec {
            cluster_ref: "demo".into(),
            topic_name: None,
            partitions,
            replicas,
            config: config
                .iter()
                .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.to_string())))
                .collect(),
        }
    }

    fn meta(partitions: usize, replicas: usize, config: &[(&str, &str)]) -> TopicMeta {
        TopicMeta {
            name: "t".into(),
            id: Default::default(),
            partitions: (0..partitions)
                .map(|_| PartitionMeta {
                    replicas: (0..replicas as i32).map(|r| 1000 * (r + 1)).collect(),
                    isr: vec![1000],
                    leader: 1000,
                    leader_epoch: 2,
                    partition_epoch: 3,
                })
                .collect(),
            configs: config
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn a_missing_topic_is_created_as_specified() {
        let change = next_change("t", &spec(3, 2, &[("retention.ms", "1000")]), None);
        let TopicChange::Create(created) = change else {
            panic!("{change:?}")
        };
        assert_eq!((created.partitions, created.replication_factor), (3, 2));
        assert_eq!(created.configs["retention.ms"], "1000");
    }

    #[test]
    fn topics_grow_then_take_the_spec_configs() {
        let existing = meta(1, 3, &[("cleanup.policy", "compact")]);
        let wanted = spec(2, 3, &[("retention.ms", "1000")]);
        assert_eq!(
            next_change("t", &wanted, Some(&existing)),
            TopicChange::AddPartitions(2)
        );
        let grown = meta(2, 3, &[("cleanup.policy", "compact")]);
        let TopicChange::SetConfigs(configs) = next_change("t", &wanted, Some(&grown)) else {
            panic!()
        };
        // The spec is the whole set of overrides: an Admin API override not in it goes.
        assert_eq!(configs.keys().collect::<Vec<_>>(), ["retention.ms"]);
        let settled = meta(2, 3, &[("retention.ms", "1000")]);
        assert_eq!(
            next_change("t", &wanted, Some(&settled)),
            TopicChange::None(None)
        );
    }

    #[test]
    fn mirrored_topics_adopt_admin_api_changes() {
        let mirrored = spec(
            1,
            3,
            &[("retention.ms", "1000"), ("cleanup.policy", "delete")],
        );
        let altered = meta(2, 3, &[("retention.ms", "86400000")]);
        let adopted = adopted_spec(&mirrored, &altered).expect("the topic changed");
        assert_eq!(adopted.partitions, 2);
        assert_eq!(
            crate::crd::settings_as_strings(&adopted.config),
            altered.configs,
            "the topic's overrides replace the spec's whole"
        );
        assert_eq!(
            next_change("t", &adopted, Some(&altered)),
            TopicChange::None(None)
        );
        assert_eq!(adopted_spec(&adopted, &altered), None);
    }

    #[test]
    fn a_kafka_topic_is_bound_to_its_topic_id() {
        let mut topic = KafkaTopic::new("t", spec(1, 3, &[]));
        let existing = meta(1, 3, &[]);
        assert!(!is_superseded(&topic, &existing), "not yet bound");
        topic.status = Some(KafkaTopicStatus {
            topic_id: Some(existing.id.to_string()),
            ..Default::default()
        });
        assert!(!is_superseded(&topic, &existing));
        let recreated = TopicMeta {
            id: "b8a9a1f2-0d7c-4d5e-9a57-0f6f0e6a9b11".parse().unwrap(),
            ..meta(1, 3, &[])
        };
        assert!(is_superseded(&topic, &recreated));
    }

    #[test]
    fn impossible_specs_are_reported_not_applied() {
        let TopicChange::None(Some(problem)) =
            next_change("t", &spec(1, 2, &[]), Some(&meta(3, 3, &[])))
        else {
            panic!()
        };
        assert!(
            problem.contains("cannot shrink") && problem.contains("replicas"),
            "{problem}"
        );
    }

    #[test]
    fn status_lists_leaders_and_isr_per_partition() {
        let topic = KafkaTopic::new("t", spec(2, 3, &[]));
        let now = Time(Timestamp::from_second(5).unwrap());
        let status = topic_status(&topic, Some(&meta(2, 3, &[])), None, &now);
        assert_eq!(status.conditions[0].status, "True");
        assert_eq!(status.leaders.as_deref(), Some("1000,1000"));
        assert_eq!(status.isr.as_deref(), Some("1000;1000"));
        assert_eq!(status.partitions[1].replicas, [1000, 2000, 3000]);
        let missing = topic_status(&topic, None, None, &now);
        assert_eq!(missing.conditions[0].reason, "Creating");
    }

    #[test]
    fn admin_topics_get_valid_resource_names() {
        assert_eq!(resource_name_for("orders.v1"), "orders.v1");
        let odd = resource_name_for("Orders_V1");
        assert!(
            odd.starts_with("orders-v1-") && odd.len() == "orders-v1-".len() + 8,
            "{odd}"
        );
        let resource = resource_for(
            "demo",
            "ns",
            &TopicMeta {
                name: "Orders_V1".into(),
                ..meta(2, 3, &[])
            },
            None,
        );
        assert_eq!(resource.spec.topic_name.as_deref(), Some("Orders_V1"));
        assert!(is_mirrored(&resource));
        assert!(!is_mirrored(&KafkaTopic::new("t", spec(1, 1, &[]))));
        assert_eq!((resource.spec.partitions, resource.spec.replicas), (2, 3));
        assert_eq!(
            resource_for("demo", "ns", &meta(1, 1, &[]), None)
                .spec
                .topic_name,
            None
        );
    }
}
