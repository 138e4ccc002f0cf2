"""The benchmark suite runs end to end with tiny counts, so its scripts cannot rot. No speed is asserted."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_suite_runs_every_sweep_and_writes_its_reports(tmp_path):
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "suite.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    [results] = tmp_path.glob("*.json")
    report = json.loads(results.read_text())
    assert {"date", "cpu", "cores", "python", "versions"} <= report["meta"].keys()
    rows = report["rows"]
    sweeps = {(r["sweep"], r["variant"]) for r in rows}
    assert {("concurrency", k) for k in ("gorpc", "grpc", "ceiling")} <= sweeps
    assert {("tracing", "tracing off (noop)"), ("tracing", "tracing on (mock)")} <= sweeps
    assert {("consul", "direct"), ("consul", "consul")} <= sweeps
    assert {("typed", "untyped (plain data)"), ("typed", "typed (Structs, stub)")} <= sweeps
    assert {("metrics", "metrics off"), ("metrics", "metrics on (prometheus)")} <= sweeps
    assert {("workers", "hello, 2 workers"), ("workers", "100 µs of work, 2 workers")} <= sweeps
    assert sorted({r["concurrency"] for r in rows if r["sweep"] == "concurrency"}) == [1, 8, 64, 256]
    assert sorted({r["payload"] for r in rows if r["sweep"] == "payload"}) == [20, 1024, 65536, 1048576]
    # Every measurement answered all its calls (loadgen checks each reply and fails the run otherwise).
    assert all(r["calls"] > 0 and r["calls_per_s"] > 0 for r in rows)
    assert all(r["p50_ms"] <= r["p90_ms"] <= r["p99_ms"] <= r["p99.9_ms"] for r in rows)
    streams = report["streams"]
    assert {(r["kind"], r["mode"], r["size"]) for r in streams} == {
        (kind, mode, size)
        for kind in ("gorpc", "grpc", "ceiling")
        for mode in ("server", "bidi")
        for size in (16, 1024)
    }
    assert all(
        r["items_per_s"] > 0 for r in streams
    )  # streamgen checks every item and fails the run otherwise
    table = (tmp_path / "latest.md").read_text()
    assert "| stream | item bytes |" in table
    assert "| target | measured | wanted | met |" in table
    assert "| C=64 typed/untyped calls/s |" in table
    assert "| C=64 metrics on/off calls/s |" in table
    assert "| workers 2/1 calls/s (100 µs handler) |" in table
    assert "| one client calling every service once | 50 | 50 of 50 |" in table
    assert (tmp_path / "latest.png").stat().st_size > 10_000
