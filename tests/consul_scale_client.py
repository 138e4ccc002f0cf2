"""One client process calling many services found through Consul (tests/test_consul_scale.py).

    python tests/consul_scale_client.py HTTP_ADDR PREFIX SERVICE_PATTERN COUNT

Calls every service once, prints what it measured as one JSON line (calls, its own TCP connections
to the agent), then waits for a line on stdin; after it, it measures how long until a second
instance of the last service is in its node list, prints that, and exits.
"""

import asyncio
import json
import os
import sys

from gorpc import Client
from gorpc.testing import eventually


def connections_to(port: int) -> int:
    """This process's established TCP connections to `port` on loopback, read from /proc."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/self/net/tcp", "/proc/self/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                remote_port = int(fields[2].rsplit(":", 1)[1], 16)
                if fields[3] == "01" and remote_port == port and fields[9] in inodes:  # 01: ESTABLISHED
                    count += 1
    return count


async def main(http_address: str, prefix: str, pattern: str, count: int) -> None:
    services = [pattern.format(i) for i in range(count)]
    plugins = {"consul": {"address": http_address, "prefix": prefix}}
    async with Client(resolver="consul", plugins=plugins, timeout=30) as client:
        replies = []
        for start in range(0, count, 50):  # 50 services at a time
            batch = services[start : start + 50]
            replies += await asyncio.gather(*(client.call(f"/{s}/Which") for s in batch))
        port = int(http_address.rsplit(":", 1)[1])
        print(
            json.dumps(
                {
                    "calls": len(replies),
                    "answered": sum(1 for r in replies if r),
                    "consul_connections": connections_to(port),
                }
            ),
            flush=True,
        )
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        last = services[-1]
        took = await eventually(lambda: len(client.known_nodes(last)) >= 2, timeout=30, interval=0.005)
        print(json.dumps({"routable_after_s": took}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
