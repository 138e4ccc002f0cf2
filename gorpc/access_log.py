"""The access log (`access_log = true` in `[server]`): one line per call through `logging`, on the
`gorpc.access` logger at INFO:

    /helloworld.Greeter/SayHello peer=127.0.0.1:50312 status=OK 0.412ms request=17B reply=21B

It wraps the connection's `CallHost` for one call, so it sees what the call was answered with;
with the log off nothing is wrapped and the call path pays nothing.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from gorpc.envelope import unpack_request_head
from gorpc.exceptions import ProtocolError, RPCError
from gorpc.frame import Frame
from gorpc.server_connection import CallHost

logger = logging.getLogger("gorpc.access")


class AccessLogged:
    """A CallHost that passes everything on, and logs the call's line when it ends."""

    __slots__ = ("_frame", "_host", "_reply_size", "_started", "_status", "peer")

    def __init__(self, host: CallHost, frame: Frame) -> None:
        self._host = host
        self._frame = frame
        self._started = time.monotonic()
        self._status = "OK"
        self._reply_size = 0
        self.peer = host.peer

    def reply(self, request_id: int, codec: int, flags: int, head: bytes, body: bytes) -> None:
        self._reply_size = len(body)
        self._host.reply(request_id, codec, flags, head, body)

    def fail(self, request_id: int, error: RPCError, metadata: dict[str, Any] | None = None) -> None:
        self._status = error.code.name
        self._host.fail(request_id, error, metadata)

    def answer_cancelled(self, request_id: int, path: str) -> None:
        self._status = "CANCELLED"
        self._host.answer_cancelled(request_id, path)

    def broken(self, request_id: int, error: ProtocolError, oneway: bool) -> None:
        self._status = "PROTOCOL_ERROR"
        self._host.broken(request_id, error, oneway)

    def ended(self, request_id: int, oneway: bool) -> None:
        self._host.ended(request_id, oneway)
        try:
            path = unpack_request_head(self._frame.head)[0]
        except Exception:  # a malformed head: its PROTOCOL_ERROR says the rest
            path = "?"
        logger.info(
            "%s peer=%s status=%s %.3fms request=%dB reply=%dB%s",
            path,
            self.peer,
            self._status,
            (time.monotonic() - self._started) * 1e3,
            len(self._frame.body),
            self._reply_size,
            " oneway" if oneway else "",
        )
