"""The benchmark suite: gorpc, grpcio's asyncio API and a raw uvloop msgpack echo (the ceiling),
side by side in one run, each server in its own process and each measurement in a client process.

    python benchmarks/suite.py                 # the full run: about five minutes on 2 cores
    python benchmarks/suite.py --quick         # tiny counts: checks the scripts, measures nothing

Sweeps: concurrency 1/8/64/256; payload 20 B/1 KiB/64 KiB/1 MiB; one connection vs 16 clients;
gorpc tracing off vs on; gorpc metrics off vs on (prometheus, both sides); one server process vs
two workers (hello and a 100 µs handler, two connections); gorpc typed (Structs through a stub)
vs untyped; gorpc resolved through a real Consul vs a direct address; streams
(server-streaming and bidirectional, 16 B and 1 KiB items) against grpcio's streams and a raw
stream ceiling; Consul at scale (consul_scale.py: 1,000 services, one client calling them all).
Writes `results/<date>.json` (with the machine and versions), `results/latest.md` and PNG plots.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from gorpc.testing import ServerProcess, server_process  # noqa: E402

KINDS = ("gorpc", "grpc", "ceiling")
CONCURRENCY = (1, 8, 64, 256)
PAYLOADS = (20, 1024, 64 * 1024, 1024 * 1024)
MANY_CLIENTS = 16
GRPC_SHARE = 10  # grpc measurements make 1/10 of the calls: each still lasts a second or more
STREAM_MODES = ("server", "bidi")
STREAM_SIZES = (16, 1024)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=60_000, help="calls per measurement (small payloads)")
    parser.add_argument("--items", type=int, default=300_000, help="items per stream measurement")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds per group, alternating; medians reported"
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny counts, for CI: the scripts run, replies are right"
    )
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument(
        "--redraw", type=Path, metavar="JSON", help="only redo table and plot from saved results"
    )
    args = parser.parse_args()
    if args.redraw is not None:
        report = json.loads(args.redraw.read_text())
        (args.out / "latest.md").write_text(markdown(report))
        plot(report["rows"], report.get("streams", []), args.out)
        return
    calls, items, rounds = (500, 2000, 1) if args.quick else (args.calls, args.items, args.rounds)
    args.out.mkdir(parents=True, exist_ok=True)
    with servers() as running:
        rows = [row for group in groups(calls) for row in run_group(running, group, rounds)]
        rows += typed_rows(running, calls * 2, rounds)
        rows += metrics_rows(running, calls * 2, rounds)
        streams = [row for group in stream_groups(items) for row in run_group(running, group, rounds)]
    scale = consul_scale(50 if args.quick else 1000)
    report = {"meta": machine(), "rows": rows, "streams": streams, "consul_scale": scale}
    stamp = report["meta"]["date"]
    (args.out / f"{stamp}.json").write_text(json.dumps(report, indent=1))
    table = markdown(report)
    (args.out / "latest.md").write_text(table)
    plot(rows, streams, args.out)
    print(table)


@contextlib.contextmanager
def servers() -> Iterator[dict[str, Any]]:
    """Every server the sweeps use, plus a Consul dev agent for the resolved row."""
    from gorpc_consul.testing import dev_agent

    script = str(HERE / "servers.py")
    with contextlib.ExitStack() as stack:
        consul = stack.enter_context(dev_agent())
        running: dict[str, Any] = {"consul": consul.http_address}
        for name, argv in {
            "gorpc": ["gorpc", "127.0.0.1:0"],
            "gorpc+noop": ["gorpc", "127.0.0.1:0", "--tracer", "noop"],
            "gorpc+tracing": ["gorpc", "127.0.0.1:0", "--tracer", "mock"],
            "gorpc+metrics": ["gorpc", "127.0.0.1:0", "--metrics", "prometheus"],
            "gorpc+2workers": ["gorpc", "127.0.0.1:0", "--workers", "2"],
            "gorpc+consul": ["gorpc", "127.0.0.1:0", "--consul", consul.http_address],
            "grpc": ["grpc", "127.0.0.1:0"],
            "ceiling": ["ceiling", "127.0.0.1:0"],
            "stream-ceiling": ["stream-ceiling", "127.0.0.1:0"],
        }.items():
            running[name] = stack.enter_context(server_process([script, *argv]))
        yield running


Spec = dict[str, Any]


def groups(calls: int) -> Iterator[list[Spec]]:
    """Measurements compared with each other run in one group: alternating, round after round."""
    for concurrency in CONCURRENCY:
        yield [spec("concurrency", kind, calls, concurrency=concurrency) for kind in KINDS]
    for payload in PAYLOADS:
        scaled = max(calls * 1024 // max(payload, 1024), 50)  # large payloads: fewer calls
        yield [spec("payload", kind, scaled, concurrency=8, payload=payload) for kind in KINDS]
    yield [spec("clients", kind, calls, concurrency=64, clients=MANY_CLIENTS) for kind in KINDS]
    yield [
        spec("tracing", "gorpc", calls, concurrency=64, variant="no tracer configured"),
        spec("tracing", "gorpc", calls, concurrency=64, server="gorpc+noop", variant="tracing off (noop)"),
        spec("tracing", "gorpc", calls, concurrency=64, server="gorpc+tracing", variant="tracing on (mock)"),
    ]
    # Worker processes: one client process with two connections, against one server process and
    # against two workers (the supervisor gives each connection to the next worker).
    for method, label, share in (("SayHello", "hello", calls), ("Busy", "100 µs of work", calls // 4)):
        yield [
            spec(
                "workers", "gorpc", share, concurrency=64,
                variant=f"{label}, 1 worker", method=method, connections=2,
            ),
            spec(
                "workers", "gorpc", share, concurrency=64, server="gorpc+2workers",
                variant=f"{label}, 2 workers", method=method, connections=2,
            ),
        ]  # fmt: skip
    yield [
        spec("consul", "gorpc", calls, concurrency=64, server="gorpc+consul", variant="direct"),
        spec("consul", "gorpc", calls, concurrency=64, server="gorpc+consul", variant="consul", consul=True),
    ]


def stream_groups(items: int) -> Iterator[list[Spec]]:
    """gorpc, grpc and the raw ceiling through one stream, per mode and item size."""
    for mode in STREAM_MODES:
        for size in STREAM_SIZES:
            yield [
                {
                    "stream": True,
                    "kind": kind,
                    "server": "stream-ceiling" if kind == "ceiling" else kind,
                    "mode": mode,
                    "size": size,
                    "items": max(items // GRPC_SHARE, 100) if kind == "grpc" else items,
                }
                for kind in KINDS
            ]


def typed_rows(running: dict[str, Any], calls: int, rounds: int) -> list[dict[str, Any]]:
    """Typed (Structs through a stub) against untyped (plain data), C=64: a difference of about 1%
    that separate processes measured minutes apart cannot resolve on this machine, so one client
    process alternates the two in blocks (loadgen --blocks), `rounds` times; medians."""
    variants = dict(zip(("untyped", "typed"), _TYPED_VARIANTS, strict=True))
    return interleaved_rows(running, calls, rounds, "typed", variants, [])


def metrics_rows(running: dict[str, Any], calls: int, rounds: int) -> list[dict[str, Any]]:
    """Metrics off against on (prometheus, recorded by the server and the client), C=64: two
    servers, one client process alternating between them in blocks, as `typed_rows` does."""
    variants = dict(zip(("off", "on"), _METRICS_VARIANTS, strict=True))
    extra = ["--metrics-target", running["gorpc+metrics"].address]
    return interleaved_rows(running, calls, rounds, "metrics", variants, extra)


def interleaved_rows(
    running: dict[str, Any],
    calls: int,
    rounds: int,
    sweep: str,
    variants: dict[str, str],
    extra: list[str],
) -> list[dict[str, Any]]:
    """Rows of variants that one loadgen process measures in alternating blocks, `rounds` times."""
    process: ServerProcess = running["gorpc"]
    argv = [sys.executable, str(HERE / "loadgen.py"), "gorpc", process.address, "--calls", str(calls)]
    argv += ["--concurrency", "64", "--blocks", "10", *extra]
    runs: dict[str, list[dict[str, Any]]] = {variant: [] for variant in variants.values()}
    for _ in range(rounds):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv[1:])} failed:\n{done.stderr}")
        measured = json.loads(done.stdout)
        for key, variant in variants.items():
            runs[variant].append(
                {
                    **measured[key],
                    "sweep": sweep,
                    "kind": "gorpc",
                    "variant": variant,
                    "concurrency": 64,
                    "payload": 20,
                    "clients": 1,
                    "server_cpu_s": float("nan"),  # measured in blocks: not split per variant
                    "server_peak_rss_mb": server_peak_rss_mb(process.process.pid),
                }
            )
    rows = [_median(runs[variant]) for variant in variants.values()]
    for row in rows:
        print(f"{sweep:12} {row['variant']:24} C=64 {row['calls_per_s']:>10,.0f} calls/s", flush=True)
    return rows


def measure_stream(
    running: dict[str, Any], *, stream: bool, kind: str, server: str, mode: str, size: int, items: int
) -> dict[str, Any]:
    process: ServerProcess = running[server]
    argv = [sys.executable, str(HERE / "streamgen.py"), kind, process.address, "--mode", mode]
    argv += ["--items", str(items), "--size", str(size)]
    cpu_before = server_cpu(process.process.pid)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[1:])} failed:\n{done.stderr}")
    result = json.loads(done.stdout)
    result.update(kind=kind, mode=mode, size=size, server_cpu_s=server_cpu(process.process.pid) - cpu_before)
    print(
        f"stream       {kind:20} {mode:6} item={size:<6} {result['items_per_s']:>12,.0f} items/s"
        f"  {result['mb_per_s']:>8.1f} MB/s",
        flush=True,
    )
    return result


def consul_scale(services: int) -> dict[str, Any]:
    """`consul_scale.py`: a real agent, `services` services in 4 hosting processes, one client."""
    argv = [sys.executable, str(HERE / "consul_scale.py"), "--services", str(services), "--hosts", "4"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"consul_scale.py failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    print(
        f"consul scale {services} services: {result['answered']} answered, "
        f"{result['consul_connections']} connections, routable in {result['new_instance_routable_s']:.3f}s",
        flush=True,
    )
    return result


def spec(sweep: str, kind: str, calls: int, **options: Any) -> Spec:
    if kind == "grpc":
        calls = max(calls // GRPC_SHARE, 50)  # about 20x slower: fewer calls keep the run short
    return {"sweep": sweep, "kind": kind, "calls": calls, "server": kind, "variant": kind, **options}


def run_group(running: dict[str, Any], group: list[Spec], rounds: int) -> list[dict[str, Any]]:
    """Each spec `rounds` times, alternating so machine noise hits all alike; medians per spec.
    Every other round runs the group backwards: going first (or last) is no spec's steady luck."""
    results: list[list[dict[str, Any]]] = [[] for _ in group]
    for round_number in range(rounds):
        order = list(enumerate(group))
        for i, one in order if round_number % 2 == 0 else reversed(order):
            results[i].append(measure_stream(running, **one) if "stream" in one else measure(running, **one))
    return [_median(runs) for runs in results]


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    row = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, float):
            row[key] = statistics.median(r[key] for r in runs)
    row["rounds"] = len(runs)
    return row


def measure(
    running: dict[str, Any],
    *,
    sweep: str,
    kind: str,
    server: str,
    variant: str,
    calls: int,
    concurrency: int,
    payload: int = 20,
    clients: int = 1,
    consul: bool = False,
    typed: bool = False,
    method: str = "SayHello",
    connections: int = 1,
) -> dict[str, Any]:
    process: ServerProcess = running[server]
    target = "helloworld.Greeter" if consul else process.address
    argv = [sys.executable, str(HERE / "loadgen.py"), kind, target, "--calls", str(calls)]
    argv += ["--concurrency", str(concurrency), "--payload", str(payload), "--clients", str(clients)]
    if server == "gorpc+tracing":
        argv += ["--tracer", "mock"]
    if consul:
        argv += ["--consul", running["consul"]]
    if typed:
        argv.append("--typed")
    if method != "SayHello":
        argv += ["--method", method]
    if connections > 1:
        argv += ["--connections-per-host", str(connections)]
    cpu_before = server_cpu(process.process.pid)
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[1:])} failed:\n{done.stderr}")
    result = json.loads(done.stdout)
    result.update(
        sweep=sweep,
        kind=kind,
        variant=variant,
        concurrency=concurrency,
        payload=payload,
        clients=clients,
        server_cpu_s=server_cpu(process.process.pid) - cpu_before,
        server_peak_rss_mb=server_peak_rss_mb(process.process.pid),
    )
    print(
        f"{sweep:12} {result['variant']:20} C={concurrency:<4} payload={payload:<8} clients={clients:<3}"
        f" {result['calls_per_s']:>10,.0f} calls/s"
        f"  p50 {result['p50_ms']:.3f} ms  p99 {result['p99_ms']:.3f} ms",
        flush=True,
    )
    return result


def server_cpu(pid: int) -> float:
    """User + system CPU seconds so far of a server process and its children (worker processes),
    from /proc."""
    total = 0.0
    for each in _tree(pid):
        fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def server_peak_rss_mb(pid: int) -> float:
    """The largest peak resident size among a server process and its children."""
    peaks = [0.0]
    for each in _tree(pid):
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks)


def _tree(pid: int) -> list[int]:
    """`pid` and its descendants now."""
    found, queue = [], [pid]
    while queue:
        each = queue.pop()
        found.append(each)
        for task in Path(f"/proc/{each}/task").iterdir():
            queue += [int(child) for child in (task / "children").read_text().split()]
    return found


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    packages = ("gorpc", "grpcio", "msgpack", "msgspec", "uvloop", "aiohttp")
    return {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "versions": {name: version(name) for name in packages},
    }


def find(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    return next(r for r in rows if all(r[k] == v for k, v in match.items()))


def targets(
    rows: list[dict[str, Any]], stream_rows: list[dict[str, Any]]
) -> list[tuple[str, float, str, bool]]:
    """(target, measured, wanted, met) for the issue's speed targets, from this run's rows."""
    at = {(r["kind"], r["concurrency"]): r for r in rows if r["sweep"] == "concurrency"}
    g64, c64, r64 = at["gorpc", 64], at["ceiling", 64], at["grpc", 64]
    no_tracer = find(rows, sweep="tracing", variant="no tracer configured")
    tracing_off = find(rows, sweep="tracing", variant="tracing off (noop)")
    direct, resolved = (
        find(rows, sweep="consul", variant="direct"),
        find(rows, sweep="consul", variant="consul"),
    )
    streams = _stream_ratios(stream_rows)
    untyped, typed = (find(rows, sweep="typed", variant=v) for v in _TYPED_VARIANTS)
    metrics_off, metrics_on = (
        find(rows, sweep="metrics", variant=v) for v in ("metrics off", "metrics on (prometheus)")
    )
    busy_1, busy_2 = (
        find(rows, sweep="workers", variant=f"100 µs of work, {n}") for n in ("1 worker", "2 workers")
    )
    checks = [
        ("C=64 gorpc/ceiling calls/s", g64["calls_per_s"] / c64["calls_per_s"], ">= 0.6", 0.6),
        ("C=64 gorpc/grpcio calls/s", g64["calls_per_s"] / r64["calls_per_s"], ">= 10", 10.0),
        ("C=64 gorpc p99 ms", g64["p99_ms"], "<= 2", None),
        ("C=1 gorpc/ceiling p50", at["gorpc", 1]["p50_ms"] / at["ceiling", 1]["p50_ms"], "<= 1.25", None),
        ("consul-resolved/direct calls/s", resolved["calls_per_s"] / direct["calls_per_s"], ">= 0.95", 0.95),
        ("C=64 typed/untyped calls/s", typed["calls_per_s"] / untyped["calls_per_s"], ">= 1.0", 1.0),
        (
            "workers 2/1 calls/s (100 µs handler)",
            busy_2["calls_per_s"] / busy_1["calls_per_s"],
            ">= 1.6",
            1.6,
        ),
        (
            "C=64 metrics on/off calls/s",
            metrics_on["calls_per_s"] / metrics_off["calls_per_s"],
            ">= 0.85",
            0.85,
        ),
        # noop adds no interceptor, so "tracing off" runs the very code of "no tracer": two server
        # processes of one build, and this ratio is the machine's noise.
        (
            "tracing off/no tracer calls/s",
            tracing_off["calls_per_s"] / no_tracer["calls_per_s"],
            ">= 0.97",
            0.97,
        ),
    ]
    if streams:  # the worst of the stream rows: the target holds for every mode and size
        checks.append(
            ("streams gorpc/grpcio items/s (lowest)", min(r for r, _ in streams.values()), ">= 10", 10.0)
        )
        checks.append(
            ("streams gorpc/ceiling items/s (lowest)", min(c for _, c in streams.values()), ">= 0.5", 0.5)
        )
    out = []
    for name, value, wanted, floor in checks:
        limit = float(wanted.split()[1])
        met = value >= floor if floor is not None else value <= limit
        out.append((name, value, wanted, met))
    return out


def markdown(report: dict[str, Any]) -> str:
    meta, rows = report["meta"], report["rows"]
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    lines = [
        f"Measured {meta['date']} on {meta['cpu']} ({meta['cores']} cores), Python {meta['python']};"
        f" {versions}. Medians of {rows[0]['rounds']} alternating round(s) per group.",
        "",
        "| sweep | what | C | payload | clients | calls/s | p50 ms | p90 ms | p99 ms | p99.9 ms "
        "| client CPU s | server CPU s | server peak RSS MB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['sweep']} | {r['variant']} | {r['concurrency']} | {r['payload']} | {r['clients']} "
            f"| {r['calls_per_s']:,.0f} | {r['p50_ms']:.3f} | {r['p90_ms']:.3f} | {r['p99_ms']:.3f} "
            f"| {r['p99.9_ms']:.3f} | {r['client_cpu_s']:.2f} | {_cpu(r['server_cpu_s'])} "
            f"| {r['server_peak_rss_mb']:.0f} |"
        )
    lines += [
        "",
        "| sweep | C | payload | clients | gorpc/grpcio calls/s | gorpc/ceiling calls/s "
        "| gorpc/grpcio p50 | gorpc/ceiling p50 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key, by_kind in _side_by_side(rows):
        g, r, c = by_kind["gorpc"], by_kind["grpc"], by_kind["ceiling"]
        lines.append(
            "| {} | {} | {} | {} ".format(*key)
            + f"| {g['calls_per_s'] / r['calls_per_s']:.1f} | {g['calls_per_s'] / c['calls_per_s']:.2f} "
            f"| {g['p50_ms'] / r['p50_ms']:.2f} | {g['p50_ms'] / c['p50_ms']:.2f} |"
        )
    stream_rows = report.get("streams", [])
    if stream_rows:
        lines += [
            "",
            "| stream | item bytes | gorpc items/s | grpcio items/s | ceiling items/s | gorpc MB/s "
            "| gorpc/grpcio | gorpc/ceiling |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for (mode, size), (to_grpc, to_ceiling) in _stream_ratios(stream_rows).items():
            g, r, c = (find(stream_rows, kind=k, mode=mode, size=size) for k in KINDS)
            lines.append(
                f"| {STREAM_NAMES[mode]} | {size} | {g['items_per_s']:,.0f} | {r['items_per_s']:,.0f} "
                f"| {c['items_per_s']:,.0f} | {g['mb_per_s']:.1f} | {to_grpc:.1f} | {to_ceiling:.2f} |"
            )
    scale = report.get("consul_scale")
    if scale:
        lines += [
            "",
            "| Consul at scale | services | calls answered | client's connections to Consul "
            "| agent CPU s while calling | new instance routable ms |",
            "|---|---:|---:|---:|---:|---:|",
            f"| one client calling every service once | {scale['services']:,} "
            f"| {scale['answered']:,} of {scale['calls']:,} | {scale['consul_connections']} "
            f"| {scale['agent_cpu_s']:.2f} | {scale['new_instance_routable_s'] * 1000:.0f} |",
        ]
    lines += ["", "| target | measured | wanted | met |", "|---|---:|---|---|"]
    for name, value, wanted, met in targets(rows, stream_rows):
        lines.append(f"| {name} | {value:.2f} | {wanted} | {'yes' if met else 'NO'} |")
    return "\n".join(lines) + "\n"


STREAM_NAMES = {"server": "server-streaming", "bidi": "bidirectional"}


def _cpu(seconds: float) -> str:
    return "-" if seconds != seconds else f"{seconds:.2f}"  # NaN: not measured apart


_TYPED_VARIANTS = ("untyped (plain data)", "typed (Structs, stub)")
_METRICS_VARIANTS = ("metrics off", "metrics on (prometheus)")


def _stream_ratios(stream_rows: list[dict[str, Any]]) -> dict[tuple[str, int], tuple[float, float]]:
    """(gorpc/grpcio, gorpc/ceiling) items/s per (mode, item size)."""
    ratios = {}
    for mode in STREAM_MODES:
        for size in STREAM_SIZES:
            g, r, c = (find(stream_rows, kind=k, mode=mode, size=size) for k in KINDS)
            ratios[mode, size] = (g["items_per_s"] / r["items_per_s"], g["items_per_s"] / c["items_per_s"])
    return ratios


def _side_by_side(rows: list[dict[str, Any]]) -> list[tuple[tuple[Any, ...], dict[str, dict[str, Any]]]]:
    """Rows measured for all three kinds under the same conditions, grouped."""
    groups: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = {}
    for r in rows:
        if r["variant"] == r["kind"]:
            groups.setdefault((r["sweep"], r["concurrency"], r["payload"], r["clients"]), {})[r["kind"]] = r
    return [(key, kinds) for key, kinds in groups.items() if len(kinds) == len(KINDS)]


def plot(rows: list[dict[str, Any]], stream_rows: list[dict[str, Any]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 4, figsize=(21, 4.5))
    by_c = [r for r in rows if r["sweep"] == "concurrency"]
    by_p = [r for r in rows if r["sweep"] == "payload"]
    for kind, color in zip(KINDS, ("tab:blue", "tab:orange", "tab:green"), strict=True):
        mine = [r for r in by_c if r["kind"] == kind]
        x = [r["concurrency"] for r in mine]
        axes[0].plot(x, [r["calls_per_s"] for r in mine], marker="o", color=color, label=kind)
        axes[1].plot(x, [r["p99_ms"] for r in mine], marker="o", color=color, label=f"{kind} p99")
        axes[1].plot(x, [r["p50_ms"] for r in mine], ls="--", color=color, label=f"{kind} p50")
        mine = [r for r in by_p if r["kind"] == kind]
        x = [r["payload"] for r in mine]
        axes[2].plot(x, [r["p99_ms"] for r in mine], marker="o", color=color, label=f"{kind} p99")
        axes[2].plot(x, [r["p50_ms"] for r in mine], ls="--", color=color, label=f"{kind} p50")
    titles = ("calls/s vs concurrency", "latency (ms) vs concurrency", "latency (ms) vs payload (C=8)")
    xlabels = ("calls in flight", "calls in flight", "request bytes")
    for ax, title, xlabel in zip(axes[:3], titles, xlabels, strict=True):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    if stream_rows:
        plot_streams(axes[3], stream_rows)
    figure.tight_layout()
    figure.savefig(out / "latest.png", dpi=110)
    plt.close(figure)


def plot_streams(ax: Any, stream_rows: list[dict[str, Any]]) -> None:
    """Items/s through one stream, per mode and item size, the three kinds side by side."""
    cases = [(mode, size) for mode in STREAM_MODES for size in STREAM_SIZES]
    for offset, (kind, color) in enumerate(zip(KINDS, ("tab:blue", "tab:orange", "tab:green"), strict=True)):
        heights = [find(stream_rows, kind=kind, mode=m, size=z)["items_per_s"] for m, z in cases]
        ax.bar([i + (offset - 1) * 0.27 for i in range(len(cases))], heights, 0.27, color=color, label=kind)
    ax.set_xticks(range(len(cases)), [f"{STREAM_NAMES[m]}\n{z} B" for m, z in cases], fontsize=7)
    ax.set_yscale("log")
    ax.set_title("stream items/s (one stream)")
    ax.grid(True, which="both", axis="y", alpha=0.3)
    ax.legend(fontsize=7)


if __name__ == "__main__":
    main()
