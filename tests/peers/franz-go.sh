#!/usr/bin/env bash
# franz-go's kgo test suite (a pinned release from the Go module proxy): its integration
# tests produce, consume, run consumer groups (static members included) and
# exactly-once ETL chains of transactional group sessions against KGO_SEEDS. Run at replication factor 1 on one broker and at 3 on the local cluster.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FRANZ_GO_VERSION=v1.22.3
KNOWN_FAILURES=""
RECORDS=${KGO_TEST_RECORDS:-20000}

export GOMODCACHE=$CACHE_DIR/go/mod GOCACHE=$CACHE_DIR/go/build GOPATH=$CACHE_DIR/go/path
export GOFLAGS="-modcacherw"
command -v go >/dev/null || { echo "go is not installed" >&2; exit 1; }
source_dir=$CACHE_DIR/franz-go/$FRANZ_GO_VERSION
if [[ ! -f $source_dir/go.mod ]]; then
  echo "==> fetching franz-go $FRANZ_GO_VERSION"
  dir=$(cd /tmp && go mod download -json "github.com/twmb/franz-go@$FRANZ_GO_VERSION" | jq -r .Dir)
  rm -rf "$source_dir"
  mkdir -p "$(dirname "$source_dir")"
  cp -r "$dir" "$source_dir"
  chmod -R u+w "$source_dir"
fi
(cd "$source_dir" && go test -count=1 -run XXX ./pkg/kgo/ >/dev/null)

status=0
run_suite() {
  local label=$1 rf=$2 out table
  out=$(mktemp "${TMPDIR:-/tmp}/franz-go-suite.XXXXXX")
  echo "==> franz-go $FRANZ_GO_VERSION kgo tests at RF $rf against $BOOTSTRAP"
  (cd "$source_dir" && KGO_SEEDS=$BOOTSTRAP KGO_TEST_RF=$rf KGO_TEST_RECORDS=$RECORDS \
    go test -count=1 -timeout 15m -v ./pkg/kgo/) >"$out" 2>&1 || true
  table=$(grep -E '^--- (PASS|FAIL|SKIP): ' "$out" | awk '{ print $3, $2 }' | tr -d ':' | sort -u)
  if ! grep -qE '^(ok|FAIL)\s+github.com/twmb/franz-go/pkg/kgo' "$out" || [[ -z $table ]]; then
    tail -40 "$out" >&2
    echo "the kgo tests did not finish (output: $out)" >&2
    status=1
    return
  fi
  report "franz-go $FRANZ_GO_VERSION $label" "$(awk '$2 == "PASS"' <<<"$table" | wc -l)" \
    "$(awk '$2 == "FAIL"' <<<"$table" | wc -l)" "$(awk '$2 == "SKIP"' <<<"$table" | wc -l)"
  if check_failures "franz-go" "$KNOWN_FAILURES" "$(awk '$2 == "FAIL" { print $1 }' <<<"$table")"; then
    rm -f "$out"
  else
    echo "kgo output: $out" >&2
    status=1
  fi
}

start_broker
run_suite "RF 1" 1
peers_cleanup
start_cluster
run_suite "RF 3 (3 zones)" 3
exit $status
