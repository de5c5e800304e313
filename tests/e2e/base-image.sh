#!/usr/bin/env bash
# Provides the Debian base image that the project's Dockerfiles and the offline node image
# build FROM, under its official name (debian:bookworm-slim). Where a registry answers, the
# official image is pulled; where none does, a minimal Debian bookworm is built with
# debootstrap from Debian's archive and imported under the same name, so the Dockerfiles
# stay unchanged.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

image=${BASE_IMAGE:-debian:bookworm-slim}
docker image inspect "$image" >/dev/null 2>&1 && exit 0

if docker pull -q "$image" >/dev/null 2>&1; then
  step "pulled $image"
  exit 0
fi

mirror=${DEBIAN_MIRROR:-$(sed -n 's#^URIs: *\(http[^ ]*/debian\)$#\1#p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n1)}
mirror=${mirror:-http://deb.debian.org/debian}
ensure_packages debootstrap:debootstrap
rootfs=$(mktemp -d /tmp/tributary-rootfs.XXXXXX)
trap 'sudo_cmd rm -rf "$rootfs"' EXIT
step "no registry reachable: building $image with debootstrap from $mirror"
sudo_cmd true # ask for a password, if any, before going to the background
quietly "$CACHE_DIR/logs/debootstrap.log" sudo_cmd debootstrap --variant=minbase bookworm "$rootfs" "$mirror"
# Like the official slim image: no apt lists, caches or downloaded packages, no
# documentation or translations, and dpkg told to leave them out of later installs.
sudo_cmd rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/*
printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
  'path-exclude /usr/share/man/*' 'path-exclude /usr/share/info/*' 'path-exclude /usr/share/locale/*' \
  'path-exclude /usr/share/groff/*' 'path-exclude /usr/share/lintian/*' |
  sudo_cmd tee "$rootfs/etc/dpkg/dpkg.cfg.d/slim" >/dev/null
sudo_cmd tar -C "$rootfs" -c . | docker import --change 'CMD ["bash"]' - "$image" >/dev/null
step "imported $image ($(docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%d MB", $1/1e6}'))"
