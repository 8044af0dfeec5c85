"""Consistency: the rendered objects and the plan are the same plan.

The resource policies read each worker Job's ``larry.dev/*`` annotations and the stack
policies read the plan ConfigMaps; ``plan-matches-resources`` holds the two views equal, so
neither can pass a budget the other would block. Guaranteed: every planned worker has exactly
one Job whose annotations and master label equal the plan, and every Larry a coordinator and
a plan ConfigMap naming it. Not guaranteed: anything about objects the plan does not describe.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import ReportViolation

from plan import labels as contract
from plan.model import Larry, StackConfig, Worker
from plan.pods import LARRY_ID_KEY, PLAN_KEY
from policies import kube
from policies.facts import CannotEvaluate, app, describe, evaluating, plan_larry
from policies.rule import MANDATORY, stack_rule


def _expected_annotations(plan: StackConfig, larry: Larry, worker: Worker) -> dict[str, Any]:
    return {contract.TOKENS: worker.tokens, contract.MINUTES: worker.minutes,
            contract.PHASE_DEADLINE: larry.deadline_minutes, contract.WINDOW: plan.execution_window_minutes,
            contract.WORKER_TYPE: worker.type, contract.MASTER: worker.master}


@stack_rule("plan-matches-resources",
            "Every planned worker has one Job whose larry.dev annotations equal the plan, and every Larry "
            "a coordinator and a plan ConfigMap", MANDATORY)
def plan_matches_resources(resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    jobs: dict[tuple[str, str], list[str]] = {}
    coordinators: set[str] = set()
    plan_maps: set[str] = set()
    for resource in resources:
        subject = describe(resource.resource_type, resource.props, resource.name)
        with evaluating(report, subject, resource.urn):
            props = resource.props
            if resource.resource_type == kube.CONFIG_MAP and PLAN_KEY in kube.mapping(props.get("data")):
                plan_maps.add(str(kube.mapping(props.get("data")).get(LARRY_ID_KEY)))
            elif resource.resource_type in kube.WORKLOAD_TYPES and app(props) == contract.COORDINATOR_APP:
                coordinators.add(str(kube.labels(props).get(contract.LARRY)))
            elif resource.resource_type == kube.JOB and app(props) == contract.WORKER_APP:
                _check_worker_job(plan, props, subject, report, jobs, resource.urn)
    for larry, worker in plan.workers:
        found = jobs.get((larry.id, worker.name), [])
        if len(found) != 1:
            report(f"Worker {worker.name} (Larry {larry.id}): {len(found)} Jobs, expected 1 "
                   f"({', '.join(found) or 'none'})", None)
    for larry in plan.larrys:
        if larry.id not in coordinators:
            report(f"Larry {larry.id}: no coordinator (a workload labelled "
                   f"{contract.APP}={contract.COORDINATOR_APP}, {contract.LARRY}={larry.id})", None)
        if larry.id not in plan_maps:
            report(f"Larry {larry.id}: no plan ConfigMap with data {LARRY_ID_KEY}={larry.id}", None)


def _check_worker_job(plan: StackConfig, props: Mapping[str, Any], subject: str, report: ReportViolation,
                      jobs: dict[tuple[str, str], list[str]], urn: str) -> None:
    labels, notes = kube.labels(props), kube.annotations(props)
    larry = plan_larry(plan, labels.get(contract.LARRY))
    worker = next((w for w in larry.workers if w.name == labels.get(contract.WORKER)), None)
    if worker is None:
        raise CannotEvaluate(f"label {contract.WORKER}={labels.get(contract.WORKER)} "
                             f"names no worker of Larry {larry.id}")
    jobs.setdefault((larry.id, worker.name), []).append(subject)
    for key, want in _expected_annotations(plan, larry, worker).items():
        got = notes.get(key)
        if want is None and got in (None, ""):
            continue
        if got is None or str(got) != str(want):
            report(f"{subject}: annotation {key} is {got!r}, the plan gives {want!r}", urn)
    if labels.get(contract.MASTER) != worker.master:
        report(f"{subject}: label {contract.MASTER} is {labels.get(contract.MASTER)!r}, "
               f"the plan gives {worker.master!r}", urn)


RULES = (plan_matches_resources,)
