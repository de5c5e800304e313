#!/usr/bin/env bash
# kafka-reference.sh start|stop|status KAFKA_VERSION DIR PORT
# kafka-reference.sh start-cluster|stop-cluster|status-cluster KAFKA_VERSION DIR BASE_PORT [NODES]
#
# Runs real Apache Kafka in KRaft mode from the jars fetch-kafka.sh lays out:
# the reference for Tributary's compatibility walkthrough and benchmarks.
#
# Single node (combined broker+controller):
#   start   fetch the jars if needed, write DIR/server.properties, format
#           DIR/data with a random cluster id (first start only), start the
#           broker in the background and wait until it serves requests.
#           Client listener 127.0.0.1:PORT, controller 127.0.0.1:CONTROLLER_PORT.
#   stop    SIGTERM the broker started from DIR (SIGKILL after 60 s).
#   status  exit 0 if the broker started from DIR is running.
#
#   Files: DIR/server.properties, DIR/data (log dirs), DIR/kafka.out (broker log),
#          DIR/kafka.pid.
#   Environment: CONTROLLER_PORT (default PORT+1), KAFKA_HEAP_OPTS (default
#   -Xmx1G -Xms1G), START_TIMEOUT seconds (default 90).
#
# Cluster of NODES (default 3) combined broker+controller nodes, ids 1..NODES,
# all of them voters of the controller quorum, on 127.0.0.1 only:
#   node i (1-based): client listener BASE_PORT+i-1, controller listener
#   BASE_PORT+NODES+i-1, broker.rack zone-a, zone-b, zone-c, zone-a, ...
#   Cluster defaults: default.replication.factor=min(3,NODES),
#   min.insync.replicas=2 (1 below 3 nodes), offsets/transaction/share state
#   topics replicated the same way, group.initial.rebalance.delay.ms=0.
#   start-cluster   fetch the jars if needed, write DIR/node-i/server.properties,
#                   format every node with one cluster id (DIR/cluster.id, first
#                   start only), start all nodes, wait until each node logged
#                   "Kafka Server started" and kafka-broker-api-versions reaches
#                   every broker. Prints the bootstrap list on stdout.
#   stop-cluster    SIGTERM every node started from DIR (SIGKILL after 60 s).
#   status-cluster  exit 0 if every node started from DIR is running.
#
#   Files: DIR/cluster.id, DIR/node-i/{server.properties,data,kafka.out,kafka.pid}.
#   Progress goes to stderr. Environment: KAFKA_HEAP_OPTS (default
#   -Xmx512m -Xms512m per node), START_TIMEOUT seconds (default 180).
#
# Environment for both: TRIBUTARY_CACHE (see fetch-kafka.sh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() {
  echo "usage: $0 start|stop|status KAFKA_VERSION DIR PORT" >&2
  echo "       $0 start-cluster|stop-cluster|status-cluster KAFKA_VERSION DIR BASE_PORT [NODES=3]" >&2
  exit 2
}
[[ $# -ge 4 ]] || usage
ACTION=$1 VERSION=$2 PORT=$4
case $ACTION in
  *-cluster) [[ $# -le 5 ]] || usage; NODES=${5:-3} ;;
  *) [[ $# -eq 4 ]] || usage ;;
esac
[[ $PORT =~ ^[0-9]+$ ]] || usage
mkdir -p "$3"
DIR=$(cd "$3" && pwd)
CONTROLLER_PORT=${CONTROLLER_PORT:-$((PORT + 1))}
KAFKA_HOME=${TRIBUTARY_CACHE:-$HOME/.cache/tributary}/kafka-$VERSION
PIDFILE=$DIR/kafka.pid
OUT=$DIR/kafka.out

log() { printf '[kafka-reference %s] %s\n' "$VERSION" "$*"; }
die() { printf '[kafka-reference %s] ERROR: %s\n' "$VERSION" "$*" >&2; exit 1; }

running_pid() { # prints the pid if the broker from DIR is alive
  local pid
  [[ -f $PIDFILE ]] || return 1
  pid=$(<"$PIDFILE")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  # guard against pid reuse: it must be our java running kafka.Kafka
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "kafka.Kafka $DIR/server.properties" || return 1
  echo "$pid"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  local pid
  if pid=$(running_pid); then log "already running (pid $pid) on 127.0.0.1:$PORT"; return 0; fi
  for p in "$PORT" "$CONTROLLER_PORT"; do
    ! port_open "$p" || die "port $p on 127.0.0.1 is already in use"
  done
  "$HERE/fetch-kafka.sh" "$VERSION"

  cat >"$DIR/server.properties" <<EOF
# written by tributary tests/compat/kafka-reference.sh
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DIR/data
num.partitions=1
default.replication.factor=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
EOF

  if [[ ! -f $DIR/data/meta.properties ]]; then
    local cluster_id
    cluster_id=$("$KAFKA_HOME/bin/kafka-storage.sh" random-uuid)
    log "formatting $DIR/data (cluster id $cluster_id)"
    "$KAFKA_HOME/bin/kafka-storage.sh" format -t "$cluster_id" -c "$DIR/server.properties" >"$DIR/format.out" 2>&1 ||
      { cat "$DIR/format.out" >&2; die "kafka-storage.sh format failed"; }
  fi

  log "starting broker: 127.0.0.1:$PORT (controller 127.0.0.1:$CONTROLLER_PORT), log $OUT"
  export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx1G -Xms1G}
  export LOG_DIR=$DIR/logs
  # kafka-server-start.sh execs java, so $! is the broker JVM itself
  nohup "$KAFKA_HOME/bin/kafka-server-start.sh" "$DIR/server.properties" >"$OUT" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$PIDFILE"

  local deadline=$((SECONDS + ${START_TIMEOUT:-90}))
  until port_open "$PORT" && grep -q 'Kafka Server started' "$OUT"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      tail -n 40 "$OUT" >&2
      die "broker exited during startup"
    fi
    if ((SECONDS > deadline)); then
      tail -n 40 "$OUT" >&2
      stop
      die "broker not ready after ${START_TIMEOUT:-90}s"
    fi
    sleep 0.5
  done
  log "ready (pid $pid) on 127.0.0.1:$PORT"
}

stop() {
  local pid
  if ! pid=$(running_pid); then log "not running ($DIR)"; rm -f "$PIDFILE"; return 0; fi
  log "stopping broker pid $pid"
  kill -TERM "$pid"
  local deadline=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null; do
    if ((SECONDS > deadline)); then log "still alive after 60s: SIGKILL"; kill -KILL "$pid"; fi
    sleep 0.5
  done
  rm -f "$PIDFILE"
  log "stopped"
}

# ------------------------------------------------------------- cluster ----

clog() { log "$@" >&2; }

node_dir() { echo "$DIR/node-$1"; }
node_port() { echo $((PORT + $1 - 1)); }
node_controller_port() { echo $((PORT + NODES + $1 - 1)); }
node_rack() { local z=abc; echo "zone-${z:$((($1 - 1) % 3)):1}"; }

node_pid() { # node_pid I: prints the pid if node I from DIR is alive
  local nd pid
  nd=$(node_dir "$1")
  [[ -f $nd/kafka.pid ]] || return 1
  pid=$(<"$nd/kafka.pid")
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  # guard against pid reuse; right after start the pid may still be nohup or
  # the wrapper scripts before they exec java, so match the config path only
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF " $nd/server.properties" || return 1
  echo "$pid"
}

cluster_bootstrap() {
  local i list=()
  for ((i = 1; i <= NODES; i++)); do list+=("127.0.0.1:$(node_port "$i")"); done
  (IFS=,; echo "${list[*]}")
}

write_node_config() { # write_node_config I VOTERS RF MIN_ISR
  local i=$1 voters=$2 rf=$3 min_isr=$4 nd
  nd=$(node_dir "$i")
  mkdir -p "$nd"
  cat >"$nd/server.properties" <<EOF
# written by tributary tests/compat/kafka-reference.sh (cluster node $i of $NODES)
process.roles=broker,controller
node.id=$i
broker.rack=$(node_rack "$i")
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$(node_port "$i"),CONTROLLER://127.0.0.1:$(node_controller_port "$i")
advertised.listeners=PLAINTEXT://127.0.0.1:$(node_port "$i")
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$nd/data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$rf
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$min_isr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$min_isr
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
EOF
}

# kafka-broker-api-versions lists every broker in the metadata and asks each one
# for its API versions: ready when all NODES ids answer without an error.
cluster_answers() {
  local out i
  out=$(timeout -k 5 60 "$KAFKA_HOME/bin/kafka-broker-api-versions.sh" --bootstrap-server "$(cluster_bootstrap)" 2>/dev/null) || return 1
  for ((i = 1; i <= NODES; i++)); do
    grep -E "^127\.0\.0\.1:$(node_port "$i") \(id: $i rack: $(node_rack "$i")( isFenced: false)?\) -> \(" <<<"$out" >/dev/null || return 1
  done
}

# terminate_pids PID...: SIGTERM all at once, SIGKILL whatever is alive after 60 s.
# All at once: stopped one by one, the last nodes would lose their controller
# quorum and hang in controlled shutdown.
terminate_pids() {
  local pid deadline=$((SECONDS + 60)) killed="" alive
  kill -TERM "$@" 2>/dev/null || true
  while :; do
    alive=()
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive+=("$pid"); done
    ((${#alive[@]})) || break
    if ((SECONDS > deadline)) && [[ -z $killed ]]; then
      clog "still alive after 60s: SIGKILL ${alive[*]}"
      kill -KILL "${alive[@]}" 2>/dev/null || true
      killed=1
    fi
    sleep 0.5
  done
}

# During start-up, liveness is checked on the pids this script launched:
# right after the fork the child's cmdline is still this script's, so
# node_pid's cmdline check would see a live node as gone.
LAUNCHED=()
launched_alive() { kill -0 "${LAUNCHED[$1]}" 2>/dev/null; }

fail_start() { # fail_start NODE|"" MESSAGE: show the log tail(s), stop the launched nodes, exit
  local i
  for ((i = 1; i <= NODES; i++)); do
    [[ -z $1 || $1 == "$i" ]] || continue
    printf -- '--- node %s: %s\n' "$i" "$(node_dir "$i")/kafka.out" >&2
    tail -n 20 "$(node_dir "$i")/kafka.out" >&2 || true
  done
  clog "stopping the nodes started (pids ${LAUNCHED[*]})"
  terminate_pids "${LAUNCHED[@]}"
  for ((i = 1; i <= NODES; i++)); do rm -f "$(node_dir "$i")/kafka.pid"; done
  die "$2"
}

start_cluster() {
  local i pid nd running=0 timeout=${START_TIMEOUT:-180}
  [[ $NODES =~ ^[1-9][0-9]*$ ]] || die "NODES must be a positive number, got '$NODES'"
  for ((i = 1; i <= NODES; i++)); do node_pid "$i" >/dev/null && running=$((running + 1)); done
  if ((running == NODES)); then clog "cluster already running: $(cluster_bootstrap)"; cluster_bootstrap; return 0; fi
  ((running == 0)) || die "only $running of $NODES nodes from $DIR are running; stop-cluster first"
  for ((i = 1; i <= NODES; i++)); do
    for p in "$(node_port "$i")" "$(node_controller_port "$i")"; do
      ! port_open "$p" || die "port $p on 127.0.0.1 is already in use"
    done
  done
  "$HERE/fetch-kafka.sh" "$VERSION" >&2

  local rf=$((NODES < 3 ? NODES : 3)) min_isr voters=()
  min_isr=$((rf >= 3 ? 2 : 1))
  for ((i = 1; i <= NODES; i++)); do voters+=("$i@127.0.0.1:$(node_controller_port "$i")"); done
  for ((i = 1; i <= NODES; i++)); do
    write_node_config "$i" "$(IFS=,; echo "${voters[*]}")" "$rf" "$min_isr"
  done

  local cluster_id
  if [[ -f $DIR/cluster.id ]]; then
    cluster_id=$(<"$DIR/cluster.id")
  else
    cluster_id=$("$KAFKA_HOME/bin/kafka-storage.sh" random-uuid) || die "kafka-storage.sh random-uuid failed"
    echo "$cluster_id" >"$DIR/cluster.id"
  fi
  for ((i = 1; i <= NODES; i++)); do
    nd=$(node_dir "$i")
    [[ -f $nd/data/meta.properties ]] && continue
    clog "formatting node $i: $nd/data (cluster id $cluster_id)"
    "$KAFKA_HOME/bin/kafka-storage.sh" format -t "$cluster_id" -c "$nd/server.properties" >"$nd/format.out" 2>&1 ||
      { cat "$nd/format.out" >&2; die "kafka-storage.sh format failed for node $i"; }
  done

  export KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:--Xmx512m -Xms512m}
  # the quorum needs a majority of voters up, so all nodes start together
  for ((i = 1; i <= NODES; i++)); do
    nd=$(node_dir "$i")
    clog "starting node $i ($(node_rack "$i")): 127.0.0.1:$(node_port "$i") (controller 127.0.0.1:$(node_controller_port "$i")), log $nd/kafka.out"
    LOG_DIR=$nd/logs nohup "$KAFKA_HOME/bin/kafka-server-start.sh" "$nd/server.properties" >"$nd/kafka.out" 2>&1 </dev/null &
    LAUNCHED[i]=$!
    echo "$!" >"$nd/kafka.pid"
  done

  local t0=$SECONDS deadline=$((SECONDS + timeout)) started=() ready=0
  while ((ready < NODES)); do
    for ((i = 1; i <= NODES; i++)); do
      [[ -n ${started[i]:-} ]] && continue
      nd=$(node_dir "$i")
      launched_alive "$i" || fail_start "$i" "node $i exited during startup (log $nd/kafka.out)"
      if port_open "$(node_port "$i")" && grep -q 'Kafka Server started' "$nd/kafka.out"; then
        started[i]=1 ready=$((ready + 1))
        clog "node $i started ($ready/$NODES) after $((SECONDS - t0))s"
      fi
    done
    ((SECONDS <= deadline)) || fail_start "" "only $ready of $NODES nodes started after ${timeout}s"
    sleep 0.5
  done
  clog "checking every broker answers (kafka-broker-api-versions)"
  until cluster_answers; do
    for ((i = 1; i <= NODES; i++)); do launched_alive "$i" || fail_start "$i" "node $i exited during startup"; done
    ((SECONDS <= deadline)) || fail_start "" "not every broker answered kafka-broker-api-versions after ${timeout}s"
    sleep 1
  done
  clog "cluster ready after $((SECONDS - t0))s: $(cluster_bootstrap)"
  cluster_bootstrap
}

stop_cluster() {
  local i pid pids=() ids=()
  for ((i = 1; i <= NODES; i++)); do
    if pid=$(node_pid "$i"); then pids+=("$pid"); ids+=("$i"); fi
  done
  if ((${#pids[@]} == 0)); then
    clog "cluster not running ($DIR)"
  else
    clog "stopping nodes ${ids[*]} (pids ${pids[*]})"
    terminate_pids "${pids[@]}"
    clog "stopped"
  fi
  for ((i = 1; i <= NODES; i++)); do rm -f "$(node_dir "$i")/kafka.pid"; done
}

status_cluster() {
  local i pid up=0
  for ((i = 1; i <= NODES; i++)); do
    if pid=$(node_pid "$i"); then clog "node $i running (pid $pid) on 127.0.0.1:$(node_port "$i")"; up=$((up + 1))
    else clog "node $i not running"; fi
  done
  ((up == NODES))
}

case $ACTION in
  start) start ;;
  stop) stop ;;
  status) if pid=$(running_pid); then log "running (pid $pid)"; else log "not running"; exit 1; fi ;;
  start-cluster) start_cluster ;;
  stop-cluster) stop_cluster ;;
  status-cluster) status_cluster ;;
  *) usage ;;
esac
