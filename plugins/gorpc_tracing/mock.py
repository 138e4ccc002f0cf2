"""The `mock` tracer: opentracing's MockTracer, keeping finished spans in memory for tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentracing.mocktracer import MockTracer
from opentracing.scope_managers.contextvars import ContextVarsScopeManager


class MockTracing:
    """One MockTracer for every service name: share one object to see whole traces in a test."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        if options:
            raise ValueError(f"[plugins.mock] takes no options, got {sorted(options)}")
        self.mock = MockTracer(scope_manager=ContextVarsScopeManager())

    def tracer(self, service_name: str) -> MockTracer:
        return self.mock

    def finished_spans(self) -> list[Any]:
        """Spans finished so far, in the order they finished."""
        return list(self.mock.finished_spans())
