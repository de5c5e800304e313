#!/usr/bin/env python3
"""leader.py HOST:PORT[,HOST:PORT...] TOPIC PARTITION [isr]: prints the partition's leader id
(or, with `isr`, its in-sync replicas, comma-separated), from a Metadata v1 request to the
first broker that answers (no JVM start-up, so it does not disturb timing-sensitive tests)."""
import socket
import struct
import sys


def metadata(host, port, topic):
    client = b"failover-test"
    name = topic.encode()
    body = struct.pack(">i", 1) + struct.pack(">h", len(name)) + name
    header = struct.pack(">hhih", 3, 1, 7, len(client)) + client
    request = header + body
    with socket.create_connection((host, port), timeout=2) as s:
        s.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", recv(s, 4))[0]
        return recv(s, size)


def recv(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed")
        data += chunk
    return data


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        value = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return value[0] if len(value) == 1 else value

    def string(self):
        n = self.take(">h")
        if n < 0:
            return None
        s = self.data[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def int_array(self):
        return [self.take(">i") for _ in range(self.take(">i"))]


def partitions(addr, topic):
    """{partition: (leader, isr)} of TOPIC as the broker at ADDR knows it."""
    host, port = addr.rsplit(":", 1)
    r = Reader(metadata(host, int(port), topic))
    r.take(">i")  # correlation id
    for _ in range(r.take(">i")):  # brokers: id, host, port, rack
        r.take(">i"); r.string(); r.take(">i"); r.string()
    r.take(">i")  # controller id
    found = {}
    for _ in range(r.take(">i")):
        r.take(">h"); name = r.string(); r.take(">b")
        for _ in range(r.take(">i")):
            err, index, lead = r.take(">hii")
            r.int_array()
            isr = r.int_array()
            if name == topic:
                found[index] = (lead, isr)
    return found


def leader(addr, topic, partition):
    return partitions(addr, topic).get(partition, (-1, []))


if __name__ == "__main__":
    for addr in sys.argv[1].split(","):
        try:
            lead, isr = leader(addr, sys.argv[2], int(sys.argv[3]))
            if sys.argv[4:] == ["isr"]:
                print(",".join(str(b) for b in sorted(isr)))
            else:
                print(lead)
            break
        except OSError:
            continue
    else:
        sys.exit("no broker answered")
