"""`pulumi preview` wall time through the real engine for synthetic stacks of 3, 30 and 100 Larrys.

The stacks are bench_program's (the dev stack with N copies of larry-03) with one worker per
Larry: the engine hands a program its whole config in one environment string, which Linux
caps at 128 KiB, and 100 Larrys with two workers each already exceed it. Each preview runs in a
throwaway copy of the project on a temporary file backend, exactly as `make preview` runs it
(no policy pack). Prints the figures and the per-Larry growth ratio (1.0 = linear); a
benchmark, not a test: it asserts nothing about speed.

    .venv/bin/python bench/bench_preview.py
"""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_program import synthetic_values  # noqa: E402
from tests.engine.pulumi_cli import copy_project, engine_env, init_stack, pulumi, stack_document  # noqa: E402

SIZES = (3, 30, 100)
WORKERS = 1


def preview_seconds(larrys: int) -> float:
    with tempfile.TemporaryDirectory(prefix="larry-preview-bench.") as scratch:
        root = Path(scratch)
        document = {**stack_document("dev"), "config": synthetic_values(larrys, WORKERS)}
        project = copy_project(root / "project", {"bench": document})
        (root / "state").mkdir()
        env = engine_env(f"file://{root / 'state'}")
        init_stack("bench", project, env)
        started = time.perf_counter()
        pulumi(["preview", "--stack", "bench"], project, env)
        return time.perf_counter() - started


def main() -> int:
    print(f"pulumi preview, synthetic stacks of N Larrys x {WORKERS} workers")
    print(f"{'Larrys':>7} {'wall s':>8} {'ms/Larry':>9}")
    results = {}
    for larrys in SIZES:
        results[larrys] = preview_seconds(larrys)
        print(f"{larrys:>7} {results[larrys]:>8.1f} {results[larrys] / larrys * 1000:>9.0f}", flush=True)
    # Start-up is a fixed cost, so linearity shows in the marginal cost of one more Larry.
    slopes = [(results[b] - results[a]) / (b - a) for a, b in zip(SIZES, SIZES[1:])]
    for (a, b), slope in zip(zip(SIZES, SIZES[1:]), slopes):
        print(f"marginal cost {a:>3} -> {b:>3} Larrys: {slope * 1000:6.0f} ms/Larry")
    print(f"marginal cost ratio: {slopes[-1] / slopes[0]:.2f} (1.0 = linear)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
