"""The `consul` resolver: servers register in Consul, clients find them through KV blocking queries."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

from gorpc.address import TcpAddress
from gorpc.types import Node, NodeStatus, ServiceInstance
from gorpc_consul.errors import ConsulError, ConsulPermissionDenied
from gorpc_consul.http import ConsulHTTP, ConsulResponse
from gorpc_consul.names import service_prefix
from gorpc_consul.options import ConsulOptions
from gorpc_consul.prefix_watch import PrefixWatch
from gorpc_consul.registry import Registry
from gorpc_consul.watching import Pauses, RestartGuard

logger = logging.getLogger("gorpc.consul")

REGISTER_BACKOFF_MAX = 2.0


class ConsulResolver:
    """Registers this process's servers in Consul and resolves services from it.

    Each service's nodes are the values under `<prefix>/<service>/`; `watch()` follows them with
    blocking queries, so a change reaches clients as soon as Consul has it: one query per service
    for the first `prefix_watch_after` services watched, then one query on the whole prefix for all
    the others (see `prefix_watch`), so a client's connections to Consul stay few (at most
    `prefix_watch_after` + 1 for watches, 3 for everything else) however many services it calls.
    """

    def __init__(self, options: Mapping[str, Any] | None = None, *, table: str = "plugins.consul") -> None:
        # `table` names the config table in option errors (consul_dns passes its own).
        self.options = ConsulOptions.from_mapping(options or {}, table)
        self._http = ConsulHTTP(self.options)
        self._registry = Registry(self._http)
        self._index: dict[str, int] = {}  # the index each service's last answer had
        self._last: dict[str, list[Node]] = {}  # what each service's watch last reported
        self._apart: set[str] = set()  # services watched with a query of their own
        self._prefix = PrefixWatch(
            self._poll_prefix, _by_service(self.options.prefix), self.options.session_ttl
        )

    # -- server side ------------------------------------------------------------------------------

    async def register(self, instance: ServiceInstance) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.options.register_retry
        delay = 0.1
        while True:
            try:
                return await self._registry.add(instance)
            except ConsulPermissionDenied:
                raise  # retrying cannot fix a token
            except ConsulError as exc:
                left = give_up - loop.time()
                if left <= 0:
                    raise
                pause = min(delay, left)
                logger.warning("registering %s failed (%s); retrying in %.1fs", instance.service, exc, pause)
                await asyncio.sleep(pause)
                delay = min(delay * 2, REGISTER_BACKOFF_MAX)

    async def deregister(self, instance: ServiceInstance) -> None:
        await self._registry.remove(instance)

    async def set_serving(self, instance: ServiceInstance, serving: bool) -> None:
        await self._registry.set_serving(instance, serving)

    # -- client side ------------------------------------------------------------------------------

    async def resolve(self, service: str) -> Sequence[Node]:
        known = self._prefix.snapshot(service)  # the prefix watch has it: no request needed
        nodes = known if known is not None else self._remember(service, await self._read(service))
        self._last[service] = nodes
        return nodes

    async def watch(self, service: str) -> AsyncIterator[Sequence[Node]]:
        """Each change of `service`'s nodes (see the class)."""
        if len(self._apart) >= self.options.prefix_watch_after:
            async for nodes in self._prefix.follow(service):
                if nodes != self._last.get(service):
                    self._last[service] = nodes
                    yield nodes
            return
        self._apart.add(service)
        try:
            async for changed in self._watch_apart(service):
                yield changed
        finally:
            self._apart.discard(service)

    async def _watch_apart(self, service: str) -> AsyncIterator[Sequence[Node]]:
        """Each change of `service`'s nodes, through blocking queries. Consul's errors never end
        it: it pauses briefly (see `watching`) and asks again, without blocking the first time,
        since the agent may be a new one whose index is lower than ours."""
        pauses = Pauses()
        guard = RestartGuard(self.options.session_ttl)
        fresh = False
        while True:
            index = self._index.get(service, 0)
            try:
                response = await self._poll(service, index, fresh, guard.time_left())
            except ConsulPermissionDenied:
                raise  # asking again cannot fix a token
            except ConsulError as exc:
                pause = pauses.after(exc)
                logger.warning("consul watch of %s failed (%s); again in %.1fs", service, str(exc), pause)
                await asyncio.sleep(pause)
                fresh = True
                continue
            pauses.reset()
            fresh = False
            if response.index < index:
                # A new agent, or a restored snapshot: Consul's rule is to start over from its index.
                guard.restarted(self._last.get(service, ()))
            nodes = guard.apply(self._remember(service, response))
            if nodes != self._last.get(service):
                self._last[service] = nodes
                yield nodes

    async def _poll_prefix(self, index: int, fresh: bool, hold_left: float | None) -> ConsulResponse:
        path = f"/kv/{self.options.prefix}/"
        if fresh:
            return await self._http.request("GET", path, params=self._params(), allow=(404,))
        wait = self.options.wait if hold_left is None else min(self.options.wait, max(hold_left, 0.1))
        return await self._http.blocking_get(path, index, self._params(), wait=wait)

    async def _read(self, service: str) -> ConsulResponse:
        return await self._http.request("GET", self._path(service), params=self._params(), allow=(404,))

    async def _poll(self, service: str, index: int, fresh: bool, hold_left: float | None) -> ConsulResponse:
        """A blocking query from `index`, or a plain read when `fresh`; while nodes from before a
        restart are held, it returns by the time they are to be let go."""
        if fresh:
            return await self._read(service)
        wait = self.options.wait if hold_left is None else min(self.options.wait, max(hold_left, 0.1))
        return await self._http.blocking_get(self._path(service), index, self._params(), wait=wait)

    async def catalog(self) -> dict[str, list[NodeStatus]]:
        """Every service under the prefix with its nodes and their health checks' verdict.

        Nodes come from the KV keys (those in rotation) and from Consul's catalog (agent services
        registered under this prefix), so an instance whose check failed, and whose key went with
        its session, still shows, as critical.
        """
        listed: dict[str, dict[str, NodeStatus]] = {}
        prefix = f"/kv/{self.options.prefix}/"
        keys = await self._http.request("GET", prefix, params=self._params(), allow=(404,))
        for entry in keys.body or ():
            service = str(entry["Key"])[len(self.options.prefix) + 1 :].split("/", 1)[0]
            for node in _nodes([entry]):
                listed.setdefault(service, {})[node.address] = NodeStatus(node)
        dc = self._datacenter()
        labels = (await self._http.request("GET", "/catalog/services", params=dc)).body or {}
        answers = await asyncio.gather(
            *(self._http.request("GET", f"/health/service/{label}", params=dc) for label in sorted(labels))
        )
        for answer in answers:
            for entry in answer.body or ():
                instance = self._catalog_instance(entry)
                if instance is not None:
                    service, status = instance
                    known = listed.setdefault(service, {}).get(status.node.address)
                    node = known.node if known is not None else status.node
                    listed[service][node.address] = NodeStatus(node, status.health)
        return {name: [nodes[a] for a in sorted(nodes)] for name, nodes in sorted(listed.items())}

    def _catalog_instance(self, entry: Mapping[str, Any]) -> tuple[str, NodeStatus] | None:
        """(service, node with health) for a /health/service entry registered by gorpc under our prefix."""
        service = entry.get("Service") or {}
        meta = service.get("Meta") or {}
        if meta.get("gorpc_prefix") != self.options.prefix or "gorpc_service" not in meta:
            return None
        host = service.get("Address") or (entry.get("Node") or {}).get("Address", "")
        address = str(TcpAddress(host, int(service.get("Port", 0))))
        metadata = {k: str(v) for k, v in meta.items() if not k.startswith("gorpc_")}
        statuses = {check.get("Status") for check in entry.get("Checks") or ()}
        worst = [s for s in ("critical", "warning", "passing") if s in statuses]
        health = worst[0] if worst else "unknown"
        return str(meta["gorpc_service"]), NodeStatus(Node(address, metadata), health)

    def _path(self, service: str) -> str:
        return f"/kv/{service_prefix(self.options.prefix, service)}"

    def _params(self) -> dict[str, str]:
        stale = {"stale": ""} if self.options.stale else {}  # any Consul server may answer
        return {"recurse": "true", **self._datacenter(), **stale}

    def _datacenter(self) -> dict[str, str]:
        """The `dc` query parameter, when services are looked up in another datacenter."""
        return {"dc": self.options.datacenter} if self.options.datacenter else {}

    def _remember(self, service: str, response: ConsulResponse) -> list[Node]:
        """The nodes in `response`; its index is where the next blocking query starts."""
        self._index[service] = max(response.index, 1)  # an index of 0 would not block
        return sorted(_nodes(response.body or ()), key=lambda n: n.address)

    async def close(self) -> None:
        await self._prefix.close()
        await self._registry.close()
        await self._http.close()


def _nodes(entries: Sequence[Mapping[str, Any]]) -> list[Node]:
    nodes = []
    for entry in entries:
        try:
            value = json.loads(base64.b64decode(entry["Value"] or ""))
            metadata = {str(k): str(v) for k, v in (value.get("metadata") or {}).items()}
            nodes.append(Node(str(value["address"]), metadata))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            logger.warning("ignoring consul key %s: not a gorpc instance (%s)", entry.get("Key"), exc)
    return nodes


def _by_service(prefix: str) -> Callable[[Sequence[Mapping[str, Any]]], dict[str, list[Node]]]:
    """Splits the keys under `<prefix>/` into nodes per service."""
    start = len(prefix) + 1

    def split(entries: Sequence[Mapping[str, Any]]) -> dict[str, list[Node]]:
        grouped: dict[str, list[Mapping[str, Any]]] = {}
        for entry in entries:
            service = str(entry.get("Key", ""))[start:].split("/", 1)[0]
            grouped.setdefault(service, []).append(entry)
        return {service: _nodes(keys) for service, keys in grouped.items()}

    return split
