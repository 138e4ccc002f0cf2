"""Services: public methods of a `Service` subclass are served as `/<service name>/<Method>`, and the
table of every method a server hosts."""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from gorpc.contract import Contract, signature
from gorpc.exceptions import ConfigError, MethodNotFound
from gorpc.kinds import MethodKind

logger = logging.getLogger("gorpc.server")


class Service:
    """Base class for services. Set `name` (e.g. "helloworld.Greeter"); it defaults to the class name.

    Each public method is one RPC method. It takes the request, and optionally a second parameter
    for the `CallContext`. `async def` methods run on the event loop; plain `def` methods run in the
    server's thread pool, so they may block without stalling other calls.

    The signature makes the method's kind: an async generator (or a plain generator, iterated in
    the thread pool) streams its replies; a request parameter annotated `AsyncIterator[T]` or
    `AsyncIterable[T]` receives the caller's stream of requests. Annotated request and reply types
    (msgspec Structs, dataclasses, TypedDicts, or anything msgspec decodes) are the method's
    contract: requests are decoded into them and validated, replies checked against them.
    """

    name: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__


@dataclass(frozen=True)
class Method:
    """One servable method, introspected once at registration."""

    path: str
    func: Callable[..., Any]
    takes_context: bool
    is_async: bool  # runs on the event loop (else in the thread pool)
    doc: str
    kind: MethodKind = MethodKind.UNARY
    contract: Contract | None = None  # the declared request and reply types; None: untyped


class MethodTable:
    """Every method a server hosts, by path."""

    def __init__(self) -> None:
        self.services: dict[str, Service] = {}
        self.methods: dict[str, Method] = {}

    def add(self, service: Service) -> None:
        """Host `service`; a name already hosted raises ConfigError."""
        methods = list(service_methods(service))  # checks `service` first
        name = type(service).name
        if name in self.services:
            raise ConfigError(f"service {name!r} is already registered")
        self.services[name] = service
        self.methods.update((m.path, m) for m in methods)

    def lookup(self, path: str) -> Method:
        """The method at `path`; raises MethodNotFound saying whether the service or method is unknown."""
        method = self.methods.get(path)
        if method is not None:
            return method
        service = path.split("/")[1] if path.count("/") == 2 and path.startswith("/") else None
        if service in self.services:
            raise MethodNotFound(f"service {service!r} has no method {path.rsplit('/', 1)[1]!r}")
        if service is None:
            raise MethodNotFound(f"malformed method path {path!r}: expected /<service>/<method>")
        raise MethodNotFound(f"unknown service {service!r}; this server hosts {sorted(self.services)}")


def service_methods(service: Service) -> Iterator[Method]:
    """The RPC methods of `service`, in name order. Raises ConfigError on an unusable signature."""
    if not isinstance(service, Service):
        raise ConfigError(f"{service!r} is not a gorpc.Service instance")
    name = type(service).name
    if not name or "/" in name:
        raise ConfigError(f"service name {name!r} must be non-empty and contain no '/'")
    for attr in public_methods(type(service)):
        yield _method(f"/{name}/{attr}", getattr(service, attr))


def public_methods(cls: type) -> list[str]:
    """The names of `cls`'s RPC methods, in name order: its public callables, less those of
    Service itself (or, for an interface class that is no Service, of object, and its `name`)."""
    skipped = set(dir(Service)) if issubclass(cls, Service) else set(dir(object)) | {"name"}
    return [
        attr
        for attr in sorted(dir(cls))
        if not attr.startswith("_") and attr not in skipped and callable(getattr(cls, attr))
    ]


def _method(path: str, func: Callable[..., Any]) -> Method:
    try:
        sig = signature(func)
    except TypeError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    runs_on_loop = inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)
    if sig.kind.streams_requests and not runs_on_loop:
        raise ConfigError(f"{path}: a handler that receives a request stream must be `async def`")
    if sig.unresolved:
        logger.warning(
            "%s: annotation %r does not evaluate at registration (imported only for type checkers?); "
            "the method is served untyped",
            path,
            sig.unresolved,
        )
    contract = sig.contract
    if contract is not None:
        contract = dataclasses.replace(contract, path=path)
        try:
            contract.check()
        except TypeError as exc:
            raise ConfigError(f"{path}: a declared type is not one msgspec can decode: {exc}") from None
    return Method(
        path=path,
        func=func,
        takes_context=sig.takes_context,
        is_async=runs_on_loop,
        doc=inspect.getdoc(func) or "",
        kind=sig.kind,
        contract=contract,
    )
