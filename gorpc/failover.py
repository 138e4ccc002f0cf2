"""Fail modes: whether a failed call is tried again on another node.

`failfast` never retries. `failover` retries up to `retries` times on nodes not yet tried, but only
when that cannot run the request twice: the request provably never reached a handler
(`Unavailable.unprocessed`: it was never sent, or a stopping server refused it unread), or the
method is marked idempotent (in the config, or per call with `idempotent=True`).
"""

from __future__ import annotations

from collections.abc import Iterable

from gorpc.context import CallContext
from gorpc.exceptions import NoNodesAvailable, RPCError, Unavailable

FAIL_MODES = ("failfast", "failover")
IDEMPOTENT = "idempotent"  # the per-call option: client.call(..., idempotent=True)


class RetryPolicy:
    """Decides, per failed attempt, whether the call goes to another node."""

    def __init__(self, mode: str, retries: int, idempotent: Iterable[str]) -> None:
        self.retries = retries if mode == "failover" else 0
        # Entries are method paths ("/pkg.Service/Method") or whole services ("pkg.Service").
        self._idempotent = frozenset(idempotent)

    def is_idempotent(self, ctx: CallContext) -> bool:
        """Whether running `ctx`'s request twice is harmless."""
        flag = ctx.options.get(IDEMPOTENT)
        if flag is not None:
            return bool(flag)
        return ctx.method in self._idempotent or ctx.service in self._idempotent

    def should_retry(self, error: RPCError, ctx: CallContext, attempt: int) -> bool:
        """Whether attempt number `attempt` (0 for the first) that failed with `error` is tried again."""
        if attempt >= self.retries or ctx.oneway:
            return False
        if not isinstance(error, Unavailable) or isinstance(error, NoNodesAvailable):
            return False  # the node answered (or there is nowhere else to go)
        return error.unprocessed or self.is_idempotent(ctx)
