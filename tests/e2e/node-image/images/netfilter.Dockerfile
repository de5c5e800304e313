# kube-proxy and the CNI agent run in the node's network namespace and program its
# netfilter rules and routes, so they carry iptables, nft and ip, and pick the netfilter
# backend the node uses. (The agent also reads Nodes with curl and jq.)
ARG BASE_IMAGE=debian:bookworm-slim
FROM $BASE_IMAGE
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      iptables nftables conntrack ipset kmod iproute2 curl jq ca-certificates \
    && apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /usr/share/doc/* /usr/share/man/*
COPY iptables-wrapper /usr/sbin/iptables-wrapper
RUN chmod 0755 /usr/sbin/iptables-wrapper \
    && for tool in iptables iptables-save iptables-restore ip6tables ip6tables-save ip6tables-restore; do \
         ln -sf /usr/sbin/iptables-wrapper "/usr/sbin/$tool"; \
       done
ARG BINARY
ARG DESTINATION=/usr/local/bin
COPY bin/${BINARY} ${DESTINATION}/${BINARY}
CMD ["/bin/kindnetd"]
