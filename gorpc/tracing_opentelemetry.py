"""Spans made natively with an OpenTelemetry tracer (`opentelemetry-api` only; the SDK and its
exporters are the application's, or the `opentelemetry` plugin's).

Each call is a CLIENT span on the caller and a SERVER span on the server, named `service/Method`,
with OpenTelemetry's RPC attributes (`rpc.system` "gorpc", `rpc.service`, `rpc.method`,
`rpc.response.status_code`, `server.address`/`server.port` and the peer). A failed call's span has
status ERROR, an `error.type` and an exception event. Trace context and baggage travel in the
call's metadata through the global propagator (W3C `traceparent`, `tracestate` and `baggage` by
default; `OTEL_PROPAGATORS` or `opentelemetry.propagate.set_global_textmap` changes it). The server
runs the handler in the span's context, baggage included, so its own spans and calls are children.

A stream is one span from its start until its last message, with a `message` event per message
(`rpc.message.type` SENT or RECEIVED, `rpc.message.id` counting from 1).
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind, Status, StatusCode

from gorpc.context import CallContext
from gorpc.interceptors import watched_replies
from gorpc.kinds import StreamMode
from gorpc.semconv import call_attributes, host_and_port, status_name
from gorpc.types import Interceptor, Next

TracerFor = Callable[[CallContext], trace.Tracer]
SENT, RECEIVED = "SENT", "RECEIVED"


class _TextGetter(Getter[Mapping[str, Any]]):
    """Reads propagation fields from call metadata; a value that is not a string is not one."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        return [value] if isinstance(value, str) else None

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return [key for key, value in carrier.items() if isinstance(value, str)]


_GETTER = _TextGetter()


def client_interceptor(tracer_for: TracerFor) -> Interceptor:
    """A CLIENT span per call; its context (and the current baggage) goes in the request metadata."""

    async def trace_client_call(ctx: CallContext, request: Any, call_next: Next) -> Any:
        name, attributes = call_attributes(ctx.method)
        span = tracer_for(ctx).start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
        # The current context's baggage rides along with the new span's identity.
        propagate.inject(ctx.metadata, context=trace.set_span_in_context(span))
        if ctx.mode & StreamMode.REQUESTS:
            request = _messages(request, span, SENT)
        try:
            reply = await call_next(ctx, request)
        except BaseException as exc:
            _set_peer(span, ctx.peer, "server")
            _end_failed(span, exc)
            raise
        _set_peer(span, ctx.peer, "server")
        if ctx.mode & StreamMode.REPLIES:
            return _spanned_replies(reply, span, RECEIVED)  # the span ends with the stream
        _end_ok(span)
        return reply

    return trace_client_call


def server_interceptor(tracer_for: TracerFor, local_address: Callable[[], str]) -> Interceptor:
    """A SERVER span per call, the child of the caller's when its metadata carries one; the handler
    runs in its context."""

    async def trace_server_call(ctx: CallContext, request: Any, call_next: Next) -> Any:
        parent = propagate.extract(ctx.metadata, getter=_GETTER)
        name, attributes = call_attributes(ctx.method)
        span = tracer_for(ctx).start_span(name, parent, kind=SpanKind.SERVER, attributes=attributes)
        _set_peer(span, local_address(), "server")
        _set_peer(span, ctx.peer, "client")
        # Each call runs in a task of its own, so the attached context ends with the task: nothing
        # to detach (a detach in a stream's generator could run in another context).
        otel_context.attach(trace.set_span_in_context(span, parent))
        if ctx.mode & StreamMode.REQUESTS:
            request = _messages(request, span, RECEIVED)
        try:
            reply = await call_next(ctx, request)
        except BaseException as exc:
            _end_failed(span, exc)
            raise
        if ctx.mode & StreamMode.REPLIES:
            return _spanned_replies(reply, span, SENT)
        _end_ok(span)
        return reply

    return trace_server_call


def _set_peer(span: trace.Span, address: str, role: str) -> None:
    """`server.address`/`server.port` or `client.address`/`client.port` from a gorpc address."""
    if not address:
        return
    host, port = host_and_port(address)
    span.set_attribute(f"{role}.address", host)
    if port is not None:
        span.set_attribute(f"{role}.port", port)
    if role == "client":
        span.set_attribute("network.peer.address", host)


def _end_ok(span: trace.Span) -> None:
    span.set_attribute("rpc.response.status_code", "OK")
    span.end()


def _end_failed(span: trace.Span, exc: BaseException) -> None:
    code = status_name(exc)
    span.set_attribute("rpc.response.status_code", code)
    span.set_attribute("error.type", code if code != "REMOTE_ERROR" else type(exc).__qualname__)
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, str(exc)))
    span.end()


async def _messages(
    requests: AsyncIterable[Any] | Iterable[Any], span: trace.Span, direction: str
) -> AsyncIterator[Any]:
    """`requests`, with a message event on `span` for each."""
    count = 0
    if isinstance(requests, AsyncIterable):
        async for request in requests:
            count += 1
            span.add_event("message", {"rpc.message.type": direction, "rpc.message.id": count})
            yield request
    else:
        for request in requests:
            count += 1
            span.add_event("message", {"rpc.message.type": direction, "rpc.message.id": count})
            yield request


def _spanned_replies(replies: AsyncIterator[Any], span: trace.Span, direction: str) -> AsyncIterator[Any]:
    """`replies`, with a message event each, and `span` ended after the last one or the error."""
    ids = itertools.count(1)

    def message() -> None:
        span.add_event("message", {"rpc.message.type": direction, "rpc.message.id": next(ids)})

    def end(error: BaseException | None) -> None:
        if error is None:
            _end_ok(span)
        else:
            _end_failed(span, error)

    return watched_replies(replies, end, message)
