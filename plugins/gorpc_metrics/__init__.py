"""Metrics plugins for gorpc: `prometheus` (an endpoint served by prometheus-client) and
`opentelemetry` (the application's global MeterProvider). The core (`gorpc.metrics`) records
through the OpenTelemetry metrics API into the meter the plugin gives."""
