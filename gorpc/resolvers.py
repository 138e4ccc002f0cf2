"""The embedded default resolver: addresses listed in the config, no registry to run.

    [plugins.static]
    services = { "helloworld.Greeter" = ["127.0.0.1:8000", { address = "127.0.0.1:8001", weight = "2" }] }

Servers in the same process that use the same StaticResolver object are added to it when they
start and removed when they stop, so tests and single-process apps get discovery for free.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from gorpc.address import parse_address
from gorpc.exceptions import ConfigError
from gorpc.types import Node, NodeStatus, ServiceInstance


class StaticResolver:
    """Nodes from `[plugins.static] services`, plus servers of this process that registered."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        options = dict(options or {})
        services = options.pop("services", {})
        if options:
            raise ConfigError(f"unknown [plugins.static] option(s) {sorted(options)}; known: ['services']")
        if not isinstance(services, Mapping):
            raise ConfigError("[plugins.static] services must be a table of service name -> addresses")
        self._configured = {
            name: [_node(name, entry) for entry in entries] for name, entries in services.items()
        }
        self._registered: dict[str, dict[str, Node]] = {}
        self._changed = asyncio.Event()
        self._closed = False

    async def register(self, instance: ServiceInstance) -> None:
        self._registered.setdefault(instance.service, {})[instance.address] = Node(
            instance.address, dict(instance.metadata)
        )
        self._notify()

    async def deregister(self, instance: ServiceInstance) -> None:
        self._registered.get(instance.service, {}).pop(instance.address, None)
        self._notify()

    async def resolve(self, service: str) -> Sequence[Node]:
        registered = self._registered.get(service, {})
        configured = [n for n in self._configured.get(service, []) if n.address not in registered]
        return configured + list(registered.values())

    async def catalog(self) -> Mapping[str, Sequence[NodeStatus]]:
        """Every configured or registered service; a static list knows nothing of health."""
        names = sorted(set(self._configured) | {n for n, nodes in self._registered.items() if nodes})
        return {name: [NodeStatus(node) for node in await self.resolve(name)] for name in names}

    async def watch(self, service: str) -> AsyncIterator[Sequence[Node]]:
        while not self._closed:
            changed = self._changed
            await changed.wait()
            if not self._closed:
                yield await self.resolve(service)

    async def close(self) -> None:
        self._closed = True
        self._notify()

    def _notify(self) -> None:
        # Wake every watcher once, then give later waits a fresh event.
        self._changed.set()
        self._changed = asyncio.Event()


def _node(service: str, entry: Any) -> Node:
    if isinstance(entry, str):
        parse_address(entry)
        return Node(entry)
    if isinstance(entry, Mapping) and isinstance(entry.get("address"), str):
        parse_address(entry["address"])
        metadata = {str(k): str(v) for k, v in entry.items() if k != "address"}
        return Node(entry["address"], metadata)
    raise ConfigError(f"[plugins.static] {service}: {entry!r} is not an address or {{address = ...}}")
