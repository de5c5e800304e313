#!/usr/bin/env bash
# streams-eos.sh [KAFKA_VERSION]
#
# Kafka Streams with processing.guarantee=exactly_once_v2 on the local 3-zone cluster:
# the word-count example (tests/streams/WordCount.java: a repartition topic, a state
# store with a compacted changelog, transactions that commit its input offsets with its
# output) counts the words of lines produced over about 25 s, while the broker that
# coordinates its group is killed with kill -9 (the launcher restarts it), then the one
# leading its output's first partition. A read_committed consumer of the output must then
# see each word's count rise one by one, never repeating (no update counted twice), and
# end at the word's count in the input.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VERSION=${1:-4.4.0}
CACHE=${TRIBUTARY_CACHE:-$HOME/.cache/tributary}
BIN=$CACHE/kafka-$VERSION/bin
STREAMS=$CACHE/kafka-streams-$VERSION
APP=wordcount
INPUT=streams-plaintext-input
OUTPUT=streams-wordcount-output
LINES=${LINES:-12000}

"$ROOT/tests/compat/fetch-kafka.sh" "$VERSION" >/dev/null
"$ROOT/tests/streams/fetch-streams.sh" "$VERSION" >/dev/null

# shellcheck source=local-cluster.sh
source "$HERE/local-cluster.sh"
say() { printf '[streams-eos] %s\n' "$*"; }

start_local_cluster || exit 1
say "cluster up: $B"
for topic in "$INPUT" "$OUTPUT"; do
  timeout 60 "$BIN/kafka-topics.sh" --bootstrap-server "$B" --create --topic "$topic" --partitions 3 \
    --replication-factor 3 --config min.insync.replicas=2 >/dev/null
done

java -cp "$CACHE/kafka-$VERSION/libs/*:$STREAMS/libs/*:$STREAMS/classes" \
  "-Dlog4j2.configurationFile=$CACHE/kafka-$VERSION/config/tools-log4j2.properties" \
  WordCount "$B" "$APP" "$WORK/state" "$INPUT" "$OUTPUT" >"$WORK/streams.log" 2>&1 &
APP_PID=$!
PIDS+=("$APP_PID")
for _ in $(seq 1 120); do
  grep -q -- "-> RUNNING" "$WORK/streams.log" && break
  sleep 0.5
done
grep -q -- "-> RUNNING" "$WORK/streams.log" || fail "the application did not start: $(tail -5 "$WORK/streams.log")"
say "word count running (exactly_once_v2, 2 threads)"

# LINES lines of six words, fed to the producer at 500 lines a second so that the kills
# land while transactions are open; also kept in WORK/input.
python3 - "$LINES" "$WORK/input" <<'PY' |
import random, sys, time
rng = random.Random(848)
words = [f"word{i:02d}" for i in range(40)]
with open(sys.argv[2], "w") as kept:
    for i in range(int(sys.argv[1])):
        line = " ".join(rng.choice(words) for _ in range(6))
        print(line, flush=True)
        kept.write(line + "\n")
        if i % 50 == 49:
            time.sleep(0.1)
PY
  timeout 300 "$BIN/kafka-console-producer.sh" --bootstrap-server "$B" --topic "$INPUT" \
    --producer-property acks=all >/dev/null &
PRODUCER=$!
PIDS+=("$PRODUCER")
kill_broker() { # kill_broker ID WHY
  [[ $1 =~ ^[0-9]+$ ]] || fail "no broker to kill ($2)"
  kill -9 "$(broker_pid "$1")"
  say "kill -9 broker $1 ($2)"
}
groups() { timeout 60 "$BIN/kafka-consumer-groups.sh" --bootstrap-server "$B" --group "$APP" "$@" 2>/dev/null; }
leader_of_output() {
  timeout 60 "$BIN/kafka-topics.sh" --bootstrap-server "$B" --describe --topic "$OUTPUT" 2>/dev/null |
    awk '$3 == "Partition:" && $4 == 0 { print $6 }'
}

sleep 6
coordinator=$(groups --describe --state | awk -v g="$APP" '$1 == g { gsub(/[()]/, "", $3); print $3 }')
kill_broker "$coordinator" "the application's group coordinator"
sleep 8
kill_broker "$(leader_of_output)" "leader of $OUTPUT-0"
wait "$PRODUCER" || fail "the producer failed"
say "$(wc -l <"$WORK/input") lines produced"

read_output() { # read_output ISOLATION: "word count" lines of the output, in offset order per partition
  timeout 120 "$BIN/kafka-console-consumer.sh" --bootstrap-server "$B" --topic "$OUTPUT" \
    --from-beginning --isolation-level "$1" --timeout-ms 10000 --formatter-property print.key=true \
    --formatter-property key.separator=' ' \
    --value-deserializer org.apache.kafka.common.serialization.LongDeserializer 2>/dev/null
}
expected=$(tr ' ' '\n' <"$WORK/input" | sort | uniq -c | awk '{ print $2, $1 }' | sort)
settled=
for _ in $(seq 1 20); do
  if ! kill -0 "$APP_PID" 2>/dev/null; then fail "the application stopped: $(tail -20 "$WORK/streams.log")"; fi
  read_output read_committed >"$WORK/committed"
  if [[ $(awk '{ last[$1] = $2 } END { for (w in last) print w, last[w] }' "$WORK/committed" | sort) == "$expected" ]]; then
    settled=1
    break
  fi
  sleep 3
done
[[ -n $settled ]] || fail "the final counts differ from the input's: $(diff <(echo "$expected") \
  <(awk '{ last[$1] = $2 } END { for (w in last) print w, last[w] }' "$WORK/committed" | sort) | head -5)"

# Each word's updates arrive on one partition, in order: 1, 2, 3, ... with none repeated.
awk '{ if ($2 != seen[$1] + 1) { print "count of " $1 " went from " seen[$1] + 0 " to " $2; bad = 1; exit } seen[$1] = $2 }
     END { exit bad }' "$WORK/committed" || fail "an update was lost or counted twice: $(awk '{ if ($2 != seen[$1] + 1) { print $0; exit } seen[$1] = $2 }' "$WORK/committed")"
words=$(wc -l <"$WORK/input")
updates=$(wc -l <"$WORK/committed")
uncommitted=$(read_output read_uncommitted | wc -l)
say "$((words * 6)) words in $words lines counted exactly once: $updates committed updates, each word's rising by one;" \
  "$((uncommitted - updates)) records of aborted transactions hidden from read_committed"
# Evidence that the kills landed inside transactions: writes the killed leaders refused.
refused=$(grep -c "Received invalid metadata error in produce request" "$WORK/streams.log" || true)
aborts=$(grep -c "Transiting to abortable error\|TaskMigratedException\|ProducerFencedException" "$WORK/streams.log" || true)
say "inside its transactions the application retried $refused writes refused by a killed leader; $aborts aborts"

kill -TERM "$APP_PID"
wait "$APP_PID" || true
stop_local_cluster
say "PASS"
