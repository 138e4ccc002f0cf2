"""JSON at the command line: requests in, replies out. Bytes are shown as base64."""

from __future__ import annotations

import base64
import datetime
import json
import sys
from typing import Any


class BadInput(ValueError):
    """The request given on the command line is not JSON."""


def read_request(text: str | None) -> Any:
    """The request from an argument: JSON text, `-` for standard input, `@path` for a file; None: null."""
    if text is None:
        return None
    source = "the request"
    if text == "-":
        text, source = sys.stdin.read(), "standard input"
    elif text.startswith("@"):
        with open(text[1:], encoding="utf-8") as f:
            text, source = f.read(), text[1:]
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"{source} is not valid JSON: {exc}") from exc


def to_json(value: Any, *, compact: bool = False) -> str:
    """`value` as JSON text; what JSON has no type for (bytes, tuples, map keys that are not
    strings) is converted, never refused."""
    return json.dumps(
        _jsonable(value),
        ensure_ascii=False,
        indent=None if compact else 2,
        separators=(",", ":") if compact else None,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, dict):
        return {_key(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()  # RFC 3339, as the json codec writes them
    return str(value)  # a msgpack extension type, say


def _key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, (bytes, bytearray)):
        return base64.b64encode(bytes(key)).decode("ascii")
    return json.dumps(_jsonable(key))
