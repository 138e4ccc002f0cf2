"""One stream measurement, in its own process: items through one stream, every item checked.

    python benchmarks/streamgen.py KIND TARGET --mode server|bidi --items N --size BYTES

`server`: the server streams N items of SIZE bytes to us. `bidi`: we stream N items to the server,
which sends each back; both directions flow at once. Prints one JSON object: items/s, MB/s (item
payload bytes, one direction) and the client's CPU seconds. A short warm-up stream runs first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import cpu_seconds

Run = Callable[[str, int, int], Awaitable[None]]  # (mode, items, size): one whole stream


async def items(count: int, size: int) -> AsyncIterator[bytes]:
    data = b"x" * size
    for _ in range(count):
        yield data


def check(received: int, count: int) -> None:
    if received != count:
        raise AssertionError(f"received {received} items, not {count}")


async def gorpc_runner(target: str) -> tuple[Run, Any]:
    from gorpc import Client

    client = Client(target)

    async def run(mode: str, count: int, size: int) -> None:
        if mode == "server":
            replies = client.stream("/bench.Streamer/Feed", [count, size])
        else:
            replies = client.stream("/bench.Streamer/Echo", requests=items(count, size))
        received = 0
        async for item in replies:
            received += len(item) == size
        check(received, count)

    return run, client.close


async def grpc_runner(target: str) -> tuple[Run, Any]:
    import grpc
    import grpc_stubs

    pb2, pb2_grpc = grpc_stubs.load()
    channel = grpc.aio.insecure_channel(target)
    stub = pb2_grpc.StreamerStub(channel)

    async def run(mode: str, count: int, size: int) -> None:
        if mode == "server":
            replies = stub.Feed(pb2.FeedRequest(count=count, size=size))
        else:
            item = pb2.Item(data=b"x" * size)

            async def requests() -> AsyncIterator[Any]:
                for _ in range(count):
                    yield item

            replies = stub.Echo(requests())
        received = 0
        async for item in replies:
            received += len(item.data) == size
        check(received, count)

    return run, channel.close


async def ceiling_runner(target: str) -> tuple[Run, Any]:
    import stream_ceiling

    async def run(mode: str, count: int, size: int) -> None:
        await stream_ceiling.run(target, mode, count, size)

    async def close() -> None:
        pass

    return run, close


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    runner = {"gorpc": gorpc_runner, "grpc": grpc_runner, "ceiling": ceiling_runner}[args.kind]
    run, close = await runner(args.target)
    try:
        await run(args.mode, max(args.items // 10, 10), args.size)  # warm-up
        cpu, started = cpu_seconds(), time.perf_counter()
        await run(args.mode, args.items, args.size)
        elapsed = time.perf_counter() - started
        return {
            "items": args.items,
            "items_per_s": args.items / elapsed,
            "mb_per_s": args.items * args.size / elapsed / 1e6,
            "client_cpu_s": cpu_seconds() - cpu,
            "elapsed_s": elapsed,
        }
    finally:
        await close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=["gorpc", "grpc", "ceiling"])
    parser.add_argument("target")
    parser.add_argument("--mode", choices=["server", "bidi"], default="server")
    parser.add_argument("--items", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=16, help="item payload bytes")
    args = parser.parse_args()
    run = asyncio.run if args.kind == "grpc" else uvloop.run  # as loadgen.py: grpc.aio on asyncio
    print(json.dumps(run(measure(args))))


if __name__ == "__main__":
    main()
