#!/usr/bin/env bash
# Makes sure a Docker engine answers that can run kind's privileged node containers.
# Where one already runs (a laptop, a CI runner), it is used as it is. Where none does,
# Debian's docker.io is installed and dockerd is started with the project's own
# daemon.json, whose default runtime is a runc wrapper that drops capabilities missing
# from the host's bounding set (see runc-capfilter): without it, Docker 20.10 cannot start
# --privileged containers on such hosts.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

state=$CACHE_DIR/docker

# True when the host's capability bounding set lacks a capability the kernel knows.
host_lacks_capabilities() {
  local bounding last
  bounding=$((16#$(awk '/^CapBnd/ {print $2}' /proc/self/status)))
  last=$(cat /proc/sys/kernel/cap_last_cap)
  [ "$bounding" -ne $(((1 << (last + 1)) - 1)) ]
}

# 0: a usable engine answers; 1: none answers; exits when one answers but cannot be used.
engine_usable() {
  local out runtime
  if ! out=$(docker info 2>&1); then
    if grep -qi 'permission denied' <<<"$out"; then
      die "Docker runs but $(id -un) may not use it: sudo usermod -aG docker $(id -un), then log in again"
    fi
    return 1
  fi
  runtime=$(docker info -f '{{.DefaultRuntime}}')
  if host_lacks_capabilities && [ "$runtime" != capfilter ]; then
    if [ -d /run/systemd/system ]; then
      step "stopping the system's dockerd: this host lacks capabilities it would grant --privileged containers"
      sudo_cmd systemctl stop docker.service docker.socket
      return 1
    fi
    die "the running dockerd (runtime $runtime) cannot start privileged containers on this host: stop it and run this again"
  fi
}

engine_usable && exit 0
ensure_packages dockerd:docker.io jq:jq
# Installing docker.io starts the system's dockerd where systemd runs.
engine_usable && exit 0

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
sudo_cmd true # ask for a password, if any, before going to the background
sudo_cmd env PATH="/usr/sbin:/usr/bin:$PATH" setsid nohup dockerd --config-file "$state/daemon.json" \
  >"$state/dockerd.log" 2>&1 </dev/null &
for _ in $(seq 1 60); do
  if engine_usable; then step "dockerd is up"; exit 0; fi
  sleep 1
done
tail -n 30 "$state/dockerd.log" >&2
die "dockerd did not start within 60 s"
