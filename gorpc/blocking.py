"""A blocking client for scripts: the same calls, no asyncio needed.

with BlockingClient("127.0.0.1:8000") as client:
    reply = client.call("/helloworld.Greeter/SayHello", {"msg": "hello"})
    for feature in client.stream("/routeguide.RouteGuide/ListFeatures", area):
        ...
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar, Unpack

from gorpc.client import _UNSET, Client
from gorpc.client_stream import ReplyStream
from gorpc.config import ClientConfig
from gorpc.context import Metadata
from gorpc.runtime import loop_factory
from gorpc.stub import BlockingCallOptions, StubBase

T = TypeVar("T")
S = TypeVar("S")
_Q = TypeVar("_Q")  # the stub templates' request type
_R = TypeVar("_R")  # and reply type


class BlockingClient:
    """Runs an async `Client` on an event loop in a background thread. Safe to share between threads."""

    def __init__(self, target: str | None = None, **kwargs: Any) -> None:
        self._client = Client(target, **kwargs)
        self._loop = loop_factory(self._client.config.uvloop)()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="gorpc-blocking-client", daemon=True
        )
        self._thread.start()
        self._closed = False

    @property
    def config(self) -> ClientConfig:
        return self._client.config

    def call(
        self,
        method: str,
        request: Any = None,
        *,
        requests: Iterable[Any] | None = None,
        timeout: float | None = _UNSET,
        metadata: Metadata | None = None,
        hash_key: str | bytes | int | None = None,
        idempotent: bool | None = None,
        options: Mapping[str, Any] | None = None,
        reply_type: Any = None,
    ) -> Any:
        """Call `method` and return its reply; the options and errors are `Client.call`'s. With
        `requests` (an ordinary iterable, read in a worker thread) the call is client-streaming."""
        return self._run(
            self._client.call(
                method,
                request,
                requests=None if requests is None else _from_thread(requests),
                timeout=timeout,
                metadata=metadata,
                hash_key=hash_key,
                idempotent=idempotent,
                options=options,
                reply_type=reply_type,
            )
        )

    def stream(
        self,
        method: str,
        request: Any = None,
        *,
        requests: Iterable[Any] | None = None,
        timeout: float | None = _UNSET,
        metadata: Metadata | None = None,
        hash_key: str | bytes | int | None = None,
        idempotent: bool | None = None,
        options: Mapping[str, Any] | None = None,
        reply_type: Any = None,
    ) -> BlockingReplyStream[Any]:
        """A stream call whose replies are an ordinary iterator (see `Client.stream`); `requests`
        is an ordinary iterable, read in a worker thread so it may block."""
        replies = self._client.stream(
            method,
            request,
            requests=None if requests is None else _from_thread(requests),
            timeout=timeout,
            metadata=metadata,
            hash_key=hash_key,
            idempotent=idempotent,
            options=options,
            reply_type=reply_type,
        )
        return BlockingReplyStream(replies, self._run)

    def stub(self, contract: type[S]) -> BlockingStub[S]:
        """`contract`'s methods as blocking calls: `Client.stub`'s, each returning the reply (or an
        iterator of replies)."""
        return BlockingStub(contract, self.call, self.stream)

    def notify(
        self,
        method: str,
        request: Any = None,
        *,
        metadata: Metadata | None = None,
        hash_key: str | bytes | int | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        """A one-way call: returns once the request is sent."""
        self._run(self._client.notify(method, request, metadata=metadata, hash_key=hash_key, options=options))

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the client's loop and wait for it."""
        if self._closed:
            coro.close()
            raise RuntimeError("client is closed")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            future.cancel()  # Ctrl-C while waiting: don't leave the call running
            raise

    def close(self) -> None:
        """Close connections and stop the background loop."""
        if self._closed:
            return
        try:
            self._run(self._client.close())
        except concurrent.futures.CancelledError:
            pass
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class BlockingReplyStream(Iterator[T], Generic[T]):
    """A stream call's replies as an ordinary iterator; also a context manager. Leaving it or
    `close()` before the end cancels the call."""

    def __init__(self, replies: ReplyStream[T], run: Any) -> None:
        self._replies = replies
        self._run = run

    @property
    def response_metadata(self) -> dict[str, Any]:
        return self._replies.response_metadata

    def __iter__(self) -> Iterator[Any]:
        # A generator, so that `break` cancels the call: Python closes a generator dropped unfinished.
        try:
            while True:
                try:
                    reply = next(self)
                except StopIteration:
                    return
                yield reply
        finally:
            self.close()

    def __next__(self) -> Any:
        try:
            return self._run(self._replies.__anext__())
        except StopAsyncIteration:
            raise StopIteration from None

    def close(self) -> None:
        """Cancel the call if it is still running."""
        self._run(self._replies.aclose())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class BlockingStub(StubBase, Generic[S]):
    """The RPC methods of the contract class `S`, each a blocking call through a BlockingClient
    (see `gorpc.stub`: the templates below are the shapes the mypy plugin gives them)."""

    if TYPE_CHECKING:
        # mypy asks a function returning _R to take an _R: these are templates, the plugin fills it.
        def _unary(self, request: _Q, /, **options: Unpack[BlockingCallOptions]) -> _R: ...  # type: ignore[type-var]

        def _server_streaming(
            self, request: _Q, /, **options: Unpack[BlockingCallOptions]
        ) -> BlockingReplyStream[_R]: ...

        def _client_streaming(
            self, requests: Iterable[_Q], /, **options: Unpack[BlockingCallOptions]
        ) -> _R: ...  # type: ignore[type-var]

        def _bidirectional(
            self, requests: Iterable[_Q], /, **options: Unpack[BlockingCallOptions]
        ) -> BlockingReplyStream[_R]: ...


_DONE = object()


async def _from_thread(items: Iterable[Any]) -> AsyncIterator[Any]:
    """An ordinary iterable as an async one, each item taken in a worker thread (it may block)."""
    iterator = iter(items)
    while (item := await asyncio.to_thread(next, iterator, _DONE)) is not _DONE:
        yield item
