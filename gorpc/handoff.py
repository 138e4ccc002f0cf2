"""Connections handed to a worker process by its supervisor (see `gorpc.workers`).

The supervisor accepts each connection on the address and passes its file descriptor to the next
worker in turn over a Unix socket pair (SCM_RIGHTS); `HandoffListener` is the worker's end, in
place of a listening socket: each descriptor it receives becomes a connection of the server.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl as ssl_module
from collections.abc import Callable

logger = logging.getLogger("gorpc.workers")

MAX_FDS = 64  # descriptors taken per read; more simply wait for the next one


class HandoffListener:
    """Serves the connections that arrive over `channel` (what a listening socket would accept)."""

    def __init__(
        self,
        channel: socket.socket,
        factory: Callable[[], asyncio.Protocol],
        ssl: ssl_module.SSLContext | None,
    ) -> None:
        self._channel = channel
        self._factory = factory
        self._ssl = ssl
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[object]] = set()
        self._closed = asyncio.Event()
        channel.setblocking(False)
        self._loop.add_reader(channel.fileno(), self._receive)

    def _receive(self) -> None:
        try:
            _, fds, _, _ = socket.recv_fds(self._channel, 1, MAX_FDS)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            logger.warning("connection hand-off channel failed: %s", exc)
            self.close()
            return
        if not fds:  # the supervisor closed its end
            self.close()
            return
        for fd in fds:
            sock = socket.socket(fileno=fd)
            task = self._loop.create_task(self._serve(sock))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _serve(self, sock: socket.socket) -> None:
        try:
            await self._loop.connect_accepted_socket(self._factory, sock, ssl=self._ssl)
        except (OSError, ssl_module.SSLError) as exc:  # the client left already, or a bad TLS hello
            logger.debug("handed-off connection failed: %s", exc)
            sock.close()

    def close(self) -> None:
        """Take no more connections."""
        if self._closed.is_set():
            return
        self._closed.set()
        self._loop.remove_reader(self._channel.fileno())
        self._channel.close()

    async def wait_closed(self) -> None:
        await self._closed.wait()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
