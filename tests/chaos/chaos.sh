#!/usr/bin/env bash
# chaos.sh [KAFKA_VERSION]
#
# A bounded schedule of network faults against a 3-broker, 3-zone Tributary cluster whose
# controller, brokers and clients each run in a network namespace of their own (net.sh),
# while Kafka's verifiable producer (acks=all, idempotent, retrying) and verifiable
# consumer (committing) run from the client namespace:
#
#   isolate-leader       a partition leader loses the controller and its followers but not
#                        its clients: it must stop acknowledging, and nothing it wrote
#                        alone may be read; a new leader takes over
#   isolate-follower     a follower loses everyone: it leaves the ISR and rejoins it
#   isolate-controller   the controller loses every broker: no leader or ISR changes,
#                        before or after it returns
#   oneway-to-controller a leader's packets to the controller are dropped (not the reverse)
#   flapping             the link between a leader and a follower goes down and up every
#                        half second for 10 s
#   reset-leader         a leader's connections to its peers are refused with TCP resets
#   slow-follower        300 ms of latency each way between a follower and its leader (a
#                        relay, tests/chaos/delay.py): it stays in the ISR, writes go on
#   lossy-link           30% of the packets between a leader and a follower are dropped
#   disk-full            a broker's data directory (a small tmpfs) fills up: its writes fail
#                        (KAFKA_STORAGE_ERROR), its leaderships move, and once space returns
#                        it rejoins every ISR
#   corrupt-follower     a follower is killed with `kill -9`, bytes in the middle of one of
#                        its segments are flipped, and it restarts: recovery cuts the log at
#                        the damage, the follower re-fetches the rest, and only then is its
#                        new incarnation taken back into the ISR
#
# Then every acknowledged record must have been consumed exactly once, in offset order,
# and no committed offset may have moved back (tests/cluster/verify.py), and the three
# replicas of every partition must hold the same bytes. Prints, per fault, the longest
# pause in acknowledged writes of the partition it hit. Needs root (network namespaces,
# iptables, tmpfs).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=net.sh
source "$HERE/net.sh"
VERSION=${1:-3.6.0}
OPERATOR=${TRIBUTARY_OPERATOR:-$ROOT/target/release/tributary-operator}
BROKER=${TRIBUTARY_BROKER:-$ROOT/target/release/tributary-broker}
KAFKA_BIN=${TRIBUTARY_CACHE:-$HOME/.cache/tributary}/kafka-$VERSION/bin
TOPIC=chaos
BROKERS=(b1 b2 b3)
ZONES=(zone-a zone-b zone-c)
export VERIFY_LABEL=chaos

say() { printf '[chaos] %s\n' "$*"; }
now_ms() { date +%s%3N; }

[[ $(id -u) -eq 0 ]] || { echo "chaos.sh needs root (network namespaces)" >&2; exit 1; }
for bin in "$OPERATOR" "$BROKER"; do
  [[ -x $bin ]] || { echo "not found: $bin (cargo build --release)" >&2; exit 1; }
done
"$ROOT/tests/compat/fetch-kafka.sh" "$VERSION" >/dev/null

WORK=$(mktemp -d "${TMPDIR:-/tmp}/tributary-chaos.XXXXXX")
cleanup() {
  touch "$WORK/stop"
  net_down
  umount "$WORK/b2" 2>/dev/null || true
  [[ -n ${KEEP_WORKDIR:-} ]] || rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  say "FAIL: $*"
  for b in "${BROKERS[@]}"; do tail -n 5 "$WORK/$b.log" | sed "s/^/  $b | /"; done
  exit 1
}

net_up "${#BROKERS[@]}"
# Broker 2 keeps its data on a small tmpfs, for the disk-full fault.
mkdir -p "$WORK/b2"
mount -t tmpfs -o size=48m tributary-chaos "$WORK/b2"
SETTINGS=(--override default.replication.factor=3 --override min.insync.replicas=2
  --override offsets.topic.replication.factor=3)
CONTROLLER="$(ip_of ctl):9090"
in_ns ctl "$OPERATOR" controller --data-dir "$WORK/ctl" --listen "$CONTROLLER" "${SETTINGS[@]}" \
  >"$WORK/ctl.log" 2>&1 &
BOOTSTRAP=
for i in "${!BROKERS[@]}"; do
  b=${BROKERS[$i]}
  addr="$(ip_of "$b"):9092"
  BOOTSTRAP+="${BOOTSTRAP:+,}$addr"
  # Restarted if it exits, as a supervisor would.
  (
    while [[ -d $WORK && ! -e $WORK/stop ]]; do
      in_ns "$b" "$BROKER" --data-dir "$WORK/$b" --listen "$addr" --broker-id "${b#b}" \
        --rack "${ZONES[$i]}" --controller "$CONTROLLER" "${SETTINGS[@]}" >/dev/null 2>>"$WORK/$b.log" || true
      sleep 0.5
    done
  ) &
done

cli_topics() { in_ns cli timeout 60 "$KAFKA_BIN/kafka-topics.sh" --bootstrap-server "$BOOTSTRAP" "$@"; }
# leader_of P [from NODE...]: the leader of partition P as the first answering broker sees it.
leader_of() { in_ns cli python3 "$ROOT/tests/cluster/leader.py" "$(addrs "${@:2}")" "$TOPIC" "$1"; }
isr_of() { in_ns cli python3 "$ROOT/tests/cluster/leader.py" "$(addrs "${@:2}")" "$TOPIC" "$1" isr; }
addrs() {
  local nodes=("$@") out=
  [[ ${#nodes[@]} -gt 0 ]] || nodes=("${BROKERS[@]}")
  for n in "${nodes[@]}"; do out+="${out:+,}$(ip_of "$n"):9092"; done
  echo "$out"
}
others() { for b in "${BROKERS[@]}"; do [[ $b == "$1" ]] || echo "$b"; done; }
state() { for p in 0 1 2; do printf '%s:%s/%s ' "$p" "$(leader_of "$p")" "$(isr_of "$p")"; done; }
event() { echo "$1 $2 ${3#b} $(now_ms)" >>"$WORK/events"; say "$1: broker $3 (partition $2)"; }
# await_in_isr P LEADER NODE SECONDS: polls the ISR of partition P (as LEADER reports it)
# until NODE is in it; the last ISR seen is left in $isr. Fails when time runs out.
await_in_isr() {
  local p=$1 leader=$2 node=$3 polls=$(($4 * 10))
  for _ in $(seq 1 "$polls"); do
    isr=$(isr_of "$p" "$leader")
    [[ ,$isr, == *,${node#b},* ]] && return 0
    sleep 0.1
  done
  return 1
}

for _ in $(seq 1 60); do
  cli_topics --create --topic "$TOPIC" --partitions 3 --replication-factor 3 \
    --config min.insync.replicas=2 >/dev/null 2>&1 && break
  sleep 1
done
[[ $(isr_of 0) == 1,2,3 ]] || fail "topic not created with a full ISR"
say "cluster up in namespaces: controller $CONTROLLER, brokers $BOOTSTRAP"

cat >"$WORK/producer.properties" <<EOF
enable.idempotence=true
max.in.flight.requests.per.connection=5
retries=2147483647
delivery.timeout.ms=120000
request.timeout.ms=5000
EOF
cat >"$WORK/consumer.properties" <<EOF
request.timeout.ms=5000
EOF
in_ns cli timeout 900 "$KAFKA_BIN/kafka-verifiable-producer.sh" --bootstrap-server "$BOOTSTRAP" \
  --topic "$TOPIC" --throughput 300 --acks -1 --repeating-keys 30 \
  --producer.config "$WORK/producer.properties" >"$WORK/producer.jsonl" 2>"$WORK/producer.err" &
PRODUCER=$!
in_ns cli timeout 900 "$KAFKA_BIN/kafka-verifiable-consumer.sh" --bootstrap-server "$BOOTSTRAP" \
  --topic "$TOPIC" --group-id chaos-group --reset-policy earliest --verbose \
  --consumer.config "$WORK/consumer.properties" >"$WORK/consumer.jsonl" 2>"$WORK/consumer.err" &
CONSUMER=$!
sleep 8
: >"$WORK/events"

# 1. A leader cut off from the controller and its followers, still reachable by clients.
L=b$(leader_of 0)
event isolate-leader 0 "$L"
cut "$L" ctl
for o in $(others "$L"); do cut "$L" "$o"; done
sleep 4
mapfile -t rest < <(others "$L")
moved=$(leader_of 0 "${rest[@]}")
[[ b$moved != "$L" && $moved != -1 ]] || fail "partition 0 still led by isolated $L after 4 s"
say "  partition 0 moved to broker $moved; the isolated broker still answers clients"
sleep 4
heal "$L"
sleep 8

# 2. A follower cut off from everyone leaves the ISR, and rejoins after the cut heals.
L=b$(leader_of 1)
F=$(others "$L" | head -n1)
event isolate-follower 1 "$F"
for n in ctl cli $(others "$F"); do cut "$F" "$n"; done
sleep 5
isr=$(isr_of 1 "$L")
[[ ,$isr, != *,${F#b},* ]] || fail "isolated follower $F still in the ISR of partition 1 ($isr)"
say "  ISR of partition 1 without $F: $isr"
heal "$F"
t0=$(now_ms)
await_in_isr 1 "$L" "$F" 15 || fail "$F did not rejoin the ISR of partition 1 within 15 s ($isr)"
say "  $F back in the ISR of partition 1 $(($(now_ms) - t0)) ms after the cut healed"
sleep 4

# 3. The controller cut off from every broker: nothing changes, then or after.
before=$(state)
event isolate-controller 2 "b$(leader_of 2)"
for b in "${BROKERS[@]}"; do cut ctl "$b"; done
sleep 6
during=$(state)
heal ctl
sleep 5
after=$(state)
say "  leaders/ISR before: $before"
[[ $during == "$before" ]] || fail "leadership changed while the controller was cut off: $during"
[[ $after == "$before" ]] || fail "leadership changed when the controller returned: $after"
say "  unchanged while cut off and after it returned"

# 4. A leader's packets to the controller are lost; the controller's still arrive.
L=b$(leader_of 2)
event oneway-to-controller 2 "$L"
cut_oneway "$L" ctl
sleep 6
heal "$L"
sleep 6

# 5. A flapping link between a leader and one follower.
L=b$(leader_of 0)
F=$(others "$L" | head -n1)
event flapping 0 "$L"
for _ in $(seq 1 10); do
  cut "$L" "$F"
  sleep 0.5
  heal "$L"
  sleep 0.5
done
sleep 6

# 6. A leader's connections to its peers refused with resets.
L=b$(leader_of 1)
event reset-leader 1 "$L"
for n in ctl $(others "$L"); do reset "$L" "$n"; done
sleep 5
heal "$L"
sleep 8

# 7. A follower's link to its leader slows to 300 ms each way: it keeps up (the delay is
# far below replica.lag.time.max.ms), stays in the ISR, and writes go on, each waiting
# for its replication round trip.
L=b$(leader_of 2)
F=$(others "$L" | head -n1)
event slow-follower 2 "$F"
delay "$F" "$L" 300
sleep 10
isr=$(isr_of 2 "$L")
[[ ,$isr, == *,${F#b},* ]] || fail "$F left the ISR of partition 2 over a 300 ms link ($isr)"
say "  $F stayed in the ISR of partition 2 over a 300 ms link"
heal "$F"
sleep 6

# 8. The link between a leader and a follower loses 30% of its packets.
L=b$(leader_of 1)
F=$(others "$L" | tail -n1)
event lossy-link 1 "$L"
lossy "$L" "$F" 0.3
sleep 10
heal "$L"
t0=$(now_ms)
await_in_isr 1 "$L" "$F" 15 || fail "$F not in the ISR of partition 1 15 s after the loss stopped ($isr)"
say "  $F in the ISR of partition 1 $(($(now_ms) - t0)) ms after the loss stopped"
sleep 4

# 9. Broker 2's disk fills up; later the space returns.
P=0
for p in 0 1 2; do [[ $(leader_of "$p") == 2 ]] && P=$p; done
event disk-full "$P" b2
dd if=/dev/zero of="$WORK/b2/filler" bs=1M status=none 2>/dev/null || true
sleep 6
grep -q "storage marked failed" "$WORK/b2.log" || fail "broker 2 did not notice its disk was full"
for p in 0 1 2; do
  [[ $(leader_of "$p" b1 b3) != 2 ]] || fail "broker 2 still leads partition $p with a full disk"
  [[ ,$(isr_of "$p" b1 b3), != *,2,* ]] || fail "broker 2 still in the ISR of partition $p with a full disk"
done
say "  broker 2 refuses writes; its leaderships moved and it left every ISR"
rm -f "$WORK/b2/filler"
t0=$(now_ms)
for _ in $(seq 1 200); do
  back=0
  for p in 0 1 2; do [[ ,$(isr_of "$p" b1 b3), == *,2,* ]] && back=$((back + 1)); done
  [[ $back == 3 ]] && break
  sleep 0.1
done
[[ $back == 3 ]] || fail "broker 2 did not rejoin every ISR within 20 s of space returning"
say "  space returned: broker 2 back in every ISR after $(($(now_ms) - t0)) ms"
sleep 4

# 10. A follower crashes and one of its segments is damaged before it restarts.
# The launcher restarts it at once; its new incarnation must leave the ISR (its log is cut
# short) and be taken back only once it has caught up again.
L=b$(leader_of 0)
F=$(others "$L" | tail -n1)
segment=$(find "$WORK/$F/$TOPIC-0" -name '*.log' -size +8k | sort | tail -n1)
[[ -n $segment ]] || fail "no segment of $TOPIC-0 on $F"
event corrupt-follower 0 "$F"
registrations=$(grep -c "registered with the controller" "$WORK/$F.log")
pkill -9 -f -- "--data-dir $WORK/$F " || fail "no broker process for $F"
sleep 0.2
size=$(stat -c %s "$segment")
python3 - "$segment" "$((size / 2))" <<'PY'
import sys
path, at = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(at)
    data = bytearray(f.read(16))
    f.seek(at)
    f.write(bytes(b ^ 0x5A for b in data))
PY
t0=$(now_ms)
# The new incarnation's registration fences the old one, which leaves every ISR; an ISR
# with the broker in it seen after that (and the metadata's few milliseconds to spread)
# is the new incarnation taken back.
for _ in $(seq 1 300); do
  [[ $(grep -c "registered with the controller" "$WORK/$F.log") -gt $registrations ]] && break
  sleep 0.1
done
sleep 0.5
if ! await_in_isr 0 "$L" "$F" 60; then
  # Where the restarted broker is, for whoever reads this failure.
  for pid in $(pgrep -f -- "--data-dir $WORK/$F "); do
    say "  $F (pid $pid): state $(awk '{print $3}' "/proc/$pid/stat")"
    for task in /proc/"$pid"/task/*; do
      say "    thread $(cat "$task/comm"): $(tr '\n' ' ' <"$task/stack" 2>/dev/null | head -c 200)"
    done
    if command -v gdb >/dev/null; then
      gdb -batch -p "$pid" -ex "thread apply all bt 12" 2>/dev/null | grep -E "^(Thread|#)" | head -n 120 | sed 's/^/    /'
    fi
  done
  tail -n 30 "$WORK/$F.log" | sed "s/^/  $F | /"
  fail "$F did not rejoin the ISR of partition 0 within 60 s of its restart"
fi
grep -q "truncated torn or corrupt log tail" "$WORK/$F.log" || fail "$F's recovery did not report the damage"
say "  $F cut its damaged segment at the corruption and was back in the ISR after $(($(now_ms) - t0)) ms"
sleep 4

kill -TERM "$PRODUCER"
wait "$PRODUCER" || true
say "producer stopped; waiting for the consumer to catch up"
"$ROOT/tests/cluster/verify.py" caught-up "$WORK" || fail "the consumer did not catch up"
kill -TERM "$CONSUMER"
wait "$CONSUMER" || true
"$ROOT/tests/cluster/verify.py" check "$WORK" || fail "verification failed (work dir: KEEP_WORKDIR=1 keeps it)"
# Every replica of a partition holds the same batches, byte for byte.
sleep 2
python3 - "$WORK" "$TOPIC" "${BROKERS[@]}" <<'PY' || fail "replicas differ"
import glob, os, sys
work, topic, brokers = sys.argv[1], sys.argv[2], sys.argv[3:]
for p in range(3):
    logs = []
    for b in brokers:
        files = sorted(glob.glob(os.path.join(work, b, f"{topic}-{p}", "*.log")))
        logs.append(b"".join(open(f, "rb").read() for f in files))
    n = min(len(l) for l in logs)
    if n == 0 or any(l[:n] != logs[0][:n] for l in logs):
        sys.exit(f"partition {p}: replicas differ within their first {n} bytes")
    print(f"[chaos] partition {p}: the 3 replicas hold the same {n} bytes")
PY
say "PASS"
