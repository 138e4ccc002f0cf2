"""The msgpack envelope in a frame's head: what a call carries besides its payload.

Request head:  [method path, metadata or nil, timeout in seconds or nil]
Stream request head: the same, then [mode, window messages, window bytes]
Response head: [status code, message or nil, error type name or nil, metadata or nil]
A stream message's head: empty, or on the server's first message the response metadata (a map)

Metadata is a map of str keys to str or bytes values, both ways. A timeout is a number of seconds:
infinity means no deadline (as nil does); NaN, negative numbers and booleans are refused.

The envelope is msgpack whatever the payload codec, so errors can always be reported, even to a
caller whose codec the server does not know.
"""

from __future__ import annotations

import math
from typing import Any

import msgpack

from gorpc.codecs import PerThreadPacker
from gorpc.exceptions import InternalError, InvalidRequest, ProtocolError, StatusCode
from gorpc.kinds import StreamMode
from gorpc.stream import Window

_packer = PerThreadPacker()
_unpackb = msgpack.unpackb

OK_HEAD = msgpack.packb([0, None, None, None])


MAX_WINDOW = 0xFFFFFFFF  # a window (messages or bytes) fits a WINDOW frame's 32-bit fields


def pack_request_head(
    method: str,
    metadata: dict[str, Any] | None,
    timeout: float | None,
    stream: tuple[StreamMode, Window] | None = None,
) -> bytes:
    """Encode a request head (with `stream`: a stream request's, naming its mode and the caller's
    receive window); metadata that is not str -> str | bytes raises InvalidRequest."""
    if metadata:
        problem = metadata_problem(metadata)
        if problem is not None:
            raise InvalidRequest(f"request metadata {problem}")
    fields: list[Any] = [method, metadata or None, timeout]
    if stream is not None:
        mode, window = stream
        fields.append([int(mode), window.messages, window.bytes])
    try:
        return _packer.pack(fields)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidRequest(f"request metadata cannot be encoded: {exc}") from exc


def unpack_request_head(data: memoryview) -> tuple[str, dict[str, Any], float | None]:
    """Decode and check a request head.

    A head that is not the documented shape raises ProtocolError (the peer breaks the protocol); a
    well-formed head with a value this side refuses (metadata types, the timeout) raises InvalidRequest.
    """
    try:
        method, metadata, timeout = _unpackb(data)
    except Exception as exc:
        raise ProtocolError(f"malformed request head: {exc}") from exc
    if isinstance(method, str) and metadata is None and timeout is None:
        return method, {}, None  # the common head, checked without a call
    return _checked(method, metadata, timeout)


def _checked(method: Any, metadata: Any, timeout: Any) -> tuple[str, dict[str, Any], float | None]:
    if not isinstance(method, str):
        raise ProtocolError(f"method path must be a string, got {type(method).__name__}")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise ProtocolError(f"metadata must be a map, got {type(metadata).__name__}")
        problem = metadata_problem(metadata)
        if problem is not None:
            raise InvalidRequest(f"request metadata {problem}")
    if timeout is not None:
        timeout = check_timeout(timeout, InvalidRequest)
    return method, metadata or {}, timeout


def unpack_stream_head(data: memoryview) -> tuple[str, dict[str, Any], float | None, StreamMode, Window]:
    """Decode and check a stream request head: the request head's fields, the mode, and the
    caller's receive window. Errors as for `unpack_request_head`."""
    try:
        fields = _unpackb(data)
    except Exception as exc:
        raise ProtocolError(f"malformed stream request head: {exc}") from exc
    if not isinstance(fields, list) or len(fields) != 4:
        raise ProtocolError("a stream request head is [method, metadata, timeout, [mode, messages, bytes]]")
    method, metadata, timeout = _checked(*fields[:3])
    stream = fields[3]
    if not (isinstance(stream, list) and len(stream) == 3 and all(_is_int(v) for v in stream)):
        raise ProtocolError(f"a stream field is [mode, window messages, window bytes], got {stream!r}")
    mode, messages, nbytes = stream
    if mode not in (1, 2, 3):
        raise ProtocolError(f"unknown stream mode {mode} (1 requests, 2 replies, 3 both)")
    if not (0 < messages <= MAX_WINDOW and 0 < nbytes <= MAX_WINDOW):
        raise ProtocolError(
            f"a stream window must be 1 to {MAX_WINDOW}, got {messages} messages, {nbytes} bytes"
        )
    return method, metadata, timeout, StreamMode(mode), Window(messages, nbytes)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def pack_message_head(metadata: dict[str, Any]) -> bytes:
    """The head of a server's first stream message: its response metadata so far."""
    problem = metadata_problem(metadata)
    if problem is not None:
        raise InternalError(f"response metadata {problem}")
    return _packer.pack(metadata)


def unpack_message_head(data: bytes | memoryview) -> dict[str, Any]:
    """The response metadata a stream message's head carries (empty head: none)."""
    if not data:
        return {}
    try:
        metadata = _unpackb(data)
    except Exception as exc:
        raise ProtocolError(f"malformed stream message head: {exc}") from exc
    if not isinstance(metadata, dict):
        raise ProtocolError(f"a stream message head is a metadata map, got {type(metadata).__name__}")
    return metadata


def check_timeout(timeout: object, error: type[Exception]) -> float | None:
    """`timeout` as seconds, or None for infinity (no deadline); anything but a number >= 0 raises
    `error`. Zero is a deadline that has already passed."""
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise error(f"timeout must be a number of seconds, got {type(timeout).__name__}")
    if math.isnan(timeout) or timeout < 0:
        raise error(f"timeout must be a number of seconds >= 0, got {timeout!r}")
    return None if math.isinf(timeout) else timeout


def metadata_problem(metadata: dict[Any, Any]) -> str | None:
    """What is wrong with `metadata` (keys must be str, values str or bytes), or None."""
    for key, value in metadata.items():
        if not isinstance(key, str):
            return f"keys must be strings, got {type(key).__name__} {key!r}"
        if not isinstance(value, (str, bytes)):
            return f"value of {key!r} must be str or bytes, got {type(value).__name__}"
    return None


def pack_response_head(
    code: int, message: str | None, type_name: str | None, metadata: dict[str, Any] | None
) -> bytes:
    """Encode a response head; metadata that is not str -> str | bytes raises InternalError."""
    if code == StatusCode.OK and message is None and type_name is None and not metadata:
        return OK_HEAD  # the common reply head, encoded once
    if metadata:
        problem = metadata_problem(metadata)
        if problem is not None:
            raise InternalError(f"response metadata {problem}")
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
    if isinstance(code, bool) or not isinstance(code, int):
        raise ProtocolError(f"status code must be an integer, got {type(code).__name__}")
    if message is not None and not isinstance(message, str):
        raise ProtocolError(f"error message must be a string, got {type(message).__name__}")
    if type_name is not None and not isinstance(type_name, str):
        raise ProtocolError(f"error type must be a string, got {type(type_name).__name__}")
    if metadata is not None and not isinstance(metadata, dict):
        raise ProtocolError(f"response metadata must be a map, got {type(metadata).__name__}")
    return code, message or "", type_name, metadata
