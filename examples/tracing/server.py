"""Serves examples.Frontend, which calls examples.Backend: one trace spans both hops.

Run: python examples/tracing/server.py [--config examples/tracing/gorpc.toml] [--endpoint URL]
"""

import argparse
import logging
from pathlib import Path
from typing import Any

from gorpc import Client, Server, Service
from gorpc.resolvers import StaticResolver

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
        """A greeting plus the user's plan; the Backend call is a child span of this call's span."""
        details = await self.backend.call("/examples.Backend/Lookup", req)
        return {"greeting": f"hello {req['user']}", **details}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(CONFIG), help="a gorpc TOML file")
    parser.add_argument("--address", default=None, help="where to listen (overrides the config)")
    parser.add_argument("--endpoint", default=None, help="OTLP/HTTP endpoint (overrides the config)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    overrides = {"plugins": {"opentelemetry": {"endpoint": args.endpoint}}} if args.endpoint else {}
    # Servers and clients of one process that share a StaticResolver find each other by name.
    resolver = StaticResolver()
    backend = Client(config=args.config, target="examples.Backend", resolver=resolver, **overrides)
    server = Server(address=args.address, config=args.config, resolver=resolver, **overrides)
    server.register(Backend(), Frontend(backend))
    server.serve()  # stopping flushes the spans still buffered


if __name__ == "__main__":
    main()
