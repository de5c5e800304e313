#!/usr/bin/env bash
# kafka-reference.sh start|stop|status KAFKA_VERSION DIR PORT
#
# Runs a real single-node Apache Kafka broker in KRaft combined mode
# (process.roles=broker,controller) from the jars fetch-kafka.sh lays out:
# the reference for Tributary's compatibility walkthrough and benchmarks.
#
#   start   fetch the jars if needed, write DIR/server.properties, format
#           DIR/data with a random cluster id (first start only), start the
#           broker in the background and wait until it serves requests.
#           Client listener 127.0.0.1:PORT, controller 127.0.0.1:CONTROLLER_PORT.
#   stop    SIGTERM the broker started from DIR (SIGKILL after 60 s).
#   status  exit 0 if the broker started from DIR is running.
#
# Files: DIR/server.properties, DIR/data (log dirs), DIR/kafka.out (broker log),
#        DIR/kafka.pid.
# Environment: TRIBUTARY_CACHE (see fetch-kafka.sh), CONTROLLER_PORT
# (default PORT+1), KAFKA_HEAP_OPTS (default -Xmx1G -Xms1G),
# START_TIMEOUT seconds (default 90).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

usage() { echo "usage: $0 start|stop|status KAFKA_VERSION DIR PORT" >&2; exit 2; }
[[ $# -eq 4 ]] || usage
ACTION=$1 VERSION=$2 PORT=$4
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

case $ACTION in
  start) start ;;
  stop) stop ;;
  status) if pid=$(running_pid); then log "running (pid $pid)"; else log "not running"; exit 1; fi ;;
  *) usage ;;
esac
