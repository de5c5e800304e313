# shellcheck shell=bash
# Sourced by the cluster scripts that run Kafka's tools against the local 3-zone cluster
# (`tributary-operator local`): a work directory removed at exit (kept with KEEP_WORKDIR=1),
# the cluster's start, and its brokers' processes.
#
# After sourcing: ROOT (the repository), WORK, DATA, PIDS (killed at exit).

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib/ports.sh
source "$ROOT/tests/lib/ports.sh"
OPERATOR=${TRIBUTARY_OPERATOR:-$ROOT/target/release/tributary-operator}
[[ -x $OPERATOR ]] || { echo "operator binary not found: $OPERATOR (cargo build --release)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tributary-$(basename "$0" .sh).XXXXXX")
DATA=$WORK/data
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  pkill -9 -f "tributary-broker.*$DATA" 2>/dev/null || true
  [[ -n ${KEEP_WORKDIR:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT

# fail MESSAGE: says so (with the script's `say`), keeps the work directory for a look.
fail() {
  say "FAIL: $*"
  KEEP_WORKDIR=1
  say "logs kept in $WORK"
  exit 1
}

# start_local_cluster: three zones of one broker each; sets CLUSTER (the launcher's pid)
# and B (the bootstrap servers).
start_local_cluster() {
  local port
  port=$(free_base_port 3)
  "$OPERATOR" local --zones 3 --brokers-per-zone 1 --data-dir "$DATA" --base-port "$port" >"$WORK/cluster.log" 2>&1 &
  CLUSTER=$!
  PIDS+=("$CLUSTER")
  B=
  for _ in $(seq 1 300); do
    B=$(sed -n 's/^bootstrap servers: //p' "$WORK/cluster.log" | tail -n1)
    [[ -n $B ]] && return 0
    sleep 0.1
  done
  cat "$WORK/cluster.log"
  return 1
}

# broker_pid ID: the process of broker ID (the launcher restarts it when killed).
broker_pid() { pgrep -f -- "tributary-broker.*$DATA/broker-$1 " || pgrep -f -- "tributary-broker.*$DATA/broker-$1\$"; }

# stop_local_cluster: a clean stop of the launcher and its brokers.
stop_local_cluster() {
  kill -TERM "$CLUSTER"
  wait "$CLUSTER" || { echo "cluster did not stop cleanly" >&2; tail -20 "$WORK/cluster.log" >&2; return 1; }
  PIDS=()
}
