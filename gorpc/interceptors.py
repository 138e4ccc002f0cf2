"""Building an interceptor chain once, so a call pays only for the interceptors themselves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

from gorpc.context import CallContext
from gorpc.types import Interceptor, Next


def build_chain(interceptors: Sequence[Interceptor], terminal: Next) -> Next:
    """Wrap `terminal` so that `interceptors[0]` is the outermost: it runs first and sees the reply last."""
    call = terminal
    for interceptor in reversed(interceptors):
        call = _bind(interceptor, call)
    return call


def _bind(interceptor: Interceptor, next_call: Next) -> Next:
    # A plain function handing back the interceptor's awaitable: no coroutine of its own per call.
    def bound(ctx: CallContext, request: Any) -> Awaitable[Any]:
        return interceptor(ctx, request, next_call)

    bound.__qualname__ = f"bound({getattr(interceptor, '__qualname__', interceptor)!s})"
    return bound


async def watched_replies(
    replies: AsyncIterator[Any],
    on_end: Callable[[BaseException | None], object],
    on_reply: Callable[[], object] | None = None,
) -> AsyncIterator[Any]:
    """`replies` (a stream call's, as an interceptor sees them), calling `on_reply()` for each and
    `on_end(error)` once when the stream is over: its error, or None when it ended or the caller
    stopped reading early. `replies` is closed first. For interceptors that span a whole stream."""
    failed: BaseException | None = None
    try:
        async for reply in replies:
            if on_reply is not None:
                on_reply()
            yield reply
    except GeneratorExit:  # the caller stopped reading: not an error
        raise
    except BaseException as exc:
        failed = exc
        raise
    finally:
        try:
            aclose = getattr(replies, "aclose", None)
            if aclose is not None:
                await aclose()
        finally:
            on_end(failed)
            failed = None  # no reference cycle through the error's traceback
