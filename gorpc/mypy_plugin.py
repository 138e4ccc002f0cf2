"""A mypy plugin that types client stubs from their contract: `plugins = gorpc.mypy_plugin`.

For `greeter: Stub[Greeter]`, `greeter.SayHello` gets the shape of the stub template for the
method's kind (see `gorpc.stub`), with the template's request and reply type variables replaced by
the types the contract's signature declares. So `await greeter.SayHello(req)` is a HelloReply, a
wrong request type is an error, and the per-call options are checked like `Client.call`'s.

Python's type system cannot map a class's methods to new signatures by itself; this is the only
place gorpc needs a plugin, and the stubs work (as `Any`) without it.
"""

from __future__ import annotations

from collections.abc import Callable

from mypy.expandtype import expand_type
from mypy.nodes import Decorator, FuncDef, TypeInfo
from mypy.plugin import AttributeContext, Plugin
from mypy.typeops import bind_self
from mypy.types import (
    AnyType,
    CallableType,
    Instance,
    ProperType,
    Type,
    TypeOfAny,
    TypeVarType,
    get_proper_type,
)

STUB_BASE = "gorpc.stub.StubBase"  # defines the __getattr__ (Stub and BlockingStub the templates)
_REQUEST_STREAMS = {"typing.AsyncIterator", "typing.AsyncIterable"}
_REPLY_STREAMS = _REQUEST_STREAMS | {
    "typing.AsyncGenerator",
    "typing.Iterator",
    "typing.Iterable",
    "typing.Generator",
}


class GorpcPlugin(Plugin):
    def get_attribute_hook(self, fullname: str) -> Callable[[AttributeContext], Type] | None:
        # A stub's RPC methods are found through its __getattr__, which mypy names after the class
        # that defines it (StubBase), so the stub's own type comes from the context.
        stub, _, attr = fullname.rpartition(".")
        if stub == STUB_BASE and not attr.startswith("_"):
            return lambda ctx: _stub_method(ctx, attr)
        return None


def _stub_method(ctx: AttributeContext, name: str) -> Type:
    stub = get_proper_type(ctx.type)
    if not isinstance(stub, Instance) or not stub.args:
        return ctx.default_attr_type
    contract = get_proper_type(stub.args[0])
    if not isinstance(contract, Instance):
        return ctx.default_attr_type  # Stub[Any]: nothing to go by
    func = _find_method(contract.type, name)
    if func is None:
        ctx.api.fail(f'"{contract.type.name}" has no RPC method "{name}"', ctx.context)
        return AnyType(TypeOfAny.from_error)
    kind, request, reply = _shape(func)
    template = stub.type.get_method(f"_{kind}")
    assert template is not None and isinstance(template.type, CallableType), kind
    return _fill(template.type, request, reply).copy_modified(name=f"{name} of {contract.type.name}")


def _find_method(info: TypeInfo, name: str) -> FuncDef | None:
    for base in info.mro:
        node = base.names.get(name)
        if node is not None:
            target = node.node.func if isinstance(node.node, Decorator) else node.node
            return target if isinstance(target, FuncDef) else None
    return None


def _shape(func: FuncDef) -> tuple[str, Type, Type]:
    """The method's kind (a template's name) and its request and reply (item) types."""
    any_type = AnyType(TypeOfAny.unannotated)
    signature = get_proper_type(func.type)
    if not isinstance(signature, CallableType) or len(signature.arg_types) < 2:
        return "unary", any_type, any_type
    request = get_proper_type(signature.arg_types[1])
    reply = get_proper_type(signature.ret_type)
    if func.is_coroutine and not func.is_async_generator:
        reply = _arg(reply, 2)  # mypy stores an async def's return as Coroutine[Any, Any, T]
    streams_requests = _is(request, _REQUEST_STREAMS)
    streams_replies = func.is_async_generator or func.is_generator or _is(reply, _REPLY_STREAMS)
    if streams_requests:
        request = _arg(request, 0)
    if streams_replies:
        reply = _arg(reply, 0)
    kind = {
        (False, False): "unary",
        (False, True): "server_streaming",
        (True, False): "client_streaming",
        (True, True): "bidirectional",
    }[streams_requests, bool(streams_replies)]
    return kind, request, reply


def _is(type_: ProperType, names: set[str]) -> bool:
    return isinstance(type_, Instance) and type_.type.fullname in names


def _arg(type_: ProperType, index: int) -> ProperType:
    if isinstance(type_, Instance) and len(type_.args) > index:
        return get_proper_type(type_.args[index])
    return AnyType(TypeOfAny.unannotated)


def _fill(template: CallableType, request: Type, reply: Type) -> CallableType:
    """The template with its self bound and its type variables (_Q, _R) replaced."""
    env = {}
    for variable in template.variables:
        if isinstance(variable, TypeVarType):
            env[variable.id] = request if variable.name == "_Q" else reply
    filled = get_proper_type(expand_type(bind_self(template), env))
    assert isinstance(filled, CallableType)
    return filled.copy_modified(variables=[])


def plugin(version: str) -> type[Plugin]:
    return GorpcPlugin
