#!/usr/bin/env python3
"""capture.py LISTEN_PORT TARGET_PORT OUT_DIR

A loopback TCP relay that records what Kafka clients send: every connection's
client-to-broker byte stream (size-prefixed request frames) is written to OUT_DIR as one
file, the request fuzzer's seed format. Runs until killed.
"""
import os
import socket
import sys
import threading

LIMIT = 32 * 1024  # bytes kept per connection (a fuzz input stays small)


def pump(src, dst, record=None):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            if record is not None and len(record) < LIMIT:
                record.extend(data[: LIMIT - len(record)])
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def main():
    listen_port, target_port, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    os.makedirs(out, exist_ok=True)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", listen_port))
    server.listen(64)
    n = 0
    while True:
        client, _ = server.accept()
        upstream = socket.create_connection(("127.0.0.1", target_port))
        n += 1
        record = bytearray()
        path = os.path.join(out, f"conn-{os.getpid()}-{n:04d}")

        def run(c=client, u=upstream, r=record, p=path):
            back = threading.Thread(target=pump, args=(u, c))
            back.start()
            pump(c, u, r)
            back.join()
            if r:
                with open(p, "wb") as f:
                    f.write(r)

        threading.Thread(target=run, daemon=True).start()


if __name__ == "__main__":
    main()
