#!/usr/bin/env bash
# clock.sh [KAFKA_VERSION]
#
# A broker whose wall clock jumps: a one-broker cluster runs under libfaketime (the wall
# clock only; the monotonic clock is left alone) while Kafka's verifiable producer
# (acks=all) and a verifiable consumer in a group run against it. The broker's clock jumps
# an hour ahead, then two hours back, then returns. Sessions and timeouts run on the
# monotonic clock, so nothing may notice: the consumer keeps its one assignment (no
# rebalance), the broker is never fenced, and every acknowledged record is consumed.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=../lib/ports.sh
source "$ROOT/tests/lib/ports.sh"
VERSION=${1:-3.6.0}
BROKER=${TRIBUTARY_BROKER:-$ROOT/target/release/tributary-broker}
BIN=${TRIBUTARY_CACHE:-$HOME/.cache/tributary}/kafka-$VERSION/bin
export VERIFY_LABEL=clock
say() { printf '[clock] %s\n' "$*"; }

LIBFAKETIME=$(find /usr/lib -name libfaketimeMT.so.1 2>/dev/null | head -n1)
if [[ -z $LIBFAKETIME ]]; then
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q faketime >/dev/null
  LIBFAKETIME=$(find /usr/lib -name libfaketimeMT.so.1 | head -n1)
fi
"$ROOT/tests/compat/fetch-kafka.sh" "$VERSION" >/dev/null
[[ -x $BROKER ]] || { echo "broker binary not found: $BROKER (cargo build --release)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tributary-clock.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  [[ -n ${KEEP_WORKDIR:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
fail() { say "FAIL: $*"; tail -n 20 "$WORK/broker.log" | sed 's/^/  | /'; exit 1; }

echo "+0" >"$WORK/offset"
PORT=$(free_base_port 1)
B=127.0.0.1:$PORT
LD_PRELOAD=$LIBFAKETIME FAKETIME_TIMESTAMP_FILE=$WORK/offset FAKETIME_CACHE_DURATION=1 \
  FAKETIME_DONT_FAKE_MONOTONIC=1 \
  "$BROKER" --data-dir "$WORK/data" --listen "$B" >/dev/null 2>"$WORK/broker.log" &
PIDS+=("$!")
for _ in $(seq 1 60); do
  timeout 30 "$BIN/kafka-topics.sh" --bootstrap-server "$B" --create --topic clock --partitions 3 \
    --replication-factor 1 --config message.timestamp.type=LogAppendTime >/dev/null 2>&1 && break
  sleep 1
done

timeout 300 "$BIN/kafka-verifiable-producer.sh" --bootstrap-server "$B" --topic clock --throughput 200 \
  --acks -1 --repeating-keys 30 >"$WORK/producer.jsonl" 2>"$WORK/producer.err" &
PRODUCER=$!
PIDS+=("$PRODUCER")
timeout 300 "$BIN/kafka-verifiable-consumer.sh" --bootstrap-server "$B" --topic clock --group-id clock-group \
  --reset-policy earliest --verbose >"$WORK/consumer.jsonl" 2>"$WORK/consumer.err" &
CONSUMER=$!
PIDS+=("$CONSUMER")
sleep 10
: >"$WORK/events"
for offset in +3600 -3600 +0; do
  echo "$offset" >"$WORK/offset"
  say "broker wall clock now real time ${offset}s"
  sleep 8
done

kill -TERM "$PRODUCER"
wait "$PRODUCER" || true
"$ROOT/tests/cluster/verify.py" caught-up "$WORK" || fail "the consumer did not catch up"
kill -TERM "$CONSUMER"
wait "$CONSUMER" || true
revoked=$(grep -c '"name":"partitions_revoked"' "$WORK/consumer.jsonl" || true)
assigned=$(grep -c '"name":"partitions_assigned"' "$WORK/consumer.jsonl" || true)
# One assignment at the start, and one revocation when the consumer leaves at the end.
[[ $assigned -eq 1 && $revoked -le 1 ]] || fail "the group rebalanced: $assigned assignments, $revoked revocations"
grep -qi "fencing" "$WORK/broker.log" && fail "the broker was fenced"
"$ROOT/tests/cluster/verify.py" check "$WORK" || fail "verification failed"
# The jumps reached the broker: its LogAppendTime stamps span them.
timeout 60 "$BIN/kafka-console-consumer.sh" --bootstrap-server "$B" --topic clock --from-beginning \
  --timeout-ms 5000 --property print.timestamp=true 2>/dev/null >"$WORK/stamps" || true
python3 - "$WORK/stamps" <<'PY' || fail "the broker's clock did not jump (libfaketime not in effect)"
import sys, time
stamps = [int(l.split("LogAppendTime:")[1].split()[0]) for l in open(sys.argv[1]) if "LogAppendTime:" in l]
now = time.time() * 1000
ahead = sum(1 for t in stamps if t > now + 50 * 60_000)
behind = sum(1 for t in stamps if t < now - 50 * 60_000)
print(f"[clock] {len(stamps)} records: {ahead} stamped an hour ahead, {behind} an hour behind")
sys.exit(0 if ahead and behind else 1)
PY
say "no rebalance, no fencing across jumps of +1 h and -2 h"
PIDS=()
kill -TERM "$(pgrep -f -- "--data-dir $WORK/data")" 2>/dev/null || true
say "PASS"
