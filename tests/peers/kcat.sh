#!/usr/bin/env bash
# Debian's kcat (librdkafka 2.0.2, an old client still widely installed) against one
# broker: metadata, produce, consume, offsets by time, and a balanced consumer group that
# commits and resumes.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if ! command -v kcat >/dev/null; then
  echo "==> installing Debian's kcat"
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q kcat >/dev/null
fi
start_broker
echo "==> kcat against $BOOTSTRAP"

passed=0
failed=0
step() {
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

B=$BOOTSTRAP
lines() { printf 'one\ntwo\nthree\n'; }
produce() { lines | timeout 30 kcat -b "$B" -P -t kcat-topic -p 0 -X topic.request.required.acks=-1; }
metadata() { timeout 30 kcat -b "$B" -L -t kcat-topic | grep -q 'partition 0, leader 1'; }
consume() { [[ $(timeout 30 kcat -b "$B" -C -t kcat-topic -o beginning -e -q | tr '\n' ' ') == "one two three " ]]; }
by_time() {
  # The first record at or after a time before the first write is offset 0.
  timeout 30 kcat -b "$B" -Q -t "kcat-topic:0:1000" | grep -q 'offset 0'
}
group_first() { [[ $(timeout 60 kcat -b "$B" -G kcat-group -X auto.offset.reset=earliest -e -q kcat-topic | sort | tr '\n' ' ') == "one three two " ]]; }
group_resume() {
  printf 'four\n' | timeout 30 kcat -b "$B" -P -t kcat-topic -p 0
  [[ $(timeout 60 kcat -b "$B" -G kcat-group -X auto.offset.reset=earliest -e -q kcat-topic | tr '\n' ' ') == "four " ]]
}
step "produce with acks=all (auto-created topic)" produce
step "metadata (-L)" metadata
step "consume from the beginning" consume
step "offsets by timestamp (-Q)" by_time
step "balanced consumer group consumes and commits" group_first
step "the group resumes from its committed offsets" group_resume
report "kcat (Debian)" "$passed" "$failed" 0
[[ $failed == 0 ]]
