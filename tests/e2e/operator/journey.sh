#!/usr/bin/env bash
# The users' journey, verbatim: `helm install` of the operator, `kubectl apply` of the
# example KafkaCluster and KafkaTopic, `kubectl get`, and the users' walkthrough with the
# Apache Kafka 3.6.0 CLI from a pod in zone-a against the bootstrap servers the status
# shows. Then what a platform team relies on: Admin API topics mirrored as KafkaTopics,
# replicas across zones, a deleted leader pod, the active operator killed, a zone's node
# stopped (each while Kafka's verifiable producer writes with acks=all and nothing
# acknowledged may be lost), and deleting the cluster leaving only its volumes.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

ns=tributary-journey
release_ns=tributary
# The journey's commands name no namespace: they run in the suite's own one.
kubeconfig=$(mktemp)
cp "$KUBECONFIG" "$kubeconfig"
export KUBECONFIG=$kubeconfig
use_fresh_namespace "$ns"
# KafkaTopics go while the operator can still remove their finalizers.
trap 'kubectl -n '"$ns"' delete kafkatopics --all --timeout=60s >/dev/null 2>&1 || true
  helm uninstall tributary --namespace '"$release_ns"' >/dev/null 2>&1 || true
  kubectl delete namespace '"$ns $release_ns"' --ignore-not-found --wait=false >/dev/null 2>&1 || true
  rm -f '"$kubeconfig" EXIT
kubectl config set-context --current --namespace="$ns" >/dev/null
cd "$REPO_DIR"

kafka_bin=/opt/tributary-cache/kafka-3.6.0/bin
cli() { kubectl exec kafka-cli -- "$kafka_bin/$1" --bootstrap-server "$bootstrap" "${@:2}"; }

step "the journey: helm install, kubectl apply, kubectl get"
check "helm install tributary charts/tributary-operator --namespace tributary --create-namespace --wait" \
  helm install tributary charts/tributary-operator --namespace "$release_ns" --create-namespace --wait --timeout 3m
apply_to_ready() {
  local started
  started=$(date +%s%3N)
  kubectl apply -f examples/cluster.yaml
  kubectl wait kafkacluster/demo --for=condition=Ready --timeout=300s
  note "kubectl apply -> KafkaCluster Ready: $(($(date +%s%3N) - started)) ms"
}
check "kubectl apply -f examples/cluster.yaml: the cluster becomes Ready" apply_to_ready
get_clusters() {
  local table
  table=$(kubectl get kafkaclusters)
  echo "$table" | sed 's/^/    /' >&3
  head -n1 <<<"$table" | grep -Eq '^NAME +READY +BROKERS +BOOTSTRAP SERVERS +AGE$'
  grep -Eq '^demo +True +3/3 +demo-zone-a-0\.demo-brokers\.'"$ns"'\.svc\.cluster\.local:9092,' <<<"$table"
}
check "kubectl get kafkaclusters: READY True, 3/3 brokers, their bootstrap servers" get_clusters
bootstrap=$(kubectl get kafkacluster demo -o jsonpath='{.status.bootstrapServers}')
get_topics() {
  local table wide
  kubectl apply -f examples/topic.yaml
  kubectl wait kafkatopic/testtopic --for=condition=Ready --timeout=60s
  table=$(kubectl get kafkatopics)
  wide=$(kubectl get kafkatopics -o wide)
  echo "$wide" | sed 's/^/    /' >&3
  head -n1 <<<"$table" | grep -Eq '^NAME +CLUSTER +PARTITIONS +REPLICAS +READY +AGE$'
  grep -Eq '^testtopic +demo +1 +3 +True ' <<<"$table"
  head -n1 <<<"$wide" | grep -Eq ' LEADERS +ISR '
  # Broker ids name their zone: 1000s zone-a, 2000s zone-b, 3000s zone-c.
  grep -Eq '^testtopic .* [123]000 +[123]000,[123]000,[123]000 ' <<<"$wide"
}
check "kubectl apply -f examples/topic.yaml; kubectl get kafkatopics (-o wide: leaders, ISR)" get_topics
in_its_zone() {
  local zone node node_zone
  for zone in zone-a zone-b zone-c; do
    node=$(kubectl get pod "demo-$zone-0" -o jsonpath='{.spec.nodeName}')
    node_zone=$(kubectl get node "$node" -o jsonpath='{.metadata.labels.topology\.kubernetes\.io/zone}')
    echo "demo-$zone-0 runs on $node ($node_zone)"
    [ "$node_zone" = "$zone" ]
  done
}
check "each broker runs on a node of its zone" in_its_zone
locked_down() {
  [ "$(kubectl exec demo-zone-b-0 -- id -u)" = 10001 ]
  ! kubectl exec demo-zone-b-0 -- touch /probe 2>/dev/null
}
check "brokers run as a non-root user on a read-only root filesystem" locked_down

kubectl apply -f tests/e2e/kafka-cli.yaml >/dev/null
check "Kafka CLI pod in zone-a becomes ready" kubectl wait --for=condition=Ready pod/kafka-cli --timeout=180s
check "seed walkthrough (Kafka 3.6.0 CLI, replication factor 3) against the status' bootstrap servers" \
  walkthrough_from_pod "$ns" "$bootstrap" 3
replicas_in_every_zone() {
  local described
  cli kafka-topics.sh --create --topic spread --partitions 3 --replication-factor 3
  described=$(cli kafka-topics.sh --describe --topic spread)
  echo "$described"
  [ "$(grep -c 'Replicas: [123]000,[123]000,[123]000' <<<"$described")" = 3 ]
  [ "$(grep -Ec 'Isr: [123]000,[123]000,[123]000' <<<"$described")" = 3 ]
}
check "replicas of a replicated topic land in three zones, all in sync" replicas_in_every_zone
absent() { ! kubectl get "$@" >/dev/null 2>&1; }
listed() { cli kafka-topics.sh --list | grep -qx "$1"; }
spec_retention() {
  [ "$(kubectl get kafkatopic "$1" -o jsonpath='{.spec.config.retention\.ms}')" = "$2" ]
}
topic_retention() {
  local described
  described=$(cli kafka-configs.sh --entity-type topics --entity-name "$1" --describe) || return 1
  sed -n 's/.*[ ,{]retention\.ms=\([0-9]*\).*/\1/p' <<<"$described"
}
not_overridden() {
  local retention
  retention=$(topic_retention "$1") || return 1
  [ -z "$retention" ]
}
admin_topics_mirrored() {
  # The walkthrough deleted testtopic through the Admin API: its KafkaTopic went with it.
  wait_until 30 absent kafkatopic testtopic
  wait_until 30 kubectl get kafkatopic spread
  [ "$(kubectl get kafkatopic spread -o jsonpath='{.spec.partitions}/{.spec.replicas}')" = 3/3 ]
  # An Admin API change to a topic created through the Admin API stays, and its
  # KafkaTopic takes it in.
  cli kafka-configs.sh --entity-type topics --entity-name spread --alter --add-config retention.ms=3600000
  wait_until 30 spec_retention spread 3600000
  topic_retention spread | grep -qx 3600000
  cli kafka-topics.sh --delete --topic spread
  wait_until 30 absent kafkatopic spread
  # And the other way: a KafkaTopic's topic comes and goes with it.
  kubectl apply -f examples/topic.yaml
  kubectl wait kafkatopic/testtopic --for=condition=Ready --timeout=60s
  listed testtopic
  # A KafkaTopic a user wrote is the source of truth: an Admin API change is undone.
  cli kafka-configs.sh --entity-type topics --entity-name testtopic --alter --add-config retention.ms=3600000
  wait_until 30 not_overridden testtopic
  kubectl delete kafkatopic testtopic --timeout=60s
  ! listed testtopic
}
check "Admin API topics appear and disappear as KafkaTopics and keep Admin API changes; a KafkaTopic written by a user is the source of truth and deleting it deletes its topic" \
  admin_topics_mirrored

store_contract() {
  (cd "$REPO_DIR" && cargo test -q -p tributary-operator --test kube_store -- --ignored 2>&1 | tail -n 3)
}
check "the Kubernetes metadata store fences a superseded controller (store contract on the API server)" \
  store_contract

wide_topic() {
  local bytes
  kubectl apply -f - <<'EOF2'
apiVersion: tributary.dev/v1alpha1
kind: KafkaTopic
metadata:
  name: wide
spec:
  clusterRef: demo
  partitions: 1000
  replicas: 3
EOF2
  kubectl wait kafkatopic/wide --for=condition=Ready --timeout=120s
  [ "$(kubectl get kafkatopic wide -o jsonpath='{.status.partitions[999].partition}')" = 999 ]
  [ "$(cli kafka-topics.sh --describe --topic wide | grep -c 'Isr: ')" = 1000 ]
  bytes=$(kubectl get configmap demo-metadata -o jsonpath='{.data.image\.json}' | wc -c)
  note "1,000 partitions x 3 replicas: metadata image of ${bytes} bytes in ConfigMap demo-metadata"
  kubectl delete kafkatopic wide --timeout=60s
}
check "a KafkaTopic of 1,000 partitions over 3 brokers becomes Ready, and is deleted" wide_topic

# Kafka's verifiable producer (acks=all, 200 records/s) and consumer on a new topic, the
# fault, and the verdict: nothing acknowledged lost, and the longest pause in acknowledged
# writes from the fault on (printed, and returned in $pause_ms).
traffic_begin() {
  local topic=$1; shift
  work=$(mktemp -d)
  cli kafka-topics.sh --create --topic "$topic" --config min.insync.replicas=2 "$@" >/dev/null
  kubectl exec kafka-cli -- sh -c "nohup $kafka_bin/kafka-verifiable-producer.sh \
    --bootstrap-server $bootstrap --topic $topic --throughput 200 --max-messages ${MESSAGES:-4000} --acks -1 \
    >/tmp/$topic-producer.jsonl 2>/tmp/$topic-producer.err &"
  kubectl exec kafka-cli -- sh -c "nohup $kafka_bin/kafka-verifiable-consumer.sh \
    --bootstrap-server $bootstrap --topic $topic --group-id verify-$topic --reset-policy earliest --verbose \
    >/tmp/$topic-consumer.jsonl 2>/tmp/$topic-consumer.err &"
  sleep 6
}
# Records a fault of KIND against BROKER, now.
fault() { echo "$1 0 $2 $(date +%s%3N)" >>"$work/events"; }
traffic_end() {
  local topic=$1
  wait_until 90 sh -c "! kubectl exec kafka-cli -- pgrep -f 'VerifiableProducer.*--topic $topic ' >/dev/null"
  kubectl exec kafka-cli -- cat "/tmp/$topic-producer.jsonl" >"$work/producer.jsonl"
  caught_up() {
    kubectl exec kafka-cli -- cat "/tmp/$topic-consumer.jsonl" >"$work/consumer.jsonl"
    python3 tests/cluster/verify.py is-caught-up "$work"
  }
  wait_until 90 caught_up
  kubectl exec kafka-cli -- pkill -f "VerifiableConsumer.*--topic $topic " || true
  python3 tests/cluster/verify.py check "$work" | tee "$work/verdict"
  pause_ms=$(grep -o 'longest pause in acknowledged writes [0-9]* ms' "$work/verdict" | awk '{print $6}')
}
leader_of() { cli kafka-topics.sh --describe --topic "$1" | grep -o 'Leader: [0-9]*' | awk '{print $2}'; }
pod_of() {
  local zones=(zone-a zone-b zone-c)
  echo "demo-${zones[$(($1 / 1000 - 1))]}-$(($1 % 1000))"
}
in_sync() { cli kafka-topics.sh --describe --topic "$1" | grep -q 'Isr: [0-9]*,[0-9]*,[0-9]*'; }

leader_pod_deleted() {
  local leader
  traffic_begin pod-loss --partitions 1 --replication-factor 3
  leader=$(leader_of pod-loss)
  fault delete "$leader"
  kubectl delete pod "$(pod_of "$leader")" --wait=false
  traffic_end pod-loss
  note "leader pod deleted -> longest pause in acks=all writes: ${pause_ms} ms"
  [ "$pause_ms" -lt 2000 ]
  wait_until 120 in_sync pod-loss
}
check "kubectl delete pod of a leader: acks=all writes pause under 2 s, nothing lost, back in the ISR" \
  leader_pod_deleted

# A leader cut off from the other brokers and the operators (DROP rules in its node's
# FORWARD chain, where kindnet routes every pod's traffic), still reachable by clients:
# its leadership moves, nothing acknowledged is lost, and once healed it rejoins the ISR.
leader_isolated() {
  local broker pod node pod_ip peers ip rules=()
  traffic_begin isolation --partitions 1 --replication-factor 3
  broker=$(leader_of isolation)
  pod=$(pod_of "$broker")
  node=$(kubectl get pod "$pod" -o jsonpath='{.spec.nodeName}')
  pod_ip=$(kubectl get pod "$pod" -o jsonpath='{.status.podIP}')
  peers=$( (kubectl get pods -l app.kubernetes.io/instance=demo -o jsonpath='{range .items[*]}{.status.podIP}{"\n"}{end}'
    kubectl -n "$release_ns" get pods -o jsonpath='{range .items[*]}{.status.podIP}{"\n"}{end}') |
    grep -vx "$pod_ip" | sort -u)
  [ -n "$peers" ]
  fault isolate "$broker"
  for ip in $peers; do
    rules+=("-s $pod_ip -d $ip -j DROP" "-s $ip -d $pod_ip -j DROP")
  done
  for rule in "${rules[@]}"; do
    # shellcheck disable=SC2086 # a rule is its words
    docker exec "$node" iptables -I FORWARD $rule
  done
  echo "cut $pod ($pod_ip, on $node) off from $(echo "$peers" | wc -l) peers"
  led_elsewhere() { leader=$(leader_of isolation) && [ -n "$leader" ] && [ "$leader" != "$broker" ]; }
  wait_until 30 led_elsewhere
  sleep 5
  for rule in "${rules[@]}"; do
    # shellcheck disable=SC2086
    docker exec "$node" iptables -D FORWARD $rule
  done
  traffic_end isolation
  note "leader cut off from its peers -> longest pause in acks=all writes: ${pause_ms} ms"
  # The cut lasts until the leadership moved and 5 s more: a zombie that kept clients
  # (their metadata requests) to itself would hold the writes that long.
  [ "$pause_ms" -lt 4000 ]
  wait_until 120 in_sync isolation
}
check "a leader cut off from its peers and the operator: writes pause under 4 s, nothing lost, back in the ISR" \
  leader_isolated

active_operator() {
  kubectl -n "$release_ns" get pod -l tributary.dev/controller-active=true -o jsonpath='{.items[*].metadata.name}'
}
operators_ready() {
  [ "$(kubectl -n "$release_ns" get pods -l app.kubernetes.io/name=tributary-operator \
    -o jsonpath='{.items[*].status.containerStatuses[0].ready}')" = "true true" ]
}
operator_killed() {
  local active node started took
  traffic_begin operator-loss --partitions 1 --replication-factor 3
  active=$(active_operator)
  [ -n "$active" ] && [ "${active// /}" = "$active" ]
  node=$(kubectl -n "$release_ns" get pod "$active" -o jsonpath='{.spec.nodeName}')
  started=$(date +%s%3N)
  fault operator-kill "$(leader_of operator-loss)"
  docker exec "$node" pkill -9 -f 'tributary-operator run'
  echo "killed the active operator $active on $node"
  # The controller is back once a topic can be created again.
  wait_until 60 cli kafka-topics.sh --create --topic after-operator-loss --partitions 1 --replication-factor 3
  took=$(($(date +%s%3N) - started))
  traffic_end operator-loss
  note "active operator killed -> controller serving again: ${took} ms; longest pause in acks=all writes: ${pause_ms} ms"
  [ "$pause_ms" -lt 2000 ]
  echo "now active: $(active_operator)"
  wait_until 60 operators_ready
}
check "kill -9 of the active operator: another replica takes over, brokers keep serving, nothing lost" \
  operator_killed

rolled_out() {
  local revisions
  revisions=$(for zone in zone-a zone-b zone-c; do
    echo "$(kubectl get statefulset "demo-$zone" -o jsonpath='{.status.updateRevision}')" \
      "$(kubectl get pod "demo-$zone-0" -o jsonpath='{.metadata.labels.controller-revision-hash}')"
  done)
  [ -z "$(awk '$1 != $2' <<<"$revisions")" ] &&
    [ "$(kubectl get kafkacluster demo -o jsonpath='{.status.readyBrokers}')" = 3/3 ]
}
config_rolled() {
  local deadline most=0 down uids
  uids=$(kubectl get pods -l app.kubernetes.io/instance=demo -o jsonpath='{.items[*].metadata.uid}')
  MESSAGES=27000 traffic_begin rolling --partitions 1 --replication-factor 3
  fault roll "$(leader_of rolling)"
  kubectl patch kafkacluster demo --type=merge -p '{"spec":{"config":{"log.retention.ms":"86400000"}}}'
  sleep 2
  deadline=$((SECONDS + 300))
  until rolled_out; do
    down=$(kubectl get pods -l app.kubernetes.io/instance=demo \
      -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -vc True || true)
    [ "$down" -le "$most" ] || most=$down
    [ $SECONDS -lt $deadline ] || { echo "the roll did not finish in 300 s"; return 1; }
    sleep 1
  done
  # Every broker pod was replaced.
  for uid in $(kubectl get pods -l app.kubernetes.io/instance=demo -o jsonpath='{.items[*].metadata.uid}'); do
    ! grep -q "$uid" <<<"$uids"
  done
  traffic_end rolling
  note "config change rolled 3 brokers (at most $most down at once); longest pause in acks=all writes: ${pause_ms} ms"
  [ "$most" -le 1 ]
  [ "$pause_ms" -lt 2000 ]
}
check "a config change restarts the brokers one at a time, each back in the ISR first; nothing lost" \
  config_rolled

zone_lost() {
  local operator_node zone node broker others leader
  # The zone of neither the CLI pod (zone-a) nor the active operator: losing the
  # controller's node too adds the Lease's expiry to the outage.
  operator_node=$(kubectl -n "$release_ns" get pod "$(active_operator)" -o jsonpath='{.spec.nodeName}')
  for zone in zone-b zone-c; do
    node=$(kubectl get node -l "topology.kubernetes.io/zone=$zone" -o jsonpath='{.items[0].metadata.name}')
    [ "$node" = "$operator_node" ] || break
  done
  broker=$([ "$zone" = zone-b ] && echo 2000 || echo 3000)
  others=$([ "$zone" = zone-b ] && echo 1000:3000 || echo 1000:2000)
  # The stopped zone's broker leads the partition.
  MESSAGES=5000 traffic_begin zone-loss --replica-assignment "$broker:$others"
  [ "$(leader_of zone-loss)" = "$broker" ]
  fault zone-stop "$broker"
  docker stop "$node" >/dev/null
  echo "stopped $node ($zone, broker $broker)"
  led_elsewhere() { leader=$(leader_of zone-loss) && [ -n "$leader" ] && [ "$leader" != "$broker" ]; }
  wait_until 30 led_elsewhere
  traffic_end zone-loss
  note "zone $zone stopped -> longest pause in acks=all writes: ${pause_ms} ms"
  [ "$pause_ms" -lt 2000 ]
  docker start "$node" >/dev/null
  wait_until 240 in_sync zone-loss
  kubectl wait kafkacluster/demo --for=condition=Ready --timeout=120s
}
check "docker stop of a zone's node: writable with acks=all, nothing lost; its broker rejoins after docker start" \
  zone_lost

storage_refused() {
  local uids
  uids=$(kubectl get pods -l app.kubernetes.io/instance=demo -o jsonpath='{.items[*].metadata.uid}')
  ! kubectl patch kafkacluster demo --type=merge -p '{"spec":{"storage":{"size":"5Gi"}}}' 2>&1 |
    tee /dev/stderr | grep -q patched
  kubectl patch kafkacluster demo --type=merge -p '{"spec":{"storage":{"size":"20Gi"}}}'
  degraded() {
    kubectl get kafkacluster demo \
      -o jsonpath='{.status.conditions[?(@.type=="Degraded")].message}' | grep -q 'growing volume'
  }
  wait_until 60 degraded
  kubectl get kafkacluster demo -o jsonpath='{.status.conditions[?(@.type=="Degraded")].message}'
  echo
  [ "$(kubectl get pods -l app.kubernetes.io/instance=demo -o jsonpath='{.items[*].metadata.uid}')" = "$uids" ]
}
check "storage cannot shrink; growing it where the StorageClass cannot expand volumes shows as Degraded" \
  storage_refused

cluster_deleted() {
  local left
  kubectl delete kafkacluster demo --timeout=120s
  gone() {
    left=$(kubectl get statefulsets,services,configmaps,poddisruptionbudgets,pods,kafkatopics \
      -l app.kubernetes.io/instance=demo -o name 2>&1)
    left+=$(kubectl get configmap demo-metadata demo-config -o name 2>/dev/null || true)
    left+=$(kubectl get kafkatopics -o name)
    [ -z "$left" ]
  }
  wait_until 120 gone || { echo "left behind: $left"; return 1; }
  kubectl get pvc
  [ "$(kubectl get pvc -o name | grep -c '^persistentvolumeclaim/data-demo-zone-')" = 3 ]
}
check "deleting the KafkaCluster leaves nothing behind but its kept volumes" cluster_deleted

summary operator-journey
