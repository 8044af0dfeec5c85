"""Program construction under mocks, and the bytes it asks the cluster to store, for generated
fleets of 3, 30 and 100 Larrys x 20 workers and 100 x 1.

Each fleet is ``tests.components.pulumi_graph.fleet_values``: the dev stack with its Larrys
replaced by N copies of larry-03 (its own namespace, three masters) carrying the workers,
spread over the dev stack's four worker nodes, three chained tasks per worker. The timed span
is one run of the real ``__main__.py`` under ``pulumi.runtime.set_mocks`` (config validation,
every component, every registration with the mock monitor), as in the graph tests; the
harness starts each run with nothing left to collect from the previous one, as the engine
starts each program in a fresh process. Each size runs REPEATS times and the least wall time
and the least CPU time count (other processes on the machine only ever add to both).

Printed, per fleet: resources, wall and CPU seconds, and the bytes stored — the plan
ConfigMaps (each Larry's slice, and the meta-coordinator's copy of each) per Larry, the
largest ConfigMap, and every object's manifest per Larry. Then the ratios: the marginal cost
of one more Larry (3 -> 30 against 30 -> 100, x 20 workers; a fixed start-up cost cancels
out), and bytes per Larry at 100 against 3. A benchmark: it asserts nothing about time; it
exits non-zero only when an object reaches a size the API server refuses.

    .venv/bin/python bench/bench_program.py
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.components.pulumi_graph import CM, fleet_values, run_program, stored_bytes  # noqa: E402

#: (Larrys, workers each): the 20-worker series gives the marginal cost; 100 x 1 is the largest
#: fleet an inline stack config could hold (the engine's 128 KiB environment string).
FLEETS = ((3, 20), (30, 20), (100, 20), (100, 1))
REPEATS = 3
#: The API server's limit on a ConfigMap's data (etcd's 1.5 MiB request limit minus overhead).
CONFIG_MAP_LIMIT = 1024 * 1024
#: "Constant" for the per-Larry figures: within 20 % of each other.
TOLERANCE = 0.2


def measure(larrys: int, workers: int) -> dict:
    """The least wall and the least CPU seconds of REPEATS runs, resources, and the bytes stored."""
    values = fleet_values(larrys, workers)
    runs = [run_program("fleet", values) for _ in range(REPEATS)]
    graph = runs[-1]
    objects = graph.kubernetes()
    plans = [r for r in graph.of(CM) if "plan.yaml" in r.manifest.get("data", {})]
    return {
        "wall": min(g.seconds for g in runs), "cpu": min(g.cpu_seconds for g in runs), "resources": len(graph.resources),
        "plan_bytes": sum(map(stored_bytes, plans)), "largest_map": max(map(stored_bytes, graph.of(CM))),
        "largest_object": max(map(stored_bytes, objects)), "object_bytes": sum(map(stored_bytes, objects)),
    }


def verdict(ratio: float) -> str:
    return "constant" if abs(ratio - 1) <= TOLERANCE else "NOT constant"


def main() -> int:
    measure(3, 1)  # warm-up: imports and first-use caches are not construction time
    results = {}
    print(f"{'fleet':>9} {'resources':>9} {'wall s':>7} {'cpu s':>6} {'ms/Larry':>8} {'plan B/Larry':>12} "
          f"{'largest CM':>10} {'largest obj':>11} {'all B/Larry':>11}")
    for larrys, workers in FLEETS:
        m = results[larrys, workers] = measure(larrys, workers)
        print(f"{larrys:>4} x {workers:<2} {m['resources']:>9} {m['wall']:>7.2f} {m['cpu']:>6.2f} "
              f"{m['wall'] / larrys * 1000:>8.1f} {m['plan_bytes'] / larrys:>12,.0f} "
              f"{m['largest_map'] / 1024:>8.1f}Ki {m['largest_object'] / 1024:>9.1f}Ki "
              f"{m['object_bytes'] / larrys:>11,.0f}", flush=True)
    series = [(n, results[n, w]) for n, w in FLEETS if w == 20]
    print("marginal cost of one more Larry (x 20 workers):")
    slopes = []
    for (a, ma), (b, mb) in zip(series, series[1:]):
        slopes.append(((mb["wall"] - ma["wall"]) / (b - a), (mb["cpu"] - ma["cpu"]) / (b - a)))
        print(f"  {a:>3} -> {b:>3} Larrys: {slopes[-1][0] * 1000:7.1f} ms wall, {slopes[-1][1] * 1000:7.1f} ms cpu")
    for what, k in (("wall", 0), ("cpu", 1)):
        ratio = slopes[-1][k] / slopes[0][k]
        print(f"  marginal {what} ratio (30->100 over 3->30): {ratio:.2f} ({verdict(ratio)} within "
              f"{TOLERANCE:.0%}; 1.0 = linear)")
    (small, ms), (large, ml) = series[0], series[-1]
    print(f"bytes stored per Larry, {large} over {small} Larrys (x 20 workers):")
    for what, key in (("plan ConfigMaps", "plan_bytes"), ("every object", "object_bytes")):
        ratio = (ml[key] / large) / (ms[key] / small)
        print(f"  {what}: {ml[key] / large:,.0f} / {ms[key] / small:,.0f} = {ratio:.2f} ({verdict(ratio)} within "
              f"{TOLERANCE:.0%})")
    largest = max(m["largest_map"] for m in results.values())
    print(f"largest ConfigMap of any fleet: {largest / 1024:.1f} KiB of the {CONFIG_MAP_LIMIT // 1024} KiB "
          f"a ConfigMap may hold ({largest / CONFIG_MAP_LIMIT:.1%})")
    if largest >= CONFIG_MAP_LIMIT:
        print(f"FAIL: a ConfigMap of {largest} bytes no longer fits")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
