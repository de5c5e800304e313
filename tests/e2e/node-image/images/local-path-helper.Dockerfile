# The helper pod local-path-provisioner runs to create and delete volume directories:
# it needs sh, mkdir and rm, here from a static busybox.
ARG BASE_IMAGE=debian:bookworm-slim
FROM $BASE_IMAGE AS stage
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends busybox-static \
    && mkdir -p /opt/stage/bin \
    && cp /bin/busybox /opt/stage/bin/busybox \
    && for tool in sh mkdir rm ls; do ln -s busybox "/opt/stage/bin/$tool"; done

FROM scratch
COPY --from=stage /opt/stage/ /
ENV PATH=/bin
