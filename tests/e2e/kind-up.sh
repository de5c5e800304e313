#!/usr/bin/env bash
# Creates the kind cluster `tributary`: one control-plane node and three workers labeled
# topology.kubernetes.io/zone = zone-a, zone-b, zone-c, with kind's default StorageClass
# (local-path) and CoreDNS. The node image is $KIND_NODE_IMAGE when set, the official
# kindest/node where a registry answers, and otherwise one built here from source.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
started=$SECONDS

"$E2E_DIR/docker.sh"
"$E2E_DIR/tools.sh"

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME" &&
  [ "$(kind get nodes --name "$CLUSTER_NAME" | wc -l)" = 4 ]; then
  step "cluster $CLUSTER_NAME exists; reusing it"
  kind export kubeconfig --name "$CLUSTER_NAME" >/dev/null
else
  "$E2E_DIR/kind-down.sh"
  image=${KIND_NODE_IMAGE:-}
  if [ -z "$image" ]; then
    if docker image inspect "$OFFICIAL_NODE_IMAGE" >/dev/null 2>&1 ||
      docker pull -q "$OFFICIAL_NODE_IMAGE" >/dev/null 2>&1; then
      image=$OFFICIAL_NODE_IMAGE
    else
      step "no registry reachable: using a node image built from source"
      image=$("$E2E_DIR/node-image/build.sh" | tail -n1)
    fi
  fi
  mkdir -p "$(dirname "$KUBECONFIG")"
  step "creating cluster $CLUSTER_NAME from $image"
  kind create cluster --name "$CLUSTER_NAME" --image "$image" --config "$E2E_DIR/kind-config.yaml" \
    --wait 0s 2>&1 | sed 's/^/    /'
fi

step "waiting for every node to be Ready"
kubectl wait --for=condition=Ready node --all --timeout=300s | sed 's/^/    /'
step "waiting for cluster DNS and the default StorageClass"
# Cluster DNS stays on the control-plane node, which no test stops: a zone's node taken
# down with every DNS replica on it would be a cluster failure, not the brokers'.
kubectl -n kube-system patch deployment coredns --type=strategic -p \
  '{"spec":{"template":{"spec":{"nodeSelector":{"node-role.kubernetes.io/control-plane":""}}}}}' |
  sed 's/^/    /'
kubectl -n kube-system rollout status deployment/coredns --timeout=300s | sed 's/^/    /'
kubectl -n local-path-storage rollout status deployment/local-path-provisioner --timeout=300s | sed 's/^/    /'
kubectl get storageclass -o jsonpath='{range .items[?(@.metadata.annotations.storageclass\.kubernetes\.io/is-default-class=="true")]}{.metadata.name}{"\n"}{end}' |
  grep -q . || die "the cluster has no default StorageClass"
kubectl get nodes -L topology.kubernetes.io/zone | sed 's/^/    /'
step "cluster $CLUSTER_NAME is ready in $((SECONDS - started)) s (KUBECONFIG=$KUBECONFIG)"
