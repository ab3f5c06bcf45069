"""An emulated uplink for bench/fanout.py: TCP forwarders in front of the
target hosts that share one upload cap, add a delay per chunk, and count bytes.

Kernel netem is not available on the benchmark machines, so the link is
emulated here, in its own process (it must not compete with the deploy for
the benchmark process's GIL). Every byte the deploy host sends to any target
goes through one token bucket (``--rate-mbit``, the deploy host's whole
upload); each chunk, either way, waits ``--delay-ms`` first.

Usage: netproxy.py --rate-mbit 200 --delay-ms 2 LISTEN_IP:PORT=TARGET_IP:PORT ...
On stdin: "stats" prints {"up": bytes, "down": bytes} as one JSON line;
"reset" sets the counters to zero; end of input stops the proxy.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time

CHUNK = 64 * 1024


class Link:
    """The shared uplink: a send schedule at ``rate`` bytes/s, and counters."""

    def __init__(self, rate: float, delay: float) -> None:
        self.rate = rate
        self.delay = delay
        self.free_at = 0.0  # when the uplink has sent everything queued so far
        self.up = 0
        self.down = 0

    async def send_up(self, size: int) -> None:
        """Wait until ``size`` bytes have passed the capped uplink (plus the delay)."""
        now = time.monotonic()
        self.free_at = max(self.free_at, now) + size / self.rate
        self.up += size
        await asyncio.sleep(self.free_at - now + self.delay)


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, link: Link, upward: bool) -> None:
    try:
        while data := await reader.read(CHUNK):
            if upward:
                await link.send_up(len(data))
            else:
                link.down += len(data)
                await asyncio.sleep(link.delay)
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            writer.write_eof()
        except (OSError, RuntimeError):
            writer.close()


async def serve(listen: tuple[str, int], target: tuple[str, int], link: Link) -> asyncio.Server:
    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(*target)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            pump(client_reader, server_writer, link, upward=True),
            pump(server_reader, client_writer, link, upward=False),
        )
        client_writer.close()
        server_writer.close()

    return await asyncio.start_server(handle, *listen, reuse_address=True)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate-mbit", type=float, default=200.0)
    parser.add_argument("--delay-ms", type=float, default=2.0)
    parser.add_argument("routes", nargs="+", help="LISTEN_IP:PORT=TARGET_IP:PORT")
    args = parser.parse_args()
    link = Link(args.rate_mbit * 1e6 / 8, args.delay_ms / 1000)
    servers = []
    for route in args.routes:
        listen, _, target = route.partition("=")
        servers.append(await serve(_address(listen), _address(target), link))
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        command = line.strip()
        if command == "reset":
            link.up = link.down = 0
        elif command == "stats":
            print(json.dumps({"up": link.up, "down": link.down}), flush=True)
    # Connections still open (none should be) are simply dropped with the process.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    asyncio.run(main())
