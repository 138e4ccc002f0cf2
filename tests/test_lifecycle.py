"""Starting, stopping and serving: graceful stop, signals, restarts, and the event loop choice."""

import asyncio
import signal
import sys
from pathlib import Path

import pytest

from gorpc import Cancelled, Client, Server, Service, Unavailable
from gorpc.resolvers import StaticResolver
from gorpc.runtime import loop_factory, uvloop_available
from gorpc.testing import eventually, loopback, server_process

from .conftest import Greeter

HELLO_SERVER = str(Path(__file__).resolve().parent.parent / "examples" / "helloworld" / "server.py")


@pytest.mark.asyncio
async def test_graceful_stop_lets_calls_in_flight_finish_and_refuses_new_ones(started_server, greeter):
    server = started_server
    async with Client(server.address) as client:
        slow = asyncio.create_task(client.call("/helloworld.Greeter/Sleep", 0.3))
        await greeter.started.wait()
        stopping = asyncio.create_task(server.stop(grace=10))
        with pytest.raises(Unavailable):
            # The server said GOAWAY and closed its listener: a new call cannot start.
            for _ in range(10_000):
                await client.call("/helloworld.Greeter/Echo", 1)
        assert await slow == "slept"
        await stopping
        assert not greeter.cancelled.is_set()


@pytest.mark.asyncio
@pytest.mark.parametrize("timeout", [None, 30.0])
async def test_calls_still_running_after_the_grace_period_are_cancelled(started_server, greeter, timeout):
    server = started_server
    async with Client(server.address) as client:
        slow = asyncio.create_task(client.call("/helloworld.Greeter/Sleep", 60, timeout=timeout))
        await greeter.started.wait()
        await server.stop(grace=0.1)
        with pytest.raises(Unavailable, match="server stopped before the call completed"):
            await slow
    assert greeter.cancelled.is_set()


@pytest.mark.asyncio
async def test_stop_is_idempotent_and_safe_before_start(greeter):
    never_started = Server(address="127.0.0.1:0")
    await never_started.stop()
    async with loopback(greeter) as (server, _):
        waiter = asyncio.create_task(server.wait_stopped())
        await asyncio.sleep(0)  # let it start waiting
        assert not waiter.done()  # a running server is not stopped
    await asyncio.wait_for(waiter, 5)  # the context manager's stop released it
    await server.stop()  # again, after the context manager stopped it


@pytest.mark.asyncio
async def test_register_after_start_is_refused(pair, greeter):
    server, _ = pair
    with pytest.raises(RuntimeError, match="before the server starts"):
        server.register(Greeter())


@pytest.mark.asyncio
async def test_address_in_use_is_a_typed_error(pair, greeter):
    server, _ = pair
    second = Server(address=server.address)
    second.register(greeter)
    with pytest.raises(Unavailable, match="cannot listen on"):
        await second.start()


@pytest.mark.asyncio
async def test_client_reconnects_to_a_restarted_server(started_server, greeter):
    first = started_server
    async with Client(first.address) as client:
        assert await client.call("/helloworld.Greeter/Echo", 1) == 1
        await first.stop()
        with pytest.raises(Unavailable):
            await client.call("/helloworld.Greeter/Echo", 2)
        second = Server(address=first.address)
        second.register(greeter)
        async with second:
            assert await client.call("/helloworld.Greeter/Echo", 3) == 3


@pytest.mark.asyncio
async def test_client_close_closes_its_connections(pair):
    server, _ = pair
    client = Client(server.address)
    await client.call("/helloworld.Greeter/Echo", 1)
    assert [c.state for c in client.connections] == ["open"]
    await client.close()
    assert client.connections == []
    await eventually(lambda: not server.connections)  # the server saw it close
    with pytest.raises(RuntimeError, match="closed"):
        await client.call("/helloworld.Greeter/Echo", 1)


@pytest.mark.asyncio
async def test_closing_a_client_fails_its_calls_in_flight_saying_it_was_closed(pair, greeter):
    server, _ = pair
    client = Client(server.address)
    calls = [asyncio.ensure_future(client.call("/helloworld.Greeter/Sleep", 30)) for _ in range(3)]
    await greeter.started.wait()
    await client.close()
    for outcome in await asyncio.gather(*calls, return_exceptions=True):
        assert isinstance(outcome, Cancelled)
        assert "client was closed while the call was in flight" in outcome.message
    await eventually(lambda: greeter.cancellations == 3)  # the server stopped the work too


class StuckResolver(StaticResolver):
    """A registry that never answers a lookup; says when one has begun."""

    def __init__(self) -> None:
        super().__init__()
        self.asked = asyncio.Event()

    async def resolve(self, service):
        self.asked.set()
        await asyncio.Event().wait()


@pytest.mark.asyncio
async def test_closing_a_client_fails_calls_still_finding_a_server_saying_so():
    resolver = StuckResolver()
    client = Client("helloworld.Greeter", resolver=resolver)
    call = asyncio.ensure_future(client.call("/helloworld.Greeter/Echo", 1))
    await resolver.asked.wait()
    await client.close()
    with pytest.raises(Cancelled, match="client was closed"):
        await call


def test_server_process_stops_its_server_gracefully_on_exit():
    with server_process([HELLO_SERVER, "--address", "127.0.0.1:0"]) as server:
        assert _call_blocking(server.address) == {"msg": "hello world"}
    # SIGTERM: the server drained, deregistered and exited on its own (SIGKILL would be -9).
    assert server.process.returncode == 0
    assert any("stopped serving" in line for line in server.output)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_gracefully_on_signal(sig):
    with server_process([HELLO_SERVER, "--address", "127.0.0.1:0"]) as server:
        reply = _call_blocking(server.address)
        assert reply == {"msg": "hello world"}
        assert server.stop(sig) == 0
    assert any("stopped serving" in line for line in server.output)


def _call_blocking(address):
    from gorpc import BlockingClient

    with BlockingClient(address) as client:
        return client.call("/helloworld.Greeter/SayHello", {"msg": "hello"}, timeout=10)


def test_loop_choice_follows_the_config():
    assert loop_factory(False) is asyncio.new_event_loop
    if uvloop_available():
        import uvloop

        assert loop_factory(True) is uvloop.new_event_loop
    else:
        assert loop_factory(True) is asyncio.new_event_loop


def test_uvloop_is_installed_for_the_test_run():
    # The `uvloop` extra is part of the test setup; without it the loop-choice test proves less.
    assert uvloop_available() or sys.platform == "win32"


@pytest.mark.asyncio
async def test_failed_registration_leaves_nothing_registered(greeter):
    class Flaky(StaticResolver):
        async def register(self, instance):
            if instance.service == "z.Second":
                raise OSError("registry unreachable")
            await super().register(instance)

    class Second(Service):
        name = "z.Second"

        async def Ping(self, req):
            return req

    resolver = Flaky()
    server = Server(address="127.0.0.1:0", resolver=resolver)
    server.register(greeter, Second())
    with pytest.raises(Unavailable, match=r"cannot register z\.Second .*registry unreachable"):
        await server.start()
    assert await resolver.resolve("helloworld.Greeter") == []
    async with Client(server.address) as client:  # and nothing listens any more
        with pytest.raises(Unavailable, match="cannot connect"):
            await client.call("/helloworld.Greeter/Echo", 1)
