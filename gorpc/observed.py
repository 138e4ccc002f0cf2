"""Watching the server's calls as they end, for the access log and metrics.

`Observed` wraps the connection's `CallHost` for one call, so it sees what the call was answered
with; at the call's end each observer gets a `CallRecord`. The dispatcher wraps only when some
observer is configured: with none, nothing is wrapped and the call path pays nothing.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from gorpc.exceptions import ProtocolError, RPCError
from gorpc.server_connection import CallHost


class CallRecord:
    """One call as it ended: its path, peer, status name, duration and body sizes."""

    __slots__ = ("duration", "oneway", "path", "peer", "reply_size", "request_size", "status")

    def __init__(self, path: str, peer: str, request_size: int) -> None:
        self.path = path
        self.peer = peer
        self.status = "OK"
        self.duration = 0.0  # seconds
        self.request_size = request_size
        self.reply_size = 0
        self.oneway = False


class CallObserver(Protocol):
    """Told of each call's start and end (on the event loop, so it must be quick)."""

    def call_started(self) -> None: ...

    def call_ended(self, record: CallRecord) -> None: ...


class Observed:
    """A CallHost that passes everything on and notes the answer, for the observers at its end."""

    __slots__ = ("_host", "_observers", "_record", "_started", "peer")

    def __init__(
        self, host: CallHost, path: str, request_size: int, observers: tuple[CallObserver, ...]
    ) -> None:
        self._host = host
        self._observers = observers
        self._record = CallRecord(path, host.peer, request_size)
        self._started = time.perf_counter()
        self.peer = host.peer
        for observer in observers:
            observer.call_started()

    def reply(self, request_id: int, codec: int, flags: int, head: bytes, body: bytes) -> None:
        self._record.reply_size = len(body)
        self._host.reply(request_id, codec, flags, head, body)

    def fail(self, request_id: int, error: RPCError, metadata: dict[str, Any] | None = None) -> None:
        self._record.status = error.code.name
        self._host.fail(request_id, error, metadata)

    def answer_cancelled(self, request_id: int, path: str) -> None:
        self._record.status = "CANCELLED"
        self._host.answer_cancelled(request_id, path)

    def broken(self, request_id: int, error: ProtocolError, oneway: bool) -> None:
        self._record.status = "PROTOCOL_ERROR"
        self._host.broken(request_id, error, oneway)

    def ended(self, request_id: int, oneway: bool) -> None:
        self._host.ended(request_id, oneway)
        record = self._record
        record.duration = time.perf_counter() - self._started
        record.oneway = oneway
        for observer in self._observers:
            observer.call_ended(record)
