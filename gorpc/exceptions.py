"""The gorpc error tree.

    GorpcError
    ├── ConfigError (ValueError)              bad configuration, found before anything runs
    │   └── PluginNotFound (LookupError)      an unknown plugin name; lists the known ones
    └── RPCError                              a call failed; `.code` is a stable StatusCode
        ├── Cancelled (asyncio.CancelledError is *not* a parent: it must not be swallowed)
        ├── DeadlineExceeded (TimeoutError)   the caller's timeout passed
        ├── Unavailable (ConnectionError)     no connection, connection lost, server stopping
        │   ├── ConnectionFailed              connecting failed, or the connection was lost
        │   └── NoNodesAvailable (LookupError) a resolver knows no node for the service
        ├── MethodNotFound (LookupError)      unknown service or method
        ├── InvalidRequest (ValueError)       the request could not be decoded or was refused
        ├── MessageTooLarge                   a message over the size limit, either side
        ├── Unauthenticated                   no valid credentials came with the call
        ├── PermissionDenied                  valid credentials, but not for this call
        ├── RemoteError                       a handler raised: carries its type name and message
        ├── InternalError                     the server failed outside the handler (e.g. encoding)
        └── ProtocolError                     a malformed frame: a bug or a hostile peer

Expected outcomes a caller handles (deadline, unavailable, not found, a handler's error) sit apart
from ProtocolError. Each class has one code; the code travels on the wire and the client raises
the matching class, so `except gorpc.DeadlineExceeded` works the same on both sides.
"""

from __future__ import annotations

import enum
from typing import ClassVar


class StatusCode(enum.IntEnum):
    """Stable status codes carried in every response. Numbers never change meaning."""

    OK = 0
    CANCELLED = 1
    REMOTE_ERROR = 2
    INVALID_REQUEST = 3
    DEADLINE_EXCEEDED = 4
    METHOD_NOT_FOUND = 5
    PERMISSION_DENIED = 7
    MESSAGE_TOO_LARGE = 8
    INTERNAL = 13
    UNAVAILABLE = 14
    PROTOCOL_ERROR = 15
    UNAUTHENTICATED = 16


class GorpcError(Exception):
    """Base of every error gorpc raises."""


class ConfigError(GorpcError, ValueError):
    """The configuration is invalid; raised when it is built, never mid-call."""


class PluginNotFound(ConfigError, LookupError):
    """No plugin of that name is installed in the entry-point group."""

    def __init__(self, group: str, name: str, known: list[str]) -> None:
        self.group = group
        self.name = name
        self.known = known
        listed = ", ".join(known) if known else "none installed"
        super().__init__(f"unknown {group} plugin {name!r}; known: {listed}")


class RPCError(GorpcError):
    """A call failed. `code` says how; `message` is human-readable."""

    code: ClassVar[StatusCode] = StatusCode.REMOTE_ERROR

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"[{self.code.name}] {self.message}"


class Cancelled(RPCError):
    """The call was cancelled before it completed."""

    code = StatusCode.CANCELLED


class DeadlineExceeded(RPCError, TimeoutError):
    """The call's deadline passed before a reply arrived."""

    code = StatusCode.DEADLINE_EXCEEDED


class Unavailable(RPCError, ConnectionError):
    """The server could not be reached, the connection was lost, or the server is stopping.

    `unprocessed` is True when the request provably never reached a handler (it was never sent, or
    the server refused it unread), so retrying it elsewhere is safe whatever the method does.
    """

    code = StatusCode.UNAVAILABLE

    def __init__(self, message: str = "", *, unprocessed: bool = False) -> None:
        super().__init__(message)
        self.unprocessed = unprocessed


class ConnectionFailed(Unavailable):
    """Connecting to a node failed (`unprocessed`), or its connection was lost mid-call."""


class NoNodesAvailable(Unavailable, LookupError):
    """The resolver knows no node for the service."""

    def __init__(self, service: str, detail: str = "") -> None:
        self.service = service
        suffix = f": {detail}" if detail else ""
        super().__init__(f"no nodes available for service {service!r}{suffix}", unprocessed=True)


class MethodNotFound(RPCError, LookupError):
    """The server hosts no such service or method."""

    code = StatusCode.METHOD_NOT_FOUND


class InvalidRequest(RPCError, ValueError):
    """The request could not be decoded, or a handler refused it as invalid."""

    code = StatusCode.INVALID_REQUEST


class MessageTooLarge(RPCError):
    """A message was over the configured size limit (after decompression, if any)."""

    code = StatusCode.MESSAGE_TOO_LARGE


class Unauthenticated(RPCError):
    """The call carried no valid credentials (see gorpc.auth)."""

    code = StatusCode.UNAUTHENTICATED


class PermissionDenied(RPCError):
    """The caller is known but may not make this call."""

    code = StatusCode.PERMISSION_DENIED


class InternalError(RPCError):
    """The server failed outside the handler, for example encoding the reply."""

    code = StatusCode.INTERNAL


class ProtocolError(RPCError):
    """A frame broke the wire protocol; the connection that carried it is closed."""

    code = StatusCode.PROTOCOL_ERROR


class RemoteError(RPCError):
    """A handler raised an exception that is not an RPCError.

    The caller gets the exception's type name and message; the traceback stays in the server log.
    """

    code = StatusCode.REMOTE_ERROR

    def __init__(self, message: str = "", *, type_name: str = "Exception") -> None:
        super().__init__(message)
        self.type_name = type_name

    def __str__(self) -> str:
        return f"[{self.code.name}] {self.type_name}: {self.message}"


_BY_CODE: dict[int, type[RPCError]] = {
    cls.code: cls
    for cls in (
        Cancelled,
        DeadlineExceeded,
        Unavailable,
        MethodNotFound,
        InvalidRequest,
        MessageTooLarge,
        Unauthenticated,
        PermissionDenied,
        InternalError,
        ProtocolError,
        RemoteError,
    )
}


def wire_type_name(error: RPCError) -> str | None:
    """What goes in a response head's error-type field for `error`: a handler's exception type."""
    return error.type_name if isinstance(error, RemoteError) else None


def is_unprocessed(error: RPCError) -> bool:
    """Whether a response carrying `error` is marked UNPROCESSED (frame flag bit 1)."""
    return isinstance(error, Unavailable) and error.unprocessed


def error_from_status(
    code: int, message: str, type_name: str | None, *, unprocessed: bool = False
) -> RPCError:
    """Rebuild the typed error a server sent. An unknown code becomes a RemoteError."""
    cls = _BY_CODE.get(code)
    if cls is None or cls is RemoteError:
        return RemoteError(message, type_name=type_name or f"status {code}")
    if cls is Unavailable:
        return Unavailable(message, unprocessed=unprocessed)
    return cls(message)
