# shellcheck shell=bash
# Shared by the test scripts (sourced, not run).

# free_base_port COUNT: prints a port P with P..P+COUNT-1 all free on 127.0.0.1.
free_base_port() {
  python3 - "$1" <<'PY'
import random, socket, sys
count = int(sys.argv[1])
for _ in range(200):
    base = random.randint(20000, 60000 - count)
    socks = []
    try:
        for p in range(base, base + count):
            s = socket.socket(); s.bind(("127.0.0.1", p)); socks.append(s)
        print(base); break
    except OSError:
        pass
    finally:
        for s in socks: s.close()
PY
}
