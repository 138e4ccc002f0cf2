"""The names OpenTelemetry's RPC semantic conventions give a call, shared by spans and metrics.

`rpc.system` is "gorpc"; `rpc.service` and `rpc.method` are the two parts of `/service/Method`;
`rpc.response.status_code` is the gorpc status code's name ("OK", "DEADLINE_EXCEEDED", ...).
"""

from __future__ import annotations

import asyncio

from gorpc.address import TcpAddress, parse_address
from gorpc.exceptions import ConfigError, RPCError, StatusCode

SYSTEM = "gorpc"
OTHER = "_OTHER"  # the conventions' name for a method the server does not know (bounded labels)
_REMOTE_ERROR = StatusCode.REMOTE_ERROR.name
_CACHED = 4096  # paths whose names are kept; past this (hostile paths, say) they are made per call

_names: dict[str, tuple[str, dict[str, str]]] = {}


def call_attributes(path: str) -> tuple[str, dict[str, str]]:
    """A span name (`service/Method`) and the call's attributes for `path`. Callers must not change
    the dict (it is shared)."""
    found = _names.get(path)
    if found is None:
        service, _, method = path[1:].partition("/")
        found = (f"{service}/{method}", {"rpc.system": SYSTEM, "rpc.service": service, "rpc.method": method})
        if len(_names) < _CACHED:
            _names[path] = found
    return found


def status_name(exc: BaseException) -> str:
    """The status a failure is reported with: an RPCError's own code, REMOTE_ERROR for a handler's
    exception, CANCELLED for a cancellation."""
    if isinstance(exc, RPCError):
        return exc.code.name
    if isinstance(exc, asyncio.CancelledError):
        return StatusCode.CANCELLED.name
    return _REMOTE_ERROR


def host_and_port(address: str) -> tuple[str, int | None]:
    """`server.address` and `server.port` of a gorpc address (a unix socket's path, no port)."""
    try:
        parsed = parse_address(address)
    except ConfigError:
        return address, None
    if isinstance(parsed, TcpAddress):
        return parsed.host, parsed.port
    return str(parsed), None
