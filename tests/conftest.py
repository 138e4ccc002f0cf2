"""Shared test services and fixtures. Every server listens on port 0."""

import asyncio
import threading
import time

import pytest_asyncio
import uvloop

from gorpc import CallContext, InvalidRequest, Server, Service
from gorpc.testing import loopback


class Greeter(Service):
    """The test service: one method per behaviour a user relies on."""

    name = "helloworld.Greeter"

    def __init__(self) -> None:
        self.received: asyncio.Queue = asyncio.Queue()
        self.cancelled = asyncio.Event()
        self.started = asyncio.Event()
        self.cancellations = 0

    async def SayHello(self, req):
        return {"msg": req["msg"] + " world"}

    async def Echo(self, req):
        return req

    async def Fail(self, req):
        raise ValueError(f"bad value {req!r}")

    async def Refuse(self, req, ctx: CallContext):
        ctx.response_metadata["retry-after"] = "never"
        raise InvalidRequest("name is required")

    async def Sleep(self, seconds):
        self.started.set()
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            self.cancellations += 1
            self.cancelled.set()
            raise
        return "slept"

    def BlockingSleep(self, seconds):
        time.sleep(seconds)
        return threading.current_thread().name

    async def Context(self, req, ctx: CallContext):
        ctx.response_metadata["served-by"] = "greeter"
        return {
            "method": ctx.method,
            "metadata": ctx.metadata,
            "peer": ctx.peer,
            "remaining": ctx.time_remaining(),
        }

    async def Record(self, req):
        await self.received.put(req)

    async def Unencodable(self, req):
        return object()

    async def BadMetadata(self, req, ctx: CallContext):
        ctx.response_metadata["when"] = object()
        return req

    async def Big(self, size):
        return b"x" * size


def pytest_asyncio_loop_factories(config, item):
    """Every async test runs on asyncio's loop and on uvloop, which servers use when installed.

    Tests against a real Consul (marked `consul`) exercise the registry, not the loop: uvloop only.
    """
    if item.get_closest_marker("consul"):
        return {"uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest_asyncio.fixture
async def greeter():
    return Greeter()


@pytest_asyncio.fixture
async def started_server(greeter):
    """A started server hosting `greeter`, for tests that stop it themselves (stop is idempotent)."""
    server = Server(address="127.0.0.1:0")
    server.register(greeter)
    await server.start()
    yield server
    await server.stop()


@pytest_asyncio.fixture
async def pair(greeter):
    async with loopback(greeter) as (server, client):
        yield server, client


@pytest_asyncio.fixture
async def client(pair):
    return pair[1]


def free_port() -> int:
    """A port nothing listens on (for 'connection refused' tests); the OS picks it."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pytest_addoption(parser):
    parser.addoption(
        "--soak-seconds", type=float, default=10.0, help="how long tests/test_soak.py loads its server"
    )
