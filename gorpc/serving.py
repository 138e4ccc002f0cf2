"""The health service every server hosts (unless `health = false`): `gorpc.Health`.

`Check(service)` answers SERVING, NOT_SERVING or UNKNOWN (a service this server does not host);
`Watch(service)` streams the status now and each change. The empty name (or nil) is the server as
a whole. The application sets statuses with `server.health.set(service, status)`; a graceful stop
sets every status to NOT_SERVING first, so load balancers and probes see it before calls stop.
`gorpc health TARGET [SERVICE]` asks it, for a Kubernetes exec probe.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import AsyncIterator, Callable

from gorpc.service import Service

NAME = "gorpc.Health"
WHOLE_SERVER = ""


class ServingStatus(enum.Enum):
    UNKNOWN = "UNKNOWN"
    SERVING = "SERVING"
    NOT_SERVING = "NOT_SERVING"


Listener = Callable[[str, ServingStatus], None]


class HealthStatuses:
    """The serving status of each service of one server (`server.health`). Use it on the
    server's event loop."""

    def __init__(self) -> None:
        self._statuses: dict[str, ServingStatus] = {WHOLE_SERVER: ServingStatus.SERVING}
        self._changed = asyncio.Event()  # set on a change, then replaced: watchers wait on it
        self._closed = False
        self._listeners: list[Listener] = []

    def get(self, service: str | None = WHOLE_SERVER) -> ServingStatus:
        """The status of `service` (None or "": the whole server); UNKNOWN if it is not hosted."""
        return self._statuses.get(service or WHOLE_SERVER, ServingStatus.UNKNOWN)

    def set(self, service: str | None, status: ServingStatus | str) -> None:
        """Set `service`'s status (None or "": the whole server's) and tell its watchers."""
        status = ServingStatus(status)
        name = service or WHOLE_SERVER
        if self._statuses.get(name) is status:
            return
        self._statuses[name] = status
        for listener in self._listeners:
            listener(name, status)
        self._notify()

    def set_all(self, status: ServingStatus) -> None:
        for name in list(self._statuses):
            self.set(name, status)

    def add_listener(self, listener: Listener) -> None:
        """Call `listener(service, status)` on every change (the server tells its registry)."""
        self._listeners.append(listener)

    def close(self) -> None:
        """End every watch (after the server has set NOT_SERVING: the last thing watchers see)."""
        self._closed = True
        self._notify()

    async def watch(self, service: str | None) -> AsyncIterator[ServingStatus]:
        """The status now, then each change, until `close()`."""
        changed = self._changed  # taken before the status: a change while we yield is not missed
        last = self.get(service)
        yield last
        while not self._closed:
            await changed.wait()
            changed = self._changed
            if self.get(service) is not last:
                last = self.get(service)
                yield last

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


class Health(Service):
    """Serving status of this server and its services (SERVING, NOT_SERVING, UNKNOWN)."""

    name = NAME

    def __init__(self, statuses: HealthStatuses) -> None:
        self._statuses = statuses

    async def Check(self, service: str | None) -> ServingStatus:
        """The status of `service` now; nil or "" asks about the whole server."""
        return self._statuses.get(service)

    async def Watch(self, service: str | None) -> AsyncIterator[ServingStatus]:
        """The status of `service` now, then each change, until the server stops."""
        async for status in self._statuses.watch(service):
            yield status
