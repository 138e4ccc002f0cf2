"""The client's side of one connection: it owns each call's lifecycle on it.

Request ids, the calls waiting for replies, a call's deadline, CANCEL when a caller gives up, and
draining after the server's GOAWAY all live here. The client hands it an encoded request and gets
the response frame back; it never sees the table of calls or a header.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gorpc.deadline import within
from gorpc.exceptions import Cancelled, ConnectionFailed, ProtocolError
from gorpc.frame import (
    FLAG_STREAM,
    MAX_REQUEST_ID,
    Frame,
    MessageType,
    OversizedFrame,
    check_size,
    encode_header,
    too_large,
)
from gorpc.protocol import Connection, local_name
from gorpc.stream import Stream, Window

REQUEST = MessageType.REQUEST.value
RESPONSE = MessageType.RESPONSE.value
MESSAGE = MessageType.MESSAGE.value


@dataclass(frozen=True)
class ConnectionInfo:
    """A client connection as it is now (`Client.connections`)."""

    address: str  # what was dialled
    peer: str  # the other end as the transport reports it
    local: str  # this end (a TCP connection's own port tells connections apart)
    state: str  # "open", "draining" (the server said GOAWAY; calls in flight finish) or "closed"
    calls_in_flight: int  # streams included
    writable: bool  # False while the server is not reading what we send (backpressure)
    write_buffered: int  # bytes queued in the transport, not yet taken by the server
    peer_certificate: dict[str, Any] | None = None  # with TLS


class ClientConnection(Connection):
    """Many calls in flight on one connection; each waits on a future keyed by its request id."""

    def __init__(self, address: str, on_unusable: Callable[[ClientConnection], None], **limits: Any) -> None:
        super().__init__(**limits)
        self.address = address
        self._pending: dict[int, asyncio.Future[Frame]] = {}
        self._streams: dict[int, Stream] = {}
        self._next_id = 0
        self._on_unusable = on_unusable
        self._last_taken: int | None = None  # from a closing server's final GOAWAY
        self._limit = limits["max_message_size"]

    @property
    def calls_in_flight(self) -> int:
        """Calls waiting for their replies on this connection, streams included."""
        return len(self._pending) + len(self._streams)

    def info(self) -> ConnectionInfo:
        """What this connection is doing now."""
        transport = self.transport
        if transport is None or transport.is_closing():
            state = "closed"
        else:
            state = "draining" if self.going_away else "open"
        return ConnectionInfo(
            address=self.address,
            peer=self.peer,
            local=local_name(transport) if transport is not None else "",
            state=state,
            calls_in_flight=self.calls_in_flight,
            writable=self.writable,
            write_buffered=transport.get_write_buffer_size() if transport is not None else 0,
            peer_certificate=transport.get_extra_info("peercert") if transport is not None else None,
        )

    # -- calls ------------------------------------------------------------------------------------

    async def call(
        self, method: str, head: bytes, body: bytes, codec: int, flags: int = 0, timeout: float | None = None
    ) -> Frame:
        """Send a request and return its response frame.

        Waits first while the server is not reading (backpressure). After `timeout` seconds raises
        DeadlineExceeded; a caller that gives up (cancels) gets the server told (CANCEL).
        """
        size = len(head) + len(body)
        if size > self._limit:
            check_size(size, self._limit, "request")
        if not self.writable:
            await within(self._room_to_write(), timeout, method)
        if self.transport is None:
            raise ConnectionFailed(f"connection to {self.address} closed before sending", unprocessed=True)
        rid = self._new_request_id()
        future: asyncio.Future[Frame] = self._loop.create_future()
        self._pending[rid] = future
        self.send(encode_header(REQUEST, rid, len(head), len(body), flags, codec), head, body)
        try:
            if timeout is None:
                return await future
            return await within(future, timeout, method)
        except asyncio.CancelledError:
            if self._pending.pop(rid, None) is not None:
                self.send(encode_header(MessageType.CANCEL, rid, 0, 0))  # let the server stop too
            raise
        finally:
            self._pending.pop(rid, None)
            if self.going_away:
                self._close_if_drained()

    async def open_stream(
        self, method: str, head: bytes, body: bytes, codec: int, flags: int, window: Window
    ) -> Stream:
        """Send a stream request and return the call's stream. The caller ends it with `end_stream`."""
        size = len(head) + len(body)
        if size > self._limit:
            check_size(size, self._limit, "request")
        if not self.writable:
            await self._room_to_write()
        if self.transport is None:
            raise ConnectionFailed(f"connection to {self.address} closed before sending", unprocessed=True)
        rid = self._new_request_id()
        stream = self._streams[rid] = Stream(self, rid, window)
        stream.expect_window()  # the request head told the server our window
        self.send(encode_header(REQUEST, rid, len(head), len(body), flags | FLAG_STREAM, codec), head, body)
        return stream

    def end_requests(self, stream: Stream) -> None:
        """The caller has sent its last request message (END)."""
        if stream.request_id in self._streams:
            stream.flush()  # its last messages go before the END
            self.send(encode_header(MessageType.END, stream.request_id, 0, 0))

    def end_stream(self, stream: Stream) -> None:
        """The caller is done with `stream`: if the server has not ended it, it is told to (CANCEL)."""
        if self._streams.pop(stream.request_id, None) is not None:
            stream.fail(Cancelled("the stream was closed by its caller"))
            self.send(encode_header(MessageType.CANCEL, stream.request_id, 0, 0))
        if self.going_away:
            self._close_if_drained()

    def _close_if_drained(self) -> None:
        """After GOAWAY, close once the last call in flight has ended."""
        if not self._pending and not self._streams:
            self.close()

    def notify(self, head: bytes, body: bytes, *, flags: int, codec: int) -> None:
        """Send a one-way request: no request id is reserved and no reply comes."""
        check_size(len(head) + len(body), self._limit, "request")
        self.send(
            encode_header(MessageType.ONEWAY, 0, len(head), len(body), flags=flags, codec=codec), head, body
        )

    async def _room_to_write(self) -> None:
        # All waiters wake together, so each checks again: the first few refill the buffer.
        while not self.writable:
            await self.drain()
            if not self.is_open:
                raise ConnectionFailed(f"connection to {self.address} lost before sending", unprocessed=True)

    def _new_request_id(self) -> int:
        rid = self._next_id = (self._next_id + 1) & MAX_REQUEST_ID
        while (
            rid == 0 or rid in self._pending or rid in self._streams
        ):  # wrapped around: 0 is for frames of no call
            rid = self._next_id = (self._next_id + 1) & MAX_REQUEST_ID
        return rid

    def fail_pending(self, reason: str) -> None:
        """Fail every call in flight with Cancelled(`reason`): their caller is going away."""
        pending, self._pending = self._pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(Cancelled(reason))
        streams, self._streams = self._streams, {}
        for stream in streams.values():
            stream.fail(Cancelled(reason))

    # -- frames in --------------------------------------------------------------------------------

    def frame_received(self, frame: Frame) -> None:
        msg_type = frame.type
        if msg_type == RESPONSE:
            future = self._pending.pop(frame.request_id, None)
            if future is not None:
                if not future.done():
                    future.set_result(frame)
            elif frame.request_id in self._streams:
                self._streams.pop(frame.request_id).peer_done(frame)
                if self.going_away:
                    self._close_if_drained()
            # A response for a call that timed out or was cancelled is dropped.
        elif msg_type == MESSAGE:
            stream = self._streams.get(frame.request_id)
            if stream is not None:  # else the caller has closed it: late messages are dropped
                stream.message_received(frame)
        elif msg_type == MessageType.WINDOW:
            stream = self._streams.get(frame.request_id)
            if stream is not None:
                stream.credit_received(frame.body)
        elif msg_type in (REQUEST, MessageType.ONEWAY, MessageType.CANCEL):
            raise ProtocolError(f"server {self.peer} sent a message type ({frame.type}) only clients send")
        else:
            super().frame_received(frame)

    def oversized_frame_received(self, frame: OversizedFrame) -> None:
        stream = self._streams.get(frame.request_id)
        if stream is not None and frame.type in (MESSAGE, RESPONSE):
            stream.fail(too_large(frame.size, self._limit, "reply", "client's"))
            self.end_stream(stream)
            return
        future = self._pending.pop(frame.request_id, None)
        if frame.type != RESPONSE or future is None:
            super().oversized_frame_received(frame)
        elif not future.done():
            future.set_exception(too_large(frame.size, self._limit, "reply", "client's"))

    def goaway_received(self, last_request_id: int) -> None:
        # In-flight calls finish here; new calls go to a new connection.
        if last_request_id:
            self._last_taken = last_request_id
        self._on_unusable(self)
        self._close_if_drained()

    def lost(self, exc: Exception | None) -> None:
        self._on_unusable(self)
        reason = f": {exc}" if exc else ""
        pending, self._pending = self._pending, {}
        for rid, future in pending.items():
            if not future.done():
                future.set_exception(self._lost_error(rid, reason))
        streams, self._streams = self._streams, {}
        for rid, stream in streams.items():
            stream.fail(self._lost_error(rid, reason))

    def _lost_error(self, rid: int, reason: str) -> ConnectionFailed:
        """What call `rid` fails with when the connection is lost (`reason`: why, or "")."""
        # Past the last request a closing server took: it never read this one.
        unread = self._last_taken is not None and rid > self._last_taken
        detail = " before the server read the request" if unread else reason
        return ConnectionFailed(f"connection to {self.address} lost{detail}", unprocessed=unread)
