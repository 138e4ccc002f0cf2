"""Building an interceptor chain once, so a call pays only for the interceptors themselves."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
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
