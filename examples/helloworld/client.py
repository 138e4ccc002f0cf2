"""Calls helloworld.Greeter once and prints the reply. Run: python examples/helloworld/client.py"""

import argparse
import asyncio

from gorpc import Client


async def main(target: str | None, config: str | None) -> None:
    async with Client(target=target, config=config) as client:
        reply = await client.call("/helloworld.Greeter/SayHello", {"msg": "hello"}, timeout=2.0)
        print(reply["msg"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default=None, help="host:port, unix:/path or a service name")
    parser.add_argument("--config", default=None, help="a gorpc TOML file")
    args = parser.parse_args()
    if args.target is None and args.config is None:
        args.target = "127.0.0.1:8000"
    asyncio.run(main(args.target, args.config))
