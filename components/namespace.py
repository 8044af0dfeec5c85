"""Namespaces: the restricted Namespace object, its guardrails, and the Larry namespace component.

Several Larrys may share one namespace (the cortex stack puts all six in ``cortex-workers``),
so everything that exists once per namespace — the Namespace, its quota and limit range, the
default-deny and shared network policies, each agent profile's egress, the copy of the Redis
password — lives in a
``LarryNamespace`` component created once per namespace, which the Larrys depend on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import pulumi
import pulumi_kubernetes as k8s

from components import agents, kube
from components.pod_security import NAMESPACE_LABELS
from plan import labels
from plan.model import AgentProfile, Larry, Redis
from plan.pods import COORDINATOR_PORT, MASTER_RESOURCES, REDIS_AUTH_KEY, REDIS_AUTH_SECRET
from plan.quantities import ResourceList, Resources, parse_memory

#: The Secret, in every namespace that talks to Redis, holding the generated password.
AUTH_SECRET, AUTH_KEY = REDIS_AUTH_SECRET, REDIS_AUTH_KEY
#: Quota headroom over the planned pods: a Job pod replaced after an eviction or node loss
#: counts against the quota until its predecessor has finished terminating.
QUOTA_HEADROOM = 0.25


def namespace(name: str, resource_name: str, opts: pulumi.ResourceOptions) -> k8s.core.v1.Namespace:
    """A Namespace enforcing Pod Security "restricted"."""
    return k8s.core.v1.Namespace(resource_name, metadata=kube.metadata(
        name, None, {**NAMESPACE_LABELS, "app.kubernetes.io/part-of": kube.PART_OF,
                     "app.kubernetes.io/managed-by": kube.MANAGED_BY}), opts=opts)


def default_deny(namespace_name: str, resource_name: str, opts: pulumi.ResourceOptions) -> k8s.networking.v1.NetworkPolicy:
    """Deny all traffic to and from every pod; the other policies of the namespace add exceptions."""
    return k8s.networking.v1.NetworkPolicy(resource_name, metadata=kube.metadata(
        "default-deny", namespace_name, {"app.kubernetes.io/part-of": kube.PART_OF}),
        spec={"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}, opts=opts)


def auth_secret(namespace_name: str, resource_name: str, password: pulumi.Input[str],
                opts: pulumi.ResourceOptions) -> k8s.core.v1.Secret:
    """The Redis password; ``password`` is a secret Output, so state and previews keep it masked."""
    return k8s.core.v1.Secret(resource_name, metadata=kube.metadata(
        AUTH_SECRET, namespace_name, {"app.kubernetes.io/part-of": kube.PART_OF}),
        type="Opaque", string_data={AUTH_KEY: password}, opts=opts)


@dataclass(frozen=True)
class PodShape:
    """One pod's containers, for sizing a namespace's quota."""
    containers: tuple[Resources, ...]


def pod_shapes(larry: Larry) -> list[PodShape]:
    """The pods a Larry runs: its coordinator, one pod per master and one pod per worker."""
    return [PodShape((larry.coordinator,))] + [PodShape((MASTER_RESOURCES,))] * len(larry.masters) + [
        PodShape((w.resources,)) for w in larry.workers]


def quota_spec(pods: Sequence[PodShape], storage: Iterable[str]) -> dict[str, Any]:
    """ResourceQuota ``hard`` limits: the planned pods' totals plus headroom, the PVCs exactly."""
    def total(part: str, attr: str) -> int:
        return sum(getattr(getattr(c, part), attr) for p in pods for c in p.containers)

    def padded(value: int) -> int:
        return math.ceil(value * (1 + QUOTA_HEADROOM))

    sizes = [parse_memory(s) for s in storage]
    return {"hard": {
        "requests.cpu": kube.cpu_text(padded(total("requests", "cpu_millis"))),
        "requests.memory": kube.memory_text(padded(total("requests", "memory_bytes"))),
        "limits.cpu": kube.cpu_text(padded(total("limits", "cpu_millis"))),
        "limits.memory": kube.memory_text(padded(total("limits", "memory_bytes"))),
        "pods": str(padded(len(pods))),
        "persistentvolumeclaims": str(len(sizes)),
        "requests.storage": kube.memory_text(sum(sizes)),
        # Nothing in a Larry namespace is meant to be reachable from outside the cluster.
        "services.loadbalancers": "0",
        "services.nodeports": "0",
    }}


def limit_range_spec(pods: Sequence[PodShape]) -> dict[str, Any]:
    """Per-container bounds: no container above the largest planned limit; defaults from the smallest."""
    containers = [c for p in pods for c in p.containers]

    def extreme(pick, part: str) -> dict[str, str]:
        lists: list[ResourceList] = [getattr(c, part) for c in containers]
        return {"cpu": kube.cpu_text(pick(r.cpu_millis for r in lists)),
                "memory": kube.memory_text(pick(r.memory_bytes for r in lists))}

    return {"limits": [{"type": "Container", "max": extreme(max, "limits"),
                        "default": extreme(min, "limits"), "defaultRequest": extreme(min, "requests")}]}


def guardrails(namespace_name: str, resource_name: str, pods: Sequence[PodShape], storage: Iterable[str],
               opts: pulumi.ResourceOptions) -> None:
    """ResourceQuota and LimitRange derived from the pods planned for the namespace."""
    meta = kube.metadata("larry-budget", namespace_name, {"app.kubernetes.io/part-of": kube.PART_OF})
    k8s.core.v1.ResourceQuota(f"{resource_name}-quota", metadata=meta, spec=quota_spec(pods, storage), opts=opts)
    k8s.core.v1.LimitRange(f"{resource_name}-limits", metadata=meta, spec=limit_range_spec(pods), opts=opts)


@dataclass(frozen=True)
class LarryNamespaceArgs:
    name: str
    larrys: tuple[Larry, ...]
    redis: Redis
    password: pulumi.Output[str]
    #: The namespace the cluster's Prometheus runs in: it may scrape the coordinators.
    prometheus_namespace: str
    #: The agent profiles the namespace's workers run: one egress NetworkPolicy each.
    agents: tuple[AgentProfile, ...] = ()


class LarryNamespace(pulumi.ComponentResource):
    """A namespace for one or more Larrys, with what exists once per namespace."""

    def __init__(self, name: str, args: LarryNamespaceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("larry:index:LarryNamespace", name, None, opts)
        ns = args.name
        self.namespace = namespace(ns, name, kube.opts(self))
        child = kube.opts(self, depends_on=[self.namespace])
        pods = [shape for larry in args.larrys for shape in pod_shapes(larry)]
        guardrails(ns, name, pods, [larry.storage for larry in args.larrys], child)
        default_deny(ns, f"{name}-default-deny", child)
        self._shared_policies(name, ns, args.redis, args.prometheus_namespace, child)
        for profile in args.agents:
            agents.egress_policy(f"{name}-agent-{profile.name}", ns, profile, child)
        self.secret = auth_secret(ns, f"{name}-redis-auth", args.password, child)
        self.register_outputs({"namespace": ns})

    @staticmethod
    def _shared_policies(name: str, ns: str, redis: Redis, prometheus_namespace: str,
                         opts: pulumi.ResourceOptions) -> None:
        part_of = {"app.kubernetes.io/part-of": kube.PART_OF}
        # Every Larry pod: Redis (server and sentinels) and DNS, nothing else.
        k8s.networking.v1.NetworkPolicy(f"{name}-allow-redis", metadata=kube.metadata(
            "allow-redis-and-dns", ns, part_of), spec={
            "podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": kube.namespace_selector([redis.namespace]),
                                "podSelector": {"matchLabels": kube.REDIS_POD_SELECTOR}}],
                        "ports": [{"protocol": "TCP", "port": p} for p in (redis.port, redis.sentinel_port)]},
                       kube.dns_egress()]}, opts=opts)
        # Coordinators: scraped by Prometheus on their metrics port.
        k8s.networking.v1.NetworkPolicy(f"{name}-allow-scrape", metadata=kube.metadata(
            "allow-metrics-scrape", ns, part_of), spec={
            "podSelector": {"matchLabels": {labels.APP: labels.COORDINATOR_APP}}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": kube.namespace_selector([prometheus_namespace])}],
                         "ports": [{"protocol": "TCP", "port": COORDINATOR_PORT}]}]}, opts=opts)
