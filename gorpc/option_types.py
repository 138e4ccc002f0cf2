"""Checking configuration values against the types their dataclass fields declare.

TOML and keyword arguments both arrive untyped: `tls = "false"` is a non-empty string, so truthy,
and `max_workers = 2.5` would reach a thread pool. Each option is checked against its annotation
when the configuration is built, so the mistake is named there and not at the first call.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Union

from gorpc.exceptions import ConfigError


@functools.cache
def field_types(cls: type) -> dict[str, Any]:
    """Each dataclass field's declared type, with string annotations resolved."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def check_option(table: str, name: str, value: object, declared: Any) -> None:
    """Raise ConfigError naming `[table] name`, the type it takes and `value`, unless `value` fits."""
    if not conforms(value, declared):
        raise ConfigError(
            f"[{table}] {name} must be {describe(declared)}, got {value!r} ({type(value).__name__})"
        )


def conforms(value: object, declared: Any) -> bool:
    """Whether `value` is of the declared type. An int is a float; a bool is neither."""
    if declared is Any or declared is object:
        return True
    origin = typing.get_origin(declared)
    if origin is Union or origin is types.UnionType:
        return any(conforms(value, arg) for arg in typing.get_args(declared))
    if declared is type(None):
        return value is None
    if declared is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if declared is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if origin is tuple:  # only tuple[X, ...]: a TOML array arrives as a list
        (item, _) = typing.get_args(declared)
        return isinstance(value, (list, tuple)) and all(conforms(v, item) for v in value)
    if origin is Mapping or origin is dict:
        key, item = typing.get_args(declared)
        return isinstance(value, Mapping) and all(
            conforms(k, key) and conforms(v, item) for k, v in value.items()
        )
    if origin is Sequence or origin is list:
        (item,) = typing.get_args(declared)
        return (
            isinstance(value, (list, tuple))
            and not isinstance(value, str)
            and all(conforms(v, item) for v in value)
        )
    if isinstance(declared, type):
        return isinstance(value, declared)
    return True  # a form not used by any option (say a Literal): leave it to __post_init__


def describe(declared: Any) -> str:
    """A type as a reader of the configuration reference would write it."""
    if declared is Any:
        return "anything"
    origin = typing.get_origin(declared)
    if origin is Union or origin is types.UnionType:
        return " or ".join(describe(arg) for arg in typing.get_args(declared))
    if declared is type(None):
        return "none"
    if origin is tuple or origin is Sequence or origin is list:
        return f"a list of {describe(typing.get_args(declared)[0])}"
    if origin is Mapping or origin is dict:
        key, item = typing.get_args(declared)
        return f"a table of {describe(key)} to {describe(item)}"
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}
    return names.get(declared, getattr(declared, "__name__", str(declared)))
