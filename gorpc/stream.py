"""One stream call's messages on one connection, on either side (docs/protocol.md, "Streams").

Messages in are decoded as they arrive and queued, never more than the window this side granted,
and handed out by `receive`, which grants the credit back as they are taken. Messages out wait in
`send` for the credit the peer granted and for a connection the peer is reading, and the messages
a producer sends in one turn of the loop go out together, several to a MESSAGE frame. So a
stream's memory is bounded by its window in both processes, however fast its producer and however
slow its consumer, and a small message costs a few length bytes, not a frame.
"""

from __future__ import annotations

import asyncio
import collections
import struct
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

from gorpc.exceptions import ConnectionFailed, ProtocolError
from gorpc.frame import WINDOW_CREDIT, Frame, MessageType, encode_header, encode_window

MESSAGE = MessageType.MESSAGE.value
LENGTH = struct.Struct("!I")  # before each message in a MESSAGE frame's body
MESSAGE_OVERHEAD = LENGTH.size
BATCH_BYTES = 16 * 1024  # a MESSAGE frame's body holds at most this much, unless it holds one message
_unpack_length = LENGTH.unpack_from
_pack_length = LENGTH.pack

# Decodes one message: (the frame's flags, the message's bytes) -> the message; raises an RPCError.
Decode = Callable[[int, memoryview], Any]


class Window(NamedTuple):
    """A stream's receive window: messages, and their bytes, the peer may send before we read them."""

    messages: int
    bytes: int


class FrameSink(Protocol):
    """What a stream needs of its connection."""

    writable: bool

    def send(self, *parts: bytes | memoryview) -> None: ...

    def send_bulk(self, *parts: bytes | memoryview) -> None: ...

    @property
    def is_open(self) -> bool: ...

    async def drain(self) -> None: ...


class _Failed:
    """A message that did not decode: its error is raised when the reader reaches it."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


EMPTY: Any = object()  # `receive_nowait`: nothing has arrived
END: Any = object()  # `receive`: the peer has sent its last message


def _keep_bytes(flags: int, data: memoryview) -> bytes:
    return bytes(data)


class Stream:
    """The frames of one stream call on one connection.

    The connection routes the call's MESSAGE and WINDOW frames here (and the end of the peer's
    messages: END on the server, the RESPONSE on the client); whoever runs the call uses
    `receive` and `send`. A sender may send a message while it holds at least one message of
    credit and a positive byte credit; the message's length is then taken from the byte credit.
    """

    __slots__ = (
        "_batch",
        "_batch_bytes",
        "_batch_cap",
        "_batch_codec",
        "_batch_flags",
        "_credit_bytes",
        "_credit_messages",
        "_decode",
        "_error",
        "_flush_scheduled",
        "_granted_bytes",
        "_granted_messages",
        "_half_bytes",
        "_half_messages",
        "_head",
        "_incoming",
        "_loop",
        "_on_head",
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
        self._incoming: collections.deque[tuple[Any, int]] = collections.deque()  # (message, length)
        self._waiter: asyncio.Future[None] | None = None
        self._peer_done = False  # the peer sent its last message
        self._error: BaseException | None = None
        self.final: Frame | None = None  # client side: the RESPONSE that ended the call
        self._decode: Decode = _keep_bytes
        self._on_head: Callable[[bytes], None] | None = None
        # What the peer may still send us (granted) and what we have taken but not granted back.
        self._granted_messages = 0
        self._granted_bytes = 0
        self._taken_messages = 0
        self._taken_bytes = 0
        # What we may still send, and the messages of this turn not yet in a frame.
        self._credit_messages = 0
        self._credit_bytes = 0
        self._send_waiter: asyncio.Future[None] | None = None
        self._batch: list[bytes] = []
        self._batch_bytes = 0
        self._batch_flags = 0
        self._batch_codec = 0
        self._batch_cap = 0  # set by the peer's first grant
        self._head = b""  # goes with the first frame sent
        self._flush_scheduled = False

    # -- receiving --------------------------------------------------------------------------------

    def set_decoder(self, decode: Decode, on_head: Callable[[bytes], None] | None = None) -> None:
        """How messages are decoded as they arrive, and who gets a MESSAGE frame's head."""
        self._decode = decode
        self._on_head = on_head

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
        """A MESSAGE frame: its messages are decoded and queued. A message beyond the credit
        granted, or a body that is not a sequence of length-prefixed messages, breaks the protocol."""
        head, body, flags = frame.head, frame.body, frame.flags
        if head and self._on_head is not None:
            self._on_head(bytes(head))
        keep = self._error is None and not self._peer_done  # else nobody will read them
        decode, incoming = self._decode, self._incoming
        pos, end = 0, len(body)
        while pos < end:
            if self._granted_messages < 1 or self._granted_bytes <= 0:
                raise ProtocolError(f"stream {self.request_id}: a message beyond the window granted")
            if end - pos < MESSAGE_OVERHEAD:
                raise ProtocolError(f"stream {self.request_id}: a message length cut short")
            (size,) = _unpack_length(body, pos)
            start = pos + MESSAGE_OVERHEAD
            pos = start + size
            if pos > end:
                raise ProtocolError(f"stream {self.request_id}: a message runs past its frame")
            self._granted_messages -= 1
            self._granted_bytes -= size
            if keep:
                try:
                    message = decode(flags, body[start:pos])
                except Exception as exc:  # raised to the reader when it gets this far
                    message = _Failed(exc.with_traceback(None))
                incoming.append((message, size))
        if keep:
            self._wake()

    def peer_done(self, final: Frame | None = None) -> None:
        """The peer will send no more messages (END; on the client, the RESPONSE `final`, after
        which nothing more is sent either)."""
        self._peer_done = True
        self._wake()
        if final is not None:
            self.final = final
            self._batch.clear()
            self._wake_sender()

    @property
    def has_messages(self) -> bool:
        return bool(self._incoming)

    def receive_nowait(self) -> Any:
        """The next message if one has arrived (its credit given back), else EMPTY."""
        if not self._incoming:
            return EMPTY
        message, size = self._incoming.popleft()
        # Credit goes back in batches of half a window: one WINDOW frame per many messages.
        self._taken_messages += 1
        self._taken_bytes += size
        if self._taken_messages >= self._half_messages or self._taken_bytes >= self._half_bytes:
            self._give_back()
        if type(message) is _Failed:
            raise message.error
        return message

    async def receive(self) -> Any:
        """The next message; END once the peer has sent its last. Raises what failed the stream."""
        await self.wait_readable()
        return self.receive_nowait() if self._incoming else END

    async def wait_readable(self) -> None:
        """Wait until a message has arrived or the peer has sent its last. Raises what failed it."""
        while not self._incoming:
            if self._error is not None:
                raise self._error
            if self._peer_done:
                return
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

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
        if not self._batch_cap:  # the peer's first grant is its window: a frame stays well inside it
            self._batch_cap = max(min(BATCH_BYTES, nbytes // 2), 1)
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

    def set_head(self, head: bytes) -> None:
        """A head (response metadata) for the first MESSAGE frame this side sends."""
        self._head = head

    def try_send(self, body: bytes, flags: int, codec: int) -> bool:
        """Send one message if that needs no wait (credit in hand, the connection writable), or
        return False: then `send` waits. The messages of one turn share a frame (see `flush`)."""
        if (
            self._credit_messages < 1
            or self._credit_bytes <= 0
            or not self._sink.writable
            or self._error is not None
            or self.final is not None
        ):
            return False
        size = len(body)
        self._credit_messages -= 1
        self._credit_bytes -= size
        if self._batch and (flags != self._batch_flags or self._batch_bytes + size >= self._batch_cap):
            self.flush()
        self._batch.append(_pack_length(size))
        self._batch.append(body)
        self._batch_bytes += MESSAGE_OVERHEAD + size
        self._batch_flags, self._batch_codec = flags, codec
        if self._batch_bytes >= self._batch_cap or self._head:
            self.flush()  # full, or the head's frame: it carries one message
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._end_of_turn)
        return True

    async def send(self, body: bytes, flags: int, codec: int) -> None:
        """Send one message, once there is credit and the peer is reading the connection. Raises
        what failed the stream, or StreamEnded once the peer has ended the call."""
        while not self.try_send(body, flags, codec):
            self.flush()  # the peer grants more credit only for what it has
            await self.wait_for_credit()
            if self.final is not None:
                raise StreamEnded(f"stream {self.request_id} has ended")
            if not self._sink.writable:
                await self._sink.drain()
                if not self._sink.is_open:
                    raise ConnectionFailed(f"stream {self.request_id}: connection lost")

    def _end_of_turn(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def flush(self) -> None:
        """Send the messages not yet in a frame, as one MESSAGE frame."""
        if not self._batch:
            return
        body = b"".join(self._batch)
        self._batch.clear()
        self._batch_bytes = 0
        if self._error is None and self.final is None:
            head, self._head = self._head, b""
            header = encode_header(
                MESSAGE, self.request_id, len(head), len(body), self._batch_flags, self._batch_codec
            )
            self._sink.send_bulk(header, head, body)

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
        self._batch.clear()
        self._wake()
        self._wake_sender()


class StreamEnded(Exception):
    """Internal: the peer ended the call, so there is nobody to send to."""
