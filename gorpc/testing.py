"""Helpers for testing gorpc services: a server/client pair in memory or on loopback, and a server
in a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from gorpc.client import Client
from gorpc.server import Server
from gorpc.service import Service

# The line `Server.start` logs at INFO once it listens; subprocess helpers wait for it.
SERVING_LINE = re.compile(r"serving (?P<services>.*) on (?P<address>\S+)$")


@contextlib.asynccontextmanager
async def loopback(
    *services: Service, server_options: dict[str, Any] | None = None, **client_options: Any
) -> AsyncIterator[tuple[Server, Client]]:
    """A started server on 127.0.0.1 port 0 hosting `services`, and a client dialing it."""
    server = Server(**{"address": "127.0.0.1:0", **(server_options or {})})
    server.register(*services)
    async with server, Client(server.address, **client_options) as client:
        yield server, client


async def eventually(
    condition: Callable[[], object], *, timeout: float = 5.0, interval: float = 0.01, what: str = ""
) -> float:
    """Wait until `condition()` (a function or a coroutine function) is true; returns the seconds it
    took. Raises TimeoutError after `timeout`.

    For state that changes without an event to await (another process, a registry, a clock).
    """
    start = time.monotonic()
    while not await _truth(condition()):
        if time.monotonic() - start > timeout:
            raise TimeoutError(f"{what or condition!r} not true after {timeout}s")
        await asyncio.sleep(interval)
    return time.monotonic() - start


async def _truth(value: object) -> bool:
    return bool(await value) if inspect.isawaitable(value) else bool(value)


@dataclass
class ServerProcess:
    """A server running in a child process; `address` is where it listens."""

    process: subprocess.Popen[str]
    address: str
    output: list[str] = field(default_factory=list)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Signal the server and wait for it to exit; returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


@contextlib.contextmanager
def server_process(
    argv: Sequence[str],
    *,
    timeout: float = 30.0,
    env: dict[str, str] | None = None,
    stop_timeout: float = 10.0,
) -> Iterator[ServerProcess]:
    """Run `python argv...` and wait until it logs that it is serving.

    On exit it stops the server gracefully (SIGTERM, so it deregisters and drains) and waits for it;
    only a server still running `stop_timeout` seconds later is killed.
    """
    process = subprocess.Popen(
        [sys.executable, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    assert process.stdout is not None
    output: list[str] = []
    address = _wait_for_serving(process, output, timeout)
    server = ServerProcess(process, address, output)
    # Keep reading so the child never blocks on a full pipe.
    reader = threading.Thread(target=lambda: output.extend(process.stdout or ()), daemon=True)
    reader.start()
    try:
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait()
        reader.join(timeout)
        process.stdout.close()


def _wait_for_serving(process: subprocess.Popen[str], output: list[str], timeout: float) -> str:
    timer = threading.Timer(timeout, process.kill)  # a server that never says it's serving is killed
    timer.start()
    try:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            match = SERVING_LINE.search(line.rstrip())
            if match:
                return match["address"]
    finally:
        timer.cancel()
    process.wait()
    raise RuntimeError(f"server exited ({process.returncode}) before serving:\n{''.join(output)}")


@contextlib.asynccontextmanager
async def memory_pair(
    *services: Service, server_options: dict[str, Any] | None = None, **client_options: Any
) -> AsyncIterator[tuple[Server, Client]]:
    """A started server hosting `services` on an in-process `memory:` address, and a client of it:
    the whole call path (framing, dispatch, flow control) without a socket."""
    from gorpc.memory import unique_name

    server = Server(**{"address": f"memory:{unique_name('test')}", **(server_options or {})})
    server.register(*services)
    async with server, Client(server.address, **client_options) as client:
        yield server, client
