"""Dispatch: the service registry, and running one request through interceptors to its handler."""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
import time
from collections.abc import Awaitable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, NoReturn

from gorpc.context import CallContext
from gorpc.envelope import pack_response_head, unpack_request_head
from gorpc.exceptions import (
    Cancelled,
    ConfigError,
    DeadlineExceeded,
    InternalError,
    InvalidRequest,
    MessageTooLarge,
    MethodNotFound,
    ProtocolError,
    RemoteError,
    RPCError,
    Unavailable,
    is_unprocessed,
    wire_type_name,
)
from gorpc.frame import (
    FLAG_UNPROCESSED,
    HEADER,
    MAGIC,
    VERSION,
    Frame,
    MessageType,
    OversizedFrame,
    encode_header,
)
from gorpc.interceptors import build_chain
from gorpc.payload import decode_body, encode_body
from gorpc.protocol import GOAWAY, Connection
from gorpc.service import Method, Service, service_methods
from gorpc.types import Codec, Interceptor

logger = logging.getLogger("gorpc.server")

RESPONSE = MessageType.RESPONSE.value


class MethodTable:
    """Every method a server hosts, by path."""

    def __init__(self) -> None:
        self.services: dict[str, Service] = {}
        self.methods: dict[str, Method] = {}

    def add(self, service: Service) -> None:
        """Host `service`; a name already hosted raises ConfigError."""
        methods = list(service_methods(service))  # checks `service` first
        name = type(service).name
        if name in self.services:
            raise ConfigError(f"service {name!r} is already registered")
        self.services[name] = service
        self.methods.update((m.path, m) for m in methods)

    def lookup(self, path: str) -> Method:
        """The method at `path`; raises MethodNotFound saying whether the service or method is unknown."""
        method = self.methods.get(path)
        if method is not None:
            return method
        service = path.split("/")[1] if path.count("/") == 2 and path.startswith("/") else None
        if service in self.services:
            raise MethodNotFound(f"service {service!r} has no method {path.rsplit('/', 1)[1]!r}")
        if service is None:
            raise MethodNotFound(f"malformed method path {path!r}: expected /<service>/<method>")
        raise MethodNotFound(f"unknown service {service!r}; this server hosts {sorted(self.services)}")


class Dispatcher:
    """Runs requests: decode, interceptors, handler under its deadline, encode the reply."""

    def __init__(
        self,
        table: MethodTable,
        *,
        codecs: Mapping[int, Codec],
        interceptors: Sequence[Interceptor],
        executor: Executor | None,
        max_message_size: int,
        compress: bool,
        compression_threshold: int,
    ) -> None:
        self._table = table
        self._codecs = codecs
        self._executor = executor
        self._limit = max_message_size
        self._compress = compress
        self._threshold = compression_threshold
        self._chain = build_chain(interceptors, self._call_handler)
        self.connections: set[ServerConnection] = set()
        self._oneway_calls: set[asyncio.Task[None]] = set()
        self.stopping = False

    def inflight(self) -> list[asyncio.Task[None]]:
        """Every call still running: replies are tracked per connection, one-way calls here."""
        return [task for conn in self.connections for task in conn.calls.values()] + list(self._oneway_calls)

    def dispatch(self, conn: ServerConnection, frame: Frame) -> None:
        """Start a request frame's call as a task (or refuse it while stopping)."""
        oneway = frame.type == MessageType.ONEWAY
        rid = frame.request_id
        conn.last_request_id = rid  # taken, refused or run: either way this request was read
        if self.stopping:
            if not oneway:
                conn.send_error(
                    rid, Unavailable("server is stopping; retry on another instance", unprocessed=True)
                )
            return
        if not oneway and rid in conn.calls:
            raise ProtocolError(f"request id {rid} is already in flight on this connection")
        task = asyncio.get_running_loop().create_task(self._run(conn, frame, oneway))
        conn.running += 1
        if oneway:
            self._oneway_calls.add(task)
            task.add_done_callback(self._oneway_calls.discard)
        else:
            conn.calls[rid] = task  # removed when the call ends (see _run)

    async def _run(self, conn: ServerConnection, frame: Frame, oneway: bool) -> None:
        rid = frame.request_id
        path = "?"
        ctx: CallContext | None = None
        try:
            path, metadata, timeout = unpack_request_head(frame.head)
            deadline = None if timeout is None else time.monotonic() + timeout
            ctx = CallContext(path, metadata, deadline, conn.peer, oneway)
            codec = self._codecs.get(frame.codec) or self._unknown_codec(frame.codec)
            request = decode_body(
                codec, frame.flags, frame.body, limit=self._limit, error=InvalidRequest, what="request"
            )
            if timeout is None:
                reply = await self._chain(ctx, request)
            else:
                reply = await self._call_with_deadline(ctx, request, timeout)
            if not oneway:
                head = pack_response_head(0, None, None, ctx.response_metadata)
                flags, body = self._encode_reply(codec, reply, len(head))
                # encode_header, inlined: this is the hottest path of a call.
                header = HEADER.pack(
                    MAGIC, VERSION, RESPONSE, flags, frame.codec, 0, rid, len(head), len(body)
                )
                conn.send(header, head, body)
        except asyncio.CancelledError:
            if not oneway:
                conn.send_error(rid, self._cancelled(path))
            raise
        except Exception as exc:
            # Handled in a method of its own: a local here holding the error would make a reference
            # cycle (this frame -> error -> traceback -> this frame) that keeps everything the
            # traceback reaches, an inflated request body included, until a cyclic GC pass.
            self._fail(conn, rid, path, ctx, oneway, exc)
        finally:
            if not oneway:
                conn.calls.pop(rid, None)
            conn.running -= 1
            if conn.reading_paused:
                conn.release()

    def _cancelled(self, path: str) -> RPCError:
        if self.stopping:
            return Unavailable("server stopped before the call completed")
        return Cancelled(f"{path} was cancelled")

    def _fail(
        self,
        conn: ServerConnection,
        rid: int,
        path: str,
        ctx: CallContext | None,
        oneway: bool,
        exc: Exception,
    ) -> None:
        """Answer a call that failed with `exc` (a handler's own exception is logged)."""
        error = _as_rpc_error(exc, path)
        if isinstance(exc, ProtocolError) and ctx is None:
            # A malformed head: the peer breaks the protocol. Say why, then stop talking to it.
            logger.warning("closing connection with %s: protocol error: %s", conn.peer, exc.message)
            if not oneway:
                conn.send_error(rid, error)
            conn.close_gracefully()
        elif oneway:
            logger.warning("one-way call %s from %s failed: %s", path, conn.peer, error)
        else:
            # Metadata the call set before failing still goes back (request ids, retry hints).
            conn.send_error(rid, error, ctx.response_metadata if ctx is not None else None)

    async def _call_with_deadline(self, ctx: CallContext, request: Any, timeout: float) -> Any:
        # What asyncio.timeout() does, with one timer and no Python-level context manager, which
        # cost a tenth of a call (callgrind, a call with a timeout: 170k instructions, 152k after).
        if timeout <= 0:
            raise DeadlineExceeded(f"{ctx.method}: deadline had passed when the request arrived")
        expiry = _Expiry(asyncio.current_task())
        timer = asyncio.get_running_loop().call_later(timeout, expiry.fire)
        try:
            return await self._chain(ctx, request)
        except asyncio.CancelledError as exc:
            # Ours only if the timer fired and no other cancellation is pending (server stop, CANCEL).
            if expiry.fired and expiry.task.uncancel() == 0:
                raise DeadlineExceeded(f"{ctx.method}: deadline of {timeout:.3f}s exceeded") from exc
            raise
        finally:
            timer.cancel()

    def _call_handler(self, ctx: CallContext, request: Any) -> Awaitable[Any]:
        # A plain function returning the handler's awaitable: one coroutine frame less per call.
        method = self._table.methods.get(ctx.method) or self._table.lookup(ctx.method)
        args = (request, ctx) if method.takes_context else (request,)
        if method.is_async:
            return method.func(*args)  # type: ignore[no-any-return]
        # Plain `def` handlers run in the pool so they never block the loop; contextvars go with them.
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, contextvars.copy_context().run, method.func, *args)

    def _unknown_codec(self, codec_id: int) -> NoReturn:
        known = {c.name: i for i, c in self._codecs.items()}
        raise InvalidRequest(f"unknown codec id {codec_id}; this server knows {known}")

    def _encode_reply(self, codec: Codec, reply: Any, head_len: int) -> tuple[int, bytes]:
        try:
            return encode_body(
                codec,
                reply,
                compress=self._compress,
                threshold=self._threshold,
                limit=self._limit - head_len,
                what="reply",
            )
        except MessageTooLarge:
            raise
        except Exception as exc:
            raise InternalError(f"cannot encode reply with codec {codec.name!r}: {exc}") from exc


class _Expiry:
    """Cancels a call's task at its deadline, and remembers that it did."""

    __slots__ = ("fired", "task")

    def __init__(self, task: asyncio.Task[Any] | None) -> None:
        assert task is not None, "calls run in tasks"
        self.task = task
        self.fired = False

    def fire(self) -> None:
        self.fired = True
        self.task.cancel()


def _as_rpc_error(exc: Exception, path: str) -> RPCError:
    """The error the caller gets. A handler's own exception is logged here with its traceback."""
    if isinstance(exc, RPCError):
        return exc
    logger.error("call %s raised %s", path, type(exc).__name__, exc_info=exc)
    return RemoteError(str(exc), type_name=type(exc).__name__)


class ServerConnection(Connection):
    """A server's side of one client connection.

    Backpressure: at most `max_calls` calls run at once on a connection, and none start while the
    client is not reading its replies. Requests beyond that wait unstarted in `held` (no more than
    one read returned) and the connection stops reading, so the client's further requests wait in
    TCP buffers and then in the client. The server's memory stays bounded whatever a client does.
    """

    def __init__(self, dispatcher: Dispatcher, *, max_calls: int, **limits: Any) -> None:
        super().__init__(**limits)
        self._dispatcher = dispatcher
        self._max_calls = max_calls
        self.calls: dict[int, asyncio.Task[None]] = {}
        self.running = 0  # calls running now, one-way ones included
        self.held: collections.deque[Frame] = collections.deque()  # requests read, not started
        self.last_request_id = 0  # sent in the final GOAWAY: later requests were never read

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        # Registered once made: with TLS, a failed handshake means it never is, and then there is
        # nothing to close or wait for.
        self._dispatcher.connections.add(self)
        if self._dispatcher.stopping:
            self.send(GOAWAY)

    def frame_received(self, frame: Frame) -> None:
        msg_type = frame.type
        if msg_type == MessageType.REQUEST or msg_type == MessageType.ONEWAY:
            if self.held or self.running >= self._max_calls or not self.writable:
                self.held.append(frame)
                self.pause_reading()
            else:
                self._dispatcher.dispatch(self, frame)
        elif msg_type == MessageType.CANCEL:
            self._cancel(frame.request_id)
        elif msg_type in (MessageType.RESPONSE, MessageType.GOAWAY):
            raise ProtocolError(f"client {self.peer} sent a message type ({msg_type}) only servers send")
        else:
            super().frame_received(frame)

    def _cancel(self, rid: int) -> None:
        task = self.calls.get(rid)
        if task is not None:
            task.cancel()
            return
        for frame in self.held:  # not started yet: now it never will be
            if frame.request_id == rid and frame.type == MessageType.REQUEST:
                self.held.remove(frame)
                self.send_error(rid, Cancelled("cancelled by the caller before it started"))
                return

    def release(self) -> None:
        """Start held requests while there is room; read again once none are held."""
        while self.held and self.running < self._max_calls and self.writable and self.transport:
            self._dispatcher.dispatch(self, self.held.popleft())
        if not self.held and self.running < self._max_calls and self.writable:
            self.resume_reading()

    def pause_writing(self) -> None:
        # The client is not reading its replies: start nothing new until it does.
        super().pause_writing()
        self.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        self.release()

    def oversized_frame_received(self, frame: OversizedFrame) -> None:
        if frame.type not in (MessageType.REQUEST, MessageType.ONEWAY):
            super().oversized_frame_received(frame)
        logger.warning("refused a %d-byte request from %s: over the size limit", frame.size, self.peer)
        if frame.type == MessageType.ONEWAY:
            return
        self.send_error(
            frame.request_id,
            MessageTooLarge(
                f"request of {frame.size} bytes is over the server's {self._decoder.max_size}-byte limit"
            ),
        )

    def send_error(self, request_id: int, error: RPCError, metadata: dict[str, Any] | None = None) -> None:
        """Answer request `request_id` with `error`'s status."""
        type_name = wire_type_name(error)
        try:
            head = pack_response_head(error.code, error.message, type_name, metadata)
        except InternalError:
            head = pack_response_head(error.code, error.message, type_name, None)
        flags = FLAG_UNPROCESSED if is_unprocessed(error) else 0
        self.send(encode_header(MessageType.RESPONSE, request_id, len(head), 0, flags=flags), head)

    def close_gracefully(self) -> None:
        """Say which request was the last one taken (the client may retry any later one), then close."""
        if self.last_request_id:
            self.send(encode_header(MessageType.GOAWAY, self.last_request_id, 0, 0))
        self.close()

    def lost(self, exc: Exception | None) -> None:
        self._dispatcher.connections.discard(self)
        self.held.clear()
        # Nobody is left to read these replies; stop the work.
        for task in self.calls.values():
            task.cancel()
