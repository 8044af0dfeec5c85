"""Compute budgets: the pods that can land on a node fit its allocatable, every container
sets requests and limits within a ratio, and every Larry namespace has a ResourceQuota.

Guaranteed: node capacity is checked for the worst case the scheduler could choose, so a
plan that passes fits however its pods are placed. Not guaranteed: what else runs on the
nodes; the allocatable in ``larry:nodes`` is taken as what the stack may use.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Callable

from pulumi_policy import ReportViolation

from plan.model import StackConfig
from plan.quantities import parse_cpu, parse_memory
from policies import kube
from policies.facts import CannotEvaluate, container_name, containers, describe, evaluating, workloads
from policies.rule import MANDATORY, Setting, resource_rule, stack_rule


def _millicores(millis: float) -> str:
    return f"{int(millis):,}m"


def _mebibytes(size: float) -> str:
    return f"{size / 2**20:,.0f}Mi"


_COMPUTE = (("cpu", parse_cpu, _millicores), ("memory", parse_memory, _mebibytes))


def _quantity(value: Any, parse: Callable[[str], int], what: str) -> int:
    try:
        return parse(str(value))
    except ValueError:
        raise CannotEvaluate(f"{what} {value!r} is not a Kubernetes quantity") from None


def _pod_requests(spec: Mapping[str, Any]) -> dict[str, int]:
    """What the scheduler reserves for one pod: its containers' requests, or the largest init
    container's if that is more (init containers run one at a time, before the others)."""
    totals = {}
    for resource, parse, _ in _COMPUTE:
        regular, init = 0, 0
        for key in ("containers", "initContainers"):
            for container in kube.items(spec.get(key)):
                container = kube.mapping(container)
                value = kube.dig(container, "resources", "requests", resource)
                if value is None:  # Kubernetes takes a missing request from the limit
                    value = kube.dig(container, "resources", "limits", resource)
                if value is None:
                    raise CannotEvaluate(f"container {container_name(container)} requests no {resource}")
                amount = _quantity(value, parse, f"{resource} of container {container_name(container)}")
                if key == "containers":
                    regular += amount
                else:
                    init = max(init, amount)
        totals[resource] = max(regular, init)
    return totals


@stack_rule("node-capacity",
            "On every node, the CPU and memory requests of the pods that can run there fit its allocatable "
            "from the stack config", MANDATORY,
            [Setting("maxShare", 1.0, {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "description":
                     "Share of a node's allocatable that the requests may fill"})])
def node_capacity(resources, plan: StackConfig, report: ReportViolation, settings) -> None:
    """Worst case per node, since the scheduler's choices are unknown before it runs: a pod pinned
    by required node affinity counts on each node it may use, an unpinned one on every node; a
    workload whose required anti-affinity spreads it (Redis) counts once per node, any other
    with all its replicas."""
    share = float(settings["maxShare"])
    load: dict[str, dict[str, list[tuple[str, int]]]] = {node: {"cpu": [], "memory": []} for node in plan.nodes}
    for resource, where in workloads(resources):
        with evaluating(report, where, resource.urn):
            template = kube.pod_template(resource.resource_type, resource.props)
            spec = kube.mapping(template.get("spec"))
            per_pod = _pod_requests(spec)
            hosts = kube.pinned_hostnames(spec)
            stray = sorted(set(hosts or ()) - set(plan.nodes))
            if stray:
                raise CannotEvaluate(f"pinned to {', '.join(stray)}, not in larry:nodes")
            pods = kube.pods_per_object(resource.resource_type, resource.props)
            if resource.resource_type == kube.DAEMON_SET or kube.one_per_node(
                    spec, kube.labels(template)):
                pods = min(pods, 1)
            who = kube.ref(resource.resource_type, resource.props, resource.name)  # short: lists get long
            for node in (hosts if hosts is not None else plan.nodes):
                for resource_name, amount in per_pod.items():
                    load[node][resource_name].append((f"{who} {pods}x", pods * amount))
    for node_name, demands in load.items():
        allocatable = plan.nodes[node_name].allocatable
        for resource_name, parse, fmt in _COMPUTE:
            used = sum(amount for _, amount in demands[resource_name])
            allowed = share * parse(getattr(allocatable, resource_name))
            if used > allowed:
                parts = ", ".join(f"{who} {fmt(amount)}" for who, amount in demands[resource_name])
                report(f"Node {node_name}: pods that can run there request {fmt(used)} {resource_name}, "
                       f"allowed {fmt(allowed)} ({share:.0%} of allocatable "
                       f"{getattr(allocatable, resource_name)}): {parts}", None)


@resource_rule("container-resources", "Every container sets CPU and memory requests and limits",
               MANDATORY, kube.WORKLOAD_TYPES)
def container_resources(args, report: ReportViolation, subject: str, _settings) -> None:
    for container in containers(args):
        missing = [f"{part}.{resource}" for part in ("requests", "limits") for resource, _, _ in _COMPUTE
                   if kube.dig(container, "resources", part, resource) is None]
        if missing:
            report(f"{subject}, container {container_name(container)}: no {', '.join(missing)}", None)


@resource_rule("container-limit-ratio", "A container's limit is at most a set multiple of its request",
               MANDATORY, kube.WORKLOAD_TYPES,
               [Setting("maxRatio", 4, {"type": "number", "minimum": 1, "description":
                        "Largest limit / request ratio for CPU and memory"})])
def container_limit_ratio(args, report: ReportViolation, subject: str, settings) -> None:
    ratio = float(settings["maxRatio"])
    for container in containers(args):
        where = f"{subject}, container {container_name(container)}"
        for resource, parse, _ in _COMPUTE:
            with evaluating(report, where):
                request = kube.dig(container, "resources", "requests", resource)
                limit = kube.dig(container, "resources", "limits", resource)
                if request is None or limit is None:
                    side = "requests" if request is None else "limits"
                    raise CannotEvaluate(f"no {side}.{resource} to compare")
                used = _quantity(limit, parse, f"limits.{resource}")
                base = _quantity(request, parse, f"requests.{resource}")
                if used > ratio * base:
                    report(f"{where}: limits.{resource} {limit} is {used / base:.1f}x requests.{resource} "
                           f"{request} (allowed {ratio:g}x)", None)


@stack_rule("namespace-resource-quota", "Every Larry namespace has a ResourceQuota", MANDATORY)
def namespace_resource_quota(resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    covered = set()
    for resource in resources:
        if resource.resource_type == kube.RESOURCE_QUOTA:
            with evaluating(report, describe(resource.resource_type, resource.props, resource.name), resource.urn):
                covered.add(kube.namespace(resource.props))
    for namespace in plan.namespaces:
        if namespace not in covered:
            larrys = ", ".join(larry.id for larry in plan.larrys if larry.namespace == namespace)
            report(f"Namespace {namespace} (Larrys {larrys}): no ResourceQuota", None)


RULES = (node_capacity, container_resources, container_limit_ratio, namespace_resource_quota)
