#!/usr/bin/env python3
"""delay.py LISTEN_HOST:PORT TARGET_HOST:PORT DELAY_MS

A TCP relay that holds every byte DELAY_MS before passing it on, in both directions: a
link with latency, for kernels without netem. net.sh's `delay` runs it in a node's network
namespace and sends that node's new connections to a peer into it with a DNAT rule; the
relay's own connections to the peer carry SO_MARK 0x7, which that rule skips.
"""
import asyncio
import socket
import sys
import time

MARK = 0x7


def host_port(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


async def pump(reader, writer, delay):
    """Copies reader to writer, each chunk released `delay` seconds after it arrived."""
    queue = asyncio.Queue()

    async def release():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    releaser = asyncio.create_task(release())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((time.monotonic() + delay, data))
    except OSError:
        pass
    queue.put_nowait((0.0, None))
    try:
        await releaser
    except OSError:
        pass
    finally:
        writer.close()


async def relay(client_reader, client_writer, target, delay):
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_MARK, MARK)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, target)
        upstream_reader, upstream_writer = await asyncio.open_connection(sock=sock)
    except OSError:
        sock.close()
        client_writer.close()
        return
    await asyncio.gather(
        pump(client_reader, upstream_writer, delay),
        pump(upstream_reader, client_writer, delay),
        return_exceptions=True,
    )


async def main():
    listen, target = host_port(sys.argv[1]), host_port(sys.argv[2])
    delay = int(sys.argv[3]) / 1000.0
    server = await asyncio.start_server(
        lambda r, w: relay(r, w, target, delay), listen[0], listen[1], reuse_address=True
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
