#!/usr/bin/env bash
# run.sh [SUITE...]: the peers' own test suites against Tributary (default: all of them),
# then one summary line per suite. Each suite fails on a test that fails and is not among
# the failures the README lists with their reasons.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
suites=("$@")
[[ ${#suites[@]} -gt 0 ]] || suites=(client-compatibility java-transactions kcat kafka-python franz-go librdkafka)
summary=()
status=0
for suite in "${suites[@]}"; do
  echo "=== $suite"
  log=$(mktemp "${TMPDIR:-/tmp}/peers-$suite.XXXXXX")
  "$here/$suite.sh" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  mapfile -t lines < <(grep '^SUITE ' "$log")
  summary+=("${lines[@]}")
  if [[ $rc != 0 ]]; then
    summary+=("FAILED $suite (exit $rc)")
    status=1
  fi
  rm -f "$log"
done
echo "=== peer suites"
printf '%s\n' "${summary[@]}"
exit $status
