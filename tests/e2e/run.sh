#!/usr/bin/env bash
# `make e2e`: creates the kind cluster, loads the project's images, runs the smoke suite
# and the in-cluster broker walkthrough, deletes the cluster and checks that nothing it
# made is left. KEEP_CLUSTER=1 keeps the cluster for inspection.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
started=$SECONDS

"$E2E_DIR/docker.sh"
volumes_before=$(docker volume ls -q | sort)
"$E2E_DIR/kind-down.sh"
"$E2E_DIR/kind-up.sh"
"$E2E_DIR/images.sh"

# Each suite prints "NAME: N passed, N failed"; their counts add up to the closing line.
suites_failed=0
run_suite() {
  local out
  out=$(mktemp)
  "$@" | tee "$out" || suites_failed=1
  read -r passed failed < <(sed -n 's/^[a-z-]*: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$out" | tail -n1)
  PASSED=$((PASSED + ${passed:-0})) FAILED=$((FAILED + ${failed:-0}))
  rm -f "$out"
}
run_suite "$E2E_DIR/smoke/smoke.sh"
run_suite "$E2E_DIR/broker/walkthrough.sh"

if [ $suites_failed = 1 ]; then
  logs=$CACHE_DIR/logs/kind-$(date +%Y%m%d-%H%M%S)
  kind export logs --name "$CLUSTER_NAME" "$logs" >/dev/null 2>&1 || true
  kubectl get nodes,pods -A -o wide 2>&1 | sed 's/^/    /' || true
  step "cluster logs exported to $logs"
fi
if [ -n "${KEEP_CLUSTER:-}" ]; then
  step "keeping cluster $CLUSTER_NAME (KUBECONFIG=$KUBECONFIG)"
  summary e2e && [ $suites_failed = 0 ]
  exit
fi

"$E2E_DIR/kind-down.sh"
nothing_left() {
  local containers volumes
  containers=$(docker ps -aq --filter "label=io.x-k8s.kind.cluster=$CLUSTER_NAME")
  [ -z "$containers" ] || { echo "containers left: $containers"; return 1; }
  ! docker network inspect kind >/dev/null 2>&1 || { echo "network kind left"; return 1; }
  volumes=$(comm -13 <(echo "$volumes_before") <(docker volume ls -q | sort))
  [ -z "$volumes" ] || { echo "volumes left: $volumes"; return 1; }
}
check "kind-down leaves no container, network or volume behind" nothing_left
step "e2e finished in $((SECONDS - started)) s"
summary e2e && [ $suites_failed = 0 ]
