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

# Deleting the pod of a partition's leader while Kafka's verifiable producer writes with
# acks=all: no pause in acknowledged writes of 2 s or more, nothing acknowledged lost, and
# the recreated broker back in the ISR.
kafka() { k exec kafka-cli -- "/opt/tributary-cache/kafka-3.6.0/bin/$1" --bootstrap-server "$bootstrap" "${@:2}"; }
leader_pod() {
  local leader zones=(zone-a zone-b zone-c)
  leader=$(kafka kafka-topics.sh --describe --topic failover | grep -o 'Leader: [0-9]*' | awk '{print $2}')
  echo "demo-${zones[$((leader / 1000 - 1))]}-$((leader % 1000)) $leader"
}
leader_pod_deleted() {
  local work pod leader t took
  work=$(mktemp -d)
  kafka kafka-topics.sh --create --topic failover --partitions 1 --replication-factor 3 \
    --config min.insync.replicas=2 >/dev/null
  k exec kafka-cli -- sh -c "nohup /opt/tributary-cache/kafka-3.6.0/bin/kafka-verifiable-producer.sh \
    --bootstrap-server $bootstrap --topic failover --throughput 200 --max-messages 4000 --acks -1 \
    >/tmp/producer.jsonl 2>/tmp/producer.err &"
  k exec kafka-cli -- sh -c "nohup /opt/tributary-cache/kafka-3.6.0/bin/kafka-verifiable-consumer.sh \
    --bootstrap-server $bootstrap --topic failover --group-id verify --reset-policy earliest --verbose \
    >/tmp/consumer.jsonl 2>/tmp/consumer.err &"
  sleep 6
  read -r pod leader < <(leader_pod)
  t=$(date +%s%3N)
  k delete pod "$pod" --wait=false
  echo "delete 0 $leader $t" >"$work/events"
  echo "deleted $pod (broker $leader, leader of failover-0)"
  wait_until 60 sh -c "! kubectl -n $ns exec kafka-cli -- pgrep -f VerifiableProducer >/dev/null"
  k exec kafka-cli -- cat /tmp/producer.jsonl >"$work/producer.jsonl"
  caught_up() {
    k exec kafka-cli -- cat /tmp/consumer.jsonl >"$work/consumer.jsonl"
    python3 "$REPO_DIR/tests/cluster/verify.py" is-caught-up "$work"
  }
  wait_until 90 caught_up
  k exec kafka-cli -- pkill -f VerifiableConsumer || true
  python3 "$REPO_DIR/tests/cluster/verify.py" check "$work" | tee "$work/verdict"
  took=$(grep -o 'longest pause in acknowledged writes [0-9]* ms' "$work/verdict" | awk '{print $6}')
  note "leader pod deleted -> longest pause in acks=all writes: ${took} ms"
  [ "$took" -lt 2000 ]
  wait_until 120 sh -c "kubectl -n $ns exec kafka-cli -- /opt/tributary-cache/kafka-3.6.0/bin/kafka-topics.sh \
    --bootstrap-server $bootstrap --describe --topic failover | grep -q 'Isr: [0-9]*,[0-9]*,[0-9]*'"
}
check "a deleted leader pod: acks=all writes pause under 2 s, nothing acknowledged lost, back in the ISR" \
  leader_pod_deleted

summary operator-cluster
