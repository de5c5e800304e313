#!/usr/bin/env bash
# Exactly-once with the Java client, as Apache Kafka's own system tests check it: Kafka's
# TransactionalMessageCopier (org.apache.kafka.tools, 3.6.0) copies an input partition to
# an output topic in transactions that commit the consumed offsets with the output and
# abort at random, on the local 3-zone cluster; a read_committed console consumer must
# then read every input message exactly once, and the copier's group must have committed
# the input's end. Then zombie fencing (TxnFencing.java): a second producer of the same
# transactional id fences the first mid-transaction.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION=3.6.0
MESSAGES=3000
"$ROOT/tests/compat/fetch-kafka.sh" "$VERSION" >/dev/null
bin=$CACHE_DIR/kafka-$VERSION/bin
start_cluster
echo "==> Java $VERSION transactions (TransactionalMessageCopier) against $BOOTSTRAP"

passed=0
failed=0
check() { # check NAME COMMAND...
  local name=$1
  shift
  if "$@"; then
    echo "  PASS  $name"
    passed=$((passed + 1))
  else
    echo "  FAIL  $name"
    failed=$((failed + 1))
  fi
}

for topic in copier-input copier-output; do
  "$bin/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --create --topic "$topic" \
    --partitions 1 --replication-factor 3 >/dev/null
done
seq 0 $((MESSAGES - 1)) |
  "$bin/kafka-console-producer.sh" --bootstrap-server "$BOOTSTRAP" --topic copier-input \
    --producer-property acks=all >/dev/null

out=$(mktemp "${TMPDIR:-/tmp}/copier.XXXXXX")
copy() {
  timeout 300 "$bin/kafka-run-class.sh" org.apache.kafka.tools.TransactionalMessageCopier \
    --broker-list "$BOOTSTRAP" --input-topic copier-input --input-partition 0 \
    --output-topic copier-output --consumer-group copier --transactional-id copier-1 \
    --max-messages "$MESSAGES" --transaction-size 100 --enable-random-aborts \
    --use-group-metadata >"$out" 2>&1
}
check "TransactionalMessageCopier copies $MESSAGES messages with random aborts" copy

read_output() { # read_output ISOLATION: the output's values, sorted
  timeout 120 "$bin/kafka-console-consumer.sh" --bootstrap-server "$BOOTSTRAP" \
    --topic copier-output --from-beginning --isolation-level "$1" --timeout-ms 10000 2>/dev/null |
    sort -n
}
exactly_once() {
  local committed
  committed=$(read_output read_committed)
  [[ $committed == "$(seq 0 $((MESSAGES - 1)))" ]] || {
    echo "    read_committed: $(wc -l <<<"$committed") values, $(sort -un <<<"$committed" | wc -l) distinct"
    return 1
  }
}
check "read_committed reads each input message exactly once" exactly_once
offsets_committed() {
  "$bin/kafka-consumer-groups.sh" --bootstrap-server "$BOOTSTRAP" --describe --group copier 2>/dev/null |
    grep -Eq "copier-input +0 +$MESSAGES +$MESSAGES +0"
}
aborted_in_log() {
  local uncommitted
  uncommitted=$(read_output read_uncommitted | wc -l)
  echo "    read_uncommitted reads $uncommitted records (aborted transactions included)"
  ((uncommitted > MESSAGES))
}
check "records of aborted transactions stay in the log, hidden from read_committed" aborted_in_log
check "the copier's offsets committed with its transactions: $MESSAGES, lag 0" offsets_committed
fencing() {
  "$bin/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --create --topic fencing \
    --partitions 3 --replication-factor 3 >/dev/null
  timeout 120 java -cp "$CACHE_DIR/kafka-$VERSION/libs/*" "$PEERS_DIR/TxnFencing.java" \
    "$BOOTSTRAP" fencing >"$out.fencing" 2>&1
  local rc=$?
  grep -E "^(zombie|read_committed|FAIL)" "$out.fencing" | sed 's/^/    /'
  return $rc
}
check "a second producer of the transactional id fences the first mid-transaction" fencing
[[ $failed == 0 ]] && rm -f "$out" "$out.fencing" || echo "    copier output: $out"

report "Java $VERSION transactions" "$passed" "$failed" 0
[[ $failed == 0 ]]
