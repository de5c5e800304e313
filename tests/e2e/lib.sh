# shellcheck shell=bash
# Shared settings for the Kubernetes test plane: pinned versions, cache locations and
# progress output. Sourced by every script under tests/e2e/.

# Pinned versions (the node image is rebuilt whenever one of them changes).
source "$(dirname "${BASH_SOURCE[0]}")/versions.env"
CLUSTER_NAME=${CLUSTER_NAME:-tributary}
# Identifies what the pinned versions resolve to (environment overrides included), so
# cached builds are redone when any of them changes.
pinned_versions() {
  printf '%s\n' "kind=$KIND_VERSION" "kubernetes=$KUBE_VERSION" "crictl=$CRICTL_VERSION" \
    "helm=$HELM_VERSION" "local-path=$LOCAL_PATH_VERSION" "$(go version 2>/dev/null)"
}

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC2034 # used by the scripts that source this file
REPO_DIR=$(cd "$E2E_DIR/../.." && pwd)
CACHE_DIR=${TRIBUTARY_CACHE:-$HOME/.cache/tributary}
BIN_DIR=$CACHE_DIR/bin
export PATH="$BIN_DIR:$PATH"

# Go builds keep their module and build caches beside the other tools, so one directory
# holds everything the test plane fetched.
export GOMODCACHE=$CACHE_DIR/go/mod
export GOCACHE=$CACHE_DIR/go/build
export GOPATH=$CACHE_DIR/go/path
export GOTOOLCHAIN=local
# -modcacherw keeps the module cache deletable with rm -rf.
export GOFLAGS="-trimpath -modcacherw"
export CGO_ENABLED=0

# Prints a timestamped progress line, so long steps show they are moving.
step() { printf '==> [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Runs a command, sending its output to a log file and printing a dot every 30 s so a
# long build shows it is alive; on failure the log's tail is printed.
quietly() {
  local log=$1; shift
  mkdir -p "$(dirname "$log")"
  "$@" >"$log" 2>&1 &
  local pid=$! started=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    sleep 2
    if (( (SECONDS - started) % 30 < 2 && SECONDS - started >= 30 )); then
      printf '    ... %ds\n' $((SECONDS - started)) >&2
    fi
  done
  if ! wait "$pid"; then
    tail -n 40 "$log" >&2
    die "failed: $* (log: $log)"
  fi
}

sudo_cmd() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Installs the Debian packages of the commands that are missing.
# Usage: ensure_packages COMMAND:PACKAGE...
ensure_packages() {
  local need=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || [ -x "/usr/sbin/${pair%%:*}" ] || need+=("${pair#*:}")
  done
  [ ${#need[@]} -gt 0 ] || return 0
  step "installing Debian packages: ${need[*]}"
  sudo_cmd true # ask for a password, if any, before going to the background
  quietly "$CACHE_DIR/logs/apt.log" sudo_cmd apt-get update -q
  quietly "$CACHE_DIR/logs/apt.log" sudo_cmd env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a \
    apt-get install -y -q "${need[@]}"
}

# A kubeconfig of the test cluster's own, so the scripts never touch the user's.
export KUBECONFIG=${TRIBUTARY_KUBECONFIG:-$CACHE_DIR/kind/$CLUSTER_NAME.kubeconfig}

# Test bookkeeping: `check NAME COMMAND...` runs one check, prints PASS/FAIL with the
# command's output on failure, and counts; `summary LABEL` prints the closing line and
# fails when any check did.
PASSED=0 FAILED=0
exec 3>&1
# Prints a line from inside a check (a measured time, say) even when the check passes.
note() { printf '    %s\n' "$*" >&3; }
check() {
  local name=$1 out status; shift
  # Bash ignores errexit in everything a condition (if, while, until, &&, ||) runs, so the
  # check runs as a plain statement in a subshell with errexit on: any failing step of a
  # multi-step check function fails the check.
  set +e
  out=$(set -e; "$@" 2>&1)
  status=$?
  set -e
  if [ "$status" -eq 0 ]; then
    PASSED=$((PASSED + 1)); printf 'PASS %s\n' "$name"
  else
    FAILED=$((FAILED + 1)); printf 'FAIL %s\n%s\n' "$name" "$(printf '%s\n' "$out" | tail -n 20 | sed 's/^/    /')"
  fi
}
summary() {
  printf '%s: %d passed, %d failed\n' "$1" "$PASSED" "$FAILED"
  [ "$FAILED" -eq 0 ]
}

# Polls COMMAND every second until it succeeds or TIMEOUT seconds pass; on timeout, runs
# it once more with its output shown. Each try runs like a check (errexit on, see check).
wait_until() {
  local timeout=$1; shift
  local deadline=$((SECONDS + timeout)) status
  while :; do
    set +e
    (set -e; "$@") >/dev/null 2>&1
    status=$?
    set -e
    [ "$status" -ne 0 ] || return 0
    if [ $SECONDS -ge $deadline ]; then
      set +e
      (set -e; "$@")
      set -e
      echo "still failing after ${timeout} s: $*"
      return 1
    fi
    sleep 1
  done
}

# Deletes POD of NAMESPACE and waits until its controller has made a new one (a new uid)
# and that one is Ready. Usage: recreate_pod NAMESPACE POD
recreate_pod() {
  local uid
  uid=$(kubectl -n "$1" get pod "$2" -o jsonpath='{.metadata.uid}')
  [ -n "$uid" ]
  kubectl -n "$1" delete pod "$2" --wait=true --timeout=60s >/dev/null
  wait_until 120 replaced "$1" "$2" "$uid"
  kubectl -n "$1" wait --for=condition=Ready "pod/$2" --timeout=120s >/dev/null
}

# True once POD exists in NAMESPACE with a uid other than OLD_UID.
replaced() {
  local uid
  uid=$(kubectl -n "$1" get pod "$2" -o jsonpath='{.metadata.uid}')
  [ -n "$uid" ] && [ "$uid" != "$3" ]
}

# Recreates NAMESPACE empty for a suite and deletes it when the suite's shell exits.
use_fresh_namespace() {
  kubectl delete namespace "$1" --ignore-not-found --wait=true --timeout=120s >/dev/null
  kubectl create namespace "$1" >/dev/null
  # shellcheck disable=SC2064 # the name is fixed now, on purpose
  trap "kubectl delete namespace '$1' --ignore-not-found --wait=false >/dev/null 2>&1 || true" EXIT
}

# Runs the users' walkthrough (Kafka 3.6.0 CLI) from the kafka-cli pod of namespace NS
# against BOOTSTRAP with replication factor RF; shows each step, fails unless all pass.
walkthrough_from_pod() {
  local ns=$1 bootstrap=$2 rf=$3 out
  out=$(kubectl -n "$ns" exec kafka-cli -- bash compat/walkthrough.sh 3.6.0 "$bootstrap" "$rf" 2>&1) ||
    { echo "$out"; return 1; }
  echo "$out" | grep -E '^(PASS|FAIL)' | sed 's/^/    /' >&3
  echo "$out" | grep -qE '^walkthrough: [1-9][0-9]* passed, 0 failed$' || { echo "$out"; return 1; }
}
