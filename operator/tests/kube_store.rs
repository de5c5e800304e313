//! The Kubernetes metadata store keeps the store contract against a real API server: a
//! second claim fences the first holder, and stale writes are refused. It needs a cluster
//! (`KUBECONFIG`), so it is ignored by `cargo test` and run by the kind suite
//! (`tests/e2e/operator/journey.sh`) with `--ignored`.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use tributary_controller::store::contract;
use tributary_operator::store::KubeMetadataStore;

#[tokio::test]
#[ignore = "needs a Kubernetes cluster: run by the kind suite"]
async fn the_kubernetes_store_keeps_the_contract() {
    let client = Client::try_default().await.expect("a kubeconfig");
    let namespace = format!("store-contract-{}", std::process::id());
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let object = serde_json::from_value(serde_json::json!({ "metadata": { "name": namespace } }))
        .expect("a namespace");
    namespaces
        .create(&PostParams::default(), &object)
        .await
        .expect("creating the test namespace");
    let maps: Api<ConfigMap> = Api::namespaced(client.clone(), &namespace);
    contract::check(|| {
        KubeMetadataStore::new(maps.clone(), "demo-metadata", Default::default(), None)
    })
    .await;
    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await
        .expect("deleting the test namespace");
}
