# A small image for the smoke suite's pods: busybox (sh, httpd, nslookup) and curl on Debian.
ARG BASE_IMAGE=debian:bookworm-slim
FROM $BASE_IMAGE
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends busybox-static curl \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
