#!/bin/bash
# A minimal stand-in for kindnetd, kind's default CNI daemon, for node images built where
# its module cannot be fetched. It does what kindnetd does for a single-stack IPv4 kind
# cluster on one Docker network, run by kind's own default-cni manifest unchanged:
#   - writes the node's CNI config: ptp + host-local on the node's pod CIDR, and portmap;
#   - routes every other node's pod CIDR via that node's InternalIP;
#   - masquerades pod traffic leaving the pod network.
# It reconciles every 10 s (2 s after a failure), reading Nodes from the API server with its service account.
set -uo pipefail

api=https://${KUBERNETES_SERVICE_HOST}:${KUBERNETES_SERVICE_PORT}
account=/var/run/secrets/kubernetes.io/serviceaccount
node=${NODE_NAME:-$(hostname)}
pod_subnet=${POD_SUBNET:?POD_SUBNET is not set}
config=/etc/cni/net.d/10-kindnet.conflist

log() { printf '%s %s\n' "$(date -u +%FT%TZ)" "$*"; }

write_cni_config() {
  local cidr=$1 mtu tmp
  mtu=$(cat /sys/class/net/eth0/mtu 2>/dev/null || echo 1500)
  tmp=$(mktemp /etc/cni/net.d/.kindnet.XXXXXX)
  cat >"$tmp" <<JSON
{
  "cniVersion": "0.4.0",
  "name": "kindnet",
  "plugins": [
    {
      "type": "ptp",
      "ipMasq": false,
      "mtu": $mtu,
      "ipam": {
        "type": "host-local",
        "dataDir": "/run/cni-ipam-state",
        "routes": [{ "dst": "0.0.0.0/0" }],
        "ranges": [[{ "subnet": "$cidr" }]]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
JSON
  if cmp -s "$tmp" "$config"; then rm -f "$tmp"; else mv "$tmp" "$config" && log "wrote $config for $cidr"; fi
}

ensure_masquerade() {
  iptables -t nat -N KIND-MASQ-AGENT 2>/dev/null || true
  iptables -t nat -C POSTROUTING -m addrtype ! --dst-type LOCAL -j KIND-MASQ-AGENT 2>/dev/null ||
    iptables -t nat -A POSTROUTING -m addrtype ! --dst-type LOCAL -j KIND-MASQ-AGENT
  iptables -t nat -C KIND-MASQ-AGENT -d "$pod_subnet" -j RETURN 2>/dev/null ||
    iptables -t nat -A KIND-MASQ-AGENT -d "$pod_subnet" -j RETURN
  iptables -t nat -C KIND-MASQ-AGENT -j MASQUERADE 2>/dev/null ||
    iptables -t nat -A KIND-MASQ-AGENT -j MASQUERADE
}

reconcile() {
  local nodes name ip cidr
  nodes=$(curl -sSf --max-time 10 --cacert "$account/ca.crt" \
    -H "Authorization: Bearer $(cat "$account/token")" "$api/api/v1/nodes") || return 1
  while IFS=$'\t' read -r name ip cidr; do
    [ -n "$cidr" ] && [ -n "$ip" ] || continue
    if [ "$name" = "$node" ]; then
      write_cni_config "$cidr"
    elif ! ip route show "$cidr" | grep -q "via $ip "; then
      ip route replace "$cidr" via "$ip" && log "route $cidr via $ip ($name)"
    fi
  done < <(jq -r '.items[] | [.metadata.name,
      ([.status.addresses[]? | select(.type == "InternalIP" and (.address | test("^[0-9.]+$"))) | .address][0] // ""),
      ([.spec.podCIDRs[]? | select(test("^[0-9.]+/"))][0] // .spec.podCIDR // "")] | @tsv' <<<"$nodes")
  ensure_masquerade
}

log "kindnet agent on $node, pod subnet $pod_subnet"
while true; do
  if reconcile; then sleep 10; else log "reconcile failed; retrying"; sleep 2; fi
done
