#!/usr/bin/env bash
# compare-cluster.sh: replicated produce and consume throughput of a local 3-zone Tributary
# cluster beside a 3-node Apache Kafka KRaft cluster (kafka-reference.sh start-cluster),
# both on 127.0.0.1 of this machine, both driven by Kafka's own perf tools (perf.sh) at
# replication factor 3, min.insync.replicas 2, acks=all. Prints the two side by side with
# ratios, plus the summed peak RSS and the CPU time of each cluster's broker processes.
#
# The clusters run one after the other, never together. Tributary's cluster is
# `tributary-operator local --zones 3 --brokers-per-zone 1` (controller inside the operator
# process, three tributary-broker children, racks zone-a/b/c); Kafka's is three combined
# broker+controller JVMs with -Xmx512m each, racks zone-a/b/c.
#
# Environment: RECORDS [300000], RECORD_SIZE [1024], PARTITIONS [3], KAFKA_VERSION [4.4.0]
# (broker and CLI), TRIBUTARY_OPERATOR [target/release/tributary-operator],
# TRIBUTARY_BROKER [target/release/tributary-broker], BIN_WAIT [600] seconds to wait for
# those binaries to appear, KEEP_WORK=1 keeps the scratch directory (data and logs).
# Progress goes to stderr, the table to stdout.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# shellcheck source=../lib/ports.sh
source "$ROOT/tests/lib/ports.sh"
# shellcheck source=lib.sh
source "$ROOT/tests/bench/lib.sh"
COMPAT=$ROOT/tests/compat
OPERATOR=${TRIBUTARY_OPERATOR:-$ROOT/target/release/tributary-operator}
BROKER=${TRIBUTARY_BROKER:-$ROOT/target/release/tributary-broker}
export KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
export RECORDS=${RECORDS:-300000}
export RECORD_SIZE=${RECORD_SIZE:-1024}
export PARTITIONS=${PARTITIONS:-3}
export REPLICATION_FACTOR=3
NODES=3

say() { printf '[compare-cluster] %s\n' "$*" >&2; }
die() { printf '[compare-cluster] ERROR: %s\n' "$*" >&2; exit 1; }

peak_rss_kib() { # VmHWM of PID in KiB (0 if it is gone)
  local v
  v=$(awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null) || true
  echo "${v:-0}"
}
CLK_TCK=$(getconf CLK_TCK)
cpu_ticks() { # user+system CPU of PID in clock ticks (0 if it is gone)
  local v
  v=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13}') || true
  echo "${v:-0}"
}
sum_peak_rss_mib() { # PID... -> summed VmHWM in MiB
  local pid total=0
  for pid in "$@"; do total=$((total + $(peak_rss_kib "$pid"))); done
  echo $((total / 1024))
}
sum_cpu_ticks() {
  local pid total=0
  for pid in "$@"; do total=$((total + $(cpu_ticks "$pid"))); done
  echo "$total"
}
ticks_to_s() { awk -v t="$1" -v hz="$CLK_TCK" 'BEGIN { printf "%.1f", t / hz }'; }
loadavg() { cut -d' ' -f1-3 /proc/loadavg; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tributary-bench-cluster.XXXXXX")
TDATA=$WORK/tributary
OPID=
KPORT=

tributary_broker_pids() { pgrep -f "tributary-broker.*$TDATA/broker-" || true; }

stop_tributary() { # SIGTERM the operator (it stops its brokers); SIGKILL whatever is left
  local status=0 pids
  if [[ -n $OPID ]] && kill -0 "$OPID" 2>/dev/null; then
    say "stopping the Tributary cluster (operator pid $OPID)"
    kill -TERM "$OPID"
    local deadline=$((SECONDS + 60))
    while kill -0 "$OPID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.5; done
    if kill -0 "$OPID" 2>/dev/null; then
      say "operator still alive after 60s: SIGKILL"
      kill -KILL "$OPID" 2>/dev/null || true
      status=1
    fi
    wait "$OPID" 2>/dev/null || status=$?
  fi
  OPID=
  pids=$(tributary_broker_pids)
  if [[ -n $pids ]]; then
    say "brokers left behind by the operator: SIGKILL $(echo $pids)"
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    status=1
  fi
  return "$status"
}

cleanup() {
  local rc=$? tributary_was_up=$OPID
  stop_tributary || true
  if [[ -n $KPORT ]]; then
    "$COMPAT/kafka-reference.sh" stop-cluster "$KAFKA_VERSION" "$WORK/kafka" "$KPORT" "$NODES" 2>/dev/null || true
  fi
  if ((rc != 0)); then
    if [[ -n $tributary_was_up ]]; then say "operator log tail:"; tail -n 20 "$WORK/operator.log" >&2; fi
    [[ -n ${KEEP_WORK:-} ]] || say "set KEEP_WORK=1 to keep the data and logs"
  fi
  if [[ -n ${KEEP_WORK:-} ]]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The binaries come from `cargo build --release`; wait for a build in progress, never build.
deadline=$((SECONDS + ${BIN_WAIT:-600}))
until [[ -x $OPERATOR && -x $BROKER ]]; do
  ((SECONDS < deadline)) || die "$OPERATOR / $BROKER missing after ${BIN_WAIT:-600}s (cargo build --release)"
  say "waiting for $OPERATOR and $BROKER to exist ..."
  sleep 10
done
# Run copies, so a rebuild during the benchmark cannot swap binaries under the cluster.
mkdir -p "$WORK/bin"
cp "$OPERATOR" "$WORK/bin/tributary-operator"
cp "$BROKER" "$WORK/bin/tributary-broker"
"$COMPAT/fetch-kafka.sh" "$KAFKA_VERSION" >&2

# ---- Tributary ----
TPORT=$(free_base_port "$NODES")
t_load=$(loadavg)
say "starting Tributary: 3 zones x 1 broker on 127.0.0.1:$TPORT-$((TPORT + NODES - 1)) (load average $t_load)"
# Same group setting as the reference cluster's config (kafka-reference.sh).
"$WORK/bin/tributary-operator" local --zones 3 --brokers-per-zone 1 --data-dir "$TDATA" \
  --base-port "$TPORT" --override group.initial.rebalance.delay.ms=0 >"$WORK/operator.log" 2>&1 &
OPID=$!
T_BOOTSTRAP=
deadline=$((SECONDS + 120))
until [[ -n $T_BOOTSTRAP ]]; do
  kill -0 "$OPID" 2>/dev/null || die "tributary-operator exited during start-up"
  ((SECONDS < deadline)) || die "Tributary cluster not ready after 120s"
  sleep 0.2
  T_BOOTSTRAP=$(sed -n 's/^bootstrap servers: //p' "$WORK/operator.log" | tail -n1)
done
read -ra T_PIDS <<<"$(tributary_broker_pids | tr '\n' ' ')"
((${#T_PIDS[@]} == NODES)) || die "expected $NODES tributary-broker processes, found ${#T_PIDS[@]}"
say "Tributary ready: $T_BOOTSTRAP (broker pids ${T_PIDS[*]}, operator pid $OPID)"
t_cpu0=$(sum_cpu_ticks "${T_PIDS[@]}")
t_out=$("$COMPAT/perf.sh" "$T_BOOTSTRAP" tributary)
t_cpu=$(ticks_to_s $(($(sum_cpu_ticks "${T_PIDS[@]}") - t_cpu0)))
t_rss=$(sum_peak_rss_mib "${T_PIDS[@]}")
t_op_rss=$(sum_peak_rss_mib "$OPID")
t_restarts=$(grep -c 'exited (.*); restarting' "$WORK/operator.log" || true)
t_stop=clean
stop_tributary || t_stop="NOT clean (see above)"

# ---- Apache Kafka ----
KPORT=$(free_base_port $((2 * NODES)))
k_load=$(loadavg)
say "starting Apache Kafka $KAFKA_VERSION: $NODES nodes from 127.0.0.1:$KPORT (load average $k_load)"
K_BOOTSTRAP=$("$COMPAT/kafka-reference.sh" start-cluster "$KAFKA_VERSION" "$WORK/kafka" "$KPORT" "$NODES")
K_PIDS=()
for ((i = 1; i <= NODES; i++)); do K_PIDS+=("$(<"$WORK/kafka/node-$i/kafka.pid")"); done
k_cpu0=$(sum_cpu_ticks "${K_PIDS[@]}")
k_out=$("$COMPAT/perf.sh" "$K_BOOTSTRAP" kafka)
k_cpu=$(ticks_to_s $(($(sum_cpu_ticks "${K_PIDS[@]}") - k_cpu0)))
k_rss=$(sum_peak_rss_mib "${K_PIDS[@]}")
"$COMPAT/kafka-reference.sh" stop-cluster "$KAFKA_VERSION" "$WORK/kafka" "$KPORT" "$NODES"
KPORT=

t_prod=$(grep '^tributary produce' <<<"$t_out"); t_cons=$(grep '^tributary consume' <<<"$t_out")
k_prod=$(grep '^kafka produce' <<<"$k_out"); k_cons=$(grep '^kafka consume' <<<"$k_out")

echo
echo "3-zone cluster, 3 brokers, $PARTITIONS partition(s) x RF 3, min.insync.replicas 2, acks=all;"
echo "$RECORDS x $RECORD_SIZE B records, Kafka $KAFKA_VERSION perf tools, $(nproc) cores"
table_header
row "produce MB/s" "$(field "$t_prod" produce_mb_s)" "$(field "$k_prod" produce_mb_s)" 1
row "produce p50 ms" "$(field "$t_prod" p50_ms)" "$(field "$k_prod" p50_ms)" 0
row "produce p99 ms" "$(field "$t_prod" p99_ms)" "$(field "$k_prod" p99_ms)" 0
row "consume MB/s" "$(field "$t_cons" consume_mb_s)" "$(field "$k_cons" consume_mb_s)" 1
row "consume fetch MB/s" "$(field "$t_cons" fetch_mb_s)" "$(field "$k_cons" fetch_mb_s)" 1
row "brokers peak RSS MiB (sum)" "$t_rss" "$k_rss" 0
row "brokers CPU s during perf" "$t_cpu" "$k_cpu" 0
echo "Tributary's controller runs in tributary-operator (peak RSS $t_op_rss MiB, not in the sum);"
echo "Kafka's three controllers run inside its three nodes. Load average before each run:"
echo "tributary $t_load, kafka $k_load. Tributary broker restarts: $t_restarts; shutdown: $t_stop."
