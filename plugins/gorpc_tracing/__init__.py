"""Tracing plugins for gorpc: `opentelemetry` (OTLP/HTTP), `jaeger` (UDP agent) and `mock` (tests).

Each gives an `opentracing.Tracer` whose scope manager follows asyncio context; the core's
interceptors (`gorpc.tracing`) make the spans. Switching between them is a config change only.
"""
