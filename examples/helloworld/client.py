"""Calls helloworld.Greeter once and prints the reply. Run: python examples/helloworld/client.py"""

import argparse
import asyncio

from gorpc import Client


async def main(target: str) -> None:
    async with Client(target=target) as client:
        reply = await client.call("/helloworld.Greeter/SayHello", {"msg": "hello"}, timeout=2.0)
        print(reply["msg"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", default="127.0.0.1:8000")
    asyncio.run(main(parser.parse_args().target))
