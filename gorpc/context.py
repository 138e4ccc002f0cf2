"""The per-call context that handlers and interceptors see, on both sides of a call.

On the server, the call being handled is also the task's current call (a context variable, so
tasks the handler starts see it too): calls made under it inherit its deadline and are cancelled
when it is (see `Client`'s `propagate`).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from typing import Any

Metadata = dict[str, Any]


class CallContext:
    """What a call carries besides its payload.

    `deadline` is in `time.monotonic()` seconds (None: no deadline). On the server it is derived
    from the timeout the caller sent, so clocks need not agree across machines.
    """

    __slots__ = (
        "_dependents",
        "_task",
        "deadline",
        "metadata",
        "method",
        "oneway",
        "options",
        "parent",
        "peer",
        "response_metadata",
    )

    def __init__(
        self,
        method: str,
        metadata: Metadata | None = None,
        deadline: float | None = None,
        peer: str = "",
        oneway: bool = False,
    ) -> None:
        self.method = method
        self.metadata: Metadata = metadata if metadata is not None else {}
        self.response_metadata: Metadata = {}
        self.deadline = deadline
        self.peer = peer
        self.oneway = oneway
        # Per-call options for plugins (a balancer's hash key, for one); never sent on the wire.
        self.options: dict[str, Any] = {}
        # Client side: the incoming call this one was made under (its deadline and cancellation
        # carry over). Server side: the task handling this call.
        self.parent: CallContext | None = None
        self._task: asyncio.Task[Any] | None = None
        self._dependents: set[Callable[[], object]] | None = None

    def add_dependent(self, cancel: Callable[[], object]) -> bool:
        """Call `cancel` if this incoming call is cancelled; False when it need not be registered
        (it runs in this call's own task, which its cancellation reaches anyway)."""
        task = asyncio.current_task()
        if task is None or task is self._task:
            return False
        if self._dependents is None:
            self._dependents = set()
        self._dependents.add(cancel)
        return True

    def remove_dependent(self, cancel: Callable[[], object]) -> None:
        """The dependent call ended."""
        if self._dependents is not None:
            self._dependents.discard(cancel)

    def cancel_dependents(self) -> None:
        """This incoming call was cancelled: so are the calls made under it in other tasks."""
        dependents, self._dependents = self._dependents, None
        for cancel in dependents or ():
            cancel()

    @property
    def service(self) -> str:
        """The service part of `/service/Method`."""
        return self.method.split("/", 2)[1] if self.method.startswith("/") else ""

    def time_remaining(self) -> float | None:
        """Seconds until the deadline (negative once passed), or None without a deadline."""
        if self.deadline is None:
            return None
        return self.deadline - time.monotonic()

    def __repr__(self) -> str:
        return f"CallContext(method={self.method!r}, peer={self.peer!r}, deadline={self.deadline!r})"


_current_call: contextvars.ContextVar[CallContext | None] = contextvars.ContextVar("gorpc_call", default=None)


def enter_call(ctx: CallContext) -> None:
    """Make `ctx` the current call of this task (each server call runs in a task of its own, with a
    context of its own, so nothing needs resetting)."""
    ctx._task = asyncio.current_task()
    _current_call.set(ctx)


def current_call() -> CallContext | None:
    """The incoming call this code runs under, if any (in a handler, or a task it started)."""
    return _current_call.get()
