#!/usr/bin/env bash
# launcher.sh
#
# The local launcher (`tributary-operator local`) as a process supervisor:
#   1. a broker whose port is taken cannot start: the launcher says why and retries with a
#      growing delay (a handful of attempts in 8 s, not hundreds); once the port is free the
#      cluster comes up;
#   2. `kill -9` of the launcher takes its brokers with it: no broker process is left and
#      every broker port can be bound again.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=local-cluster.sh
source "$HERE/local-cluster.sh"
say() { printf '[launcher] %s\n' "$*"; }
fail() { say "FAIL: $*"; sed 's/^/  | /' "$WORK/cluster.log" | tail -30; exit 1; }

PORT=$(free_base_port 3)
TAKEN=$((PORT + 1))
# Hold broker 2's port until told to let go.
python3 -c '
import socket, sys, time, os
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen()
while not os.path.exists(sys.argv[2]): time.sleep(0.1)
' "$TAKEN" "$WORK/release" &
HOLDER=$!
PIDS+=("$HOLDER")
sleep 0.5

"$OPERATOR" local --zones 3 --brokers-per-zone 1 --data-dir "$DATA" --base-port "$PORT" >"$WORK/cluster.log" 2>&1 &
CLUSTER=$!
PIDS+=("$CLUSTER")
sleep 8
attempts=$(grep -c "^broker 2 (zone-b) exited" "$WORK/cluster.log" || true)
say "port $TAKEN taken for 8 s: broker 2 was started $((attempts + 1)) time(s)"
grep -m1 "^broker 2 (zone-b) exited" "$WORK/cluster.log" | sed 's/^/  | /'
((attempts >= 2)) || fail "broker 2 was not retried"
((attempts <= 8)) || fail "broker 2 was restarted $attempts times in 8 s: no backoff"
grep -q "^broker 2 (zone-b) exited.*binding 127.0.0.1:$TAKEN.*[Aa]ddress.*in use.*restarting in" "$WORK/cluster.log" \
  || fail "the exit message does not say the port is in use"
grep -q "^bootstrap servers:" "$WORK/cluster.log" && fail "the cluster claimed to be up without broker 2"

touch "$WORK/release"
wait "$HOLDER"
for _ in $(seq 1 400); do
  grep -q "^bootstrap servers:" "$WORK/cluster.log" && break
  sleep 0.1
done
grep -q "^bootstrap servers:" "$WORK/cluster.log" || fail "the cluster did not come up once the port was free"
say "port released: $(grep "^broker 2 (zone-b) ready" "$WORK/cluster.log")"

pgrep -f "tributary-broker.*$DATA" >/dev/null || fail "no broker process found"
kill -9 "$CLUSTER"
wait "$CLUSTER" 2>/dev/null || true
for _ in $(seq 1 50); do
  pgrep -f "tributary-broker.*$DATA" >/dev/null || break
  sleep 0.1
done
if pgrep -af "tributary-broker.*$DATA"; then fail "brokers outlived the launcher's kill -9"; fi
python3 -c '
import socket, sys
base = int(sys.argv[1])
for p in range(base, base + 3):
    s = socket.socket(); s.bind(("127.0.0.1", p)); s.close()
' "$PORT" || fail "a broker port is still held after the launcher died"
say "kill -9 of the launcher: no broker left, ports $PORT-$((PORT + 2)) free"
PIDS=()
say "PASS"
