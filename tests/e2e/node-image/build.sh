#!/usr/bin/env bash
# Builds a kind node image equivalent to kindest/node for $KUBE_VERSION without any
# container registry: Debian from debootstrap, kind's base files from the sigs.k8s.io/kind
# module, every Kubernetes component compiled from the Go module proxy, the control-plane
# images tagged exactly as kubeadm and kind expect and preloaded into the node's
# containerd. Prints the image name on its last line. Reuses the image when one built
# from the same pinned versions and scripts exists.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

here=$E2E_DIR/node-image
ensure_packages jq:jq gcc:build-essential >&2
fingerprint=$( (pinned_versions; cat "$here"/build.sh "$here"/go-components.sh "$here"/Dockerfile.base \
  "$here"/kindnet-agent.sh "$here"/images/*) | sha256sum | cut -c1-12)
node_image=tributary.local/kind-node:$KUBE_VERSION-$fingerprint
if docker image inspect "$node_image" >/dev/null 2>&1; then
  echo "$node_image"
  exit 0
fi
started=$SECONDS

"$E2E_DIR/base-image.sh" >&2
build=$CACHE_DIR/node-build/$KUBE_VERSION
bin=$build/bin
mkdir -p "$bin"

kind_module=$(go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | jq -r .Dir)
[ -d "$kind_module/images/base/files" ] || die "kind module $KIND_VERSION has no images/base/files"

# 1. kind's base image, with Debian's container runtime.
base_image=tributary.local/kind-base:$KIND_VERSION-$fingerprint
if ! docker image inspect "$base_image" >/dev/null 2>&1; then
  step "building the node base image (Debian packages + kind $KIND_VERSION base files)" >&2
  context=$build/base-context
  rm -rf "$context" && mkdir -p "$context"
  cp -r "$kind_module/images/base/files" "$context/files"
  chmod -R u+w,go-w "$context/files"
  find "$context/files" -type f -exec chmod 0644 {} +
  chmod 0755 "$context/files/usr/local/bin/"* "$context/files/kind/bin/"*
  cp "$here/Dockerfile.base" "$context/Dockerfile"
  quietly "$CACHE_DIR/logs/node-base.log" docker build --force-rm --network=host -t "$base_image" "$context"
fi

# 2. Go programs and the pause binary.
"$here/go-components.sh" "$bin" node >&2
k8s_module=$GOMODCACHE/k8s.io/kubernetes@$KUBE_VERSION
if [ ! -x "$bin/pause" ]; then
  step "building pause" >&2
  pause_version=$(sed -n 's/^TAG ?= *//p' "$k8s_module/build/pause/Makefile")
  gcc -Os -static -Wall -Werror -DVERSION="v$pause_version" -o "$bin/pause" \
    "$k8s_module/build/pause/linux/pause.c"
fi

# 3. The images kubeadm and kind run, under exactly the names they expect.
images=$("$bin/kubeadm" config images list --kubernetes-version "$KUBE_VERSION")
image_named() { echo "$images" | grep -E "/$1:" || die "kubeadm lists no $1 image"; }
kind_const() { sed -n "s/^const $1 = \"\(.*\)\"$/\1/p" "$kind_module"/pkg/build/nodeimage/const*.go; }
sandbox_image=$(sed -n 's/^ *sandbox_image = "\(.*\)"$/\1/p' "$kind_module/images/base/files/etc/containerd/config.toml")
kindnetd_image=$(kind_const kindnetdImage)
provisioner_image=$(kind_const storageProvisionerImage)
helper_image=$(kind_const storageHelperImage)

context=$build/image-context
rm -rf "$context" && mkdir -p "$context/bin" "$context/rootfs/tmp" "$context/rootfs/etc"
chmod 1777 "$context/rootfs/tmp"
printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/:/sbin/nologin\n' >"$context/rootfs/etc/passwd"
printf 'root:x:0:\nnobody:x:65534:\n' >"$context/rootfs/etc/group"
cp "$bin"/* "$context/bin/"
# kindnetd's module is not served by the Go module proxy, so the node runs a small agent
# of ours under kindnetd's image name and path (see kindnet-agent.sh).
install -m 0755 "$here/kindnet-agent.sh" "$context/bin/kindnetd"
cp "$here"/images/* "$context/"
saved=$build/images
rm -rf "$saved" && mkdir -p "$saved"
image_build() {
  local tag=$1 dockerfile=$2; shift 2
  step "image $tag" >&2
  quietly "$CACHE_DIR/logs/image-build.log" docker build --force-rm --network=host -f "$context/$dockerfile" -t "$tag" "$@" "$context"
}
for component in kube-apiserver kube-controller-manager kube-scheduler etcd; do
  image_build "$(image_named "$component")" static.Dockerfile --build-arg BINARY="$component"
done
image_build "$provisioner_image" static.Dockerfile --build-arg BINARY=local-path-provisioner
image_build "$(image_named coredns)" coredns.Dockerfile
image_build "$(image_named pause)" pause.Dockerfile
docker tag "$(image_named pause)" "$sandbox_image"
image_build "$(image_named kube-proxy)" netfilter.Dockerfile --build-arg BINARY=kube-proxy
image_build "$kindnetd_image" netfilter.Dockerfile --build-arg BINARY=kindnetd --build-arg DESTINATION=/bin
image_build "$helper_image" local-path-helper.Dockerfile
mapfile -t preload < <(printf '%s\n' $images "$sandbox_image" "$kindnetd_image" "$provisioner_image" \
  "$helper_image" | sort -u)

# 4. The node: kind's base plus the Kubernetes binaries, version, manifests and the
# preloaded images, committed as one image (as `kind build node-image` does).
step "assembling $node_image" >&2
node=$(docker run -d --entrypoint=sleep --security-opt seccomp=unconfined "$base_image" infinity)
trap 'docker rm -f "$node" >/dev/null 2>&1 || true' EXIT
for tool in kubeadm kubelet kubectl; do docker cp "$bin/$tool" "$node:/usr/bin/$tool"; done
docker cp "$bin/crictl" "$node:/usr/local/bin/crictl"
docker exec "$node" chown root:root /usr/bin/kubeadm /usr/bin/kubelet /usr/bin/kubectl /usr/local/bin/crictl
docker exec "$node" mkdir -p /kind/manifests
printf '%s' "$KUBE_VERSION" | docker exec -i "$node" sh -c 'cat > /kind/version'
# kind's default CNI and storage manifests are Go string constants of its node-image
# builder; they are cut out of the module source with their image names filled in.
kind_manifest() {
  awk -v name="$1" 'inside && /^`$/ {exit} inside {print} $0 ~ "^const " name " = `$" {inside = 1}' \
    "$kind_module"/pkg/build/nodeimage/const*.go |
    sed -e "s#\` + kindnetdImage + \`#$kindnetd_image#" \
      -e "s#\` + storageProvisionerImage + \`#$provisioner_image#" \
      -e "s#\` + storageHelperImage + \`#$helper_image#"
}
kind_manifest defaultCNIManifest | docker exec -i "$node" sh -c 'cat > /kind/manifests/default-cni.yaml'
kind_manifest defaultStorageManifest | docker exec -i "$node" sh -c 'cat > /kind/manifests/default-storage.yaml'

docker exec "$node" sh -c 'nohup containerd >/var/log/containerd-build.log 2>&1 &'
for _ in $(seq 1 60); do docker exec "$node" test -S /run/containerd/containerd.sock && break; sleep 1; done
for image in "${preload[@]}"; do
  step "preloading $image" >&2
  docker save "$image" | docker exec -i "$node" ctr -n k8s.io images import --all-platforms --no-unpack --digests - >/dev/null
  docker exec "$node" ctr -n k8s.io images label "$image" io.cri-containerd.pinned=pinned >/dev/null
done
docker exec "$node" ctr -n k8s.io images ls -q | sort >"$build/preloaded.txt"
for image in "${preload[@]}"; do
  grep -qxF "$image" "$build/preloaded.txt" || die "image $image is missing from the node's containerd"
done
docker exec "$node" pkill containerd || true
for _ in $(seq 1 60); do docker exec "$node" pgrep -x containerd >/dev/null || break; sleep 0.5; done
docker exec "$node" rm -f /var/log/containerd-build.log
docker commit --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
  --change 'CMD []' "$node" "$node_image" >/dev/null
# Older builds of the node and its base are superseded.
docker images --format '{{.Repository}}:{{.Tag}}' |
  grep -E '^tributary\.local/kind-(node|base):' | grep -vxF -e "$node_image" -e "$base_image" |
  xargs -r docker rmi >/dev/null 2>&1 || true
step "node image $node_image built in $((SECONDS - started)) s ($(docker image inspect -f '{{.Size}}' "$node_image" | awk '{printf "%d MB", $1/1e6}'))" >&2
echo "$node_image"
