"""Frame header encoding and buffer-based frame parsing (see docs/protocol.md).

    0      2      3      4      5      6        8            12           16           20
    +------+------+------+------+------+--------+------------+------------+------------+
    | magic| ver  | type | flags| codec| reserved| request id | head length| body length|
    +------+------+------+------+------+--------+------------+------------+------------+

All integers are big-endian and unsigned. `head` is a msgpack envelope (method path, metadata,
deadline or status); `body` is the payload in the codec named by `codec`.
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple

from gorpc.exceptions import MessageTooLarge, ProtocolError

MAGIC = b"GR"
VERSION = 1
HEADER = struct.Struct("!2sBBBBHIII")
_PREFIX = MAGIC + bytes([VERSION])
# The same 20 bytes read with magic and version as one field: one comparison per frame.
_PARSE = struct.Struct("!3sBBBHIII")
HEADER_SIZE = HEADER.size  # 20
MAX_REQUEST_ID = 0xFFFFFFFF

FLAG_COMPRESSED = 0x01  # the body is zlib-compressed
FLAG_UNPROCESSED = 0x02  # RESPONSE only: the request never reached a handler (safe to retry anywhere)
FLAG_STREAM = 0x04  # REQUEST only: the request opens a stream call (docs/protocol.md, "Streams")
# Bits 3-7 are reserved: sent as 0 and ignored on receipt (docs/protocol.md, "Frame").


class MessageType(enum.IntEnum):
    """The frame types of protocol version 1 (docs/protocol.md)."""

    REQUEST = 1
    RESPONSE = 2
    ONEWAY = 3  # a request that gets no response
    PING = 4
    PONG = 5
    GOAWAY = 6  # the sender is stopping: send no new calls on this connection
    CANCEL = 7  # the caller gave up on request `request_id`
    MESSAGE = 8  # one message of a stream call, either way
    END = 9  # the caller has sent the last message of its request stream
    WINDOW = 10  # the receiver grants the sender credit for more messages of a stream


class Frame(NamedTuple):
    """A parsed frame; `head` and `body` are views into the received bytes."""

    type: int
    flags: int
    codec: int
    request_id: int
    head: memoryview
    body: memoryview


_new_tuple = tuple.__new__


class OversizedFrame(NamedTuple):
    """A frame whose head + body exceed the limit. Its bytes are skipped, never buffered."""

    type: int
    request_id: int
    size: int


_pack = HEADER.pack
# A WINDOW frame's body: the messages and bytes of credit it grants.
WINDOW_CREDIT = struct.Struct("!II")


def encode_header(
    msg_type: int, request_id: int, head_len: int, body_len: int, flags: int = 0, codec: int = 0
) -> bytes:
    """The 20-byte header of a frame with this head and body length. The one place headers are made."""
    return _pack(MAGIC, VERSION, msg_type, flags, codec, 0, request_id, head_len, body_len)


def encode_window(request_id: int, messages: int, nbytes: int) -> bytes:
    """A whole WINDOW frame granting stream `request_id` this much more credit."""
    return _pack(MAGIC, VERSION, MessageType.WINDOW, 0, 0, 0, request_id, 0, WINDOW_CREDIT.size) + (
        WINDOW_CREDIT.pack(messages, nbytes)
    )


def check_size(size: int, limit: int, what: str, whose: str = "") -> None:
    """Refuse a message of `size` bytes (head + body, after decompression) over `limit`: the one
    size rule, for both sides and every stage."""
    if size > limit:
        raise too_large(size, limit, what, whose)


def too_large(size: int, limit: int, what: str, whose: str = "") -> MessageTooLarge:
    """The error for a message of `size` bytes over `limit` (`whose`: "server's", "client's")."""
    owner = f"{whose} " if whose else ""
    return MessageTooLarge(f"{what} of {size} bytes is over the {owner}{limit}-byte limit")


class FrameDecoder:
    """Turns a byte stream into frames.

    Complete frames are sliced out of the received bytes without copying; only a trailing partial
    frame is kept. A frame over `max_size` is reported as OversizedFrame and its bytes discarded as
    they arrive. A bad magic or version raises ProtocolError: the stream cannot be resynchronised.
    """

    __slots__ = ("_buffer", "_need", "_skip", "max_size")

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._buffer = bytearray()
        self._need = HEADER_SIZE  # bytes the buffered partial frame needs before it can be parsed
        self._skip = 0  # bytes of an oversized frame still to discard

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame | OversizedFrame]:
        """The frames completed by `data`, in order."""
        if self._skip:
            if len(data) <= self._skip:
                self._skip -= len(data)
                return []
            data = data[self._skip :]
            self._skip = 0
        if self._buffer:
            self._buffer += data
            if len(self._buffer) < self._need:
                return []  # don't re-copy a large partial frame on every chunk
            data = bytes(self._buffer)
            self._buffer.clear()
        return self._parse(data)

    def _parse(self, data: bytes) -> list[Frame | OversizedFrame]:
        frames: list[Frame | OversizedFrame] = []
        view = memoryview(data)
        pos, end = 0, len(data)
        while end - pos >= HEADER_SIZE:
            prefix, msg_type, flags, codec, _, request_id, head_len, body_len = _PARSE.unpack_from(data, pos)
            if prefix != _PREFIX:
                _refuse_prefix(prefix)
            size = head_len + body_len
            start = pos + HEADER_SIZE
            if size > self.max_size:
                frames.append(OversizedFrame(msg_type, request_id, size))
                available = end - start
                if available < size:
                    self._skip = size - available
                    pos = end
                    break
                pos = start + size
                continue
            if end - start < size:
                self._need = HEADER_SIZE + size
                break
            split = start + head_len
            pos = split + body_len
            # tuple.__new__ builds the NamedTuple in C, skipping its Python-level __new__.
            frames.append(
                _new_tuple(Frame, (msg_type, flags, codec, request_id, view[start:split], view[split:pos]))
            )
        if pos < end:
            self._buffer += view[pos:]
            if end - pos < HEADER_SIZE:
                self._need = HEADER_SIZE
        return frames


def _refuse_prefix(prefix: bytes) -> None:
    if prefix[:2] != MAGIC:
        raise ProtocolError(f"bad magic {prefix[:2]!r}: not a gorpc peer")
    raise ProtocolError(f"unsupported protocol version {prefix[2]} (this side speaks {VERSION})")
