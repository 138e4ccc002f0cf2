"""RPC metrics, recorded through the OpenTelemetry metrics API into the meter a MetricsPlugin gives
(`metrics = "prometheus"` or `"opentelemetry"`; the default, `"none"`, records nothing and adds
nothing to the call path). Names follow OpenTelemetry's RPC conventions where they have one:

| instrument | kind | unit | attributes |
|---|---|---|---|
| `rpc.{server,client}.call.duration` | histogram | s | the call's (below) |
| `rpc.{server,client}.request.size`, `.response.size` | histogram | By | the call's |
| `gorpc.{server,client}.calls.active` | up-down counter (observed) | {call} | rpc.system |
| `gorpc.{server,client}.connections` | up-down counter (observed) | {connection} | rpc.system |
| `gorpc.client.failover.retries` | counter | {retry} | rpc.system, rpc.service, rpc.method |
| `gorpc.client.ejections` | counter | {ejection} | rpc.system, server.address |

A call's attributes: rpc.system ("gorpc"), rpc.service, rpc.method, rpc.response.status_code.
Sizes are the bodies as sent (compressed, if they were): a unary call's request and reply, and a
stream's opening request. A server labels a method it does not host `_OTHER`, so callers cannot
grow its label sets without bound.
"""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import AsyncIterator, Callable, Container, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gorpc.context import CallContext
from gorpc.interceptors import watched_replies
from gorpc.kinds import StreamMode
from gorpc.semconv import OTHER, SYSTEM, call_attributes, status_name
from gorpc.types import Next

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation

# Seconds: an in-process call takes tens of microseconds, so the buckets start well below the
# conventions' advice (which starts at 5 ms).
DURATION_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
SIZE_BUCKETS = (0, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
_UNARY, _REPLIES = StreamMode.UNARY, StreamMode.REPLIES
_now = time.perf_counter
_CACHED = 4096  # label sets kept per recorder; past that (a client calling made-up paths) made per call


# Records one call: its duration, its request size and its reply size (None: no reply to count).
CallRecorder = Callable[[float, int, "int | None"], None]


def call_recorder(meter: Meter, histograms: Sequence[Histogram], labels: Labels) -> CallRecorder:
    """A recorder of one call's three measurements with these labels. A meter that offers
    `bind_histograms(histograms, labels)` (the `prometheus` one) gives its own, which resolves the
    labels once and records all three in one call; with any other meter (OpenTelemetry's SDK) each
    measurement goes through the API's `record(amount, labels)`."""
    bind = getattr(meter, "bind_histograms", None)
    if bind is not None:
        return bind(histograms, labels)  # type: ignore[no-any-return]
    duration, request_size, reply_size = (functools.partial(h.record, attributes=labels) for h in histograms)

    def record(seconds: float, request: int, reply: int | None) -> None:
        duration(seconds)
        request_size(request)
        if reply is not None:
            reply_size(reply)

    return record


class NoMetrics:
    """The default: no meter, so nothing is recorded and nothing is added to the call path."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        pass

    def meter(self) -> None:
        return None


class Labels(dict[str, Any]):
    """A call's attributes, hashed once: a meter may key its series on them. Never changed."""

    __slots__ = ("_hash",)

    def __init__(self, items: Mapping[str, Any]) -> None:
        super().__init__(items)
        self._hash = hash(tuple(sorted(self.items())))

    def __hash__(self) -> int:  # type: ignore[override]
        return self._hash


def _call_labels(path: str, status: str | None) -> Labels:
    attributes = dict(call_attributes(path)[1])
    if status is not None:
        attributes["rpc.response.status_code"] = status
    return Labels(attributes)


_SYSTEM_ONLY = Labels({"rpc.system": SYSTEM})


class _Gauges:
    """The observed instruments of one meter: sums over the recorders alive that use it (a process
    may hold many clients and servers; a closed one drops out)."""

    def __init__(self, meter: Meter, side: str) -> None:
        self.recorders: weakref.WeakSet[Any] = weakref.WeakSet()
        meter.create_observable_up_down_counter(
            f"gorpc.{side}.calls.active", [self._active], unit="{call}", description=f"{side} calls in flight"
        )
        meter.create_observable_up_down_counter(
            f"gorpc.{side}.connections",
            [self._connections],
            unit="{connection}",
            description="open connections",
        )

    def _active(self, options: CallbackOptions) -> Iterator[Observation]:
        from opentelemetry.metrics import Observation

        yield Observation(sum(r.active() for r in list(self.recorders)), _SYSTEM_ONLY)

    def _connections(self, options: CallbackOptions) -> Iterator[Observation]:
        from opentelemetry.metrics import Observation

        yield Observation(sum(r.connections() for r in list(self.recorders)), _SYSTEM_ONLY)


_gauges: dict[tuple[int, str], tuple[weakref.ref[Any], _Gauges]] = {}


def _gauges_of(meter: Meter, side: str) -> _Gauges:
    """One set of observed instruments per meter and side, however many recorders share it."""
    key = (id(meter), side)
    found = _gauges.get(key)
    if found is None or found[0]() is not meter:
        found = _gauges[key] = (weakref.ref(meter), _Gauges(meter, side))
    return found[1]


class _Recorder:
    """What both sides record: duration and sizes per method and status. `active` and
    `connections` give the calls in flight and the open connections when the gauges are read."""

    def __init__(
        self, meter: Meter, side: str, active: Callable[[], int], connections: Callable[[], int]
    ) -> None:
        self.active = active
        self.connections = connections
        self._duration = meter.create_histogram(
            f"rpc.{side}.call.duration",
            unit="s",
            description=f"Duration of {side} calls",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self._request_size = meter.create_histogram(
            f"rpc.{side}.request.size",
            unit="By",
            description="Request body sizes",
            explicit_bucket_boundaries_advisory=SIZE_BUCKETS,
        )
        self._response_size = meter.create_histogram(
            f"rpc.{side}.response.size",
            unit="By",
            description="Reply body sizes",
            explicit_bucket_boundaries_advisory=SIZE_BUCKETS,
        )
        self._meter = meter
        self._histograms = (self._duration, self._request_size, self._response_size)
        self._recorders: dict[tuple[str, str], CallRecorder] = {}
        _gauges_of(meter, side).recorders.add(self)

    def _record(
        self, path: str, status: str, seconds: float, request_size: int, reply_size: int | None
    ) -> None:
        record = self._recorders.get((path, status)) or self._recorder(path, status)
        record(seconds, request_size, reply_size)

    def _recorder(self, path: str, status: str) -> CallRecorder:
        """Records a call of `path` that ended with `status` into the three histograms."""
        recorder = call_recorder(self._meter, self._histograms, self._labels_for(path, status))
        if len(self._recorders) < _CACHED:
            self._recorders[path, status] = recorder
        return recorder

    def _labels_for(self, path: str, status: str) -> Labels:
        return _call_labels(path, status)


class ServerMetrics(_Recorder):
    """A server's recorder: a `CallObserver` of its calls."""

    def __init__(
        self,
        meter: Meter,
        active: Callable[[], int],
        connections: Callable[[], int],
        hosted: Container[str],
    ) -> None:
        super().__init__(meter, "server", active, connections)
        self._hosted = hosted

    def call_ended(
        self, path: str, peer: str, status: str, seconds: float, request_size: int, reply_size: int | None
    ) -> None:
        # `_record` written out: this runs on every call, and a Python frame is about 1% of one.
        recorder = self._recorders.get((path, status)) or self._recorder(path, status)
        recorder(seconds, request_size, reply_size)

    def _labels_for(self, path: str, status: str) -> Labels:
        if path in self._hosted:
            return _call_labels(path, status)
        return Labels(
            {
                "rpc.system": SYSTEM,
                "rpc.service": OTHER,
                "rpc.method": OTHER,
                "rpc.response.status_code": status,
            }
        )


class ClientMetrics(_Recorder):
    """A client's recorder: an interceptor around each call (retries included), and counts of
    failover retries and ejections."""

    def __init__(self, meter: Meter, connections: Callable[[], int]) -> None:
        super().__init__(meter, "client", self._in_flight, connections)
        self._active = 0
        self._retries = meter.create_counter(
            "gorpc.client.failover.retries", unit="{retry}", description="Calls tried again on another node"
        )
        self._ejections = meter.create_counter(
            "gorpc.client.ejections",
            unit="{ejection}",
            description="Nodes left out after their connection failed",
        )

    def _in_flight(self) -> int:
        return self._active

    async def measure_call(self, ctx: CallContext, request: Any, call_next: Next) -> Any:
        self._active += 1
        started = _now()
        try:
            reply = await call_next(ctx, request)
        except BaseException as exc:
            self._ended(ctx, status_name(exc), started)
            raise
        if ctx.mode is not _UNARY:  # (an enum's `&` costs a Python call: unary calls skip it)
            if ctx.mode & _REPLIES:
                return self._measured_replies(reply, ctx, started)
            self._ended(ctx, "OK", started)  # client-streaming
            return reply
        # A unary call's sizes are set once it was sent and answered. `_record` written out, as
        # in ServerMetrics.call_ended.
        self._active -= 1
        recorder = self._recorders.get((ctx.method, "OK")) or self._recorder(ctx.method, "OK")
        recorder(_now() - started, ctx.request_size, None if ctx.oneway else ctx.reply_size)
        return reply

    def _measured_replies(
        self, replies: AsyncIterator[Any], ctx: CallContext, started: float
    ) -> AsyncIterator[Any]:
        def end(error: BaseException | None) -> None:
            self._ended(ctx, "OK" if error is None else status_name(error), started)

        return watched_replies(replies, end)

    def _ended(self, ctx: CallContext, status: str, started: float) -> None:
        """A failed call or an ended stream: the sizes it got to."""
        self._active -= 1
        if ctx.oneway or (ctx.mode is not _UNARY and ctx.mode & _REPLIES):
            reply_size = None  # no reply, or a stream of them
        else:
            reply_size = getattr(ctx, "reply_size", 0)  # unset: it failed first
        request_size = getattr(ctx, "request_size", 0)
        self._record(ctx.method, status, time.perf_counter() - started, request_size, reply_size)

    def retried(self, ctx: CallContext) -> None:
        self._retries.add(1, call_attributes(ctx.method)[1])

    def ejected(self, address: str) -> None:
        self._ejections.add(1, {"rpc.system": SYSTEM, "server.address": address})
