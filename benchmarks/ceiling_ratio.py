"""gorpc against the raw msgpack echo ceiling, side by side in one run: the quick A/B check used
while optimising the core (the full comparison with grpcio and the sweeps is suite.py).

    python benchmarks/ceiling_ratio.py [--calls 60000] [--concurrency 64] [--rounds 3]

Each server runs in its own process; the client runs here on uvloop with C calls in flight on one
connection, and checks every reply. Rounds alternate between the two so machine noise hits both.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from echo_ceiling import connect

from gorpc import Client
from gorpc.testing import server_process

HERE = Path(__file__).resolve().parent
REQUEST = {"msg": "hello"}
EXPECTED = {"msg": "hello world"}


async def closed_loop(
    call: Callable[[Any], Awaitable[Any]], calls: int, concurrency: int
) -> dict[str, float]:
    latencies: list[float] = []

    async def worker(n: int) -> None:
        for _ in range(n):
            start = time.perf_counter()
            reply = await call(REQUEST)
            latencies.append(time.perf_counter() - start)
            assert reply == EXPECTED, reply

    for _ in range(max(1, calls // 10) // concurrency):  # warm-up
        await call(REQUEST)
    latencies.clear()
    started = time.perf_counter()
    await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "calls/s": len(latencies) / elapsed,
        "p50 ms": latencies[len(latencies) // 2] * 1e3,
        "p99 ms": latencies[int(len(latencies) * 0.99)] * 1e3,
    }


async def run_gorpc(address: str, calls: int, concurrency: int) -> dict[str, float]:
    async with Client(address) as client:

        async def call(request: Any) -> Any:
            return await client.call("/helloworld.Greeter/SayHello", request)

        return await closed_loop(call, calls, concurrency)


async def run_ceiling(address: str, calls: int, concurrency: int) -> dict[str, float]:
    client = await connect(address)
    try:
        return await closed_loop(client.call, calls, concurrency)
    finally:
        client.transport.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=60_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {"gorpc": [], "ceiling": []}
    with (
        server_process([str(HERE / "servers.py"), "gorpc", "127.0.0.1:0"]) as gorpc_server,
        server_process([str(HERE / "servers.py"), "ceiling", "127.0.0.1:0"]) as ceiling_server,
    ):
        for _ in range(args.rounds):
            results["gorpc"].append(uvloop.run(run_gorpc(gorpc_server.address, args.calls, args.concurrency)))
            results["ceiling"].append(
                uvloop.run(run_ceiling(ceiling_server.address, args.calls, args.concurrency))
            )
    print(f"C={args.concurrency}, {args.calls} calls x {args.rounds} rounds, medians:")
    print("| | calls/s | p50 ms | p99 ms |\n|---|---:|---:|---:|")
    medians = {}
    for name, rows in results.items():
        medians[name] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        m = medians[name]
        print(f"| {name} | {m['calls/s']:,.0f} | {m['p50 ms']:.3f} | {m['p99 ms']:.3f} |")
    print(f"gorpc/ceiling throughput: {medians['gorpc']['calls/s'] / medians['ceiling']['calls/s']:.2f}")


if __name__ == "__main__":
    main()
