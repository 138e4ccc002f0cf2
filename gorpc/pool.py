"""A client's multiplexed connections per address (one by default), opened on first use and again
after one is lost."""

from __future__ import annotations

import asyncio
import ssl as ssl_module
from typing import Any

from gorpc import memory
from gorpc.address import MemoryAddress, UnixAddress, parse_address
from gorpc.client_connection import ClientConnection, ConnectionInfo
from gorpc.exceptions import ConfigError, ConnectionFailed


class ConnectionPool:
    """A client's connections: `per_host` to each address (1 by default), opened on first use and
    again after a loss. With more than one, each call goes to the open connection with the fewest
    calls in flight, and the others are opened in the background as calls come (several server
    worker processes behind one address each get some)."""

    def __init__(
        self,
        *,
        ssl: ssl_module.SSLContext | None,
        connect_timeout: float,
        per_host: int = 1,
        **limits: Any,
    ) -> None:
        self._ssl = ssl
        self._connect_timeout = connect_timeout
        self._per_host = per_host
        self._limits = limits
        self._open: dict[str, ClientConnection] = {}  # per_host == 1: the connection to each address
        self._groups: dict[str, list[ClientConnection]] = {}  # per_host > 1: the open ones
        self._connecting: dict[str, asyncio.Task[ClientConnection]] = {}
        self._all: set[ClientConnection] = set()  # open and draining, for close()

    def connections(self) -> list[ConnectionInfo]:
        """Every connection open or draining now, sorted by address."""
        return sorted((conn.info() for conn in self._all), key=lambda info: (info.address, info.peer))

    def get_open(self, address: str) -> ClientConnection | None:
        """The usable connection to `address`, if there is one (the call path's fast path)."""
        if self._per_host == 1:
            conn = self._open.get(address)
            return conn if conn is not None and conn.is_open else None
        return self._least_loaded(address)

    def _least_loaded(self, address: str) -> ClientConnection | None:
        """Of the open connections to `address`, the one with the fewest calls in flight; while
        there are fewer than `per_host`, another is opened in the background."""
        group = self._groups.get(address)
        if not group:
            return None
        if len(group) < self._per_host and address not in self._connecting:
            self._start_connecting(address)
        best = min(group, key=_in_flight) if len(group) > 1 else group[0]
        return best if best.is_open else None

    async def connect(self, address: str) -> ClientConnection:
        """The connection to `address`, opening it if needed; concurrent callers share one attempt."""
        conn = self.get_open(address)
        if conn is not None:
            return conn
        task = self._connecting.get(address) or self._start_connecting(address)
        try:
            return await asyncio.shield(task)  # one caller's timeout must not cancel the others' connect
        finally:
            # A failed attempt holds its error, whose traceback holds this frame: without this,
            # frame -> task -> error -> frame is a cycle keeping the caller's request alive.
            del task

    def _start_connecting(self, address: str) -> asyncio.Task[ClientConnection]:
        task = asyncio.get_running_loop().create_task(self._open_connection(address))
        self._connecting[address] = task
        task.add_done_callback(lambda t: self._connect_done(address, t))
        return task

    def _connect_done(self, address: str, task: asyncio.Task[ClientConnection]) -> None:
        self._connecting.pop(address, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so an attempt nobody awaits any more logs nothing

    async def _open_connection(self, address: str) -> ClientConnection:
        loop = asyncio.get_running_loop()
        parsed = parse_address(address)

        def factory() -> ClientConnection:
            return ClientConnection(address, self._forget, **self._limits)

        try:
            async with asyncio.timeout(self._connect_timeout):
                if isinstance(parsed, MemoryAddress):
                    if self._ssl is not None:
                        raise ConfigError(
                            f"{address}: memory: addresses carry no TLS (nothing leaves the process)"
                        )
                    _, conn = await memory.connect(parsed.name, factory)
                elif isinstance(parsed, UnixAddress):
                    hostname = "localhost" if self._ssl is not None else None
                    _, conn = await loop.create_unix_connection(
                        factory, parsed.path, ssl=self._ssl, server_hostname=hostname
                    )
                else:
                    _, conn = await loop.create_connection(factory, parsed.host, parsed.port, ssl=self._ssl)
        except TimeoutError as exc:
            raise ConnectionFailed(
                f"connecting to {address} timed out after {self._connect_timeout}s", unprocessed=True
            ) from exc
        except (OSError, ssl_module.SSLError) as exc:
            raise ConnectionFailed(f"cannot connect to {address}: {exc}", unprocessed=True) from exc
        if self._per_host == 1:
            self._open[address] = conn
        else:
            self._groups.setdefault(address, []).append(conn)
        self._all.add(conn)
        conn.closed.add_done_callback(lambda _: self._all.discard(conn))
        return conn

    def _forget(self, conn: ClientConnection) -> None:
        """`conn` takes no more calls (lost, or draining after GOAWAY)."""
        if self._open.get(conn.address) is conn:
            del self._open[conn.address]
        group = self._groups.get(conn.address)
        if group is not None and conn in group:
            group.remove(conn)
            if not group:
                del self._groups[conn.address]

    async def close(self, reason: str) -> None:
        """Close every connection, open or draining, and wait until each is closed. Calls still in
        flight fail with Cancelled(`reason`)."""
        for task in list(self._connecting.values()):
            task.cancel()
        conns = list(self._all)
        for conn in conns:
            conn.fail_pending(reason)
            conn.close()
        await asyncio.gather(*(conn.closed for conn in conns))


def _in_flight(conn: ClientConnection) -> int:
    return conn.calls_in_flight
