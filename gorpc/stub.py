"""Client stubs: a service's methods called on a server, typed by the service's own signatures.

    greeter = client.stub(Greeter)          # Greeter: the Service class, or an interface class
    reply = await greeter.SayHello(HelloRequest(msg="hi"), timeout=2)   # a HelloReply

Each method is `client.call` or `client.stream` with the method's path and reply type filled in,
chosen by the method's kind, and takes their per-call options. With the mypy plugin
(`plugins = gorpc.mypy_plugin`) mypy types every stub method from the contract's signature: the
request parameter, the reply (an awaitable, or a typed stream), and the options; it shapes them
after the `_unary`, `_server_streaming`, ... templates below (and in `gorpc.blocking.BlockingStub`).
Without the plugin the methods are `Any`. No code generation either way: the contract is ordinary
Python the two sides share.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar, Unpack

from gorpc.context import Metadata
from gorpc.contract import Signature, signature
from gorpc.kinds import MethodKind
from gorpc.service import public_methods

if TYPE_CHECKING:
    from gorpc.client_stream import ReplyStream

S = TypeVar("S")
_Q = TypeVar("_Q")  # the templates' request type
_R = TypeVar("_R")  # the templates' reply type


class BlockingCallOptions(TypedDict, total=False):
    """The per-call options of `BlockingClient.call` and `stream`, as a stub's methods take them
    (`gorpc.blocking.BlockingStub`)."""

    timeout: float | None
    metadata: Metadata | None
    hash_key: str | bytes | int | None
    idempotent: bool | None
    options: Mapping[str, Any] | None


class CallOptions(BlockingCallOptions, total=False):
    """The per-call options of `Client.call` and `stream`."""

    propagate: bool | None


class StubBase:
    """A contract's RPC methods as attributes, each `call` or `stream` (the client's) with the
    method's path and reply type filled in; `plain(path, request, reply_type)` is the client's call
    without options, which a typed unary method called without any uses."""

    def __init__(
        self,
        contract: type,
        call: Callable[..., Any],
        stream: Callable[..., Any],
        plain: Callable[[str, Any, Any], Any] | None = None,
    ) -> None:
        self._contract = contract
        for name, path, sig in contract_methods(contract):
            setattr(self, name, _bind(call, stream, path, sig, plain))

    def __getattr__(self, name: str) -> Any:
        # Only for names that are not RPC methods (those are set as attributes in __init__).
        raise AttributeError(f"{self._contract.__qualname__} has no RPC method {name!r}")

    def __repr__(self) -> str:
        return f"<gorpc {type(self).__name__} of {contract_name(self._contract)}>"


class Stub(StubBase, Generic[S]):
    """The RPC methods of the contract class `S`, each calling the server through an async client."""

    if TYPE_CHECKING:  # the shapes the mypy plugin gives a stub's methods, by kind

        async def _unary(self, request: _Q, /, **options: Unpack[CallOptions]) -> _R: ...

        def _server_streaming(self, request: _Q, /, **options: Unpack[CallOptions]) -> ReplyStream[_R]: ...

        async def _client_streaming(
            self, requests: AsyncIterable[_Q] | Iterable[_Q], /, **options: Unpack[CallOptions]
        ) -> _R: ...

        def _bidirectional(
            self, requests: AsyncIterable[_Q] | Iterable[_Q], /, **options: Unpack[CallOptions]
        ) -> ReplyStream[_R]: ...


def contract_name(contract: type) -> str:
    """The served name: a Service's `name`, an interface class's `name` if set, else its name."""
    name = getattr(contract, "name", None)
    return name if isinstance(name, str) and name else contract.__name__


def contract_methods(contract: type) -> Iterator[tuple[str, str, Signature]]:
    """(attribute, path, signature) of each RPC method of a Service class or an interface class."""
    if not isinstance(contract, type):
        raise TypeError(f"a stub's contract is a class (the Service or an interface), not {contract!r}")
    service = contract_name(contract)
    for attr in public_methods(contract):
        func = getattr(contract, attr)
        if not isinstance(func, type):  # a nested class is no method of an interface
            yield attr, f"/{service}/{attr}", signature(func, by_annotation=True)


def _bind(
    call: Callable[..., Any],
    stream: Callable[..., Any],
    path: str,
    sig: Signature,
    plain: Callable[[str, Any, Any], Any] | None = None,
) -> Callable[..., Any]:
    """One stub method: `call` or `stream` with the path and the reply type filled in (`plain`:
    the client's call without options, for a typed unary method called without any)."""
    reply_type = sig.contract.reply if sig.contract is not None else None
    if sig.kind.streams_requests:
        send = call if sig.kind is MethodKind.CLIENT_STREAMING else stream
        method = _with_requests(send, path, reply_type)
    elif sig.kind is MethodKind.UNARY and plain is not None and reply_type is not None:
        method = _unary(call, plain, path, reply_type)
    else:
        method = _with_request(call if sig.kind is MethodKind.UNARY else stream, path, reply_type)
    method.__name__ = method.__qualname__ = path.rsplit("/", 1)[1]
    return method


def _unary(
    call: Callable[..., Any], plain: Callable[[str, Any, Any], Any], path: str, reply_type: Any
) -> Callable[..., Any]:
    def method(request: Any = None, /, **options: Any) -> Any:
        if options:
            return call(path, request, reply_type=reply_type, **options)
        return plain(path, request, reply_type)

    return method


def _with_request(send: Callable[..., Any], path: str, reply_type: Any) -> Callable[..., Any]:
    # A closure, not functools.partial: a partial with keywords builds a dict on every call.
    def method(request: Any = None, /, **options: Any) -> Any:
        if options:
            return send(path, request, reply_type=reply_type, **options)
        return send(path, request, reply_type=reply_type)

    return method


def _with_requests(send: Callable[..., Any], path: str, reply_type: Any) -> Callable[..., Any]:
    def method(requests: Any, /, **options: Any) -> Any:
        return send(path, requests=requests, reply_type=reply_type, **options)

    return method
