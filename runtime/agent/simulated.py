"""The simulated payload: plays one of the seed's workers on one task, no AI agent.

It speaks the worker protocol (:mod:`runtime.agent.protocol`) like a real agent would: it
sleeps for the task's planned share of time divided by a speed factor, reports token use in
steps, and reports the findings the seeds show for that kind of worker (CVE counts by
severity, PRs created, assets discovered, coverage delta). Its numbers are drawn from a
generator seeded by the task id, so a run is reproducible. Catalog and inventory workers also
report the assets they "discovered" (``@larry {"assets": [...]}``): workloads of a fixed
simulated cluster, each a Deployment with its ReplicaSet, Pod, container image and Service
linked by lineage. Workers draw from the same cluster, so the catalog, which names an asset
by its natural key, counts what several of them found once. It reads its task from the
environment the worker sets; ``larry simulate`` (:mod:`runtime.commands.simulate`) is its
command.
"""
from __future__ import annotations

import os
import random
import sys
import time
import zlib
from typing import Any, Callable, Mapping

from plan import environment as envvar
from runtime.agent.protocol import PayloadReport, format_line
from runtime.catalog.assets import Asset

#: Share of the task's planned time the simulated work takes: the plan's minutes are
#: timeouts, and a plan whose workers all ran to their timeout would miss its deadlines.
BUSY_SHARE = 0.5
STEPS = 8


def _cves(rng: random.Random) -> dict[str, Any]:
    # Seed 001 T+0:30: 12 CVEs across larry-02's scans (3 critical, 4 high, 5 medium).
    return {"cves": {"critical": rng.randint(0, 2), "high": rng.randint(1, 3),
                     "medium": rng.randint(1, 4), "low": rng.randint(0, 2)}}


def _prs(rng: random.Random) -> dict[str, Any]:
    return {"prs_created": rng.randint(1, 2)}


def _assets(rng: random.Random) -> dict[str, Any]:
    # Seed 001: 150 assets cataloged by larry-03's inventory team; seed 004: 158 new.
    return {"assets_discovered": rng.randint(30, 60)}


def _coverage(rng: random.Random) -> dict[str, Any]:
    # Seed 001: test coverage +12 %; seed 004: +15 %.
    return {"coverage_delta": round(rng.uniform(3.0, 7.0), 1)}


#: What each kind of worker finds, keyed by words in its name or type.
_FINDINGS: tuple[tuple[tuple[str, ...], Callable[[random.Random], dict[str, Any]]], ...] = (
    (("scan", "audit"), _cves),
    (("remediation", "fix", "pr-", "feature", "implementation", "code-quality", "review"), _prs),
    (("catalog", "classification", "inventory"), _assets),
    (("test", "coverage"), _coverage),
)


#: The simulated cluster's workloads: (namespace, app) pairs, 42 of them.
_WORKLOADS = tuple((ns, f"{ns.split('-')[0]}-{part}") for ns in
                   ("cortex", "aiana", "mcp-servers", "monitoring", "cortex-system", "catalog-system", "kube-system")
                   for part in ("api", "worker", "scheduler", "gateway", "indexer", "exporter"))
_SOURCE = "k3s-cluster"


def _workload(namespace: str, app: str) -> list[Asset]:
    """One workload as the cluster would show it: image, Deployment, ReplicaSet, Pod, Service."""
    suffix = f"{zlib.crc32(app.encode()):08x}"
    image = Asset(f"ghcr.io/cortex/{app}:1.{zlib.crc32(namespace.encode()) % 9}.0", "CONTAINER_IMAGE", _SOURCE,
                  metadata={"registry": "ghcr.io"})
    deployment = Asset(app, "DEPLOYMENT", _SOURCE, namespace, {"replicas": 1}, "HEALTHY", (image.id,),
                       (f"app.kubernetes.io/name={app}",))
    replica_set = Asset(f"{app}-{suffix[:10]}", "REPLICASET", _SOURCE, namespace, {"replicas": 1}, "HEALTHY",
                        (deployment.id,))
    pod = Asset(f"{replica_set.name}-{suffix[-5:]}", "POD", _SOURCE, namespace, {"phase": "Running"}, "HEALTHY",
                (replica_set.id, image.id))
    service = Asset(app, "SERVICE", _SOURCE, namespace, {"type": "ClusterIP"}, "HEALTHY", (deployment.id,))
    return [image, deployment, replica_set, pod, service]


def assets_for(task: str, count: int) -> list[Asset]:
    """``count`` assets of the simulated cluster, whole workloads first, chosen by the task."""
    rng = random.Random(zlib.crc32(f"{task}:assets".encode()))
    chosen = rng.sample(_WORKLOADS, min(len(_WORKLOADS), -(-count // 5)))
    return [asset for namespace, app in chosen for asset in _workload(namespace, app)][:count]


def findings_for(worker: str, rng: random.Random) -> dict[str, Any]:
    for words, make in _FINDINGS:
        if any(word in worker for word in words):
            return make(rng)
    return {}


def run(env: Mapping = os.environ, speed: float = 1.0, overspend: bool = False,
        out=sys.stdout, sleep: Callable[[float], None] = time.sleep) -> int:
    """Play the task named in ``env`` at ``speed``, printing protocol lines to ``out``; 0."""
    task = env[envvar.TASK_ID]
    # What a task finds is the kind of work it is: its planned worker's (seed 004's workers
    # take tasks of other types from their master's queue).
    worker = env.get(envvar.TASK_WORKER) or env.get(envvar.WORKER_ID, "")
    budget = int(env[envvar.TOKEN_BUDGET])
    minutes = float(env.get(envvar.TASK_MINUTES, "1"))
    rng = random.Random(zlib.crc32(task.encode()))
    # A well-behaved agent spends 55-85 % of what it may; an overspending one 150 %.
    total = int(budget * (1.5 if overspend else rng.uniform(0.55, 0.85)))
    step_seconds = minutes * 60 * BUSY_SHARE / speed / STEPS
    spent = 0
    for step in range(1, STEPS + 1):
        sleep(step_seconds)
        tokens = total * step // STEPS - spent
        spent += tokens
        report = PayloadReport(tokens=tokens, progress=100 * step // STEPS,
                               message=f"{task}: step {step}/{STEPS}")
        print(format_line(report), file=out, flush=True)
    findings = findings_for(worker, rng)
    if findings:
        assets = tuple(assets_for(task, findings.get("assets_discovered", 0)))
        print(format_line(PayloadReport(findings=findings, assets=assets)), file=out, flush=True)
    return 0
