"""The transport: an asyncio Protocol that frames bytes, coalesces writes and keeps connections alive.

Client and server connections share it and add what each side does with a frame.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any, cast

from gorpc.exceptions import ProtocolError, Unavailable
from gorpc.frame import Frame, FrameDecoder, MessageType, OversizedFrame, encode_header

logger = logging.getLogger("gorpc.protocol")

PING = encode_header(MessageType.PING, 0, 0, 0)
PONG = encode_header(MessageType.PONG, 0, 0, 0)
GOAWAY = encode_header(MessageType.GOAWAY, 0, 0, 0)

# Frames per write at most under load; measured with benchmarks/ceiling_ratio.py (C=64 on 2 cores:
# 4 frames 0.68 of the ceiling, 8: 0.82, 16: 0.91-0.95; all frames of a turn in one write: 0.52).
FLUSH_FRAMES = 16
# Stream messages per write at most (`send_bulk`).
BULK_FRAMES = 64


class Connection(asyncio.Protocol):
    """One framed, multiplexed connection.

    Frames sent in one turn of the event loop are coalesced into few writes (see `send`); a
    connection silent for `heartbeat_interval` is pinged and one silent for `heartbeat_timeout` is
    dropped.
    """

    def __init__(self, *, max_message_size: int, heartbeat_interval: float, heartbeat_timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._decoder = FrameDecoder(max_message_size)
        self._heartbeat_interval = heartbeat_interval
        self._heartbeat_timeout = heartbeat_timeout
        self._heartbeat_timer: asyncio.TimerHandle | None = None
        self._last_received = self._loop.time()
        self._out: list[bytes | memoryview] = []
        self._flush_scheduled = False
        self._queued_frames = 0
        self._write_ready = asyncio.Event()
        self._write_ready.set()
        self.writable = True  # False while the transport's write buffer is over its high-water mark
        self._write_blocked_since: float | None = None  # since when the peer has taken none of our bytes
        self._write_blocked_size = 0  # our unsent bytes then
        self.reading_paused = False  # we stopped reading (backpressure); silence is then ours
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.closed: asyncio.Future[None] = self._loop.create_future()
        self.going_away = False  # the peer said GOAWAY: no new calls on this connection
        self._close_reason: Exception | None = None

    # -- asyncio.Protocol -------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.peer = peer_name(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Small frames must not wait for Nagle's algorithm (asyncio sets this; uvloop too, but be sure).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._last_received = self._loop.time()
        self._heartbeat_timer = self._loop.call_later(self._heartbeat_interval, self._check_heartbeat)

    def data_received(self, data: bytes) -> None:
        self._last_received = self._loop.time()
        try:
            for frame in self._decoder.feed(data):
                if isinstance(frame, Frame):
                    self.frame_received(frame)
                else:
                    self.oversized_frame_received(frame)
        except ProtocolError as exc:
            logger.warning("closing connection with %s: protocol error: %s", self.peer, exc.message)
            self.abort(exc)
        except Exception as exc:  # a bug must cost this connection only, never the event loop
            logger.exception("closing connection with %s: unexpected error handling a frame", self.peer)
            self.abort(ProtocolError(f"error handling a frame from {self.peer}: {exc!r}"))

    def connection_lost(self, exc: Exception | None) -> None:
        exc = self._close_reason or exc
        if self._heartbeat_timer is not None:
            self._heartbeat_timer.cancel()
        self._out.clear()
        self._write_ready.set()
        self.writable = True
        self.transport = None
        self.lost(exc)
        if not self.closed.done():
            self.closed.set_result(None)

    def pause_writing(self) -> None:
        self._write_ready.clear()
        self.writable = False
        self._write_blocked_since = self._loop.time()
        self._write_blocked_size = self.transport.get_write_buffer_size() if self.transport else 0

    def resume_writing(self) -> None:
        self._write_ready.set()
        self.writable = True
        self._write_blocked_since = None

    @property
    def buffered(self) -> int:
        """Bytes received but not yet parsed: a partial frame, never more than the size limit."""
        return self._decoder.buffered

    def pause_reading(self) -> None:
        """Stop reading: the peer's further bytes wait in the kernel, and then in the peer (TCP)."""
        if not self.reading_paused and self.transport is not None:
            self.reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and self.transport is not None:
            self.reading_paused = False
            self._last_received = self._loop.time()
            self.transport.resume_reading()

    # -- hooks for subclasses ---------------------------------------------------------------------

    def frame_received(self, frame: Frame) -> None:
        """Handle the frame types both sides share; subclasses handle calls first."""
        msg_type = frame.type
        if msg_type == MessageType.PING:
            self.send(PONG)
        elif msg_type == MessageType.PONG:
            pass
        elif msg_type == MessageType.GOAWAY:
            self.going_away = True
            self.goaway_received(frame.request_id)
        else:
            raise ProtocolError(f"unexpected message type {msg_type} from {self.peer}")

    def oversized_frame_received(self, frame: OversizedFrame) -> None:
        raise ProtocolError(f"message of {frame.size} bytes from {self.peer} is over the size limit")

    def goaway_received(self, last_request_id: int) -> None:
        """The peer is stopping. A nonzero `last_request_id` is the last request it took on this
        connection: it is closing, and will not read any later one."""

    def lost(self, exc: Exception | None) -> None:
        """The connection is gone; `exc` is why, or None for a clean close."""

    # -- sending and closing ----------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        """Connected and not closing."""
        return self.transport is not None and not self.transport.is_closing()

    def send(self, *parts: bytes | memoryview) -> None:
        """Send one frame (its parts), coalescing with other frames sent in this loop turn.

        The first frame of a turn is written at once, for latency. Later ones wait for the end of
        the turn, or until FLUSH_FRAMES are queued: one write for a whole burst would make client
        and server take turns (each idle while the other works) instead of overlapping.
        """
        if self.transport is None:
            return
        self._out.extend(parts)
        self._queued_frames += 1
        if not self._flush_scheduled:
            self._flush()
            self._flush_scheduled = True
            self._loop.call_soon(self._end_of_turn)
        elif self._queued_frames >= FLUSH_FRAMES:
            self._flush()

    def send_bulk(self, *parts: bytes | memoryview) -> None:
        """Send one frame of a stream: as `send`, but written with others at the end of the turn
        or every BULK_FRAMES, never on its own. A stream's producer sends many frames per turn,
        and fewer, larger writes carry them faster."""
        if self.transport is None:
            return
        self._out.extend(parts)
        self._queued_frames += 1
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._end_of_turn)
        elif self._queued_frames >= BULK_FRAMES:
            self._flush()

    def _end_of_turn(self) -> None:
        self._flush_scheduled = False
        self._flush()

    def _flush(self) -> None:
        if self.transport is not None and self._out:
            data = b"".join(self._out)
            self._out.clear()
            self.transport.write(data)
        self._queued_frames = 0

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water mark."""
        await self._write_ready.wait()

    def close(self) -> None:
        """Close after queued writes are sent."""
        self._flush()
        if self.transport is not None:
            self.transport.close()

    def abort(self, exc: Exception | None = None) -> None:
        """Drop the connection now, discarding queued writes."""
        if self.transport is not None:
            self._close_reason = exc  # asyncio reports None for an abort; keep the real reason
            self.transport.abort()

    def _write_blocked_for(self, now: float) -> float | None:
        """Seconds the peer has read nothing we sent, or None when our writes are flowing. A peer
        reading slowly still shrinks our buffer: that is progress, not a dead peer."""
        if self._write_blocked_since is None or self.transport is None:
            return None
        size = self.transport.get_write_buffer_size()
        if size < self._write_blocked_size:
            self._write_blocked_since = now
        self._write_blocked_size = size
        return now - self._write_blocked_since

    def _check_heartbeat(self) -> None:
        now = self._loop.time()
        blocked = self._write_blocked_for(now)
        if blocked is not None and blocked >= self._heartbeat_timeout:
            logger.info("dropping connection to %s: it read nothing for %.1fs", self.peer, blocked)
            self.abort(Unavailable(f"peer {self.peer} read nothing for {blocked:.1f}s (heartbeat timeout)"))
            return
        if self.reading_paused:
            # We are not reading, so the peer's pings go unanswered: show it we are alive.
            self._last_received = now
            self.send(PING)
        idle = now - self._last_received
        if idle >= self._heartbeat_timeout:
            logger.info("dropping connection to %s: silent for %.1fs", self.peer, idle)
            self.abort(Unavailable(f"peer {self.peer} sent nothing for {idle:.1f}s (heartbeat timeout)"))
            return
        if idle >= self._heartbeat_interval:
            self.send(PING)
            delay = min(self._heartbeat_interval, self._heartbeat_timeout - idle)
        else:
            delay = self._heartbeat_interval - idle
        self._heartbeat_timer = self._loop.call_later(delay, self._check_heartbeat)


def peer_name(transport: asyncio.BaseTransport) -> str:
    """`host:port` of the other end, or `unix:<path>` for a Unix socket."""
    peer: Any = transport.get_extra_info("peername")
    if isinstance(peer, str) and peer.startswith("memory:"):
        return peer
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = f"[{peer[0]}]" if ":" in str(peer[0]) else str(peer[0])
        return f"{host}:{peer[1]}"
    sockname = transport.get_extra_info("sockname")
    return f"unix:{sockname}" if sockname else "unix:"


def local_name(transport: asyncio.BaseTransport) -> str:
    """`host:port` of this end, or the socket path (or memory name) when it has no port."""
    local: Any = transport.get_extra_info("sockname")
    if isinstance(local, tuple) and len(local) >= 2:
        host = f"[{local[0]}]" if ":" in str(local[0]) else str(local[0])
        return f"{host}:{local[1]}"
    return str(local or "")
