"""Consul discovery at scale, against a real agent: a client calling hundreds of services keeps a
handful of connections to Consul, and changes still reach it within a second."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from gorpc import Client, Server, Service
from gorpc.testing import eventually
from gorpc_consul import ConsulError, ConsulResolver
from gorpc_consul.testing import dev_agent
from gorpc_consul.watching import Pauses

from .consul_helpers import consul_plugins

SCALE = 200  # services, one instance each (the benchmark suite measures 1,000)
SCALE_BENCHMARK = Path(__file__).resolve().parent.parent / "benchmarks" / "consul_scale.py"
consul = pytest.mark.consul


def service_class(name: str) -> type[Service]:
    async def Which(self, req) -> str:
        return name

    return type(name.replace(".", "_"), (Service,), {"name": name, "Which": Which})


async def start_servers(names: list[str], resolver: ConsulResolver) -> list[Server]:
    """One server per name, all registering through one shared resolver (as a process hosting many
    servers would: one set of connections to Consul, not one per server)."""
    servers = []
    for name in names:
        server = Server(address="127.0.0.1:0", resolver=resolver)
        server.register(service_class(name)())
        servers.append(server)
    await asyncio.gather(*(s.start() for s in servers))
    return servers


@consul
@pytest.mark.slow
def test_a_client_calling_two_hundred_services_keeps_few_consul_connections_and_stays_fresh():
    """The benchmark's run, scaled down: a real agent, two processes hosting 100 services each,
    one client process calling all of them."""
    done = subprocess.run(
        [sys.executable, str(SCALE_BENCHMARK), "--services", str(SCALE), "--hosts", "2"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    measured = json.loads(done.stdout)
    print(measured)
    assert measured["answered"] == measured["calls"] == SCALE  # every call succeeded
    # A query each for the first 4 services, one on the prefix for the other 196, and ordinary
    # requests: never more than 8, whatever the number of services.
    assert 1 <= measured["consul_connections"] <= 8
    assert measured["new_instance_routable_s"] < 1.0  # from before it registered


@consul
@pytest.mark.asyncio
async def test_services_followed_through_the_prefix_see_new_and_stopped_instances_within_a_second():
    with dev_agent() as agent:
        resolver = ConsulResolver({"address": agent.http_address, "prefix": "pw"})
        names = ["pw.A", "pw.B"]
        servers = await start_servers(names, resolver)
        plugins = consul_plugins(
            agent.http_address, prefix="pw", prefix_watch_after=0
        )  # all through the prefix
        try:
            async with Client(resolver="consul", plugins=plugins) as client:
                assert [await client.call(f"/{n}/Which") for n in names] == names
                [another] = await start_servers(["pw.B"], resolver)
                took = await eventually(lambda: len(client.known_nodes("pw.B")) == 2, timeout=5)
                assert took < 1.0
                assert len(client.known_nodes("pw.A")) == 1  # A's list did not change
                await another.stop()
                took = await eventually(lambda: len(client.known_nodes("pw.B")) == 1, timeout=5)
                assert took < 1.0
                assert client.known_nodes("pw.B")[0].address == servers[1].address
        finally:
            await asyncio.gather(*(s.stop() for s in servers))
            await resolver.close()


@consul
@pytest.mark.asyncio
async def test_a_service_no_longer_called_stops_being_watched():
    with dev_agent() as agent:
        resolver = ConsulResolver({"address": agent.http_address, "prefix": "ex"})
        servers = await start_servers(["ex.A"], resolver)
        plugins = consul_plugins(agent.http_address, prefix="ex")
        try:
            async with Client(resolver="consul", plugins=plugins, watch_expiry=0.2) as client:
                assert await client.call("/ex.A/Which") == "ex.A"
                assert client.known_nodes("ex.A")
                await eventually(lambda: client.known_nodes("ex.A") == [], timeout=5)  # expired
                assert await client.call("/ex.A/Which") == "ex.A"  # looked up again
        finally:
            await asyncio.gather(*(s.stop() for s in servers))
            await resolver.close()


def test_a_429_from_consul_is_back_pressure():
    pauses = Pauses()
    throttled = ConsulError("too many requests", status=429)
    assert [pauses.after(throttled) for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    pauses.reset()
    assert pauses.after(ConsulError("election", status=500)) == 0.1  # other errors: look again soon
