"""The server's side of one connection: the calls it holds and runs, backpressure, and GOAWAY.

It owns every call's lifecycle on the connection: it starts a task per request through a
`RequestHandler` (the dispatcher), answers for it through the methods of `CallHost`, and cancels
what is left when the client goes away. It never looks inside a request.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from gorpc.envelope import pack_response_head
from gorpc.exceptions import (
    Cancelled,
    InternalError,
    ProtocolError,
    RPCError,
    Unavailable,
    is_unprocessed,
    wire_type_name,
)
from gorpc.frame import (
    FLAG_STREAM,
    FLAG_UNPROCESSED,
    Frame,
    MessageType,
    OversizedFrame,
    encode_header,
    too_large,
)
from gorpc.protocol import GOAWAY, Connection
from gorpc.stream import Stream, Window

logger = logging.getLogger("gorpc.server")

REQUEST = MessageType.REQUEST.value
ONEWAY = MessageType.ONEWAY.value
RESPONSE = MessageType.RESPONSE.value
MESSAGE = MessageType.MESSAGE.value


class CallHost(Protocol):
    """What a request's handling sees of the connection that carried it."""

    peer: str

    def reply(self, request_id: int, codec: int, flags: int, head: bytes, body: bytes) -> None:
        """Send the call's successful response."""
        ...

    def fail(self, request_id: int, error: RPCError, metadata: dict[str, Any] | None = None) -> None:
        """Answer the call with `error`'s status."""
        ...

    def answer_cancelled(self, request_id: int, path: str) -> None:
        """The call's task was cancelled: answer it as the connection's state says."""
        ...

    def broken(self, request_id: int, error: ProtocolError, oneway: bool) -> None:
        """The request broke the protocol: answer it, then close the connection."""
        ...

    def ended(self, request_id: int, oneway: bool) -> None:
        """The call is over (answered or not): free its place."""
        ...


class RequestHandler(Protocol):
    """Runs one request frame, answering through the `CallHost`."""

    def run(self, frame: Frame, host: CallHost) -> Coroutine[Any, Any, None]: ...

    def run_stream(self, frame: Frame, stream: Stream, host: CallHost) -> Coroutine[Any, Any, None]:
        """Run a stream call opened by `frame`; its messages come and go through `stream`."""
        ...


class ServerConnection(Connection):
    """A server's side of one client connection.

    Backpressure: at most `max_calls` calls run at once on a connection, and none start while the
    client is not reading its replies. Requests beyond that wait unstarted (no more than one read
    returned) and the connection stops reading, so the client's further requests wait in TCP
    buffers and then in the client. The server's memory stays bounded whatever a client does.

    Streams are counted apart (at most `max_streams`, further ones refused) and never make the
    connection stop reading: a running stream may be waiting for the very frames behind the held
    requests. Their own memory is bounded by their windows.
    """

    def __init__(
        self,
        handler: RequestHandler,
        *,
        max_calls: int,
        max_streams: int,
        stream_window: Window,
        draining: bool,
        on_open: Callable[[ServerConnection], None],
        on_close: Callable[[ServerConnection], None],
        on_oneway: Callable[[asyncio.Task[None]], None],
        **limits: Any,
    ) -> None:
        super().__init__(**limits)
        self._handler = handler
        self._max_calls = max_calls
        self._max_streams = max_streams
        self._stream_window = stream_window
        self._draining = draining  # GOAWAY sent: new requests are refused as unprocessed
        self._on_open = on_open
        self._on_close = on_close
        self._on_oneway = on_oneway  # one-way calls outlive their connection: the server tracks them
        self._calls: dict[int, asyncio.Task[None]] = {}
        self._streams: dict[int, Stream] = {}
        self._stream_tasks: dict[int, asyncio.Task[None]] = {}
        self._oneway: set[asyncio.Task[None]] = set()
        self._held: collections.deque[Frame] = collections.deque()  # requests read, not started
        self._last_request_id = 0  # sent in the final GOAWAY: later requests were never read

    # -- what others may see ----------------------------------------------------------------------

    @property
    def running(self) -> int:
        """Calls running now, one-way ones included, streams not."""
        return len(self._calls) + len(self._oneway)

    @property
    def streams(self) -> int:
        """Stream calls running now."""
        return len(self._streams)

    @property
    def held(self) -> int:
        """Requests read but not started (backpressure)."""
        return len(self._held)

    @property
    def last_request_id(self) -> int:
        """The last request id this connection took."""
        return self._last_request_id

    def tasks(self) -> list[asyncio.Task[None]]:
        """The tasks of the calls that expect replies."""
        return [*self._calls.values(), *self._stream_tasks.values()]

    # -- frames in --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # Announced once made: with TLS, a failed handshake means it never is, and then there is
        # nothing to close or wait for.
        self._on_open(self)
        if self._draining:
            self.send(GOAWAY)

    def frame_received(self, frame: Frame) -> None:
        msg_type = frame.type
        if (msg_type == REQUEST and not frame.flags & FLAG_STREAM) or msg_type == ONEWAY:
            if self._held or self.running >= self._max_calls or not self.writable:
                self._held.append(frame)
                self.pause_reading()
            else:
                self._start(frame)
        elif msg_type == MESSAGE:
            stream = self._streams.get(frame.request_id)
            if stream is not None:  # else the call has ended: its late messages are dropped
                stream.message_received(frame)
        elif msg_type == REQUEST:
            self._open_stream(frame)
        elif msg_type == MessageType.WINDOW:
            stream = self._streams.get(frame.request_id)
            if stream is not None:
                stream.credit_received(frame.body)
        elif msg_type == MessageType.END:
            stream = self._streams.get(frame.request_id)
            if stream is not None:
                stream.peer_done()
        elif msg_type == MessageType.CANCEL:
            self._cancel(frame.request_id)
        elif msg_type in (MessageType.RESPONSE, MessageType.GOAWAY):
            raise ProtocolError(f"client {self.peer} sent a message type ({msg_type}) only servers send")
        else:
            super().frame_received(frame)

    def _start(self, frame: Frame) -> None:
        """Start a request's call as a task (or refuse it while draining)."""
        oneway = frame.type == ONEWAY
        rid = frame.request_id
        self._last_request_id = rid  # taken, refused or run: either way this request was read
        if self._draining:
            if not oneway:
                self.fail(rid, Unavailable("server is stopping; retry on another instance", unprocessed=True))
            return
        if not oneway and (rid in self._calls or rid in self._stream_tasks):
            raise ProtocolError(f"request id {rid} is already in flight on this connection")
        task = self._loop.create_task(self._handler.run(frame, self))
        if oneway:
            self._oneway.add(task)
            self._on_oneway(task)
        else:
            self._calls[rid] = task  # removed when the call ends (see `ended`)

    def _open_stream(self, frame: Frame) -> None:
        """Start a stream call (or refuse it: draining, or too many streams)."""
        rid = frame.request_id
        self._last_request_id = rid
        if rid in self._calls or rid in self._stream_tasks:
            raise ProtocolError(f"request id {rid} is already in flight on this connection")
        if self._draining:
            self.fail(rid, Unavailable("server is stopping; retry on another instance", unprocessed=True))
        elif len(self._streams) >= self._max_streams:
            self.fail(
                rid,
                Unavailable(
                    f"{len(self._streams)} streams are open on this connection (max_concurrent_streams)",
                    unprocessed=True,
                ),
            )
        else:
            stream = self._streams[rid] = Stream(self, rid, self._stream_window)
            self._stream_tasks[rid] = self._loop.create_task(self._handler.run_stream(frame, stream, self))

    def _cancel(self, rid: int) -> None:
        task = self._calls.get(rid) or self._stream_tasks.get(rid)
        if task is not None:
            task.cancel()
            return
        for frame in self._held:  # not started yet: now it never will be
            if frame.request_id == rid and frame.type == REQUEST:
                self._held.remove(frame)
                self.fail(rid, Cancelled("cancelled by the caller before it started"))
                return

    def _release(self) -> None:
        """Start held requests while there is room; read again once none are held."""
        while self._held and self.running < self._max_calls and self.writable and self.transport:
            self._start(self._held.popleft())
        if not self._held and self.running < self._max_calls and self.writable:
            self.resume_reading()

    def pause_writing(self) -> None:
        # The client is not reading its replies: start nothing new until it does.
        super().pause_writing()
        self.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._release()

    def oversized_frame_received(self, frame: OversizedFrame) -> None:
        if frame.type == MESSAGE and frame.request_id in self._streams:
            error = too_large(frame.size, self._decoder.max_size, "request message", "server's")
            self._streams[frame.request_id].fail(error)  # the handler's next read raises it
            return
        if frame.type not in (REQUEST, ONEWAY):
            super().oversized_frame_received(frame)
        logger.warning("refused a %d-byte request from %s: over the size limit", frame.size, self.peer)
        if frame.type == ONEWAY:
            return
        self.fail(frame.request_id, too_large(frame.size, self._decoder.max_size, "request", "server's"))

    # -- CallHost: answering calls ----------------------------------------------------------------

    def reply(self, request_id: int, codec: int, flags: int, head: bytes, body: bytes) -> None:
        self.send(encode_header(RESPONSE, request_id, len(head), len(body), flags, codec), head, body)

    def fail(self, request_id: int, error: RPCError, metadata: dict[str, Any] | None = None) -> None:
        type_name = wire_type_name(error)
        try:
            head = pack_response_head(error.code, error.message, type_name, metadata)
        except InternalError:
            head = pack_response_head(error.code, error.message, type_name, None)
        flags = FLAG_UNPROCESSED if is_unprocessed(error) else 0
        self.send(encode_header(RESPONSE, request_id, len(head), 0, flags=flags), head)

    def answer_cancelled(self, request_id: int, path: str) -> None:
        if self._draining:
            self.fail(request_id, Unavailable("server stopped before the call completed"))
        else:
            self.fail(request_id, Cancelled(f"{path} was cancelled"))

    def broken(self, request_id: int, error: ProtocolError, oneway: bool) -> None:
        logger.warning("closing connection with %s: protocol error: %s", self.peer, error.message)
        if not oneway:
            self.fail(request_id, error)
        self.close_gracefully()

    def ended(self, request_id: int, oneway: bool) -> None:
        if oneway:
            self._oneway.discard(asyncio.current_task())
        else:
            if self._calls.pop(request_id, None) is None and request_id in self._stream_tasks:
                del self._stream_tasks[request_id]
                self._streams.pop(request_id).fail(Cancelled("the call has ended"))  # wakes its waiters
        if self.reading_paused:
            self._release()

    # -- stopping ---------------------------------------------------------------------------------

    def go_away(self) -> None:
        """The server is stopping: tell the client (GOAWAY) and refuse its new requests from now on."""
        self._draining = True
        self.send(GOAWAY)

    def close_gracefully(self) -> None:
        """Say which request was the last one taken (the client may retry any later one), then close."""
        if self._last_request_id:
            self.send(encode_header(MessageType.GOAWAY, self._last_request_id, 0, 0))
        self.close()

    def lost(self, exc: Exception | None) -> None:
        self._on_close(self)
        self._held.clear()
        for stream in self._streams.values():
            stream.fail(Unavailable(f"connection from {self.peer} lost"))
        # Nobody is left to read these replies; stop the work.
        for task in [*self._calls.values(), *self._stream_tasks.values()]:
            task.cancel()
