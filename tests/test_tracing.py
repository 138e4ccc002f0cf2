"""Tracing: one trace across client -> A -> B with real spans (MockTracer, OTLP/HTTP, Jaeger UDP)."""

import asyncio
import http.server
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gorpc import Client, RemoteError, Server, Service
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

    def spans(self):
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        found = []
        for body in self.requests:
            export = ExportTraceServiceRequest.FromString(body)
            for resource_spans in export.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                service = attributes["service.name"]
                for scope_spans in resource_spans.scope_spans:
                    found.extend((service, span) for span in scope_spans.spans)
        return found


@pytest.fixture
def otlp_receiver():
    receiver = OtlpReceiver()
    receiver.thread.start()
    yield receiver
    receiver.shutdown()
    receiver.server_close()


@pytest.mark.asyncio
async def test_opentelemetry_exports_linked_spans_over_otlp_http(otlp_receiver):
    tracing = {"tracer": "opentelemetry", "plugins": {"opentelemetry": {"endpoint": otlp_receiver.endpoint}}}
    async with Chain(**tracing) as chain:
        assert await chain.client.call("/trace.A/Relay", 1) == ["b did 1", "b did 2"]
    # Stopping and closing flushed every exporter.
    spans = otlp_receiver.spans()
    assert len(spans) == 6
    assert len({span.trace_id for _, span in spans}) == 1
    by_id = {span.span_id: (service, span) for service, span in spans}
    [(_, top)] = [(s, span) for s, span in spans if span.parent_span_id == b""]
    assert top.name == "/trace.A/Relay"
    for _, span in spans:
        if span is not top:
            assert span.parent_span_id in by_id  # every other span's parent was exported too
    # Servers report their first service's name, clients "gorpc-client" (both set by `service_name`).
    assert {service for service, _ in spans} == {"gorpc-client", "trace.A", "trace.B"}


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
        assert server.stop() == 0  # a graceful stop flushes the server's spans
    spans = otlp_receiver.spans()
    names = sorted((service, span.name) for service, span in spans)
    assert names == [
        ("examples.Backend", "/examples.Backend/Lookup"),
        ("examples.Backend", "/examples.Frontend/Profile"),
        ("gorpc-client", "/examples.Backend/Lookup"),
        ("gorpc-client", "/examples.Frontend/Profile"),
    ]
    assert len({span.trace_id for _, span in spans}) == 1
