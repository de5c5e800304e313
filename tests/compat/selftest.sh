#!/usr/bin/env bash
# selftest.sh [KAFKA_VERSION...]   (default: 3.6.0 4.4.0)
#
# Proves the harness against real Apache Kafka: for each version, start the
# reference KRaft broker (kafka-reference.sh), run walkthrough.sh with the CLI
# of the same version against it, stop the broker. Exits non-zero if any
# walkthrough failed. Environment: PORT (default 29092; PORT+1 is the
# controller), SELFTEST_DIR (default: a fresh temp dir, removed at the end).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PORT=${PORT:-29092}
(($#)) || set -- 3.6.0 4.4.0
ROOT=${SELFTEST_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/tributary-selftest.XXXXXX")}

current=""
cleanup() {
  [[ -n $current ]] && "$HERE/kafka-reference.sh" stop "$current" "$ROOT/kafka-$current" "$PORT" || true
  [[ -n ${SELFTEST_DIR:-} ]] || rm -rf "$ROOT"
}
trap cleanup EXIT

failed=()
for v in "$@"; do
  current=$v
  "$HERE/kafka-reference.sh" start "$v" "$ROOT/kafka-$v" "$PORT"
  "$HERE/walkthrough.sh" "$v" "127.0.0.1:$PORT" || failed+=("$v")
  "$HERE/kafka-reference.sh" stop "$v" "$ROOT/kafka-$v" "$PORT"
  current=""
done

if ((${#failed[@]})); then
  echo "selftest: walkthrough failed against Apache Kafka ${failed[*]}"
  exit 1
fi
echo "selftest: walkthrough passed against Apache Kafka $*"
