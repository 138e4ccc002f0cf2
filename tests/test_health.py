"""The built-in health service: Check and Watch through a graceful stop, statuses the application
sets, the `gorpc health` probe and its exit codes."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from gorpc import Client, MethodNotFound, Server
from gorpc.serving import ServingStatus
from gorpc.testing import loopback
from tests.conftest import Greeter

pytestmark = pytest.mark.asyncio

CHECK, WATCH = "/gorpc.Health/Check", "/gorpc.Health/Watch"
SERVING, NOT_SERVING, UNKNOWN = "SERVING", "NOT_SERVING", "UNKNOWN"


async def test_check_answers_for_the_server_its_services_and_what_it_does_not_host():
    async with loopback(Greeter()) as (server, client):
        assert await client.call(CHECK, None) == SERVING  # the whole server
        assert await client.call(CHECK, "") == SERVING
        assert await client.call(CHECK, "helloworld.Greeter") == SERVING
        assert await client.call(CHECK, "no.Such") == UNKNOWN
        server.health.set("helloworld.Greeter", ServingStatus.NOT_SERVING)
        assert await client.call(CHECK, "helloworld.Greeter") == NOT_SERVING
        assert await client.call(CHECK, None) == SERVING  # the server as a whole is still up
        assert await client.call(CHECK, None, reply_type=ServingStatus) is ServingStatus.SERVING
        assert server.services == ["helloworld.Greeter"]  # built-ins are never registered
        assert await client.call("/gorpc.Reflection/ListServices") == ["helloworld.Greeter"]


async def test_an_application_status_set_before_start_is_kept():
    server = Server(address="127.0.0.1:0")
    server.register(Greeter())
    server.health.set("helloworld.Greeter", "NOT_SERVING")  # warming up
    async with server, Client(server.address) as client:
        assert await client.call(CHECK, "helloworld.Greeter") == NOT_SERVING
        server.health.set("helloworld.Greeter", "SERVING")
        assert await client.call(CHECK, "helloworld.Greeter") == SERVING


async def test_watch_sees_each_change_then_not_serving_at_a_graceful_stop_and_ends():
    greeter = Greeter()
    async with loopback(greeter) as (server, client):
        seen: list[str] = []
        changed = asyncio.Event()

        async def watch() -> None:
            async for status in client.stream(WATCH, "helloworld.Greeter", timeout=None):
                seen.append(status)
                changed.set()

        watcher = asyncio.create_task(watch())
        await asyncio.wait_for(changed.wait(), 5)
        changed.clear()
        server.health.set("helloworld.Greeter", ServingStatus.NOT_SERVING)
        await asyncio.wait_for(changed.wait(), 5)
        changed.clear()
        server.health.set("helloworld.Greeter", ServingStatus.SERVING)
        await asyncio.wait_for(changed.wait(), 5)
        # A call in flight holds the stop in its grace period; the watcher learns at its start.
        sleeping = asyncio.create_task(client.call("/helloworld.Greeter/Sleep", 0.5))
        await asyncio.wait_for(greeter.started.wait(), 5)
        stopping = asyncio.create_task(server.stop(grace=5))
        await asyncio.wait_for(watcher, 5)  # the watch ended, as the stop began
        assert seen == [SERVING, NOT_SERVING, SERVING, NOT_SERVING]
        assert await sleeping == "slept"  # and the call in flight still finished
        await stopping


async def test_health_false_serves_no_health_service():
    async with loopback(Greeter(), server_options={"health": False}) as (_, client):
        with pytest.raises(MethodNotFound, match=r"gorpc\.Health"):
            await client.call(CHECK, None)


def probe(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gorpc", "health", *args], capture_output=True, text=True, timeout=60
    )


async def test_gorpc_health_exits_0_only_when_serving():
    async with loopback(Greeter()) as (server, _):
        ok = await asyncio.to_thread(probe, server.address)
        assert (ok.returncode, ok.stdout) == (0, "SERVING\n")
        server.health.set("helloworld.Greeter", ServingStatus.NOT_SERVING)
        down = await asyncio.to_thread(probe, server.address, "helloworld.Greeter")
        assert (down.returncode, down.stdout) == (6, "NOT_SERVING\n")
        unknown = await asyncio.to_thread(probe, server.address, "no.Such")
        assert (unknown.returncode, unknown.stdout) == (6, "UNKNOWN\n")
        address = server.address
    gone = await asyncio.to_thread(probe, address, "--timeout", "2")
    assert gone.returncode == 4 and "gorpc health:" in gone.stderr
