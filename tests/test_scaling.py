"""Scaling out: several connections per host."""

from __future__ import annotations

import asyncio

import pytest

from gorpc import Client, ConfigError, Server, Service
from gorpc.testing import eventually

pytestmark = pytest.mark.asyncio


class Gate(Service):
    """Holds each call until released."""

    name = "test.Gate"

    def __init__(self) -> None:
        self.held = 0
        self.release = asyncio.Event()

    async def Hold(self, req):
        self.held += 1
        await self.release.wait()
        return "released"


async def test_calls_spread_over_connections_per_host_to_the_least_busy():
    gate = Gate()
    server = Server(address="127.0.0.1:0")
    server.register(gate)
    async with server, Client(server.address, connections_per_host=2) as client:
        calls = [asyncio.create_task(client.call("/test.Gate/Hold"))]
        await eventually(lambda: gate.held == 1)
        calls.append(asyncio.create_task(client.call("/test.Gate/Hold")))  # opens the second meanwhile
        await eventually(lambda: gate.held == 2 and len(client.connections) == 2)
        calls += [asyncio.create_task(client.call("/test.Gate/Hold")) for _ in range(2)]
        await eventually(lambda: gate.held == 4)
        # The new connection took the two calls that came after it opened: two each.
        assert sorted(info.calls_in_flight for info in client.connections) == [2, 2]
        assert sorted(conn.running for conn in server.connections) == [2, 2]
        gate.release.set()
        assert await asyncio.gather(*calls) == ["released"] * 4
        assert len(server.connections) == 2


async def test_one_connection_per_host_by_default():
    gate = Gate()
    server = Server(address="127.0.0.1:0")
    server.register(gate)
    async with server, Client(server.address) as client:
        calls = [asyncio.create_task(client.call("/test.Gate/Hold")) for _ in range(4)]
        await eventually(lambda: gate.held == 4)
        assert [info.calls_in_flight for info in client.connections] == [4]
        gate.release.set()
        await asyncio.gather(*calls)


async def test_a_lost_connection_leaves_the_others_serving():
    gate = Gate()
    gate.release.set()
    server = Server(address="127.0.0.1:0")
    server.register(gate)
    async with server, Client(server.address, connections_per_host=2) as client:
        for _ in range(3):
            await client.call("/test.Gate/Hold")
        await eventually(lambda: len(server.connections) == 2)
        first = next(iter(server.connections))
        first.transport.close()  # the server drops one: calls go on over the other, then a new one
        await eventually(lambda: len(client.connections) == 1)
        assert await client.call("/test.Gate/Hold") == "released"
        await eventually(lambda: len(client.connections) == 2)


async def test_connections_per_host_is_checked():
    with pytest.raises(ConfigError, match=r"connections_per_host must be 1\.\.64"):
        Client("127.0.0.1:1", connections_per_host=0)
