#!/usr/bin/env bash
# The smoke suite of the test plane, run against the cluster kind-up.sh made: a 3-replica
# StatefulSet spread one pod per zone, peers resolving each other by headless-Service DNS
# names and talking TCP across nodes, a deleted pod coming back on its zone with its
# volume and data, and a stopped worker (a lost zone) going NotReady and coming back.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

ns=tributary-smoke
k() { kubectl -n "$ns" "$@"; }
use_fresh_namespace "$ns"

step "deploying 3 peers with volumes"
k apply -f "$E2E_DIR/smoke/peers.yaml" >/dev/null
check "StatefulSet peer becomes ready" k rollout status statefulset/peer --timeout=180s

node_of() { k get pod "$1" -o jsonpath='{.spec.nodeName}'; }
zone_of_node() { kubectl get node "$1" -o jsonpath='{.metadata.labels.topology\.kubernetes\.io/zone}'; }
zone_of() { zone_of_node "$(node_of "$1")"; }
identity_of() { k exec "$1" -- busybox cat /data/identity; }

one_pod_per_zone() {
  local zones
  zones=$(for i in 0 1 2; do zone_of "peer-$i"; echo; done | sort | tr '\n' ' ')
  echo "zones: $zones"
  [ "$zones" = "zone-a zone-b zone-c " ]
}
check "one peer per zone" one_pod_per_zone

bound_volumes() {
  local default phases
  default=$(kubectl get storageclass -o jsonpath='{range .items[?(@.metadata.annotations.storageclass\.kubernetes\.io/is-default-class=="true")]}{.metadata.name}{end}')
  phases=$(k get pvc -o jsonpath='{range .items[*]}{.status.phase}{" "}{.spec.storageClassName}{"\n"}{end}')
  echo "default StorageClass: $default; claims: $phases"
  [ -n "$default" ]
  [ "$(grep -cx "Bound $default" <<<"$phases")" = 3 ]
}
check "each peer has a Bound volume from the default StorageClass" bound_volumes

# Every peer resolves every other by its stable DNS name and fetches its identity over
# TCP from another node.
peers_talk() {
  local i j name ip expected got
  for i in 0 1 2; do
    for j in 0 1 2; do
      [ "$i" != "$j" ] || continue
      name=peer-$j.peers.$ns.svc.cluster.local
      ip=$(k get pod "peer-$j" -o jsonpath='{.status.podIP}')
      [ -n "$ip" ] || { echo "peer-$j has no IP"; return 1; }
      k exec "peer-$i" -- busybox nslookup "$name" | grep -qwF "$ip" || { echo "peer-$i: $name does not resolve to $ip"; return 1; }
      expected=$(identity_of "peer-$j")
      [ -n "$expected" ] || { echo "peer-$j has no identity"; return 1; }
      got=$(k exec "peer-$i" -- curl -sSf --max-time 5 "http://peer-$j.peers:7000/identity")
      [ "$got" = "$expected" ] || { echo "peer-$i got '$got' from peer-$j, expected '$expected'"; return 1; }
      [ "$(node_of "peer-$i")" != "$(node_of "peer-$j")" ] || { echo "peer-$i and peer-$j share a node"; return 1; }
    done
  done
}
check "peers resolve each other by headless-Service DNS and talk TCP across nodes" peers_talk

# A deleted pod comes back on the same zone with the same volume and data.
pod_comes_back() {
  local zone identity
  zone=$(zone_of peer-1)
  identity=$(identity_of peer-1)
  [ -n "$zone" ]
  [ -n "$identity" ]
  k exec peer-1 -- busybox sh -c 'echo written-before-delete > /data/marker'
  recreate_pod "$ns" peer-1
  echo "zone $zone -> $(zone_of peer-1)"
  [ "$(zone_of peer-1)" = "$zone" ]
  [ "$(identity_of peer-1)" = "$identity" ]
  [ "$(k exec peer-1 -- busybox cat /data/marker)" = written-before-delete ]
}
check "a deleted pod returns on its zone with its volume and data" pod_comes_back

# Losing a zone: stopping a worker's container makes its node NotReady; starting it again
# brings the node and its peer back with the same data.
node_ready() { [ "$(kubectl get node "$1" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" = "$2" ]; }
lost_zone() {
  local node identity t0
  node=$(node_of peer-2)
  identity=$(identity_of peer-2)
  [ -n "$node" ]
  [ -n "$identity" ]
  t0=$SECONDS
  docker stop "$node" >/dev/null
  wait_until 180 node_ready "$node" Unknown
  note "$node ($(zone_of_node "$node")) NotReady $((SECONDS - t0)) s after docker stop"
  t0=$SECONDS
  docker start "$node" >/dev/null
  wait_until 240 node_ready "$node" True
  note "$node Ready again $((SECONDS - t0)) s after docker start"
  k rollout status statefulset/peer --timeout=240s >/dev/null
  wait_until 120 k exec peer-2 -- busybox true
  [ "$(identity_of peer-2)" = "$identity" ]
  [ "$(node_of peer-2)" = "$node" ]
}
check "a stopped worker goes NotReady and returns with its peer's data" lost_zone
# Whatever happened above, no worker stays stopped.
for node in $(kind get nodes --name "$CLUSTER_NAME"); do
  [ "$(docker inspect -f '{{.State.Running}}' "$node")" = true ] || docker start "$node" >/dev/null
done
# The returning node's routes and its pod's endpoints converge within seconds.
check "peers talk again after the zone returns" wait_until 60 peers_talk

summary smoke
