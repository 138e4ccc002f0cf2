"""Server side: this process's instances in Consul, kept alive by one session and found in the catalog.

For each instance: a KV pair `<prefix>/<service>/<host:port>` acquired with the process's session
(TTL, behavior `delete`, renewed at TTL/2), so the keys of a server that dies without deregistering
vanish within 2 x TTL; and an agent service with a TCP check, for Consul's catalog, health API and
DNS. If the session is lost (expired while Consul was unreachable, or the agent restarted), the
renewer makes a new one and registers every instance again.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from gorpc.types import ServiceInstance
from gorpc_consul.errors import ConsulError
from gorpc_consul.http import ConsulHTTP
from gorpc_consul.names import agent_service_id, dns_label, instance_key, tcp_address

logger = logging.getLogger("gorpc.consul")

RENEW_RETRY = 1.0  # seconds between renewal attempts while Consul is unreachable


class Registry:
    """The instances this process has registered, and the session that holds their keys."""

    def __init__(self, http: ConsulHTTP) -> None:
        self._http = http
        self._options = http.options
        self._instances: dict[tuple[str, str], ServiceInstance] = {}
        self._session: str | None = None
        self._session_lock = asyncio.Lock()
        self._renewer: asyncio.Task[None] | None = None

    async def add(self, instance: ServiceInstance) -> None:
        """Register `instance`: its KV key under the session, and its agent service."""
        await self._write(instance, await self._ensure_session())
        self._instances[(instance.service, instance.address)] = instance
        if self._renewer is None:
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    async def remove(self, instance: ServiceInstance) -> None:
        """Deregister `instance`; the last one out destroys the session."""
        self._instances.pop((instance.service, instance.address), None)
        await self._http.request(
            "DELETE", f"/kv/{instance_key(self._options.prefix, instance.service, instance.address)}"
        )
        if tcp_address(instance.address) is not None:
            service_id = agent_service_id(instance.service, instance.address)
            await self._http.request("PUT", f"/agent/service/deregister/{service_id}", allow=(404,))
        if not self._instances:
            await self.close()

    async def close(self) -> None:
        """Stop renewing and destroy the session (its keys go with it)."""
        if self._renewer is not None:
            self._renewer.cancel()
            await asyncio.gather(self._renewer, return_exceptions=True)
            self._renewer = None
        session, self._session = self._session, None
        if session is not None:
            try:
                await self._http.request("PUT", f"/session/destroy/{session}")
            except ConsulError as exc:  # it expires on its own within 2 x TTL
                logger.warning("could not destroy consul session %s: %s", session, exc)

    # -- session ----------------------------------------------------------------------------------

    async def _ensure_session(self) -> str:
        async with self._session_lock:
            if self._session is None:
                ttl = self._options.session_ttl
                body = {"Name": "gorpc", "TTL": f"{ttl:g}s", "Behavior": "delete", "LockDelay": "0s"}
                # LockDelay 0: a server restarted at the same address may take its key back at once.
                response = await self._http.request("PUT", "/session/create", body=body)
                self._session = str(response.body["ID"])
            return self._session

    async def _renew_forever(self) -> None:
        delay = self._options.session_ttl / 2
        while True:
            await asyncio.sleep(delay)
            try:
                await self._renew()
                delay = self._options.session_ttl / 2
            except ConsulError as exc:
                logger.warning("consul session renewal failed (%s); retrying in %gs", exc, RENEW_RETRY)
                delay = RENEW_RETRY

    async def _renew(self) -> None:
        session = self._session
        if session is not None:
            response = await self._http.request("PUT", f"/session/renew/{session}", allow=(404,))
            if response.status != 404:
                return
            logger.warning(
                "consul session %s is gone; registering %d instance(s) again", session, len(self._instances)
            )
            if self._session == session:
                self._session = None
        session = await self._ensure_session()
        for instance in list(self._instances.values()):
            await self._write(instance, session)

    # -- one instance -----------------------------------------------------------------------------

    async def _write(self, instance: ServiceInstance, session: str) -> None:
        key = instance_key(self._options.prefix, instance.service, instance.address)
        value = json.dumps({"address": instance.address, "metadata": dict(instance.metadata)}).encode()
        if not await self._acquire(key, value, session):
            # Held by an earlier process at this very address (we hold its port now): it is dead.
            await self._release_stale(key)
            if not await self._acquire(key, value, session):
                raise ConsulError(f"cannot acquire consul key {key!r}: another session holds it")
        await self._register_agent_service(instance)

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
            "Meta": {**metadata, "gorpc_service": instance.service},
            "Check": {
                "TCP": str(address),
                "Interval": f"{self._options.check_interval:g}s",
                "Timeout": f"{self._options.check_interval:g}s",
                "DeregisterCriticalServiceAfter": f"{self._options.deregister_critical_after:g}s",
            },
        }
        weight = metadata.get("weight")
        if weight is not None and weight.isdigit() and int(weight) > 0:
            body["Weights"] = {"Passing": int(weight), "Warning": 1}  # carried to DNS SRV weights
        await self._http.request("PUT", "/agent/service/register", body=body)
