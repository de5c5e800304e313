# shellcheck shell=bash
# Shared settings for the Kubernetes test plane: pinned versions, cache locations and
# progress output. Sourced by every script under tests/e2e/.

# Pinned versions (the node image is rebuilt whenever one of them changes).
source "$(dirname "${BASH_SOURCE[0]}")/versions.env"
CLUSTER_NAME=${CLUSTER_NAME:-tributary}

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
export GOFLAGS=-trimpath
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
      printf '    ... %ds\n' $((SECONDS - started))
    fi
  done
  if ! wait "$pid"; then
    tail -n 40 "$log" >&2
    die "failed: $* (log: $log)"
  fi
}

sudo_cmd() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

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
  local name=$1 out; shift
  if out=$("$@" 2>&1); then
    PASSED=$((PASSED + 1)); printf 'PASS %s\n' "$name"
  else
    FAILED=$((FAILED + 1)); printf 'FAIL %s\n%s\n' "$name" "$(printf '%s\n' "$out" | tail -n 20 | sed 's/^/    /')"
  fi
}
summary() {
  printf '%s: %d passed, %d failed\n' "$1" "$PASSED" "$FAILED"
  [ "$FAILED" -eq 0 ]
}

# Polls COMMAND every second until it succeeds or TIMEOUT seconds pass.
wait_until() {
  local timeout=$1; shift
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { "$@"; return 1; }
    sleep 1
  done
}
