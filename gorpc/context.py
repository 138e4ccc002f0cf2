"""The per-call context that handlers and interceptors see, on both sides of a call.

On the server, the call being handled is also the task's current call (a context variable, so
tasks the handler starts see it too): calls made under it inherit its deadline and are cancelled
when it is (see `Client`'s `propagate`).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from typing import Any

from gorpc.kinds import StreamMode

Metadata = dict[str, Any]
_UNARY = StreamMode.UNARY  # a module global: an enum member's lookup costs more, on every call


class CallContext:
    """What a call carries besides its payload.

    `deadline` is in `time.monotonic()` seconds (None: no deadline). On the server it is derived
    from the timeout the caller sent, so clocks need not agree across machines.
    """

    __slots__ = (
        "_dependents",
        "closer",
        "deadline",
        "metadata",
        "method",
        "mode",
        "oneway",
        "options",
        "parent",
        "peer",
        "reply_size",
        "reply_type",
        "request_size",
        "response_metadata",
    )

    request_size: int  # set by the client as the request goes out (see `__init__`)
    reply_size: int

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
        # How the call carries its messages: for a stream, the request an interceptor sees is an
        # async iterator of requests (REQUESTS) and what `next` returns is one of replies (REPLIES).
        self.mode = _UNARY
        # Client side: the type the reply is decoded into (a stub's, or `call(reply_type=)`);
        # None: plain data.
        self.reply_type: Any = None
        # Per-call options for plugins (a balancer's hash key, for one); never sent on the wire.
        self.options: dict[str, Any] = {}
        # Client side: the incoming call this one was made under (its deadline and cancellation
        # carry over).
        self.parent: CallContext | None = None
        self._dependents: set[Callable[[], object]] | None = None
        # Client side, a stream call: ends the call on the wire, however interceptors wrapped its
        # replies (a wrapper that stops reading need not close what it wraps).
        self.closer: Callable[[], None] | None = None
        # Client side, body sizes as sent and received (`request_size`, `reply_size`): set when the
        # request goes out and its reply comes back, not here (unset until then), for metrics.

    def add_dependent(self, cancel: Callable[[], object]) -> None:
        """Call `cancel` if this incoming call is cancelled. (A call made in the handler's own task
        has removed itself by then: the cancellation unwinds it first.)"""
        if self._dependents is None:
            self._dependents = set()
        self._dependents.add(cancel)

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


# Make a CallContext the current call of this task: each server call runs in a task of its own,
# with a context of its own, so nothing needs resetting. The variable's own bound methods, so
# neither costs a Python frame per call.
enter_call = _current_call.set

# The incoming call this code runs under, if any (in a handler, or a task it started). The
# variable's own bound method: no Python frame on every call a client makes.
current_call = _current_call.get
