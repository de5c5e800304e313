# CoreDNS as upstream ships it: kubeadm's manifest passes only arguments.
FROM scratch
COPY rootfs/ /
COPY bin/coredns /coredns
EXPOSE 53 53/udp
ENTRYPOINT ["/coredns"]
