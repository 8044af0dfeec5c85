"""A run's state in Redis, built with the runtime's primitives (phases, task board, leases,
ledger, registry, barrier) from the dev stack's plan: what the tests of `larry status`,
`preflight`, `cleanup` and `dashboard` read."""
from __future__ import annotations

from plan.loader import load_stack
from plan.model import worker_account
from runtime.coordination.barrier import Barrier
from runtime.coordination.keys import CONVERGENCE_BARRIER, Keyspace
from runtime.coordination.leases import LeaseManager
from runtime.coordination.ledger import Ledger
from runtime.coordination.phases import PhaseTracker
from runtime.coordination.registry import WorkerRegistry
from runtime.coordination.tasks import TaskBoard
from tests.support.project import ROOT

DEV = load_stack("dev", ROOT)

#: The seed's dashboard at T+15:30 (seed 000 "Monitoring Dashboard Layout").
PROGRESS = {"larry-01": (60, "Database consolidation complete"), "larry-02": (45, "Security scan in progress"),
            "larry-03": (35, "3/8 workers completed")}


def build_run(r, ks: Keyspace, cfg=DEV) -> dict:
    """A run in progress: every phase started with the seed's progress, one task held per
    Larry, findings in completed tasks' results, tokens committed, workers heartbeating.
    Returns what the assertions need."""
    Ledger.for_plan(r, ks, cfg).open()
    board, registry = TaskBoard(r, ks), WorkerRegistry(r, ks)
    for plan in cfg.larrys:
        board.define(plan.id, {t.id: t.depends_on for t in plan.tasks})
        phase = PhaseTracker(r, ks, plan.id)
        phase.start()
        phase.progress(*PROGRESS[plan.id])
        for worker in plan.workers:
            registry.register(worker.name, plan.id, worker.node)

    for larry, worker, task, findings, tokens in (
            ("larry-02", "scan-worker-01", "scan-core-namespaces", {"cves": {"critical": 2, "high": 3, "medium": 1}}, 5000),
            ("larry-02", "scan-worker-02", "scan-platform-namespaces", {"cves": {"critical": 1, "high": 1, "medium": 4}}, 4000),
            ("larry-03", "catalog-worker-01", "scan-k8s-deployments", {"assets_discovered": 87}, 6000),
            ("larry-03", "feature-worker", "implement-priority-feature", {"prs_created": 2}, 9000),
            ("larry-03", "test-coverage-worker", "analyze-coverage-gaps", {"coverage_delta": 8.0}, 7000)):
        finish_task(r, ks, larry, worker, task, findings, tokens)
    held = {"larry-01": ("cleanup-worker", "fix-pgadmin-crashloop"),
            "larry-02": ("audit-worker", "audit-dependencies"),
            "larry-03": ("catalog-worker-02", "discover-helm-releases")}
    for larry_id, (worker, task) in held.items():
        assert LeaseManager(r, ks, larry_id, worker=worker).acquire(task)
        registry.heartbeat(worker, "busy")
    return {"held": held, "committed": {"larry-01": 0, "larry-02": 9000, "larry-03": 22000}}


def finish_task(r, ks: Keyspace, larry: str, worker: str, task: str, findings, tokens: int) -> None:
    """``worker`` claims and completes ``task``, its result holding ``findings``, ``tokens`` committed."""
    lease = LeaseManager(r, ks, larry, worker=worker).acquire(task).lease
    Ledger.for_plan(r, ks, DEV).record(f"op-{task}", worker_account(larry, worker), tokens)
    assert LeaseManager(r, ks, larry, worker=worker).complete(lease, {"findings": findings, "tokens": tokens})


def finish_run(r, ks: Keyspace, cfg=DEV) -> None:
    for plan in cfg.larrys:
        PhaseTracker(r, ks, plan.id).complete("done")
        Barrier(r, ks, CONVERGENCE_BARRIER, [x.id for x in cfg.larrys]).arrive(plan.id)


def output(capsys) -> str:
    """stdout with rich's line wrapping undone."""
    return " ".join(capsys.readouterr().out.split())


def run_args(settings, ks: Keyspace, *extra) -> list[str]:
    return ["--stack", "dev", "--project-dir", str(ROOT), "--redis-url", settings.url, "--key-prefix", ks.prefix,
            *extra]


