"""RPC metrics: a real Prometheus endpoint scraped after calls, the OpenTelemetry SDK path, and
nothing on the call path when metrics are off."""

from __future__ import annotations

import asyncio
import itertools
import urllib.error
import urllib.request
from collections.abc import AsyncIterator

import pytest
from gorpc_metrics.prometheus import PrometheusMetrics
from prometheus_client.parser import text_string_to_metric_families

from gorpc import Client, MethodNotFound, RemoteError, Server, Service
from gorpc.metrics import DURATION_BUCKETS
from tests.conftest import Greeter, free_port
from tests.test_failover import SERVICE, Where, client_for, start

pytestmark = pytest.mark.asyncio
GREETER = {"rpc_system": "gorpc", "rpc_service": "helloworld.Greeter"}


def scrape(address: str) -> dict[str, list]:
    """The endpoint's samples by name, as Prometheus would parse them."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)
    return samples


def value(samples, name: str, **labels) -> float:
    [found] = [s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
    return found


async def test_a_scrape_after_calls_shows_counts_and_buckets_per_method_and_status():
    metrics = PrometheusMetrics({"address": "127.0.0.1:0"})
    server = Server(address="127.0.0.1:0", metrics=metrics)
    server.register(Greeter())
    async with server, Client(server.address, metrics=metrics) as client:
        for _ in range(7):
            await client.call("/helloworld.Greeter/SayHello", {"msg": "hi"})
        with pytest.raises(RemoteError):
            await client.call("/helloworld.Greeter/Fail", "x")
        for made_up in ("Nope", "Nada"):
            with pytest.raises(MethodNotFound):
                await client.call(f"/helloworld.Greeter/{made_up}", None)
        samples = scrape(metrics.address)
    metrics.close()
    for side in ("server", "client"):
        duration = f"rpc_{side}_call_duration_seconds"
        ok = {**GREETER, "rpc_method": "SayHello", "rpc_response_status_code": "OK"}
        assert value(samples, f"{duration}_count", **ok) == 7
        buckets = [s for s in samples[f"{duration}_bucket"] if s.labels["rpc_method"] == "SayHello"]
        assert [s.labels["le"] for s in buckets] == [*map(str, DURATION_BUCKETS), "+Inf"]
        assert buckets[-1].value == 7 and all(a.value <= b.value for a, b in itertools.pairwise(buckets))
        assert 0 < value(samples, f"{duration}_sum", **ok) < 7 * 5  # seconds, not milliseconds
        failed = {**GREETER, "rpc_method": "Fail", "rpc_response_status_code": "REMOTE_ERROR"}
        assert value(samples, f"{duration}_count", **failed) == 1
        # msgpack {"msg": "hi"} is 8 bytes, {"msg": "hi world"} 14
        assert value(samples, f"rpc_{side}_request_size_bytes_sum", **ok) == 7 * 8
        assert value(samples, f"rpc_{side}_response_size_bytes_sum", **ok) == 7 * 14
        assert value(samples, f"rpc_{side}_request_size_bytes_bucket", le="64", **ok) == 7
        assert value(samples, f"gorpc_{side}_connections") == 1
        assert value(samples, f"gorpc_{side}_calls_active") == 0
    # The server puts methods it does not host under one label; the client names what it called.
    unknown = {
        "rpc_service": "_OTHER",
        "rpc_method": "_OTHER",
        "rpc_response_status_code": "METHOD_NOT_FOUND",
    }
    assert value(samples, "rpc_server_call_duration_seconds_count", **unknown) == 2
    assert value(samples, "rpc_client_call_duration_seconds_count", rpc_method="Nada") == 1


class Gate(Service):
    """Holds each call until released; says when `expected` calls are held."""

    name = "test.Gate"

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.holding = 0
        self.all_held = asyncio.Event()
        self.release = asyncio.Event()

    async def Hold(self, req):
        self.holding += 1
        if self.holding == self.expected:
            self.all_held.set()
        await self.release.wait()
        return "released"


async def test_calls_in_flight_are_counted_while_they_run():
    metrics = PrometheusMetrics({"address": "127.0.0.1:0"})
    server = Server(address="127.0.0.1:0", metrics=metrics)
    gate = Gate(expected=3)
    server.register(gate)
    async with server, Client(server.address, metrics=metrics) as client:
        calls = [asyncio.create_task(client.call("/test.Gate/Hold")) for _ in range(3)]
        await gate.all_held.wait()
        held = await asyncio.to_thread(scrape, metrics.address)
        gate.release.set()
        assert await asyncio.gather(*calls) == ["released"] * 3
        after = await asyncio.to_thread(scrape, metrics.address)
    metrics.close()
    for side in ("server", "client"):
        assert value(held, f"gorpc_{side}_calls_active") == 3
        assert value(after, f"gorpc_{side}_calls_active") == 0


async def test_failover_retries_and_ejections_are_counted():
    dead = f"127.0.0.1:{free_port()}"
    server = await start(Where("live"))
    metrics = PrometheusMetrics({"address": "127.0.0.1:0"})
    try:
        async with client_for(dead, server.address, metrics=metrics, balancer="round_robin") as client:
            for _ in range(4):
                assert await client.call(f"/{SERVICE}/Which") == "live"
            samples = scrape(metrics.address)
    finally:
        await server.stop()
        metrics.close()
    assert value(samples, "gorpc_client_failover_retries_total", rpc_method="Which") == 1
    assert value(samples, "gorpc_client_ejections_total", server_address=dead) == 1
    assert value(samples, "rpc_client_call_duration_seconds_count", rpc_response_status_code="OK") == 4


async def test_the_plugin_by_name_serves_one_endpoint_for_a_server_and_its_client_and_stops_with_them():
    address = f"127.0.0.1:{free_port()}"
    options = {"metrics": "prometheus", "plugins": {"prometheus": {"address": address}}}
    server = Server(address="127.0.0.1:0", **options)
    server.register(Greeter())
    async with server, Client(server.address, **options) as client:
        await client.call("/helloworld.Greeter/SayHello", {"msg": "hi"})
        samples = await asyncio.to_thread(scrape, address)
        assert value(samples, "rpc_client_call_duration_seconds_count", rpc_method="SayHello") == 1
        assert value(samples, "rpc_server_call_duration_seconds_count", rpc_method="SayHello") == 1
    with pytest.raises(urllib.error.URLError):  # the last user closed: the endpoint is gone
        await asyncio.to_thread(scrape, address)


async def test_the_opentelemetry_plugin_records_into_the_applications_meter_provider():
    from gorpc_metrics.opentelemetry import OpenTelemetryMetrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    metrics = OpenTelemetryMetrics(provider=provider)
    server = Server(address="127.0.0.1:0", metrics=metrics)
    server.register(Greeter())
    async with server, Client(server.address, metrics=metrics) as client:
        for _ in range(3):
            await client.call("/helloworld.Greeter/SayHello", {"msg": "hi"})
    data = reader.get_metrics_data()
    found = {m.name: m for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    for side in ("server", "client"):
        histogram = found[f"rpc.{side}.call.duration"]
        assert histogram.unit == "s"
        [point] = histogram.data.data_points
        assert point.count == 3 and tuple(point.explicit_bounds) == DURATION_BUCKETS
        assert dict(point.attributes) == {
            "rpc.system": "gorpc",
            "rpc.service": "helloworld.Greeter",
            "rpc.method": "SayHello",
            "rpc.response.status_code": "OK",
        }
    provider.shutdown()


async def test_with_metrics_off_nothing_is_on_the_call_path(pair):
    server, client = pair
    assert server.config.metrics == client.config.metrics == "none"
    assert client.interceptors == ()
    assert server._dispatcher is not None and server._dispatcher._observers == ()


class Counter(Service):
    name = "test.Counter"

    async def Up(self, n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    async def Broken(self, n: int) -> AsyncIterator[int]:
        yield 0
        raise ValueError("broken stream")


async def test_a_stream_is_one_call_measured_until_its_end():
    metrics = PrometheusMetrics({"address": "127.0.0.1:0"})
    server = Server(address="127.0.0.1:0", metrics=metrics)
    server.register(Counter())
    async with server, Client(server.address, metrics=metrics) as client:
        assert [n async for n in client.stream("/test.Counter/Up", 5)] == [0, 1, 2, 3, 4]
        with pytest.raises(RemoteError):
            _ = [n async for n in client.stream("/test.Counter/Broken", 5)]
        samples = await asyncio.to_thread(scrape, metrics.address)
    metrics.close()
    for side in ("server", "client"):
        duration = f"rpc_{side}_call_duration_seconds_count"
        assert value(samples, duration, rpc_method="Up", rpc_response_status_code="OK") == 1
        assert value(samples, duration, rpc_method="Broken", rpc_response_status_code="REMOTE_ERROR") == 1
        # A stream's replies are not counted in sizes.
        replies = samples.get(f"rpc_{side}_response_size_bytes_count", [])
        assert sum(s.value for s in replies if s.labels["rpc_method"] == "Up") == 0
        assert value(samples, f"gorpc_{side}_calls_active") == 0
