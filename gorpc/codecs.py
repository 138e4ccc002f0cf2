"""Payload codecs. The header's serialization id says which one encoded a body.

msgspec encodes both formats (about twice as fast as msgpack's Packer, over ten times the
standard library's json; see the README), and decodes into a handler's declared types
(`decoder_for`). An untyped msgpack body is decoded by msgpack, which refuses map keys other than
str and bytes: ints hash predictably, and a map of colliding int keys would take quadratic time to
build (hash flooding); msgspec has no such guard. Its msgpack is the same format msgpack writes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar

import msgpack
import msgspec

Decode = Callable[[bytes | memoryview], Any]


class PerThreadPacker(threading.local):
    """`msgpack.packb` builds a Packer per call; reusing one is over twice as fast. A Packer keeps a
    buffer, so each thread (each event loop) gets its own."""

    def __init__(self) -> None:
        self.pack = msgpack.Packer().pack


class MsgpackCodec:
    """The default: compact, fast, and bytes stay bytes. A timezone-aware datetime travels as
    msgpack's timestamp extension."""

    name: ClassVar[str] = "msgpack"
    id: ClassVar[int] = 1

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()  # safe to share between threads
        if type(self).encode is MsgpackCodec.encode:  # one Python frame less per message
            self.encode = self._encoder.encode  # type: ignore[method-assign, assignment]

    def encode(self, obj: Any) -> bytes:
        return self._encoder.encode(obj)

    def decode(self, data: bytes | memoryview) -> Any:
        # timestamp=3: msgpack's timestamp extension (how a datetime travels) as a datetime.
        return msgpack.unpackb(data, timestamp=3)

    def decoder_for(self, type_: Any) -> Decode:
        """A decoder straight into `type_`, validating as it goes (msgspec.ValidationError)."""
        return msgspec.msgpack.Decoder(type_).decode


class JsonCodec:
    """For peers that speak JSON. bytes travel as base64 strings, datetimes as RFC 3339 strings."""

    name: ClassVar[str] = "json"
    id: ClassVar[int] = 2

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder()  # JSON keys are strings: no flooding to guard against
        if type(self).encode is JsonCodec.encode:  # one Python frame less per message
            self.encode = self._encoder.encode  # type: ignore[method-assign, assignment]
        if type(self).decode is JsonCodec.decode:
            self.decode = self._decoder.decode  # type: ignore[method-assign, assignment]

    def encode(self, obj: Any) -> bytes:
        return self._encoder.encode(obj)

    def decode(self, data: bytes | memoryview) -> Any:
        return self._decoder.decode(data)

    def decoder_for(self, type_: Any) -> Decode:
        """A decoder straight into `type_`, validating as it goes (msgspec.ValidationError)."""
        return msgspec.json.Decoder(type_).decode
