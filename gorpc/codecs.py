"""Payload codecs. The header's serialization id says which one encoded a body.

Both built-in codecs encode and decode through msgspec: it is about twice as fast as msgpack's
Packer for msgpack and over ten times the standard library's json (see the README), it decodes
straight into a handler's declared types (`decoder_for`), and its msgpack is the same format
msgpack writes. msgpack itself still packs the frame heads (`gorpc.envelope`).
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
        # msgspec's Encoder and Decoder are safe to share between threads.
        self._encoder = msgspec.msgpack.Encoder()
        self._decoder = msgspec.msgpack.Decoder()
        _bind_fast_path(self, MsgpackCodec)

    def encode(self, obj: Any) -> bytes:
        return self._encoder.encode(obj)

    def decode(self, data: bytes | memoryview) -> Any:
        return self._decoder.decode(data)

    def decoder_for(self, type_: Any) -> Decode:
        """A decoder straight into `type_`, validating as it goes (msgspec.ValidationError)."""
        return msgspec.msgpack.Decoder(type_).decode


class JsonCodec:
    """For peers that speak JSON. bytes travel as base64 strings, datetimes as RFC 3339 strings."""

    name: ClassVar[str] = "json"
    id: ClassVar[int] = 2

    def __init__(self) -> None:
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder()
        _bind_fast_path(self, JsonCodec)

    def encode(self, obj: Any) -> bytes:
        return self._encoder.encode(obj)

    def decode(self, data: bytes | memoryview) -> Any:
        return self._decoder.decode(data)

    def decoder_for(self, type_: Any) -> Decode:
        """A decoder straight into `type_`, validating as it goes (msgspec.ValidationError)."""
        return msgspec.json.Decoder(type_).decode


def _bind_fast_path(codec: MsgpackCodec | JsonCodec, cls: type[MsgpackCodec | JsonCodec]) -> None:
    """Point `encode` and `decode` straight at msgspec: one Python frame less per message, on both
    sides of every call. A subclass that overrides either keeps its own."""
    if type(codec).encode is cls.encode:
        codec.encode = codec._encoder.encode  # type: ignore[method-assign, assignment]
    if type(codec).decode is cls.decode:
        codec.decode = codec._decoder.decode  # type: ignore[method-assign, assignment]
