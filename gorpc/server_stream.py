"""What a streaming handler sees on the server: its request stream, and its replies going out."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor
from typing import Any

from gorpc.context import CallContext
from gorpc.envelope import pack_message_head
from gorpc.exceptions import InvalidRequest
from gorpc.payload import Encoder, message_decoder
from gorpc.stream import EMPTY, END, Stream
from gorpc.types import Codec


class RequestStream(AsyncIterator[Any]):
    """The caller's requests, as a client- or bidirectional-streaming handler iterates them.

    Each arrives decoded; taking it gives its credit back to the caller, so a handler that reads
    slowly slows the caller down instead of filling memory.
    """

    __slots__ = ("_stream",)

    def __init__(self, stream: Stream, codec: Codec, limit: int) -> None:
        self._stream = stream
        stream.set_decoder(message_decoder(codec, limit, InvalidRequest, "request"))

    def __aiter__(self) -> RequestStream:
        return self

    async def __anext__(self) -> Any:
        request = self._stream.receive_nowait()
        if request is EMPTY:
            request = await self._stream.receive()
        if request is END:
            raise StopAsyncIteration
        return request


class ReplySender:
    """Sends a handler's replies on its stream: encoded, within the caller's credit."""

    __slots__ = ("_ctx", "_encode", "_general", "_stream")

    def __init__(
        self,
        stream: Stream,
        ctx: CallContext,
        general: Callable[[Any, int], tuple[int, bytes]],
        plain: Encoder | None,
    ) -> None:
        self._stream = stream
        self._ctx = ctx
        self._general = general  # (reply, head length) -> (flags, body), raising the right errors
        self._encode = plain or (lambda reply: general(reply, 0))  # the per-message fast path

    async def send_all(self, replies: AsyncIterator[Any], codec_id: int) -> None:
        """Send every reply `replies` yields; the generator is closed (its `finally` runs) however
        this ends, cancellation included, and what was sent is flushed before the call's end."""
        stream, encode = self._stream, self._encode
        replies = aiter(replies)  # one iterator for both loops below
        try:
            async for reply in replies:
                flags, body = self._first(reply)
                if not stream.try_send(body, flags, codec_id):
                    await stream.send(body, flags, codec_id)
                break
            async for reply in replies:
                flags, body = encode(reply)
                if not stream.try_send(body, flags, codec_id):
                    await stream.send(body, flags, codec_id)
        finally:
            self._stream.flush()
            aclose = getattr(replies, "aclose", None)
            if aclose is not None:
                await aclose()

    def _first(self, reply: Any) -> tuple[int, bytes]:
        # Response metadata set before the first reply goes with it (and all of it at the end).
        metadata = self._ctx.response_metadata
        head = pack_message_head(metadata) if metadata else b""
        self._stream.set_head(head)
        return self._general(reply, len(head))


_DONE = object()


def _next(items: Iterator[Any]) -> Any:
    return next(items, _DONE)


async def iterate_in_thread(items: Iterator[Any], executor: Executor | None) -> AsyncIterator[Any]:
    """A plain generator's items, each produced in the thread pool and yielded on the loop. Closed
    (its `finally` run, in the pool) when the caller stops early."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()  # the handler's thread sees the call's context variables
    step: asyncio.Future[Any] | None = None
    try:
        while True:
            step = loop.run_in_executor(executor, context.run, _next, items)
            item = await asyncio.shield(step)  # cancelled, we still wait for the thread (below)
            if item is _DONE:
                return
            yield item
    finally:
        if step is not None and not step.done():
            await asyncio.wait([step])  # a generator cannot be closed while it runs in a thread
        close = getattr(items, "close", None)
        if close is not None:
            await loop.run_in_executor(executor, context.run, close)
