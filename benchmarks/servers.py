"""The three servers the suite compares, each run as its own process:

    python benchmarks/servers.py gorpc   ADDRESS [--tracer NAME] [--metrics NAME] [--consul HTTP_ADDR]
                                         [--workers N]
    python benchmarks/servers.py grpc    ADDRESS
    python benchmarks/servers.py ceiling ADDRESS

Each answers {"msg": m} with {"msg": m + " world"} and logs `serving ... on HOST:PORT` when ready;
gorpc also serves the same method typed (typed_greeter.py), for the typed/untyped rows, and `Busy`,
the same answer after about 100 µs of Python work, for the workers rows.
    python benchmarks/servers.py stream-ceiling ADDRESS

gorpc and grpc also serve streams: `Feed` sends `count` items of `size` bytes, `Echo` sends back each
item it gets. The streaming ceiling is its own server (stream_ceiling.py).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))


# Turns of `busy` a Busy call makes: about 100 µs of Python on the suite's machine (measured idle
# with timeit: 113 µs; 3.11). Fixed, not calibrated at start: servers start together, and a
# calibration under that load would give each a different amount of work.
BUSY_TURNS = 3600


def busy(turns: int) -> int:
    total = 0
    for i in range(turns):
        total += i
    return total


def serve_gorpc(
    address: str, tracer: str, consul: str | None, metrics: str = "none", workers: int = 1
) -> None:
    from typed_greeter import TypedGreeter

    from gorpc import Server, Service

    class Greeter(Service):
        name = "helloworld.Greeter"

        # Unannotated: untyped, plain data. TypedGreeter is the same method with declared types.
        async def SayHello(self, req):  # type: ignore[no-untyped-def]
            return {"msg": req["msg"] + " world"}

        async def Busy(self, req):  # type: ignore[no-untyped-def]
            busy(BUSY_TURNS)  # about 100 µs of Python: a handler that does some work
            return {"msg": req["msg"] + " world"}


    class Streamer(Service):
        name = "bench.Streamer"

        async def Feed(self, req: list[int]) -> AsyncIterator[bytes]:
            count, size = req
            data = b"x" * size
            for _ in range(count):
                yield data

        async def Echo(self, items: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
            async for item in items:
                yield item

    options: dict = {"tracer": tracer, "max_message_size": 8 << 20}
    if metrics != "none":  # named only when used: `ab.py` runs this script against older trees
        options["metrics"] = metrics
        options["plugins"] = {"prometheus": {"address": "127.0.0.1:0"}}  # its own, any free port
    if tracer == "mock":
        from gorpc_tracing.mock import MockTracing

        options["tracer"] = MockTracing()  # spans kept in memory: the cost of making them, no export
    if workers > 1:  # named only when used: `ab.py` runs this script against older trees
        options["workers"] = workers
    if consul is not None:
        options.update(resolver="consul", plugins={"consul": {"address": consul, "prefix": "gorpc-bench"}})
    server = Server(address=address, **options)
    server.register(Greeter(), TypedGreeter(), Streamer())
    server.serve()


async def serve_grpc(address: str) -> None:
    import grpc
    import grpc_stubs

    pb2, pb2_grpc = grpc_stubs.load()

    class Greeter(pb2_grpc.GreeterServicer):
        async def SayHello(self, request, context):  # type: ignore[no-untyped-def]
            return pb2.HelloReply(msg=request.msg + " world")

    class Streamer(pb2_grpc.StreamerServicer):
        async def Feed(self, request, context):  # type: ignore[no-untyped-def]
            item = pb2.Item(data=b"x" * request.size)
            for _ in range(request.count):
                yield item

        async def Echo(self, request_iterator, context):  # type: ignore[no-untyped-def]
            async for item in request_iterator:
                yield item

    options = [("grpc.max_receive_message_length", 8 << 20), ("grpc.max_send_message_length", 8 << 20)]
    server = grpc.aio.server(options=options)
    pb2_grpc.add_GreeterServicer_to_server(Greeter(), server)
    pb2_grpc.add_StreamerServicer_to_server(Streamer(), server)
    port = server.add_insecure_port(address)
    await server.start()
    print(f"serving helloworld.Greeter on {address.rsplit(':', 1)[0]}:{port}", flush=True)
    await server.wait_for_termination()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=["gorpc", "grpc", "ceiling", "stream-ceiling"])
    parser.add_argument("address")
    parser.add_argument("--tracer", default="noop")
    parser.add_argument("--metrics", default="none")
    parser.add_argument("--consul", default=None)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.kind == "gorpc":
        serve_gorpc(args.address, args.tracer, args.consul, args.metrics, args.workers)
    elif args.kind == "grpc":
        asyncio.run(serve_grpc(args.address))  # grpc.aio on the loop it supports
    elif args.kind == "ceiling":
        from echo_ceiling import serve

        uvloop.run(serve(args.address))
    else:
        import stream_ceiling

        uvloop.run(stream_ceiling.serve(args.address))


if __name__ == "__main__":
    main()
