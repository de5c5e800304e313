//! The reconcile loops of the operator's active replica: KafkaClusters become their
//! Kubernetes objects and a hosted controller each, KafkaTopics become topics (and topics
//! made through the Admin API become KafkaTopics).
//!
//! A reconcile computes the desired objects (pure, [`crate::build`]), applies them with
//! server-side apply under one field manager in [`crate::build::Desired::in_apply_order`],
//! then observes pods, StatefulSets and the controller's image to write the status
//! ([`status`], pure). Errors back off and requeue; transitions are Kubernetes Events.

mod cluster;
#[cfg(test)]
mod fixtures;
pub mod roll;
pub mod status;
mod storage;
pub mod topic;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service, ServiceAccount};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::{watcher, Controller};
use kube::{Api, Client};
use tracing::{debug, info, warn};
use tributary_controller::ControllerSet;

use crate::crd::{KafkaCluster, KafkaTopic};

/// The field manager of every object the operator applies.
pub const FIELD_MANAGER: &str = "tributary-operator";

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    /// The controllers this operator hosts, by `namespace/name`.
    pub controllers: Arc<ControllerSet>,
    /// `host:port` brokers reach this operator's controller endpoint on.
    pub controller_address: String,
    /// The broker image of clusters that name none.
    pub default_image: String,
    /// Publishes Kubernetes Events.
    pub recorder: Recorder,
    /// What runs beside each hosted controller, by `namespace/name`.
    hosted: Mutex<HashMap<String, Hosted>>,
}

/// What runs beside a hosted controller.
struct Hosted {
    /// The broker settings it was opened with (a change reopens it).
    settings: std::collections::BTreeMap<String, String>,
    /// Mirrors Admin API topic changes into KafkaTopics.
    mirror: tokio::task::JoinHandle<()>,
}

impl Drop for Hosted {
    fn drop(&mut self) {
        self.mirror.abort();
    }
}

impl Context {
    /// A context for reconciles that publish Events as `instance`.
    pub fn new(
        client: Client,
        controllers: Arc<ControllerSet>,
        controller_address: String,
        default_image: String,
        instance: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.to_string(),
            instance,
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            controllers,
            controller_address,
            default_image,
            hosted: Mutex::new(HashMap::new()),
        }
    }
}

/// The time conditions are stamped with, in whole seconds as the API server stores them
/// (so an unchanged status compares equal to the stored one).
fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    use k8s_openapi::jiff::Timestamp;
    let seconds = Timestamp::now().as_second();
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Timestamp::from_second(seconds).unwrap_or_default(),
    )
}

/// How often hosted controllers are checked against the clusters that still exist.
const SWEEP_INTERVAL: Duration = Duration::from_secs(5);

/// Runs the KafkaCluster and KafkaTopic loops (in `namespace`, or all namespaces) until the process ends.
pub async fn run(context: Arc<Context>, namespace: Option<&str>) {
    let client = context.client.clone();
    let api = |client: Client| -> Api<KafkaCluster> {
        match namespace {
            Some(ns) => Api::namespaced(client, ns),
            None => Api::all(client),
        }
    };
    macro_rules! owned {
        ($kind:ty) => {
            match namespace {
                Some(ns) => Api::<$kind>::namespaced(client.clone(), ns),
                None => Api::<$kind>::all(client.clone()),
            }
        };
    }
    let controller = Controller::new(api(client.clone()), watcher::Config::default())
        .owns(owned!(StatefulSet), watcher::Config::default())
        .owns(owned!(Service), watcher::Config::default())
        .owns(owned!(ConfigMap), watcher::Config::default())
        .owns(owned!(ServiceAccount), watcher::Config::default())
        .owns(owned!(PodDisruptionBudget), watcher::Config::default());
    let clusters = controller.store();
    let sweeper = tokio::spawn({
        let context = context.clone();
        async move {
            let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
            loop {
                ticks.tick().await;
                for key in context.controllers.clusters() {
                    let exists = clusters
                        .state()
                        .iter()
                        .any(|c| cluster::key_of(c).as_deref() == Some(key.as_str()));
                    if !exists {
                        info!(cluster = %key, "cluster deleted: its controller stops");
                        context.controllers.remove(&key);
                        cluster::forget(&context, &key);
                    }
                }
            }
        }
    });
    let topics = match namespace {
        Some(ns) => Api::<KafkaTopic>::namespaced(client.clone(), ns),
        None => Api::<KafkaTopic>::all(client.clone()),
    };
    let topic_loop = Controller::new(topics, watcher::Config::default())
        .run(topic::reconcile, topic::error_policy, context.clone())
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => debug!(topic = %object.name, "reconciled"),
                Err(e) => warn!(error = %e, "topic reconcile failed"),
            }
        });
    let cluster_loop = controller
        .run(cluster::reconcile, cluster::error_policy, context)
        .for_each(|result| async move {
            match result {
                Ok((object, _)) => debug!(cluster = %object.name, "reconciled"),
                Err(e) => warn!(error = %e, "reconcile failed"),
            }
        });
    futures::join!(cluster_loop, topic_loop);
    sweeper.abort();
}
