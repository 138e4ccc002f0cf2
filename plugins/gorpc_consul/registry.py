"""Server side: this process's instances in Consul, each address held by a session tied to its health.

For each instance: an agent service with a TCP check (for Consul's catalog, health API and DNS)
and a TTL check that follows the server's gorpc.Health status for the service (`set_serving`),
and a KV pair `<prefix>/<service>/<host:port>` acquired with the session of its address. A session
has behavior `delete` and is bound to the agent's TCP check of that address, so when a server dies
without deregistering, Consul deletes its keys once the check fails (about `check_interval`), and
in any case within 2 x TTL. If a session is lost (the check failed, it expired while Consul was
unreachable, or the agent restarted), the renewer makes a new one once the check passes again and
writes the address's keys back.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

from gorpc.types import ServiceInstance
from gorpc_consul.errors import ConsulError
from gorpc_consul.http import ConsulHTTP
from gorpc_consul.names import agent_service_id, dns_label, instance_key, tcp_address

logger = logging.getLogger("gorpc.consul")

RENEW_RETRY = 1.0  # seconds between renewal attempts while Consul is unreachable or the check fails


@dataclass
class _Address:
    """The instances served at one address, and the session that holds their keys."""

    instances: dict[str, ServiceInstance] = field(default_factory=dict)  # by service name
    not_serving: set[str] = field(default_factory=set)  # services whose health is NOT_SERVING
    session: str | None = None
    check: str | None = None  # the agent check the session is bound to (None: Unix socket)


class Registry:
    """The instances this process has registered, grouped by address, each group with a session."""

    def __init__(self, http: ConsulHTTP) -> None:
        self._http = http
        self._options = http.options
        self._addresses: dict[str, _Address] = {}
        self._lock = asyncio.Lock()  # one writer at a time: registrations and the renewer
        self._renewer: asyncio.Task[None] | None = None

    async def add(self, instance: ServiceInstance) -> None:
        """Register `instance`: its agent service first, then its key under its address's session."""
        async with self._lock:
            group = self._addresses.setdefault(instance.address, _Address())
            try:
                await self._register_agent_service(instance)
                if group.session is None:
                    group.check = _check_id(instance)
                    group.session = await self._create_session(group.check)
                await self._write_key(instance, group.session)
            except BaseException:
                if not group.instances:
                    await self._drop(instance.address)
                raise
            group.instances[instance.service] = instance
        if self._renewer is None:
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    async def remove(self, instance: ServiceInstance) -> None:
        """Deregister `instance`; the last one at its address destroys that address's session."""
        async with self._lock:
            group = self._addresses.get(instance.address)
            if group is not None:
                group.instances.pop(instance.service, None)
                if not group.instances:
                    await self._drop(instance.address)  # before the check goes: keys go with it
            await self._http.request(
                "DELETE", f"/kv/{instance_key(self._options.prefix, instance.service, instance.address)}"
            )
            if tcp_address(instance.address) is not None:
                service_id = agent_service_id(instance.service, instance.address)
                await self._http.request("PUT", f"/agent/service/deregister/{service_id}", allow=(404,))
        if not self._addresses:
            await self._stop_renewing()

    async def set_serving(self, instance: ServiceInstance, serving: bool) -> None:
        """Follow the server's health status: the instance's TTL check passes or fails (Consul's
        health API and DNS follow it), and its key is deleted or written back, so clients watching
        the prefix drop or add it at once."""
        async with self._lock:
            group = self._addresses.get(instance.address)
            if group is None or instance.service not in group.instances:
                return
            if serving:
                group.not_serving.discard(instance.service)
            else:
                group.not_serving.add(instance.service)
            await self._report(instance, serving)
            key = instance_key(self._options.prefix, instance.service, instance.address)
            if not serving:
                await self._http.request("DELETE", f"/kv/{key}")
            elif group.session is not None:
                await self._write_key(instance, group.session)

    async def _report(self, instance: ServiceInstance, serving: bool) -> None:
        if tcp_address(instance.address) is not None:
            check = _serving_check_id(instance)
            await self._http.request(
                "PUT", f"/agent/check/{'pass' if serving else 'fail'}/{check}", allow=(404,)
            )

    async def close(self) -> None:
        """Stop renewing and destroy every session (their keys go with them)."""
        await self._stop_renewing()
        async with self._lock:
            for address in list(self._addresses):
                await self._drop(address)

    async def _stop_renewing(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
            self._renewer = None

    async def _drop(self, address: str) -> None:
        group = self._addresses.pop(address, None)
        if group is not None and group.session is not None:
            try:
                await self._http.request("PUT", f"/session/destroy/{group.session}")
            except ConsulError as exc:  # it ends on its own within 2 x TTL
                logger.warning("could not destroy consul session %s: %s", group.session, exc)

    # -- sessions ---------------------------------------------------------------------------------

    async def _create_session(self, check: str | None) -> str:
        ttl = self._options.session_ttl
        # LockDelay 0: a server restarted at the same address may take its key back at once.
        body: dict[str, Any] = {"Name": "gorpc", "TTL": f"{ttl:g}s", "Behavior": "delete", "LockDelay": "0s"}
        if check is not None:
            body["NodeChecks"] = ["serfHealth"]
            body["ServiceChecks"] = [{"ID": check}]
        response = await self._http.request("PUT", "/session/create", body=body)
        return str(response.body["ID"])

    async def _renew_forever(self) -> None:
        delay = self._options.session_ttl / 2
        while True:
            await asyncio.sleep(delay)
            try:
                async with self._lock:
                    lost = await self._renew_all()
                delay = RENEW_RETRY if lost else self._options.session_ttl / 2
            except ConsulError as exc:
                logger.warning("consul session renewal failed (%s); retrying in %gs", exc, RENEW_RETRY)
                delay = RENEW_RETRY

    async def _renew_all(self) -> bool:
        """Renew each session, and make a new one for any that is gone. Returns whether one is still
        missing (its check is failing), so the renewer comes back sooner."""
        missing = False
        for address, group in self._addresses.items():
            missing |= not await self._renew(address, group)
            for instance in group.instances.values():  # the serving check's TTL, kept alive
                await self._report(instance, instance.service not in group.not_serving)
        return missing

    async def _renew(self, address: str, group: _Address) -> bool:
        """Renew the group's session, or make a new one; False while its check is failing."""
        if group.session is not None:
            response = await self._http.request("PUT", f"/session/renew/{group.session}", allow=(404,))
            if response.status != 404:
                return True
            logger.warning("consul session for %s is gone; registering %s again", address, _names(group))
            group.session = None
        return await self._restore(group)

    async def _restore(self, group: _Address) -> bool:
        """Register the group's instances again under a new session, once its check passes."""
        for instance in group.instances.values():
            service_id = agent_service_id(instance.service, instance.address)
            if tcp_address(instance.address) is not None:
                known = await self._http.request("GET", f"/agent/service/{service_id}", allow=(404,))
                if known.status == 404:  # the agent restarted empty
                    await self._register_agent_service(instance)
        try:
            group.session = await self._create_session(group.check)
        except ConsulError as exc:
            if "critical" not in str(exc):
                raise
            return False  # unhealthy: keep out of rotation until the check passes again
        for instance in group.instances.values():
            if instance.service not in group.not_serving:
                await self._write_key(instance, group.session)
        return True

    # -- one instance -----------------------------------------------------------------------------

    async def _write_key(self, instance: ServiceInstance, session: str) -> None:
        key = instance_key(self._options.prefix, instance.service, instance.address)
        value = json.dumps({"address": instance.address, "metadata": dict(instance.metadata)}).encode()
        if not await self._acquire(key, value, session):
            # Held by an earlier process at this very address (we hold its port now): it is dead.
            await self._release_stale(key)
            if not await self._acquire(key, value, session):
                raise ConsulError(f"cannot acquire consul key {key!r}: another session holds it")

    async def _acquire(self, key: str, value: bytes, session: str) -> bool:
        response = await self._http.request("PUT", f"/kv/{key}", params={"acquire": session}, raw_body=value)
        return response.body is True

    async def _release_stale(self, key: str) -> None:
        response = await self._http.request("GET", f"/kv/{key}", allow=(404,))
        for entry in response.body or ():
            holder = entry.get("Session")
            if holder:
                logger.warning("consul key %s is held by stale session %s; destroying it", key, holder)
                await self._http.request("PUT", f"/session/destroy/{holder}")

    async def _register_agent_service(self, instance: ServiceInstance) -> None:
        address = tcp_address(instance.address)
        if address is None:
            return  # a Unix socket: findable through KV only; no TCP check can reach it
        metadata = dict(instance.metadata)
        body: dict[str, Any] = {
            "ID": agent_service_id(instance.service, instance.address),
            "Name": dns_label(instance.service),
            "Address": address.host,
            "Port": address.port,
            "Tags": [t.strip() for t in metadata.get("tags", "").split(",") if t.strip()],
            "Meta": {**metadata, "gorpc_service": instance.service, "gorpc_prefix": self._options.prefix},
            "Checks": [
                {
                    "CheckID": _check_id(instance),
                    "Name": "gorpc: the server accepts connections",
                    "TCP": str(address),
                    "Interval": f"{self._options.check_interval:g}s",
                    "Timeout": f"{self._options.check_interval:g}s",
                    "DeregisterCriticalServiceAfter": f"{self._options.deregister_critical_after:g}s",
                    # The server listens before it registers: start passing, so a session can bind.
                    "Status": "passing",
                },
                {
                    # The server's gorpc.Health status for this service, reported by the server
                    # (set_serving) and refreshed by the renewer; a hung process lets it lapse.
                    "CheckID": _serving_check_id(instance),
                    "Name": "gorpc: the service is serving (gorpc.Health)",
                    "TTL": f"{self._options.session_ttl:g}s",
                    "Status": "passing",
                },
            ],
        }
        weight = metadata.get("weight")
        if weight is not None and weight.isdigit() and int(weight) > 0:
            body["Weights"] = {"Passing": int(weight), "Warning": 1}  # carried to DNS SRV weights
        await self._http.request("PUT", "/agent/service/register", body=body)


def _check_id(instance: ServiceInstance) -> str | None:
    """The id Consul gives the single check of the instance's agent service."""
    if tcp_address(instance.address) is None:
        return None
    return f"service:{agent_service_id(instance.service, instance.address)}"


def _serving_check_id(instance: ServiceInstance) -> str:
    return f"service:{agent_service_id(instance.service, instance.address)}:serving"


def _names(group: _Address) -> str:
    return ", ".join(sorted(group.instances)) or "nothing"
