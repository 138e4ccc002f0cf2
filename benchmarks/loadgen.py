"""One measurement, in its own process: closed-loop load on one server, every reply checked.

    python benchmarks/loadgen.py KIND TARGET --calls N --concurrency C [--payload BYTES]
                                 [--clients K] [--tracer mock] [--metrics prometheus]
                                 [--consul HTTP_ADDR] [--typed]
    python benchmarks/loadgen.py gorpc TARGET --blocks B ...   # typed and untyped, interleaved
    python benchmarks/loadgen.py gorpc TARGET --blocks B --metrics-target T2 ...   # metrics off/on

C calls stay in flight (spread over K clients, each with its own connection) until N calls have
been answered, after a warm-up. Prints one JSON object: calls/s, latency percentiles (ms) and the
client's CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))

Call = Callable[[str], Awaitable[str]]
PERCENTILES = (50, 90, 99, 99.9)


async def closed_loop(calls: list[Call], total: int, concurrency: int, payload: int) -> dict[str, Any]:
    message = "x" * payload
    expected = message + " world"
    latencies: list[float] = []

    async def worker(call: Call, n: int) -> None:
        for _ in range(n):
            start = time.perf_counter()
            reply = await call(message)
            latencies.append(time.perf_counter() - start)
            if reply != expected:
                raise AssertionError(f"wrong reply: {reply[:80]!r}")

    share = max(total // concurrency, 1)
    warmup = max(share // 10, 1)
    await asyncio.gather(*(worker(calls[i % len(calls)], warmup) for i in range(concurrency)))
    latencies.clear()
    cpu = cpu_seconds()
    started = time.perf_counter()
    await asyncio.gather(*(worker(calls[i % len(calls)], share) for i in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    result: dict[str, Any] = {"calls": len(latencies), "calls_per_s": len(latencies) / elapsed}
    for p in PERCENTILES:
        result[f"p{p:g}_ms"] = latencies[min(int(len(latencies) * p / 100), len(latencies) - 1)] * 1e3
    result["client_cpu_s"] = cpu_seconds() - cpu
    result["elapsed_s"] = elapsed
    return result


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def gorpc_clients(
    target: str,
    clients: int,
    tracer: str,
    consul: str | None,
    typed: bool = False,
    metrics: str = "none",
    method: str = "SayHello",
    connections_per_host: int = 1,
) -> tuple[list[Call], Any]:
    from typed_greeter import HelloRequest, TypedGreeter

    from gorpc import Client

    options: dict[str, Any] = {"max_message_size": 8 << 20}
    if metrics != "none":  # named only when used: `ab.py` runs this script against older trees
        options["metrics"] = metrics
        options["plugins"] = {"prometheus": {"address": "127.0.0.1:0"}}
    if tracer == "mock":
        from gorpc_tracing.mock import MockTracing

        options["tracer"] = MockTracing()
    if connections_per_host > 1:  # named only when used, as above
        options["connections_per_host"] = connections_per_host
    if consul is not None:
        options.update(resolver="consul", plugins={"consul": {"address": consul, "prefix": "gorpc-bench"}})
    opened = [Client(target, **options) for _ in range(clients)]
    path = f"/helloworld.Greeter/{method}"

    def caller(client: Client) -> Call:
        async def call(message: str) -> str:
            return (await client.call(path, {"msg": message}))["msg"]  # type: ignore[no-any-return]

        if typed:  # the same call through a stub, with declared types on both sides
            stub = client.stub(TypedGreeter)

            async def call(message: str) -> str:
                return (await stub.SayHello(HelloRequest(message))).msg  # type: ignore[no-any-return]

        return call

    async def close() -> None:
        for client in opened:
            await client.close()

    return [caller(c) for c in opened], close


async def grpc_clients(target: str, clients: int) -> tuple[list[Call], Any]:
    import grpc
    import grpc_stubs

    pb2, pb2_grpc = grpc_stubs.load()
    options = [("grpc.max_receive_message_length", 8 << 20), ("grpc.max_send_message_length", 8 << 20)]
    # Distinct channel args keep grpc from sharing one subchannel among the "many clients".
    channels = [
        grpc.aio.insecure_channel(target, options=[*options, ("bench.client", i)]) for i in range(clients)
    ]

    def caller(channel: Any) -> Call:
        stub = pb2_grpc.GreeterStub(channel)

        async def call(message: str) -> str:
            return (await stub.SayHello(pb2.HelloRequest(msg=message))).msg  # type: ignore[no-any-return]

        return call

    async def close() -> None:
        for channel in channels:
            await channel.close()

    return [caller(c) for c in channels], close


async def ceiling_clients(target: str, clients: int) -> tuple[list[Call], Any]:
    from echo_ceiling import connect

    opened = [await connect(target) for _ in range(clients)]

    def caller(client: Any) -> Call:
        async def call(message: str) -> str:
            return (await client.call({"msg": message}))["msg"]  # type: ignore[no-any-return]

        return call

    async def close() -> None:
        for client in opened:
            client.transport.close()

    return [caller(c) for c in opened], close


async def typed_against_untyped(args: argparse.Namespace) -> dict[str, Any]:
    """The typed method through a stub and the untyped one with plain data, on one client and
    connection, in alternating blocks of calls."""
    untyped, close = await gorpc_clients(args.target, 1, args.tracer, None)
    typed, close_typed = await gorpc_clients(args.target, 1, args.tracer, None, typed=True)
    try:
        return await in_blocks({"untyped": untyped, "typed": typed}, args)
    finally:
        await close()
        await close_typed()


async def metrics_off_against_on(args: argparse.Namespace) -> dict[str, Any]:
    """TARGET (a server without metrics) from a client without them, and the server at
    --metrics-target from a client recording them too, in alternating blocks of calls."""
    off, close_off = await gorpc_clients(args.target, 1, args.tracer, None)
    on, close_on = await gorpc_clients(args.metrics_target, 1, args.tracer, None, metrics="prometheus")
    try:
        return await in_blocks({"off": off, "on": on}, args)
    finally:
        await close_off()
        await close_on()


async def in_blocks(variants: dict[str, list[Call]], args: argparse.Namespace) -> dict[str, Any]:
    """Each variant in turn, `args.blocks` blocks each, the order reversed every other block: the
    variants see the same machine, minute by minute. Per variant: calls/s over all its blocks,
    and the median of the blocks' percentiles."""
    blocks: dict[str, list[dict[str, Any]]] = {name: [] for name in variants}
    order = list(variants.items())
    for block in range(args.blocks):
        for name, calls in order if block % 2 == 0 else reversed(order):
            share = args.calls // args.blocks
            blocks[name].append(await closed_loop(calls, share, args.concurrency, args.payload))
    return {name: _combined(results) for name, results in blocks.items()}


def _combined(results: list[dict[str, Any]]) -> dict[str, Any]:
    calls = sum(r["calls"] for r in results)
    elapsed = sum(r["elapsed_s"] for r in results)
    combined: dict[str, Any] = {"calls": calls, "calls_per_s": calls / elapsed, "elapsed_s": elapsed}
    for key in [f"p{p:g}_ms" for p in PERCENTILES]:
        combined[key] = statistics.median(r[key] for r in results)
    combined["client_cpu_s"] = sum(r["client_cpu_s"] for r in results)
    return combined


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    if args.blocks and args.metrics_target:
        return await metrics_off_against_on(args)
    if args.blocks:
        return await typed_against_untyped(args)
    if args.kind == "gorpc":
        calls, close = await gorpc_clients(
            args.target,
            args.clients,
            args.tracer,
            args.consul,
            args.typed,
            metrics=args.metrics,
            method=args.method,
            connections_per_host=args.connections_per_host,
        )
    elif args.kind == "grpc":
        calls, close = await grpc_clients(args.target, args.clients)
    else:
        calls, close = await ceiling_clients(args.target, args.clients)
    try:
        return await closed_loop(calls, args.calls, args.concurrency, args.payload)
    finally:
        await close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=["gorpc", "grpc", "ceiling"])
    parser.add_argument("target", help="an address, or a service name with --consul")
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--payload", type=int, default=20, help="request message size in bytes")
    parser.add_argument("--clients", type=int, default=1, help="clients (connections) sharing the load")
    parser.add_argument("--tracer", default="noop", help="gorpc only: noop or mock")
    parser.add_argument("--metrics", default="none", help="gorpc only: none or prometheus")
    parser.add_argument(
        "--method", default="SayHello", choices=["SayHello", "Busy"],
        help="gorpc only: Busy does about 100 µs of work per call",
    )  # fmt: skip
    parser.add_argument("--connections-per-host", type=int, default=1, help="gorpc only")
    parser.add_argument("--typed", action="store_true", help="gorpc only: the typed method, through a stub")
    parser.add_argument(
        "--blocks", type=int, default=0,
        help="gorpc only: the typed and the untyped method in this many alternating blocks each",
    )  # fmt: skip
    parser.add_argument(
        "--metrics-target", default=None,
        help="gorpc only, with --blocks: alternate TARGET with this server (metrics on, both sides)",
    )  # fmt: skip
    parser.add_argument("--consul", default=None, help="gorpc only: resolve TARGET through this agent")
    args = parser.parse_args()
    # grpc.aio runs on asyncio's own loop; the others on uvloop, as their servers do.
    run = asyncio.run if args.kind == "grpc" else uvloop.run
    print(json.dumps(run(measure(args))))


if __name__ == "__main__":
    main()
