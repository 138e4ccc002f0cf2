"""The per-call context that handlers and interceptors see, on both sides of a call."""

from __future__ import annotations

import time
from typing import Any

Metadata = dict[str, Any]


class CallContext:
    """What a call carries besides its payload.

    `deadline` is in `time.monotonic()` seconds (None: no deadline). On the server it is derived
    from the timeout the caller sent, so clocks need not agree across machines.
    """

    __slots__ = ("deadline", "metadata", "method", "oneway", "options", "peer", "response_metadata")

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
