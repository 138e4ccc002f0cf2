"""Worker processes: several processes on one address under a supervisor (`workers = N`)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections import Counter

import pytest

from gorpc import Client
from gorpc.testing import eventually, server_process

from .consul_helpers import consul_plugins

PID = "/test.Pids/Pid"


def serve_workers(*extra: str):
    argv = ["-m", "gorpc", "serve", "tests.worker_service:Pids", "--address", "127.0.0.1:0", "--workers", "2"]
    return server_process([*argv, *extra])


def serving_lines(server) -> int:
    return sum(1 for line in list(server.output) if "serving test.Pids on" in line)


async def workers_serving(server, count: int) -> None:
    """Wait until `count` workers have said they serve; on failure, show what the server printed."""
    try:
        await eventually(lambda: serving_lines(server) == count, timeout=20)
    except TimeoutError:
        raise AssertionError("workers did not all start:\n" + "".join(list(server.output)[-40:])) from None


async def pids_answering(client: Client, want: int) -> set[int]:
    """Call until `want` different processes have answered."""
    seen: set[int] = set()

    async def enough() -> bool:
        seen.update(await asyncio.gather(*(client.call(PID) for _ in range(8))))
        return len(seen) >= want

    await eventually(enough, timeout=10)
    return seen


@pytest.mark.asyncio
async def test_two_workers_share_the_address_and_a_killed_one_is_started_again():
    with serve_workers() as server:
        await workers_serving(server, 2)
        async with Client(server.address, connections_per_host=2) as client:
            first = await pids_answering(client, 2)
            assert os.getpid() not in first and server.process.pid not in first
            doomed = min(first)
            os.kill(doomed, signal.SIGKILL)
            # The supervisor logs it and starts a new worker; calls reach it on new connections.
            await workers_serving(server, 3)
        async with Client(server.address, connections_per_host=2) as client:
            after = await pids_answering(client, 2)
        assert doomed not in after and len(after) == 2
        assert any(
            f"worker 0 (pid {doomed})" in line or f"worker 1 (pid {doomed})" in line for line in server.output
        )
        assert any("exited (signal SIGKILL)" in line for line in server.output)
        assert server.stop() == 0


@pytest.mark.asyncio
async def test_sigterm_stops_every_worker_gracefully_with_calls_in_flight():
    with serve_workers() as server:
        await workers_serving(server, 2)
        async with Client(server.address, connections_per_host=2) as client:
            await pids_answering(client, 2)  # two connections: one to each worker, in turn
            calls = [asyncio.create_task(client.call("/test.Pids/Work", 1.0)) for _ in range(8)]
            await eventually(lambda: sum("working in" in line for line in list(server.output)) == 8)
            stopped = asyncio.get_running_loop().run_in_executor(None, server.stop)
            replies = await asyncio.gather(*calls)  # none lost: each worker drained its calls
            assert len(set(replies)) == 2
            assert await stopped == 0


@pytest.mark.consul
@pytest.mark.asyncio
async def test_the_supervisor_registers_the_address_once_and_deregisters_it_first(tmp_path):
    from gorpc_consul.testing import dev_agent

    with dev_agent() as agent:
        config = tmp_path / "gorpc.toml"
        config.write_text(
            f'[server]\nresolver = "consul"\n[plugins.consul]\naddress = "{agent.http_address}"\n'
            'prefix = "workers"\n'
        )
        with serve_workers("--config", str(config)) as server:
            await workers_serving(server, 2)

            def registered():
                return agent.get("/kv/workers/test.Pids/?recurse=true") or []

            await eventually(lambda: len(registered()) == 1, timeout=10)
            [entry] = registered()
            assert entry["Key"] == f"workers/test.Pids/{server.address}"
            services = agent.get("/agent/services")
            assert [s["Service"] for s in services.values()] == [
                "test-pids"
            ]  # one agent service (a DNS label)
            plugins = consul_plugins(agent.http_address, prefix="workers")
            async with Client("test.Pids", resolver="consul", plugins=plugins) as client:
                assert isinstance(await client.call(PID), int)
            assert server.stop() == 0
        assert registered() == []
        assert agent.get("/agent/services") == {}


@pytest.mark.asyncio
async def test_two_connections_reach_two_workers_and_calls_spread_over_them(tmp_path):
    """The supervisor hands connections out in turn, so two connections are two workers; the
    client sends each call to the connection with fewer calls in flight. Over a Unix socket too."""
    for address in ("127.0.0.1:0", f"unix:{tmp_path / 'workers.sock'}"):
        argv = ["-m", "gorpc", "serve", "tests.worker_service:Pids", "--address", address, "--workers", "2"]
        with server_process(argv) as server:
            await workers_serving(server, 2)
            async with Client(server.address, connections_per_host=2) as client:
                await client.call(PID)  # the first connection
                await client.call(PID)  # it finds one of two: the second opens in the background
                await eventually(lambda: len(client.connections) == 2)
                replies = await asyncio.gather(*(client.call("/test.Pids/Work", 0.05) for _ in range(10)))
                assert sorted(Counter(replies).values()) == [5, 5]
            assert server.stop() == 0


@pytest.mark.asyncio
async def test_each_worker_serves_its_own_metrics_endpoint(tmp_path):
    from tests.test_metrics import scrape, value

    port = two_free_ports()
    config = tmp_path / "gorpc.toml"
    config.write_text(
        f'[server]\nmetrics = "prometheus"\n[plugins.prometheus]\naddress = "127.0.0.1:{port}"\n'
    )
    with serve_workers("--config", str(config)) as server:
        await workers_serving(server, 2)
        async with Client(server.address, connections_per_host=2) as client:
            await pids_answering(client, 2)
            counts = [
                value(
                    await asyncio.to_thread(scrape, f"127.0.0.1:{port + k}"),
                    "rpc_server_call_duration_seconds_count",
                    rpc_method="Pid",
                )
                for k in (0, 1)
            ]
        assert all(count > 0 for count in counts)  # worker 0 on the port, worker 1 on port + 1
        assert server.stop() == 0


def two_free_ports() -> int:
    """A port p such that p and p + 1 are both free now (each worker's metrics take one)."""
    for _ in range(50):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
                return port
    raise RuntimeError("no two consecutive free ports")
