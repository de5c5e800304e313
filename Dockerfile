# Runtime images of Tributary: Debian slim, the release binaries, a non-root user.
#   docker build --target broker   -> tributary-broker
#   docker build --target operator -> tributary-operator (the controller; the broker
#                                     binary rides along for the local launcher)
# Build context: a directory holding the release binaries (`make images` stages them), so
# the image build needs no toolchain and no network.
ARG BASE_IMAGE=debian:bookworm-slim
FROM $BASE_IMAGE AS runtime
RUN groupadd --system --gid 10001 tributary \
    && useradd --system --uid 10001 --gid tributary --no-create-home \
         --home-dir /var/lib/tributary --shell /usr/sbin/nologin tributary \
    && mkdir -p /var/lib/tributary \
    && chown tributary:tributary /var/lib/tributary
USER 10001:10001
WORKDIR /var/lib/tributary

FROM runtime AS operator
COPY tributary-operator tributary-broker /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/tributary-operator"]

FROM runtime AS broker
COPY tributary-broker /usr/local/bin/tributary-broker
ENV TRIBUTARY_DATA_DIR=/var/lib/tributary \
    TRIBUTARY_LISTEN=0.0.0.0:9092
EXPOSE 9092
ENTRYPOINT ["/usr/local/bin/tributary-broker"]
