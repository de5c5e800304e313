#!/usr/bin/env bash
# failover.sh [KAFKA_VERSION]
#
# Kafka's own verifiable producer (acks=all) and verifiable consumer run against a local
# 3-zone Tributary cluster (topic: 3 partitions, replication factor 3, min.insync.replicas=2)
# while partition leaders are killed with `kill -9` (the launcher restarts them) and another
# broker is paused with SIGSTOP and resumed. Then every acknowledged record must have been
# consumed, with the value it was written with, in offset order per partition. Prints the
# time from each kill to the next acknowledged write of that partition.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VERSION=${1:-3.6.0}
BIN=${TRIBUTARY_CACHE:-$HOME/.cache/tributary}/kafka-$VERSION/bin
KILL_ROUNDS=${KILL_ROUNDS:-3}
TOPIC=verify

"$ROOT/tests/compat/fetch-kafka.sh" "$VERSION" >/dev/null

# shellcheck source=local-cluster.sh
source "$HERE/local-cluster.sh"
say() { printf '[failover] %s\n' "$*"; }
now_ms() { date +%s%3N; }

start_local_cluster || exit 1
say "cluster up: $B"

timeout 60 "$BIN/kafka-topics.sh" --bootstrap-server "$B" --create --topic "$TOPIC" --partitions 3 \
  --replication-factor 3 --config min.insync.replicas=2 >/dev/null
leader_of() { python3 "$HERE/leader.py" "$B" "$TOPIC" "$1"; }

# Keyed records (keys 0..29) keep every partition busy: with null keys the producer's
# partitioner steers around a partition whose leader just failed, which would hide failover.
timeout 600 "$BIN/kafka-verifiable-producer.sh" --bootstrap-server "$B" --topic "$TOPIC" --throughput 300 \
  --acks -1 --repeating-keys 30 >"$WORK/producer.jsonl" 2>"$WORK/producer.err" &
PRODUCER=$!
PIDS+=("$PRODUCER")
timeout 600 "$BIN/kafka-verifiable-consumer.sh" --bootstrap-server "$B" --topic "$TOPIC" --group-id verify-group \
  --reset-policy earliest --verbose >"$WORK/consumer.jsonl" 2>"$WORK/consumer.err" &
CONSUMER=$!
PIDS+=("$CONSUMER")
sleep 5

: >"$WORK/events"
for round in $(seq 0 $((KILL_ROUNDS - 1))); do
  p=$((round % 3))
  leader=$(leader_of "$p")
  pid=$(broker_pid "$leader")
  t=$(now_ms)
  kill -9 "$pid"
  echo "kill $p $leader $t" >>"$WORK/events"
  say "round $round: kill -9 broker $leader (leader of partition $p)"
  sleep 5
done
p=1
leader=$(leader_of "$p")
pid=$(broker_pid "$leader")
t=$(now_ms)
kill -STOP "$pid"
echo "stop $p $leader $t" >>"$WORK/events"
say "SIGSTOP broker $leader (leader of partition $p) for 4s"
sleep 4
kill -CONT "$pid"
sleep 5

kill -TERM "$PRODUCER"; wait "$PRODUCER" || true
say "producer stopped; waiting for the consumer to catch up"
"$HERE/verify.py" caught-up "$WORK" || { say "consumer did not catch up"; exit 1; }
kill -TERM "$CONSUMER"; wait "$CONSUMER" || true

"$HERE/verify.py" check "$WORK"

stop_local_cluster
say "PASS"
