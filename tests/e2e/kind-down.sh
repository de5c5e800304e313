#!/usr/bin/env bash
# Deletes the kind cluster `tributary` and everything it made: its node containers, their
# volumes and, when nothing else uses it, kind's docker network.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

docker info >/dev/null 2>&1 || exit 0
if command -v kind >/dev/null && kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  step "deleting cluster $CLUSTER_NAME"
  kind delete cluster --name "$CLUSTER_NAME" 2>&1 | sed 's/^/    /'
fi
# Containers kind left behind (a failed create with --retain, say), and their volumes.
leftover=$(docker ps -aq --filter "label=io.x-k8s.kind.cluster=$CLUSTER_NAME")
[ -z "$leftover" ] || docker rm -f -v $leftover >/dev/null
if docker network inspect kind >/dev/null 2>&1 &&
  [ "$(docker network inspect -f '{{len .Containers}}' kind)" = 0 ]; then
  docker network rm kind >/dev/null
fi
rm -f "$KUBECONFIG"
