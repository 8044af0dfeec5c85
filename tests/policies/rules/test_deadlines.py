"""Time budget rules (policies/rules/deadlines.py)."""
from __future__ import annotations

from pulumi_policy.proxy import UNKNOWN_NUMBER_VALUE

from plan.labels import MINUTES
from tests.policies.harness import (
    CLEANUP,
    larry_values,
    named,
    plan,
    render,
    violations,
    worker_values,
)


def test_worker_deadline_beyond_its_phase(dev):
    cfg = plan("dev", lambda values: worker_values(values, "cleanup-worker").update(minutes=35))
    assert violations("worker-deadline", render(cfg)) == [
        f"{CLEANUP}: the worker's 35 min exceed the phase deadline 25 min"]


def test_a_job_deadline_past_its_phase(dev_resources):
    job = named(dev_resources, "larry-01-cleanup-worker")
    job.props["spec"]["activeDeadlineSeconds"] = 2_100
    assert violations("worker-deadline", [job]) == [
        f"{CLEANUP}: activeDeadlineSeconds 2,100 exceeds the phase deadline 25 min = 1,500 s"]


def test_worker_deadline_needs_active_deadline_and_annotations(dev_resources):
    job = named(dev_resources, "larry-01-cleanup-worker")
    del job.props["spec"]["activeDeadlineSeconds"]
    del job.props["metadata"]["annotations"][MINUTES]
    other = named(dev_resources, "larry-01-monitoring-worker")
    del other.props["spec"]["activeDeadlineSeconds"]
    assert violations("worker-deadline", [job, other]) == [
        f"{CLEANUP}: cannot evaluate, "
        "annotation larry.dev/minutes is missing",
        "Job larry-01/monitoring-worker (Larry larry-01, worker monitoring-worker): has no "
        "spec.activeDeadlineSeconds; allowed at most the phase deadline 25 min = 1,500 s"]


def test_worker_deadline_unknown_in_preview_is_a_violation(dev_resources):
    job = named(dev_resources, "larry-01-cleanup-worker")
    job.props["spec"]["activeDeadlineSeconds"] = UNKNOWN_NUMBER_VALUE
    assert violations("worker-deadline", [job]) == [
        f"{CLEANUP}: cannot evaluate, number value at "
        ".spec.activeDeadlineSeconds can't be known during preview"]


def test_phase_deadline_fits_the_execution_window():
    cfg = plan("dev", lambda values: larry_values(values, "larry-02").update(deadlineMinutes=45))
    assert violations("phase-deadline-window", render(cfg)) == [
        "Larry larry-02: phase deadline 45 min exceeds the execution window 40 min"]
