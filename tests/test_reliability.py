"""Bad days under load, against a real Consul: a server killed, every server restarted, Consul gone.

Three example servers (examples/consul/server.py) run as processes registered in a dev agent; a
client keeps 16 calls in flight the whole time and records every outcome. Run with `-s` to see the
figures the README reports.
"""

import asyncio
import contextlib
import signal
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from gorpc import CallContext, Client
from gorpc.balancers import RoundRobinBalancer
from gorpc.testing import ServerProcess, eventually, server_process
from gorpc.types import Node
from gorpc_consul.testing import ConsulAgent, dev_agent

from .consul_helpers import consul_plugins

pytestmark = [pytest.mark.consul, pytest.mark.slow, pytest.mark.asyncio]

EXAMPLE_SERVER = Path(__file__).resolve().parent.parent / "examples" / "consul" / "server.py"
SERVICE = "examples.Hello"
HELLO = f"/{SERVICE}/SayHello"
WORKERS = 16


@pytest.fixture(scope="module")
def agent() -> Iterator[ConsulAgent]:
    with dev_agent() as consul_agent:
        yield consul_agent


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> str:
    return f"r-{request.node.name.replace('[', '-').rstrip(']')}"


def start_server(
    agent: ConsulAgent, prefix: str, label: str
) -> contextlib.AbstractContextManager[ServerProcess]:
    argv = [str(EXAMPLE_SERVER), "--consul", agent.http_address, "--label", label, "--prefix", prefix]
    return server_process(argv)


class RecordingBalancer(RoundRobinBalancer):
    """Round robin that notes when each node was picked: when did the client last try a node?"""

    def __init__(self, attempts: list[tuple[float, str]]) -> None:
        super().__init__()
        self._attempts = attempts

    def pick(self, nodes: Sequence[Node], ctx: CallContext) -> Node:
        node = super().pick(nodes, ctx)
        self._attempts.append((time.monotonic(), node.address))
        return node


class Load:
    """WORKERS calls in flight until stopped; every outcome recorded."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.served_by: Counter[str] = Counter()
        self.failures: list[BaseException] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def calls(self) -> int:
        return sum(self.served_by.values()) + len(self.failures)

    async def __aenter__(self) -> "Load":
        self._tasks = [asyncio.ensure_future(self._worker(i)) for i in range(WORKERS)]
        return self

    async def _worker(self, n: int) -> None:
        while not self._stop.is_set():
            try:
                reply = await self.client.call(HELLO, {"name": str(n)}, timeout=10)
                self.served_by[reply["server"]] += 1
            except Exception as exc:
                self.failures.append(exc)

    async def run_for(self, seconds: float) -> None:
        """Keep the load on for a while (a window of load, not a wait for a condition)."""
        await asyncio.sleep(seconds)

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


def client_for(agent: ConsulAgent, prefix: str, **options: object) -> Client:
    return Client(
        SERVICE, resolver="consul", plugins=consul_plugins(agent.http_address, prefix=prefix), **options
    )


def addresses(client: Client) -> set[str]:
    return {node.address for node in client.known_nodes(SERVICE)}


async def test_kill_9_under_load_fails_no_idempotent_call(agent, prefix):
    attempts: list[tuple[float, str]] = []
    with contextlib.ExitStack() as stack:
        servers = [stack.enter_context(start_server(agent, prefix, label)) for label in ("a", "b", "c")]
        victim = servers[2]
        client = client_for(agent, prefix, idempotent=[SERVICE], balancer=lambda: RecordingBalancer(attempts))
        async with client, Load(client) as load:
            await eventually(lambda: len(addresses(client)) == 3)
            await load.run_for(1.0)
            killed_at = time.monotonic()
            victim.stop(signal.SIGKILL)
            # Consul deletes the key once the agent's TCP check fails; the watch tells the client.
            await eventually(lambda: victim.address not in addresses(client), timeout=30)
            dropped_at = time.monotonic()
            await load.run_for(1.0)
        assert load.failures == []
        tried = [t for t, address in attempts if address == victim.address]
        assert not [t for t in tried if t > dropped_at]  # never tried again once the list dropped it
        last_try = max([t for t in tried if t >= killed_at], default=killed_at)
        print(
            f"\nkill -9 under load: {load.calls} calls, {len(load.failures)} failed; dead server's last "
            f"attempt {last_try - killed_at:.2f}s after the kill, out of the client's list after "
            f"{dropped_at - killed_at:.2f}s; served {dict(load.served_by)}"
        )


async def test_rolling_graceful_restart_under_load_fails_no_call(agent, prefix):
    with contextlib.ExitStack() as stack:
        servers = {
            label: stack.enter_context(start_server(agent, prefix, label)) for label in ("a", "b", "c")
        }
        async with client_for(agent, prefix) as client, Load(client) as load:  # nothing marked idempotent
            await eventually(lambda: len(addresses(client)) == 3)
            started = time.monotonic()
            for label in ("a", "b", "c"):
                await load.run_for(0.3)
                old = servers.pop(label)
                assert await asyncio.to_thread(old.stop, signal.SIGTERM) == 0
                new = stack.enter_context(start_server(agent, prefix, f"{label}2"))
                servers[f"{label}2"] = new
                await eventually(lambda new=new: new.address in addresses(client), timeout=10)
            await load.run_for(0.3)
            took = time.monotonic() - started
        assert load.failures == []
        assert {"a2", "b2", "c2"} <= set(load.served_by)
        print(
            f"\nrolling restart of 3 servers under load: {load.calls} calls in {took:.1f}s, "
            f"{len(load.failures)} failed; served {dict(load.served_by)}"
        )


async def test_consul_outage_under_load(prefix):
    with dev_agent() as own_agent, contextlib.ExitStack() as stack:
        for i in range(300):  # so the agent that comes back really has a lower index than before
            own_agent.put(f"/kv/{prefix}-padding/{i}", b"x")
        servers = [stack.enter_context(start_server(own_agent, prefix, label)) for label in ("a", "b", "c")]
        async with client_for(own_agent, prefix) as client, Load(client) as load:
            await eventually(lambda: len(addresses(client)) == 3)
            own_agent.stop()
            before = load.calls
            await load.run_for(2.0)  # Consul is gone: calls go on from the cached list
            during = load.calls - before
            assert load.failures == [] and during > 0
            back = time.monotonic()
            own_agent.start()  # a dev agent comes back empty: no sessions, no keys, no services
            await asyncio.to_thread(own_agent.wait_for_leader)

            def registered() -> int:
                return len(own_agent.get(f"/kv/{prefix}/{SERVICE}/?recurse=true") or [])

            # The servers notice their sessions are gone and register again, without a restart.
            await eventually(lambda: registered() == 3, timeout=30, interval=0.1)
            again = time.monotonic() - back
            # The client's watch resumed too: a server started now is found by the same client.
            late = stack.enter_context(start_server(own_agent, prefix, "late"))
            await eventually(lambda: late.address in addresses(client), timeout=5)
            await load.run_for(0.5)
            assert {s.address for s in servers} | {late.address} == addresses(client)
        assert load.failures == []
        print(
            f"\nconsul outage under load: {during} calls while the agent was down, {load.calls} in all, "
            f"{len(load.failures)} failed; servers registered again {again:.1f}s after the agent returned"
        )


async def test_an_agent_restart_fails_no_call_and_discovery_is_fresh_after_it(prefix):
    with dev_agent() as own_agent, contextlib.ExitStack() as stack:
        # Enough writes that the restarted (empty) agent's index is far below the one watches hold.
        for i in range(300):
            own_agent.put(f"/kv/{prefix}-padding/{i}", b"x")
        servers = [stack.enter_context(start_server(own_agent, prefix, label)) for label in ("a", "b", "c")]
        async with client_for(own_agent, prefix) as client, Load(client) as load:
            await eventually(lambda: len(addresses(client)) == 3)
            held = own_agent.index(f"/kv/{prefix}/{SERVICE}/?recurse=true")
            own_agent.stop()
            own_agent.start()  # a dev agent comes back empty: no sessions, keys or services
            await asyncio.to_thread(own_agent.wait_for_leader)
            assert own_agent.index(f"/kv/{prefix}/{SERVICE}/?recurse=true") < held  # it went backwards

            def registered() -> int:
                return len(own_agent.get(f"/kv/{prefix}/{SERVICE}/?recurse=true") or [])

            await eventually(lambda: registered() == 3, timeout=30, interval=0.05)
            await load.run_for(0.5)
            assert addresses(client) == {s.address for s in servers}
            # After the restart a graceful stop leaves rotation within a second...
            leaving = servers.pop()
            stop_started = time.monotonic()
            assert await asyncio.to_thread(leaving.stop, signal.SIGTERM) == 0
            await eventually(lambda: leaving.address not in addresses(client), timeout=5, interval=0.01)
            left = time.monotonic() - stop_started
            # ... and a new server is routable within a second of registering.
            late = stack.enter_context(start_server(own_agent, prefix, "late"))
            started = time.monotonic()
            await eventually(lambda: late.address in addresses(client), timeout=5, interval=0.01)
            found = time.monotonic() - started
            await load.run_for(0.3)
        assert load.failures == []
        print(
            f"\nagent restart under load: {load.calls} calls, {len(load.failures)} failed; index {held} "
            f"went backwards; stopped server out {left:.2f}s after SIGTERM, new one routable {found:.2f}s "
            "after it logged serving"
        )
        assert left < 1.0 and found < 1.0
