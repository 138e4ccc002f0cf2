"""Tracing: one trace across client -> A -> B with real spans (MockTracer, OTLP/HTTP, Jaeger UDP)."""

import asyncio
import http.server
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import pytest

from gorpc import Client, ConfigError, RemoteError, Server, Service
from gorpc.testing import server_process
from gorpc_tracing.mock import MockTracing


class B(Service):
    name = "trace.B"

    async def Work(self, req):
        return f"b did {req}"

    async def Fail(self, req):
        raise ValueError("b cannot")


class A(Service):
    """Calls B from inside its handlers, so its outgoing spans must be children of its own."""

    name = "trace.A"

    def __init__(self, client_to_b: Client) -> None:
        self.b = client_to_b

    async def Relay(self, req):
        replies = await asyncio.gather(self.b.call("/trace.B/Work", req), self.b.call("/trace.B/Work", 2))
        return list(replies)

    async def RelayFail(self, req):
        return await self.b.call("/trace.B/Fail", req)


class Chain:
    """client -> A -> B, every part made with the same tracing options."""

    def __init__(self, **tracing) -> None:
        self.tracing = tracing

    async def __aenter__(self):
        self.server_b = Server(address="127.0.0.1:0", **self.tracing)
        self.server_b.register(B())
        await self.server_b.start()
        self.client_to_b = Client(self.server_b.address, **self.tracing)
        self.server_a = Server(address="127.0.0.1:0", **self.tracing)
        self.server_a.register(A(self.client_to_b))
        await self.server_a.start()
        self.client = Client(self.server_a.address, **self.tracing)
        return self

    async def __aexit__(self, *exc_info):
        await self.client.close()
        await self.server_a.stop()
        await self.client_to_b.close()
        await self.server_b.stop()


def by_operation(spans, kind):
    return {s.operation_name: s for s in spans if s.tags["span.kind"] == kind}


@pytest.mark.asyncio
async def test_three_hops_make_one_trace_with_parent_links_and_tags():
    tracing = MockTracing()
    async with Chain(tracer=tracing) as chain:
        assert await chain.client.call("/trace.A/Relay", 1) == ["b did 1", "b did 2"]
        spans = tracing.finished_spans()
    assert len(spans) == 6  # client->A, A server, 2 x (A->B client, B server)
    assert {s.context.trace_id for s in spans} == {spans[0].context.trace_id}
    clients = [s for s in spans if s.tags["span.kind"] == "client"]
    servers = [s for s in spans if s.tags["span.kind"] == "server"]
    [top] = [s for s in clients if s.operation_name == "/trace.A/Relay"]
    [a_server] = [s for s in servers if s.operation_name == "/trace.A/Relay"]
    to_b = [s for s in clients if s.operation_name == "/trace.B/Work"]
    b_servers = [s for s in servers if s.operation_name == "/trace.B/Work"]
    assert top.parent_id is None
    assert a_server.parent_id == top.context.span_id
    assert [s.parent_id for s in to_b] == [a_server.context.span_id] * 2  # children across gather()
    assert sorted(s.parent_id for s in b_servers) == sorted(s.context.span_id for s in to_b)
    assert top.tags["peer.address"] == chain.server_a.address
    assert top.tags["peer.service"] == "trace.A"
    assert all(s.tags["component"] == "gorpc" for s in spans)
    assert all(s.tags["peer.address"] for s in servers)  # the caller's address
    assert not any(s.tags.get("error") for s in spans)


@pytest.mark.asyncio
async def test_a_handler_error_marks_every_span_on_its_way_back():
    tracing = MockTracing()
    async with Chain(tracer=tracing) as chain:
        with pytest.raises(RemoteError, match="b cannot"):
            await chain.client.call("/trace.A/RelayFail", 1)
        spans = tracing.finished_spans()
    assert len(spans) == 4
    assert all(s.tags.get("error") is True for s in spans)
    [b_server] = [s for s in spans if s.operation_name == "/trace.B/Fail" and s.tags["span.kind"] == "server"]
    [log] = b_server.logs
    assert log.key_values == {"event": "error", "error.kind": "ValueError", "message": "b cannot"}


@pytest.mark.asyncio
async def test_with_tracing_off_nothing_is_added_to_the_call(pair):
    server, client = pair
    assert server.config.tracer == client.config.tracer == "noop"
    reply = await client.call("/helloworld.Greeter/Context", None)
    assert reply["metadata"] == {}  # no trace headers travel
    assert client.interceptors == ()  # no interceptor on the call path at all


@pytest.mark.asyncio
async def test_a_caller_without_tracing_starts_a_new_trace_on_the_server():
    tracing = MockTracing()
    server = Server(address="127.0.0.1:0", tracer=tracing)
    server.register(B())
    async with server, Client(server.address, metadata=None) as client:
        await client.call("/trace.B/Work", 1, metadata={"uber-trace-id": "garbage"})
    [span] = tracing.finished_spans()
    assert span.parent_id is None and span.tags["span.kind"] == "server"


# -- OpenTelemetry over OTLP/HTTP -------------------------------------------------------------------


class OtlpReceiver(http.server.ThreadingHTTPServer):
    """Collects OTLP/HTTP trace exports (protobuf) on 127.0.0.1, port 0."""

    def __init__(self) -> None:
        self.requests: list[bytes] = []
        received = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                received.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/traces"

    def spans(self) -> list["Exported"]:
        """Every span received, decoded from the protobuf the exporters sent."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        found = []
        for body in self.requests:
            export = ExportTraceServiceRequest.FromString(body)
            for resource_spans in export.resource_spans:
                resource = attribute_values(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    found.extend(Exported(resource["service.name"], span) for span in scope_spans.spans)
        return found


def attribute_values(attributes) -> dict:
    """OTLP KeyValues as a plain dict (each value in the type it was sent as)."""
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in attributes}


class Exported:
    """One exported span, decoded: what a tracing backend would see."""

    KINDS: ClassVar = {1: "INTERNAL", 2: "SERVER", 3: "CLIENT"}
    STATUSES: ClassVar = {0: "UNSET", 1: "OK", 2: "ERROR"}

    def __init__(self, service: str, span) -> None:
        self.service = service
        self.name = span.name
        self.kind = self.KINDS.get(span.kind, span.kind)
        self.status = self.STATUSES[span.status.code]
        self.status_message = span.status.message
        self.attributes = attribute_values(span.attributes)
        self.events = [(e.name, attribute_values(e.attributes)) for e in span.events]
        self.trace_id, self.span_id, self.parent_id = span.trace_id, span.span_id, span.parent_span_id

    def __repr__(self) -> str:
        return f"<{self.kind} {self.name} of {self.service}>"


@pytest.fixture
def otlp_receiver():
    receiver = OtlpReceiver()
    receiver.thread.start()
    yield receiver
    receiver.shutdown()
    receiver.server_close()


def one(spans, kind, name):
    [span] = [s for s in spans if s.kind == kind and s.name == name]
    return span


def assert_one_tree(spans, root):
    """All in `root`'s trace, every parent among them."""
    assert {s.trace_id for s in spans} == {root.trace_id}
    ids = {s.span_id for s in spans}
    assert root.parent_id == b""
    assert all(s.parent_id in ids for s in spans if s is not root)


@pytest.mark.asyncio
async def test_opentelemetry_spans_have_kinds_rpc_attributes_and_service_names(otlp_receiver):
    tracing = {"tracer": "opentelemetry", "plugins": {"opentelemetry": {"endpoint": otlp_receiver.endpoint}}}
    async with Chain(**tracing) as chain:
        assert await chain.client.call("/trace.A/Relay", 1) == ["b did 1", "b did 2"]
        a_host, a_port = chain.server_a.address.rsplit(":", 1)
        b_port = int(chain.server_b.address.rsplit(":", 1)[1])
    spans = otlp_receiver.spans()  # stopping and closing flushed every exporter
    assert sorted((s.kind, s.name) for s in spans) == [
        ("CLIENT", "trace.A/Relay"),
        ("CLIENT", "trace.B/Work"),
        ("CLIENT", "trace.B/Work"),
        ("SERVER", "trace.A/Relay"),
        ("SERVER", "trace.B/Work"),
        ("SERVER", "trace.B/Work"),
    ]
    top = one(spans, "CLIENT", "trace.A/Relay")
    a_server = one(spans, "SERVER", "trace.A/Relay")
    assert_one_tree(spans, top)
    assert a_server.parent_id == top.span_id
    assert {s.parent_id for s in spans if s.kind == "CLIENT" and s is not top} == {a_server.span_id}
    # Each span under the service it belongs to: A's calls to B are A's.
    assert {(s.service, s.kind, s.name) for s in spans} == {
        ("gorpc-client", "CLIENT", "trace.A/Relay"),
        ("trace.A", "SERVER", "trace.A/Relay"),
        ("trace.A", "CLIENT", "trace.B/Work"),
        ("trace.B", "SERVER", "trace.B/Work"),
    }
    assert top.attributes == {
        "rpc.system": "gorpc",
        "rpc.service": "trace.A",
        "rpc.method": "Relay",
        "rpc.response.status_code": "OK",
        "server.address": a_host,
        "server.port": int(a_port),
    }
    b_server = next(s for s in spans if s.kind == "SERVER" and s.service == "trace.B")
    assert b_server.attributes["server.port"] == b_port
    assert b_server.attributes["client.address"] == "127.0.0.1"
    assert isinstance(b_server.attributes["client.port"], int)
    assert {s.status for s in spans} == {"UNSET"}
    assert not any(s.events for s in spans)


@pytest.mark.asyncio
async def test_opentelemetry_a_failed_call_has_error_status_and_an_exception_event(otlp_receiver):
    tracing = {"tracer": "opentelemetry", "plugins": {"opentelemetry": {"endpoint": otlp_receiver.endpoint}}}
    async with Chain(**tracing) as chain:
        with pytest.raises(RemoteError, match="b cannot"):
            await chain.client.call("/trace.A/RelayFail", 1)
    spans = otlp_receiver.spans()
    assert len(spans) == 4
    assert {s.status for s in spans} == {"ERROR"}
    assert {s.attributes["rpc.response.status_code"] for s in spans} == {"REMOTE_ERROR"}
    b_server = one(spans, "SERVER", "trace.B/Fail")
    assert b_server.status_message == "b cannot"
    assert b_server.attributes["error.type"] == "ValueError"  # the handler's own exception
    [(event, details)] = b_server.events
    assert event == "exception"
    assert (details["exception.type"], details["exception.message"]) == ("ValueError", "b cannot")
    top = one(spans, "CLIENT", "trace.A/RelayFail")
    assert top.events[0][1]["exception.type"] == "gorpc.exceptions.RemoteError"


def sdk_provider(receiver: OtlpReceiver, service: str):
    """An application's own provider, exporting each span as it ends."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=receiver.endpoint)))
    return provider


class BaggageReader(Service):
    """Answers with the baggage its handler sees."""

    name = "trace.Baggage"

    async def Read(self, req):
        from opentelemetry import baggage

        return dict(baggage.get_all())


async def application_call_through_three_hops(provider, tracing, start_span):
    """An application span around client -> A -> B, with baggage set by the application; returns
    what B read of the baggage."""
    from opentelemetry import baggage
    from opentelemetry import context as otel_context

    async with Chain(tracer=tracing) as chain:
        reader = Server(address="127.0.0.1:0", tracer=tracing)
        reader.register(BaggageReader())
        async with reader, Client(reader.address, tracer=tracing) as to_reader:
            token = otel_context.attach(baggage.set_baggage("tenant", "acme"))
            try:
                with start_span("checkout"):
                    assert await chain.client.call("/trace.A/Relay", 1) == ["b did 1", "b did 2"]
                    seen = await to_reader.call("/trace.Baggage/Read")
            finally:
                otel_context.detach(token)
    provider.force_flush()
    return seen


@pytest.mark.asyncio
async def test_application_and_gorpc_spans_make_one_trace_through_the_applications_provider(otlp_receiver):
    from gorpc_tracing.opentelemetry import OpenTelemetryTracing

    provider = sdk_provider(otlp_receiver, "shop")
    tracing = OpenTelemetryTracing(provider=provider)
    tracer = provider.get_tracer("shop")
    seen = await application_call_through_three_hops(provider, tracing, tracer.start_as_current_span)
    provider.shutdown()
    assert seen == {"tenant": "acme"}  # baggage travelled with the trace context
    spans = otlp_receiver.spans()
    [app] = [s for s in spans if s.name == "checkout"]
    assert app.kind == "INTERNAL" and app.service == "shop"
    assert_one_tree(spans, app)
    assert one(spans, "CLIENT", "trace.A/Relay").parent_id == app.span_id
    assert len([s for s in spans if s.kind in ("CLIENT", "SERVER")]) == 8


@pytest.mark.asyncio
async def test_an_opentracing_shim_tracer_exports_real_kinds_and_error_status(otlp_receiver):
    """The OpenTracing path: a plugin giving OpenTelemetry's shim. gorpc's spans still get real
    kinds and statuses, and the application's shim span is in the same trace."""
    from opentelemetry.shim.opentracing_shim import create_tracer

    provider = sdk_provider(otlp_receiver, "shop")
    shim = create_tracer(provider)

    class ShimTracing:
        def tracer(self, service_name):
            return shim

    seen = await application_call_through_three_hops(provider, ShimTracing(), shim.start_active_span)
    async with Chain(tracer=ShimTracing()) as chain:
        with pytest.raises(RemoteError):
            await chain.client.call("/trace.A/RelayFail", 1)
    provider.shutdown()
    assert seen == {"tenant": "acme"}
    spans = otlp_receiver.spans()
    [app] = [s for s in spans if s.name == "checkout"]
    relay = [s for s in spans if s.trace_id == app.trace_id]
    assert_one_tree(relay, app)
    assert sorted(s.kind for s in relay) == ["CLIENT"] * 4 + ["INTERNAL"] + ["SERVER"] * 4
    failed = [s for s in spans if s.name.endswith("Fail")]
    assert sorted(s.kind for s in failed) == ["CLIENT", "CLIENT", "SERVER", "SERVER"]
    assert {s.status for s in failed} == {"ERROR"}


class Words(Service):
    name = "trace.Words"

    async def Upper(self, words: AsyncIterator[str]) -> AsyncIterator[str]:
        async for word in words:
            yield word.upper()


@pytest.mark.asyncio
async def test_opentelemetry_a_stream_is_one_span_with_an_event_per_message(otlp_receiver):
    tracing = {"tracer": "opentelemetry", "plugins": {"opentelemetry": {"endpoint": otlp_receiver.endpoint}}}
    server = Server(address="127.0.0.1:0", **tracing)
    server.register(Words())
    async with server, Client(server.address, **tracing) as client:
        replies = [r async for r in client.stream("/trace.Words/Upper", requests=["a", "b", "c"])]
    assert replies == ["A", "B", "C"]
    spans = otlp_receiver.spans()
    client_span = one(spans, "CLIENT", "trace.Words/Upper")
    server_span = one(spans, "SERVER", "trace.Words/Upper")
    assert server_span.parent_id == client_span.span_id

    def messages(span, direction):
        return [
            d["rpc.message.id"]
            for e, d in span.events
            if e == "message" and d["rpc.message.type"] == direction
        ]

    assert messages(client_span, "SENT") == messages(client_span, "RECEIVED") == [1, 2, 3]
    assert messages(server_span, "RECEIVED") == messages(server_span, "SENT") == [1, 2, 3]
    assert client_span.status == server_span.status == "UNSET"
    assert client_span.attributes["rpc.response.status_code"] == "OK"


@pytest.mark.asyncio
async def test_opentelemetry_broken_trace_headers_start_a_new_trace(otlp_receiver):
    tracing = {"tracer": "opentelemetry", "plugins": {"opentelemetry": {"endpoint": otlp_receiver.endpoint}}}
    server = Server(address="127.0.0.1:0", **tracing)
    server.register(B())
    async with server, Client(server.address) as client:
        for metadata in (
            {"traceparent": "garbage", "baggage": "=;="},
            {"traceparent": b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01"},
        ):
            assert await client.call("/trace.B/Work", 1, metadata=metadata) == "b did 1"
    spans = otlp_receiver.spans()
    assert [s.parent_id for s in spans] == [b"", b""]
    assert len({s.trace_id for s in spans}) == 2


def test_opentelemetry_provider_options_are_checked(monkeypatch):
    from gorpc_tracing.opentelemetry import OpenTelemetryTracing

    for name in ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert OpenTelemetryTracing().options.mode == "global"  # the default: the application's provider
    assert OpenTelemetryTracing({"endpoint": "http://c:4318/v1/traces"}).options.mode == "otlp"
    with pytest.raises(ConfigError, match=r'endpoint, sampler_ratio: only for provider = "otlp"'):
        OpenTelemetryTracing({"provider": "global", "endpoint": "http://c:4318", "sampler_ratio": 0.5})
    with pytest.raises(ConfigError, match='provider = "otlp" needs an endpoint'):
        OpenTelemetryTracing({"provider": "otlp"})
    with pytest.raises(ConfigError, match='provider must be "global" or "otlp"'):
        OpenTelemetryTracing({"provider": "jaeger"})


def test_the_global_provider_is_used_by_default():
    """In a process of its own: the global provider can be set only once."""
    program = """
import asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from gorpc import Client, Server
from tests.test_tracing import B

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

async def main():
    server = Server(address="127.0.0.1:0", tracer="opentelemetry")
    server.register(B())
    async with server, Client(server.address, tracer="opentelemetry") as client:
        with trace.get_tracer("app").start_as_current_span("app"):
            await client.call("/trace.B/Work", 1)
    spans = exporter.get_finished_spans()
    print(sorted((s.name, s.kind.name, s.instrumentation_scope.name) for s in spans))
    print(len({s.context.trace_id for s in spans}))

asyncio.run(main())
"""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=root
    )
    assert done.returncode == 0, done.stderr
    made = str(
        [("app", "INTERNAL", "app"), ("trace.B/Work", "CLIENT", "gorpc"), ("trace.B/Work", "SERVER", "gorpc")]
    )
    assert done.stdout.splitlines() == [made, "1"]


# -- Jaeger over UDP --------------------------------------------------------------------------------


def decode_jaeger_batches(datagrams):
    from jaeger_client.thrift_gen.agent import Agent
    from thrift.protocol.TCompactProtocol import TCompactProtocol
    from thrift.transport.TTransport import TMemoryBuffer

    spans = []
    for datagram in datagrams:
        protocol = TCompactProtocol(TMemoryBuffer(datagram))
        protocol.readMessageBegin()
        args = Agent.emitBatch_args()
        args.read(protocol)
        spans.extend((args.batch.process.serviceName, span) for span in args.batch.spans)
    return spans


@pytest.mark.asyncio
async def test_jaeger_reports_span_batches_over_udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as agent:
        agent.bind(("127.0.0.1", 0))
        agent.settimeout(10)
        port = agent.getsockname()[1]
        tracing = {"tracer": "jaeger", "plugins": {"jaeger": {"agent_port": port, "flush_interval": 0.1}}}
        async with Chain(**tracing) as chain:
            assert await chain.client.call("/trace.A/Relay", 1) == ["b did 1", "b did 2"]
        datagrams = []
        agent.setblocking(False)
        while True:
            try:
                datagrams.append(agent.recv(65536))
            except BlockingIOError:
                break
    spans = decode_jaeger_batches(datagrams)
    assert len(spans) == 6
    assert len({span.traceIdLow for _, span in spans}) == 1
    ids = {span.spanId for _, span in spans}
    roots = [span for _, span in spans if span.parentSpanId == 0]
    assert [r.operationName for r in roots] == ["/trace.A/Relay"]
    assert all(span.parentSpanId in ids for _, span in spans if span.parentSpanId)
    assert {service for service, _ in spans} == {"gorpc-client", "trace.A", "trace.B"}


def test_tracing_example_sends_one_trace_to_a_collector(otlp_receiver):
    """client.py's application span, then web -> Frontend -> Backend: one trace, each span under
    the service it belongs to, nothing lost at shutdown."""
    example = Path(__file__).resolve().parent.parent / "examples" / "tracing"
    endpoint = ["--endpoint", otlp_receiver.endpoint]
    with server_process([str(example / "server.py"), "--address", "127.0.0.1:0", *endpoint]) as server:
        client = subprocess.run(
            [sys.executable, str(example / "client.py"), "--target", server.address, *endpoint],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert client.returncode == 0, client.stderr
        assert client.stdout == "{'greeting': 'hello ada', 'user': 'ada', 'plan': 'pro'}\n"
        assert server.stop() == 0  # a graceful stop flushes the server's spans, then its client's
    spans = otlp_receiver.spans()
    assert sorted((s.service, s.kind, s.name) for s in spans) == [
        ("examples.Backend", "SERVER", "examples.Backend/Lookup"),
        ("examples.Frontend", "CLIENT", "examples.Backend/Lookup"),
        ("examples.Frontend", "SERVER", "examples.Frontend/Profile"),
        ("examples.web", "CLIENT", "examples.Frontend/Profile"),
        ("examples.web", "INTERNAL", "render profile page"),
    ]
    [app] = [s for s in spans if s.kind == "INTERNAL"]
    assert_one_tree(spans, app)
