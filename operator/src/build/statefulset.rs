//! One zone's brokers: a StatefulSet pinned to the zone's nodes, each pod a broker whose
//! id is the zone's base id plus the pod's index, with a volume of its own.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource,
    ExecAction, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SecurityContext, TCPSocketAction, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tributary_metadata::launch::{BrokerLaunch, POD_INDEX_ENV};

use super::names::ZONE_LABEL;
use super::{
    BuildContext, ClusterNames, SpecError, CONFIG_DIR, CONFIG_FILE, CONFIG_HASH_ANNOTATION,
};
use crate::crd::KafkaCluster;

/// The broker binary in the broker image.
const BROKER_BINARY: &str = "/usr/local/bin/tributary-broker";
/// Where a broker keeps its logs.
const DATA_DIR: &str = "/var/lib/tributary";
/// The user and group the broker image runs as.
const BROKER_UID: i64 = 10001;
/// Node ids of a zone's brokers start at `(zone index + 1) * ZONE_ID_STRIDE`, so an id
/// names its zone and a zone can hold that many brokers.
pub const ZONE_ID_STRIDE: i32 = 1000;

/// The id of the broker at `ordinal` in the StatefulSet of the `zone_index`th zone: stable
/// for the pod's life and across restarts (the pod adds its index to the zone's first id).
pub fn broker_id(zone_index: usize, ordinal: i32) -> i32 {
    (zone_index as i32 + 1) * ZONE_ID_STRIDE + ordinal
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// How the brokers of `zone` start: the launch description every pod of the StatefulSet
/// shares (the pod's index and name come from the downward API).
fn launch(
    cluster: &KafkaCluster,
    names: &ClusterNames,
    ctx: &BuildContext,
    index: usize,
    zone: &str,
) -> BrokerLaunch {
    let port = super::network::client_port(cluster);
    let mut launch = BrokerLaunch::new(broker_id(index, 0), DATA_DIR, format!("0.0.0.0:{port}"));
    // Kubernetes expands `$(POD_NAME)`: each pod advertises its own stable name.
    launch.advertised_listener = Some(format!("{}:{port}", names.broker_host("$(POD_NAME)")));
    launch.rack = Some(zone.to_string());
    launch.controller = Some(ctx.controller.clone());
    launch.config_file = Some(format!("{CONFIG_DIR}/{CONFIG_FILE}").into());
    launch
}

/// The StatefulSet of the `index`th zone, `zone`.
pub fn for_zone(
    cluster: &KafkaCluster,
    names: &ClusterNames,
    ctx: &BuildContext,
    index: usize,
    zone: &str,
    config_hash: &str,
) -> Result<StatefulSet, SpecError> {
    let spec = &cluster.spec;
    let name = names.stateful_set(zone)?;
    let mut env = vec![
        field_env("POD_NAME", "metadata.name"),
        field_env(
            POD_INDEX_ENV,
            "metadata.labels['apps.kubernetes.io/pod-index']",
        ),
    ];
    env.extend(
        launch(cluster, names, ctx, index, zone)
            .env()
            .into_iter()
            .map(|(name, value)| EnvVar {
                name,
                value: Some(value),
                ..Default::default()
            }),
    );
    let mut selector = names.selector();
    selector.insert(ZONE_LABEL.to_string(), zone.to_string());
    let mut pod_labels = spec.template.labels.clone();
    pod_labels.extend(names.labels());
    pod_labels.insert(ZONE_LABEL.to_string(), zone.to_string());
    let mut annotations = spec.template.annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.to_string(), config_hash.to_string());
    let liveness = Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::String(
                spec.listeners
                    .first()
                    .map_or("plain".into(), |l| l.name.clone()),
            ),
            ..Default::default()
        }),
        initial_delay_seconds: Some(30),
        period_seconds: Some(5),
        ..Default::default()
    };
    let container = Container {
        name: "broker".into(),
        image: Some(
            spec.image
                .clone()
                .unwrap_or_else(|| ctx.default_image.clone()),
        ),
        env: Some(env),
        ports: Some(
            spec.listeners
                .iter()
                .map(|l| ContainerPort {
                    name: Some(l.name.clone()),
                    container_port: l.port,
                    ..Default::default()
                })
                .collect(),
        ),
        resources: spec.resources.clone(),
        // Ready means serving and registered (live in the broker's own metadata), which an
        // open port alone does not show: the check reads the pod's own TRIBUTARY_* env.
        readiness_probe: Some(Probe {
            exec: Some(ExecAction {
                command: Some(vec![BROKER_BINARY.into(), "--check-ready".into()]),
            }),
            period_seconds: Some(5),
            timeout_seconds: Some(4),
            ..Default::default()
        }),
        liveness_probe: Some(liveness),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            run_as_non_root: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".into()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "data".into(),
                mount_path: DATA_DIR.into(),
                ..Default::default()
            },
            VolumeMount {
                name: "config".into(),
                mount_path: CONFIG_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        node_selector: Some(BTreeMap::from([(
            spec.zone_label.clone(),
            zone.to_string(),
        )])),
        tolerations: (!spec.template.tolerations.is_empty())
            .then(|| spec.template.tolerations.clone()),
        priority_class_name: spec.template.priority_class_name.clone(),
        security_context: Some(PodSecurityContext {
            run_as_user: Some(BROKER_UID),
            run_as_group: Some(BROKER_UID),
            fs_group: Some(BROKER_UID),
            run_as_non_root: Some(true),
            ..Default::default()
        }),
        termination_grace_period_seconds: Some(30),
        // Brokers never call the Kubernetes API: their own account, with no token.
        service_account_name: Some(names.broker_account()),
        automount_service_account_token: Some(false),
        volumes: Some(vec![Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names.config(),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some("data".into()),
            labels: Some(names.labels()),
            ..Default::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: spec.storage.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_string(),
                    Quantity(spec.storage.size.clone()),
                )])),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(StatefulSet {
        metadata: names.meta(name, ctx),
        spec: Some(StatefulSetSpec {
            service_name: Some(names.brokers()),
            replicas: Some(spec.brokers_per_zone),
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(selector),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..Default::default()
                }),
                spec: Some(pod),
            },
            volume_claim_templates: Some(vec![claim]),
            // The operator restarts brokers itself, one at a time across all zones and only
            // while every partition is fully in sync (see `reconcile::roll`); a
            // StatefulSet's own rolling update would restart every zone's brokers at once.
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                rolling_update: None,
            }),
            // Volumes outlive their brokers unless the spec asks otherwise: a scaled-down or
            // deleted cluster keeps its data.
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(
                        if spec.storage.delete_claim {
                            "Delete"
                        } else {
                            "Retain"
                        }
                        .into(),
                    ),
                    when_scaled: Some("Retain".into()),
                },
            ),
            ..Default::default()
        }),
        ..Default::default()
    })
}
