"""The plan and the rendered objects agree (policies/rules/consistency.py)."""
from __future__ import annotations

from plan.labels import TOKENS, WORKER
from tests.policies.harness import (
    CLEANUP,
    named,
    violations,
    without,
)


def test_job_annotations_must_equal_the_plan(dev_resources):
    job = named(dev_resources, "larry-01-cleanup-worker")
    job.props["metadata"]["annotations"][TOKENS] = "4000"
    assert violations("plan-matches-resources", dev_resources) == [
        f"{CLEANUP}: annotation larry.dev/tokens is "
        "'4000', the plan gives 8000"]


def test_every_planned_worker_larry_and_plan_map_is_rendered(dev_resources):
    resources = without(without(dev_resources, "larry-02-audit-worker"), "larry-03-coordinator")
    assert violations("plan-matches-resources", resources) == [
        "Worker audit-worker (Larry larry-02): 0 Jobs, expected 1 (none)",
        "Larry larry-03: no coordinator (a workload labelled app=larry-coordinator, larry.dev/larry=larry-03)"]


def test_a_job_for_a_worker_the_plan_lacks_cannot_evaluate(dev_resources):
    named(dev_resources, "larry-01-cleanup-worker").props["metadata"]["labels"][WORKER] = "ghost-worker"
    found = violations("plan-matches-resources", dev_resources)
    assert found[0] == ("Job larry-01/cleanup-worker (Larry larry-01, worker ghost-worker): cannot evaluate, "
                        "label larry.dev/worker=ghost-worker names no worker of Larry larry-01")
    assert found[1] == "Worker cleanup-worker (Larry larry-01): 0 Jobs, expected 1 (none)"
