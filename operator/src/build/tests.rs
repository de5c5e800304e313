//! The builders against the example cluster and a checked-in fixture of what they build.

use std::path::Path;

use super::*;
use crate::crd::KafkaCluster;

fn example() -> KafkaCluster {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/cluster.yaml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut cluster: KafkaCluster = serde_norway::from_str(&text).unwrap();
    cluster.metadata.namespace = Some("kafka".into());
    cluster
}

fn context() -> BuildContext {
    BuildContext {
        controller: "tributary-controller.tributary.svc:9090".into(),
        default_image: "tributary/broker:dev".into(),
        owner: None,
    }
}

fn env_of(set: &StatefulSet) -> BTreeMap<String, String> {
    let pod = set.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
    pod.containers[0]
        .env
        .iter()
        .flatten()
        .map(|e| (e.name.clone(), e.value.clone().unwrap_or_default()))
        .collect()
}

fn config_hash(desired: &Desired) -> String {
    desired.stateful_sets[0]
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()[CONFIG_HASH_ANNOTATION]
        .clone()
}

/// What the example cluster builds, as YAML: compared with `testdata/demo.yaml`
/// (`UPDATE_FIXTURES=1 cargo test` rewrites it after a deliberate change).
#[test]
fn the_example_cluster_builds_the_fixture() {
    let objects = desired(&example(), &context())
        .unwrap()
        .in_apply_order()
        .unwrap();
    let rendered: Vec<String> = objects
        .iter()
        .map(|o| serde_norway::to_string(o).unwrap())
        .collect();
    let rendered = rendered.join("---\n");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/build/testdata/demo.yaml");
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(&fixture, &rendered).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&fixture).unwrap_or_default(),
        rendered,
        "the objects differ from {}",
        fixture.display()
    );
}

#[test]
fn one_stateful_set_per_zone_pinned_to_its_nodes() {
    let built = desired(&example(), &context()).unwrap();
    assert_eq!(built.stateful_sets.len(), 3);
    for (index, (set, zone)) in built
        .stateful_sets
        .iter()
        .zip(["zone-a", "zone-b", "zone-c"])
        .enumerate()
    {
        assert_eq!(
            set.metadata.name.as_deref(),
            Some(format!("demo-{zone}").as_str())
        );
        let spec = set.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(1));
        assert_eq!(spec.service_name.as_deref(), Some("demo-brokers"));
        let pod = spec.template.spec.as_ref().unwrap();
        assert_eq!(
            pod.node_selector.as_ref().unwrap()["topology.kubernetes.io/zone"],
            zone
        );
        let env = env_of(set);
        assert_eq!(env["TRIBUTARY_RACK"], zone);
        assert_eq!(
            env["TRIBUTARY_BROKER_ID"],
            ((index as i32 + 1) * 1000).to_string()
        );
        assert_eq!(
            env["TRIBUTARY_ADVERTISED_LISTENER"],
            "$(POD_NAME).demo-brokers.kafka.svc.cluster.local:9092"
        );
        let claim = &spec.volume_claim_templates.as_ref().unwrap()[0];
        let requests = claim.spec.as_ref().unwrap().resources.as_ref().unwrap();
        assert_eq!(requests.requests.as_ref().unwrap()["storage"].0, "10Gi");
        let security = pod.containers[0].security_context.as_ref().unwrap();
        assert_eq!(security.read_only_root_filesystem, Some(true));
        assert_eq!(security.run_as_non_root, Some(true));
    }
    let budget = built.disruption_budget.spec.unwrap();
    assert_eq!(budget.max_unavailable, Some(IntOrString::Int(1)));
}

#[test]
fn the_config_hash_changes_only_with_the_settings() {
    let base = desired(&example(), &context()).unwrap();
    let mut scaled = example();
    scaled.spec.brokers_per_zone = 2;
    scaled.spec.storage.size = "20Gi".into();
    assert_eq!(
        config_hash(&base),
        config_hash(&desired(&scaled, &context()).unwrap())
    );
    let mut retuned = example();
    retuned
        .spec
        .config
        .insert("log.retention.ms".into(), serde_json::json!(3_600_000));
    assert_ne!(
        config_hash(&base),
        config_hash(&desired(&retuned, &context()).unwrap())
    );
    let properties = &base.config.data.as_ref().unwrap()[CONFIG_FILE];
    assert_eq!(
        properties,
        "auto.create.topics.enable=false\ndefault.replication.factor=3\nmin.insync.replicas=2\n"
    );
}

#[test]
fn bootstrap_servers_name_every_broker() {
    let mut cluster = example();
    cluster.spec.brokers_per_zone = 2;
    let servers = bootstrap_servers(&cluster).unwrap();
    assert_eq!(servers.split(',').count(), 6);
    assert!(servers.starts_with("demo-zone-a-0.demo-brokers.kafka.svc.cluster.local:9092,"));
}

#[test]
fn specs_the_schema_cannot_judge_are_refused_with_reasons() {
    let mut cluster = example();
    cluster
        .spec
        .config
        .insert("log.dirs".into(), serde_json::json!(["/a", "/b"]));
    assert!(matches!(
        desired(&cluster, &context()),
        Err(SpecError::BadSetting { key, .. }) if key == "log.dirs"
    ));
    let mut cluster = example();
    cluster.spec.zones = vec!["--".into()];
    assert_eq!(
        desired(&cluster, &context()).unwrap_err(),
        SpecError::BadZone("--".into())
    );
    let mut unnamed = example();
    unnamed.metadata.namespace = None;
    assert_eq!(
        desired(&unnamed, &context()).unwrap_err(),
        SpecError::Unnamed
    );
}
