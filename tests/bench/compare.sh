#!/usr/bin/env bash
# compare.sh: single-broker produce and consume throughput of Tributary beside Apache Kafka
# (one KRaft broker from the Maven jars), both driven by Kafka's own perf tools on this
# machine, printed side by side with ratios. Also reports each broker's peak RSS.
#
# Environment: RECORDS [500000], RECORD_SIZE [1024], KAFKA_VERSION [4.4.0] (broker and CLI),
# TRIBUTARY_BROKER [target/release/tributary-broker].
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib/ports.sh
source "$ROOT/tests/lib/ports.sh"
# shellcheck source=lib.sh
source "$ROOT/tests/bench/lib.sh"
COMPAT=$ROOT/tests/compat
BROKER=${TRIBUTARY_BROKER:-$ROOT/target/release/tributary-broker}
export KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
export RECORDS=${RECORDS:-500000}
export RECORD_SIZE=${RECORD_SIZE:-1024}

peak_rss_mb() { awk '/VmHWM/ {printf "%.0f", $2/1024}' "/proc/$1/status" 2>/dev/null || echo "?"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tributary-bench.XXXXXX")
TPID=
cleanup() {
  [[ -n $TPID ]] && kill -9 "$TPID" 2>/dev/null || true
  "$COMPAT/kafka-reference.sh" stop "$KAFKA_VERSION" "$WORK/kafka" "${KPORT:-0}" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

[[ -x $BROKER ]] || { echo "build the broker first: cargo build --release" >&2; exit 1; }
"$COMPAT/fetch-kafka.sh" "$KAFKA_VERSION" >&2

# ---- Tributary ----
TPORT=$(free_base_port 1)
# Same group setting as the reference broker's config (kafka-reference.sh).
"$BROKER" --data-dir "$WORK/tributary" --listen "127.0.0.1:$TPORT" \
  --override group.initial.rebalance.delay.ms=0 >"$WORK/tributary.log" 2>&1 &
TPID=$!
for _ in $(seq 1 100); do (exec 3<>"/dev/tcp/127.0.0.1/$TPORT") 2>/dev/null && break; sleep 0.1; done
t_out=$("$COMPAT/perf.sh" "127.0.0.1:$TPORT" tributary)
t_rss=$(peak_rss_mb "$TPID")
kill -TERM "$TPID"; wait "$TPID" || true; TPID=

# ---- Apache Kafka ----
KPORT=$(free_base_port 2)
"$COMPAT/kafka-reference.sh" start "$KAFKA_VERSION" "$WORK/kafka" "$KPORT" >&2
KPID=$(pgrep -f "kafka.Kafka.*$WORK/kafka" | head -n1 || true)
k_out=$("$COMPAT/perf.sh" "127.0.0.1:$KPORT" kafka)
k_rss=$([[ -n $KPID ]] && peak_rss_mb "$KPID" || echo "?")
"$COMPAT/kafka-reference.sh" stop "$KAFKA_VERSION" "$WORK/kafka" "$KPORT" >&2

t_prod=$(grep '^tributary produce' <<<"$t_out"); t_cons=$(grep '^tributary consume' <<<"$t_out")
k_prod=$(grep '^kafka produce' <<<"$k_out"); k_cons=$(grep '^kafka consume' <<<"$k_out")

echo
echo "Single broker, $RECORDS x $RECORD_SIZE B records, acks=all, Kafka $KAFKA_VERSION perf tools"
table_header
row "produce MB/s" "$(field "$t_prod" produce_mb_s)" "$(field "$k_prod" produce_mb_s)" 1
row "produce p50 ms" "$(field "$t_prod" p50_ms)" "$(field "$k_prod" p50_ms)" 0
row "produce p99 ms" "$(field "$t_prod" p99_ms)" "$(field "$k_prod" p99_ms)" 0
row "consume MB/s" "$(field "$t_cons" consume_mb_s)" "$(field "$k_cons" consume_mb_s)" 1
row "consume fetch MB/s" "$(field "$t_cons" fetch_mb_s)" "$(field "$k_cons" fetch_mb_s)" 1
row "broker peak RSS MiB" "$t_rss" "$k_rss" 0
