"""The msgpack envelope in a frame's head: what a call carries besides its payload.

Request head:  [method path, metadata or nil, timeout in seconds or nil]
Response head: [status code, message or nil, error type name or nil, metadata or nil]

The envelope is msgpack whatever the payload codec, so errors can always be reported, even to a
caller whose codec the server does not know.
"""

from __future__ import annotations

from typing import Any

import msgpack

from gorpc.codecs import PerThreadPacker
from gorpc.exceptions import InternalError, InvalidRequest, ProtocolError, StatusCode

_packer = PerThreadPacker()
_unpackb = msgpack.unpackb

OK_HEAD = msgpack.packb([0, None, None, None])


def pack_request_head(method: str, metadata: dict[str, Any] | None, timeout: float | None) -> bytes:
    """Encode a request head; unencodable metadata raises InvalidRequest."""
    try:
        return _packer.pack([method, metadata or None, timeout])
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidRequest(f"request metadata cannot be encoded: {exc}") from exc


def unpack_request_head(data: memoryview) -> tuple[str, dict[str, Any], float | None]:
    """Decode and check a request head; raises ProtocolError."""
    try:
        method, metadata, timeout = _unpackb(data)
    except Exception as exc:
        raise ProtocolError(f"malformed request head: {exc}") from exc
    if not isinstance(method, str):
        raise ProtocolError(f"method path must be a string, got {type(method).__name__}")
    if metadata is not None and not isinstance(metadata, dict):
        raise ProtocolError(f"metadata must be a map, got {type(metadata).__name__}")
    if timeout is not None and not isinstance(timeout, (int, float)):
        raise ProtocolError(f"timeout must be a number, got {type(timeout).__name__}")
    return method, metadata or {}, timeout


def pack_response_head(
    code: int, message: str | None, type_name: str | None, metadata: dict[str, Any] | None
) -> bytes:
    """Encode a response head; unencodable metadata raises InternalError."""
    if code == StatusCode.OK and message is None and type_name is None and not metadata:
        return OK_HEAD  # the common reply head, encoded once
    try:
        return _packer.pack([code, message, type_name, metadata or None])
    except (TypeError, ValueError, OverflowError) as exc:
        raise InternalError(f"response metadata cannot be encoded: {exc}") from exc


def unpack_response_head(data: memoryview) -> tuple[int, str, str | None, dict[str, Any] | None]:
    """Decode and check a response head; raises ProtocolError."""
    try:
        code, message, type_name, metadata = _unpackb(data)
    except Exception as exc:
        raise ProtocolError(f"malformed response head: {exc}") from exc
    if not isinstance(code, int):
        raise ProtocolError(f"status code must be an integer, got {type(code).__name__}")
    return code, message or "", type_name, metadata
