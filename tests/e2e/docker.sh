#!/usr/bin/env bash
# Makes sure a Docker engine answers. Where one already runs (a laptop, a CI runner), it is
# used as it is. Where none does, Debian's docker.io is installed and dockerd is started
# with the project's own daemon.json, whose default runtime is a runc wrapper that drops
# capabilities missing from the host's bounding set (see runc-capfilter).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

docker info >/dev/null 2>&1 && exit 0

need=()
command -v dockerd >/dev/null || [ -x /usr/sbin/dockerd ] || need+=(docker.io)
command -v jq >/dev/null || need+=(jq)
command -v debootstrap >/dev/null || [ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  step "installing Debian packages: ${need[*]}"
  sudo_cmd apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive sudo_cmd apt-get install -y -q "${need[@]}" >/dev/null
fi

state=$CACHE_DIR/docker
mkdir -p "$state"
install -m 0755 "$E2E_DIR/runc-capfilter" "$state/runc-capfilter"
cat >"$state/daemon.json" <<JSON
{
  "runtimes": { "capfilter": { "path": "$state/runc-capfilter" } },
  "default-runtime": "capfilter",
  "log-driver": "json-file",
  "log-opts": { "max-size": "10m", "max-file": "2" }
}
JSON

step "starting dockerd (log: $state/dockerd.log)"
sudo_cmd env PATH="/usr/sbin:/usr/bin:$PATH" setsid nohup dockerd --config-file "$state/daemon.json" \
  >"$state/dockerd.log" 2>&1 </dev/null &
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && { step "dockerd is up"; exit 0; }
  sleep 1
done
tail -n 30 "$state/dockerd.log" >&2
die "dockerd did not start within 60 s"
