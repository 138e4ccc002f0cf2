"""The `jaeger` tracer: jaeger-client reporting to a Jaeger agent over UDP (as the Go original does).

    [plugins.jaeger]
    agent_host = "127.0.0.1"
    agent_port = 6831
    service_name = "checkout"
    sampler_ratio = 1.0

jaeger-client is no longer developed; for new setups prefer `opentelemetry` (Jaeger takes OTLP).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import opentracing
from jaeger_client.config import Config
from jaeger_client.constants import JAEGER_IP_TAG_KEY
from opentracing.scope_managers.contextvars import ContextVarsScopeManager

from gorpc.config import from_table
from gorpc.exceptions import ConfigError

CLOSE_TIMEOUT = 5.0


@dataclass(frozen=True, kw_only=True)
class JaegerOptions:
    """`[plugins.jaeger]`."""

    agent_host: str = "127.0.0.1"
    agent_port: int = 6831  # the agent's compact-thrift UDP port
    service_name: str | None = None
    sampler_ratio: float = 1.0
    flush_interval: float = 1.0  # seconds between UDP batches

    def __post_init__(self) -> None:
        if not 0.0 <= self.sampler_ratio <= 1.0:
            raise ConfigError("[plugins.jaeger] sampler_ratio must be 0..1")
        if not 0 < self.agent_port < 65536:
            raise ConfigError("[plugins.jaeger] agent_port must be 1..65535")


class JaegerTracing:
    """One jaeger-client tracer per service name; each reports from its own background thread."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = from_table(JaegerOptions, "plugins.jaeger", options or {})
        self._tracers: dict[str, Any] = {}

    def tracer(self, service_name: str) -> opentracing.Tracer:
        name = self.options.service_name or service_name
        tracer = self._tracers.get(name)
        if tracer is None:
            tracer = self._tracers[name] = self._new_tracer(name)
        return tracer

    def _new_tracer(self, service_name: str) -> Any:
        opts = self.options
        ratio = opts.sampler_ratio
        sampler = {"type": "const", "param": 1} if ratio == 1.0 else {"type": "probabilistic", "param": ratio}
        config = Config(
            config={
                "sampler": sampler,
                "local_agent": {"reporting_host": opts.agent_host, "reporting_port": opts.agent_port},
                "reporter_flush_interval": opts.flush_interval,
                "logging": False,
                # Given, so jaeger-client does not look it up itself: its lookup leaks a socket.
                "tags": {JAEGER_IP_TAG_KEY: _local_ip(opts.agent_host, opts.agent_port)},
            },
            service_name=service_name,
            scope_manager=ContextVarsScopeManager(),
            validate=True,
        )
        # new_tracer(), not initialize_tracer(): that one sets a process-wide global, once.
        return config.new_tracer()

    def close(self) -> None:
        """Send what is buffered and stop the reporters (blocks; the core calls it in a thread)."""
        tracers, self._tracers = list(self._tracers.values()), {}
        if not tracers:
            return
        # jaeger-client makes its futures on the calling thread's event loop: give it one. Its
        # reporter thread completes them; we only poll, so this loop never has to run.
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            flushed = [tracer.close() for tracer in tracers]
            give_up = time.monotonic() + CLOSE_TIMEOUT
            while not all(f.done() for f in flushed) and time.monotonic() < give_up:
                time.sleep(0.01)
        finally:
            asyncio.set_event_loop(None)
            loop.close()
        for tracer in tracers:
            # jaeger-client never releases these itself: the UDP socket, and the tornado loop it
            # runs in a thread of its own (add_callback is tornado's one thread-safe call).
            channel = tracer.reporter._channel
            channel.close()
            if channel._thread_loop is not None:
                channel.io_loop.add_callback(channel.io_loop.stop)


def _local_ip(agent_host: str, agent_port: int) -> str:
    """The address this host reaches the agent from (a UDP connect sends nothing)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((agent_host, agent_port))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"
