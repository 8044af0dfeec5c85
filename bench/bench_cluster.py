"""`pulumi up` and `pulumi destroy` wall time for the committed stacks against a real API server:
a local cluster from scripts/cluster.sh (kwok fake nodes with the seed topology, in a network
namespace of this run's own), the real engine, the await logic of pulumi-kubernetes (Deployments
and StatefulSets available, Services with endpoints).

For each stack: the first `up` (everything created), a second `up` with nothing to change, and
`destroy`. Prints the figures and the ratio of each stack's first `up` to dev's; a benchmark,
not a test: it asserts nothing about speed. Needs root and the binaries `make test` builds.

    .venv/bin/python bench/bench_cluster.py [--stacks dev cortex]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.cluster import Deployed, local_cluster  # noqa: E402


def timed(step) -> float:
    started = time.monotonic()
    step()
    return time.monotonic() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", nargs="+", default=["dev", "cortex"])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="larry-cluster-bench.") as scratch:
        root = Path(scratch)
        started = time.monotonic()
        with local_cluster(root / "cluster", f"larry-bench-{os.getpid()}") as cluster:
            cluster_up = time.monotonic() - started
            for stack in args.stacks:
                deployed = Deployed(root / stack, cluster, stack)
                first = timed(deployed.up)
                again = timed(lambda: deployed.up("--expect-no-changes"))
                destroy = timed(lambda: deployed.pulumi("destroy", "--yes", "--skip-preview", "--stack", stack))
                rows.append((stack, len(deployed.plan.larrys), first, again, destroy))
    print(f"local cluster up (7 kwok nodes, CoreDNS, provisioner): {cluster_up:.1f} s")
    print(f"{'stack':<8} {'Larrys':>6} {'first up':>10} {'up again':>10} {'destroy':>10} {'first up vs dev':>16}")
    base = rows[0][2]
    for stack, larrys, first, again, destroy in rows:
        print(f"{stack:<8} {larrys:>6} {first:>9.1f}s {again:>9.1f}s {destroy:>9.1f}s {first / base:>15.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
