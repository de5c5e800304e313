#!/usr/bin/env bash
# The CRDs on a real API server: they install, the examples are accepted, and invalid
# specs are refused by the API server with a message that names the field.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

ns=tributary-crds-e2e
k() { kubectl -n "$ns" "$@"; }
use_fresh_namespace "$ns"

step "installing the CRDs"
check "CRDs apply" kubectl apply --server-side --force-conflicts -f "$REPO_DIR/crds/"
check "CRDs are established" kubectl wait --for=condition=Established --timeout=60s \
  crd/kafkaclusters.tributary.dev crd/kafkatopics.tributary.dev

check "examples/cluster.yaml is accepted" k apply -f "$REPO_DIR/examples/cluster.yaml"
check "examples/topic.yaml is accepted" k apply -f "$REPO_DIR/examples/topic.yaml"
columns() {
  local header
  header=$(k get "$1" 2>&1 | head -n1)
  echo "$header"
  [ "$(echo "$header" | tr -s ' ')" = "$2" ]
}
# kubectl learns new resource types through discovery, which may lag the CRD by a moment.
check "kubectl get kafkaclusters shows the status columns" \
  wait_until 30 columns kafkaclusters "NAME READY BROKERS BOOTSTRAP SERVERS AGE"
check "kubectl get kafkatopics shows the spec columns" \
  wait_until 30 columns kafkatopics "NAME CLUSTER PARTITIONS REPLICAS READY AGE"

# refused NAME EXPECTED MANIFEST: applying MANIFEST fails with EXPECTED in the message.
refused() {
  local out
  if out=$(k apply -f - 2>&1 <<<"$3"); then
    echo "accepted: $out"
    return 1
  fi
  echo "$out"
  grep -qF -- "$2" <<<"$out"
}
cluster() {
  cat <<YAML
apiVersion: tributary.dev/v1alpha1
kind: KafkaCluster
metadata: {name: $1}
spec: $2
YAML
}
check "brokersPerZone 0 is refused" refused zero "spec.brokersPerZone" \
  "$(cluster bad1 '{zones: [zone-a], brokersPerZone: 0, storage: {size: 1Gi}}')"
check "repeated zones are refused" refused dup "spec.zones[1]: Duplicate value" \
  "$(cluster bad2 '{zones: [zone-a, zone-a], brokersPerZone: 1, storage: {size: 1Gi}}')"
check "no zones is refused" refused none "spec.zones" \
  "$(cluster bad3 '{zones: [], brokersPerZone: 1, storage: {size: 1Gi}}')"
check "a size that is not a quantity is refused" refused size "storage.size must be a positive quantity" \
  "$(cluster bad4 '{zones: [zone-a], brokersPerZone: 1, storage: {size: lots}}')"
check "a TLS listener is refused (plaintext only)" refused tls "TLS listeners are not supported yet" \
  "$(cluster bad5 '{zones: [zone-a], brokersPerZone: 1, storage: {size: 1Gi}, listeners: [{name: tls, port: 9093, type: internal, tls: true}]}')"
check "a missing storage section is refused" refused storage "spec.storage" \
  "$(cluster bad6 '{zones: [zone-a], brokersPerZone: 1}')"
check "two listeners on one port are refused" refused port "listener ports must be unique" \
  "$(cluster bad7 '{zones: [zone-a], brokersPerZone: 1, storage: {size: 1Gi}, listeners: [{name: a, port: 9092, type: internal}, {name: b, port: 9092, type: internal}]}')"
check "an unknown listener type is refused" refused kind "spec.listeners[0].type" \
  "$(cluster bad8 '{zones: [zone-a], brokersPerZone: 1, storage: {size: 1Gi}, listeners: [{name: a, port: 9092, type: external}]}')"

# patch_refused RESOURCE PATCH EXPECTED: the merge patch fails with EXPECTED in the message.
patch_refused() {
  local out
  if out=$(k patch "$1" --type merge -p "$2" 2>&1); then
    echo "accepted: $out"
    return 1
  fi
  echo "$out"
  grep -qF -- "$3" <<<"$out"
}
check "storage cannot shrink" patch_refused kafkacluster/demo \
  '{"spec":{"storage":{"size":"5Gi"}}}' "storage.size can only grow"
check "storage can grow" k patch kafkacluster demo --type merge -p '{"spec":{"storage":{"size":"20Gi"}}}'
check "brokersPerZone cannot shrink" patch_refused kafkacluster/demo \
  '{"spec":{"brokersPerZone":0}}' "spec.brokersPerZone"
check "brokers per zone can grow" k patch kafkacluster demo --type merge -p '{"spec":{"brokersPerZone":2}}'
check "brokersPerZone cannot go back down" patch_refused kafkacluster/demo \
  '{"spec":{"brokersPerZone":1}}' "brokersPerZone cannot shrink"
check "a zone cannot be removed" patch_refused kafkacluster/demo \
  '{"spec":{"zones":["zone-a","zone-b"]}}' "zones can only be added at the end"
check "zones cannot be reordered" patch_refused kafkacluster/demo \
  '{"spec":{"zones":["zone-b","zone-a","zone-c"]}}' "zones can only be added at the end"
check "a zone can be added at the end" k patch kafkacluster demo --type merge \
  -p '{"spec":{"zones":["zone-a","zone-b","zone-c","zone-d"]}}'
check "partitions cannot go below one" patch_refused kafkatopic/testtopic \
  '{"spec":{"partitions":0}}' "spec.partitions"
check "partitions can grow" k patch kafkatopic testtopic --type merge -p '{"spec":{"partitions":3}}'
check "partitions cannot shrink" patch_refused kafkatopic/testtopic \
  '{"spec":{"partitions":2}}' "partitions can only grow"
check "a topic cannot move to another cluster" patch_refused kafkatopic/testtopic \
  '{"spec":{"clusterRef":"other"}}' "clusterRef cannot change"

k delete kafkatopic --all --wait=false >/dev/null 2>&1 || true
k delete kafkacluster --all --wait=false >/dev/null 2>&1 || true
kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
kubectl delete -f "$REPO_DIR/crds/" --wait=false >/dev/null 2>&1 || true

summary operator-crds
