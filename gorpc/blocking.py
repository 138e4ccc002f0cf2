"""A blocking client for scripts: the same calls, no asyncio needed.

with BlockingClient("127.0.0.1:8000") as client:
    reply = client.call("/helloworld.Greeter/SayHello", {"msg": "hello"})
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine, Mapping
from types import TracebackType
from typing import Any, Self, TypeVar

from gorpc.client import _UNSET, Client
from gorpc.config import ClientConfig
from gorpc.context import Metadata
from gorpc.runtime import loop_factory

T = TypeVar("T")


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
        timeout: float | None = _UNSET,
        metadata: Metadata | None = None,
        hash_key: str | bytes | int | None = None,
        idempotent: bool | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> Any:
        """Call `method` and return its reply; the options and errors are `Client.call`'s."""
        return self._run(
            self._client.call(
                method,
                request,
                timeout=timeout,
                metadata=metadata,
                hash_key=hash_key,
                idempotent=idempotent,
                options=options,
            )
        )

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
