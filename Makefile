# Tributary: build, run and test.
#
#   make run     build and run a local 3-zone cluster (prints its bootstrap servers)
#   make test    install what the tests need, then run every test
#   make bench   produce/consume throughput beside Apache Kafka on this machine

CARGO ?= cargo
KAFKA_CLI_VERSIONS ?= 3.6.0 4.4.0
DATA_DIR ?= ./tributary-data
ZONES ?= 3
BROKERS_PER_ZONE ?= 1

.PHONY: all build release run run-broker deps lint unit compat cluster test bench bench-cluster clean

all: build

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release --workspace

run: release
	./target/release/tributary-operator local --zones $(ZONES) --brokers-per-zone $(BROKERS_PER_ZONE) --data-dir $(DATA_DIR)

run-broker: release
	./target/release/tributary-broker --data-dir $(DATA_DIR)

deps:
	KAFKA_VERSIONS="$(KAFKA_CLI_VERSIONS)" scripts/install-deps.sh

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: deps
	$(CARGO) test --workspace

compat: deps release
	tests/compat/run-tributary.sh $(KAFKA_CLI_VERSIONS)
	tests/compat/run-tributary.sh --cluster 3.6.0

cluster: deps release
	tests/cluster/failover.sh 3.6.0

test: lint unit compat cluster

bench: deps release
	tests/bench/compare.sh

bench-cluster: deps release
	tests/bench/compare-cluster.sh

clean:
	$(CARGO) clean
