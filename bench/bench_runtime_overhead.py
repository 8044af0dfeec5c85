"""Runtime overhead benchmark: prints figures, asserts nothing.

Runs `larry run --stack dev` (private redis-server, real processes) with
$LARRY_CALL_STATS_DIR set, so every worker, coordinator and converge process times each of
its Redis calls (runtime.callstats) and writes the totals when it exits. Printed: the share
of each kind of process's wall time spent in coordination calls, and the calls behind it.
Blocking stream reads (XREAD BLOCK: a process waiting for an event) are shown apart and not
counted as overhead.

The default ``--speed 30`` (a 40-minute plan in about 45 s) keeps the run short while the
processes' start-up no longer dominates it. At ``--speed 600`` the payloads' work shrinks
600-fold while a Redis round trip does not, and twenty interpreters starting at once on two
cores slow every call: the share measured there (about 7 % here) is an upper bound for the
same plan at speed 1; at speed 30 it measured 0.69 %.

Usage: python bench/bench_runtime_overhead.py [--stack dev] [--speed 30] [--runs 1]
Target (issue 7): coordination < 1 % of wall time (the seed claims < 5 %).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plan.environment import CALL_STATS_DIR as ENV  # noqa: E402
from runtime.commands.run import larry_command  # noqa: E402

KINDS = ("worker", "coordinator", "converge")


def run_once(stack: str, speed: float, directory: Path) -> tuple[float, list[dict]]:
    stats = directory / "stats"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LARRY_")} | {ENV: str(stats)}
    started = time.monotonic()
    done = subprocess.run([*larry_command(), "run", "--stack", stack, "--speed", f"{speed:g}",
                           "--project-dir", str(ROOT), "--coordination-dir", str(directory / "run")],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wall = time.monotonic() - started
    if done.returncode != 0:
        sys.exit(f"larry run failed (exit status {done.returncode}):\n{done.stdout[-3000:]}")
    return wall, [json.loads(p.read_text()) for p in sorted(stats.glob("*.json"))]


def kind_of(process: str) -> str:
    return next(k for k in KINDS if process.startswith(k))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", default="dev")
    parser.add_argument("--speed", type=float, default=30.0)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()

    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    walls = []
    for number in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="larry-bench-") as tmp:
            wall, stats = run_once(args.stack, args.speed, Path(tmp))
        walls.append(wall)
        for record in stats:
            bucket = totals[kind_of(record["process"])]
            bucket["processes"] += 1
            for key in ("wall_seconds", "calls", "call_seconds", "main_thread_seconds", "blocking_calls",
                        "blocking_seconds"):
                bucket[key] += record[key]
        print(f"run {number + 1}: `larry run --stack {args.stack} --speed {args.speed:g}` took {wall:.1f} s "
              f"({len(stats)} processes reported)")

    print()
    print(f"{'processes':<12} {'n':>3} {'wall s':>8} {'calls':>7} {'in calls s':>10} {'share':>7} "
          f"{'main thread':>12} {'mean call':>10} {'blocking reads':>15}")
    every: dict[str, float] = defaultdict(float)
    for kind in KINDS:
        for key, value in totals.get(kind, {}).items():
            every[key] += value
    for kind, bucket in [(k, totals.get(k)) for k in KINDS] + [("all", every)]:
        if not bucket or not bucket["wall_seconds"]:
            continue
        share = bucket["call_seconds"] / bucket["wall_seconds"]
        main_share = bucket["main_thread_seconds"] / bucket["wall_seconds"]
        mean = bucket["call_seconds"] / bucket["calls"] * 1000 if bucket["calls"] else 0.0
        print(f"{kind:<12} {int(bucket['processes']):>3} {bucket['wall_seconds']:>8.1f} {int(bucket['calls']):>7} "
              f"{bucket['call_seconds']:>10.3f} {share:>7.2%} {main_share:>12.2%} {mean:>8.3f}ms "
              f"{int(bucket['blocking_calls']):>6} / {bucket['blocking_seconds']:.1f} s")
    print()
    print(f"coordination share of wall time (workers + coordinators + converge): "
          f"{every['call_seconds'] / every['wall_seconds']:.2%} in all threads, "
          f"{every['main_thread_seconds'] / every['wall_seconds']:.2%} on the main threads' path "
          f"(target < 1 %, seed claim < 5 %); mean run wall time {sum(walls) / len(walls):.1f} s")
    print("main thread: calls the process's own work waited for; the rest (heartbeats, lease renewals) "
          "ran beside it.")


if __name__ == "__main__":
    main()
