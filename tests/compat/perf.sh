#!/usr/bin/env bash
# perf.sh BOOTSTRAP LABEL
#
# Produce/consume throughput with Kafka's own perf tools against BOOTSTRAP, on
# a fresh topic (deleted afterwards). Tool output and progress go to stderr;
# stdout gets exactly two parseable lines:
#   LABEL produce_mb_s=.. produce_rec_s=.. avg_ms=.. p50_ms=.. p95_ms=.. p99_ms=.. p999_ms=.. max_ms=.. records=.. record_size=.. acks=all
#   LABEL consume_mb_s=.. consume_rec_s=.. fetch_mb_s=.. fetch_rec_s=.. records=..
#
# Environment (defaults in brackets):
#   KAFKA_VERSION [4.4.0]  CLI version (fetched by fetch-kafka.sh)
#   RECORDS [200000]  RECORD_SIZE [1024]  PARTITIONS [1]  REPLICATION_FACTOR [1]
#   PERF_TIMEOUT [600] seconds per tool run;  KEEP_TOPIC=1 keeps the topic
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

[[ $# -eq 2 ]] || { echo "usage: $0 BOOTSTRAP LABEL" >&2; exit 2; }
B=$1 LABEL=$2
VERSION=${KAFKA_VERSION:-4.4.0}
RECORDS=${RECORDS:-200000}
RECORD_SIZE=${RECORD_SIZE:-1024}
PARTITIONS=${PARTITIONS:-1}
RF=${REPLICATION_FACTOR:-1}
PERF_TIMEOUT=${PERF_TIMEOUT:-600}
BIN=${TRIBUTARY_CACHE:-$HOME/.cache/tributary}/kafka-$VERSION/bin
TOPIC=perf-${LABEL//[^A-Za-z0-9-]/-}-$(date +%s)-$$

say() { printf '[perf %s] %s\n' "$LABEL" "$*" >&2; }
die() { printf '[perf %s] ERROR: %s\n' "$LABEL" "$*" >&2; exit 1; }

"$HERE/fetch-kafka.sh" "$VERSION" >&2

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tributary-perf.XXXXXX")
cleanup() {
  if [[ -z ${KEEP_TOPIC:-} ]]; then
    timeout -k 5 60 "$BIN/kafka-topics.sh" --bootstrap-server "$B" --delete --topic "$TOPIC" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

say "Kafka $VERSION CLI, topic $TOPIC ($PARTITIONS partition(s), RF $RF), $RECORDS x $RECORD_SIZE B, acks=all"
timeout -k 5 60 "$BIN/kafka-topics.sh" --bootstrap-server "$B" --create --topic "$TOPIC" \
  --partitions "$PARTITIONS" --replication-factor "$RF" >&2 || die "topic creation failed"

# ---- produce ----
timeout -k 5 "$PERF_TIMEOUT" "$BIN/kafka-producer-perf-test.sh" --topic "$TOPIC" --num-records "$RECORDS" \
  --record-size "$RECORD_SIZE" --throughput -1 --producer-props "bootstrap.servers=$B" acks=all \
  >"$WORK/produce.out" 2>"$WORK/produce.err" || { cat "$WORK/produce.out" "$WORK/produce.err" >&2; die "producer perf test failed"; }
cat "$WORK/produce.out" >&2
# final line: "N records sent, R records/sec (M MB/sec), A ms avg latency, X ms max latency,
#              P50 ms 50th, P95 ms 95th, P99 ms 99th, P999 ms 99.9th."
final=$(grep -E "^$RECORDS records sent" "$WORK/produce.out" | tail -n1)
[[ -n $final ]] || die "no final summary from kafka-producer-perf-test.sh"
produce=$(sed -E 's/^([0-9]+) records sent, ([0-9.]+) records\/sec \(([0-9.]+) MB\/sec\), ([0-9.]+) ms avg latency, ([0-9.]+) ms max latency, ([0-9.]+) ms 50th, ([0-9.]+) ms 95th, ([0-9.]+) ms 99th, ([0-9.]+) ms 99.9th.*/produce_mb_s=\3 produce_rec_s=\2 avg_ms=\4 p50_ms=\6 p95_ms=\7 p99_ms=\8 p999_ms=\9 max_ms=\5 records=\1/' <<<"$final")
[[ $produce == produce_mb_s=* ]] || die "cannot parse: $final"
echo "$LABEL $produce record_size=$RECORD_SIZE acks=all"

# ---- consume ----
# --messages was deprecated for --num-records in newer 4.x: use what --help offers
help=$(timeout -k 5 60 "$BIN/kafka-consumer-perf-test.sh" --help 2>&1 || true)
count_opt=--messages
grep -q -- '--num-records' <<<"$help" && count_opt=--num-records
timeout -k 5 "$PERF_TIMEOUT" "$BIN/kafka-consumer-perf-test.sh" --bootstrap-server "$B" --topic "$TOPIC" \
  "$count_opt" "$RECORDS" --timeout 60000 --group "perf-consumer-$$" \
  >"$WORK/consume.out" 2>"$WORK/consume.err" || { cat "$WORK/consume.out" "$WORK/consume.err" >&2; die "consumer perf test failed"; }
cat "$WORK/consume.out" >&2
# header "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, ..." + one row
consume=$(awk -F', *' '
  /data\.consumed\.in\.MB/ { for (i = 1; i <= NF; i++) col[$i] = i; getline
    printf "consume_mb_s=%s consume_rec_s=%s fetch_mb_s=%s fetch_rec_s=%s records=%s",
      $col["MB.sec"], $col["nMsg.sec"], $col["fetch.MB.sec"], $col["fetch.nMsg.sec"], $col["data.consumed.in.nMsg"]
    exit }' "$WORK/consume.out")
[[ $consume == consume_mb_s=* ]] || die "cannot parse kafka-consumer-perf-test.sh output"
got=${consume##*records=}
echo "$LABEL $consume"
((got == RECORDS)) || die "consumed $got of $RECORDS records"
