#!/usr/bin/env bash
# `make e2e`: creates the kind cluster, loads the project's images, runs the smoke suite
# and the in-cluster broker walkthrough, deletes the cluster and checks that nothing it
# made is left. KEEP_CLUSTER=1 keeps the cluster for inspection.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
started=$SECONDS

"$E2E_DIR/docker.sh"
volumes_before=$(docker volume ls -q | sort)
kind_network_before=$(docker network inspect -f '{{.Id}}' kind 2>/dev/null || true)
"$E2E_DIR/kind-down.sh"
# Whatever fails from here on, the cluster does not outlive the run (unless asked to).
[ -n "${KEEP_CLUSTER:-}" ] || trap '"$E2E_DIR/kind-down.sh" >/dev/null 2>&1 || true' EXIT
"$E2E_DIR/kind-up.sh"
"$E2E_DIR/images.sh"

# Each suite prints "NAME: N passed, N failed"; their counts add up to the closing line.
# A suite that ends without that line counts as one failure.
suites_failed=0
run_suite() {
  local out counts
  out=$(mktemp)
  "$@" | tee "$out" || suites_failed=1
  counts=$(sed -n 's/^[a-z-]*: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$out" | tail -n1)
  rm -f "$out"
  if [ -z "$counts" ]; then
    suites_failed=1 FAILED=$((FAILED + 1))
    return
  fi
  PASSED=$((PASSED + ${counts% *})) FAILED=$((FAILED + ${counts#* }))
}
run_suite "$E2E_DIR/smoke/smoke.sh"
run_suite "$E2E_DIR/broker/walkthrough.sh"
run_suite "$E2E_DIR/operator/crds.sh"
run_suite "$E2E_DIR/operator/journey.sh"

if [ $suites_failed = 1 ]; then
  logs=$CACHE_DIR/logs/kind-$(date +%Y%m%d-%H%M%S)
  kubectl get nodes,pods -A -o wide 2>&1 | sed 's/^/    /' || true
  kind export logs --name "$CLUSTER_NAME" "$logs" >/dev/null 2>&1 || true
  step "cluster logs exported to $logs"
fi
if [ -n "${KEEP_CLUSTER:-}" ]; then
  step "keeping cluster $CLUSTER_NAME (KUBECONFIG=$KUBECONFIG)"
  summary e2e && [ $suites_failed = 0 ]
  exit
fi

"$E2E_DIR/kind-down.sh"
nothing_left() {
  local containers volumes network
  containers=$(docker ps -aq --filter "label=io.x-k8s.kind.cluster=$CLUSTER_NAME")
  [ -z "$containers" ] || { echo "containers left: $containers"; return 1; }
  # kind's network outlives the cluster only if it was there before or others use it.
  network=$(docker network inspect -f '{{.Id}}' kind 2>/dev/null || true)
  if [ -n "$network" ] && [ "$network" != "$kind_network_before" ] &&
    [ "$(docker network inspect -f '{{len .Containers}}' kind)" = 0 ]; then
    echo "network kind left"
    return 1
  fi
  volumes=$(comm -13 <(echo "$volumes_before") <(docker volume ls -q | sort))
  [ -z "$volumes" ] || { echo "volumes left: $volumes"; return 1; }
}
check "kind-down leaves no container, network or volume behind" nothing_left
step "e2e finished in $((SECONDS - started)) s"
summary e2e && [ $suites_failed = 0 ]
