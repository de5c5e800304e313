# The pod sandbox: a static pause binary that sleeps and reaps, as an unprivileged user.
FROM scratch
COPY bin/pause /pause
USER 65535:65535
ENTRYPOINT ["/pause"]
