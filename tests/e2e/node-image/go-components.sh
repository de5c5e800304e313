#!/usr/bin/env bash
# Builds Go programs of the test plane from the Go module proxy at pinned versions, into
# OUT_DIR, skipping those already there.
#   node: what the kind node image runs: kubeadm, kubelet, kubectl and the control-plane
#         commands of Kubernetes, etcd and CoreDNS (at the versions kubeadm names), crictl and
#         local-path-provisioner;
#   host: the tools the scripts drive clusters with: kind, kubectl, helm, crictl.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

command -v go >/dev/null || die "go not found: install Go (1.24 or newer) first"
OUT=${1:?usage: go-components.sh OUT_DIR node|host}
SET=${2:?usage: go-components.sh OUT_DIR node|host}
ensure_packages jq:jq
mkdir -p "$OUT"
# Binaries built from other versions (or by another version of this script) are stale.
stamp=$( (pinned_versions; cat "${BASH_SOURCE[0]}") | sha256sum | cut -c1-16)
if [ "$(cat "$OUT/.stamp-$SET" 2>/dev/null)" != "$stamp" ]; then
  case $SET in
    host) rm -f "$OUT"/{kind,kubectl,helm,crictl} ;;
    node) find "$OUT" -maxdepth 1 -type f -delete ;;
  esac
fi
work=$CACHE_DIR/node-build/modules
mkdir -p "$work"

minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
version_ldflags() {
  local flags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

# k8s.io/kubernetes requires its k8s.io/* libraries at v0.0.0 with `replace => ./staging/...`,
# and a dependency's replace lines are ignored, so a small wrapper module maps each of them
# to the published v0.<minor>.<patch> release.
build_kubernetes() {
  local mod=$work/kubernetes-$KUBE_VERSION commands=(kubeadm kubelet kubectl kube-apiserver
    kube-controller-manager kube-scheduler kube-proxy) wanted=("$@") missing=() c
  for c in "${wanted[@]}"; do [ -x "$OUT/$c" ] || missing+=("$c"); done
  [ ${#missing[@]} -gt 0 ] || return 0
  step "building Kubernetes $KUBE_VERSION: ${missing[*]} (about 10 min on 2 cores when cold)"
  mkdir -p "$mod"
  quietly "$CACHE_DIR/logs/go-kubernetes-module.log" kubernetes_module "$mod" "${commands[@]}"
  quietly "$CACHE_DIR/logs/go-kubernetes.log" kubernetes_build "$mod" "${missing[@]}"
}

kubernetes_module() {
  local mod=$1; shift
  (
    cd "$mod"
    if [ ! -f go.sum ]; then
      rm -f go.mod
      go mod init local/kubernetes-build >/dev/null 2>&1
      local upstream staging_version=v0.${KUBE_VERSION#v1.}
      upstream=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | jq -r .GoMod)
      # Same language version and GODEBUG defaults as upstream builds.
      sed -i '/^go /d' go.mod
      grep -E '^(go|godebug) ' "$upstream" >> go.mod
      {
        echo "require k8s.io/kubernetes $KUBE_VERSION"
        echo 'replace ('
        grep -E '^\s*k8s.io/[a-z0-9-]+ => \./staging/' "$upstream" |
          awk -v v="$staging_version" '{print "\t" $1 " => " $1 " " v}'
        echo ')'
      } >> go.mod
      {
        echo '//go:build tools'
        echo 'package tools'
        echo 'import ('
        for c in "$@"; do echo "	_ \"k8s.io/kubernetes/cmd/$c\""; done
        echo ')'
      } > tools.go
      go mod tidy
    fi
  )
}

kubernetes_build() {
  local mod=$1 targets=() c; shift
  for c in "$@"; do targets+=("k8s.io/kubernetes/cmd/$c"); done
  cd "$mod" && go build -ldflags "$(version_ldflags)" -o "$OUT/" "${targets[@]}"
}

# etcd's server module replaces its sibling modules by relative paths, so `go install`
# refuses it; a wrapper module requiring it at the version kubeadm names builds it.
build_etcd() {
  local version=$1 mod=$work/etcd-$1
  [ -x "$OUT/etcd" ] && return 0
  step "building etcd v$version"
  mkdir -p "$mod"
  quietly "$CACHE_DIR/logs/go-etcd.log" etcd_build "$mod" "$version"
}

etcd_build() {
  local mod=$1 version=$2
  (
    cd "$mod"
    if [ ! -f go.sum ]; then
      rm -f go.mod
      go mod init local/etcd-build >/dev/null 2>&1
      local upstream
      upstream=$(go mod download -json "go.etcd.io/etcd/server/v3@v$version" | jq -r .GoMod)
      go mod edit -require="go.etcd.io/etcd/server/v3@v$version"
      # Pin the sibling modules that etcd's own go.mod replaces to the same release.
      grep -oE 'go\.etcd\.io/etcd/[a-z0-9/]+/v3 => \.\./[a-z0-9/]+' "$upstream" | awk '{print $1}' |
        while read -r sibling; do go mod edit -require="$sibling@v$version"; done
      printf '//go:build tools\npackage tools\nimport _ "go.etcd.io/etcd/server/v3"\n' > tools.go
      go mod tidy
    fi
    go build -ldflags "-s -w" -o "$OUT/etcd" go.etcd.io/etcd/server/v3
  )
}

# Modules that have no replace lines install directly.
install_module() {
  local name=$1 pkg=$2 ldflags=${3:-}
  [ -x "$OUT/$name" ] && return 0
  step "building $name ($pkg)"
  GOBIN=$OUT quietly "$CACHE_DIR/logs/go-$name.log" go install -ldflags "-s -w $ldflags" "$pkg"
}

build_crictl() {
  install_module crictl "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" \
    "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION"
}

if [ "$SET" = host ]; then
  build_kubernetes kubectl
  build_crictl
  install_module kind "sigs.k8s.io/kind@$KIND_VERSION"
  install_module helm "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" \
    "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
  echo "$stamp" >"$OUT/.stamp-host"
  exit 0
fi

build_kubernetes kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy
# kubeadm decides which etcd and CoreDNS releases the control plane runs.
images=$("$OUT/kubeadm" config images list --kubernetes-version "$KUBE_VERSION")
etcd_version=$(echo "$images" | sed -n 's#.*/etcd:\([0-9.]*\)-[0-9]*$#\1#p')
coredns_version=$(echo "$images" | sed -n 's#.*/coredns:v\([0-9.]*\)$#\1#p')
build_etcd "$etcd_version"
install_module coredns "github.com/coredns/coredns@v$coredns_version"
build_crictl
install_module local-path-provisioner "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION"
echo "$stamp" >"$OUT/.stamp-node"
step "Go components ready in $OUT"
