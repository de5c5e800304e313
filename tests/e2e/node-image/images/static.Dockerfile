# A single static binary on an empty filesystem, for the control-plane components, etcd
# and local-path-provisioner, whose manifests start them by name from PATH.
FROM scratch
ARG BINARY
COPY rootfs/ /
COPY bin/${BINARY} /usr/local/bin/${BINARY}
ENV PATH=/usr/local/bin:/usr/bin:/bin
