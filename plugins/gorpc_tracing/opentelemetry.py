"""The `opentelemetry` tracer: native OpenTelemetry spans (CLIENT and SERVER kinds, status, RPC
attributes; see `gorpc.tracing_opentelemetry`).

By default the spans go to the application's global TracerProvider, so they and the application's
own spans form one trace through whatever exporter the application set up. Given an endpoint,
gorpc builds a provider of its own instead, one per service name, exporting over OTLP/HTTP (current
Jaeger, Tempo and OpenTelemetry collectors take it).

    [plugins.opentelemetry]
    # provider = "global"                          # the default: the application's provider
    provider = "otlp"                              # the default when an endpoint is given
    endpoint = "http://127.0.0.1:4318/v1/traces"   # default: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
                                                   # or OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces
    service_name = "checkout"   # default: each hosted service's name; a client's, "gorpc-client"
    sampler_ratio = 1.0

In code, `OpenTelemetryTracing(provider=my_provider)` uses that provider.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from opentelemetry import trace

import gorpc
from gorpc.config import from_table
from gorpc.exceptions import ConfigError

GLOBAL, OTLP = "global", "otlp"
SCOPE = "gorpc"  # the instrumentation scope gorpc's spans carry


@dataclass(frozen=True, kw_only=True)
class OpenTelemetryOptions:
    """`[plugins.opentelemetry]`."""

    provider: str | None = None  # "global" or "otlp"; None: "otlp" if an endpoint is given
    endpoint: str | None = None  # an OTLP/HTTP traces endpoint
    service_name: str | None = None
    sampler_ratio: float = 1.0  # share of new traces recorded; a caller's decision is followed
    export_timeout: float = 10.0  # seconds per export request
    headers: Mapping[str, str] | None = None  # e.g. an API key for a hosted backend

    def __post_init__(self) -> None:
        if self.provider not in (None, GLOBAL, OTLP):
            raise ConfigError(f'[plugins.opentelemetry] provider must be "{GLOBAL}" or "{OTLP}"')
        if not 0.0 <= self.sampler_ratio <= 1.0:
            raise ConfigError("[plugins.opentelemetry] sampler_ratio must be 0..1")
        if self.endpoint is not None and not self.endpoint.startswith(("http://", "https://")):
            raise ConfigError("[plugins.opentelemetry] endpoint must be an http(s) URL")

    @property
    def mode(self) -> str:
        return self.provider or (OTLP if self.endpoint is not None else GLOBAL)


# Options that only mean something for a provider gorpc builds.
_OTLP_ONLY = ("endpoint", "service_name", "sampler_ratio", "export_timeout", "headers")


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
    """Tracers from the global provider, a given one, or one per service name exporting over OTLP."""

    def __init__(
        self, options: Mapping[str, Any] | None = None, *, provider: trace.TracerProvider | None = None
    ) -> None:
        given = dict(options or {})
        self.options = from_table(OpenTelemetryOptions, "plugins.opentelemetry", given)
        if self.options.mode == GLOBAL:
            misplaced = sorted(set(given) & set(_OTLP_ONLY))
            if misplaced:
                raise ConfigError(
                    f'[plugins.opentelemetry] {", ".join(misplaced)}: only for provider = "otlp"; '
                    "the global provider is configured by the application"
                )
        elif self.options.endpoint is None:  # otlp, its endpoint from the environment
            given = {**environment_defaults(os.environ), **given}
            if "endpoint" not in given:
                raise ConfigError(
                    '[plugins.opentelemetry] provider = "otlp" needs an endpoint '
                    "(or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT / OTEL_EXPORTER_OTLP_ENDPOINT)"
                )
            self.options = from_table(OpenTelemetryOptions, "plugins.opentelemetry", given)
        self._given = provider
        self._providers: dict[str, Any] = {}  # built here (otlp), by service name

    def tracer(self, service_name: str) -> trace.Tracer:
        if self._given is not None:
            return self._given.get_tracer(SCOPE, gorpc.__version__)
        if self.options.mode == GLOBAL:
            # A proxy until the application sets its provider, then that provider's tracer.
            return trace.get_tracer(SCOPE, gorpc.__version__)
        name = self.options.service_name or service_name
        provider = self._providers.get(name)
        if provider is None:
            provider = self._providers[name] = self._otlp_provider(name)
        return provider.get_tracer(SCOPE, gorpc.__version__)  # type: ignore[no-any-return]

    def _otlp_provider(self, service_name: str) -> Any:
        # The SDK and exporter only when gorpc builds the provider: the global mode needs the API only.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

        opts = self.options
        sampler = ParentBased(TraceIdRatioBased(opts.sampler_ratio))
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}), sampler=sampler)
        exporter = OTLPSpanExporter(
            endpoint=opts.endpoint, timeout=opts.export_timeout, headers=dict(opts.headers or {})
        )
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return provider

    def flush(self) -> None:
        """Export every finished span of the providers built here now (blocks)."""
        for provider in self._providers.values():
            provider.force_flush()

    def close(self) -> None:
        """Flush and stop the exporters built here (blocks; the core calls it in a thread). The
        global or a given provider is the application's to shut down."""
        providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            provider.shutdown()
