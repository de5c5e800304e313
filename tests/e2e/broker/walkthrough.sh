#!/usr/bin/env bash
# Runs the users' walkthrough (Apache Kafka 3.6.0 CLI, RF 1) from a pod in zone-a against
# a Tributary broker pod in zone-b, by the broker's in-cluster DNS name.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

ns=tributary-broker-e2e
k() { kubectl -n "$ns" "$@"; }
use_fresh_namespace "$ns"

step "deploying a broker and a Kafka CLI pod"
k apply -f "$E2E_DIR/broker/broker.yaml" -f "$E2E_DIR/kafka-cli.yaml" >/dev/null
check "broker pod becomes ready" k rollout status statefulset/broker --timeout=180s
check "Kafka CLI pod becomes ready" k wait --for=condition=Ready pod/kafka-cli --timeout=180s
check "broker runs as a non-root user" sh -c "[ \"\$(kubectl -n $ns exec broker-0 -- id -u)\" = 10001 ]"

bootstrap=broker-0.broker.$ns.svc.cluster.local:9092
check "seed walkthrough (Kafka 3.6.0 CLI) from a pod against the broker pod" \
  walkthrough_from_pod "$ns" "$bootstrap" 1

# Acknowledged data lives on the pod's volume: a restarted broker pod still serves it.
cli() { k exec kafka-cli -- env KAFKA_HEAP_OPTS=-Xmx256m "/opt/tributary-cache/kafka-3.6.0/bin/$1" --bootstrap-server "$bootstrap" "${@:2}"; }
survives_restart() {
  cli kafka-topics.sh --create --topic durable --partitions 1 --replication-factor 1
  printf 'one\ntwo\nthree\n' | k exec -i kafka-cli -- /opt/tributary-cache/kafka-3.6.0/bin/kafka-console-producer.sh \
    --bootstrap-server "$bootstrap" --topic durable --producer-property acks=all
  local got
  recreate_pod "$ns" broker-0
  got=$(cli kafka-console-consumer.sh --topic durable --from-beginning --max-messages 3 --timeout-ms 30000 2>/dev/null)
  echo "consumed after restart: $got"
  [ "$got" = "$(printf 'one\ntwo\nthree')" ]
}
check "messages survive a broker pod restart" survives_restart

summary broker-walkthrough
