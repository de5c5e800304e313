# Tributary: build, run and test.
#
#   make run     build and run a local 3-zone cluster (prints its bootstrap servers)
#   make test    install what the tests need, then run every test
#   make bench   Tributary beside Apache Kafka on this machine, scenario by scenario (tests/bench/)
#   make peers   the test suites of librdkafka, franz-go, Kafka's clients, kafka-python, kcat
#   make chaos   network faults, disk faults and crashes under Kafka's verifiable clients
#   make e2e     the Kubernetes suite on a kind cluster (make kind-up / kind-down for one to use)

CARGO ?= cargo
KAFKA_CLI_VERSIONS ?= 3.6.0 4.4.0
DATA_DIR ?= ./tributary-data
ZONES ?= 3
BROKERS_PER_ZONE ?= 1

.PHONY: all build release run run-broker deps lint chart unit fuzz compat peers cluster chaos e2e kind-up kind-down images test bench bench-smoke crds clean

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

SHELL_SCRIPTS = $(wildcard scripts/*.sh tests/*/*.sh tests/e2e/*/*.sh fuzz/*.sh) .ci/run tests/e2e/runc-capfilter \
	tests/e2e/node-image/images/iptables-wrapper

lint: deps
	$(CARGO) fmt --all -- --check
	cd fuzz && $(CARGO) fmt -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	shellcheck -x -S warning $(SHELL_SCRIPTS)

# The Helm chart: lint, and render with the default values and with one watched namespace.
HELM = $${TRIBUTARY_CACHE:-$$HOME/.cache/tributary}/bin/helm
chart:
	tests/e2e/tools.sh
	$(HELM) lint --strict charts/tributary-operator
	$(HELM) template tributary charts/tributary-operator --namespace tributary >/dev/null
	$(HELM) template tributary charts/tributary-operator --namespace tributary --set watchNamespace=kafka >/dev/null
	! $(HELM) template tributary charts/tributary-operator --set replicaCount=0 >/dev/null 2>&1

unit: deps
	$(CARGO) test --workspace

# Coverage-guided fuzzing (libFuzzer): request framing and decoding, record-batch
# validation, log recovery; FUZZ_SECONDS per target (fuzz/run.sh documents longer runs).
FUZZ_SECONDS ?= 60
fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

compat: deps release
	tests/compat/run-tributary.sh $(KAFKA_CLI_VERSIONS)
	tests/compat/run-tributary.sh --cluster 3.6.0

# The peers' own test suites: librdkafka's, franz-go's kgo tests (RF 1 and RF 3), Kafka's
# ClientCompatibilityTest (3.6 and 4.x) and TransactionalMessageCopier, kafka-python and
# Debian's kcat (tests/peers/).
peers: deps release
	tests/peers/run.sh

cluster: deps release
	tests/cluster/launcher.sh
	tests/cluster/limits.sh
	tests/cluster/clock.sh 3.6.0
	tests/cluster/failover.sh 3.6.0
	tests/cluster/group-protocol.sh 4.4.0
	tests/cluster/streams-eos.sh 4.4.0

# Faults in network namespaces (needs root): partitions, one-way cuts, flapping, resets.
chaos: deps release
	tests/chaos/chaos.sh 3.6.0

# The Kubernetes test plane: a kind cluster with three zone-labeled workers (tests/e2e/).
kind-up:
	tests/e2e/kind-up.sh

kind-down:
	tests/e2e/kind-down.sh

images: deps release
	tests/e2e/images.sh

e2e: deps release
	tests/e2e/run.sh

test: lint chart unit fuzz compat peers cluster bench-smoke chaos e2e

# Every scenario, alternating rounds against a warmed-up Kafka; writes target/bench/bench.{md,csv}.
bench: deps release
	tests/bench/bench.py

# The benchmark once with tiny sizes: it must keep running (not a measurement).
bench-smoke: deps release
	tests/bench/bench.py --smoke --out target/bench-smoke

# The CRDs are generated from the operator's Rust types (a unit test fails when they drift).
crds:
	$(CARGO) run -q -p tributary-operator -- crd --write crds
	$(CARGO) run -q -p tributary-operator -- crd --write charts/tributary-operator/crds

clean:
	$(CARGO) clean
