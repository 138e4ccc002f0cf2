"""Every extension point of gorpc, as small typed protocols in one place.

A plugin is an object that satisfies one of these; entry points only find its factory by name
(see `gorpc.plugins`). Each protocol has one or two methods that matter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from gorpc.context import CallContext

if TYPE_CHECKING:  # the core never imports a tracing library at run time
    import opentelemetry.metrics
    import opentelemetry.trace
    import opentracing

# An interceptor wraps the rest of the chain: `async def mw(ctx, request, next) -> reply`.
Next = Callable[[CallContext, Any], Awaitable[Any]]
Interceptor = Callable[[CallContext, Any, Next], Awaitable[Any]]


@runtime_checkable
class Codec(Protocol):
    """Turns payloads into bytes and back. `id` goes in every frame header (1-255).

    A codec may also offer `decoder_for(type) -> (bytes -> object)`, decoding straight into a
    declared type (see `gorpc.contract`); without it, typed messages go through their plain form.
    """

    @property
    def name(self) -> str: ...

    @property
    def id(self) -> int: ...

    def encode(self, obj: Any) -> bytes:
        """The payload as bytes; raises TypeError or ValueError for what the codec cannot carry."""
        ...

    def decode(self, data: bytes | memoryview) -> Any:
        """The payload from bytes; raises on malformed data."""
        ...


@dataclass(frozen=True)
class Node:
    """One reachable instance of a service: an address plus metadata (weight, tags, version)."""

    address: str
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash(self.address)


@dataclass(frozen=True)
class ServiceInstance:
    """What a server registers for each service it hosts."""

    service: str
    address: str
    metadata: Mapping[str, str] = field(default_factory=dict)


@runtime_checkable
class Registry(Protocol):
    """Service discovery, server side: a server registers on start and deregisters on stop."""

    async def register(self, instance: ServiceInstance) -> None:
        """Make `instance` findable (server start). Raise if the registry cannot be reached."""
        ...

    async def deregister(self, instance: ServiceInstance) -> None:
        """Stop `instance` being found (graceful stop, before draining)."""
        ...

    async def close(self) -> None:
        """Release connections (and whatever keeps registrations alive)."""
        ...


@runtime_checkable
class HealthReporting(Protocol):
    """A registry that also follows the server's health (optional): `set_serving(instance, False)`
    takes the instance out of discovery while it stays registered; True brings it back."""

    async def set_serving(self, instance: ServiceInstance, serving: bool) -> None: ...


@runtime_checkable
class Resolver(Protocol):
    """Service discovery, client side: a service name to nodes, watched for changes."""

    async def resolve(self, service: str) -> Sequence[Node]:
        """The nodes of `service` now; an empty list if it has none."""
        ...

    def watch(self, service: str) -> AsyncIterator[Sequence[Node]]:
        """Each new node list of `service` as it changes; ends when the resolver closes."""
        ...

    async def close(self) -> None:
        """Release connections and end watches."""
        ...


# The kind of plugin the `gorpc.resolvers` entry-point group finds: it plays either role or both
# (the consul plugins do both; a read-only DNS resolver would be a Resolver only).
ResolverPlugin = Registry | Resolver


@dataclass(frozen=True)
class NodeStatus:
    """A node as a registry lists it, with its health: "passing", "warning", "critical" or "unknown"."""

    node: Node
    health: str = "unknown"


@runtime_checkable
class CatalogResolver(Resolver, Protocol):
    """A resolver that can also list every service it knows (for `gorpc list`)."""

    async def catalog(self) -> Mapping[str, Sequence[NodeStatus]]:
        """Each service's nodes with their health, by service name."""
        ...


@runtime_checkable
class Balancer(Protocol):
    """Picks the node for one call. Made once per client and service; may keep state."""

    def pick(self, nodes: Sequence[Node], ctx: CallContext) -> Node:
        """One of `nodes` (never empty) for the call `ctx`."""
        ...


@runtime_checkable
class LoadAwareBalancer(Balancer, Protocol):
    """A balancer that is also told when each call it placed has ended (to count calls in flight)."""

    def done(self, node: Node, ctx: CallContext) -> None:
        """The call `ctx`, placed on `node` by `pick`, has ended (answered, failed or cancelled)."""
        ...


@runtime_checkable
class TracingPlugin(Protocol):
    """Gives the tracer that spans are made with. It may also have `close()` (flush on shutdown),
    which servers and clients call when they made the plugin from its name."""

    def tracer(self, service_name: str) -> opentelemetry.trace.Tracer | opentracing.Tracer | None:
        """The tracer for spans of `service_name`: an OpenTelemetry tracer, an OpenTracing one (with
        a contextvars scope manager, so spans follow asyncio tasks), or None for no tracing at all.
        See `gorpc.tracing`."""
        ...


class CallObserver(Protocol):
    """Told of each server call as it ends (the access log, metrics). It runs on the event loop
    for every call, so it must be quick."""

    def call_ended(
        self, path: str, peer: str, status: str, seconds: float, request_size: int, reply_size: int | None
    ) -> None:
        """`status` is a StatusCode's name; sizes are bodies as sent (reply_size None: not counted,
        for a one-way call or a stream)."""
        ...


class MetricsPlugin(Protocol):
    """Gives the meter RPC metrics are recorded with (see `gorpc.metrics`). It may also have
    `close()`, which servers and clients call when they made the plugin from its name."""

    def meter(self) -> opentelemetry.metrics.Meter | None:
        """An OpenTelemetry meter, or None to record nothing at all."""
        ...


# Factories, as entry points name them. Plugin options come from the config's [plugins.<name>] table.
ResolverFactory = Callable[[Mapping[str, Any]], ResolverPlugin]
BalancerFactory = Callable[[], Balancer]
TracingFactory = Callable[[Mapping[str, Any]], TracingPlugin]
MetricsFactory = Callable[[Mapping[str, Any]], MetricsPlugin]
