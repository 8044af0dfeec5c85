"""Placement: worker Jobs pinned to a worker node of their own Larry, coordinators to the
master nodes.

Guaranteed: a pinned workload carries required node affinity, which the scheduler never
relaxes, to nodes the plan allows it. Not guaranteed: that those nodes exist or are Ready;
a pod pinned to a lost node stays Pending.
"""
from __future__ import annotations

from typing import Callable

from pulumi_policy import ReportViolation

from plan.labels import COORDINATOR_APP, LARRY, WORKER_APP
from plan.model import Larry, StackConfig
from policies import kube
from policies.facts import app, evaluating, plan_larry, workloads
from policies.rule import MANDATORY, stack_rule


def _check_pinned(resources, plan: StackConfig, report: ReportViolation, role: str,
                  allowed: Callable[[Larry], tuple[str, tuple[str, ...]]]) -> None:
    """Workloads labelled app=``role`` carry required node affinity to nodes ``allowed`` names."""
    for resource, subject in workloads(resources):
        with evaluating(report, subject, resource.urn):
            if app(resource.props) != role:
                continue
            larry = plan_larry(plan, kube.labels(resource.props).get(LARRY))
            what, nodes = allowed(larry)
            hosts = kube.pinned_hostnames(kube.pod_spec(resource.resource_type, resource.props))
            if not hosts:
                report(f"{subject}: no required node affinity on {kube.HOSTNAME} "
                       f"(allowed: {what} {', '.join(nodes)})", resource.urn)
            elif stray := sorted(hosts - set(nodes)):
                report(f"{subject}: may run on {', '.join(stray)} "
                       f"(allowed: {what} {', '.join(nodes)})", resource.urn)


@stack_rule("worker-placement",
            "Worker Jobs carry required node affinity to a worker node of their own Larry", MANDATORY)
def worker_placement(resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    _check_pinned(resources, plan, report, WORKER_APP,
                  lambda larry: (f"{larry.id}'s worker nodes", larry.worker_nodes))


@stack_rule("coordinator-placement", "Coordinators carry required node affinity to master nodes", MANDATORY)
def coordinator_placement(resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    masters = tuple(node.name for node in plan.nodes.values() if node.role == "master")
    _check_pinned(resources, plan, report, COORDINATOR_APP, lambda _larry: ("master nodes", masters))


RULES = (worker_placement, coordinator_placement)
