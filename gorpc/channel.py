"""The client's side of one connection: requests in flight, matched to responses by request id."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gorpc.exceptions import Cancelled, ConnectionFailed, MessageTooLarge, ProtocolError
from gorpc.frame import (
    HEADER,
    MAGIC,
    MAX_REQUEST_ID,
    VERSION,
    Frame,
    MessageType,
    OversizedFrame,
    encode_header,
)
from gorpc.protocol import Connection

REQUEST = MessageType.REQUEST.value


class ClientConnection(Connection):
    """Many calls in flight on one connection; each waits on a future keyed by its request id."""

    def __init__(self, address: str, on_unusable: Callable[[ClientConnection], None], **limits: Any) -> None:
        super().__init__(**limits)
        self.address = address
        self.pending: dict[int, asyncio.Future[Frame]] = {}
        self._next_id = 0
        self._on_unusable = on_unusable
        self.last_taken: int | None = None  # from a closing server's final GOAWAY

    def request(
        self, head: bytes, body: bytes, *, flags: int, codec: int
    ) -> tuple[int, asyncio.Future[Frame]]:
        """Send a request; the future gets its response frame (or the connection's failure)."""
        rid = self._next_id = (self._next_id + 1) & MAX_REQUEST_ID
        if rid == 0 or rid in self.pending:
            rid = self._new_request_id()  # wrapped around: skip ids still in use
        future: asyncio.Future[Frame] = self._loop.create_future()
        self.pending[rid] = future
        # encode_header, inlined: this is the hottest path of a call.
        self.send(
            HEADER.pack(MAGIC, VERSION, REQUEST, flags, codec, 0, rid, len(head), len(body)), head, body
        )
        return rid, future

    def notify(self, head: bytes, body: bytes, *, flags: int, codec: int) -> None:
        """Send a one-way request: no request id is reserved and no reply comes."""
        self.send(
            encode_header(MessageType.ONEWAY, 0, len(head), len(body), flags=flags, codec=codec), head, body
        )

    def cancel(self, rid: int) -> None:
        """Forget request `rid` and tell the server to stop working on it."""
        if self.pending.pop(rid, None) is not None:
            self.send(encode_header(MessageType.CANCEL, rid, 0, 0))

    def _new_request_id(self) -> int:
        rid = self._next_id = (self._next_id + 1) & MAX_REQUEST_ID
        while rid in self.pending or rid == 0:  # 0 is for frames that belong to no call
            rid = self._next_id = (self._next_id + 1) & MAX_REQUEST_ID
        return rid

    def frame_received(self, frame: Frame) -> None:
        if frame.type == MessageType.RESPONSE:
            future = self.pending.pop(frame.request_id, None)
            if future is not None and not future.done():
                future.set_result(frame)
            # A response for a call that timed out or was cancelled is dropped.
        elif frame.type in (MessageType.REQUEST, MessageType.ONEWAY, MessageType.CANCEL):
            raise ProtocolError(f"server {self.peer} sent a message type ({frame.type}) only clients send")
        else:
            super().frame_received(frame)

    def oversized_frame_received(self, frame: OversizedFrame) -> None:
        future = self.pending.pop(frame.request_id, None)
        if frame.type != MessageType.RESPONSE or future is None:
            super().oversized_frame_received(frame)
        elif not future.done():
            future.set_exception(
                MessageTooLarge(
                    f"reply of {frame.size} bytes is over the client's {self._decoder.max_size}-byte limit"
                )
            )

    def goaway_received(self, last_request_id: int) -> None:
        # In-flight calls finish here; new calls go to a new connection.
        if last_request_id:
            self.last_taken = last_request_id
        self._on_unusable(self)
        if not self.pending:
            self.close()

    def lost(self, exc: Exception | None) -> None:
        self._on_unusable(self)
        reason = f": {exc}" if exc else ""
        for rid, future in self.pending.items():
            if not future.done():
                # Past the last request a closing server took: it never read this one.
                unread = self.last_taken is not None and rid > self.last_taken
                detail = " before the server read the request" if unread else reason
                future.set_exception(
                    ConnectionFailed(f"connection to {self.address} lost{detail}", unprocessed=unread)
                )
        self.pending.clear()

    def fail_pending(self, reason: str) -> None:
        """Fail every call in flight with Cancelled(`reason`): their caller is going away."""
        pending, self.pending = self.pending, {}
        for future in pending.values():
            if not future.done():
                future.set_exception(Cancelled(reason))

    def call_finished(self) -> None:
        """Close a draining connection once its last call is answered."""
        if self.going_away and not self.pending:
            self.close()
