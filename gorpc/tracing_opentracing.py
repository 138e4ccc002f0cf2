"""Spans made with an OpenTracing tracer (`mock`, `jaeger`, or an application's own).

The client starts a span per call (operation name = method path), tags it, and injects its context
into the request metadata; the server extracts it and runs the handler inside a child span. Spans
follow asyncio context (the tracer's scope manager must be contextvars-based), so calls a handler
makes are children of its span. OpenTracing has no span kind or status of its own: they are the
`span.kind` and `error` tags, which Jaeger reads as such.

A stream call is one span on each side, from its start until its last reply (or its error); the
number of replies is tagged on it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import opentracing
from opentracing import Format, InvalidCarrierException, SpanContextCorruptedException
from opentracing.ext import tags

from gorpc.context import CallContext
from gorpc.interceptors import watched_replies
from gorpc.kinds import StreamMode
from gorpc.types import Interceptor, Next

COMPONENT = "gorpc"
TracerFor = Callable[[CallContext], opentracing.Tracer]


def client_interceptor(tracer_for: TracerFor) -> Interceptor:
    """Start a client span per call and send its context in the request metadata."""

    async def trace_client_call(ctx: CallContext, request: Any, call_next: Next) -> Any:
        tracer = tracer_for(ctx)
        span_tags = {tags.SPAN_KIND: tags.SPAN_KIND_RPC_CLIENT, tags.COMPONENT: COMPONENT}
        # Closed by hand, not with `with`: a Scope's __exit__ would log the error a second time,
        # with the exception object itself, which some tracers cannot store.
        streams_replies = bool(ctx.mode & StreamMode.REPLIES)
        # A stream's span outlives this scope: it ends with the stream (see `_traced_replies`).
        scope = tracer.start_active_span(ctx.method, tags=span_tags, finish_on_close=not streams_replies)
        span = scope.span
        try:
            carrier: dict[str, str] = {}
            tracer.inject(span.context, Format.TEXT_MAP, carrier)
            ctx.metadata.update(carrier)
            span.set_tag("peer.service", ctx.service)
            reply = await call_next(ctx, request)
        except BaseException as exc:
            _mark_error(span, exc)
            if streams_replies:
                span.finish()
            raise
        finally:
            if ctx.peer:
                span.set_tag(tags.PEER_ADDRESS, ctx.peer)
            scope.close()
        return _traced_replies(reply, span, span.finish) if streams_replies else reply

    return trace_client_call


def server_interceptor(tracer_for: TracerFor) -> Interceptor:
    """Run each call inside a server span, the child of the caller's span when it sent one."""

    async def trace_server_call(ctx: CallContext, request: Any, call_next: Next) -> Any:
        tracer = tracer_for(ctx)
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
            reply = await call_next(ctx, request)
        except BaseException as exc:
            _mark_error(scope.span, exc)
            scope.close()
            raise
        if ctx.mode & StreamMode.REPLIES:
            # Iterated in this task, so the span stays active while the handler makes its replies.
            return _traced_replies(reply, scope.span, scope.close)
        scope.close()
        return reply

    return trace_server_call


def _traced_replies(
    replies: AsyncIterator[Any], span: opentracing.Span, finish: Callable[[], object]
) -> AsyncIterator[Any]:
    """`replies`, with `span` finished (by `finish`) after the last one or the stream's error."""
    replied = 0

    def reply() -> None:
        nonlocal replied
        replied += 1

    def end(error: BaseException | None) -> None:
        if error is not None:
            _mark_error(span, error)
        span.set_tag("rpc.stream.replies", replied)
        finish()

    return watched_replies(replies, end, reply)


def _mark_error(span: opentracing.Span, exc: BaseException) -> None:
    span.set_tag(tags.ERROR, True)
    span.log_kv({"event": "error", "error.kind": type(exc).__name__, "message": str(exc)})
