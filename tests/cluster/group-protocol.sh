#!/usr/bin/env bash
# group-protocol.sh [KAFKA_VERSION]
#
# KIP-848 consumer groups with the Java client (group.protocol=consumer, Kafka 4.x):
# Kafka's verifiable producer (acks=all, keyed) writes to a 6-partition topic of a local
# 3-zone cluster while three verifiable consumers of one group come and go: two join the
# first, the group's coordinator is killed with kill -9 (the launcher restarts it), one
# consumer leaves. Then every acknowledged record must have been consumed, no partition
# may have been held by two consumers at once, the group must be Stable with the two
# remaining members, and its committed offsets must reach the log end. Kafka's own
# record serde must read every record the coordinator stored in __consumer_offsets.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VERSION=${1:-4.4.0}
CACHE=${TRIBUTARY_CACHE:-$HOME/.cache/tributary}
BIN=$CACHE/kafka-$VERSION/bin
TOPIC=kip848
GROUP=kip848-group
MESSAGES=${MESSAGES:-12000}

"$ROOT/tests/compat/fetch-kafka.sh" "$VERSION" >/dev/null

# shellcheck source=local-cluster.sh
source "$HERE/local-cluster.sh"
say() { printf '[group-protocol] %s\n' "$*"; }
now_ms() { date +%s%3N; }

start_local_cluster || exit 1
say "cluster up: $B"

timeout 60 "$BIN/kafka-topics.sh" --bootstrap-server "$B" --create --topic "$TOPIC" --partitions 6 \
  --replication-factor 3 --config min.insync.replicas=2 >/dev/null
groups() { timeout 60 "$BIN/kafka-consumer-groups.sh" --bootstrap-server "$B" --group "$GROUP" "$@" 2>/dev/null; }

timeout 600 "$BIN/kafka-verifiable-producer.sh" --bootstrap-server "$B" --topic "$TOPIC" --throughput 400 \
  --max-messages "$MESSAGES" --acks -1 --repeating-keys 60 >"$WORK/producer.jsonl" 2>"$WORK/producer.err" &
PRODUCER=$!
PIDS+=("$PRODUCER")

CONSUMERS=()
consume() { # consume N: starts consumer N, logging to WORK/consumer-N.jsonl
  timeout 600 "$BIN/kafka-verifiable-consumer.sh" --bootstrap-server "$B" --topic "$TOPIC" \
    --group-id "$GROUP" --group-protocol consumer --reset-policy earliest --verbose \
    >"$WORK/consumer-$1.jsonl" 2>"$WORK/consumer-$1.err" &
  CONSUMERS[$1]=$!
  PIDS+=("$!")
}

consume 1
sleep 5
consume 2
consume 3
say "three consumers (group.protocol=consumer) in group $GROUP"
sleep 6

coordinator=$(groups --describe --state | awk -v g="$GROUP" '$1 == g { gsub(/[()]/, "", $3); print $3 }')
[[ $coordinator =~ ^[0-9]+$ ]] || fail "no coordinator in: $(groups --describe --state)"
: >"$WORK/events"
echo "kill coordinator $coordinator $(now_ms)" >>"$WORK/events"
kill -9 "$(broker_pid "$coordinator")"
say "kill -9 broker $coordinator (the group's coordinator)"
sleep 8

kill -TERM "${CONSUMERS[3]}"
wait "${CONSUMERS[3]}" || true
echo "leave consumer 3 $(now_ms)" >>"$WORK/events"
say "consumer 3 left the group"

wait "$PRODUCER" || fail "the producer failed: $(tail -3 "$WORK/producer.err")"
say "producer done; waiting for the group to consume everything"
"$HERE/verify_groups.py" caught-up "$WORK" || fail "the group did not consume every acknowledged record"

stable() { groups --describe --state | awk -v g="$GROUP" '$1 == g && $(NF-1) == "Stable" && $NF == 2 { ok = 1 } END { exit !ok }'; }
caught_up_commits() {
  groups --describe | awk -v t="$TOPIC" '$2 == t { n++; if ($6 != 0) lag = 1 } END { exit !(n == 6 && !lag) }'
}
for _ in $(seq 1 30); do stable && caught_up_commits && break; sleep 1; done
stable || fail "group not Stable with 2 members: $(groups --describe --state)"
caught_up_commits || fail "committed offsets short of the log end: $(groups --describe)"
groups --describe --members --verbose | sed 's/^/    /'

kill -TERM "${CONSUMERS[1]}" "${CONSUMERS[2]}"
wait "${CONSUMERS[1]}" "${CONSUMERS[2]}" || true
"$HERE/verify_groups.py" check "$WORK" || fail "verification failed"

# The group as stored: Kafka's own record serde must read every record of the topic.
java -cp "$CACHE/kafka-$VERSION/libs/*" "$HERE/DecodeOffsets.java" "$B" >"$WORK/decoded" 2>"$WORK/decoded.err" ||
  fail "Kafka's serde cannot read __consumer_offsets: $(grep -m3 unreadable "$WORK/decoded")"
grep -q "ConsumerGroupCurrentMemberAssignmentKey$" "$WORK/decoded" || fail "no stored member assignment: $(cat "$WORK/decoded")"
say "Kafka's record serde reads all of __consumer_offsets: $(paste -sd, "$WORK/decoded" | sed 's/,/, /g')"

stop_local_cluster
say "PASS"
