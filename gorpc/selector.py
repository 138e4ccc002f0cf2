"""Selecting a node for a call: a cached node list per service, kept fresh by the resolver's watch.

The call path never asks the resolver: the first call for a service waits for one resolution,
then a background watch replaces the list as it changes. If the watch fails, the last good list
keeps serving while the watch retries with backoff. Nodes ejected by passive health checks
(`gorpc.health`) are left out until their ejection ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence

from gorpc.context import CallContext
from gorpc.exceptions import NoNodesAvailable, RPCError, Unavailable
from gorpc.health import Ejections
from gorpc.types import Balancer, LoadAwareBalancer, Node, Resolver

logger = logging.getLogger("gorpc.selector")

WATCH_BACKOFF_START = 0.1
WATCH_BACKOFF_MAX = 5.0  # a Consul leader election takes about 3 s; do not sleep far past it


class _ServiceEntry:
    __slots__ = (
        "balancer",
        "first",
        "load_aware",
        "nodes",
        "usable",
        "usable_of",
        "usable_version",
        "used",
        "watcher",
    )

    def __init__(self, balancer: Balancer) -> None:
        self.balancer = balancer
        self.load_aware = isinstance(balancer, LoadAwareBalancer)
        self.nodes: Sequence[Node] | None = None
        # `nodes` less the ejected ones, cached until the list or the ejections change.
        self.usable: Sequence[Node] = ()
        self.usable_of: Sequence[Node] | None = None
        self.usable_version = -1
        self.first: asyncio.Task[None] | None = None
        self.watcher: asyncio.Task[None] | None = None
        self.used = True  # a call picked from it since the last sweep (see Selector._sweep)


class Selector:
    """Picks a node per call from a per-service node cache, with one balancer per service."""

    def __init__(
        self,
        resolver: Resolver,
        balancer_factory: Callable[[], Balancer],
        ejections: Ejections | None = None,
        watch_expiry: float | None = None,
    ) -> None:
        self.resolver = resolver
        self._balancer_factory = balancer_factory
        self._ejections = ejections
        self._entries: dict[str, _ServiceEntry] = {}
        # A service no call has picked for this long stops being watched (None: never).
        self._watch_expiry = watch_expiry
        self._sweeper: asyncio.Task[None] | None = None

    async def select(self, service: str, ctx: CallContext, avoid: Collection[str] = ()) -> Node:
        """A node for this call, not one of the addresses in `avoid` (those already tried).

        Raises NoNodesAvailable, or Unavailable if the first lookup fails.
        """
        node = self.pick(service, ctx, avoid)
        if node is not None:
            return node
        entry = await self._resolve_first(service)
        return self._pick(service, entry, ctx, avoid)

    def pick(self, service: str, ctx: CallContext, avoid: Collection[str] = ()) -> Node | None:
        """`select` without waiting: None if the service has not been resolved yet (the call path's
        fast path, which costs no coroutine)."""
        entry = self._entries.get(service)
        if entry is None or entry.nodes is None:
            return None
        return self._pick(service, entry, ctx, avoid)

    def _pick(self, service: str, entry: _ServiceEntry, ctx: CallContext, avoid: Collection[str]) -> Node:
        entry.used = True
        nodes = self._usable(entry)
        if not nodes:
            raise NoNodesAvailable(service, "the resolver lists no instance")
        if avoid:
            nodes = [n for n in nodes if n.address not in avoid]
            if not nodes:
                raise NoNodesAvailable(service, f"every node has been tried ({', '.join(sorted(avoid))})")
        return entry.balancer.pick(nodes, ctx)

    def cached(self, service: str) -> list[Node]:
        """The node list held for `service` now (empty before its first lookup)."""
        entry = self._entries.get(service)
        return list(entry.nodes or ()) if entry is not None else []

    def done(self, service: str, node: Node, ctx: CallContext) -> None:
        """Tell a load-aware balancer that the call it placed on `node` has ended."""
        entry = self._entries.get(service)
        if entry is not None and entry.load_aware:
            entry.balancer.done(node, ctx)  # type: ignore[attr-defined]

    def _usable(self, entry: _ServiceEntry) -> Sequence[Node]:
        nodes = entry.nodes or ()
        ejections = self._ejections
        if ejections is None or not ejections.any():
            return nodes
        ejections.expire()
        if entry.usable_of is not nodes or entry.usable_version != ejections.version:
            entry.usable = ejections.available(nodes)
            entry.usable_of, entry.usable_version = nodes, ejections.version
        return entry.usable

    async def _resolve_first(self, service: str) -> _ServiceEntry:
        entry = self._entries.get(service)
        if entry is None:
            entry = self._entries[service] = _ServiceEntry(self._balancer_factory())
        if entry.first is None:
            entry.first = asyncio.get_running_loop().create_task(self._resolve(service, entry))
            entry.first.add_done_callback(_retrieve_exception)
        await asyncio.shield(entry.first)  # one caller's timeout must not cancel everyone's lookup
        return entry

    async def _resolve(self, service: str, entry: _ServiceEntry) -> None:
        try:
            nodes = await self.resolver.resolve(service)
        except RPCError:
            entry.first = None  # the next call tries again
            raise
        except Exception as exc:
            entry.first = None
            raise Unavailable(f"cannot resolve service {service!r}: {exc}") from exc
        entry.nodes = list(nodes)
        entry.watcher = asyncio.get_running_loop().create_task(self._watch(service, entry))
        if self._watch_expiry is not None and self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep(self._watch_expiry))

    async def _sweep(self, expiry: float) -> None:
        """Every `expiry` / 2 seconds, stop watching the services no call picked since the last
        sweep: a client that called a thousand services once holds no thousand watches. The next
        call of such a service looks it up again."""
        while True:
            await asyncio.sleep(expiry / 2)
            for service, entry in list(self._entries.items()):
                if entry.used or entry.watcher is None:
                    entry.used = False
                    continue
                del self._entries[service]
                entry.watcher.cancel()
                logger.debug("stopped watching %r: not called for %.0fs", service, expiry)

    async def _watch(self, service: str, entry: _ServiceEntry) -> None:
        backoff = WATCH_BACKOFF_START
        while True:
            changes = self.resolver.watch(service)
            try:
                async for nodes in changes:
                    entry.nodes = list(nodes)
                    backoff = WATCH_BACKOFF_START
                return  # the resolver has no more changes to report
            except Exception as exc:
                logger.warning(
                    "watch of %r failed (%s); keeping %d cached node(s), retry in %.1fs",
                    service,
                    exc,
                    len(entry.nodes or ()),
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, WATCH_BACKOFF_MAX)
            finally:
                # Closed now, not when collected: a resolver frees what the watch held (a Consul
                # query slot) as soon as the watch stops, expired or cancelled.
                aclose = getattr(changes, "aclose", None)
                if aclose is not None:
                    await aclose()

    async def close(self) -> None:
        """Stop every watch."""
        tasks = [t for e in self._entries.values() for t in (e.first, e.watcher) if t is not None]
        if self._sweeper is not None:
            tasks.append(self._sweeper)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._entries.clear()


def _retrieve_exception(task: asyncio.Task[None]) -> None:
    # Every waiter may have given up (timed out) by the time the lookup fails: nothing to log then.
    if not task.cancelled():
        task.exception()
