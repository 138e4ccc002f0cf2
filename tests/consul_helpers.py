"""Fixtures and helpers for tests against a real Consul agent (started per module or per test)."""

from __future__ import annotations

import asyncio
from typing import Any

from gorpc import Server, Service

SERVICE = "test.Where"


class Where(Service):
    """Answers with its label, so tests can see which server took a call."""

    name = SERVICE

    def __init__(self, label: str) -> None:
        self.label = label
        self.calls = 0

    async def Which(self, req: Any) -> str:
        self.calls += 1
        return self.label


def consul_plugins(http_address: str, **options: Any) -> dict[str, dict[str, Any]]:
    return {"consul": {"address": http_address, **options}}


async def start_where(label: str, http_address: str, *, resolver: str = "consul", **options: Any) -> Server:
    server = Server(
        address="127.0.0.1:0",
        resolver=resolver,
        metadata=options.pop("metadata", {"weight": "1"}),
        plugins=consul_plugins(http_address, **options),
    )
    server.register(Where(label))
    await server.start()
    return server


async def stop_all(*servers: Server | None) -> None:
    await asyncio.gather(*(s.stop() for s in servers if s is not None))
