#!/usr/bin/env bash
# kafka-python (a pinned release from the package index the machine's pip uses), an old
# pure-Python client, against one broker: tests/peers/kafka_python_check.py.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_PYTHON_VERSION=2.0.2
venv=$CACHE_DIR/venv/kafka-python-$KAFKA_PYTHON_VERSION
if [[ ! -x $venv/bin/python ]]; then
  echo "==> installing kafka-python $KAFKA_PYTHON_VERSION"
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q python3-venv >/dev/null
    rm -rf "$venv"
    python3 -m venv "$venv"
  fi
  "$venv/bin/pip" install -q "kafka-python==$KAFKA_PYTHON_VERSION"
fi
start_broker
echo "==> kafka-python $KAFKA_PYTHON_VERSION against $BOOTSTRAP"
out=$(mktemp "${TMPDIR:-/tmp}/kafka-python.XXXXXX")
status=0
timeout 300 "$venv/bin/python" "$PEERS_DIR/kafka_python_check.py" "$BOOTSTRAP" >"$out" 2>&1 || status=$?
grep -E '^  (PASS|FAIL)' "$out" || true
result=$(sed -n 's/^RESULT //p' "$out")
if [[ -z $result ]]; then
  tail -20 "$out"
  report "kafka-python $KAFKA_PYTHON_VERSION" 0 1 0
  exit 1
fi
passed=$(sed -n 's/.*passed=\([0-9]*\).*/\1/p' <<<"$result")
failed=$(sed -n 's/.*failed=\([0-9]*\).*/\1/p' <<<"$result")
report "kafka-python $KAFKA_PYTHON_VERSION" "$passed" "$failed" 0
rm -f "$out"
exit "$status"
