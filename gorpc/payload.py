"""Turning a call's payload into a frame body and back: codec, optional zlib, size limit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from gorpc import compression
from gorpc.contract import mismatch
from gorpc.exceptions import MessageTooLarge, RPCError
from gorpc.frame import FLAG_COMPRESSED, check_size
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
        size = len(body)
        del body  # the error's traceback keeps this frame: it must not keep the refused bytes
        check_size(size, limit, what)
    return flags, body


def decode_body(
    codec: Codec, flags: int, body: bytes | memoryview, *, limit: int, error: type[RPCError], what: str
) -> Any:
    """The payload in `body`; a body that does not decode raises `error` naming the codec."""
    data: bytes | memoryview | None = None
    try:
        data = compression.decompress(body, limit) if flags & FLAG_COMPRESSED else body
        return codec.decode(data)
    except MessageTooLarge:
        raise
    except msgspec.ValidationError as exc:  # well-formed, but not the declared type: where and why
        data = None
        raise error(f"{what} {mismatch(codec, exc)}") from None
    except Exception as exc:
        # The error's traceback keeps this frame, and its cause's the codec's: neither may keep
        # the (inflated) input alive for as long as someone holds the error.
        data = None
        raise error(f"cannot decode {what} with codec {codec.name!r}: {exc}") from exc.with_traceback(None)


Encoder = Callable[[Any], tuple[int, bytes]]  # a payload -> (flags, body)


def plain_encoder(codec: Codec, limit: int, general: Encoder) -> Encoder:
    """An encoder for a stream's messages that does the plain case (no compression, within
    `limit`) in one call; whatever else, errors included, goes through `general`."""
    encode = codec.encode

    def plain(obj: Any) -> tuple[int, bytes]:
        try:
            body = encode(obj)
        except Exception:
            return general(obj)  # which raises the error the caller should get
        if len(body) > limit:
            return general(obj)
        return 0, body

    return plain


def message_decoder(
    codec: Codec, limit: int, error: type[RPCError], what: str
) -> Callable[[int, bytes | memoryview], Any]:
    """A decoder for a stream's messages, (flags, bytes) -> message: the plain case in one call;
    compressed messages and anything that does not decode through `decode_body`, which raises
    `error` saying what was wrong."""
    decode = codec.decode

    def message(flags: int, data: bytes | memoryview) -> Any:
        if not flags:
            try:
                return decode(data)
            except Exception:
                pass  # decode_body says what was wrong
        return decode_body(codec, flags, data, limit=limit, error=error, what=what)

    return message
