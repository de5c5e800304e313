#!/usr/bin/env bash
# Apache Kafka's ClientCompatibilityTest (org.apache.kafka.tools) of each Kafka version
# given (default 3.6.0 4.4.0), on a fresh single broker each, and 3.6.0's on the local
# cluster: produce and consume with headers, offsetsForTimes, the cluster id, topic
# creation, describeConfigs, describeAcls, idempotence and the admin client's view of the
# cluster, each checked against what the broker claims to support.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSIONS=("$@")
[[ ${#VERSIONS[@]} -gt 0 ]] || VERSIONS=(3.6.0 4.4.0)

run_test() {
  local version=$1 nodes=$2 out
  out=$(mktemp "${TMPDIR:-/tmp}/client-compatibility.XXXXXX")
  if timeout 300 "$CACHE_DIR/kafka-$version/bin/kafka-run-class.sh" \
    org.apache.kafka.tools.ClientCompatibilityTest \
    --bootstrap-server "$BOOTSTRAP" --topic "compatibility-$version" \
    --offsets-for-times-supported true --cluster-id-supported true \
    --expect-record-too-large-exception false --num-cluster-nodes "$nodes" \
    --create-topics-supported true --describe-acls-supported true \
    --describe-configs-supported true --idempotent-producer-supported true >"$out" 2>&1 &&
    grep -q '^SUCCESS' "$out"; then
    echo "  PASS  ClientCompatibilityTest $version ($nodes broker(s))"
    rm -f "$out"
    return 0
  fi
  tail -20 "$out"
  echo "  FAIL  ClientCompatibilityTest $version ($nodes broker(s)), output: $out"
  return 1
}

passed=0
failed=0
for version in "${VERSIONS[@]}"; do
  "$ROOT/tests/compat/fetch-kafka.sh" "$version" >/dev/null
  start_broker
  if run_test "$version" 1; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
  peers_cleanup
done
start_cluster
if run_test "${VERSIONS[0]}" 3; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
report "Kafka ClientCompatibilityTest" "$passed" "$failed" 0
[[ $failed == 0 ]]
