"""Serves examples.Frontend, which calls examples.Backend: one trace spans both hops.

Run: python examples/tracing/server.py [--config examples/tracing/gorpc.toml] [--endpoint URL]
"""

import argparse
import asyncio
import logging
from pathlib import Path
from typing import Any

from gorpc import Client, Server, Service
from gorpc.resolvers import StaticResolver
from gorpc.runtime import loop_factory

CONFIG = Path(__file__).with_name("gorpc.toml")


class Backend(Service):
    name = "examples.Backend"

    async def Lookup(self, req: dict[str, str]) -> dict[str, str]:
        """A user's plan."""
        return {"user": req["user"], "plan": "pro"}


class Frontend(Service):
    name = "examples.Frontend"

    def __init__(self, backend: Client) -> None:
        self.backend = backend

    async def Profile(self, req: dict[str, str]) -> dict[str, Any]:
        """A greeting plus the user's plan; the Backend call is a child span of this call's span,
        and is labelled examples.Frontend (the service it is made from)."""
        details = await self.backend.call("/examples.Backend/Lookup", req)
        return {"greeting": f"hello {req['user']}", **details}


async def main(config: str, address: str | None, endpoint: str | None) -> None:
    overrides = {"plugins": {"opentelemetry": {"endpoint": endpoint}}} if endpoint else {}
    # Servers and clients of one process that share a StaticResolver find each other by name.
    resolver = StaticResolver()
    async with Client(config=config, target="examples.Backend", resolver=resolver, **overrides) as backend:
        server = Server(address=address, config=config, resolver=resolver, **overrides)
        server.register(Backend(), Frontend(backend))
        await server.serve_until_signal()  # stopping flushes the server's spans
    # Leaving `async with` closed the backend client, which flushed its spans too.


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(CONFIG), help="a gorpc TOML file")
    parser.add_argument("--address", default=None, help="where to listen (overrides the config)")
    parser.add_argument("--endpoint", default=None, help="OTLP/HTTP endpoint (overrides the config)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with asyncio.Runner(loop_factory=loop_factory(True)) as runner:
        runner.run(main(args.config, args.address, args.endpoint))
