"""One blocking query on the whole key prefix, carrying many services' node lists.

A client calling hundreds of services cannot hold a blocking query (an HTTP connection) per service:
Consul allows 200 connections per client address and answers 429 beyond. Past the first few
services (`prefix_watch_after`), the consul resolver follows the others through this: one recursive
blocking query on `<prefix>/`, answered whenever any key under it changes, split by service and
compared locally, so each service's followers hear only of their own changes. A change is seen as
fast as with a query per service (the same blocking query mechanism).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

from gorpc.types import Node
from gorpc_consul.errors import ConsulError, ConsulPermissionDenied
from gorpc_consul.http import ConsulResponse
from gorpc_consul.watching import Pauses, RestartGuard

logger = logging.getLogger("gorpc.consul")

# (index, fresh, hold_left) -> the prefix's keys: a blocking query from `index` (returning within
# `hold_left` seconds when that is not None), or a plain read when `fresh`.
Poll = Callable[[int, bool, "float | None"], Awaitable[ConsulResponse]]
Split = Callable[[Sequence[Mapping[str, Any]]], dict[str, list[Node]]]  # keys -> nodes per service


class PrefixWatch:
    """Follows every key under the prefix with one blocking query while anyone follows a service."""

    def __init__(self, poll: Poll, split: Split, hold: float) -> None:
        self._poll = poll
        self._split = split
        self._hold = hold  # how long nodes from before an agent restart stay listed
        self._nodes: dict[str, list[Node]] = {}  # per service followed, as last told
        self._everything: dict[str, list[Node]] = {}  # every service in the last answer
        self._changed: dict[str, asyncio.Event] = {}  # set (and replaced) when a service's list changes
        self._followers: Counter[str] = Counter()
        self._guards: dict[str, RestartGuard] = {}
        self._answered = asyncio.Event()  # the first answer came
        self._task: asyncio.Task[None] | None = None

    @property
    def services(self) -> int:
        """How many services are followed now."""
        return len(self._followers)

    def snapshot(self, service: str) -> list[Node] | None:
        """`service`'s nodes as the last answer had them (a lookup that needs no request), or None
        while the watch is not running or has not answered."""
        if self._task is None or not self._answered.is_set():
            return None
        return sorted(self._everything.get(service, ()), key=lambda n: n.address)

    async def follow(self, service: str) -> AsyncIterator[list[Node]]:
        """`service`'s node list now (once the first answer is in), then each change."""
        self._followers[service] += 1
        if service not in self._nodes:  # from the last answer, if any (the next one may be far off)
            self._nodes[service] = sorted(self._everything.get(service, ()), key=lambda n: n.address)
        self._start()
        told: list[Node] | None = None
        try:
            await self._answered.wait()
            while True:
                changed = self._changed.setdefault(service, asyncio.Event())
                nodes = self._nodes.get(service, [])
                if nodes != told:
                    told = nodes
                    yield nodes
                await changed.wait()
        finally:
            self._followers[service] -= 1
            if not self._followers[service]:
                del self._followers[service]
                self._nodes.pop(service, None)
                self._changed.pop(service, None)
                self._guards.pop(service, None)
            if not self._followers and self._task is not None:
                self._task.cancel()  # nobody follows anything: the query stops
                self._task = None
                self._answered.clear()

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        pauses = Pauses()
        index, fresh = 0, True  # the first read does not block: it is the starting point
        while True:
            try:
                response = await self._poll(index, fresh, self._hold_left())
            except ConsulPermissionDenied as exc:
                logger.error("consul refused the watch of the prefix: %s", exc)
                raise
            except ConsulError as exc:
                pause = pauses.after(exc)
                logger.warning("consul watch of the prefix failed (%s); again in %.1fs", exc, pause)
                await asyncio.sleep(pause)
                fresh = True
                continue
            pauses.reset()
            restarted = response.index < index
            index, fresh = max(response.index, 1), False
            self._everything = self._split(response.body or ())
            self._publish(self._everything, restarted)
            self._answered.set()

    def _hold_left(self) -> float | None:
        """Seconds until nodes held over an agent restart are let go (None: none are held)."""
        left = [t for t in (g.time_left() for g in self._guards.values()) if t is not None]
        return min(left) if left else None

    def _publish(self, by_service: dict[str, list[Node]], restarted: bool) -> None:
        for service in list(self._followers):
            guard = self._guards.setdefault(service, RestartGuard(self._hold))
            if restarted:  # a new agent: its empty answer is not the truth yet (see watching)
                guard.restarted(self._nodes.get(service, ()))
            nodes = guard.apply(sorted(by_service.get(service, ()), key=lambda n: n.address))
            if nodes != self._nodes.get(service):
                self._nodes[service] = nodes
                changed = self._changed.pop(service, None)
                if changed is not None:
                    changed.set()  # its followers wake, and wait on a new event next

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
