#!/usr/bin/env bash
# run-tributary.sh [--cluster] [KAFKA_VERSION...]
#
# Runs the users' walkthrough against Tributary with each Kafka CLI version (default:
# 3.6.0 4.4.0), on a free loopback port with a scratch data directory:
#   default    a single broker (target/release/tributary-broker, or $TRIBUTARY_BROKER),
#              restarted between versions to prove state survives a clean restart;
#   --cluster  a local 3-zone cluster (target/release/tributary-operator local), with
#              replication factor 3, checking replicas, ISR and zone spread.
# Exits non-zero on any failure; stops everything it started.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../lib/ports.sh
source "$ROOT/tests/lib/ports.sh"
MODE=single
if [[ ${1:-} == --cluster ]]; then MODE=cluster; shift; fi
VERSIONS=("$@")
[[ ${#VERSIONS[@]} -gt 0 ]] || VERSIONS=(3.6.0 4.4.0)
BROKER=${TRIBUTARY_BROKER:-$ROOT/target/release/tributary-broker}
OPERATOR=${TRIBUTARY_OPERATOR:-$ROOT/target/release/tributary-operator}


DATA=$(mktemp -d "${TMPDIR:-/tmp}/tributary-compat.XXXXXX")
LOG=$DATA.log
PID=
cleanup() {
  [[ -n $PID ]] && kill -9 "$PID" 2>/dev/null || true
  pkill -9 -f "tributary-broker.*$DATA" 2>/dev/null || true
  rm -rf "$DATA" "$LOG"
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

start() {
  if [[ $MODE == single ]]; then
    [[ -x $BROKER ]] || { echo "broker binary not found: $BROKER (cargo build --release)" >&2; exit 1; }
    "$BROKER" --data-dir "$DATA" --listen "127.0.0.1:$PORT" >>"$LOG" 2>&1 &
    PID=$!
    wait_port "$PORT" || { echo "broker did not start; log:" >&2; cat "$LOG" >&2; exit 1; }
    BOOTSTRAP=127.0.0.1:$PORT
  else
    [[ -x $OPERATOR ]] || { echo "operator binary not found: $OPERATOR (cargo build --release)" >&2; exit 1; }
    "$OPERATOR" local --zones 3 --brokers-per-zone 1 --data-dir "$DATA" --base-port "$PORT" >>"$LOG" 2>&1 &
    PID=$!
    for _ in $(seq 1 300); do
      BOOTSTRAP=$(sed -n 's/^bootstrap servers: //p' "$LOG" | tail -n1)
      [[ -n $BOOTSTRAP ]] && break
      kill -0 "$PID" 2>/dev/null || break
      sleep 0.1
    done
    [[ -n $BOOTSTRAP ]] || { echo "cluster did not start; log:" >&2; cat "$LOG" >&2; exit 1; }
    export BROKER_ZONES=1:zone-a,2:zone-b,3:zone-c
  fi
}

stop() {
  if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"
    wait "$PID" || { echo "did not exit cleanly; log:" >&2; tail -50 "$LOG" >&2; PID=; return 1; }
  fi
  PID=
}

if [[ $MODE == single ]]; then PORT=$(free_base_port 1); RF=1; else PORT=$(free_base_port 3); RF=3; fi
status=0
for version in "${VERSIONS[@]}"; do
  start
  echo "== Tributary ($MODE) at $BOOTSTRAP, Kafka $version CLI"
  if ! "$HERE/walkthrough.sh" "$version" "$BOOTSTRAP" "$RF"; then
    status=1
    echo "log tail:"; tail -30 "$LOG"
    [[ $MODE == cluster ]] && for f in "$DATA"/broker-*/broker.log; do echo "-- $f"; tail -15 "$f"; done
  fi
  stop || status=1
done

# The cluster keeps its data across restarts of the launcher.
if [[ $MODE == cluster && $status == 0 ]]; then
  version=${VERSIONS[0]}
  BIN=${TRIBUTARY_CACHE:-$HOME/.cache/tributary}/kafka-$version/bin
  start
  timeout 60 "$BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --create --topic persist --partitions 3 --replication-factor 3 >/dev/null
  printf 'one\ntwo\nthree\n' | timeout 60 "$BIN/kafka-console-producer.sh" --bootstrap-server "$BOOTSTRAP" --topic persist --producer-property acks=all >/dev/null
  stop || status=1
  start
  got=$(timeout 60 "$BIN/kafka-console-consumer.sh" --bootstrap-server "$BOOTSTRAP" --topic persist --from-beginning --max-messages 3 2>/dev/null | sort | tr '\n' ' ')
  stop || status=1
  if [[ $got == "one three two " ]]; then
    echo "PASS  records survive a restart of the local cluster"
  else
    echo "FAIL  records after a restart of the local cluster: '$got'"
    status=1
  fi
fi
exit $status
