"""The `opentelemetry` tracer: OpenTracing spans made by OpenTelemetry, exported over OTLP/HTTP.

Current Jaeger, Tempo and OpenTelemetry collectors take OTLP. Trace context goes on the wire as a
W3C `traceparent` entry in the call's metadata.

    [plugins.opentelemetry]
    endpoint = "http://127.0.0.1:4318/v1/traces"   # default: from OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
                                                   # or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces
    service_name = "checkout"      # default: the server's first service, or the client's target
    sampler_ratio = 1.0
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import opentracing
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.shim.opentracing_shim import create_tracer

from gorpc.config import from_table
from gorpc.exceptions import ConfigError


@dataclass(frozen=True, kw_only=True)
class OpenTelemetryOptions:
    """`[plugins.opentelemetry]`."""

    endpoint: str = "http://127.0.0.1:4318/v1/traces"  # an OTLP/HTTP traces endpoint
    service_name: str | None = None
    sampler_ratio: float = 1.0  # share of new traces recorded; a caller's decision is followed
    export_timeout: float = 10.0  # seconds per export request
    headers: Mapping[str, str] | None = None  # e.g. an API key for a hosted backend

    def __post_init__(self) -> None:
        if not 0.0 <= self.sampler_ratio <= 1.0:
            raise ConfigError("[plugins.opentelemetry] sampler_ratio must be 0..1")
        if not self.endpoint.startswith(("http://", "https://")):
            raise ConfigError("[plugins.opentelemetry] endpoint must be an http(s) URL")


def environment_defaults(environ: Mapping[str, str]) -> dict[str, Any]:
    """The endpoint OpenTelemetry's standard variables name: the traces endpoint as it is, or the
    base endpoint with the traces path added (as OpenTelemetry's exporters read them)."""
    traces = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    if traces:
        return {"endpoint": traces}
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    if base:
        return {"endpoint": base.rstrip("/") + "/v1/traces"}
    return {}


class OpenTelemetryTracing:
    """One TracerProvider per service name, each exporting in batches from a background thread."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        given = {**environment_defaults(os.environ), **(options or {})}
        self.options = from_table(OpenTelemetryOptions, "plugins.opentelemetry", given)
        self._providers: dict[str, TracerProvider] = {}

    def tracer(self, service_name: str) -> opentracing.Tracer:
        name = self.options.service_name or service_name
        provider = self._providers.get(name)
        if provider is None:
            provider = self._providers[name] = self._provider(name)
        return create_tracer(provider)

    def _provider(self, service_name: str) -> TracerProvider:
        opts = self.options
        sampler = ParentBased(TraceIdRatioBased(opts.sampler_ratio))
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}), sampler=sampler)
        exporter = OTLPSpanExporter(
            endpoint=opts.endpoint, timeout=opts.export_timeout, headers=dict(opts.headers or {})
        )
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return provider

    def flush(self) -> None:
        """Export every finished span now (blocks)."""
        for provider in self._providers.values():
            provider.force_flush()

    def close(self) -> None:
        """Flush and stop the exporters (blocks; the core calls it in a thread)."""
        providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            provider.shutdown()
