"""JSON Schemas of a method's declared types, for reflection (`msgspec.json.schema_components`).

A schema describes the JSON form of a message. The msgpack form is the same shape, except that
bytes are binary (not base64) and a timezone-aware datetime is msgpack's timestamp extension.

JSON Schema has no format for a datetime that may lack a timezone, so msgspec writes a plain
string for it; we add `"x-gorpc-type": "datetime"` (or "time") so that a generated client module
decodes it as one, and an enum's member names as `"x-gorpc-members": {name: value}`. That needs
msgspec's schema generator, which is private: if a later msgspec moves it, the schemas stay
correct and only these hints go.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

REF_TEMPLATE = "#/$defs/{name}"
TYPE_HINT = "x-gorpc-type"
MEMBERS = "x-gorpc-members"


def check_decodable(type_: Any) -> None:
    """Raise TypeError if `type_` holds a class msgspec cannot build (a plain class, say: msgspec
    takes such an annotation, and fails only when a message arrives)."""
    from msgspec import inspect as mi

    seen: set[int] = set()
    todo: list[Any] = [mi.type_info(type_)]
    while todo:
        node = todo.pop()
        if isinstance(node, (list, tuple)):
            todo.extend(node)
        elif isinstance(node, mi.Type) and id(node) not in seen:
            seen.add(id(node))
            if isinstance(node, mi.CustomType) and node.cls is not object:
                raise TypeError(f"msgspec cannot build {node.cls.__qualname__} from a message")
            todo.extend(getattr(node, field) for field in node.__struct_fields__)
        elif isinstance(node, mi.Field):
            todo.append(node.type)


def schemas(types: Sequence[Any]) -> list[dict[str, Any] | None]:
    """One JSON Schema per type (None for an untyped side), each carrying the `$defs` it uses."""
    typed = [t for t in types if t is not None]
    if not typed:
        return [None for _ in types]
    made, components = _schema_components(typed)
    found = iter(made)
    result: list[dict[str, Any] | None] = []
    for type_ in types:
        if type_ is None:
            result.append(None)
            continue
        schema = dict(next(found))
        used = _referenced(schema, components)
        if used:
            schema["$defs"] = {name: components[name] for name in components if name in used}
        result.append(schema)
    return result


def _schema_components(types: list[Any]) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
    try:
        return _with_type_hints(types)
    except (ImportError, AttributeError):  # msgspec's private generator moved: no hints
        return msgspec.json.schema_components(types, schema_hook=_anything, ref_template=REF_TEMPLATE)


def _with_type_hints(types: list[Any]) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
    from msgspec import _json_schema as private
    from msgspec import inspect as mi

    class Generator(private._SchemaGenerator):
        def to_schema(self, t: mi.Type, check_ref: bool = True) -> dict[str, Any]:
            schema: dict[str, Any] = super().to_schema(t, check_ref)
            if isinstance(t, mi.DateTimeType):
                schema[TYPE_HINT] = "datetime"
            elif isinstance(t, mi.TimeType):
                schema[TYPE_HINT] = "time"
            elif isinstance(t, mi.EnumType) and not check_ref:  # a component: its member names
                schema[MEMBERS] = {member.name: member.value for member in t.cls}
            return schema

    infos = mi.multi_type_info(types)
    component_types = private._collect_component_types(infos)
    names = private._build_name_map(component_types)
    generator = Generator(names, _anything, REF_TEMPLATE)
    made = tuple(generator.to_schema(t) for t in infos)
    return made, {names[cls]: generator.to_schema(t, False) for cls, t in component_types.items()}


def _anything(type_: Any) -> dict[str, Any]:
    """The schema of a type JSON Schema has no word for: `object`, which takes any value."""
    return {TYPE_HINT: "any"}


def _referenced(schema: Any, components: dict[str, Any]) -> set[str]:
    """The names of the components `schema` refers to, directly or through others."""
    found: set[str] = set()
    todo = [schema]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[-1]
                if name not in found and name in components:
                    found.add(name)
                    todo.append(components[name])
            todo.extend(node.values())
        elif isinstance(node, list):
            todo.extend(node)
    return found
