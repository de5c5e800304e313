#!/usr/bin/env bash
# seed-corpus.sh
#
# Records real clients' requests as seeds for the `request` fuzz target: a broker whose
# advertised address is a recording relay (capture.py), and the users' walkthrough run
# through it with the Apache Kafka 3.6.0 and 4.4.0 command-line tools. Every connection's
# byte stream lands in fuzz/seeds/request/ (committed; rerun to refresh).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
# shellcheck source=../tests/lib/ports.sh
source "$ROOT/tests/lib/ports.sh"
BROKER=${TRIBUTARY_BROKER:-$ROOT/target/release/tributary-broker}
OUT=$HERE/seeds/request
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tributary-seeds.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(free_base_port 2)
RELAY=$((PORT + 1))
"$BROKER" --data-dir "$WORK/data" --listen "127.0.0.1:$PORT" --advertised-listener "127.0.0.1:$RELAY" \
  2>"$WORK/broker.log" >/dev/null &
PIDS+=("$!")
python3 "$HERE/capture.py" "$RELAY" "$PORT" "$WORK/streams" &
PIDS+=("$!")
sleep 2
for version in 3.6.0 4.4.0; do
  "$ROOT/tests/compat/walkthrough.sh" "$version" "127.0.0.1:$RELAY" | tail -n1
  "$ROOT/tests/compat/fetch-kafka.sh" "$version" >/dev/null
  bin=${TRIBUTARY_CACHE:-$HOME/.cache/tributary}/kafka-$version/bin
  "$bin/kafka-producer-perf-test.sh" --topic "perf-$version" --num-records 300 --record-size 100 \
    --throughput -1 --producer-props bootstrap.servers="127.0.0.1:$RELAY" acks=all compression.type=lz4 >/dev/null
  "$bin/kafka-consumer-groups.sh" --bootstrap-server "127.0.0.1:$RELAY" --describe --all-groups >/dev/null 2>&1 || true
  "$bin/kafka-configs.sh" --bootstrap-server "127.0.0.1:$RELAY" --describe --all --entity-type brokers >/dev/null 2>&1 || true
done
sleep 1
rm -rf "$OUT"
mkdir -p "$OUT"
# Keep each distinct stream once, named by its content.
for f in "$WORK"/streams/*; do
  cp "$f" "$OUT/$(sha1sum "$f" | cut -c1-16)"
done
echo "$(find "$OUT" -type f | wc -l) seed streams, $(du -sh "$OUT" | cut -f1), in $OUT"
