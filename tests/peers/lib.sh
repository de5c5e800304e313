# shellcheck shell=bash
# Shared by the peer-suite scripts (sourced, not run): Tributary brokers to run a suite
# against, and the comparison of a suite's failures with the ones the README lists.

PEERS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$PEERS_DIR/../.." && pwd)
export CACHE_DIR=${TRIBUTARY_CACHE:-$HOME/.cache/tributary}
BROKER_BIN=${TRIBUTARY_BROKER:-$ROOT/target/release/tributary-broker}
OPERATOR_BIN=${TRIBUTARY_OPERATOR:-$ROOT/target/release/tributary-operator}
# shellcheck source=../lib/ports.sh
source "$ROOT/tests/lib/ports.sh"

PEER_PIDS=()
PEER_DIRS=()
peers_cleanup() {
  for pid in "${PEER_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  # The local cluster's brokers, named by their data directories.
  for dir in "${PEER_DIRS[@]}"; do pkill -9 -f "tributary-broker.*$dir" 2>/dev/null || true; done
  for dir in "${PEER_DIRS[@]}"; do rm -rf "$dir" "$dir.log"; done
  PEER_PIDS=()
  PEER_DIRS=()
}
trap peers_cleanup EXIT

wait_port() {
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# start_broker [--override k=v ...]: a single broker with a fresh data directory; sets
# BOOTSTRAP.
start_broker() {
  local dir port
  dir=$(mktemp -d "${TMPDIR:-/tmp}/tributary-peers.XXXXXX")
  port=$(free_base_port 1)
  "$BROKER_BIN" --data-dir "$dir" --listen "127.0.0.1:$port" "$@" >"$dir.log" 2>&1 &
  PEER_PIDS+=($!)
  disown
  PEER_DIRS+=("$dir")
  wait_port "$port" || { echo "broker did not start:" >&2; cat "$dir.log" >&2; return 1; }
  BOOTSTRAP=127.0.0.1:$port
}

# start_cluster: the local 3-zone cluster (one broker per zone); sets BOOTSTRAP.
start_cluster() {
  local dir port
  dir=$(mktemp -d "${TMPDIR:-/tmp}/tributary-peers.XXXXXX")
  port=$(free_base_port 4)
  "$OPERATOR_BIN" local --zones 3 --brokers-per-zone 1 --data-dir "$dir" --base-port "$port" >"$dir.log" 2>&1 &
  PEER_PIDS+=($!)
  disown
  PEER_DIRS+=("$dir")
  BOOTSTRAP=
  for _ in $(seq 1 300); do
    BOOTSTRAP=$(sed -n 's/^bootstrap servers: //p' "$dir.log" | tail -n1)
    [[ -n $BOOTSTRAP ]] && return 0
    sleep 0.1
  done
  echo "cluster did not start:" >&2
  cat "$dir.log" >&2
  return 1
}

# report SUITE PASSED FAILED SKIPPED: one summary line, collected by run.sh.
report() {
  printf 'SUITE %-28s passed=%-4s failed=%-4s skipped=%s\n' "$1" "$2" "$3" "$4"
}

# check_failures SUITE KNOWN FAILED: every failed test must be one the README lists for
# SUITE (KNOWN and FAILED are newline-separated names). Listed tests that passed are
# reported, so that the list only shrinks.
check_failures() {
  local suite=$1 known=$2 failed=$3 status=0 name
  while IFS= read -r name; do
    [[ -z $name ]] && continue
    if grep -qxF "$name" <<<"$known"; then
      echo "  known failure: $name"
    else
      echo "  UNEXPECTED FAILURE: $name"
      status=1
    fi
  done <<<"$failed"
  while IFS= read -r name; do
    [[ -z $name ]] && continue
    grep -qxF "$name" <<<"$failed" || echo "  listed as failing but passed: $name ($suite)"
  done <<<"$known"
  return $status
}
