"""`pulumi preview` wall time through the real engine for generated fleets of 3, 30 and 100
Larrys x 20 workers and 100 x 1.

The fleets are bench_program's (``tests.components.pulumi_graph.fleet_values``), their Larrys in
a plan file the stack config names (``larry:planFile: plans/fleet.yaml``): the engine hands a
program its inline config in one environment string, which Linux caps at 128 KiB, and 100
Larrys with two workers each already exceed it. The size that string would have inline is
printed beside each fleet. Each preview runs in a throwaway copy of the project on a temporary
file backend, exactly as `make preview` runs it (no policy pack). Prints the figures, the
marginal cost of one more Larry (3 -> 30 against 30 -> 100, x 20 workers: the fixed start-up
cost cancels out) and its ratio; a benchmark, not a test: it asserts nothing about speed.

    eval "$(scripts/engine.sh env)"; .venv/bin/python bench/bench_preview.py
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_program import FLEETS, TOLERANCE, verdict  # noqa: E402
from tests.components.pulumi_graph import engine_config, fleet_values  # noqa: E402
from tests.engine.pulumi_cli import copy_project, engine_env, init_stack, pulumi, stack_document  # noqa: E402

#: Linux's limit on one environment string (MAX_ARG_STRLEN), where the engine puts inline config.
ENV_STRING_LIMIT = 128 * 1024


def preview_seconds(larrys: int, workers: int) -> float:
    with tempfile.TemporaryDirectory(prefix="larry-preview-bench.") as scratch:
        root = Path(scratch)
        values = fleet_values(larrys, workers)
        fleet = {"larry:larrys": values.pop("larry:larrys")}
        document = {**stack_document("dev"), "config": {**values, "larry:planFile": "plans/fleet.yaml"}}
        project = copy_project(root / "project", {"bench": document})
        (project / "plans").mkdir()
        (project / "plans" / "fleet.yaml").write_text(yaml.safe_dump(fleet, sort_keys=False))
        (root / "state").mkdir()
        env = engine_env(f"file://{root / 'state'}")
        init_stack("bench", project, env)
        started = time.perf_counter()
        pulumi(["preview", "--stack", "bench"], project, env)
        return time.perf_counter() - started


def inline_config_bytes(larrys: int, workers: int) -> int:
    """The environment string the engine would build from the fleet given inline."""
    return len(json.dumps(engine_config(fleet_values(larrys, workers))).encode())


def main() -> int:
    print("pulumi preview, generated fleets, Larrys in larry:planFile")
    print(f"{'fleet':>9} {'wall s':>8} {'ms/Larry':>9} {'inline config':>14}")
    results = {}
    for larrys, workers in FLEETS:
        results[larrys, workers] = seconds = preview_seconds(larrys, workers)
        inline = inline_config_bytes(larrys, workers)
        fits = "fits" if inline < ENV_STRING_LIMIT else "too big"
        print(f"{larrys:>4} x {workers:<2} {seconds:>8.1f} {seconds / larrys * 1000:>9.0f} "
              f"{inline / 1024:>7.0f} KiB ({fits} inline)", flush=True)
    series = [(n, results[n, w]) for n, w in FLEETS if w == 20]
    slopes = [(b_s - a_s) / (b - a) for (a, a_s), (b, b_s) in zip(series, series[1:])]
    for ((a, _), (b, _)), slope in zip(zip(series, series[1:]), slopes):
        print(f"marginal cost {a:>3} -> {b:>3} Larrys (x 20 workers): {slope * 1000:6.0f} ms/Larry")
    ratio = slopes[-1] / slopes[0]
    print(f"marginal cost ratio: {ratio:.2f} ({verdict(ratio)} within {TOLERANCE:.0%}; 1.0 = linear)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
