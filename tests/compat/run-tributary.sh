#!/usr/bin/env bash
# run-tributary.sh [KAFKA_VERSION...]
#
# Starts a Tributary broker (already built at target/release/tributary-broker, or
# $TRIBUTARY_BROKER) on a free loopback port with a scratch data directory, runs the
# users' walkthrough with each Kafka CLI version (default: 3.6.0 4.4.0), restarts the
# broker once in between to prove state survives, and stops it. Exits non-zero on any failure.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BROKER=${TRIBUTARY_BROKER:-$ROOT/target/release/tributary-broker}
VERSIONS=("$@")
[[ ${#VERSIONS[@]} -gt 0 ]] || VERSIONS=(3.6.0 4.4.0)

[[ -x $BROKER ]] || { echo "broker binary not found: $BROKER (cargo build --release)" >&2; exit 1; }

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
DATA=$(mktemp -d "${TMPDIR:-/tmp}/tributary-compat.XXXXXX")
LOG=$DATA.log
PID=

start_broker() {
  "$BROKER" --data-dir "$DATA" --listen "127.0.0.1:$PORT" >>"$LOG" 2>&1 &
  PID=$!
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "broker did not start; log:" >&2; cat "$LOG" >&2; exit 1
}

stop_broker() {
  if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"
    wait "$PID" || { echo "broker did not exit cleanly; log:" >&2; tail -50 "$LOG" >&2; return 1; }
  fi
  PID=
}

cleanup() {
  [[ -n $PID ]] && kill -9 "$PID" 2>/dev/null || true
  rm -rf "$DATA" "$LOG"
}
trap cleanup EXIT

status=0
for version in "${VERSIONS[@]}"; do
  start_broker
  echo "== Tributary on 127.0.0.1:$PORT, Kafka $version CLI"
  if ! "$HERE/walkthrough.sh" "$version" "127.0.0.1:$PORT"; then
    status=1
    echo "broker log tail:"; tail -30 "$LOG"
  fi
  stop_broker || status=1
done
exit $status
