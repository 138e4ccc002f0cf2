"""Consul's HTTP API over one pooled aiohttp session per purpose.

py-consul's asyncio client was tried first and left: with aiohttp 3.14 it warns on construction
(deprecated `ssl_context`), an environment `CONSUL_HTTP_TOKEN` overrides the token it is given,
its session-wide total timeout also cuts blocking queries, and aiohttp's exceptions leak through.
Here every failure becomes a ConsulError, and blocking queries (watches) use a session of their own
so long polls never starve registration and renewal of connections.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import Mapping
from typing import Any

import aiohttp

from gorpc.exceptions import ConfigError
from gorpc_consul.errors import ConsulError, ConsulPermissionDenied
from gorpc_consul.options import ConsulOptions

# Consul allows 200 connections per client address by default (and answers 429 beyond): a client
# keeps few, whatever the number of services it calls (see ConsulResolver).
ORDINARY_CONNECTIONS = 3
TOKEN_HEADER = "X-Consul-Token"


class ConsulResponse:
    """A decoded answer: status, the JSON body (None if empty), and the blocking-query index."""

    __slots__ = ("body", "index", "status")

    def __init__(self, status: int, body: Any, index: int) -> None:
        self.status = status
        self.body = body
        self.index = index


class ConsulHTTP:
    """Requests to one Consul agent. Made anywhere; its sessions open inside the running loop."""

    def __init__(self, options: ConsulOptions) -> None:
        self.options = options
        self._headers = {TOKEN_HEADER: options.token} if options.token else {}
        self._ssl: ssl.SSLContext | bool = True
        if options.scheme == "https":
            try:
                self._ssl = ssl.create_default_context(cafile=options.tls_ca)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"consul tls_ca {options.tls_ca!r} cannot be used: {exc}") from exc
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    def _session(self, purpose: str) -> aiohttp.ClientSession:
        session = self._sessions.get(purpose)
        if session is None:
            # Watches: one per service watched apart, plus the one on the prefix.
            limit = self.options.prefix_watch_after + 1 if purpose == "watch" else ORDINARY_CONNECTIONS
            connector = aiohttp.TCPConnector(limit=limit, ssl=self._ssl)
            timeout = aiohttp.ClientTimeout(total=None)  # each request sets its own (see request())
            session = aiohttp.ClientSession(connector=connector, timeout=timeout, headers=self._headers)
            self._sessions[purpose] = session
        return session

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        raw_body: bytes | None = None,
        allow: tuple[int, ...] = (),
    ) -> ConsulResponse:
        """One ordinary request. Statuses in `allow` (say 404) come back instead of raising."""
        data = raw_body if raw_body is not None else (None if body is None else json.dumps(body))
        return await self._send(
            "ordinary", method, path, params or {}, data, self.options.request_timeout, allow
        )

    async def blocking_get(
        self, path: str, index: int, params: Mapping[str, str] | None = None, *, wait: float | None = None
    ) -> ConsulResponse:
        """A blocking query: returns when the result's index passes `index`, or after `wait`
        (default: the `wait` option)."""
        wait = self.options.wait if wait is None else wait
        query = {**(params or {}), "index": str(index), "wait": f"{wait:g}s"}
        # Consul adds up to wait/16 of jitter before answering an unchanged result.
        timeout = wait + wait / 16 + self.options.request_timeout
        return await self._send("watch", "GET", path, query, None, timeout, (404,))

    async def _send(
        self,
        purpose: str,
        method: str,
        path: str,
        params: Mapping[str, str],
        data: str | bytes | None,
        timeout: float,
        allow: tuple[int, ...],
    ) -> ConsulResponse:
        url = f"{self.options.base_url}{path}"
        try:
            async with asyncio.timeout(timeout):
                async with self._session(purpose).request(method, url, params=params, data=data) as resp:
                    text = await resp.text()
                    status, index = resp.status, resp.headers.get("X-Consul-Index", "0")
        except TimeoutError as exc:
            raise ConsulError(
                f"consul at {self.options.address}: {method} {path} timed out after {timeout:g}s"
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise ConsulError(f"consul at {self.options.address} is unreachable: {exc}") from exc
        if status == 403:
            raise ConsulPermissionDenied(
                f"consul at {self.options.address} refused {method} {path}: permission denied "
                f"({text.strip()}); is the token (option `token` or CONSUL_HTTP_TOKEN) set and "
                "allowed to do this?",
                status=status,
            )
        if status >= 400 and status not in allow:
            raise ConsulError(
                f"consul at {self.options.address}: {method} {path} failed with {status}: {text.strip()}",
                status=status,
            )
        return ConsulResponse(status, _json(text) if status < 400 else None, int(index or 0))

    async def close(self) -> None:
        """Close the connection pools."""
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()


def _json(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConsulError(f"consul sent a body that is not JSON: {text[:200]!r}") from exc
