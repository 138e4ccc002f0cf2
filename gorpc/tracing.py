"""Spans for calls: OpenTracing interceptors, made from the tracer a TracingPlugin gives.

The client starts a span per call (operation name = method path), tags it, and injects its context
into the request metadata; the server extracts it and runs the handler inside a child span. Spans
follow asyncio context (the tracer's scope manager must be contextvars-based), so calls a handler
makes are children of its span. With no tracer (`noop`, the default) no interceptor is added and
the call path does no tracing work. `opentracing` is imported only when a tracer is in use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gorpc.context import CallContext
from gorpc.types import Interceptor, Next

if TYPE_CHECKING:
    import opentracing

COMPONENT = "gorpc"


class NoopTracing:
    """The default: no tracer, so no spans and no tracing work on the call path."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        pass

    def tracer(self, service_name: str) -> None:
        return None


def client_interceptor(tracer: opentracing.Tracer) -> Interceptor:
    """Start a client span per call and send its context in the request metadata."""
    from opentracing import Format
    from opentracing.ext import tags

    async def trace_client_call(ctx: CallContext, request: Any, call_next: Next) -> Any:
        span_tags = {tags.SPAN_KIND: tags.SPAN_KIND_RPC_CLIENT, tags.COMPONENT: COMPONENT}
        # Closed by hand, not with `with`: a Scope's __exit__ would log the error a second time,
        # with the exception object itself, which OpenTelemetry cannot store.
        scope = tracer.start_active_span(ctx.method, tags=span_tags)
        span = scope.span
        try:
            carrier: dict[str, str] = {}
            tracer.inject(span.context, Format.TEXT_MAP, carrier)
            ctx.metadata.update(carrier)
            span.set_tag("peer.service", ctx.service)
            return await call_next(ctx, request)
        except BaseException as exc:
            _mark_error(span, exc)
            raise
        finally:
            if ctx.peer:
                span.set_tag(tags.PEER_ADDRESS, ctx.peer)
            scope.close()

    return trace_client_call


def server_interceptor(tracer: opentracing.Tracer) -> Interceptor:
    """Run each call inside a server span, the child of the caller's span when it sent one."""
    from opentracing import Format, InvalidCarrierException, SpanContextCorruptedException
    from opentracing.ext import tags

    async def trace_server_call(ctx: CallContext, request: Any, call_next: Next) -> Any:
        carrier = {k: v for k, v in ctx.metadata.items() if isinstance(v, str)}
        try:
            parent = tracer.extract(Format.TEXT_MAP, carrier)
        except (InvalidCarrierException, SpanContextCorruptedException):
            parent = None  # a caller without tracing, or a broken header: start a new trace
        span_tags = {
            tags.SPAN_KIND: tags.SPAN_KIND_RPC_SERVER,
            tags.COMPONENT: COMPONENT,
            tags.PEER_ADDRESS: ctx.peer,
        }
        scope = tracer.start_active_span(ctx.method, child_of=parent, tags=span_tags)
        try:
            return await call_next(ctx, request)
        except BaseException as exc:
            _mark_error(scope.span, exc)
            raise
        finally:
            scope.close()

    return trace_server_call


def _mark_error(span: opentracing.Span, exc: BaseException) -> None:
    from opentracing.ext import tags

    span.set_tag(tags.ERROR, True)
    span.log_kv({"event": "error", "error.kind": type(exc).__name__, "message": str(exc)})
