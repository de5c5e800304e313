#!/usr/bin/env bash
# Exactly-once with the Java client, as Apache Kafka's own system tests check it: Kafka's
# TransactionalMessageCopier (org.apache.kafka.tools, 3.6.0) copies an input partition to
# an output topic in transactions that commit the consumed offsets with the output and
# abort at random, on the local 3-zone cluster; a read_committed console consumer must
# then read every input message exactly once, and the copier's group must have committed
# the input's end. Then zombie fencing (TxnFencing.java): a second producer of the same
# transactional id fences the first mid-transaction; and kafka-transactions.sh (list,
# describe, describe-producers, abort) on a transaction left open by a crashed producer.
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

# An open transaction whose producer crashed holds read_committed consumers back until its
# timeout; kafka-transactions.sh lists, describes and aborts it.
transactions() { "$bin/kafka-transactions.sh" --bootstrap-server "$BOOTSTRAP" "$@" 2>/dev/null; }
read_hanging() {
  timeout 60 "$bin/kafka-console-consumer.sh" --bootstrap-server "$BOOTSTRAP" --topic hanging \
    --from-beginning --isolation-level read_committed --timeout-ms 5000 2>/dev/null
}
abort_hanging() {
  "$bin/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" --create --topic hanging \
    --partitions 1 --replication-factor 3 >/dev/null
  timeout 60 java -cp "$CACHE_DIR/kafka-$VERSION/libs/*" "$PEERS_DIR/TxnHang.java" \
    "$BOOTSTRAP" hanging hang-test >/dev/null 2>&1 || return 1
  echo after | "$bin/kafka-console-producer.sh" --bootstrap-server "$BOOTSTRAP" --topic hanging >/dev/null
  [[ -z $(read_hanging) ]] || { echo "    read_committed read past the open transaction"; return 1; }
  transactions list | awk '$1 == "hang-test" && $4 == "Ongoing" { found = 1 } END { exit !found }' ||
    { echo "    list: $(transactions list)"; return 1; }
  transactions describe --transactional-id hang-test | grep -q "Ongoing.*hanging-0" ||
    { echo "    describe: $(transactions describe --transactional-id hang-test)"; return 1; }
  local producers
  producers=$(transactions describe-producers --topic hanging --partition 0)
  awk 'NR > 1 && $NF == 0 { found = 1 } END { exit !found }' <<<"$producers" ||
    { echo "    describe-producers: $producers"; return 1; }
  transactions abort --topic hanging --partition 0 --start-offset 0 >/dev/null ||
    { echo "    abort failed"; return 1; }
  [[ $(read_hanging) == after ]] || { echo "    read_committed after the abort: $(read_hanging)"; return 1; }
  echo "    list, describe, describe-producers found it open; after abort read_committed reads on"
}
check "kafka-transactions.sh finds a crashed producer's open transaction and aborts it" abort_hanging
[[ $failed == 0 ]] && rm -f "$out" "$out.fencing" || echo "    copier output: $out"

report "Java $VERSION transactions" "$passed" "$failed" 0
[[ $failed == 0 ]]
