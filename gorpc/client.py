"""The asyncio client: `await client.call("/helloworld.Greeter/SayHello", {"msg": "hi"})`.

It encodes the request, picks a node (directly, or through the selector and fail mode), and hands
the encoded request to that node's connection, which owns the call from there on
(`gorpc.client_connection`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import ssl as ssl_module
import time
from collections.abc import AsyncIterable, Awaitable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, Self, TypeVar

from gorpc.address import is_address
from gorpc.balancers import HASH_KEY
from gorpc.client_connection import ClientConnection, ConnectionInfo
from gorpc.client_stream import ReplyStream, StreamCall
from gorpc.config import ClientConfig, ConfigSource
from gorpc.context import CallContext, Metadata, current_call
from gorpc.contract import TypedCodec
from gorpc.deadline import within
from gorpc.envelope import check_timeout, pack_request_head, unpack_response_head
from gorpc.exceptions import (
    Cancelled,
    ConnectionFailed,
    DeadlineExceeded,
    InvalidRequest,
    MessageTooLarge,
    NoNodesAvailable,
    ProtocolError,
    Unavailable,
    error_from_status,
)
from gorpc.failover import IDEMPOTENT, RetryPolicy
from gorpc.frame import FLAG_UNPROCESSED, Frame
from gorpc.health import Ejections
from gorpc.interceptors import build_chain
from gorpc.kinds import StreamMode
from gorpc.metrics import ClientMetrics
from gorpc.payload import decode_body, encode_body, plain_encoder
from gorpc.plugins import (
    as_resolver,
    make_balancer_factory,
    make_codec,
    make_metrics,
    make_resolver,
    make_tracing,
)
from gorpc.pool import ConnectionPool
from gorpc.selector import Selector
from gorpc.stream import MESSAGE_OVERHEAD
from gorpc.stub import Stub
from gorpc.tracing import client_interceptor
from gorpc.types import Codec, Interceptor, MetricsPlugin, Next, Node, TracingPlugin

logger = logging.getLogger("gorpc.client")

_UNSET: Any = object()
T = TypeVar("T")
S = TypeVar("S")
CLOSED = "the client was closed while the call was in flight"


class Client:
    """Calls methods on gorpc servers.

    `target` is `host:port`, `unix:/path`, a service name for the resolver, or None to resolve the
    service named in each call's path. Calls to one address share one multiplexed connection.
    """

    def __init__(
        self,
        target: str | None = None,
        *,
        config: ConfigSource | ClientConfig = None,
        interceptors: Sequence[Interceptor] = (),
        ssl: ssl_module.SSLContext | None = None,
        **options: Any,
    ) -> None:
        self.config = ClientConfig.load(config, target=target, **options)
        cfg = self.config
        self._codec: Codec = make_codec(cfg.codec)
        self._tracing = make_tracing(cfg)
        self._metrics_plugin = make_metrics(cfg)
        meter = self._metrics_plugin.plugin.meter()
        self._metrics = None if meter is None else ClientMetrics(meter, lambda: len(self._pool.connections()))
        if self._metrics is not None:  # outer: the duration covers retries and the other interceptors
            interceptors = [self._metrics.measure_call, *interceptors]
        tracing = client_interceptor(self.tracing)
        if tracing is not None:  # outermost, so the span covers the other interceptors and retries
            interceptors = [tracing, *interceptors]
        self.interceptors: tuple[Interceptor, ...] = tuple(interceptors)
        self._limit = cfg.max_message_size
        self._compress = cfg.compression == "zlib"
        self._pool = ConnectionPool(
            ssl=ssl if ssl is not None else cfg.ssl_context(),
            connect_timeout=cfg.connect_timeout,
            per_host=cfg.connections_per_host,
            max_message_size=cfg.max_message_size,
            heartbeat_interval=cfg.heartbeat_interval,
            heartbeat_timeout=cfg.heartbeat_timeout,
        )
        self._direct = cfg.target if cfg.target is not None and is_address(cfg.target) else None
        # Made now, so a mistake in its [plugins.<name>] options is found here, not at the first call.
        self._resolver = make_resolver(cfg) if self._direct is None else None
        self._selector: Selector | None = None
        self._ejections = Ejections(cfg.eject_time, cfg.eject_time_max)
        self._retry = RetryPolicy(cfg.fail_mode, cfg.retries, cfg.idempotent)
        invoke = self._invoke_direct if self._direct is not None else self._invoke_resolved
        self._chain = build_chain(self.interceptors, invoke)
        self._stream_chain = build_chain(self.interceptors, self._invoke_stream)
        self._balancers = make_balancer_factory(cfg.balancer)
        # A stream's requests: the plain case in one call per message (see payload.plain_encoder).
        self._encode_message = (
            self._encode
            if self._compress
            else plain_encoder(self._codec, self._limit - MESSAGE_OVERHEAD, self._encode)
        )
        resolver = self._resolver.plugin if self._resolver is not None else None
        self.plugin_call_options = declared_call_options(
            [resolver, self.tracing, self._balancers, *self.interceptors]
        )
        self._typed_codecs: dict[Any, Codec] = {}
        self._closed = False

    @property
    def tracing(self) -> TracingPlugin:
        """The tracing plugin this client's spans are made with."""
        return self._tracing.plugin

    @property
    def metrics(self) -> MetricsPlugin:
        """The metrics plugin this client records with."""
        return self._metrics_plugin.plugin

    @property
    def codec(self) -> Codec:
        """The codec requests are sent in."""
        return self._codec

    @property
    def connections(self) -> list[ConnectionInfo]:
        """This client's connections now (open, or draining after GOAWAY), with their calls in flight."""
        return self._pool.connections()

    # -- calls ------------------------------------------------------------------------------------

    async def call(
        self,
        method: str,
        request: Any = None,
        *,
        requests: AsyncIterable[Any] | Iterable[Any] | None = None,
        timeout: float | None = _UNSET,
        metadata: Metadata | None = None,
        hash_key: str | bytes | int | None = None,
        idempotent: bool | None = None,
        propagate: bool | None = None,
        options: Mapping[str, Any] | None = None,
        reply_type: Any = None,
    ) -> Any:
        """Call `method` (`/service/Method`) and return its reply.

        `timeout` (seconds; None or infinity: no deadline) travels to the server as the call's
        deadline; it defaults to the config's `timeout`. Made while handling a call (or in a task
        started then), the call inherits that call's remaining deadline when it is sooner, and is
        cancelled with it; `propagate=False` (or the config's `propagate = false`) turns that off.
        `hash_key` is for the consistent_hash balancer, `idempotent` for failover; `options`
        holds the per-call options that configured plugins declare (`plugin_call_options`).
        Any other option raises TypeError.

        With `requests` (an async or plain iterable) the call is client-streaming: the requests
        are sent as a stream, within the server's credit, and its one reply is returned.

        `reply_type` (a msgspec Struct, dataclass, TypedDict, list[int]...) decodes the reply into
        that type, validated; a reply that does not match raises ProtocolError. `client.stub()`
        passes it for you.
        """
        ctx = self._context(method, timeout, metadata, propagate, False, hash_key, idempotent, options)
        if reply_type is not None:
            ctx.reply_type = reply_type
        chain = self._chain
        if requests is not None:
            ctx.mode = StreamMode.REQUESTS
            chain, request = self._stream_chain, _one_of(request, requests)
        parent = ctx.parent
        if parent is None:
            return await chain(ctx, request)
        return await self._call_under(parent, ctx, request, chain)

    def stream(
        self,
        method: str,
        request: Any = None,
        *,
        requests: AsyncIterable[Any] | Iterable[Any] | None = None,
        timeout: float | None = _UNSET,
        metadata: Metadata | None = None,
        hash_key: str | bytes | int | None = None,
        idempotent: bool | None = None,
        propagate: bool | None = None,
        options: Mapping[str, Any] | None = None,
        reply_type: Any = None,
    ) -> ReplyStream[Any]:
        """A stream call: `async for reply in client.stream(path, request)` (server-streaming), or
        with `requests=` an iterable sent as the request stream (bidirectional; a client-streaming
        method's one reply comes as a stream of one).

        The options are `call`'s; `timeout` covers the whole stream, `reply_type` types each reply.
        The call starts at the first iteration; leaving `async with`, breaking out of the loop, or
        `aclose()` cancels it.
        """
        ctx = self._context(method, timeout, metadata, propagate, False, hash_key, idempotent, options)
        if reply_type is not None:
            ctx.reply_type = reply_type
        ctx.mode = StreamMode.REPLIES
        if requests is not None:
            ctx.mode |= StreamMode.REQUESTS
            request = _one_of(request, requests)
        return ReplyStream(self._stream_chain, ctx, request)

    def stub(self, contract: type[S]) -> Stub[S]:
        """`contract`'s methods, called on the server: `greeter = client.stub(Greeter)`, then
        `await greeter.SayHello(HelloRequest(msg="hi"))` returns a HelloReply. `contract` is the
        Service class itself or an interface class with the same method signatures (`gorpc describe
        --python` writes one). Each method takes `call`'s options; see `gorpc.stub`."""
        return Stub(contract, self.call, self.stream, self._call_plainly)

    async def _call_plainly(self, method: str, request: Any, reply_type: Any) -> Any:
        """`call(method, request, reply_type=...)` with no other option: a stub's common call,
        without `call`'s keyword arguments to bind (about 2% of a small call)."""
        ctx = self._context(method, _UNSET, None, None, False, None, None, None)
        ctx.reply_type = reply_type
        parent = ctx.parent
        if parent is None:
            return await self._chain(ctx, request)
        return await self._call_under(parent, ctx, request, self._chain)

    def _codec_for(self, ctx: CallContext) -> Codec:
        """The codec of a call: the client's, decoding replies into the call's `reply_type` if it
        has one (made once per type)."""
        reply_type = ctx.reply_type
        if reply_type is None:
            return self._codec
        codec = self._typed_codecs.get(reply_type)
        if codec is None:
            codec = self._typed_codecs[reply_type] = TypedCodec(self._codec, reply_type, None)
        return codec

    async def notify(
        self,
        method: str,
        request: Any = None,
        *,
        metadata: Metadata | None = None,
        hash_key: str | bytes | int | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        """A one-way call: sent once the request is written to the connection; no reply, no error back."""
        ctx = self._context(method, _UNSET, metadata, False, True, hash_key, None, options)
        await self._chain(ctx, request)

    def _context(
        self,
        method: str,
        timeout: float | None,
        metadata: Metadata | None,
        propagate: bool | None,
        oneway: bool,
        hash_key: str | bytes | int | None,
        idempotent: bool | None,
        options: Mapping[str, Any] | None,
    ) -> CallContext:
        """A call's context: its checked path, its deadline (its own, or what is left of the
        incoming call's), a copy of its metadata, and its per-call options."""
        if self._closed:
            raise RuntimeError("client is closed")
        if not method.startswith("/") or method.count("/") != 2:
            raise InvalidRequest(f"method path {method!r} is not /<service>/<Method>")
        if timeout is _UNSET:
            timeout = self.config.timeout
        if timeout is not None:
            timeout = check_timeout(timeout, InvalidRequest)
        deadline = None if timeout is None else time.monotonic() + timeout
        parent = current_call() if (self.config.propagate if propagate is None else propagate) else None
        if (
            parent is not None
            and parent.deadline is not None
            and (deadline is None or parent.deadline < deadline)
        ):
            deadline = parent.deadline  # what is left of the incoming call's time
        # A copy: interceptors may add metadata without touching the caller's dict.
        ctx = CallContext(method, dict(metadata) if metadata else {}, deadline, oneway=oneway)
        ctx.parent = parent
        if hash_key is not None or idempotent is not None or options:
            self._set_options(ctx, hash_key, idempotent, options)
        return ctx

    def _set_options(
        self,
        ctx: CallContext,
        hash_key: str | bytes | int | None,
        idempotent: bool | None,
        options: Mapping[str, Any] | None,
    ) -> None:
        if options:
            unknown = sorted(set(options) - self.plugin_call_options)
            if unknown:
                declared = sorted(self.plugin_call_options) or "none"
                raise TypeError(
                    f"unknown per-call option(s) {unknown} for {ctx.method}; "
                    f"the configured plugins declare: {declared}"
                )
            ctx.options.update(options)
        if hash_key is not None:
            ctx.options[HASH_KEY] = hash_key
        if idempotent is not None:
            ctx.options[IDEMPOTENT] = idempotent

    async def _call_under(self, parent: CallContext, ctx: CallContext, request: Any, chain: Next) -> Any:
        """A call made under an incoming one: cancelled with it, even from another task."""
        task = asyncio.current_task()
        assert task is not None
        cancel = task.cancel
        parent.add_dependent(cancel)
        try:
            return await chain(ctx, request)
        finally:
            parent.remove_dependent(cancel)

    async def _invoke_direct(self, ctx: CallContext, request: Any) -> Any:
        """The end of the interceptor chain for a client of one address."""
        codec = self._codec if ctx.reply_type is None else self._codec_for(ctx)
        flags, body = self._encode(request, codec)
        assert self._direct is not None
        # The common case, an open connection, costs no extra coroutine.
        conn = self._pool.get_open(self._direct)
        if conn is None:
            conn = await self._wait(self._pool.connect(self._direct), ctx)
        if ctx.oneway:
            return await self._notify(conn, ctx, flags, body)
        try:
            frame = await self._send(conn, ctx, flags, body, codec.id)
        except (asyncio.CancelledError, ConnectionFailed):
            self._raise_if_closed()  # close() cut the wait for room to write short
            raise
        return self._decode_reply(ctx, frame, codec)

    async def _invoke_resolved(self, ctx: CallContext, request: Any) -> Any:
        """The end of the chain for a resolved service: pick a node, call it, and on failure try
        others as the fail mode allows."""
        codec = self._codec if ctx.reply_type is None else self._codec_for(ctx)
        flags, body = self._encode(request, codec)
        selector = self._selector or self._make_selector()
        service = self.config.target or ctx.service
        tried: list[str] = []
        last_error: Unavailable | None = None
        try:
            while True:
                try:
                    node = selector.pick(service, ctx, tried)
                    if node is None:
                        node = await self._wait(selector.select(service, ctx, tried), ctx)
                except NoNodesAvailable:
                    if last_error is None:
                        raise
                    break  # nowhere else to try
                try:
                    conn = self._pool.get_open(node.address) or await self._connect_to(node.address, ctx)
                    if ctx.oneway:
                        return await self._notify(conn, ctx, flags, body)
                    try:
                        frame = await self._send(conn, ctx, flags, body, codec.id)
                    except (asyncio.CancelledError, ConnectionFailed):
                        self._raise_if_closed()
                        raise
                    return self._decode_reply(ctx, frame, codec)
                except Unavailable as exc:
                    if not self._may_retry(exc, node, ctx, tried, ctx.method):
                        raise
                    last_error = exc
                finally:
                    selector.done(service, node, ctx)
            assert last_error is not None
            raise last_error  # the caller gets the real failure, not "no more nodes"
        finally:
            # The error's traceback holds this frame: a local still holding the error would be a
            # reference cycle keeping the request (and all else here) alive until a GC pass.
            last_error = None

    async def _invoke_stream(self, ctx: CallContext, request: Any) -> Any:
        """The end of the chain for stream calls: start the stream (on another node if it fails
        before it started there, as the fail mode allows), then send the requests. Returns the
        replies (an async iterator), or for a client-streaming call its one reply."""
        streams_requests = bool(ctx.mode & StreamMode.REQUESTS)
        flags, body = (0, b"") if streams_requests else self._encode(request, self._codec_for(ctx))
        ctx.request_size = len(body)  # the opening request's (empty when the requests stream)
        call = await self._start_stream(ctx, flags, body)
        ctx.closer = call.close
        if streams_requests:
            call.send_requests(request)
        if ctx.mode & StreamMode.REPLIES:
            return call
        return await call.one_reply()

    async def _start_stream(self, ctx: CallContext, flags: int, body: bytes) -> StreamCall:
        """A stream call started on a node: the one address, or a resolved node, trying others as
        `_invoke_resolved` does while the call has not started anywhere."""
        if self._direct is not None:
            conn = self._pool.get_open(self._direct) or await self._connect_to(self._direct, ctx)
            return await self._started(self._stream_call(conn, ctx, None), flags, body)
        selector = self._selector or self._make_selector()
        service = self.config.target or ctx.service
        tried: list[str] = []
        last_error: Unavailable | None = None
        try:
            while True:
                try:
                    node = selector.pick(service, ctx, tried)
                    if node is None:
                        node = await self._wait(selector.select(service, ctx, tried), ctx)
                except NoNodesAvailable:
                    if last_error is None:
                        raise
                    break  # nowhere else to try
                done = functools.partial(selector.done, service, node, ctx)  # when the call ends
                try:
                    try:
                        conn = self._pool.get_open(node.address) or await self._connect_to(node.address, ctx)
                    except BaseException:
                        done()
                        raise
                    return await self._started(self._stream_call(conn, ctx, done), flags, body)
                except Unavailable as exc:
                    if not self._may_retry(exc, node, ctx, tried, f"stream {ctx.method}"):
                        raise
                    last_error = exc
            assert last_error is not None
            raise last_error  # the caller gets the real failure, not "no more nodes"
        finally:
            last_error = None  # see `_invoke_resolved`: no reference cycle through the error

    def _may_retry(self, exc: Unavailable, node: Node, ctx: CallContext, tried: list[str], what: str) -> bool:
        """After `node` failed with `exc`: eject it if its connection failed, and say whether the
        fail mode tries another node (then `node` counts as tried)."""
        reason = str(exc)  # the message, not the error: a kept log record keeps no traceback
        if isinstance(exc, ConnectionFailed):
            self._ejections.eject(node.address, reason)
            if self._metrics is not None:
                self._metrics.ejected(node.address)
        if not self._retry.should_retry(exc, ctx, len(tried)):
            return False
        tried.append(node.address)
        if self._metrics is not None:
            self._metrics.retried(ctx)
        logger.info("%s failed on %s (%s); trying another node", what, node.address, reason)
        return True

    async def _connect_to(self, address: str, ctx: CallContext) -> ClientConnection:
        conn = await self._wait(self._pool.connect(address), ctx)
        self._ejections.restore(address)
        return conn

    def _stream_call(self, conn: ClientConnection, ctx: CallContext, on_close: Any) -> StreamCall:
        codec, encode = self._codec, self._encode_message
        if ctx.reply_type is not None:  # a typed call
            codec = self._codec if ctx.reply_type is None else self._codec_for(ctx)
            encode = functools.partial(self._encode, codec=codec)
        return StreamCall(
            conn,
            ctx,
            codec,
            window=self.config.stream_window,
            limit=self._limit,
            encode=encode,
            on_close=on_close,
        )

    @staticmethod
    async def _started(call: StreamCall, flags: int, body: bytes) -> StreamCall:
        """`call`, opened and started on the server; closed if that fails."""
        try:
            await call.open(flags, body)
            await call.started()
        except BaseException:
            await call.aclose()
            raise
        return call

    def _send(
        self, conn: ClientConnection, ctx: CallContext, flags: int, body: bytes, codec_id: int
    ) -> Awaitable[Frame]:
        """The connection's call for this request: its reply frame, awaited by the caller. A plain
        function returning the awaitable: no coroutine frame of its own on the call path."""
        ctx.peer = conn.address
        ctx.request_size = len(body)
        remaining = None if ctx.deadline is None else ctx.deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded(f"{ctx.method}: deadline passed before the request was sent")
        head = pack_request_head(ctx.method, ctx.metadata, remaining)
        return conn.call(ctx.method, head, body, codec_id, flags, remaining)

    async def _notify(self, conn: ClientConnection, ctx: CallContext, flags: int, body: bytes) -> None:
        """Send a one-way request on `conn`; done once it is written (or buffered within limits)."""
        ctx.peer = conn.address
        ctx.request_size = len(body)
        conn.notify(
            pack_request_head(ctx.method, ctx.metadata, None),
            body,
            flags=flags,
            codec=self._codec.id,
        )
        await conn.drain()

    def _decode_reply(self, ctx: CallContext, frame: Frame, codec: Codec) -> Any:
        code, message, type_name, metadata = unpack_response_head(frame.head)
        if metadata:
            ctx.response_metadata.update(metadata)
        if code:
            raise error_from_status(
                code, message, type_name, unprocessed=bool(frame.flags & FLAG_UNPROCESSED)
            )
        if frame.codec != codec.id:
            raise ProtocolError(f"server replied in codec {frame.codec}, not {codec.name!r}")
        ctx.reply_size = len(frame.body)
        return decode_body(
            codec, frame.flags, frame.body, limit=self._limit, error=ProtocolError, what="reply"
        )

    def _encode(self, request: Any, codec: Codec | None = None) -> tuple[int, bytes]:
        codec = codec or self._codec
        try:
            return encode_body(
                codec,
                request,
                compress=self._compress,
                threshold=self.config.compression_threshold,
                limit=self._limit,
                what="request",
            )
        except MessageTooLarge:
            raise
        except Exception as exc:
            raise InvalidRequest(f"cannot encode request with codec {codec.name!r}: {exc}") from exc

    def _make_selector(self) -> Selector:
        assert self._resolver is not None, "resolved calls have a resolver"
        resolver = as_resolver(self._resolver.plugin, self.config)
        self._selector = Selector(resolver, self._balancers, self._ejections, self.config.watch_expiry)
        return self._selector

    async def _wait(self, awaitable: Awaitable[T], ctx: CallContext) -> T:
        """Wait for a lookup or a connection within the call's deadline. A wait cut short by
        close() fails the call saying so, not with a bare CancelledError."""
        try:
            return await within(
                awaitable, ctx.time_remaining(), f"{ctx.method} (finding or connecting to a server)"
            )
        except asyncio.CancelledError:
            self._raise_if_closed()
            raise

    def _raise_if_closed(self) -> None:
        """In an `except CancelledError`: if close() caused it, fail the call with Cancelled."""
        task = asyncio.current_task()
        if self._closed and task is not None and task.cancelling() == 0:
            raise Cancelled(CLOSED) from None

    # -- state ------------------------------------------------------------------------------------

    def known_nodes(self, service: str) -> list[Node]:
        """The nodes this client holds for `service` now, as its resolver last reported them."""
        return self._selector.cached(service) if self._selector is not None else []

    @property
    def ejected_nodes(self) -> list[str]:
        """Addresses left out of balancing now because their connections failed (passive health)."""
        return self._ejections.ejected()

    async def close(self) -> None:
        """Close every connection this client opened and stop its resolver watches; calls still in
        flight fail with Cancelled. Plugins made from a name are closed; objects passed in are not."""
        if self._closed:
            return
        self._closed = True
        await self._pool.close(CLOSED)
        await self._tracing.close()
        await self._metrics_plugin.close()
        if self._selector is not None:
            await self._selector.close()
        if self._resolver is not None:
            await self._resolver.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def _one_of(request: Any, requests: Any) -> Any:
    """The request stream, when no single request was given too."""
    if request is not None:
        raise TypeError("pass either request or requests, not both")
    return requests


def declared_call_options(plugins: Iterable[object]) -> frozenset[str]:
    """The per-call option names these plugins (or interceptors) declare in `call_options`."""
    names: set[str] = set()
    for plugin in plugins:
        names.update(getattr(plugin, "call_options", ()))
    return frozenset(names - {HASH_KEY, IDEMPOTENT})
