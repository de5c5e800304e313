#!/usr/bin/env bash
# run.sh [SECONDS_PER_TARGET] [TARGET...]
#
# Builds the fuzz targets with cargo-fuzz (libFuzzer; installed under
# ${TRIBUTARY_CACHE:-~/.cache/tributary}/cargo-tools) and runs each for SECONDS_PER_TARGET
# (default 60), starting from the committed seeds (fuzz/seeds/TARGET) and a corpus kept in
# the cache between runs. Any panic, hang (a single input over 10 s) or out-of-memory fails
# the run and leaves the input in fuzz/artifacts/TARGET/. Prints executions per target.
#
#   fuzz/run.sh 60                        the bounded run `make test` does
#   fuzz/run.sh 3600 request              an hour on one target
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${TRIBUTARY_CACHE:-$HOME/.cache/tributary}
SECONDS_PER_TARGET=${1:-60}
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(request record_batch log_recovery)
CARGO_FUZZ_VERSION=0.13.2

export PATH=$CACHE/cargo-tools/bin:$PATH
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "==> installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install --quiet --locked --root "$CACHE/cargo-tools" "cargo-fuzz@$CARGO_FUZZ_VERSION"
fi

cd "$HERE"
# Stable Rust: no sanitizer (the code under test is safe Rust); coverage guidance works
# without one.
cargo fuzz build -O -s none
status=0
for target in "${TARGETS[@]}"; do
  corpus=$CACHE/fuzz-corpus/$target
  mkdir -p "$corpus" "$HERE/seeds/$target"
  log=$(mktemp)
  if cargo fuzz run -O -s none "$target" "$corpus" "$HERE/seeds/$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "fuzz $target: ${runs:-?} executions in ${SECONDS_PER_TARGET}s, no failure"
  else
    echo "fuzz $target: FAILED" >&2
    grep -E "panicked|ERROR|SUMMARY|Test unit written" -A3 "$log" | head -40 >&2
    status=1
  fi
  rm -f "$log"
done
exit $status
