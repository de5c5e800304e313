# Tributary: build, run and test.
#
#   make run     build and run a broker with defaults (prints its bootstrap servers)
#   make test    install what the tests need, then run every test
#   make bench   produce/consume throughput beside Apache Kafka on this machine

CARGO ?= cargo
KAFKA_CLI_VERSIONS ?= 3.6.0 4.4.0
DATA_DIR ?= ./tributary-data

.PHONY: all build release run deps lint unit compat test bench clean

all: build

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --release -p tributary-broker

run: release
	./target/release/tributary-broker --data-dir $(DATA_DIR)

deps:
	KAFKA_VERSIONS="$(KAFKA_CLI_VERSIONS)" scripts/install-deps.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit: deps
	$(CARGO) test --workspace

compat: deps release
	tests/compat/run-tributary.sh $(KAFKA_CLI_VERSIONS)

test: lint unit compat

bench: deps release
	tests/bench/compare.sh

clean:
	$(CARGO) clean
