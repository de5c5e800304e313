#!/usr/bin/env bash
# limits.sh [KAFKA_VERSION]
#
# Runs tests/cluster/limits.py (idle connection floods, per-address limits, slow clients
# inside huge requests, oversized frames, deep pipelining) against a single broker on
# loopback, with max.connections.per.ip lowered so that the limit is reached. Then Kafka's
# consumer reads a topic of 10,000 partitions: the broker's memory must stay bounded (each
# fetch answers at most fetch.max.bytes) while a fresh client keeps being served.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../lib/ports.sh
source "$ROOT/tests/lib/ports.sh"
BROKER=${TRIBUTARY_BROKER:-$ROOT/target/release/tributary-broker}
VERSION=${1:-3.6.0}
KAFKA_BIN=${TRIBUTARY_CACHE:-$HOME/.cache/tributary}/kafka-$VERSION/bin
WIDE_PARTITIONS=10000
RSS_LIMIT_MIB=400
[[ -x $BROKER ]] || { echo "broker binary not found: $BROKER (cargo build --release)" >&2; exit 1; }
PER_IP=3000

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tributary-limits.XXXXXX")
PID=
cleanup() {
  [[ -z $PID ]] || kill -9 "$PID" 2>/dev/null || true
  [[ -n ${KEEP_WORKDIR:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT

# Every connection costs the broker and this test a file descriptor each, and every
# partition one (its segment's log).
NEED_FILES=20000
if [[ $(ulimit -Hn) != unlimited && $(ulimit -Hn) -lt $NEED_FILES ]]; then
  ulimit -Hn $NEED_FILES 2>/dev/null || {
    echo "[limits] FAIL: $NEED_FILES open files needed, the hard limit is $(ulimit -Hn) (raise it as root)" >&2
    exit 1
  }
fi
ulimit -n "$(ulimit -Hn)"
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

# A consumer fetching from 10,000 partitions.
"$ROOT/tests/compat/fetch-kafka.sh" "$VERSION" >/dev/null
BOOTSTRAP=127.0.0.1:$PORT
rss_mib() { awk '/^VmRSS:/ { printf "%d", $2 / 1024 }' "/proc/$PID/status"; }
start=$(date +%s%3N)
timeout 300 "$KAFKA_BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --create --topic wide \
  --partitions $WIDE_PARTITIONS --replication-factor 1 >/dev/null
echo "[limits] topic of $WIDE_PARTITIONS partitions created in $(($(date +%s%3N) - start)) ms;" \
  "RSS $(rss_mib) MiB, $(find "/proc/$PID/fd" -mindepth 1 | wc -l) open files"
# 100,000 records of 1 KB, in batches spread over the partitions.
timeout 300 "$KAFKA_BIN/kafka-producer-perf-test.sh" --topic wide --num-records 100000 \
  --record-size 1000 --throughput -1 \
  --producer-props "bootstrap.servers=$BOOTSTRAP" acks=1 linger.ms=5 batch.size=16384 \
  >"$WORK/produce.txt" 2>&1 || { tail -5 "$WORK/produce.txt"; exit 1; }
with_data=$(find "$WORK/data" -path '*wide-*' -name '*.log' -size +0 | wc -l)
echo "[limits] 100,000 records written to $with_data partitions; RSS $(rss_mib) MiB"
[[ $with_data -ge 1000 ]] || { echo "[limits] FAIL: the records reached only $with_data partitions"; exit 1; }
(
  while kill -0 "$PID" 2>/dev/null; do rss_mib; echo; sleep 0.2; done
) >"$WORK/rss.txt" &
SAMPLER=$!
timeout 300 "$KAFKA_BIN/kafka-consumer-perf-test.sh" --bootstrap-server "$BOOTSTRAP" --topic wide \
  --messages 100000 --timeout 60000 --group wide-reader \
  >"$WORK/consume.txt" 2>&1 &
CONSUMER=$!
# A fresh client is served while the wide consumer reads.
sleep 3
python3 - "$PORT" <<'PY' || { kill "$CONSUMER" "$SAMPLER" 2>/dev/null; exit 1; }
import socket, struct, sys, time
start = time.monotonic()
with socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1) as s:
    client = b"limits-test"
    body = struct.pack(">hhih", 18, 0, 7, len(client)) + client
    s.sendall(struct.pack(">i", len(body)) + body)
    size = struct.unpack(">i", s.recv(4, socket.MSG_WAITALL))[0]
    s.recv(size, socket.MSG_WAITALL)
took = time.monotonic() - start
print(f"[limits] while the wide consumer reads, a fresh client is served in {took * 1000:.0f} ms")
sys.exit(took > 1)
PY
wait "$CONSUMER" || { tail -5 "$WORK/consume.txt"; kill "$SAMPLER"; exit 1; }
kill "$SAMPLER" 2>/dev/null || true
peak=$(sort -n "$WORK/rss.txt" | tail -n1)
consumed=$(awk -F', *' '$1 ~ /^[0-9][0-9][0-9][0-9]-/ { n = $5 } END { print n + 0 }' "$WORK/consume.txt")
echo "[limits] the consumer read $consumed records from $WIDE_PARTITIONS partitions;" \
  "broker RSS at most $peak MiB"
[[ $consumed -ge 100000 ]] || { echo "[limits] FAIL: consumed $consumed of 100000"; tail -5 "$WORK/consume.txt" | cut -c1-300; exit 1; }
# Its offsets, 10,000 partitions in one commit, were written.
if grep -q "commit failed\|Offset commit failed" "$WORK/consume.txt"; then
  echo "[limits] FAIL: committing the offsets of $WIDE_PARTITIONS partitions failed"
  grep -m1 "commit failed" "$WORK/consume.txt" | cut -c1-300
  exit 1
fi
committed=$(timeout 120 "$KAFKA_BIN/kafka-consumer-groups.sh" --bootstrap-server "$BOOTSTRAP" \
  --describe --group wide-reader 2>/dev/null | awk '$2 == "wide" { n += $4 } END { print n + 0 }')
echo "[limits] committed offsets of the wide group add up to $committed"
[[ $committed -eq 100000 ]] || { echo "[limits] FAIL: committed offsets add up to $committed, not 100000"; exit 1; }
[[ $peak -le $RSS_LIMIT_MIB ]] || { echo "[limits] FAIL: RSS $peak MiB above $RSS_LIMIT_MIB MiB"; exit 1; }
kill -0 "$PID" || { echo "[limits] FAIL: the broker died"; exit 1; }
echo "[limits] PASS"
