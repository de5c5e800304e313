#!/usr/bin/env python3
"""bench.py: Tributary beside Apache Kafka on this machine, scenario by scenario.

Both systems run here at the same time (idle while the other is measured), driven by the
same clients: Kafka's perf tools (`kafka-producer-perf-test`, `kafka-consumer-perf-test`,
`EndToEndLatency`, the verifiable producer), librdkafka's `rdkafka_performance` as a
second opinion, and `KeyedLoad.java` (many Java producers, keyed records). Every scenario
runs in alternating rounds (Tributary first in even rounds, Kafka first in odd ones);
the first round of each scenario warms both up and is discarded. Kafka is KRaft from the
Maven jars with the heap its scripts default to (1 GiB); both systems use the same flush
policy: the page cache, no fsync per write (durability by replication), Kafka's default.

Scenarios:
  a  1 broker, RF 1: produce 1 KiB records, acks=all (Java perf tool and librdkafka)
  c  consume the topic of (a) from the beginning: cold (page cache dropped) and warm
  h  1 broker: 100 B and 1 KiB records, no compression, lz4 and zstd
  b  3 brokers in 3 zones, RF 3, min.insync.replicas 2, acks=all: produce
  g  backlog drain: a consumer reads (b)'s topic from the start while a producer goes on
  d  3 brokers: end-to-end latency (one record at a time) and produce latency at a fixed rate
  e  3 brokers: 1,000 partitions, 50 Java producers with keyed records
  f  3 brokers: kill -9 of a partition leader under acks=all load; time to the next ack

Per scenario: records/s, MB/s, latency percentiles, broker CPU seconds per GB moved (the
operator process counts for Tributary: it is the controller), peak RSS (reset before each
scenario), and the ratio Tributary / Kafka. Writes bench.md and bench.csv to --out and
prints the markdown table. --smoke runs every scenario once with tiny sizes (a check that
the benchmark runs, not a measurement).
"""

import argparse
import csv
import datetime
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import leader as metadata_probe  # noqa: E402  (tests/cluster/leader.py: Metadata v1 without a JVM)

HERE = ROOT / "tests" / "bench"
COMPAT = ROOT / "tests" / "compat"
CACHE = Path(os.environ.get("TRIBUTARY_CACHE", Path.home() / ".cache" / "tributary"))
KAFKA_VERSION = os.environ.get("KAFKA_VERSION", "4.4.0")
KAFKA_HOME = CACHE / f"kafka-{KAFKA_VERSION}"
KBIN = KAFKA_HOME / "bin"
CLK_TCK = os.sysconf("SC_CLK_TCK")
KAFKA_HEAP = "-Xmx1G -Xms1G"  # what kafka-server-start.sh defaults to
MIB = 1024 * 1024


def say(message):
    print(f"[bench] {message}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """A scenario could not run (a tool failed, a system did not start)."""


def run(cmd, timeout=600, env=None, check=True):
    """Runs a tool to completion; returns its stdout (stderr kept for the error)."""
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-15:]
        raise BenchError(f"{Path(cmd[0]).name} exited {result.returncode}:\n  " + "\n  ".join(tail))
    return result.stdout


# ------------------------------------------------------------------ processes ----


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total / CLK_TCK


def reset_peak_rss(pids):
    for pid in pids:
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
        except OSError:
            pass


def _status_mib(pids, field):
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(field):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def peak_rss_mib(pids):
    return _status_mib(pids, "VmHWM:")


def rss_mib(pids):
    return _status_mib(pids, "VmRSS:")


def port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_ports(count, start=20000):
    """The first run of COUNT consecutive free loopback ports from START."""
    port = start
    while port < 60000:
        if all(port_free(port + i) for i in range(count)):
            return port
        port += count + 7
    raise BenchError("no free ports")


def wait_for(predicate, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise BenchError(f"timed out after {timeout}s waiting for {what}")


def drop_page_cache():
    """Drops clean pages so the next read comes from disk; False when not permitted."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("1")
        return True
    except OSError:
        return False


def partition_metadata(bootstrap, topic):
    """{partition: (leader, isr)} from the first broker that answers (no JVM start-up)."""
    for address in bootstrap.split(","):
        try:
            return metadata_probe.partitions(address, topic)
        except (OSError, EOFError, struct.error):
            continue
    return {}


# -------------------------------------------------------------------- systems ----


class System:
    """One running cluster of either kind; `label` is tributary or kafka."""

    label = ""

    def __init__(self, work, nodes):
        self.work, self.nodes = work, nodes
        self.bootstrap = ""

    def pids(self):
        """Processes whose CPU and memory count as the cluster's."""
        raise NotImplementedError

    def node_pid(self, node_id):
        raise NotImplementedError

    def kill_node(self, node_id):
        pid = self.node_pid(node_id)
        if not pid:
            raise BenchError(f"{self.label}: no process for broker {node_id}")
        os.kill(pid, signal.SIGKILL)

    def revive_node(self, node_id):
        """Brings a killed node back (Tributary's launcher does so by itself)."""


class Tributary(System):
    label = "tributary"

    def start(self):
        port = free_ports(self.nodes)
        self.data = self.work / "tributary"
        log = open(self.work / "tributary.log", "w")
        overrides = ["--override", "group.initial.rebalance.delay.ms=0"]
        if self.nodes == 1:
            binary = self.work / "bin" / "tributary-broker"
            cmd = [str(binary), "--data-dir", str(self.data), "--listen", f"127.0.0.1:{port}"]
            self.proc = subprocess.Popen(cmd + overrides, stdout=log, stderr=log)
            self.bootstrap = f"127.0.0.1:{port}"
            wait_for(lambda: not port_free(port), 30, "the Tributary broker to listen")
        else:
            binary = self.work / "bin" / "tributary-operator"
            cmd = [str(binary), "local", "--zones", str(self.nodes), "--brokers-per-zone", "1",
                   "--data-dir", str(self.data), "--base-port", str(port)]
            self.proc = subprocess.Popen(cmd + overrides, stdout=log, stderr=log)

            def ready():
                if self.proc.poll() is not None:
                    raise BenchError("tributary-operator exited during start-up")
                found = re.findall(r"^bootstrap servers: (\S+)", (self.work / "tributary.log").read_text(), re.M)
                self.bootstrap = found[-1] if found else ""
                return bool(self.bootstrap)

            wait_for(ready, 120, "the Tributary cluster")
        say(f"tributary: {self.nodes} broker(s) at {self.bootstrap}")

    def node_pid(self, node_id):
        out = subprocess.run(["pgrep", "-f", f"tributary-broker.*{self.data}/broker-{node_id}( |$)"],
                             capture_output=True, text=True).stdout.split()
        return int(out[0]) if out else None

    def pids(self):
        if self.nodes == 1:
            return [self.proc.pid]
        out = subprocess.run(["pgrep", "-f", f"tributary-broker.*{self.data}/broker-"],
                             capture_output=True, text=True).stdout.split()
        return [self.proc.pid] + [int(p) for p in out]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if self.nodes > 1:
            subprocess.run(["pkill", "-9", "-f", f"tributary-broker.*{self.data}/"], check=False)


class Kafka(System):
    label = "kafka"

    def start(self):
        self.dir = self.work / "kafka"
        env = dict(os.environ, KAFKA_HEAP_OPTS=KAFKA_HEAP)
        script = str(COMPAT / "kafka-reference.sh")
        if self.nodes == 1:
            self.port = free_ports(2)
            run([script, "start", KAFKA_VERSION, str(self.dir), str(self.port)], env=env, timeout=300)
            self.bootstrap = f"127.0.0.1:{self.port}"
        else:
            self.port = free_ports(2 * self.nodes)
            self.bootstrap = run([script, "start-cluster", KAFKA_VERSION, str(self.dir), str(self.port),
                                  str(self.nodes)], env=env, timeout=400).strip().splitlines()[-1]
        say(f"kafka: {self.nodes} node(s) at {self.bootstrap}")

    def _pidfile(self, node_id):
        return self.dir / "kafka.pid" if self.nodes == 1 else self.dir / f"node-{node_id}" / "kafka.pid"

    def node_pid(self, node_id):
        try:
            pid = int(self._pidfile(node_id).read_text())
            os.kill(pid, 0)
            return pid
        except (OSError, ValueError):
            return None

    def pids(self):
        return [p for p in (self.node_pid(i) for i in range(1, self.nodes + 1)) if p]

    def revive_node(self, node_id):
        node = self.dir / f"node-{node_id}"
        env = dict(os.environ, KAFKA_HEAP_OPTS=KAFKA_HEAP, LOG_DIR=str(node / "logs"))
        # Started from a shell that exits at once: the node is not this process's child, so
        # kafka-reference.sh's stop sees it gone when it exits (no zombie left to reap).
        pid = run(["bash", "-c", 'nohup "$0" "$1" >>"$2" 2>&1 </dev/null & echo $!',
                   str(KBIN / "kafka-server-start.sh"), str(node / "server.properties"), str(node / "kafka.out")],
                  env=env, timeout=30).strip()
        self._pidfile(node_id).write_text(pid)

    def stop(self):
        script = str(COMPAT / "kafka-reference.sh")
        if self.nodes == 1:
            run([script, "stop", KAFKA_VERSION, str(self.dir), str(self.port)], check=False, timeout=120)
        else:
            run([script, "stop-cluster", KAFKA_VERSION, str(self.dir), str(self.port), str(self.nodes)],
                check=False, timeout=180)


# ---------------------------------------------------------------------- tools ----


def create_topic(system, topic, partitions, rf, configs=()):
    cmd = [str(KBIN / "kafka-topics.sh"), "--bootstrap-server", system.bootstrap, "--create",
           "--topic", topic, "--partitions", str(partitions), "--replication-factor", str(rf)]
    for config in configs:
        cmd += ["--config", config]
    run(cmd, timeout=180)
    # Wait until every partition has a leader, as a client would see it.
    wait_for(lambda: len([p for p, (leader, _) in partition_metadata(system.bootstrap, topic).items()
                          if leader >= 0]) == partitions, 120, f"leaders for {topic}")


def delete_topic(system, topic):
    run([str(KBIN / "kafka-topics.sh"), "--bootstrap-server", system.bootstrap, "--delete", "--topic", topic],
        timeout=180, check=False)


def producer_perf(bootstrap, topic, records, size, throughput=-1, props=()):
    out = run([str(KBIN / "kafka-producer-perf-test.sh"), "--topic", topic, "--num-records", str(records),
               "--record-size", str(size), "--throughput", str(throughput), "--producer-props",
               f"bootstrap.servers={bootstrap}", "acks=all", *props], timeout=900)
    final = [line for line in out.splitlines() if line.startswith(f"{records} records sent")]
    if not final:
        raise BenchError("no summary from kafka-producer-perf-test")
    m = re.match(r"\d+ records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
                 r"([\d.]+) ms max latency, ([\d.]+) ms 50th, ([\d.]+) ms 95th, ([\d.]+) ms 99th, "
                 r"([\d.]+) ms 99.9th", final[-1])
    if not m:
        raise BenchError(f"cannot parse: {final[-1]}")
    rec_s, mb_s, _avg, _max, p50, _p95, p99, p999 = (float(x) for x in m.groups())
    return {"rec_s": rec_s, "MB_s": mb_s, "p50_ms": p50, "p99_ms": p99, "p999_ms": p999}


CONSUMER_COUNT_OPTION = None


def consumer_perf(bootstrap, topic, records):
    global CONSUMER_COUNT_OPTION
    tool = str(KBIN / "kafka-consumer-perf-test.sh")
    if CONSUMER_COUNT_OPTION is None:
        help_text = run([tool, "--help"], check=False, timeout=60)
        CONSUMER_COUNT_OPTION = "--num-records" if "--num-records" in help_text else "--messages"
    out = run([tool, "--bootstrap-server", bootstrap, "--topic", topic, CONSUMER_COUNT_OPTION, str(records),
               "--timeout", "60000", "--group", f"bench-{time.time_ns()}"], timeout=900)
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if "data.consumed.in.MB" in line and i + 1 < len(lines):
            header = [h.strip() for h in line.split(",")]
            row = dict(zip(header, (v.strip() for v in lines[i + 1].split(","))))
            got = int(float(row["data.consumed.in.nMsg"]))
            if got < records:  # it stops at the first fetch that reaches the count
                raise BenchError(f"consumed {got} of {records} records")
            return {"rec_s": float(row["nMsg.sec"]), "MB_s": float(row["MB.sec"]),
                    "fetch_MB_s": float(row["fetch.MB.sec"])}
    raise BenchError("no summary from kafka-consumer-perf-test")


def rdkafka_performance():
    """librdkafka's example perf tool, compiled once against the peers' librdkafka build."""
    binary = CACHE / "bin" / "rdkafka_performance"
    if binary.exists():
        return binary
    sources = sorted(CACHE.glob("librdkafka/src-*"))
    if not sources or not (sources[-1] / "src" / "librdkafka-static.a").exists():
        return None
    src = sources[-1]
    binary.parent.mkdir(parents=True, exist_ok=True)
    run(["cc", "-O2", "-o", str(binary), str(src / "examples" / "rdkafka_performance.c"), f"-I{src / 'src'}",
         str(src / "src" / "librdkafka-static.a"), "-lpthread", "-lz", "-lm", "-ldl", "-lrt"], timeout=300)
    return binary


def _rdkafka_last_row(out):
    rows = [line for line in out.splitlines() if line.startswith("|") and "elapsed" not in line]
    if not rows:
        raise BenchError("no summary from rdkafka_performance")
    return [c.strip() for c in rows[-1].strip("|").split("|")]


def rdkafka_produce(bootstrap, topic, records, size, partition=None):
    cmd = [str(rdkafka_performance()), "-P", "-t", topic, "-b", bootstrap, "-s", str(size),
           "-c", str(records), "-X", "acks=all", "-u", "-q"]
    if partition is not None:
        cmd += ["-p", str(partition)]
    cols = _rdkafka_last_row(run(cmd, timeout=900))
    # elapsed | msgs | bytes | rtt | dr | dr_m/s | dr_MB/s | dr_err | tx_err | outq | offset
    if int(cols[4]) != records or int(cols[7]) != 0:
        raise BenchError(f"rdkafka_performance delivered {cols[4]} of {records}, {cols[7]} errors")
    return {"rec_s": float(cols[5]), "MB_s": float(cols[6]) * 1e6 / MIB}


def rdkafka_consume(bootstrap, topic, records):
    cols = _rdkafka_last_row(run([str(rdkafka_performance()), "-C", "-t", topic, "-b", bootstrap, "-p", "0",
                                  "-o", "beginning", "-c", str(records), "-u", "-q"], timeout=900))
    # elapsed | msgs | bytes | rtt | m/s | MB/s | rx_err | offset
    if int(cols[1]) != records:
        raise BenchError(f"rdkafka_performance consumed {cols[1]} of {records}")
    return {"rec_s": float(cols[4]), "MB_s": float(cols[5]) * 1e6 / MIB}


def end_to_end_latency(bootstrap, topic, records, size):
    out = run([str(KBIN / "kafka-run-class.sh"), "org.apache.kafka.tools.EndToEndLatency", bootstrap, topic,
               str(records), "all", str(size)], timeout=900)
    m = re.search(r"Percentiles: 50th = ([\d.]+), 99th = ([\d.]+), 99.9th = ([\d.]+)", out)
    if not m:
        raise BenchError("no percentiles from EndToEndLatency")
    p50, p99, p999 = (float(x) for x in m.groups())
    return {"p50_ms": p50, "p99_ms": p99, "p999_ms": p999}


def keyed_load(bootstrap, topic, producers, seconds, value_bytes):
    out = run(["java", "-Xmx1g", "-cp", str(KAFKA_HOME / "libs" / "*"), str(HERE / "KeyedLoad.java"),
               bootstrap, topic, str(producers), str(seconds), str(value_bytes)], timeout=seconds + 300)
    line = [line for line in out.splitlines() if line.startswith("keyed ")]
    if not line:
        raise BenchError("no summary from KeyedLoad")
    fields = dict(f.split("=", 1) for f in line[-1].split()[1:])
    return {k: float(v) for k, v in fields.items()}


# ------------------------------------------------------------------- results ----


class Results:
    """Every measured value by (scenario, metric, system); the first round is a warm-up."""

    def __init__(self):
        self.values = {}
        self.order = []
        self.notes = []

    def add(self, scenario, metric, system, value, unit, better):
        key = (scenario, metric)
        if key not in self.order:
            self.order.append(key)
        self.values.setdefault(key, {"unit": unit, "better": better}).setdefault(system, []).append(value)

    def rows(self):
        for scenario, metric in self.order:
            entry = self.values[(scenario, metric)]
            t, k = entry.get("tributary", []), entry.get("kafka", [])
            tm = statistics.median(t) if t else None
            km = statistics.median(k) if k else None
            ratio = tm / km if tm is not None and km else None
            yield scenario, metric, entry["unit"], entry["better"], t, k, tm, km, ratio


def fmt(value):
    if value is None:
        return "–"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def spread(values):
    if not values:
        return "–"
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


# ------------------------------------------------------------------ scenarios ----


class Bench:
    def __init__(self, args, work):
        self.args, self.work = args, work
        self.results = Results()
        self.smoke = args.smoke
        self.rounds = 1 if args.smoke else args.rounds + 1  # + the discarded warm-up

    def sizes(self, full, smoke):
        return smoke if self.smoke else full

    def record(self, scenario, metric, system, round_, value, unit, better):
        if round_ == 0 and not self.smoke:
            return  # warm-up
        self.results.add(scenario, metric, system.label, value, unit, better)

    def measured(self, system, scenario, round_, nbytes, fn):
        """Runs fn(), recording the system's CPU seconds per GB and peak RSS around it."""
        pids = system.pids()
        reset_peak_rss(pids)
        cpu0 = cpu_seconds(pids)
        out = fn()
        cpu = cpu_seconds(pids) - cpu0
        self.record(scenario, "broker CPU s/GB", system, round_, cpu / (nbytes / 1e9), "s/GB", "lower")
        self.record(scenario, "peak RSS", system, round_, peak_rss_mib(pids), "MiB", "lower")
        return out

    def record_produce(self, scenario, system, round_, out):
        for key, metric, unit, better in (("MB_s", "produce MB/s (Java)", "MB/s", "higher"),
                                          ("p50_ms", "produce p50 (Java)", "ms", "lower"),
                                          ("p99_ms", "produce p99 (Java)", "ms", "lower"),
                                          ("p999_ms", "produce p99.9 (Java)", "ms", "lower")):
            self.record(scenario, metric, system, round_, out[key], unit, better)

    def librdkafka_produce(self, s, scenario, round_, records, partitions, rf, configs=(), partition=None):
        """The second opinion on a produce scenario, on a topic of its own (when built)."""
        if not rdkafka_performance():
            return
        topic = f"{scenario}-rd-{round_}"
        create_topic(s, topic, partitions, rf, configs)
        rd = rdkafka_produce(s.bootstrap, topic, records, 1024, partition=partition)
        self.record(scenario, "produce MB/s (librdkafka)", s, round_, rd["MB_s"], "MB/s", "higher")
        delete_topic(s, topic)

    def round_numbers(self, scenario):
        """The rounds of `scenario` (none when it is not selected)."""
        return range(self.rounds if scenario in self.args.scenarios else 0)

    def alternate(self, systems, round_):
        return systems if round_ % 2 == 0 else list(reversed(systems))

    # (a), (c), (h): one broker each
    def single_broker(self, systems):
        records = self.sizes(500_000, 5_000)
        for r in self.round_numbers("a"):
            for s in self.alternate(systems, r):
                topic = f"a-{r}"
                create_topic(s, topic, 1, 1)
                say(f"(a) round {r} {s.label}: {records} x 1 KiB, acks=all")
                out = self.measured(s, "a", r, records * 1024,
                                    lambda: producer_perf(s.bootstrap, topic, records, 1024))
                self.record_produce("a", s, r, out)
                self.librdkafka_produce(s, "a", r, records, 1, 1, partition=0)
                # (c) the same topic, from the beginning
                cold = drop_page_cache()
                if not cold and r == 0:
                    self.results.notes.append("(c) cold: the page cache could not be dropped here")
                out = self.measured(s, "c", r, records * 1024, lambda: consumer_perf(s.bootstrap, topic, records))
                self.record("c", "consume MB/s cold (Java)", s, r, out["MB_s"], "MB/s", "higher")
                out = consumer_perf(s.bootstrap, topic, records)
                self.record("c", "consume MB/s warm (Java)", s, r, out["MB_s"], "MB/s", "higher")
                self.record("c", "consume fetch MB/s warm (Java)", s, r, out["fetch_MB_s"], "MB/s", "higher")
                if rdkafka_performance():
                    rd = rdkafka_consume(s.bootstrap, topic, records)
                    self.record("c", "consume MB/s warm (librdkafka)", s, r, rd["MB_s"], "MB/s", "higher")
                delete_topic(s, topic)

        variants = [(100, "none"), (100, "lz4"), (100, "zstd"), (1024, "none"), (1024, "lz4"), (1024, "zstd")]
        for r in self.round_numbers("h"):
            for s in self.alternate(systems, r):
                for size, codec in variants:
                    records = self.sizes(1_000_000 if size == 100 else 200_000, 5_000)
                    topic = f"h-{size}-{codec}-{r}"
                    create_topic(s, topic, 1, 1)
                    say(f"(h) round {r} {s.label}: {records} x {size} B, {codec}")
                    out = self.measured(s, f"h {size} B {codec}", r, records * size, lambda: producer_perf(
                        s.bootstrap, topic, records, size, props=[f"compression.type={codec}"]))
                    self.record(f"h {size} B {codec}", "produce rec/s", s, r, out["rec_s"], "rec/s", "higher")
                    self.record(f"h {size} B {codec}", "produce p99", s, r, out["p99_ms"], "ms", "lower")
                    delete_topic(s, topic)

    # (b), (g), (d), (e), (f): three brokers each
    def cluster(self, systems):
        records = self.sizes(300_000, 5_000)
        for r in self.round_numbers("b"):
            for s in self.alternate(systems, r):
                topic = f"b-{r}"
                create_topic(s, topic, 3, 3, ["min.insync.replicas=2"])
                say(f"(b) round {r} {s.label}: {records} x 1 KiB, RF 3, acks=all")
                out = self.measured(s, "b", r, records * 1024,
                                    lambda: producer_perf(s.bootstrap, topic, records, 1024))
                self.record_produce("b", s, r, out)
                self.librdkafka_produce(s, "b", r, records, 3, 3, ["min.insync.replicas=2"])
                self.backlog_drain(s, r, topic, records)
                delete_topic(s, topic)

        for r in self.round_numbers("d"):
            for s in self.alternate(systems, r):
                topic = f"d-{r}"
                create_topic(s, topic, 3, 3, ["min.insync.replicas=2"])
                say(f"(d) round {r} {s.label}: end-to-end latency")
                out = end_to_end_latency(s.bootstrap, topic, self.sizes(3_000, 200), 1024)
                for metric, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
                    self.record("d", f"end-to-end {name}", s, r, out[metric], "ms", "lower")
                rate = 2_000
                count = self.sizes(40_000, 2_000)
                out = self.measured(s, "d", r, count * 1024, lambda: producer_perf(
                    s.bootstrap, topic, count, 1024, throughput=rate))
                for metric, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")):
                    self.record("d", f"produce {name} at {rate} rec/s (Java)", s, r, out[metric], "ms", "lower")
                delete_topic(s, topic)

        partitions = self.sizes(1000, 60)
        producers = self.sizes(50, 5)
        seconds = self.sizes(20, 3)
        for r in self.round_numbers("e"):
            for s in self.alternate(systems, r):
                topic = f"e-{r}"
                say(f"(e) round {r} {s.label}: {partitions} partitions, {producers} keyed producers")
                pids = s.pids()
                rss0 = rss_mib(pids)
                t0 = time.time()
                create_topic(s, topic, partitions, 3, ["min.insync.replicas=2"])
                self.record("e", f"create {partitions} partitions s", s, r, time.time() - t0, "s", "lower")
                self.record("e", "RSS growth per partition", s, r, max(rss_mib(pids) - rss0, 0) * 1024 / partitions,
                            "KiB", "lower")
                reset_peak_rss(pids)
                cpu0 = cpu_seconds(pids)
                out = keyed_load(s.bootstrap, topic, producers, seconds, 512)
                cpu = cpu_seconds(pids) - cpu0
                if out["errors"]:
                    self.results.notes.append(f"(e) round {r} {s.label}: {out['errors']:.0f} send errors")
                self.record("e", "produce rec/s", s, r, out["rec_s"], "rec/s", "higher")
                self.record("e", "produce p99", s, r, out["p99_ms"], "ms", "lower")
                self.record("e", "send errors", s, r, out["errors"], "", "lower")
                self.record("e", "broker CPU s/GB", s, r, cpu / max(out["records"] * 512 / 1e9, 1e-9), "s/GB",
                            "lower")
                self.record("e", "peak RSS", s, r, peak_rss_mib(pids), "MiB", "lower")
                delete_topic(s, topic)

        if "f" in self.args.scenarios:
            for s in systems:
                self.failover(s)

    def backlog_drain(self, s, r, topic, backlog):
        """(g): a consumer starts at offset 0 of (b)'s topic while a producer keeps writing."""
        rate = 1_000
        count = self.sizes(20_000, 1_000)
        say(f"(g) round {r} {s.label}: drain {backlog} records while producing {rate} rec/s")
        result = {}
        producer = threading.Thread(target=lambda: result.update(
            producer_perf(s.bootstrap, topic, count, 1024, throughput=rate)))
        producer.start()
        time.sleep(1)
        try:
            out = consumer_perf(s.bootstrap, topic, backlog)
        finally:
            producer.join()
        self.record("g", "drain MB/s (Java)", s, r, out["MB_s"], "MB/s", "higher")
        if result:
            self.record("g", "produce p99 during drain (Java)", s, r, result["p99_ms"], "ms", "lower")

    def failover(self, s):
        """(f): the Java verifiable producer (keyed, acks=all) while partition leaders die."""
        topic = "f"
        create_topic(s, topic, 3, 3, ["min.insync.replicas=2"])
        kills = self.sizes(self.args.rounds, 1)
        log = self.work / f"failover-{s.label}.jsonl"
        with open(log, "w") as out:
            producer = subprocess.Popen(
                [str(KBIN / "kafka-verifiable-producer.sh"), "--bootstrap-server", s.bootstrap, "--topic", topic,
                 "--throughput", "1000", "--acks", "-1", "--repeating-keys", "30"],
                stdout=out, stderr=subprocess.DEVNULL)
        try:
            time.sleep(5)
            for k in range(kills):
                partition = k % 3
                leader = partition_metadata(s.bootstrap, topic)[partition][0]
                t_kill = time.time() * 1000
                say(f"(f) {s.label}: kill -9 broker {leader}, leader of partition {partition}")
                s.kill_node(leader)
                time.sleep(self.sizes(15, 12))
                next_ack, longest = self._outage(log, partition, t_kill)
                if next_ack is None:
                    raise BenchError(f"(f) {s.label}: no acknowledged write to partition {partition} after the kill")
                say(f"(f) {s.label}: next ack after {next_ack:.0f} ms, longest pause {longest:.0f} ms")
                self.results.add("f", "kill -9 to next ack (Java)", s.label, next_ack, "ms", "lower")
                self.results.add("f", "longest pause in acks, 15 s after (Java)", s.label, longest, "ms", "lower")
                s.revive_node(leader)
                wait_for(lambda: all(len(isr) == 3 for _, isr in partition_metadata(s.bootstrap, topic).values()),
                         180, f"{s.label}: the ISR to be whole again")
                time.sleep(3)
        finally:
            producer.terminate()
            producer.wait()
        delete_topic(s, topic)

    @staticmethod
    def _outage(log, partition, kill_ms):
        """(ms from the kill to the partition's next acknowledgement, its longest pause in
        acknowledgements from the kill to now). Acknowledgements within 20 ms of the kill
        were answered before it, on their way to the client, and do not count as next."""
        acks = []
        for line in Path(log).read_text().splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if event.get("name") == "producer_send_success" and event.get("partition") == partition:
                acks.append(event["timestamp"])
        after = sorted(t for t in acks if t > kill_ms)
        settled = [t for t in after if t > kill_ms + 20]
        if not settled:
            return None, None
        edges = [kill_ms] + after
        longest = max(b - a for a, b in zip(edges, edges[1:]))
        return settled[0] - kill_ms, longest


# ---------------------------------------------------------------- machine ----


def machine_limits(work, smoke):
    """Loopback TCP and sequential-write bandwidth of this machine, MB/s."""
    chunk = bytes(MIB)
    total = 64 * MIB if smoke else 2048 * MIB
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def sink():
        conn, _ = server.accept()
        buf = bytearray(MIB)
        view = memoryview(buf)
        while conn.recv_into(view):
            pass
        conn.close()

    thread = threading.Thread(target=sink)
    thread.start()
    client = socket.create_connection(server.getsockname())
    t0 = time.time()
    sent = 0
    while sent < total:
        client.sendall(chunk)
        sent += len(chunk)
    client.close()
    thread.join()
    tcp = total / MIB / (time.time() - t0)
    server.close()

    path = work / "disk-probe"
    t0 = time.time()
    with open(path, "wb") as f:
        for _ in range(total // MIB):
            f.write(chunk)
        f.flush()
        buffered = total / MIB / (time.time() - t0)
        os.fdatasync(f.fileno())
    synced = total / MIB / (time.time() - t0)
    path.unlink()
    return tcp, buffered, synced


# ------------------------------------------------------------------- report ----


TARGETS = {  # (scenario, metric): (target, met(ratio Tributary / Kafka, Tributary's median))
    ("a", "produce MB/s (Java)"): ("≥ 2×", lambda r, t: r >= 2),
    ("b", "produce MB/s (Java)"): ("≥ 2×", lambda r, t: r >= 2),
    ("c", "consume MB/s cold (Java)"): ("≥ 2×", lambda r, t: r >= 2),
    ("c", "consume MB/s warm (Java)"): ("≥ 2×", lambda r, t: r >= 2),
    ("b", "produce p99 (Java)"): ("≤ 0.3×", lambda r, t: r <= 0.3),
    ("d", "produce p99 at 2000 rec/s (Java)"): ("≤ 0.3×", lambda r, t: r <= 0.3),
    ("a", "broker CPU s/GB"): ("≤ 0.3×", lambda r, t: r <= 0.3),
    ("b", "broker CPU s/GB"): ("≤ 0.3×", lambda r, t: r <= 0.3),
    ("a", "peak RSS"): ("≤ 0.1×", lambda r, t: r <= 0.1),
    ("b", "peak RSS"): ("≤ 0.1×", lambda r, t: r <= 0.1),
    ("e", "send errors"): ("none", lambda r, t: t == 0),
    ("f", "kill -9 to next ack (Java)"): ("< 1 s", lambda r, t: t < 1000),
}


def report(results, header, out_dir):
    lines = header + ["",
                      "| scenario | metric | unit | Tributary median (min–max) | Kafka median (min–max) "
                      "| Tributary / Kafka | target |",
                      "|---|---|---|---|---|---|---|"]
    with open(out_dir / "bench.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["scenario", "metric", "unit", "better", "tributary_median", "tributary_min",
                         "tributary_max", "kafka_median", "kafka_min", "kafka_max", "ratio"])
        for scenario, metric, unit, better, t, k, tm, km, ratio in results.rows():
            target = ""
            if (scenario, metric) in TARGETS and tm is not None:
                text, met = TARGETS[(scenario, metric)]
                if ratio is not None or scenario in ("e", "f"):
                    target = f"{text} {'met' if met(ratio or 0, tm) else 'NOT met'}"
            lines.append(f"| {scenario} | {metric} | {unit} | {spread(t)} | {spread(k)} | "
                         f"{'–' if ratio is None else f'{ratio:.2f}'} | {target} |")
            writer.writerow([scenario, metric, unit, better, tm, min(t) if t else None, max(t) if t else None,
                             km, min(k) if k else None, max(k) if k else None, ratio])
    if results.notes:
        lines += [""] + [f"- {note}" for note in results.notes]
    text = "\n".join(lines) + "\n"
    (out_dir / "bench.md").write_text(text)
    print(text)


# ---------------------------------------------------------------------- main ----


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="every scenario once, tiny sizes")
    parser.add_argument("--rounds", type=int, default=3, help="measured rounds per scenario (after a warm-up)")
    parser.add_argument("--only", default="single,cluster", help="single, cluster or both (comma-separated)")
    parser.add_argument("--scenarios", default="abcdefgh",
                        help="scenario letters to run (c runs with a, g with b)")
    parser.add_argument("--systems", default="tributary,kafka", help="tributary, kafka or both")
    parser.add_argument("--out", type=Path, default=ROOT / "target" / "bench")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args()

    for binary in ("tributary-broker", "tributary-operator"):
        if not (ROOT / "target" / "release" / binary).exists():
            raise SystemExit(f"build first: cargo build --release ({binary} missing)")
    subprocess.run([str(COMPAT / "fetch-kafka.sh"), KAFKA_VERSION], check=True, stdout=sys.stderr)
    rdkafka_performance()

    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="tributary-bench."))
    (work / "bin").mkdir()
    for binary in ("tributary-broker", "tributary-operator"):  # a rebuild cannot swap them mid-run
        shutil.copy2(ROOT / "target" / "release" / binary, work / "bin" / binary)
    bench = Bench(args, work)
    started = []
    try:
        tcp, buffered, disk = machine_limits(work, args.smoke)
        say(f"machine: loopback TCP {tcp:,.0f} MB/s, sequential write {buffered:,.0f} MB/s to the page cache, "
            f"{disk:,.0f} MB/s to the disk")
        for group in args.only.split(","):
            nodes = 1 if group == "single" else 3
            systems = [kind(work / f"{group}-{kind.label}", nodes) for kind in (Tributary, Kafka)
                       if kind.label in args.systems.split(",")]
            for s in systems:
                s.work.mkdir(parents=True, exist_ok=True)
                (s.work / "bin").symlink_to(work / "bin")
                s.start()
                started.append(s)
            if group == "single":
                bench.single_broker(systems)
            else:
                bench.cluster(systems)
            for s in systems:
                s.stop()
                started.remove(s)
    finally:
        for s in started:
            s.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.machine())
    mem = int(Path("/proc/meminfo").read_text().split()[1]) / MIB
    mode = "smoke run (tiny sizes, one round: not a measurement)" if args.smoke else \
        f"median of {args.rounds} rounds after a discarded warm-up, alternating order"
    header = [f"# Tributary beside Apache Kafka {KAFKA_VERSION} ({datetime.date.today()})", "",
              f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.system()} {platform.release()}; "
              f"loopback TCP {tcp:,.0f} MB/s; sequential write of 2 GiB: {buffered:,.0f} MB/s to the page cache, "
              f"{disk:,.0f} MB/s until on disk (fdatasync).",
              f"{mode}. Kafka: KRaft, heap 1 GiB per node; both flush to the page cache "
              "(no fsync per write). MB/s = 2^20 bytes/s of record values."]
    for scenario, metric, _unit, _better, t, _k, tm, _km, _ratio in bench.results.rows():
        if (scenario, metric) in (("a", "produce MB/s (Java)"), ("a", "produce MB/s (librdkafka)")) and tm:
            bench.results.notes.append(f"(a) {metric}: Tributary at {tm * MIB / 1e6 / buffered:.0%} of this "
                                       f"machine's sequential write to the page cache, {tm * MIB / 1e6 / disk:.0%} "
                                       f"of its write to disk, {tm * MIB / 1e6 / tcp:.0%} of loopback TCP")
    report(bench.results, header, args.out)


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        say(f"ERROR: {e}")
        sys.exit(1)
