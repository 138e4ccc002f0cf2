"""Payload codecs. The header's serialization id says which one encoded a body."""

from __future__ import annotations

import json
import threading
from typing import Any, ClassVar

import msgpack


class PerThreadPacker(threading.local):
    """`msgpack.packb` builds a Packer per call; reusing one is over twice as fast. A Packer keeps a
    buffer, so each thread (each event loop) gets its own."""

    def __init__(self) -> None:
        self.pack = msgpack.Packer().pack


class MsgpackCodec:
    """The default: compact, fast, and bytes stay bytes."""

    name: ClassVar[str] = "msgpack"
    id: ClassVar[int] = 1

    def __init__(self) -> None:
        self._packer = PerThreadPacker()

    def encode(self, obj: Any) -> bytes:
        return self._packer.pack(obj)

    def decode(self, data: bytes | memoryview) -> Any:
        return msgpack.unpackb(data)


class JsonCodec:
    """For peers that speak JSON; bytes are not representable."""

    name: ClassVar[str] = "json"
    id: ClassVar[int] = 2

    def encode(self, obj: Any) -> bytes:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()

    def decode(self, data: bytes | memoryview) -> Any:
        return json.loads(bytes(data))
