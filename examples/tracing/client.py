"""Calls examples.Frontend inside an application span: the application's spans and gorpc's are one
trace, exported through the application's own OpenTelemetry provider.

Run: python examples/tracing/client.py [--target ADDR] [--endpoint URL]
"""

import argparse
import asyncio

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from gorpc import Client


def set_up_tracing(endpoint: str) -> TracerProvider:
    """What an application does once at start: its provider, exporter and service name."""
    provider = TracerProvider(resource=Resource.create({"service.name": "examples.web"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    trace.set_tracer_provider(provider)
    return provider


async def main(target: str) -> None:
    # tracer = "opentelemetry" with no endpoint: gorpc's spans go to the global provider above.
    async with Client(target, tracer="opentelemetry") as client:
        with trace.get_tracer("examples.web").start_as_current_span("render profile page"):
            reply = await client.call("/examples.Frontend/Profile", {"user": "ada"}, timeout=5.0)
    print(reply)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--target", default="127.0.0.1:8010", help="the server's address")
    parser.add_argument("--endpoint", default="http://127.0.0.1:4318/v1/traces", help="OTLP/HTTP endpoint")
    args = parser.parse_args()
    provider = set_up_tracing(args.endpoint)
    asyncio.run(main(args.target))
    provider.shutdown()  # exports what is still buffered
