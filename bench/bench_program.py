"""Program construction time under mocks for synthetic stacks of 3, 30 and 100 Larrys x 20 workers.

Each synthetic stack is the dev stack with its Larrys replaced by N copies of larry-03 (its own
namespace, three masters) carrying 20 workers each, spread over the dev stack's four worker
nodes, three chained tasks per worker. The timed span is one run of the real ``__main__.py``
under ``pulumi.runtime.set_mocks`` (config validation, every component, every registration
with the mock monitor), as in the graph tests; the harness starts each run with nothing left
to collect from the previous one, as the engine starts each program in a fresh process. Each size runs REPEATS times and the fastest
wall time counts (other processes on the machine only ever add time); CPU time of that run is
printed beside it. Prints the figures, the growth ratio per Larry and the size of the plan
document every Larry's ConfigMap carries; exits non-zero when 100 x 20 takes 10 s or more,
when growth is clearly superlinear, or when the plan no longer fits a ConfigMap.

    .venv/bin/python bench/bench_program.py
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plan.loader import load_config  # noqa: E402
from tests.components.pulumi_graph import run_program, stack_values  # noqa: E402

SIZES = (3, 30, 100)
WORKERS = 20
REPEATS = 3
LIMIT_SECONDS = 10.0
#: The API server's limit on a ConfigMap's data (etcd's 1.5 MiB request limit minus overhead).
CONFIG_MAP_LIMIT = 1024 * 1024
#: Per-Larry cost at 100 Larrys may exceed the cost at 3 by this factor before the growth
#: counts as superlinear (fixed costs amortise, caches warm up: noise, not a trend).
LINEAR_TOLERANCE = 1.5


def synthetic_values(larrys: int, workers: int = WORKERS) -> dict:
    values = stack_values("dev")
    template = next(l for l in values["larry:larrys"] if l["id"] == "larry-03")
    worker_nodes = sorted(n for n, spec in values["larry:nodes"].items() if spec["role"] == "worker")
    masters = sorted(n for n, spec in values["larry:nodes"].items() if spec["role"] == "master")
    generated = []
    for i in range(larrys):
        larry = copy.deepcopy(template)
        larry_id = f"larry-{i:03d}"
        larry.update(id=larry_id, namespace=larry_id, node=masters[i % len(masters)], workerNodes=worker_nodes)
        base = template["workers"][0]
        larry["workers"] = [{
            **copy.deepcopy(base), "name": f"{larry_id}-w{j:02d}", "node": worker_nodes[j % len(worker_nodes)],
            "tasks": [{"id": f"{larry_id}-w{j:02d}-t{k}", "title": f"task {k}",
                       **({"dependsOn": [f"{larry_id}-w{j:02d}-t{k - 1}"]} if k else {})} for k in range(3)],
        } for j in range(workers)]
        generated.append(larry)
    values["larry:larrys"] = generated
    return values


def measure(larrys: int) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, resources) of the fastest of REPEATS runs."""
    values = synthetic_values(larrys)
    runs = []
    for _ in range(REPEATS):
        graph = run_program("bench", values)
        runs.append((graph.seconds, graph.cpu_seconds, len(graph.resources)))
    return min(runs)


def main() -> int:
    measure(3)  # warm-up: imports and first-use caches are not construction time
    results = {}
    print(f"{'stack':>12} {'resources':>10} {'wall s':>8} {'cpu s':>7} {'ms/Larry':>9}")
    for larrys in SIZES:
        wall, cpu, resources = measure(larrys)
        results[larrys] = wall
        print(f"{larrys:>5} x {WORKERS:<4} {resources:>10} {wall:>8.2f} {cpu:>7.2f} {wall / larrys * 1000:>9.1f}")
    small, large = SIZES[0], SIZES[-1]
    growth = (results[large] / large) / (results[small] / small)
    print(f"time ratio {large}/{small} Larrys: {results[large] / results[small]:.1f}x for {large / small:.1f}x "
          f"the Larrys; per-Larry cost ratio {growth:.2f} (1.0 = linear)")
    plan = len(load_config(synthetic_values(large), "bench").plan_document().encode())
    print(f"plan document at {large} x {WORKERS}: {plan / 1024:.0f} KiB of the {CONFIG_MAP_LIMIT // 1024} KiB "
          "a ConfigMap may hold")
    failures = []
    if results[large] >= LIMIT_SECONDS:
        failures.append(f"{large} x {WORKERS} took {results[large]:.2f} s (limit {LIMIT_SECONDS} s)")
    if growth > LINEAR_TOLERANCE:
        failures.append(f"per-Larry cost grew {growth:.2f}x from {small} to {large} Larrys")
    if plan >= CONFIG_MAP_LIMIT:
        failures.append(f"the plan document ({plan} bytes) no longer fits a ConfigMap")
    for failure in failures:
        print("FAIL:", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
