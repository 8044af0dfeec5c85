"""Time budgets: a worker Job's deadline within its Larry's phase deadline, and every phase
deadline within the execution window.

Guaranteed: a worker Job that passes carries an ``activeDeadlineSeconds`` within its phase
deadline, after which Kubernetes stops it. Not guaranteed: that the work fits the minutes
planned for it; the runtime's own deadlines handle a worker that runs out of time.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pulumi_policy import ReportViolation

from plan.labels import MINUTES, PHASE_DEADLINE, WORKER_APP
from plan.model import StackConfig
from policies import kube
from policies.facts import CannotEvaluate, app, grouped, whole_number
from policies.rule import MANDATORY, resource_rule, stack_rule


def _annotation(props: Mapping[str, Any], key: str) -> int:
    value = kube.annotations(props).get(key)
    if value is None:
        raise CannotEvaluate(f"annotation {key} is missing")
    return whole_number(value, f"annotation {key}")


@resource_rule("worker-deadline",
               "A worker Job's activeDeadlineSeconds and minutes fit its Larry's phase deadline",
               MANDATORY, [kube.JOB])
def worker_deadline(args, report: ReportViolation, subject: str, _settings) -> None:
    if app(args.props) != WORKER_APP:
        return
    phase = _annotation(args.props, PHASE_DEADLINE)
    minutes = _annotation(args.props, MINUTES)
    deadline = kube.dig(args.props, "spec", "activeDeadlineSeconds")
    if deadline is None:
        report(f"{subject}: has no spec.activeDeadlineSeconds; allowed at most the phase deadline "
               f"{phase} min = {grouped(phase * 60)} s", None)
    elif whole_number(deadline, "spec.activeDeadlineSeconds") > phase * 60:
        report(f"{subject}: activeDeadlineSeconds {grouped(deadline)} exceeds the phase deadline "
               f"{phase} min = {grouped(phase * 60)} s", None)
    if minutes > phase:
        report(f"{subject}: the worker's {minutes} min exceed the phase deadline {phase} min", None)


@stack_rule("phase-deadline-window", "Each Larry's phase deadline fits the execution window", MANDATORY)
def phase_deadline_window(_resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    for larry in plan.larrys:
        if larry.deadline_minutes > plan.execution_window_minutes:
            report(f"Larry {larry.id}: phase deadline {larry.deadline_minutes} min exceeds the execution "
                   f"window {plan.execution_window_minutes} min", None)


RULES = (worker_deadline, phase_deadline_window)
