# Apache Kafka's CLI tools and the users' walkthrough, to run against brokers from a pod.
# Build context: kafka-<version>/ (from tests/compat/fetch-kafka.sh) and compat/.
ARG BASE_IMAGE=debian:bookworm-slim
FROM $BASE_IMAGE
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      openjdk-17-jre-headless procps \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*
ARG KAFKA_VERSION=3.6.0
COPY kafka-${KAFKA_VERSION}/ /opt/tributary-cache/kafka-${KAFKA_VERSION}/
COPY compat/ /opt/tributary-tests/compat/
ENV TRIBUTARY_CACHE=/opt/tributary-cache
WORKDIR /opt/tributary-tests
CMD ["sleep", "infinity"]
