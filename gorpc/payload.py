"""Turning a call's payload into a frame body and back: codec, optional zlib, size limit."""

from __future__ import annotations

from typing import Any

from gorpc import compression
from gorpc.exceptions import MessageTooLarge, RPCError
from gorpc.frame import FLAG_COMPRESSED
from gorpc.types import Codec


def encode_body(
    codec: Codec, obj: Any, *, compress: bool, threshold: int, limit: int, what: str
) -> tuple[int, bytes]:
    """(flags, body) for `obj`; raises TypeError/ValueError from the codec, MessageTooLarge."""
    body = codec.encode(obj)
    flags = 0
    if compress and len(body) >= threshold:
        body = compression.compress(body)
        flags = FLAG_COMPRESSED
    if len(body) > limit:
        raise MessageTooLarge(f"{what} of {len(body)} bytes is over the {limit}-byte limit")
    return flags, body


def decode_body(
    codec: Codec, flags: int, body: memoryview, *, limit: int, error: type[RPCError], what: str
) -> Any:
    """The payload in `body`; a body that does not decode raises `error` naming the codec."""
    try:
        data: bytes | memoryview = compression.decompress(body, limit) if flags & FLAG_COMPRESSED else body
        return codec.decode(data)
    except MessageTooLarge:
        raise
    except Exception as exc:
        raise error(f"cannot decode {what} with codec {codec.name!r}: {exc}") from exc
