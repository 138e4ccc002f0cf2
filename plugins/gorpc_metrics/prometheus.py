"""The `prometheus` metrics plugin: gorpc's RPC metrics on an endpoint Prometheus scrapes, served by
prometheus-client.

    [server]                       # or [client]
    metrics = "prometheus"

    [plugins.prometheus]
    address = "127.0.0.1:9464"     # where /metrics is served; port 0 picks a free one

The core records through the OpenTelemetry metrics API; the meter here implements that API by
aggregating itself, and prometheus-client serves the aggregates as metric families. OpenTelemetry's
SDK with its Prometheus reader takes about 9 µs per measurement, as much as a whole gorpc call, so
a server would lose most of its throughput to its own metrics. Here a call's three measurements
are one Python call with the labels resolved beforehand and no lock (`bind_histograms`), about
0.4 µs. (Counting them in batches on a thread of the endpoint instead measured slower: the thread
takes the GIL from the event loop.)

Names follow OpenTelemetry's Prometheus mapping: dots become underscores, the unit becomes a suffix
(`rpc.server.call.duration` in s -> `rpc_server_call_duration_seconds`, sizes -> `_bytes`), counters
end in `_total`, and attribute keys become labels (`rpc_method`). Servers and clients of one process
configured with the same address share one endpoint and one set of series. With `workers = N`,
worker k serves its own endpoint on the configured port + k (scrape each).
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics as api
from opentelemetry.context import Context
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from gorpc.address import TcpAddress, parse_address
from gorpc.config import from_table
from gorpc.exceptions import ConfigError
from gorpc.metrics import Labels
from gorpc.workers import worker_number

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_UNITS = {"s": "seconds", "ms": "milliseconds", "By": "bytes"}
_NO_LABELS = Labels({})


@dataclass(frozen=True, kw_only=True)
class PrometheusOptions:
    """`[plugins.prometheus]`."""

    address: str = "127.0.0.1:9464"

    def __post_init__(self) -> None:
        if not isinstance(parse_address(self.address), TcpAddress):
            raise ConfigError(f"[plugins.prometheus] address {self.address!r} must be host:port")


def prometheus_name(name: str, unit: str, counter: bool = False) -> str:
    """OpenTelemetry's mapping of an instrument's name and unit to a Prometheus metric name."""
    base = "".join(c if c.isalnum() or c in "_:" else "_" for c in name)
    suffix = _UNITS.get(unit, "" if unit.startswith("{") or not unit else unit)
    if suffix and not base.endswith(f"_{suffix}"):
        base = f"{base}_{suffix}"
    return f"{base}_total" if counter else base


def _labels(attributes: Any) -> Labels:
    if attributes is None:
        return _NO_LABELS
    return attributes if isinstance(attributes, Labels) else Labels(attributes)


def _prometheus_labels(labels: Labels) -> dict[str, str]:
    return {key.replace(".", "_"): str(value) for key, value in labels.items()}


class _Histogram(api.Histogram):
    """Counts per bucket and a sum, per label set. `record()` (the API) takes a lock; the meter's
    `bind_histograms` gives each recording thread series of its own, written without one. A scrape
    adds the series up."""

    def __init__(
        self, name: str, unit: str = "", description: str = "", buckets: Sequence[float] | None = None
    ) -> None:
        self.name, self.unit, self.description = name, unit, description
        self.bounds = tuple(buckets or DEFAULT_BUCKETS)
        # Per label set and thread (0: shared, under the lock): a count per bucket (+Inf last), the sum.
        self._series: dict[tuple[Labels, int], list[float]] = {}
        self._lock = threading.Lock()

    def record(
        self, amount: float, attributes: Mapping[str, Any] | None = None, context: Context | None = None
    ) -> None:
        series = self.series(_labels(attributes), 0)
        index = bisect.bisect_left(self.bounds, amount)
        with self._lock:
            series[index] += 1
            series[-1] += amount

    def series(self, labels: Labels, thread: int) -> list[float]:
        """The series for `labels` that `thread` writes (0: any thread, under the lock)."""
        series = self._series.get((labels, thread))
        if series is None:
            with self._lock:
                series = self._series.setdefault((labels, thread), [0.0] * (len(self.bounds) + 2))
        return series

    def collect(self) -> Metric:
        totals: dict[Labels, list[float]] = {}
        with self._lock:
            for (labels, _), values in self._series.items():
                total = totals.setdefault(labels, [0.0] * len(values))
                for i, value in enumerate(values):
                    total[i] += value
        name = prometheus_name(self.name, self.unit)
        family = Metric(name, self.description, "histogram")
        bounds = (*map(str, self.bounds), "+Inf")
        for labels, values in totals.items():
            tags = _prometheus_labels(labels)
            cumulative = 0.0
            for bound, count in zip(bounds, values[:-1], strict=True):
                cumulative += count
                family.add_sample(f"{name}_bucket", {**tags, "le": bound}, cumulative)
            family.add_sample(f"{name}_count", tags, cumulative)
            family.add_sample(f"{name}_sum", tags, values[-1])
        return family


class _Sum:
    """A counter or up-down counter: a total per label set."""

    def __init__(self, name: str, unit: str, description: str, monotonic: bool) -> None:
        self.name, self.unit, self.description, self.monotonic = name, unit, description, monotonic
        self._totals: dict[Labels, float] = {}
        self._lock = threading.Lock()

    def add(
        self, amount: float, attributes: Mapping[str, Any] | None = None, context: Context | None = None
    ) -> None:
        labels = _labels(attributes)
        with self._lock:
            self._totals[labels] = self._totals.get(labels, 0) + amount

    def set(
        self, amount: float, attributes: Mapping[str, Any] | None = None, context: Context | None = None
    ) -> None:
        with self._lock:
            self._totals[_labels(attributes)] = amount

    def collect(self) -> Metric:
        with self._lock:
            totals = dict(self._totals)
        return _family(self, totals)


class _Counter(_Sum, api.Counter):
    def __init__(self, name: str, unit: str = "", description: str = "") -> None:
        _Sum.__init__(self, name, unit, description, monotonic=True)


class _UpDownCounter(_Sum, api.UpDownCounter):
    def __init__(self, name: str, unit: str = "", description: str = "") -> None:
        _Sum.__init__(self, name, unit, description, monotonic=False)


class _Gauge(_Sum, api._Gauge):
    def __init__(self, name: str, unit: str = "", description: str = "") -> None:
        _Sum.__init__(self, name, unit, description, monotonic=False)


class _Observed:
    """An observable instrument: its callbacks are asked at each scrape; observations of the same
    label set from several callbacks (several clients, say) are added up."""

    def __init__(
        self,
        name: str,
        callbacks: Sequence[api.CallbackT] | None,
        unit: str,
        description: str,
        monotonic: bool,
    ) -> None:
        self.name, self.unit, self.description, self.monotonic = name, unit, description, monotonic
        self.callbacks = list(callbacks or ())

    def collect(self) -> Metric:
        totals: dict[Labels, float] = {}
        for callback in self.callbacks:
            observations = callback(api.CallbackOptions()) if callable(callback) else next(callback)
            for observation in observations:
                labels = _labels(observation.attributes)
                totals[labels] = totals.get(labels, 0) + observation.value
        return _family(self, totals)


def _family(instrument: _Sum | _Observed, totals: dict[Labels, float]) -> Metric:
    name = prometheus_name(instrument.name, instrument.unit)
    family = Metric(name, instrument.description, "counter" if instrument.monotonic else "gauge")
    sample = f"{name}_total" if instrument.monotonic else name
    for labels, value in totals.items():
        family.add_sample(sample, _prometheus_labels(labels), value)
    return family


class _ObservableCounter(_Observed, api.ObservableCounter):
    def __init__(self, name: str, callbacks: Any = None, unit: str = "", description: str = "") -> None:
        _Observed.__init__(self, name, callbacks, unit, description, monotonic=True)


class _ObservableUpDownCounter(_Observed, api.ObservableUpDownCounter):
    def __init__(self, name: str, callbacks: Any = None, unit: str = "", description: str = "") -> None:
        _Observed.__init__(self, name, callbacks, unit, description, monotonic=False)


class _ObservableGauge(_Observed, api.ObservableGauge):
    def __init__(self, name: str, callbacks: Any = None, unit: str = "", description: str = "") -> None:
        _Observed.__init__(self, name, callbacks, unit, description, monotonic=False)


class PrometheusMeter(api.Meter, Collector):
    """The OpenTelemetry metrics API, aggregated in place and collected by prometheus-client. An
    instrument asked for twice by name is the same instrument; an observable one asked for again
    gains the new callbacks."""

    def __init__(self) -> None:
        super().__init__("gorpc")
        self._instruments: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _get(
        self, name: str, make: Callable[[], Any], callbacks: Sequence[api.CallbackT] | None = None
    ) -> Any:
        with self._lock:
            instrument = self._instruments.get(name)
            if instrument is None:
                instrument = self._instruments[name] = make()
            elif callbacks:
                instrument.callbacks.extend(callbacks)
            return instrument

    def create_counter(self, name: str, unit: str = "", description: str = "") -> api.Counter:
        return self._get(name, lambda: _Counter(name, unit, description))  # type: ignore[no-any-return]

    def create_up_down_counter(self, name: str, unit: str = "", description: str = "") -> api.UpDownCounter:
        return self._get(name, lambda: _UpDownCounter(name, unit, description))  # type: ignore[no-any-return]

    def create_gauge(self, name: str, unit: str = "", description: str = "") -> api._Gauge:
        return self._get(name, lambda: _Gauge(name, unit, description))  # type: ignore[no-any-return]

    def create_histogram(
        self,
        name: str,
        unit: str = "",
        description: str = "",
        *,
        explicit_bucket_boundaries_advisory: Sequence[float] | None = None,
    ) -> api.Histogram:
        buckets = explicit_bucket_boundaries_advisory
        return self._get(name, lambda: _Histogram(name, unit, description, buckets))  # type: ignore[no-any-return]

    def create_observable_counter(
        self,
        name: str,
        callbacks: Sequence[api.CallbackT] | None = None,
        unit: str = "",
        description: str = "",
    ) -> api.ObservableCounter:
        made = self._get(name, lambda: _ObservableCounter(name, callbacks, unit, description), callbacks)
        return made  # type: ignore[no-any-return]

    def create_observable_up_down_counter(
        self,
        name: str,
        callbacks: Sequence[api.CallbackT] | None = None,
        unit: str = "",
        description: str = "",
    ) -> api.ObservableUpDownCounter:
        made = self._get(
            name, lambda: _ObservableUpDownCounter(name, callbacks, unit, description), callbacks
        )
        return made  # type: ignore[no-any-return]

    def create_observable_gauge(
        self,
        name: str,
        callbacks: Sequence[api.CallbackT] | None = None,
        unit: str = "",
        description: str = "",
    ) -> api.ObservableGauge:
        made = self._get(name, lambda: _ObservableGauge(name, callbacks, unit, description), callbacks)
        return made  # type: ignore[no-any-return]

    def bind_histograms(
        self, histograms: Sequence[Any], labels: Labels
    ) -> Callable[[float, int, int | None], None]:
        """For gorpc's recorders (see `gorpc.metrics.call_recorder`): one function recording a call's
        duration, request size and reply size (None: not counted) into these three histograms, with
        the labels resolved now and series of the calling thread's own, so a call costs one Python
        call, three bisects and six additions: no lookup and no lock (only this thread writes
        them; a scrape reading one mid-update at worst sees a count without its sum)."""
        thread = threading.get_ident()
        (duration, d_bounds), (request, q_bounds), (reply, r_bounds) = (
            (h.series(labels, thread), h.bounds) for h in histograms
        )
        bucket = bisect.bisect_left

        def record(seconds: float, request_size: int, reply_size: int | None) -> None:
            duration[bucket(d_bounds, seconds)] += 1
            duration[-1] += seconds
            request[bucket(q_bounds, request_size)] += 1
            request[-1] += request_size
            if reply_size is not None:
                reply[bucket(r_bounds, reply_size)] += 1
                reply[-1] += reply_size

        return record

    def collect(self) -> Iterator[Any]:
        with self._lock:
            instruments = list(self._instruments.values())
        for instrument in instruments:
            yield instrument.collect()


class _Endpoint:
    """One /metrics endpoint: its meter, its registry and prometheus-client's HTTP server."""

    def __init__(self, host: str, port: int) -> None:
        self.meter = PrometheusMeter()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.meter)
        self.server, self.thread = start_http_server(port, addr=host, registry=self.registry)
        self.address = f"{host}:{self.server.server_port}"
        self.users = 0

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


_endpoints: dict[str, _Endpoint] = {}  # by configured address (port 0 is never shared)
_endpoints_lock = threading.Lock()


class PrometheusMetrics:
    """A meter whose measurements prometheus-client serves on `address`. The endpoint starts with
    the first server or client that uses it and stops when the last one closes."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options = from_table(PrometheusOptions, "plugins.prometheus", dict(options or {}))
        self._endpoint: _Endpoint | None = None

    def meter(self) -> PrometheusMeter:
        if self._endpoint is None:
            self._endpoint = _acquire(self.options.address)
        return self._endpoint.meter

    @property
    def address(self) -> str:
        """Where /metrics is served (the real port, when configured with 0)."""
        self.meter()
        assert self._endpoint is not None
        return self._endpoint.address

    def close(self) -> None:
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            _release(self.options.address, endpoint)


def _acquire(address: str) -> _Endpoint:
    parsed = parse_address(address)
    assert isinstance(parsed, TcpAddress)
    worker = worker_number()
    if worker is not None and parsed.port != 0:
        # Worker processes cannot share one port: worker k serves on the configured port + k.
        parsed = TcpAddress(parsed.host, parsed.port + worker)
        address = str(parsed)
    with _endpoints_lock:
        endpoint = _endpoints.get(address)
        if endpoint is None:
            try:
                endpoint = _Endpoint(parsed.host, parsed.port)
            except OSError as exc:
                raise ConfigError(f"[plugins.prometheus] cannot serve metrics on {address}: {exc}") from exc
            if parsed.port != 0:
                _endpoints[address] = endpoint
        endpoint.users += 1
        return endpoint


def _release(address: str, endpoint: _Endpoint) -> None:
    with _endpoints_lock:
        endpoint.users -= 1
        if endpoint.users:
            return
        if _endpoints.get(address) is endpoint:
            del _endpoints[address]
    endpoint.stop()
