"""One stream call's messages on one connection, on either side (docs/protocol.md, "Streams").

Messages in are queued, never more than the window this side granted, and handed out by `receive`,
which grants the credit back as they are taken. Messages out wait in `send` for the credit the peer
granted and for a connection the peer is reading. So a stream's memory is bounded by its window
in both processes, however fast its producer and however slow its consumer.
"""

from __future__ import annotations

import asyncio
import collections
from typing import NamedTuple, Protocol

from gorpc.exceptions import ConnectionFailed, ProtocolError
from gorpc.frame import WINDOW_CREDIT, Frame, MessageType, encode_header, encode_window

MESSAGE = MessageType.MESSAGE.value
_new_tuple = tuple.__new__


class Window(NamedTuple):
    """A stream's receive window: messages and bytes (head + body) the peer may have unread."""

    messages: int
    bytes: int


class Message(NamedTuple):
    """A received stream message, copied out of the read buffer (a view would pin the whole read)."""

    flags: int
    codec: int
    head: bytes
    body: bytes


class FrameSink(Protocol):
    """What a stream needs of its connection."""

    def send(self, *parts: bytes | memoryview) -> None: ...

    def send_bulk(self, *parts: bytes | memoryview) -> None: ...

    writable: bool

    @property
    def is_open(self) -> bool: ...

    async def drain(self) -> None: ...


class Stream:
    """The frames of one stream call on one connection.

    The connection routes the call's MESSAGE and WINDOW frames here (and the end of the peer's
    messages: END on the server, the RESPONSE on the client); whoever runs the call uses
    `receive` and `send`. A sender may send a message while it holds at least one message of
    credit and a positive byte credit; the message's size is then taken from the byte credit.
    """

    __slots__ = (
        "_credit_bytes",
        "_credit_messages",
        "_error",
        "_granted_bytes",
        "_granted_messages",
        "_half_bytes",
        "_half_messages",
        "_incoming",
        "_loop",
        "_peer_done",
        "_send_waiter",
        "_sink",
        "_taken_bytes",
        "_taken_messages",
        "_waiter",
        "_window",
        "final",
        "request_id",
    )

    def __init__(self, sink: FrameSink, request_id: int, window: Window) -> None:
        self._loop = asyncio.get_running_loop()
        self._sink = sink
        self.request_id = request_id
        self._window = window
        self._half_messages = max(window.messages // 2, 1)
        self._half_bytes = max(window.bytes // 2, 1)
        self._incoming: collections.deque[Message] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._peer_done = False  # the peer sent its last message
        self._error: BaseException | None = None
        self.final: Frame | None = None  # client side: the RESPONSE that ended the call
        # What the peer may still send us (granted) and what we have taken but not granted back.
        self._granted_messages = 0
        self._granted_bytes = 0
        self._taken_messages = 0
        self._taken_bytes = 0
        # What we may still send.
        self._credit_messages = 0
        self._credit_bytes = 0
        self._send_waiter: asyncio.Future[None] | None = None

    # -- receiving --------------------------------------------------------------------------------

    def grant_window(self) -> None:
        """Grant the peer this side's whole window (when this side starts to read its messages)."""
        messages, nbytes = self._window
        self._granted_messages += messages
        self._granted_bytes += nbytes
        self._sink.send(encode_window(self.request_id, messages, nbytes))

    def expect_window(self) -> None:
        """The peer was told the window another way (in the request head): count it as granted."""
        self._granted_messages, self._granted_bytes = self._window

    def message_received(self, frame: Frame) -> None:
        """A MESSAGE frame for this stream. One beyond the credit granted breaks the protocol."""
        if self._granted_messages < 1 or self._granted_bytes <= 0:
            raise ProtocolError(f"stream {self.request_id}: a message beyond the window granted")
        head, body = frame.head, frame.body
        self._granted_messages -= 1
        self._granted_bytes -= len(head) + len(body)
        if self._error is not None or self._peer_done:
            return  # nobody will read it
        # tuple.__new__ builds the NamedTuple in C (its own __new__ is Python): per message, it counts.
        message = _new_tuple(Message, (frame.flags, frame.codec, bytes(head) if head else b"", bytes(body)))
        self._incoming.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def peer_done(self, final: Frame | None = None) -> None:
        """The peer will send no more messages (END; on the client, the RESPONSE `final`, after
        which nothing more is sent either)."""
        self._peer_done = True
        self._wake()
        if final is not None:
            self.final = final
            self._wake_sender()

    def receive_nowait(self) -> Message | None:
        """The next message if one is queued (and its credit given back), else None."""
        if not self._incoming:
            return None
        message = self._incoming.popleft()
        # Credit goes back in batches of half a window: one WINDOW frame per many messages.
        self._taken_messages += 1
        self._taken_bytes += len(message.head) + len(message.body)
        if self._taken_messages >= self._half_messages or self._taken_bytes >= self._half_bytes:
            self._give_back()
        return message

    async def receive(self) -> Message | None:
        """The next message; None once the peer has sent its last. Raises what failed the stream."""
        while not self._incoming:
            if self._error is not None:
                raise self._error
            if self._peer_done:
                return None
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self.receive_nowait()

    def _give_back(self) -> None:
        if not self._peer_done and self._error is None:
            self._granted_messages += self._taken_messages
            self._granted_bytes += self._taken_bytes
            self._sink.send(encode_window(self.request_id, self._taken_messages, self._taken_bytes))
        self._taken_messages = self._taken_bytes = 0

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- sending ----------------------------------------------------------------------------------

    def credit_received(self, body: memoryview | bytes) -> None:
        """A WINDOW frame's body: more credit to send with."""
        if len(body) != WINDOW_CREDIT.size:
            raise ProtocolError(f"stream {self.request_id}: a WINDOW body of {len(body)} bytes, not 8")
        messages, nbytes = WINDOW_CREDIT.unpack(body)
        self.add_credit(messages, nbytes)

    def add_credit(self, messages: int, nbytes: int) -> None:
        self._credit_messages += messages
        self._credit_bytes += nbytes
        self._wake_sender()

    def _wake_sender(self) -> None:
        waiter = self._send_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def has_credit(self) -> bool:
        return self._credit_messages >= 1 and self._credit_bytes > 0

    async def wait_for_credit(self) -> None:
        """Wait until the peer grants credit (or ends the call: see `final`). Raises what failed it."""
        while not self.has_credit and self.final is None:
            if self._error is not None:
                raise self._error
            self._send_waiter = self._loop.create_future()
            try:
                await self._send_waiter
            finally:
                self._send_waiter = None
        if self._error is not None:
            raise self._error

    def try_send(self, head: bytes, body: bytes, flags: int, codec: int) -> bool:
        """Send one message if that needs no wait (credit in hand, the connection writable), or
        return False: then `send` waits. One call per message while the receiver keeps up."""
        if (
            self._credit_messages < 1
            or self._credit_bytes <= 0
            or not self._sink.writable
            or self._error is not None
            or self.final is not None
        ):
            return False
        self._credit_messages -= 1
        self._credit_bytes -= len(head) + len(body)
        self._sink.send_bulk(
            encode_header(MESSAGE, self.request_id, len(head), len(body), flags, codec), head, body
        )
        return True

    async def send(self, head: bytes, body: bytes, flags: int, codec: int) -> None:
        """Send one message, once there is credit and the peer is reading the connection. Raises
        what failed the stream, or StreamEnded once the peer has ended the call."""
        while not self.try_send(head, body, flags, codec):
            await self.wait_for_credit()
            if self.final is not None:
                raise StreamEnded(f"stream {self.request_id} has ended")
            if not self._sink.writable:
                await self._sink.drain()
                if not self._sink.is_open:
                    raise ConnectionFailed(f"stream {self.request_id}: connection lost")

    # -- failing ----------------------------------------------------------------------------------

    @property
    def failed(self) -> BaseException | None:
        """What ended the stream early, or None."""
        return self._error

    def fail(self, error: BaseException) -> None:
        """End the stream with `error`: queued messages are dropped, waiters raise it."""
        if self._error is not None:
            return
        self._error = error
        self._incoming.clear()
        self._wake()
        self._wake_sender()


class StreamEnded(Exception):
    """Internal: the peer ended the call, so there is nobody to send to."""
