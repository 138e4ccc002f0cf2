"""Dispatch: one request through decode -> interceptor chain -> handler -> encode.

The connection that carried the request (a `CallHost`) starts this as the call's task and is
answered through it; the method table is the services' (`gorpc.service.MethodTable`).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Awaitable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, NoReturn

import msgspec

from gorpc.context import CallContext, enter_call
from gorpc.contract import Contract, mismatch
from gorpc.deadline import within
from gorpc.envelope import pack_response_head, unpack_request_head, unpack_stream_head
from gorpc.exceptions import (
    InternalError,
    InvalidRequest,
    MessageTooLarge,
    ProtocolError,
    RemoteError,
    RPCError,
    StatusCode,
)
from gorpc.frame import Frame, MessageType
from gorpc.interceptors import build_chain
from gorpc.kinds import MethodKind, mismatch_message
from gorpc.payload import decode_body, encode_body, plain_encoder
from gorpc.server_connection import CallHost
from gorpc.server_stream import ReplySender, RequestStream, iterate_in_thread
from gorpc.service import Method, MethodTable
from gorpc.stream import MESSAGE_OVERHEAD, Stream
from gorpc.types import CallObserver, Codec, Interceptor

logger = logging.getLogger("gorpc.server")

ONEWAY = MessageType.ONEWAY.value
_OK, _CANCELLED = StatusCode.OK.name, StatusCode.CANCELLED.name
_now = time.perf_counter
UNARY = MethodKind.UNARY


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
        check_replies: bool = True,
        observers: Sequence[CallObserver] = (),
    ) -> None:
        self._table = table
        self._codecs = codecs
        self._executor = executor
        self._limit = max_message_size
        self._compress = compress
        self._threshold = compression_threshold
        self._check_replies = check_replies
        self._observers = tuple(observers)  # the access log, metrics (none: nothing is timed)
        self._chain = build_chain(interceptors, self._call_handler)

    async def run(self, frame: Frame, host: CallHost) -> None:
        """Run the request in `frame` and answer it through `host` (a one-way call gets no answer)."""
        rid = frame.request_id
        oneway = frame.type == ONEWAY
        path = "?"
        ctx: CallContext | None = None
        status, reply_size = _OK, (None if oneway else 0)  # for the observers
        started = _now() if self._observers else 0.0
        try:
            path, metadata, timeout = unpack_request_head(frame.head)
            deadline = None if timeout is None else time.monotonic() + timeout
            ctx = CallContext(path, metadata, deadline, host.peer, oneway)
            codec = self._codecs.get(frame.codec) or self._unknown_codec(frame.codec)
            method = self._table.methods.get(path)  # unknown: the chain's end says so
            if method is not None and method.contract is not None:
                contract = method.contract
                codec = contract.server_codecs.get(frame.codec) or self._typed_codec(contract, codec)
            request = decode_body(
                codec, frame.flags, frame.body, limit=self._limit, error=InvalidRequest, what="request"
            )
            enter_call(ctx)  # calls the handler makes inherit its deadline and cancellation
            if timeout is None:
                reply = await self._chain(ctx, request)
            else:
                reply = await within(self._chain(ctx, request), timeout, path)
            if not oneway:
                head = pack_response_head(0, None, None, ctx.response_metadata)
                flags, body = self._encode_reply(codec, reply, len(head), path)
                host.reply(rid, frame.codec, flags, head, body)
                reply_size = len(body)
        except asyncio.CancelledError:
            status = _CANCELLED
            if ctx is not None:
                ctx.cancel_dependents()
            if not oneway:
                host.answer_cancelled(rid, path)
            raise
        except Exception as exc:
            # Handled in a method of its own: a local here holding the error would make a reference
            # cycle (this frame -> error -> traceback -> this frame) that keeps everything the
            # traceback reaches, an inflated request body included, until a cyclic GC pass.
            status = self._fail(host, rid, path, ctx, oneway, exc)
        finally:
            host.ended(rid, oneway)
            if self._observers:  # inline, not a CallHost wrapper: this is on every observed call
                self._observe(path, host.peer, status, started, len(frame.body), reply_size)

    async def run_stream(self, frame: Frame, stream: Stream, host: CallHost) -> None:
        """Run a stream call: as `run`, with the requests, the replies or both going through `stream`.
        The deadline covers the whole stream; the final RESPONSE carries the status."""
        rid = frame.request_id
        path = "?"
        ctx: CallContext | None = None
        status = _OK
        started = _now() if self._observers else 0.0
        try:
            path, metadata, timeout, mode, window = unpack_stream_head(frame.head)
            stream.add_credit(*window)
            deadline = None if timeout is None else time.monotonic() + timeout
            ctx = CallContext(path, metadata, deadline, host.peer)
            codec = self._codecs.get(frame.codec) or self._unknown_codec(frame.codec)
            method = self._table.lookup(path)
            if not method.kind.accepts(mode):
                raise InvalidRequest(mismatch_message(path, method.kind))
            if method.contract is not None:
                codec = self._typed_codec(method.contract, codec)
            ctx.mode = method.kind.mode
            request = self._stream_request(frame, stream, codec, method)
            enter_call(ctx)
            work = self._stream_call(ctx, request, method, stream, codec, host, rid)
            await (work if timeout is None else within(work, timeout, path))
        except asyncio.CancelledError:
            status = _CANCELLED
            if ctx is not None:
                ctx.cancel_dependents()
            host.answer_cancelled(rid, path)
            raise
        except Exception as exc:
            status = self._fail(host, rid, path, ctx, False, exc)  # see `run` on why this is a method
        finally:
            host.ended(rid, False)
            if self._observers:  # a stream's replies are not counted in sizes
                self._observe(path, host.peer, status, started, len(frame.body), None)

    def _stream_request(self, frame: Frame, stream: Stream, codec: Codec, method: Method) -> Any:
        """The request as the handler takes it: decoded, or the stream of them (its window granted)."""
        if method.kind.streams_requests:
            requests = RequestStream(stream, codec, self._limit)
            stream.grant_window()  # the caller sends nothing until it has credit: now it may
            return requests
        return decode_body(
            codec, frame.flags, frame.body, limit=self._limit, error=InvalidRequest, what="request"
        )

    async def _stream_call(
        self,
        ctx: CallContext,
        request: Any,
        method: Method,
        stream: Stream,
        codec: Codec,
        host: CallHost,
        rid: int,
    ) -> None:
        result = await self._chain(ctx, request)
        if method.kind.streams_replies:
            await self._reply_sender(stream, codec, ctx).send_all(result, codec.id)
            # The end: status and trailing metadata, no body (so no codec).
            host.reply(rid, 0, 0, pack_response_head(0, None, None, ctx.response_metadata), b"")
        else:  # client-streaming: one reply, in the RESPONSE like a unary call's
            head = pack_response_head(0, None, None, ctx.response_metadata)
            flags, body = self._encode_reply(codec, result, len(head), ctx.method)
            host.reply(rid, codec.id, flags, head, body)

    def _reply_sender(self, stream: Stream, codec: Codec, ctx: CallContext) -> ReplySender:
        def general(reply: Any, head_len: int) -> tuple[int, bytes]:
            return self._encode_reply(codec, reply, head_len + MESSAGE_OVERHEAD, ctx.method)  # its length too

        plain = None
        if not self._compress:
            plain = plain_encoder(codec, self._limit - MESSAGE_OVERHEAD, lambda reply: general(reply, 0))
        return ReplySender(stream, ctx, general, plain)

    def _fail(
        self, host: CallHost, rid: int, path: str, ctx: CallContext | None, oneway: bool, exc: Exception
    ) -> str:
        """Answer a call that failed with `exc` (a handler's own exception is logged); the name of
        the status it was answered with."""
        if isinstance(exc, ProtocolError) and ctx is None:
            host.broken(rid, exc, oneway)  # a malformed head: the peer breaks the protocol
            return exc.code.name
        error = _as_rpc_error(exc, path)
        if oneway:
            logger.warning("one-way call %s from %s failed: %s", path, host.peer, error)
        else:
            # Metadata the call set before failing still goes back (request ids, retry hints).
            host.fail(rid, error, ctx.response_metadata if ctx is not None else None)
        return error.code.name

    def _observe(
        self, path: str, peer: str, status: str, started: float, request_size: int, reply_size: int | None
    ) -> None:
        seconds = _now() - started
        for observer in self._observers:
            observer.call_ended(path, peer, status, seconds, request_size, reply_size)

    def _call_handler(self, ctx: CallContext, request: Any) -> Awaitable[Any]:
        # A plain function returning the handler's awaitable: one coroutine frame less per call.
        method = self._table.methods.get(ctx.method) or self._table.lookup(ctx.method)
        args = (request, ctx) if method.takes_context else (request,)
        if method.kind is not UNARY:
            if not ctx.mode:  # a unary call to a streaming method
                raise InvalidRequest(mismatch_message(ctx.method, method.kind))
            return self._stream_handler(method, args)
        if method.is_async:
            return method.func(*args)  # type: ignore[no-any-return]
        # Plain `def` handlers run in the pool so they never block the loop; contextvars go with them.
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._executor, contextvars.copy_context().run, method.func, *args)

    def _stream_handler(self, method: Method, args: tuple[Any, ...]) -> Awaitable[Any]:
        """What `next` gives a streaming call: its reply (client-streaming) or its replies."""
        if method.kind is MethodKind.CLIENT_STREAMING:
            return method.func(*args)  # type: ignore[no-any-return]
        replies = method.func(*args)  # a generator object: nothing has run yet
        if not method.is_async:
            replies = iterate_in_thread(replies, self._executor)
        return _ready(replies)

    def _typed_codec(self, contract: Contract, codec: Codec) -> Codec:
        return contract.server_codec(codec, check=self._check_replies)

    def _unknown_codec(self, codec_id: int) -> NoReturn:
        known = {c.name: i for i, c in self._codecs.items()}
        raise InvalidRequest(f"unknown codec id {codec_id}; this server knows {known}")

    def _encode_reply(self, codec: Codec, reply: Any, head_len: int, path: str) -> tuple[int, bytes]:
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
        except msgspec.ValidationError as exc:  # the handler's bug: the caller learns that, the log too
            message = mismatch(codec, exc, "checked")
            logger.error("%s returned a reply that %s", path, message)
            raise InternalError(f"the server's reply {message}") from None
        except Exception as exc:
            raise InternalError(f"cannot encode reply with codec {codec.name!r}: {exc}") from exc


async def _ready(value: Any) -> Any:
    return value


def _as_rpc_error(exc: Exception, path: str) -> RPCError:
    """The error the caller gets. A handler's own exception is logged here with its traceback."""
    if isinstance(exc, RPCError):
        return exc
    logger.error("call %s raised %s", path, type(exc).__name__, exc_info=exc)
    return RemoteError(str(exc), type_name=type(exc).__name__)
