"""The `opentelemetry` metrics plugin: gorpc's RPC metrics go to the application's global
MeterProvider (or one given in code), exported however the application set it up (OTLP, say).

    [server]
    metrics = "opentelemetry"

OpenTelemetry's SDK takes about 9 µs per measurement on these machines, and a call makes three on
each side, which is about as much as the call itself: where that matters, `prometheus` serves the
same instruments at a fraction of the cost (see its module).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics

import gorpc

SCOPE = "gorpc"


class OpenTelemetryMetrics:
    """The meter of the global MeterProvider (a proxy until the application sets one), or of a
    provider given in code."""

    def __init__(
        self, options: Mapping[str, Any] | None = None, *, provider: metrics.MeterProvider | None = None
    ) -> None:
        # No options of its own: `[plugins.opentelemetry]` is the tracer's table (same name).
        self._provider = provider

    def meter(self) -> metrics.Meter:
        if self._provider is not None:
            return self._provider.get_meter(SCOPE, gorpc.__version__)
        return metrics.get_meter(SCOPE, gorpc.__version__)
