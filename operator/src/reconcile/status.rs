//! A KafkaCluster's status as a pure function of what the operator observed: its pods, its
//! StatefulSets' rollout, the controller's metadata image and any error on the way.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use tributary_metadata::MetadataImage;

use crate::build::{self, ClusterNames};
use crate::crd::{BrokerStatus, KafkaCluster, KafkaClusterStatus};

/// A broker pod as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodView {
    pub name: String,
    pub node: Option<String>,
    /// The pod's Ready condition: serving and registered.
    pub ready: bool,
}

/// Everything the status is computed from.
#[derive(Debug, Clone, Default)]
pub struct Observed<'a> {
    /// The cluster's broker pods.
    pub pods: Vec<PodView>,
    /// While brokers run an older spec: what their roll is doing or waiting for.
    pub rollout: Option<String>,
    /// The controller's current image, when the controller is hosted.
    pub image: Option<&'a MetadataImage>,
    /// Why the spec cannot be built, if it cannot.
    pub spec_error: Option<String>,
    /// Why applying the objects failed, if it did.
    pub apply_error: Option<String>,
}

/// Condition types.
pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";

/// The status `cluster` should show, given what was observed; `now` stamps conditions
/// whose status changed since `cluster`'s current status.
pub fn cluster_status(
    cluster: &KafkaCluster,
    observed: &Observed,
    now: &Time,
) -> KafkaClusterStatus {
    let previous = cluster.status.as_ref();
    let generation = cluster.metadata.generation;
    let condition = |kind: &str, status: bool, reason: &str, message: String| {
        let status = if status { "True" } else { "False" };
        let since = previous
            .and_then(|p| p.conditions.iter().find(|c| c.type_ == kind))
            .filter(|c| c.status == status)
            .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
        Condition {
            type_: kind.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message,
            observed_generation: generation,
            last_transition_time: since,
        }
    };
    if let Some(error) = &observed.spec_error {
        return KafkaClusterStatus {
            observed_generation: generation,
            conditions: vec![
                condition(READY, false, "InvalidSpec", error.clone()),
                condition(PROGRESSING, false, "InvalidSpec", error.clone()),
                condition(DEGRADED, true, "InvalidSpec", error.clone()),
            ],
            ..previous.cloned().unwrap_or_default()
        };
    }

    let brokers = broker_rows(cluster, observed);
    let desired = brokers.len();
    let ready = brokers.iter().filter(|b| b.ready).count();
    let all_ready = desired > 0 && ready == desired;
    let summary = format!("{ready}/{desired} brokers ready");
    let ready_condition = if all_ready {
        condition(READY, true, "AllBrokersReady", summary.clone())
    } else {
        condition(READY, false, "BrokersNotReady", summary.clone())
    };
    let find = |kind: &str| previous.and_then(|p| p.conditions.iter().find(|c| c.type_ == kind));
    let was_ready_now =
        find(READY).is_some_and(|c| c.status == "True" && c.observed_generation == generation);
    let was_degraded = find(DEGRADED).is_some_and(|c| c.status == "True");
    // Brokers missing while a spec is first brought up are progress; once the cluster was
    // ready for this spec, or is already degraded, they are degradation.
    let progressing = observed.rollout.is_some() || (!all_ready && !was_ready_now && !was_degraded);
    let progressing_condition = if progressing {
        condition(
            PROGRESSING,
            true,
            "RollingOut",
            format!("brokers are being created or updated: {summary}"),
        )
    } else {
        condition(
            PROGRESSING,
            false,
            "RolledOut",
            "every broker runs the current spec".into(),
        )
    };
    let degraded_condition = match &observed.apply_error {
        Some(error) => condition(DEGRADED, true, "ApplyFailed", error.clone()),
        None if !progressing && !all_ready => condition(
            DEGRADED,
            true,
            "BrokersDown",
            format!("{} of {desired} brokers are not ready", desired - ready),
        ),
        None => condition(DEGRADED, false, "AsDesired", summary.clone()),
    };
    let cluster_id = observed
        .image
        .map(|image| image.cluster_id.clone())
        .filter(|id| !id.is_empty());
    KafkaClusterStatus {
        observed_generation: generation,
        conditions: vec![ready_condition, progressing_condition, degraded_condition],
        bootstrap_servers: build::bootstrap_servers(cluster).ok(),
        cluster_id,
        ready_brokers: Some(format!("{ready}/{desired}")),
        brokers,
    }
}

/// One row per desired broker: its pod, node and readiness, and the partitions it leads. A
/// broker is ready when its pod is and the controller counts it live.
fn broker_rows(cluster: &KafkaCluster, observed: &Observed) -> Vec<BrokerStatus> {
    let Ok(names) = ClusterNames::of(cluster) else {
        return Vec::new();
    };
    let mut rows = Vec::new();
    for (index, zone) in cluster.spec.zones.iter().enumerate() {
        let Ok(set) = names.stateful_set(zone) else {
            continue;
        };
        for ordinal in 0..cluster.spec.brokers_per_zone.max(0) {
            let id = build::broker_id(index, ordinal);
            let pod = format!("{set}-{ordinal}");
            let view = observed.pods.iter().find(|p| p.name == pod);
            let live = observed
                .image
                .is_some_and(|image| image.brokers.get(&id).is_some_and(|b| !b.fenced));
            let leaders = observed.image.map_or(0, |image| {
                image
                    .topics
                    .values()
                    .flat_map(|t| &t.partitions)
                    .filter(|p| p.leader == id)
                    .count() as i32
            });
            rows.push(BrokerStatus {
                id,
                zone: zone.clone(),
                node: view.and_then(|p| p.node.clone()),
                pod,
                ready: view.is_some_and(|p| p.ready) && live,
                leaders,
            });
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::KafkaClusterSpec;
    use k8s_openapi::jiff::Timestamp;

    fn demo() -> KafkaCluster {
        let text = include_str!("../../../examples/cluster.yaml");
        let mut cluster: KafkaCluster = serde_norway::from_str(text).unwrap();
        cluster.metadata.namespace = Some("kafka".into());
        cluster.metadata.generation = Some(2);
        cluster
    }

    fn at(seconds: i64) -> Time {
        Time(Timestamp::from_second(seconds).unwrap())
    }

    fn image(live: &[i32], leaders: &[i32]) -> MetadataImage {
        const ALL: &[i32] = &[1000, 2000, 3000];
        let partitions: Vec<(i32, &[i32])> = leaders.iter().map(|&l| (l, ALL)).collect();
        super::super::fixtures::image(live, &partitions)
    }

    fn pods(ready: &[bool]) -> Vec<PodView> {
        ["demo-zone-a-0", "demo-zone-b-0", "demo-zone-c-0"]
            .iter()
            .zip(ready)
            .map(|(name, &ready)| PodView {
                name: name.to_string(),
                node: Some(format!("node-{name}")),
                ready,
            })
            .collect()
    }

    fn find<'a>(status: &'a KafkaClusterStatus, kind: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == kind).unwrap()
    }

    #[test]
    fn a_cluster_is_ready_when_every_broker_pod_is_ready_and_live() {
        let cluster = demo();
        let image = image(&[1000, 2000, 3000], &[1000, 1000, 3000]);
        let observed = Observed {
            pods: pods(&[true, true, true]),
            image: Some(&image),
            ..Default::default()
        };
        let status = cluster_status(&cluster, &observed, &at(100));
        assert_eq!(find(&status, READY).status, "True");
        assert_eq!(find(&status, PROGRESSING).status, "False");
        assert_eq!(find(&status, DEGRADED).status, "False");
        assert_eq!(status.ready_brokers.as_deref(), Some("3/3"));
        assert_eq!(status.cluster_id.as_deref(), Some("abc"));
        assert_eq!(status.observed_generation, Some(2));
        let bootstrap = status.bootstrap_servers.as_deref().unwrap();
        assert!(bootstrap.starts_with("demo-zone-a-0.demo-brokers.kafka.svc.cluster.local:9092,"));
        let rows: Vec<_> = status
            .brokers
            .iter()
            .map(|b| (b.id, b.zone.as_str(), b.leaders))
            .collect();
        assert_eq!(
            rows,
            [
                (1000, "zone-a", 2),
                (2000, "zone-b", 0),
                (3000, "zone-c", 1)
            ]
        );
        assert_eq!(
            status.brokers[0].node.as_deref(),
            Some("node-demo-zone-a-0")
        );
    }

    #[test]
    fn a_broker_down_outside_a_rollout_degrades_the_cluster() {
        let mut cluster = demo();
        // While the cluster is first brought up, missing brokers are progress.
        let all = image(&[1000, 2000, 3000], &[]);
        let starting = Observed {
            pods: pods(&[true, false, true]),
            image: Some(&all),
            ..Default::default()
        };
        let status = cluster_status(&cluster, &starting, &at(10));
        assert_eq!(find(&status, PROGRESSING).status, "True");
        assert_eq!(find(&status, DEGRADED).status, "False");
        let up = Observed {
            pods: pods(&[true, true, true]),
            ..starting
        };
        cluster.status = Some(cluster_status(&cluster, &up, &at(20)));
        assert_eq!(find(cluster.status.as_ref().unwrap(), READY).status, "True");

        // Once it was ready: the pod is ready but the controller has fenced broker 2000.
        let image = image(&[1000, 3000], &[]);
        let ready = Observed {
            pods: pods(&[true, true, true]),
            image: Some(&image),
            ..Default::default()
        };
        let status = cluster_status(&cluster, &ready, &at(100));
        assert_eq!(find(&status, READY).status, "False");
        assert_eq!(find(&status, DEGRADED).reason, "BrokersDown");
        assert_eq!(status.ready_brokers.as_deref(), Some("2/3"));

        // While rolling out, missing brokers are progress, not degradation; a condition
        // keeps its transition time while its status holds.
        cluster.status = Some(status);
        let rolling = Observed {
            rollout: Some("restarting broker 2000".into()),
            ..ready.clone()
        };
        let status = cluster_status(&cluster, &rolling, &at(200));
        assert_eq!(find(&status, PROGRESSING).status, "True");
        assert_eq!(find(&status, DEGRADED).status, "False");
        assert_eq!(find(&status, READY).last_transition_time, at(100));
        assert_eq!(find(&status, DEGRADED).last_transition_time, at(200));
    }

    #[test]
    fn an_invalid_spec_shows_in_the_conditions() {
        let mut cluster = demo();
        cluster.spec = KafkaClusterSpec {
            zones: vec!["---".into()],
            ..cluster.spec
        };
        let observed = Observed {
            spec_error: Some("zone \"---\" gives no valid Kubernetes name".into()),
            ..Default::default()
        };
        let status = cluster_status(&cluster, &observed, &at(1));
        let ready = find(&status, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "InvalidSpec")
        );
        assert!(ready.message.contains("zone"));
        assert_eq!(find(&status, DEGRADED).status, "True");
    }
}
