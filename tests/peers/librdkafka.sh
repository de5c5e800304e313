#!/usr/bin/env bash
# librdkafka's own test suite (the release bundled by the rdkafka-sys crate), quick mode,
# against one Tributary broker with its scenario's settings (num.partitions=4), then its
# transaction tests that create topics of replication factor 3 against the local 3-zone
# cluster. Built once into ${TRIBUTARY_CACHE:-~/.cache/tributary}/librdkafka/VERSION.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KNOWN_FAILURES="0052_msg_timestamps
0081_admin
0109_auto_create_topics
0115_producer_auth
0119_consumer_auth
0146_metadata_mock"
# Tests that need three brokers (topics of replication factor 3).
CLUSTER_TESTS=0103

cd "$ROOT"
cargo fetch -q
version=$(awk '/^name = "rdkafka-sys"/ { getline; gsub(/"/, "", $3); print $3 }' Cargo.lock)
source_dir=$(find "${CARGO_HOME:-$HOME/.cargo}"/registry/src -maxdepth 1 -mindepth 1 -type d \
  -exec test -d "{}/rdkafka-sys-$version/librdkafka" \; -print -quit)/rdkafka-sys-$version/librdkafka
[[ -d $source_dir ]] || { echo "librdkafka source of rdkafka-sys $version not found" >&2; exit 1; }
build=$CACHE_DIR/librdkafka/$version
if [[ ! -x $build/tests/test-runner ]]; then
  echo "==> building librdkafka $version and its tests (once, ~2 min)"
  rm -rf "$build"
  mkdir -p "$(dirname "$build")"
  cp -r "$source_dir" "$build"
  log=$CACHE_DIR/logs/librdkafka-build.log
  mkdir -p "$(dirname "$log")"
  (cd "$build" &&
    ./configure --disable-ssl --disable-gssapi --disable-curl --disable-sasl --disable-zstd &&
    make -j2 libs && make -j2 -C tests build) >"$log" 2>&1 ||
    { tail -30 "$log" >&2; echo "librdkafka build failed (log: $log)" >&2; exit 1; }
fi

# run_suite WHAT BOOTSTRAP ENV...: the runner against BOOTSTRAP; adds its table's rows.
table=""
run_suite() {
  local what=$1 bootstrap=$2 out rows
  shift 2
  echo "==> librdkafka $version test suite (quick, $what) against $bootstrap"
  printf 'metadata.broker.list=%s\ntest.topic.random=true\n' "$bootstrap" >"$build/tests/test.conf"
  out=$(mktemp "${TMPDIR:-/tmp}/librdkafka-suite.XXXXXX")
  # Some tests drive the cluster with Kafka's CLI (KAFKA_PATH, BROKERS).
  (cd "$build/tests" &&
    env KAFKA_PATH="$CACHE_DIR/kafka-3.6.0" BROKERS="$bootstrap" TEST_KAFKA_VERSION=3.6.0 "$@" \
      timeout 1800 ./run-test.sh -Q -E) >"$out" 2>&1 || true
  # The runner ends with a table: | NNNN_name | PASSED/FAILED/SKIPPED | ... Its exit
  # check can abort the printing of that table part way, so each test's own result
  # lines count too ("== Test NNNN_name PASSED ==", '### Test "NNNN_name ..." failed').
  local clean
  clean=$(sed 's/\x1b\[[0-9;]*m//g' "$out")
  rows=$(
    {
      # (A grep that matches nothing is no error here.)
      { grep -aE '^\| [0-9]{4}_[a-z0-9_]+ +\| +(PASSED|FAILED|SKIPPED) ' <<<"$clean" || true; } |
        awk -F'|' '{ gsub(/ /, "", $2); gsub(/ /, "", $3); print "table", $2, $3 }'
      { grep -aoE '=+ Test [0-9]{4}_[a-z0-9_]+ (PASSED|SKIPPED) =+' <<<"$clean" || true; } |
        awk '{ print "line", $3, $4 }'
      { grep -aoE '^### Test "[0-9]{4}_[a-z0-9_]+' <<<"$clean" || true; } |
        awk -F'"' '{ print "line", $2, "FAILED" }'
    } | awk '$1 == "table" { table[$2 " " $3]; named[$2] }
             $1 == "line" { line[$2 " " $3] }
             END {
               for (r in table) print r
               for (r in line) { split(r, f, " "); if (!(f[1] in named)) print r }
             }' | sort -u)
  if [[ -z $rows ]]; then
    tail -40 "$out" >&2
    echo "the librdkafka test runner stopped before its report (output: $out)" >&2
    exit 1
  fi
  if [[ -z $table ]]; then
    table=$rows
  else
    # The tests this run ran replace the earlier run's rows for them (skips there).
    local ran
    ran=$(awk '$2 != "SKIPPED" { print $1 }' <<<"$rows" | sort -u)
    table=$( (awk 'NR == FNR { ran[$1]; next } !($1 in ran)' <(echo "$ran") <(echo "$table")
      awk '$2 != "SKIPPED"' <<<"$rows") | sort -u)
  fi
  outputs+=("$out")
}
outputs=()
start_broker --override num.partitions=4
run_suite "one broker" "$BOOTSTRAP" TESTS_SKIP="$CLUSTER_TESTS"
peers_cleanup
start_cluster
run_suite "3-zone cluster" "$BOOTSTRAP" TESTS="$CLUSTER_TESTS"
count() { awk -v s="$1" '$2 == s' <<<"$table" | wc -l; }
failed=$(awk '$2 == "FAILED" { print $1 }' <<<"$table")
report "librdkafka ${version#*+}" "$(count PASSED)" "$(count FAILED)" "$(count SKIPPED)"
if check_failures librdkafka "$KNOWN_FAILURES" "$failed"; then
  rm -f "${outputs[@]}"
else
  echo "librdkafka suite output: ${outputs[*]}" >&2
  exit 1
fi
