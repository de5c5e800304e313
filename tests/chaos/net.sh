# shellcheck shell=bash
# Network namespaces for fault injection (sourced, not run; needs root, iproute2, iptables).
#
# Every node of the test cluster gets a namespace of its own, joined to one bridge that
# lives in a hub namespace: the controller (ctl), the brokers (b1..bN) and the clients
# (cli). Addresses are in 10.213.0.0/24 and exist only inside these namespaces: nothing
# is routed to or from the machine's own network. Faults are iptables rules in a CHAOS
# chain of a node's namespace, so healing is flushing that chain.
#
#   net_up N        create hub, ctl, cli and b1..bN
#   net_down        delete them (and every process still running in them)
#   ip_of NODE      ctl -> 10.213.0.10, cli -> 10.213.0.100, bK -> 10.213.0.K
#   in_ns NODE CMD  run CMD in NODE's namespace
#   cut A B         drop every packet between A and B (a blackhole: connections hang)
#   cut_oneway A B  drop packets from A to B only
#   reset A B       refuse A <-> B with TCP resets (connections fail fast)
#   lossy A B P     drop each packet between A and B with probability P
#   delay A B MS    add MS of latency each way to the connections A opens to B (a relay in
#                   A's namespace, tests/chaos/delay.py; A's open connections to B are reset
#                   once so that they reconnect through it)
#   heal NODE       remove every fault of NODE
#   heal_all

NET_PREFIX=${NET_PREFIX:-trib$$}
NET_NODES=()

ip_of() {
  case $1 in
    ctl) echo 10.213.0.10 ;;
    cli) echo 10.213.0.100 ;;
    b*) echo "10.213.0.${1#b}" ;;
    *) echo "unknown node $1" >&2; return 1 ;;
  esac
}

ns_of() { echo "$NET_PREFIX-$1"; }

in_ns() {
  local node=$1
  shift
  ip netns exec "$(ns_of "$node")" "$@"
}

net_up() {
  local brokers=$1 hub node i=0
  hub=$(ns_of hub)
  ip netns add "$hub"
  ip -n "$hub" link add br0 type bridge
  ip -n "$hub" link set br0 up
  ip -n "$hub" link set lo up
  NET_NODES=(ctl cli)
  for ((k = 1; k <= brokers; k++)); do NET_NODES+=("b$k"); done
  for node in "${NET_NODES[@]}"; do
    i=$((i + 1))
    local ns host_end node_end
    ns=$(ns_of "$node")
    host_end="${NET_PREFIX:0:8}h$i"
    node_end="${NET_PREFIX:0:8}n$i"
    ip netns add "$ns"
    ip link add "$host_end" type veth peer name "$node_end"
    ip link set "$host_end" netns "$hub"
    ip link set "$node_end" netns "$ns"
    ip -n "$hub" link set "$host_end" master br0 up
    ip -n "$ns" link set "$node_end" name eth0
    ip -n "$ns" addr add "$(ip_of "$node")/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    in_ns "$node" iptables -N CHAOS
    in_ns "$node" iptables -I INPUT -j CHAOS
    in_ns "$node" iptables -I OUTPUT -j CHAOS
  done
}

net_down() {
  local node ns
  for node in hub "${NET_NODES[@]}"; do
    ns=$(ns_of "$node")
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}

cut() {
  in_ns "$1" iptables -A CHAOS -d "$(ip_of "$2")" -j DROP
  in_ns "$1" iptables -A CHAOS -s "$(ip_of "$2")" -j DROP
}

cut_oneway() {
  in_ns "$1" iptables -A CHAOS -d "$(ip_of "$2")" -j DROP
}

reset() {
  in_ns "$1" iptables -A CHAOS -p tcp -d "$(ip_of "$2")" -j REJECT --reject-with tcp-reset
  in_ns "$1" iptables -A CHAOS -p tcp -s "$(ip_of "$2")" -j REJECT --reject-with tcp-reset
}

lossy() {
  in_ns "$1" iptables -A CHAOS -d "$(ip_of "$2")" -m statistic --mode random --probability "$3" -j DROP
  in_ns "$1" iptables -A CHAOS -s "$(ip_of "$2")" -m statistic --mode random --probability "$3" -j DROP
}

DELAY_PORT=19092
delay() {
  local a=$1 b=$2 ms=$3 peer
  peer=$(ip_of "$b")
  # In a subshell, so that its end (heal kills it) is not reported as a job's.
  (in_ns "$a" python3 "$(dirname "${BASH_SOURCE[0]}")/delay.py" "$(ip_of "$a"):$DELAY_PORT" "$peer:9092" "$ms" &)
  for _ in $(seq 1 50); do
    in_ns "$a" bash -c "exec 3<>/dev/tcp/$(ip_of "$a")/$DELAY_PORT" 2>/dev/null && break
    sleep 0.1
  done
  # The relay's own connections carry mark 0x7 and go straight to the peer.
  in_ns "$a" iptables -t nat -A OUTPUT -p tcp -d "$peer" --dport 9092 -m mark ! --mark 0x7 \
    -j DNAT --to-destination "$(ip_of "$a"):$DELAY_PORT"
  # Connections opened before the rule bypass it: reset them once, so they reconnect.
  in_ns "$a" iptables -I CHAOS -p tcp -d "$peer" --dport 9092 -m mark ! --mark 0x7 \
    -j REJECT --reject-with tcp-reset
  sleep 1
  in_ns "$a" iptables -D CHAOS -p tcp -d "$peer" --dport 9092 -m mark ! --mark 0x7 \
    -j REJECT --reject-with tcp-reset
}

heal() {
  in_ns "$1" iptables -F CHAOS
  in_ns "$1" iptables -t nat -F OUTPUT
  # The relays (and the connections through them) go with their rules.
  local pid
  for pid in $(ip netns pids "$(ns_of "$1")"); do
    if grep -qa "delay.py" "/proc/$pid/cmdline" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
  done
}

heal_all() {
  local node
  for node in "${NET_NODES[@]}"; do heal "$node"; done
}
