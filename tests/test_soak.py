"""Soak: sustained mixed load on a server process; its memory and descriptors must stay flat.

`pytest --soak-seconds 600 tests/test_soak.py -s` runs it longer than CI's default.
"""

import asyncio
import os
import random
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import uvloop

from gorpc import Client, DeadlineExceeded, InvalidRequest
from gorpc.testing import eventually, server_process

SERVER = Path(__file__).with_name("soak_server.py")
BAD_SIGNS = ("Task was destroyed but it is pending", "ResourceWarning", "Traceback", "ERROR")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


class Load:
    """Mixed calls from steady clients and from clients that connect, call once and leave."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.outcomes: Counter[str] = Counter()
        self.unexpected: list[BaseException] = []

    async def steady(self, client: Client, stop: float) -> None:
        rng = random.Random()
        while time.monotonic() < stop:
            kind = rng.choices(["ok", "refused", "deadline", "cancel", "oneway"], [70, 10, 8, 6, 6])[0]
            try:
                await self._one(client, kind)
                self.outcomes[kind] += 1
            except Exception as exc:
                self.unexpected.append(exc)

    async def _one(self, client: Client, kind: str) -> None:
        if kind == "ok":
            assert await client.call("/test.Soak/SayHello", {"msg": "hi"}) == {"msg": "hi world"}
        elif kind == "refused":
            try:
                await client.call("/test.Soak/Refuse", 1)
            except InvalidRequest:
                return
            raise AssertionError("Refuse did not refuse")
        elif kind == "deadline":
            try:
                await client.call("/test.Soak/Sleep", 5, timeout=0.01)
            except DeadlineExceeded:
                return
            raise AssertionError("no deadline error")
        elif kind == "cancel":
            call = asyncio.ensure_future(client.call("/test.Soak/Sleep", 5))
            await asyncio.sleep(0.002)
            call.cancel()
            await asyncio.gather(call, return_exceptions=True)
        else:
            await client.notify("/test.Soak/Record", {"n": 1})

    async def churn(self, stop: float) -> None:
        while time.monotonic() < stop:
            try:
                async with Client(self.address) as client:
                    await client.call("/test.Soak/SayHello", {"msg": "new"})
                self.outcomes["new connection"] += 1
            except Exception as exc:
                self.unexpected.append(exc)


async def soak(address: str, pid: int, seconds: float) -> dict[str, float]:
    load = Load(address)
    idle_fds = open_fds(pid)
    clients = [Client(address) for _ in range(4)]
    warm_up = min(5.0, seconds / 4)
    figures: dict[str, float] = {"idle fds": idle_fds}

    async def sample_after_warm_up() -> None:
        await asyncio.sleep(warm_up)  # a clock, not a condition: the measurement window starts here
        figures["rss start"], figures["fds start"] = rss_mib(pid), open_fds(pid)

    stop = time.monotonic() + seconds
    await asyncio.gather(
        *(load.steady(client, stop) for client in clients for _ in range(8)),
        load.churn(stop),
        sample_after_warm_up(),
    )
    figures["rss end"], figures["fds end"] = rss_mib(pid), open_fds(pid)
    for client in clients:
        await client.close()
    await eventually(lambda: open_fds(pid) == idle_fds, timeout=10, what="server closes every connection")
    assert not load.unexpected, load.unexpected[:5]
    figures.update(load.outcomes)
    figures["calls"] = sum(load.outcomes.values())
    return figures


@pytest.mark.slow
def test_sustained_mixed_load_keeps_memory_and_descriptors_flat(request):
    seconds = request.config.getoption("--soak-seconds")
    argv = ["-W", "always::ResourceWarning", str(SERVER)]
    with server_process(argv, env={"PYTHONASYNCIODEBUG": ""}) as server:
        pid = server.process.pid
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            figures = runner.run(soak(server.address, pid, seconds))
        assert server.stop(signal.SIGTERM) == 0
    output = "".join(server.output)
    assert not [sign for sign in BAD_SIGNS if sign in output], output[-3000:]
    growth = figures["rss end"] - figures["rss start"]
    counts = ", ".join(f"{figures[k]:.0f} {k}" for k in ("ok", "refused", "deadline", "cancel", "oneway"))
    print(
        f"\nsoak {seconds:g}s: {figures['calls']:.0f} calls ({counts}, {figures['new connection']:.0f} new "
        f"connections), 0 unexpected; server RSS {figures['rss start']:.1f} -> {figures['rss end']:.1f} MiB, "
        f"fds {figures['fds start']:.0f} -> {figures['fds end']:.0f} under load",
        file=sys.stderr,
    )
    assert growth < 4.0, f"server RSS grew {growth:.1f} MiB after warm-up"
    assert figures["fds end"] <= figures["fds start"] + 1  # the churning client may be mid-connect
