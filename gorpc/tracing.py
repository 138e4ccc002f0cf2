"""Spans for calls, from the tracer a TracingPlugin gives.

A plugin's `tracer(name)` returns one of:
- an OpenTelemetry tracer: spans made natively (`gorpc.tracing_opentelemetry`: span kinds,
  status, RPC attributes, W3C trace context and baggage through the global propagator);
- an OpenTracing tracer: spans made through OpenTracing (`gorpc.tracing_opentracing`). One that is
  OpenTelemetry's OpenTracing shim is unwrapped and used natively, so its spans are exported with
  real kinds and statuses (the shim itself has no way to set either), in the same trace as the
  application's own shim spans;
- None: no tracing. No interceptor is added and the call path does no tracing work; neither
  tracing library is imported.

Which name a tracer is asked for: a server asks per hosted service (a call to a service it does not
host uses its first service's), a client per service its calls are made under (a handler's calls
belong to that handler's service), otherwise its own name, "gorpc-client". A plugin that builds a
provider per name so labels each span with the right service.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Collection, Mapping
from typing import Any

from gorpc.context import CallContext, current_call
from gorpc.types import Interceptor, TracingPlugin

CLIENT_NAME = "gorpc-client"


class NoopTracing:
    """The default: no tracer, so no spans and no tracing work on the call path."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        pass

    def tracer(self, service_name: str) -> None:
        return None


def client_interceptor(plugin: TracingPlugin) -> Interceptor | None:
    """The client's tracing interceptor, or None when the plugin gives no tracer."""
    tracers = _Tracers(plugin, CLIENT_NAME)
    if tracers.default is None:
        return None

    def tracer_for(ctx: CallContext) -> Any:
        incoming = current_call()
        return tracers.default if incoming is None else tracers.get(incoming.service)

    if _is_opentelemetry(tracers.default):
        from gorpc import tracing_opentelemetry

        return tracing_opentelemetry.client_interceptor(tracer_for)
    from gorpc import tracing_opentracing

    return tracing_opentracing.client_interceptor(tracer_for)


def server_interceptor(
    plugin: TracingPlugin, services: Collection[str], local_address: Callable[[], str]
) -> Interceptor | None:
    """The server's tracing interceptor for these hosted services, or None without a tracer."""
    tracers = _Tracers(plugin, min(services, default="gorpc-server"))
    if tracers.default is None:
        return None
    hosted = frozenset(services)

    def tracer_for(ctx: CallContext) -> Any:
        # Only hosted names: a caller's made-up service must not make the plugin build a tracer.
        service = ctx.service
        return tracers.get(service) if service in hosted else tracers.default

    if _is_opentelemetry(tracers.default):
        from gorpc import tracing_opentelemetry

        return tracing_opentelemetry.server_interceptor(tracer_for, local_address)
    from gorpc import tracing_opentracing

    return tracing_opentracing.server_interceptor(tracer_for)


class _Tracers:
    """The plugin's tracer per name, asked for once per name; `default` is the first one's."""

    def __init__(self, plugin: TracingPlugin, default_name: str) -> None:
        self._plugin = plugin
        self._by_name: dict[str, Any] = {}
        self.default = self._made(default_name)
        self._by_name[default_name] = self.default

    def get(self, name: str) -> Any:
        tracer = self._by_name.get(name)
        if tracer is None:
            tracer = self._by_name[name] = self._made(name) or self.default
        return tracer

    def _made(self, name: str) -> Any:
        tracer = self._plugin.tracer(name)
        unwrap = getattr(tracer, "unwrap", None)
        if unwrap is not None and hasattr(tracer, "start_active_span"):  # OpenTracing's shim
            inner = unwrap()
            if _is_opentelemetry(inner):
                return inner
        return tracer


def _is_opentelemetry(tracer: object) -> bool:
    """An OpenTelemetry tracer? Without importing OpenTelemetry: a plugin that made one did."""
    api = sys.modules.get("opentelemetry.trace")
    return api is not None and isinstance(tracer, api.Tracer)
