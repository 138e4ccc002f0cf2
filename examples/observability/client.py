"""Makes a few calls to examples.Inventory, then reads what an operator would: the server's
metrics (as `curl .../metrics` shows them) and its health (as `gorpc health` asks for it).

Run: python examples/observability/client.py [--target ADDR] [--metrics URL]
"""

import argparse
import asyncio
import urllib.request

from gorpc import Client, RemoteError

CALLS = "rpc_server_call_duration_seconds_count"


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()  # type: ignore[no-any-return]


async def main(target: str, metrics_url: str) -> None:
    async with Client(target) as client:
        for item in ("apple", "pear", "apple"):
            print(item, await client.call("/examples.Inventory/Count", item))
        try:
            await client.call("/examples.Inventory/Count", "plum")
        except RemoteError as exc:
            print("plum:", exc.type_name)
        print("health:", await client.call("/gorpc.Health/Check", "examples.Inventory"))
        print("pause:", await client.call("/examples.Inventory/Pause", True))
        print("health:", await client.call("/gorpc.Health/Check", "examples.Inventory"))
        print("resume:", await client.call("/examples.Inventory/Pause", False))
    # What Prometheus scrapes (curl shows the same): the calls counted per method and status.
    scraped = await asyncio.to_thread(fetch, metrics_url)
    for line in scraped.splitlines():
        if line.startswith(CALLS) and "examples.Inventory" in line:
            print(line)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", default="127.0.0.1:8020", help="the server's address")
    parser.add_argument(
        "--metrics", default="http://127.0.0.1:9464/metrics", help="the server's /metrics URL"
    )
    args = parser.parse_args()
    asyncio.run(main(args.target, args.metrics))
