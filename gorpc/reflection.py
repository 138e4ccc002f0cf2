"""The reflection service every server hosts (unless `reflection = false`): what it serves, described.

`gorpc describe TARGET` calls it. It is not registered with the resolver: it is part of every server.
"""

from __future__ import annotations

import inspect
from typing import Any

from gorpc.exceptions import InvalidRequest
from gorpc.schema import schemas
from gorpc.service import Method, MethodTable, Service

NAME = "gorpc.Reflection"


class Reflection(Service):
    """Describes the services this server hosts."""

    name = NAME

    def __init__(self, table: MethodTable) -> None:
        self._table = table

    async def ListServices(self, req: None) -> list[str]:
        """The names of the services this server hosts (this one left out). Takes nil."""
        return self._hosted()

    async def Describe(self, service: str | None) -> list[dict[str, Any]]:
        """Each hosted service, or only the one named, with its methods: name, path, kind (unary,
        server-streaming, client-streaming, bidirectional), signature, docstring, whether it runs
        on the event loop or in a thread, and the JSON Schemas of its request and reply types."""
        hosted = self._hosted()
        if service is None:
            return [self._describe(name) for name in hosted]
        if service not in self._table.services:
            raise InvalidRequest(f"this server hosts no service {service!r}; it hosts {hosted}")
        return [self._describe(service)]

    def _hosted(self) -> list[str]:
        # Every server's built-in services (this one, gorpc.Health) are left out of the list;
        # Describe still answers for them by name.
        return [name for name in sorted(self._table.services) if not name.startswith("gorpc.")]

    def _describe(self, name: str) -> dict[str, Any]:
        cls = type(self._table.services[name])
        prefix = f"/{name}/"
        methods = [m for path, m in sorted(self._table.methods.items()) if path.startswith(prefix)]
        return {
            "name": name,
            # The class's own docstring only: inspect.getdoc would show Service's for an undocumented one.
            "doc": inspect.cleandoc(cls.__doc__) if cls.__doc__ else "",
            "methods": [_method(m) for m in methods],
        }


def _method(method: Method) -> dict[str, Any]:
    contract = method.contract
    try:
        request, reply = schemas([contract.request, contract.reply] if contract else [None, None])
    except TypeError:  # a type JSON Schema cannot express (a msgpack Ext): say nothing of it
        request = reply = None
    return {
        "name": method.path.rsplit("/", 1)[1],
        "path": method.path,
        "kind": method.kind.value,
        "signature": _signature(method),
        "doc": method.doc,
        "runs": "async" if method.is_async else "thread",
        # JSON Schemas of the declared types (of a stream's items); None: untyped, anything goes.
        "request_schema": request,
        "reply_schema": reply,
    }


def _signature(method: Method) -> str:
    try:
        signature = inspect.signature(method.func, eval_str=True)
    except Exception:  # an annotation that does not evaluate here: show it as written
        signature = inspect.signature(method.func)
    return str(signature)
