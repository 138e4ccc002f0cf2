"""Before/after for a change to the call path: this tree's gorpc and another checkout's (say the
previous main), with the raw ceiling, side by side in one run.

    git worktree add /tmp/base main~1      # or any checkout of the code to compare with
    python benchmarks/ab.py --base /tmp/base [--calls 40000] [--rounds 3] [--concurrency 1 8 64 256]

Each gorpc runs its own server process and its own load processes (benchmarks/loadgen.py with
PYTHONPATH pointing at that tree); rounds alternate ceiling, base, this, so machine noise hits all
three alike. Prints gorpc/ceiling calls/s for both at each concurrency (medians of the rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gorpc.testing import server_process

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def tree_env(tree: Path) -> dict[str, str]:
    """An environment in which `import gorpc` (and its plugins) finds `tree`'s code."""
    return {**os.environ, "PYTHONPATH": f"{tree}{os.pathsep}{tree / 'plugins'}"}


def measure(kind: str, address: str, calls: int, concurrency: int, env: dict[str, str]) -> float:
    argv = [sys.executable, str(HERE / "loadgen.py"), kind, address, "--calls", str(calls)]
    argv += ["--concurrency", str(concurrency)]
    out = subprocess.run(argv, env=env, capture_output=True, text=True, check=True, timeout=600).stdout
    return float(json.loads(out)["calls_per_s"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base", required=True, type=Path, help="a checkout of the code to compare with")
    parser.add_argument("--calls", type=int, default=40_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64, 256])
    args = parser.parse_args()
    envs = {"base": tree_env(args.base.resolve()), "this": tree_env(ROOT)}
    servers = HERE / "servers.py"
    rows: dict[tuple[str, int], list[float]] = {}
    with (
        server_process([str(servers), "ceiling", "127.0.0.1:0"]) as ceiling,
        server_process([str(servers), "gorpc", "127.0.0.1:0"], env=envs["base"]) as base,
        server_process([str(servers), "gorpc", "127.0.0.1:0"], env=envs["this"]) as this,
    ):
        targets = {"ceiling": ("ceiling", ceiling.address, envs["this"])}
        targets["base"] = ("gorpc", base.address, envs["base"])
        targets["this"] = ("gorpc", this.address, envs["this"])
        for _ in range(args.rounds):
            for concurrency in args.concurrency:
                calls = args.calls if concurrency > 1 else args.calls // 4
                for name, (kind, address, env) in targets.items():
                    rows.setdefault((name, concurrency), []).append(
                        measure(kind, address, calls, concurrency, env)
                    )
    print(f"{args.rounds} alternating rounds, medians; base = {args.base}")
    print("| C | ceiling calls/s | base calls/s | this calls/s | base/ceiling | this/ceiling | this/base |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for concurrency in args.concurrency:
        ceiling_rate, base_rate, this_rate = (
            statistics.median(rows[(name, concurrency)]) for name in ("ceiling", "base", "this")
        )
        print(
            f"| {concurrency} | {ceiling_rate:,.0f} | {base_rate:,.0f} | {this_rate:,.0f} | "
            f"{base_rate / ceiling_rate:.2f} | {this_rate / ceiling_rate:.2f} | {this_rate / base_rate:.2f} |"
        )


if __name__ == "__main__":
    main()
