#!/usr/bin/env bash
# Installs what building and testing Tributary needs on a Debian machine, idempotently:
# C toolchain pieces for librdkafka (built from source by the tests), Java 17 and Maven
# for the Apache Kafka CLI, shellcheck and jq for the scripts, libfaketime, and the Kafka CLI jars
# themselves (cached under ${TRIBUTARY_CACHE:-~/.cache/tributary}). The Kubernetes test
# plane installs what it needs itself (tests/e2e/docker.sh and tools.sh).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v cc >/dev/null || need_apt+=(build-essential)
command -v pkg-config >/dev/null || need_apt+=(pkg-config)
# librdkafka 2.12's CMake build includes <curl/curl.h> even with curl disabled.
[ -e /usr/include/curl/curl.h ] || ls /usr/include/*/curl/curl.h >/dev/null 2>&1 || need_apt+=(libcurl4-openssl-dev)
[ -e /usr/include/zlib.h ] || need_apt+=(zlib1g-dev)
command -v java >/dev/null || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need_apt+=(maven)
command -v shellcheck >/dev/null || need_apt+=(shellcheck)
command -v jq >/dev/null || need_apt+=(jq)
# libfaketime, for the clock-jump test.
ls /usr/lib/*/faketime/libfaketimeMT.so.1 >/dev/null 2>&1 || need_apt+=(faketime)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "==> installing Debian packages: ${need_apt[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q "${need_apt[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
  echo "cargo not found: install Rust with rustup (https://rustup.rs) first" >&2
  exit 1
fi

for version in ${KAFKA_VERSIONS:-3.6.0 4.4.0}; do
  "$here/tests/compat/fetch-kafka.sh" "$version"
done
# Kafka Streams, for the exactly-once word count of tests/cluster/streams-eos.sh.
"$here/tests/streams/fetch-streams.sh" 4.4.0
