"""The `consul_dns` resolver: services found through Consul's DNS interface (SRV records).

`helloworld.Greeter` is asked for as `helloworld-greeter.service[.<datacenter>].consul` (see
`dns_label`); Consul answers with passing instances only. DNS has no blocking queries, so `watch`
asks again every `dns_poll_interval` seconds. Registration (and `catalog`) are the `consul`
resolver's: this plugin holds one and hands those calls to it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from gorpc.address import TcpAddress
from gorpc.types import Node, NodeStatus, ServiceInstance
from gorpc_consul.errors import ConsulError
from gorpc_consul.names import dns_label
from gorpc_consul.options import tcp_option
from gorpc_consul.resolver import ConsulResolver
from gorpc_consul.watching import Pauses, RestartGuard

logger = logging.getLogger("gorpc.consul")


class ConsulDnsResolver:
    """Registers like `consul`; resolves over DNS, so only instances passing their checks are used."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self._consul = ConsulResolver(options, table="plugins.consul_dns")
        self.options = self._consul.options
        self._last: dict[str, list[Node]] = {}  # what each service's watch last reported
        server = tcp_option(self.options.dns_address, "dns_address")
        self._dns = dns.asyncresolver.Resolver(configure=False)
        self._dns.nameservers = [server.host]
        self._dns.port = server.port
        self._dns.lifetime = self.options.request_timeout

    async def register(self, instance: ServiceInstance) -> None:
        await self._consul.register(instance)

    async def deregister(self, instance: ServiceInstance) -> None:
        await self._consul.deregister(instance)

    async def catalog(self) -> dict[str, list[NodeStatus]]:
        """As the `consul` resolver lists them (Consul's catalog and the KV keys)."""
        return await self._consul.catalog()

    async def close(self) -> None:
        await self._consul.close()

    def query_name(self, service: str) -> str:
        """The SRV name asked for `service`."""
        datacenter = f".{self.options.datacenter}" if self.options.datacenter else ""
        return f"{dns_label(service)}.service{datacenter}.{self.options.dns_domain}."

    async def resolve(self, service: str) -> Sequence[Node]:
        self._last[service] = nodes = await self._query(service)
        return nodes

    async def watch(self, service: str) -> AsyncIterator[Sequence[Node]]:
        """Asks again every `dns_poll_interval`. After a failed query it pauses briefly (see
        `watching`); then, since an agent that was away may be a new and still empty one, the
        nodes known before are kept until seen again or `session_ttl` passes."""
        # Compared with the last answer (the selector's first lookup, to begin with), so a change
        # between that lookup and the first poll is not missed.
        pauses = Pauses()
        guard = RestartGuard(self.options.session_ttl)
        delay, failed = self.options.dns_poll_interval, False
        while True:
            await asyncio.sleep(delay)
            try:
                answer = await self._query(service)
            except ConsulError as exc:
                delay, failed = pauses.after(exc), True
                logger.warning("consul DNS watch of %s failed (%s); again in %.1fs", service, str(exc), delay)
                continue
            if failed:
                guard.restarted(self._last.get(service, ()))
            pauses.reset()
            delay, failed = self.options.dns_poll_interval, False
            nodes = guard.apply(answer)
            if nodes != self._last.get(service):
                self._last[service] = nodes
                yield nodes

    async def _query(self, service: str) -> list[Node]:
        name = self.query_name(service)
        try:
            answer = await self._dns.resolve(name, "SRV", raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return []  # no passing instance
        except dns.exception.DNSException as exc:
            raise ConsulError(f"consul DNS at {self.options.dns_address}: {name} SRV failed: {exc}") from exc
        hosts = _addresses(answer.response.additional)
        nodes = []
        for record in answer.rrset or ():
            target = record.target.to_text()
            host = hosts.get(target) or await self._lookup_host(target)
            nodes.append(Node(str(TcpAddress(host, record.port)), {"weight": str(record.weight)}))
        return sorted(nodes, key=lambda n: n.address)

    async def _lookup_host(self, target: str) -> str:
        try:
            answer = await self._dns.resolve(target, "A")
        except dns.exception.DNSException as exc:
            raise ConsulError(f"consul DNS at {self.options.dns_address}: {target} A failed: {exc}") from exc
        return str(next(iter(answer)))


def _addresses(additional: Sequence[Any]) -> dict[str, str]:
    """Target name -> IP from the additional section that comes with Consul's SRV answers."""
    hosts: dict[str, str] = {}
    for rrset in additional:
        if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
            for record in rrset:
                hosts.setdefault(rrset.name.to_text(), record.address)
    return hosts
