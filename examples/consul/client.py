"""Discovery through Consul, end to end: three servers, calls spread over them, one stops.

Run: python examples/consul/client.py            (starts a Consul dev agent and three servers)
     python examples/consul/client.py --consul 127.0.0.1:8500 --servers 0   (use what is running)
"""

import argparse
import asyncio
import contextlib
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from gorpc import Client
from gorpc.testing import ServerProcess, server_process
from gorpc_consul.testing import dev_agent

SERVER = Path(__file__).with_name("server.py")
METHOD = "/examples.Hello/SayHello"


async def spread(client: Client, calls: int) -> Counter[str]:
    """Make `calls` calls, 8 at a time; count which server answered each."""
    answers: Counter[str] = Counter()
    for _ in range(calls // 8):
        replies = await asyncio.gather(*(client.call(METHOD, {"name": "consul"}) for _ in range(8)))
        answers.update(reply["server"] for reply in replies)
    return answers


async def demo(consul: str, servers: list[ServerProcess]) -> None:
    plugins = {"consul": {"address": consul}}
    async with Client("examples.Hello", resolver="consul", plugins=plugins, timeout=5.0) as client:
        print("calls per server:", dict(sorted((await spread(client, 48)).items())))
        if servers:
            print(f"stopping {servers[0].address} (SIGTERM: deregister, drain, exit)")
            await asyncio.to_thread(servers[0].stop)  # the loop keeps running meanwhile
            print("calls per server:", dict(sorted((await spread(client, 48)).items())))
        print("nodes now:", [node.address for node in client.known_nodes("examples.Hello")])


@contextlib.contextmanager
def consul_agent(address: str | None) -> Iterator[str]:
    if address is not None:
        yield address
        return
    with dev_agent() as agent:
        print(f"started a Consul dev agent on {agent.http_address}")
        yield agent.http_address


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--consul", default=None, help="a running agent's HTTP address (default: start one)")
    parser.add_argument("--servers", type=int, default=3, help="how many servers to start")
    args = parser.parse_args()
    with consul_agent(args.consul) as consul, contextlib.ExitStack() as stack:
        servers = [
            stack.enter_context(server_process([str(SERVER), "--consul", consul, "--label", f"server-{i}"]))
            for i in range(args.servers)
        ]
        for server in servers:
            print(f"server listening on {server.address}")
        asyncio.run(demo(consul, servers))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
