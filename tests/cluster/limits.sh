#!/usr/bin/env bash
# limits.sh
#
# Runs tests/cluster/limits.py (idle connection floods, per-address limits, slow clients
# inside huge requests, oversized frames, deep pipelining) against a single broker on
# loopback, with max.connections.per.ip lowered so that the limit is reached.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../lib/ports.sh
source "$ROOT/tests/lib/ports.sh"
BROKER=${TRIBUTARY_BROKER:-$ROOT/target/release/tributary-broker}
[[ -x $BROKER ]] || { echo "broker binary not found: $BROKER (cargo build --release)" >&2; exit 1; }
PER_IP=3000

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tributary-limits.XXXXXX")
PID=
cleanup() {
  [[ -z $PID ]] || kill -9 "$PID" 2>/dev/null || true
  [[ -n ${KEEP_WORKDIR:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT

# Every connection costs the broker and this test a file descriptor each.
ulimit -n 40000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
PORT=$(free_base_port 1)
"$BROKER" --data-dir "$WORK/data" --listen "0.0.0.0:$PORT" --advertised-listener "127.0.0.1:$PORT" \
  --override max.connections.per.ip=$PER_IP --override queued.max.request.bytes=67108864 \
  >/dev/null 2>"$WORK/broker.log" &
PID=$!
for _ in $(seq 1 100); do
  python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' "$PORT" 2>/dev/null && break
  sleep 0.1
done
python3 "$HERE/limits.py" "127.0.0.1:$PORT" "$PID" "$PER_IP" || { tail -5 "$WORK/broker.log"; exit 1; }
kill -0 "$PID" || { echo "[limits] FAIL: the broker died"; exit 1; }
echo "[limits] PASS"
