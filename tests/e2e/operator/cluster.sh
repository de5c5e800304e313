#!/usr/bin/env bash
# A three-zone cluster from what the operator builds for examples/cluster.yaml
# (`tributary-operator render`), joined to a controller pod: one broker per zone on its own
# volume, then the users' walkthrough with replication factor 3 from a pod in zone-a.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

ns=tributary-cluster-e2e
k() { kubectl -n "$ns" "$@"; }
use_fresh_namespace "$ns"
operator=${CARGO_TARGET_DIR:-$REPO_DIR/target}/release/tributary-operator

step "starting a controller and the brokers built for examples/cluster.yaml"
start_controller() {
  k apply -f "$E2E_DIR/operator/controller.yaml" >/dev/null
  k rollout status deployment/tributary-controller --timeout=120s
}
check "controller becomes ready" start_controller
apply_built() {
  "$operator" render -f "$REPO_DIR/examples/cluster.yaml" --namespace "$ns" \
    --controller "tributary-controller.$ns.svc.cluster.local:9090" --image tributary/broker:dev |
    k apply -f -
}
check "the built objects apply" apply_built
k apply -f "$E2E_DIR/kafka-cli.yaml" >/dev/null
for zone in zone-a zone-b zone-c; do
  check "the $zone broker becomes ready" k rollout status "statefulset/demo-$zone" --timeout=240s
done
in_its_zone() {
  local zone node node_zone
  for zone in zone-a zone-b zone-c; do
    node=$(k get pod "demo-$zone-0" -o jsonpath='{.spec.nodeName}')
    node_zone=$(kubectl get node "$node" -o jsonpath='{.metadata.labels.topology\.kubernetes\.io/zone}')
    echo "demo-$zone-0 runs on $node ($node_zone)"
    [ "$node_zone" = "$zone" ]
  done
}
check "each broker runs on a node of its zone" in_its_zone
locked_down() {
  [ "$(k exec demo-zone-b-0 -- id -u)" = 10001 ]
  ! k exec demo-zone-b-0 -- touch /probe 2>/dev/null
}
check "brokers run as a non-root user on a read-only root filesystem" locked_down
check "Kafka CLI pod becomes ready" k wait --for=condition=Ready pod/kafka-cli --timeout=180s

bootstrap=demo-bootstrap.$ns.svc.cluster.local:9092
check "seed walkthrough (Kafka 3.6.0 CLI, replication factor 3) against the bootstrap Service" \
  walkthrough_from_pod "$ns" "$bootstrap" 3
replicas_in_every_zone() {
  local described
  k exec kafka-cli -- /opt/tributary-cache/kafka-3.6.0/bin/kafka-topics.sh --bootstrap-server "$bootstrap" \
    --create --topic spread --partitions 3 --replication-factor 3
  described=$(k exec kafka-cli -- /opt/tributary-cache/kafka-3.6.0/bin/kafka-topics.sh \
    --bootstrap-server "$bootstrap" --describe --topic spread)
  echo "$described"
  # Node ids name their zone: 1000s zone-a, 2000s zone-b, 3000s zone-c.
  [ "$(grep -c 'Replicas: [123]000,[123]000,[123]000' <<<"$described")" = 3 ]
  [ "$(grep -Ec 'Isr: [123]000,[123]000,[123]000' <<<"$described")" = 3 ]
}
check "replicas of a replicated topic land in three zones, all in sync" replicas_in_every_zone

summary operator-cluster
