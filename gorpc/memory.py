"""In-process transports: `memory:NAME` addresses, for tests and single-process wiring without sockets.

A server listening on `memory:NAME` is dialled by clients in the same process and event loop; each
connection is a pair of `MemoryTransport`s that hand bytes straight to the other side's protocol,
one loop turn later, as a socket would. Flow control works as with TCP: a side that pauses reading
keeps what arrives in its inbox, and once that holds more than the high-water mark the writer's
protocol is told to pause writing. Like grpclib's `ChannelFor`, but reached through an address, so
resolvers, balancers and failover work with it too.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Callable
from typing import TypeVar

HIGH_WATER = 64 * 1024
LOW_WATER = 16 * 1024

ProtocolFactory = Callable[[], asyncio.Protocol]
P = TypeVar("P", bound=asyncio.Protocol)

_listeners: dict[str, MemoryListener] = {}
_numbers = itertools.count(1)


class MemoryTransport(asyncio.Transport):
    """One end of an in-process connection."""

    def __init__(self, protocol: asyncio.Protocol, name: str, peer_name: str) -> None:
        super().__init__({"peername": peer_name, "sockname": name})
        self._loop = asyncio.get_running_loop()
        self._protocol = protocol
        self._peer: MemoryTransport | None = None
        self._inbox: collections.deque[bytes] = collections.deque()
        self._inbox_size = 0
        self._delivering = False
        self._reading = True
        self._eof = False  # the peer closed: after the inbox, the connection is lost
        self._closing = False
        self._lost = False
        self._writing_paused = False
        self._high, self._low = HIGH_WATER, LOW_WATER

    # -- writing ----------------------------------------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        peer = self._peer
        if self._closing or peer is None or peer._lost:
            return  # like a socket that is closing: the bytes go nowhere
        peer._receive(bytes(data))
        if not self._writing_paused and peer._inbox_size > self._high:
            self._writing_paused = True
            self._protocol.pause_writing()

    def get_write_buffer_size(self) -> int:
        """Bytes sent that the other side has not read yet."""
        return self._peer._inbox_size if self._peer is not None else 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._high = HIGH_WATER if high is None else high
        self._low = self._high // 4 if low is None else low

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low, self._high

    def can_write_eof(self) -> bool:
        return False

    def _maybe_resume_writing(self) -> None:
        if self._writing_paused and self.get_write_buffer_size() <= self._low and not self._lost:
            self._writing_paused = False
            self._protocol.resume_writing()

    # -- reading ----------------------------------------------------------------------------------

    def _receive(self, data: bytes) -> None:
        self._inbox.append(data)
        self._inbox_size += len(data)
        self._schedule_delivery()

    def _schedule_delivery(self) -> None:
        if not self._delivering and self._reading and not self._lost:
            self._delivering = True
            self._loop.call_soon(self._deliver)

    def _deliver(self) -> None:
        self._delivering = False
        while self._inbox and self._reading and not self._lost:
            data = self._inbox.popleft()
            self._inbox_size -= len(data)
            self._protocol.data_received(data)
        if self._peer is not None:
            self._peer._maybe_resume_writing()
        if self._eof and not self._inbox:
            self._connection_lost()

    def pause_reading(self) -> None:
        self._reading = False

    def resume_reading(self) -> None:
        self._reading = True
        self._schedule_delivery()
        if self._eof and not self._inbox:
            self._loop.call_soon(self._connection_lost)

    def is_reading(self) -> bool:
        return self._reading and not self._lost

    # -- closing ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close once what was written is delivered: the other side reads it, then sees the end."""
        if self._closing:
            return
        self._closing = True
        self._loop.call_soon(self._connection_lost)
        if self._peer is not None:
            self._peer._peer_closed()

    def abort(self) -> None:
        """Drop the connection now, on both sides, with whatever was in flight."""
        self._closing = True
        self._inbox.clear()
        self._loop.call_soon(self._connection_lost)
        if self._peer is not None:
            self._peer._inbox.clear()
            self._peer._peer_closed()

    def _peer_closed(self) -> None:
        self._eof = True
        self._closing = True
        if self._reading and not self._inbox:
            self._loop.call_soon(self._connection_lost)

    def is_closing(self) -> bool:
        return self._closing or self._lost

    def _connection_lost(self) -> None:
        if self._lost:
            return
        self._lost = True
        self._inbox.clear()
        self._inbox_size = 0
        self._protocol.connection_lost(None)
        if self._peer is not None:
            self._peer._maybe_resume_writing()

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol  # type: ignore[assignment]


class MemoryListener:
    """A server's `memory:NAME` endpoint; closing it refuses new connections."""

    def __init__(self, name: str, factory: ProtocolFactory) -> None:
        self.name = name
        self._factory = factory

    def accept(self, client: asyncio.Protocol) -> MemoryTransport:
        """Make a connected pair for `client`; returns the client's end."""
        number = next(_numbers)
        server = self._factory()
        client_end = MemoryTransport(client, f"memory:{self.name}#{number}c", f"memory:{self.name}")
        server_end = MemoryTransport(server, f"memory:{self.name}", f"memory:{self.name}#{number}c")
        client_end._peer, server_end._peer = server_end, client_end
        server.connection_made(server_end)
        client.connection_made(client_end)
        return client_end

    def close(self) -> None:
        if _listeners.get(self.name) is self:
            del _listeners[self.name]

    async def wait_closed(self) -> None:
        return None


def listen(name: str, factory: ProtocolFactory) -> MemoryListener:
    """Accept connections to `memory:NAME`; raises OSError if something listens there already."""
    if name in _listeners:
        raise OSError(f"memory:{name} is already in use")
    listener = _listeners[name] = MemoryListener(name, factory)
    return listener


async def connect(name: str, factory: Callable[[], P]) -> tuple[MemoryTransport, P]:
    """Dial `memory:NAME`: the client's transport and protocol, as `loop.create_connection` returns.
    Nothing listening raises ConnectionRefusedError, as a socket would."""
    listener = _listeners.get(name)
    if listener is None:
        raise ConnectionRefusedError(f"nothing listens on memory:{name}")
    protocol = factory()
    return listener.accept(protocol), protocol


def unique_name(prefix: str = "gorpc") -> str:
    """A `memory:` name no listener uses yet."""
    return f"{prefix}-{next(_numbers)}"
