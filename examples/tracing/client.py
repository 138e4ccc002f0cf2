"""Calls examples.Frontend once; the client span is the root of the trace.

Run: python examples/tracing/client.py [--config examples/tracing/gorpc.toml] [--target ADDR] [--endpoint URL]
"""

import argparse
import asyncio
from pathlib import Path

from gorpc import Client

CONFIG = Path(__file__).with_name("gorpc.toml")


async def main(config: str, target: str | None, endpoint: str | None) -> None:
    overrides = {"plugins": {"opentelemetry": {"endpoint": endpoint}}} if endpoint else {}
    async with Client(target, config=config, **overrides) as client:
        reply = await client.call("/examples.Frontend/Profile", {"user": "ada"}, timeout=5.0)
        print(reply)
    # Closing the client flushed its spans to the collector.


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=str(CONFIG), help="a gorpc TOML file")
    parser.add_argument("--target", default=None, help="the server's address (overrides the config)")
    parser.add_argument("--endpoint", default=None, help="OTLP/HTTP endpoint (overrides the config)")
    args = parser.parse_args()
    asyncio.run(main(args.config, args.target, args.endpoint))
