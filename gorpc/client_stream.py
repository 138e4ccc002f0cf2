"""Stream calls on the client: `ReplyStream`, what `Client.stream()` returns, and `StreamCall`, one
attempt of a stream call on one connection (its request pump, its deadline, its replies)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from gorpc.client_connection import ClientConnection
from gorpc.context import CallContext
from gorpc.envelope import pack_request_head, unpack_message_head, unpack_response_head
from gorpc.exceptions import Cancelled, DeadlineExceeded, ProtocolError, error_from_status
from gorpc.frame import FLAG_UNPROCESSED, Frame
from gorpc.kinds import StreamMode
from gorpc.payload import message_decoder
from gorpc.stream import EMPTY, END, Stream, StreamEnded, Window
from gorpc.types import Codec

Encode = Callable[[Any], tuple[int, bytes]]  # a request -> (flags, body)


R = TypeVar("R")  # a stream's reply type (Any unless a stub or `reply_type` says)


class StreamCall(AsyncIterator[Any]):
    """One attempt of a stream call on one connection.

    Until `started` returns, the call may still go to another node (nothing of it has been
    consumed: no reply read, no request taken from the caller's iterator). Iterating it gives the
    replies, then raises the call's error or stops; it closes itself at the end.
    """

    def __init__(
        self,
        conn: ClientConnection,
        ctx: CallContext,
        codec: Codec,
        *,
        window: Window,
        limit: int,
        encode: Encode,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self._conn = conn
        self._ctx = ctx
        self._codec = codec
        self._window = window
        self._limit = limit
        self._encode = encode
        self._on_close = on_close
        self._stream: Stream | None = None
        self._decode = message_decoder(codec, limit, ProtocolError, "reply")
        self._pump: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._one_reply_given = False
        self._closed = False

    @property
    def stream(self) -> Stream:
        assert self._stream is not None, "the call has been opened"
        return self._stream

    async def open(self, flags: int, body: bytes) -> None:
        """Send the stream request (with the one request, when requests are not streamed)."""
        ctx = self._ctx
        ctx.peer = self._conn.address
        remaining = ctx.time_remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded(f"{ctx.method}: deadline passed before the request was sent")
        head = pack_request_head(ctx.method, ctx.metadata, remaining, (ctx.mode, self._window))
        self._stream = await self._conn.open_stream(
            ctx.method, head, body, self._codec.id, flags, self._window
        )
        self._stream.set_decoder(self._decode, self._head_received)  # replies decoded as they arrive
        if remaining is not None:
            self._timer = asyncio.get_running_loop().call_later(remaining, self._expire, remaining)
        if ctx.parent is not None:
            ctx.parent.add_dependent(self._parent_cancelled)

    async def started(self) -> None:
        """Wait until the server has started the call: it accepted the request stream, or sent a
        reply or its end. Raises the call's error if it failed before that."""
        stream = self.stream
        if self._ctx.mode & StreamMode.REQUESTS:
            await stream.wait_for_credit()
        else:
            await stream.wait_readable()
        if stream.final is not None and not stream.has_messages:  # it ended before any reply
            try:
                self._check_status(stream.final)
            except ProtocolError as exc:  # a stream request head is the only new thing it saw
                raise ProtocolError(
                    f"{self._ctx.method}: the server refused the stream request ({exc.message}); "
                    "a server that predates streams answers so: it can serve unary calls only"
                ) from None

    def send_requests(self, requests: AsyncIterable[Any] | Iterable[Any]) -> None:
        """Start sending the caller's requests (after `started`: the server has granted credit)."""
        self._pump = asyncio.get_running_loop().create_task(self._send_all(requests))

    async def _send_all(self, requests: AsyncIterable[Any] | Iterable[Any]) -> None:
        stream, codec_id = self.stream, self._codec.id
        try:
            if isinstance(requests, AsyncIterable):
                async for request in requests:
                    flags, body = self._encode(request)
                    if not stream.try_send(body, flags, codec_id):
                        await stream.send(body, flags, codec_id)
            else:
                for request in requests:
                    flags, body = self._encode(request)
                    if not stream.try_send(body, flags, codec_id):
                        await stream.send(body, flags, codec_id)
            self._conn.end_requests(stream)
        except (StreamEnded, asyncio.CancelledError):
            pass  # the call ended (or was closed) first: nothing left to send to
        except Exception as exc:
            if stream.failed is None:  # the caller's iterator (or encoding) failed: so does the call
                stream.fail(exc)
                self._conn.end_stream(stream)
        finally:
            aclose = getattr(requests, "aclose", None)
            if aclose is not None:  # a generator the call stopped reading: its `finally` runs now
                await aclose()

    # -- replies ----------------------------------------------------------------------------------

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Any:
        try:
            reply = self.stream.receive_nowait()
            if reply is EMPTY:
                reply = await self.stream.receive()
            return self._last() if reply is END else reply
        except BaseException:
            await self.aclose()
            raise

    def _head_received(self, head: bytes) -> None:
        self._ctx.response_metadata.update(unpack_message_head(head))

    def _last(self) -> Any:
        """After the last message: the one reply of a client-streaming method (once), else the end."""
        final = self.stream.final
        assert final is not None, "a stream ends with the server's RESPONSE"
        self._check_status(final)
        if final.body and not self._one_reply_given:
            self._one_reply_given = True
            if final.codec != self._codec.id:
                raise ProtocolError(f"server replied in codec {final.codec}, not {self._codec.name!r}")
            return self._decode(final.flags, final.body)
        raise StopAsyncIteration

    def _check_status(self, final: Frame) -> None:
        code, message, type_name, metadata = unpack_response_head(final.head)
        if metadata:
            self._ctx.response_metadata.update(metadata)
        if code:
            raise error_from_status(
                code, message, type_name, unprocessed=bool(final.flags & FLAG_UNPROCESSED)
            )

    async def one_reply(self) -> Any:
        """A client-streaming call's reply."""
        try:
            async for reply in self:
                return reply
            raise ProtocolError(f"{self._ctx.method}: the server ended the call without a reply")
        finally:
            await self.aclose()

    # -- ending -----------------------------------------------------------------------------------

    def _expire(self, seconds: float) -> None:
        self._abandon(DeadlineExceeded(f"{self._ctx.method}: deadline of {seconds:.3f}s exceeded"))

    def _parent_cancelled(self) -> None:
        self._abandon(Cancelled(f"{self._ctx.method}: the call it was made under was cancelled"))

    def _abandon(self, error: Exception) -> None:
        """Fail the call now (its reader gets `error`) and tell the server (CANCEL)."""
        if self._stream is not None:
            self._stream.fail(error)
            self._conn.end_stream(self._stream)

    async def aclose(self) -> None:
        """End the call: if the server has not finished it, it is cancelled there too."""
        self.close()

    def close(self) -> None:
        """`aclose`, from code that cannot await (it never needs to)."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        if self._ctx.parent is not None:
            self._ctx.parent.remove_dependent(self._parent_cancelled)
        if self._stream is not None:
            self._conn.end_stream(self._stream)
        if self._pump is not None and not self._pump.done():
            self._pump.cancel()
        if self._on_close is not None:
            self._on_close()


class ReplyStream(AsyncIterator[R], Generic[R]):
    """A stream call's replies: `async for reply in client.stream(...)`.

    Also an async context manager. Leaving it, breaking out of `async for` early, or `aclose()`
    cancels the call, and the server's handler is cancelled too (its `finally` runs). The call
    starts at the first iteration. `response_metadata` holds what the server sent at the stream's
    start, and, once the stream has ended, what it sent at its end too.
    """

    def __init__(
        self, start: Callable[[CallContext, Any], Awaitable[Any]], ctx: CallContext, request: Any
    ) -> None:
        self._start = start
        self._ctx = ctx
        self._request = request
        self._replies: AsyncIterator[R] | None = None
        self._done = False
        self._loop: asyncio.AbstractEventLoop | None = None  # the call's, once started

    @property
    def method(self) -> str:
        return self._ctx.method

    @property
    def response_metadata(self) -> dict[str, Any]:
        return self._ctx.response_metadata

    def __aiter__(self) -> AsyncIterator[R]:
        # An async generator, so that `break` cancels the call: the loop closes a generator
        # dropped unfinished (asyncio's asyncgen hooks), which a plain iterator would not get.
        return self._replies_until_closed()

    async def _replies_until_closed(self) -> AsyncIterator[R]:
        try:
            if self._done:
                return
            replies = self._replies if self._replies is not None else await self._start_call()
            if type(replies) is StreamCall:  # not wrapped by an interceptor: take what has come
                take = replies.stream.receive_nowait  # no coroutine per reply while they keep coming
                while True:
                    reply = take()
                    if reply is EMPTY:
                        reply = await replies.__anext__()
                    yield reply
            else:
                async for reply in replies:
                    yield reply
        except StopAsyncIteration:
            return
        finally:
            await self.aclose()

    async def __anext__(self) -> R:
        if self._done:
            raise StopAsyncIteration
        try:
            replies = self._replies if self._replies is not None else await self._start_call()
            return await replies.__anext__()
        except BaseException:
            await self.aclose()
            raise

    async def _start_call(self) -> AsyncIterator[R]:
        self._loop = asyncio.get_running_loop()
        self._replies = await self._start(self._ctx, self._request)
        self._request = None
        return self._replies

    async def aclose(self) -> None:
        """Cancel the call if it is still running; the stream yields nothing more."""
        self._done = True
        replies, self._replies = self._replies, None
        aclose = getattr(replies, "aclose", None)
        try:
            if aclose is not None:
                await aclose()  # an interceptor's wrapper first: its `finally` may still report
        finally:
            closer, self._ctx.closer = self._ctx.closer, None
            if closer is not None:
                closer()  # the call itself, whatever the wrappers did

    def __del__(self) -> None:
        # Dropped unfinished (read with anext() and never closed): end the call on the wire, on
        # its loop, which may be another thread's (a BlockingClient's).
        closer, loop = self._ctx.closer, self._loop
        if closer is not None and loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(closer)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
