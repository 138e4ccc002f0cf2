"""Python types from a server's JSON Schemas: the module `gorpc describe --python` prints, and the
types `gorpc call` checks a request against.

Objects become msgspec Structs (keyword-only, so field order never matters), enums become
`enum.Enum`s, tagged unions keep their tags; all of it has the same wire form as the server's
Structs, dataclasses or TypedDicts. Everything a server sends ends up in the source only as a
checked identifier or through `repr`, so the module is safe to write and to run.
"""

from __future__ import annotations

import base64
import itertools
import json
import keyword
import math
import re
import sys
import types
from collections.abc import Iterator
from typing import Any

from gorpc.schema import MEMBERS, TYPE_HINT

HEADER = '''"""Types and interface of {services}, written by `gorpc describe --python` from the server's
reflection. Call the service through a stub: `client.stub({first})`."""

from __future__ import annotations
'''
# What the module may need, each written only if the source uses it.
IMPORTS = {
    "datetime": "import datetime",
    "decimal": "import decimal",
    "enum": "import enum",
    "uuid": "import uuid",
    "AsyncIterator": "from collections.abc import AsyncIterator",
    "Any": "from typing import Any",
    "Literal": "from typing import Literal",  # merged with the line above when both are used
    "msgspec": "import msgspec",
}
_TAKEN = {"datetime", "decimal", "enum", "uuid", "msgspec", "AsyncIterator", "Any", "Literal", "annotations"}
_STRING_FORMATS = {
    "date-time": "datetime.datetime",
    "date": "datetime.date",
    "time": "datetime.time",
    "partial-time": "datetime.time",
    "duration": "datetime.timedelta",
    "uuid": "uuid.UUID",
    "decimal": "decimal.Decimal",
}
_PRIMITIVES = {"integer": "int", "number": "float", "boolean": "bool", "null": "None"}
STUB_ONLY = "an interface: call it through client.stub()"


def identifier(text: str, taken: frozenset[str] | set[str] = frozenset()) -> str:
    """`text` as a Python identifier that is not a keyword nor in `taken`."""
    name = re.sub(r"\W", "_", text) or "_"
    if name[0].isdigit():
        name = "_" + name
    while keyword.iskeyword(name) or name in taken:
        name += "_"
    return name


class ModuleWriter:
    """Writes Python types for JSON Schemas that share one `$defs`."""

    def __init__(self, schemas: list[dict[str, Any] | None], reserved: frozenset[str] = frozenset()) -> None:
        self._reserved = _TAKEN | reserved  # names types may not take (the interface classes')
        self._defs: dict[str, Any] = {}
        for schema in schemas:
            for name, definition in ((schema or {}).get("$defs") or {}).items():
                self._defs.setdefault(name, definition)
        self._names: dict[str, str] = {}  # $defs name -> class name
        self._tags: dict[str, tuple[str, str]] = {}  # $defs name -> (tag field, tag)
        for schema in [*schemas, *self._defs.values()]:
            self._find_tags(schema)
        self._pending: list[str] = []
        self._written: dict[str, str] = {}  # $defs name -> its source

    def type_of(self, schema: dict[str, Any] | None) -> str:
        """The Python type expression for `schema` (None or {}: Any)."""
        if not schema:
            return "Any"
        if "$ref" in schema:
            return self._ref(str(schema["$ref"]).rsplit("/", 1)[-1])
        if "anyOf" in schema:
            return _union(self.type_of(option) for option in schema["anyOf"])
        if "enum" in schema:
            return f"Literal[{', '.join(_literal(value) for value in schema['enum'])}]"
        if "const" in schema:
            return f"Literal[{_literal(schema['const'])}]"
        types = schema.get("type")
        if isinstance(types, list):
            return _union(self.type_of({**schema, "type": one}) for one in types)
        if types == "string":
            return self._string(schema)
        if types == "array":
            return self._array(schema)
        if types == "object":
            extra = schema.get("additionalProperties")
            return f"dict[str, {self.type_of(extra) if isinstance(extra, dict) else 'Any'}]"
        return _PRIMITIVES.get(str(types), "Any")

    def types_source(self) -> str:
        """Every type the expressions so far refer to, enums first (struct defaults use them)."""
        while self._pending:
            name = self._pending.pop()
            self._written[name] = self._definition(name)
        enums = [src for name, src in self._written.items() if "enum" in self._defs[name]]
        others = [src for name, src in self._written.items() if "enum" not in self._defs[name]]
        return "\n\n\n".join([*enums, *others])

    def _ref(self, name: str) -> str:
        if name not in self._names:
            taken = self._reserved | set(self._names.values())
            self._names[name] = identifier(name, taken)
            if name in self._defs:
                self._pending.append(name)
        return self._names[name] if name in self._defs else "Any"

    def _string(self, schema: dict[str, Any]) -> str:
        hint = schema.get(TYPE_HINT)
        if hint in ("datetime", "time"):
            return f"datetime.{hint}"
        if schema.get("contentEncoding") == "base64":
            return "bytes"
        return _STRING_FORMATS.get(str(schema.get("format")), "str")

    def _array(self, schema: dict[str, Any]) -> str:
        prefix = schema.get("prefixItems")
        if isinstance(prefix, list):
            return f"tuple[{', '.join(self.type_of(item) for item in prefix) or '()'}]"
        items = schema.get("items")
        return f"list[{self.type_of(items) if isinstance(items, dict) else 'Any'}]"

    def _find_tags(self, node: Any) -> None:
        """Tagged unions: each member's tag field and tag, from the union's discriminator."""
        if isinstance(node, list):
            for item in node:
                self._find_tags(item)
        elif isinstance(node, dict):
            discriminator = node.get("discriminator")
            if isinstance(discriminator, dict):
                field = str(discriminator.get("propertyName"))
                for tag, ref in (discriminator.get("mapping") or {}).items():
                    self._tags[str(ref).rsplit("/", 1)[-1]] = (field, str(tag))
            for value in node.values():
                self._find_tags(value)

    def _definition(self, name: str) -> str:
        schema = self._defs[name]
        if "enum" in schema:
            return self._enum(self._names[name], schema)
        if schema.get("type") == "object":
            return self._struct(name, schema)
        return f"{self._names[name]} = {self.type_of(schema)}"

    def _enum(self, cls: str, schema: dict[str, Any]) -> str:
        lines = [f"class {cls}(enum.Enum):", *_doc(schema)]
        lines += [f"    {member} = {_literal(value)}" for value, member in _members(schema)]
        return "\n".join(lines)

    def _struct(self, name: str, schema: dict[str, Any]) -> str:
        options = ["msgspec.Struct", "kw_only=True"]
        tag_field = None
        if name in self._tags:
            tag_field, tag = self._tags[name]
            options += [f"tag_field={_literal(tag_field)}", f"tag={_literal(tag)}"]
        lines = [f"class {self._names[name]}({', '.join(options)}):", *_doc(schema)]
        required = set(schema.get("required") or ())
        fields: set[str] = set()
        for wire_name, prop in (schema.get("properties") or {}).items():
            if wire_name != tag_field:
                lines.append(self._field(str(wire_name), prop or {}, wire_name in required, fields))
        if len(lines) == 1:
            lines.append("    pass")
        return "\n".join(lines)

    def _field(self, wire_name: str, prop: dict[str, Any], required: bool, taken: set[str]) -> str:
        attr = identifier(wire_name, taken)
        taken.add(attr)
        type_ = self.type_of(prop)
        rename = f"name={_literal(wire_name)}" if attr != wire_name else ""
        if required:
            default = ""
        elif "default" in prop:
            default = self._default(prop["default"], prop, type_)
        else:  # optional without a default: left out of the message when unset
            type_, default = f"{type_} | msgspec.UnsetType", "msgspec.UNSET"
        if rename:
            default = f"msgspec.field({', '.join(filter(None, [_as_keyword(default), rename]))})"
        return f"    {attr}: {type_}" + (f" = {default}" if default else "")

    def _default(self, value: Any, prop: dict[str, Any], type_: str) -> str:
        ref = str(prop.get("$ref", "")).rsplit("/", 1)[-1]
        if ref in self._defs and "enum" in self._defs[ref]:
            members = dict((repr(v), m) for v, m in _members(self._defs[ref]))
            member = members.get(repr(value))
            return f"{self._names[ref]}.{member}" if member else f"{self._names[ref]}({_literal(value)})"
        if type_ == "bytes" and isinstance(value, str):
            return repr(base64.b64decode(value))
        if type_.startswith("tuple[") and isinstance(value, list):
            return f"({', '.join(_literal(item) for item in value)}{',' if len(value) == 1 else ''})"
        if isinstance(value, (list, dict)):
            factory = type(value).__name__ if not value else f"lambda: {_literal(value)}"
            return f"msgspec.field(default_factory={factory})"
        return _literal(value)


def _as_keyword(default: str) -> str:
    """A default as msgspec.field's keyword argument ('' when there is none)."""
    if not default:
        return ""
    if default.startswith("msgspec.field(") and default.endswith(")"):
        return default[len("msgspec.field(") : -1]
    return f"default={default}"


def _literal(value: Any) -> str:
    """A JSON value as a Python literal."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if isinstance(value, list):
        return f"[{', '.join(_literal(item) for item in value)}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k)}: {_literal(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a Python string literal
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    return _literal(str(value))


def _members(schema: dict[str, Any]) -> list[tuple[Any, str]]:
    """An enum schema's (value, member name) pairs: the server's names when it sends them."""
    named = schema.get(MEMBERS)
    if isinstance(named, dict) and sorted(map(repr, named.values())) == sorted(map(repr, schema["enum"])):
        taken_names: set[str] = set()
        pairs = []
        for name, value in named.items():
            taken_names.add(member := identifier(str(name), taken_names))
            pairs.append((value, member))
        return pairs
    taken: set[str] = set()
    pairs = []
    for value in schema["enum"]:
        member = identifier(str(value).upper() if isinstance(value, str) else f"VALUE_{value}", taken)
        taken.add(member)
        pairs.append((value, member))
    return pairs


def _union(options: Iterator[str]) -> str:
    unique = list(dict.fromkeys(options))
    return "Any" if "Any" in unique else " | ".join(unique)


def _doc(schema: dict[str, Any], indent: str = "    ") -> list[str]:
    """Docstring lines for the schema's description: triple-quoted when that is safe, else repr."""
    text = schema.get("description")
    if not isinstance(text, str) or not text:
        return []
    if not re.fullmatch(r'[^\\"\x00-\x09\x0b-\x1f]*', text):  # quotes, backslashes, controls
        return [f"{indent}{text!r}"]
    first, *rest = text.splitlines()
    if not rest:
        return [f'{indent}"""{first}"""']
    return [f'{indent}"""{first}', *(f"{indent}{line}".rstrip() for line in rest), f'{indent}"""']


def python_module(services: list[dict[str, Any]]) -> str:
    """A module with the types of `services` (Describe's answer) and one interface class each."""
    schemas = [
        method.get(side)
        for service in services
        for method in service["methods"]
        for side in ("request_schema", "reply_schema")
    ]
    classes: list[str] = []
    for service in services:
        classes.append(identifier(str(service["name"]).rsplit(".", 1)[-1], _TAKEN | set(classes)))
    writer = ModuleWriter(schemas, frozenset(classes))
    interfaces = [_interface(cls, service, writer) for cls, service in zip(classes, services, strict=True)]
    first = classes[0] if classes else "Service"
    header = HEADER.format(services=", ".join(str(s["name"]) for s in services), first=first)
    body = "\n\n\n".join(part for part in [writer.types_source(), *interfaces] if part)
    return f"{header}{_imports(body)}\n\n{body}\n"


def _imports(body: str) -> str:
    """The import lines `body` needs, grouped as isort would: standard library, then msgspec."""
    used = [line for name, line in IMPORTS.items() if re.search(rf"\b{name}\b", body)]
    plain = sorted(line for line in used if line.startswith("import ") and line != "import msgspec")
    froms = [line for line in used if line.startswith("from collections")]
    typing_names = [line.rsplit(" ", 1)[1] for line in used if line.startswith("from typing")]
    if typing_names:
        froms.append(f"from typing import {', '.join(typing_names)}")
    third = ["", "import msgspec"] if "import msgspec" in used else []
    return "\n" + "\n".join([*plain, *froms, *third]) + "\n"


def _interface(cls: str, service: dict[str, Any], writer: ModuleWriter) -> str:
    lines = [
        f"class {cls}:",
        *_doc({"description": service.get("doc")}),
        f"    name = {_literal(str(service['name']))}",
    ]
    for method in service["methods"]:
        lines.append("")
        lines.extend(_method(method, writer))
    return "\n".join(lines)


def _method(method: dict[str, Any], writer: ModuleWriter) -> list[str]:
    name = str(method["name"])
    if not name.isidentifier() or keyword.iskeyword(name):
        return [f"    # {name!r} is not a Python name: call it with client.call({method['path']!r}, ...)"]
    kind = method.get("kind", "unary")
    request = writer.type_of(method.get("request_schema"))
    reply = writer.type_of(method.get("reply_schema"))
    if kind in ("client-streaming", "bidirectional"):
        parameter = f"requests: AsyncIterator[{request}]"
    else:
        parameter = f"req: {request}"
    if kind in ("server-streaming", "bidirectional"):
        head = f"    def {name}(self, {parameter}) -> AsyncIterator[{reply}]:"
    else:
        head = f"    async def {name}(self, {parameter}) -> {reply}:"
    body = [f"        raise NotImplementedError({_literal(STUB_ONLY)})"]
    return [head, *_doc({"description": method.get("doc")}, "        "), *body]


def request_type(method: dict[str, Any]) -> Any:
    """The Python type a method's request (or request stream item) schema describes; None when
    the method declares none. Built from the schema alone, with no code from the server."""
    schema = method.get("request_schema")
    if not schema:
        return None
    writer = ModuleWriter([schema])
    expression = writer.type_of(schema)
    # A module of its own in sys.modules: msgspec resolves the (postponed) annotations through it.
    module = types.ModuleType(f"gorpc_schema_{next(_modules)}")
    sys.modules[module.__name__] = module
    types_source = writer.types_source()
    imports = _imports(f"{types_source}\n{expression}")  # the expression may need some too
    source = HEADER.format(services="a method's request", first="") + imports + types_source
    exec(compile(source, f"<{module.__name__}>", "exec"), module.__dict__)
    return eval(expression, module.__dict__)


_modules = itertools.count()
