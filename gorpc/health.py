"""Passive health: a node whose connection fails is left out of balancing for a while.

The first failure ejects a node for `base` seconds; each further failure in a row doubles that, up
to `maximum`. A successful connection clears the record. If every node is ejected, all are offered
again (failing fast at a dead node beats refusing every call).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from gorpc.types import Node

logger = logging.getLogger("gorpc.health")


class Ejections:
    """Which addresses are ejected, and until when (monotonic seconds)."""

    def __init__(self, base: float, maximum: float) -> None:
        self._base = base
        self._maximum = maximum
        self._until: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self.version = 0  # changes whenever the ejected set does, so filtered lists can be cached

    def eject(self, address: str, reason: str) -> None:
        """Leave `address` out after a failed connection."""
        failures = self._failures[address] = self._failures.get(address, 0) + 1
        period = min(self._base * 2 ** (failures - 1), self._maximum)
        self._until[address] = time.monotonic() + period
        self.version += 1
        logger.warning("ejecting %s for %.1fs (failure %d in a row): %s", address, period, failures, reason)

    def restore(self, address: str) -> None:
        """`address` answered: forget its failures."""
        self._failures.pop(address, None)
        if self._until.pop(address, None) is not None:
            self.version += 1

    def remaining(self, address: str) -> float:
        """Seconds until `address` is back in rotation (0 if it is not ejected)."""
        until = self._until.get(address)
        return 0.0 if until is None else max(until - time.monotonic(), 0.0)

    def ejected(self) -> list[str]:
        """The addresses ejected now, sorted."""
        self.expire()
        return sorted(self._until)

    def any(self) -> bool:
        """Whether any address is (or was until just now) ejected: the call path's quick check."""
        return bool(self._until)

    def available(self, nodes: Sequence[Node]) -> Sequence[Node]:
        """`nodes` without the ejected ones (all of them if every one is ejected)."""
        self.expire()
        if not self._until:
            return nodes
        kept = [n for n in nodes if n.address not in self._until]
        return kept or nodes

    def expire(self) -> None:
        """Bring back the addresses whose ejection has ended."""
        now = time.monotonic()
        for address in [a for a, until in self._until.items() if until <= now]:
            del self._until[address]  # back in rotation; its failure count stays until it answers
            self.version += 1
