#!/usr/bin/env bash
# Builds the project's images (tributary/broker, tributary/operator) and the e2e suite's
# helper images from the release binaries, and loads them into the kind cluster.
#   images.sh           build and load
#   images.sh --build   build only
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tag=${IMAGE_TAG:-dev}
release=${CARGO_TARGET_DIR:-$REPO_DIR/target}/release
context=${CARGO_TARGET_DIR:-$REPO_DIR/target}/images
for binary in tributary-broker tributary-operator; do
  [ -x "$release/$binary" ] || die "$release/$binary is missing: run 'make release' first"
done
# The binaries run on Debian bookworm (glibc 2.36) in the images.
newest_glibc=$(objdump -T "$release/tributary-broker" "$release/tributary-operator" |
  grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -n1)
if [ "$(printf '%s\n' "$newest_glibc" GLIBC_2.36 | sort -V | tail -n1)" != GLIBC_2.36 ]; then
  die "the release binaries need $newest_glibc, newer than bookworm's 2.36: build them on Debian bookworm"
fi
"$E2E_DIR/docker.sh"
"$E2E_DIR/base-image.sh"

build() {
  local image=$1 dockerfile=$2 dir=$3; shift 3
  step "building $image"
  quietly "$CACHE_DIR/logs/image-$(basename "${image%%:*}").log" \
    docker build --force-rm --network=host --label dev.tributary.build=e2e -t "$image" -f "$dockerfile" "$@" "$dir"
}
rm -rf "$context" && mkdir -p "$context"/{runtime,e2e-tools,kafka-cli}
# Release builds keep line tables for profiling; the images do without them.
for binary in tributary-broker tributary-operator; do
  objcopy --strip-debug "$release/$binary" "$context/runtime/$binary"
done
build "tributary/broker:$tag" "$REPO_DIR/Dockerfile" "$context/runtime" --target broker
build "tributary/operator:$tag" "$REPO_DIR/Dockerfile" "$context/runtime" --target operator
build "tributary/e2e-tools:$tag" "$E2E_DIR/images/e2e-tools.Dockerfile" "$context/e2e-tools"
"$REPO_DIR/tests/compat/fetch-kafka.sh" 3.6.0 >/dev/null
cp -r "$CACHE_DIR/kafka-3.6.0" "$context/kafka-cli/"
cp -r "$REPO_DIR/tests/compat" "$context/kafka-cli/compat"
build "tributary/kafka-cli:$tag" "$E2E_DIR/images/kafka-cli.Dockerfile" "$context/kafka-cli"
# Earlier builds of these images, now untagged.
docker image prune -f --filter label=dev.tributary.build=e2e >/dev/null
[ "${1:-}" = --build ] && exit 0

step "loading images into cluster $CLUSTER_NAME"
kind load docker-image --name "$CLUSTER_NAME" "tributary/broker:$tag" "tributary/operator:$tag" \
  "tributary/e2e-tools:$tag" 2>&1 | sed 's/^/    /'
# The CLI image is large and only the zone-a pod runs it.
zone_a=$(kubectl get node -l topology.kubernetes.io/zone=zone-a -o jsonpath='{.items[0].metadata.name}')
kind load docker-image --name "$CLUSTER_NAME" --nodes "$zone_a" "tributary/kafka-cli:$tag" 2>&1 | sed 's/^/    /'
