"""What a watch does between good answers: short pauses after errors, and riding out an agent restart.

Measured on a 3-server cluster: a leader election makes a client agent answer HTTP 500 for about
3 s. An agent that answers at all is asked again within half a second, so a server registered
right after the new leader is routable within a second. An agent that does not answer (restarting)
is asked again within a second: on loopback a refused connection costs nothing.

A restarted agent has a lower index and is empty until servers register again (1-3 s measured,
up to a session renewal). Its empty answer is not the truth: the nodes known before the restart
stay listed until each is seen again or `hold` seconds pass, so calls go on meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from gorpc.types import Node
from gorpc_consul.errors import ConsulError

PAUSE_START = 0.1
PAUSE_MAX_ANSWERING = 0.5  # the agent answers with errors (an election): look again soon
PAUSE_MAX_UNREACHABLE = 1.0  # nothing answers (a restart)
PAUSE_THROTTLED = 1.0, 10.0  # HTTP 429, Consul's back-pressure: from 1 s, doubling up to 10 s
TOO_MANY_REQUESTS = 429


class Pauses:
    """How long to wait after each failed poll: doubling from 0.1 s to a cap, reset by any good poll."""

    def __init__(self) -> None:
        self._next = PAUSE_START

    def after(self, error: ConsulError) -> float:
        """The pause before asking again after `error`."""
        if error.status == TOO_MANY_REQUESTS:  # back off for real; the last good lists keep serving
            start, cap = PAUSE_THROTTLED
            self._next = max(self._next, start)
        else:
            cap = PAUSE_MAX_ANSWERING if error.status is not None else PAUSE_MAX_UNREACHABLE
        pause = min(self._next, cap)
        self._next = min(self._next * 2, cap)
        return pause

    def reset(self) -> None:
        """A poll succeeded."""
        self._next = PAUSE_START


class RestartGuard:
    """Keeps the nodes known before an agent restart listed until each is seen again, or `hold` passes."""

    def __init__(self, hold: float) -> None:
        self._hold = hold
        self._kept: dict[str, Node] = {}
        self._until = 0.0

    def restarted(self, known: Sequence[Node]) -> None:
        """The agent restarted (or may have): protect what was known."""
        self._kept = {node.address: node for node in known}
        self._until = time.monotonic() + self._hold

    def time_left(self) -> float | None:
        """Seconds until protected nodes are let go, or None when none are protected."""
        if not self._kept:
            return None
        return max(self._until - time.monotonic(), 0.0)

    def apply(self, nodes: Sequence[Node]) -> list[Node]:
        """`nodes` plus the protected ones not yet seen again, sorted by address."""
        if not self._kept:
            return list(nodes)
        if time.monotonic() >= self._until:
            self._kept.clear()
            return list(nodes)
        for node in nodes:
            self._kept.pop(node.address, None)
        return sorted([*nodes, *self._kept.values()], key=lambda n: n.address)
