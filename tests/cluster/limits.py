#!/usr/bin/env python3
"""limits.py HOST:PORT BROKER_PID PER_IP_LIMIT

Load that must not exhaust a broker, against a running broker on loopback:
  - 10,000 idle connections (from 127.0.0.2 and 127.0.0.3);
  - the connection limit per address: one more than PER_IP_LIMIT from 127.0.0.4 is closed;
  - 40 slow clients that each declare a 100 MB request and send 1 MiB of it;
  - a frame declaring more than socket.request.max.bytes: the connection is closed;
  - 10,000 requests pipelined on one connection, all answered, in order;
and through all of it, a fresh client's ApiVersions request is answered within a second,
and the broker's resident memory stays under 400 MiB. Prints what it measured."""
import asyncio
import os
import struct
import sys
import time

RSS_LIMIT_MIB = 400


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def api_versions(correlation_id):
    client = b"limits-test"
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client)) + client
    return struct.pack(">i", len(body)) + body


async def served_within(host, port, seconds=1.0):
    """Time for a new connection's ApiVersions v0 to be answered; fails past `seconds`."""
    start = time.monotonic()
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), seconds)
    writer.write(api_versions(42))
    await writer.drain()
    size = struct.unpack(">i", await asyncio.wait_for(reader.readexactly(4), seconds))[0]
    response = await asyncio.wait_for(reader.readexactly(size), seconds)
    assert struct.unpack(">i", response[:4])[0] == 42
    writer.close()
    took = time.monotonic() - start
    if took > seconds:
        sys.exit(f"a fresh client waited {took:.2f}s for ApiVersions")
    return took


async def open_idle(host, port, count, sources):
    conns = []
    for i in range(count):
        source = sources[i % len(sources)]
        conns.append(await asyncio.open_connection(host, port, local_addr=(source, 0)))
    return conns


async def closed_by_broker(reader, seconds=3.0):
    try:
        data = await asyncio.wait_for(reader.read(1), seconds)
        return data == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except asyncio.TimeoutError:
        return False


async def main(addr, pid, per_ip):
    host, port = addr.rsplit(":", 1)
    port = int(port)
    base = rss_mib(pid)
    print(f"[limits] broker RSS at rest: {base:.0f} MiB")

    idle = await open_idle(host, port, 10_000, ["127.0.0.2", "127.0.0.3"])
    await asyncio.sleep(1)
    took = await served_within(host, port)
    rss = rss_mib(pid)
    print(f"[limits] 10,000 idle connections: RSS {rss:.0f} MiB; a new client served in {took * 1000:.0f} ms")
    if rss > RSS_LIMIT_MIB:
        sys.exit(f"RSS {rss:.0f} MiB with idle connections")

    over = await open_idle(host, port, per_ip + 1, ["127.0.0.4"])
    # The broker accepts, then closes, what is over the limit.
    closed = [await closed_by_broker(r, 0.2) for r, _ in over[-3:]]
    if not closed[-1]:
        sys.exit(f"connection {per_ip + 1} from one address was not closed (max.connections.per.ip)")
    print(f"[limits] connection {per_ip + 1} from one address closed by max.connections.per.ip={per_ip}")
    for _, w in over:
        w.close()

    slow = []
    for _ in range(40):
        r, w = await asyncio.open_connection(host, port)
        w.write(struct.pack(">i", 100 << 20) + struct.pack(">hhi", 0, 9, 1) + bytes(1 << 20))
        await w.drain()
        slow.append((r, w))
    await asyncio.sleep(2)
    took = await served_within(host, port)
    rss = rss_mib(pid)
    print(f"[limits] 40 clients stalled inside 100 MB requests: RSS {rss:.0f} MiB; "
          f"a new client served in {took * 1000:.0f} ms")
    if rss > RSS_LIMIT_MIB:
        sys.exit(f"RSS {rss:.0f} MiB with slow clients")
    for _, w in slow:
        w.close()

    r, w = await asyncio.open_connection(host, port)
    w.write(struct.pack(">i", 2_000_000_000) + bytes(8))
    await w.drain()
    if not await closed_by_broker(r):
        sys.exit("a frame above socket.request.max.bytes did not close its connection")
    print("[limits] a 2 GB declared frame: connection closed")

    r, w = await asyncio.open_connection(host, port)
    n = 10_000
    w.write(b"".join(api_versions(i) for i in range(n)))
    start = time.monotonic()
    for i in range(n):
        size = struct.unpack(">i", await asyncio.wait_for(r.readexactly(4), 10))[0]
        response = await r.readexactly(size)
        got = struct.unpack(">i", response[:4])[0]
        if got != i:
            sys.exit(f"pipelined response {i} carried correlation id {got}")
    print(f"[limits] {n} pipelined requests on one connection answered in order in "
          f"{(time.monotonic() - start) * 1000:.0f} ms")
    w.close()

    for _, w in idle:
        w.close()
    await asyncio.sleep(2)
    took = await served_within(host, port)
    print(f"[limits] all closed: RSS {rss_mib(pid):.0f} MiB; a new client served in {took * 1000:.0f} ms")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
