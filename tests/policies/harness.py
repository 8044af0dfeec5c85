"""The policy pack's rules, called with the arguments the engine hands them.

pulumi-policy's analyzer turns the engine's request into arguments like this: properties
travel as a protobuf Struct (so numbers arrive as floats), are deserialized, wrapped in the
unknown-checking proxy and passed to ResourceValidationArgs / StackValidationArgs with the
policy's config. ``engine_shaped`` does the same with the library's own functions.

The resources are rendered from the committed stack files in the shape the components
render (plan ConfigMaps, worker Jobs with their larry.dev annotations, coordinators, Redis,
quotas, ClusterRoles). Variants edit the stack file's values before loading them, so every
number still comes through plan.loader, as it does in the real program.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable

import yaml
from google.protobuf import json_format, struct_pb2
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.proxy import unknown_checking_proxy

from plan.labels import (
    COORDINATOR_APP,
    LARRY,
    MASTER,
    MINUTES,
    PHASE_DEADLINE,
    TOKENS,
    WINDOW,
    WORKER,
    WORKER_APP,
    WORKER_TYPE,
)
from plan.loader import load_config
from plan.model import StackConfig
from policies import kube
from policies.rules import RULES
from tests.components.pulumi_graph import run_program, stack_values
from tests.support.project import ROOT

OPTIONS = PolicyResourceOptions(False, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], None)
# How the messages name the objects the tests edit most.
CLEANUP = "Job larry-01/cleanup-worker (Larry larry-01, worker cleanup-worker)"
AUDIT = "Job larry-02/audit-worker (Larry larry-02, worker audit-worker)"
COORDINATOR_01 = "Deployment larry-01/larry-01-coordinator (Larry larry-01)"
COORDINATOR_02 = "Deployment larry-02/larry-02-coordinator (Larry larry-02)"
REDIS = "StatefulSet redis-ha/redis-cluster"


# --------------------------------------------------------------------------- engine-shaped arguments

@dataclass
class K8s:
    type: str
    name: str  # the Pulumi resource name
    props: dict[str, Any] = field(default_factory=dict)

    @property
    def urn(self) -> str:
        return f"urn:pulumi:test::larry::{self.type}::{self.name}"


def engine_shaped(props: dict[str, Any]) -> Any:
    struct = struct_pb2.Struct()
    struct.update(props)
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))


Shaped = list[tuple[K8s, Any]]


def shape(resources: list[K8s]) -> Shaped:
    """Each resource with its engine-shaped properties, converted once for all the policies."""
    return [(resource, engine_shaped(resource.props)) for resource in resources]


def run_policy(policy: str, shaped: Shaped, config: dict | None = None) -> list[str]:
    rule, found = RULES[policy], []

    def report(message: str, urn: str | None = None) -> None:
        found.append(message)

    if rule.resource_types is None:
        rule.validate(StackValidationArgs([PolicyResource(r.type, props, r.urn, r.name, OPTIONS, None, None, [], {})
                                           for r, props in shaped], config), report)
    else:
        for r, props in shaped:
            rule.validate(ResourceValidationArgs(r.type, props, r.urn, r.name, OPTIONS, None, config), report)
    return found


def violations(policy: str, resources: list[K8s], config: dict | None = None) -> list[str]:
    return run_policy(policy, shape(resources), config)


def all_violations(resources: list[K8s], config: dict | None = None) -> dict[str, list[str]]:
    shaped = shape(resources)
    return {name: found for name in RULES if (found := run_policy(name, shaped, (config or {}).get(name)))}


def mandatory(found: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name: messages for name, messages in found.items() if RULES[name].level is EnforcementLevel.MANDATORY}


# --------------------------------------------------------------------------- plans and their rendering

def plan(stack: str, edit: Callable[[dict], None] | None = None) -> StackConfig:
    values = copy.deepcopy(yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"])
    if edit:
        edit(values)
    return load_config(values, stack)


def worker_values(values: dict, name: str) -> dict:
    return next(w for larry in values["larry:larrys"] for w in larry["workers"] if w["name"] == name)


def larry_values(values: dict, larry_id: str) -> dict:
    return next(larry for larry in values["larry:larrys"] if larry["id"] == larry_id)


SECURE = {"allowPrivilegeEscalation": False, "runAsNonRoot": True, "readOnlyRootFilesystem": True,
          "capabilities": {"drop": ["ALL"]}}
REDIS_LABELS = {"app.kubernetes.io/name": "redis", "app.kubernetes.io/part-of": "larry"}
PASSWORD_ENV = [{"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "redis-auth", "key": "password"}}}]


def container(name: str, image: str, resources: dict, **extra: Any) -> dict:
    return {"name": name, "image": image, "resources": resources, "securityContext": dict(SECURE), **extra}


def pinned(nodes: list[str]) -> dict:
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": kube.HOSTNAME, "operator": "In", "values": list(nodes)}]}]}}}


def pod(containers: list[dict], **extra: Any) -> dict:
    return {"securityContext": {"runAsNonRoot": True, "runAsUser": 10001}, "containers": containers, **extra}


def meta(name: str, namespace: str | None, labels: dict | None = None, annotations: dict | None = None) -> dict:
    out: dict[str, Any] = {"name": name, "labels": labels or {}}
    if namespace:
        out["namespace"] = namespace
    if annotations:
        out["annotations"] = annotations
    return out


def worker_job(cfg: StackConfig, larry, worker) -> K8s:
    labels = {"app": WORKER_APP, LARRY: larry.id, WORKER: worker.name,
              **({MASTER: worker.master} if worker.master else {})}
    notes = {TOKENS: str(worker.tokens), MINUTES: str(worker.minutes),
             PHASE_DEADLINE: str(larry.deadline_minutes), WINDOW: str(cfg.execution_window_minutes),
             **({WORKER_TYPE: worker.type} if worker.type else {}),
             **({MASTER: worker.master} if worker.master else {}), "pulumi.com/skipAwait": "true"}
    return K8s(kube.JOB, f"{larry.id}-{worker.name}", {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": meta(worker.name, larry.namespace, labels, notes),
        "spec": {"backoffLimit": 3, "activeDeadlineSeconds": larry.deadline_minutes * 60, "template": {
            "metadata": {"labels": labels},
            "spec": pod([container("worker", cfg.runtime_image, worker.resources.as_dict())],
                        affinity=pinned([worker.node]), restartPolicy="Never")}}})


def coordinator(cfg: StackConfig, larry) -> K8s:
    labels = {"app": COORDINATOR_APP, LARRY: larry.id}
    return K8s(kube.DEPLOYMENT, f"{larry.id}-coordinator", {
        "metadata": meta(f"{larry.id}-coordinator", larry.namespace, labels),
        "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": pod([container("coordinator", cfg.runtime_image, larry.coordinator.as_dict())],
                        affinity=pinned([larry.node]))}}})


def redis(cfg: StackConfig) -> list[K8s]:
    spec, ns, resources = cfg.redis, cfg.redis.namespace, cfg.redis.resources.as_dict()
    server = container("redis", spec.image, resources, command=["redis-server"], env=PASSWORD_ENV,
                       args=["--port", str(spec.port), "--requirepass", "$(REDIS_PASSWORD)",
                             "--masterauth", "$(REDIS_PASSWORD)"])
    sentinel = container("sentinel", spec.image, resources, env=PASSWORD_ENV,
                         command=["redis-server", "/data/sentinel.conf", "--sentinel",
                                  "--requirepass", "$(REDIS_PASSWORD)"])
    exporter = container("exporter", spec.exporter_image, resources, env=PASSWORD_ENV)
    anti_affinity = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": REDIS_LABELS}, "topologyKey": kube.HOSTNAME}]}}
    larry_namespaces = {"matchExpressions": [{"key": "kubernetes.io/metadata.name", "operator": "In",
                                              "values": list(cfg.namespaces)}]}
    return [
        K8s(kube.STATEFUL_SET, "redis", {"metadata": meta(spec.service_name, ns, REDIS_LABELS), "spec": {
            "replicas": spec.replicas, "selector": {"matchLabels": REDIS_LABELS}, "template": {
                "metadata": {"labels": REDIS_LABELS},
                "spec": pod([server, sentinel, exporter], affinity=anti_affinity)}}}),
        K8s(kube.NETWORK_POLICY, "redis-default-deny", {"metadata": meta("default-deny", ns), "spec": {
            "podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}),
        K8s(kube.NETWORK_POLICY, "redis-allow-larrys", {"metadata": meta("allow-larrys", ns), "spec": {
            "podSelector": {"matchLabels": REDIS_LABELS}, "policyTypes": ["Ingress"],
            "ingress": [{"from": [{"namespaceSelector": larry_namespaces}],
                         "ports": [{"protocol": "TCP", "port": spec.port}]}]}}),
    ]


def render(cfg: StackConfig) -> list[K8s]:
    """What the components render for a plan, as far as the policies read it."""
    slices, out = cfg.slice_documents(), []
    for larry in cfg.larrys:
        out.append(K8s(kube.CONFIG_MAP, f"{larry.id}-plan", {
            "metadata": meta(f"{larry.id}-plan", larry.namespace),
            "data": {"plan.yaml": slices[larry.id], "larry-id": larry.id}}))
        out.append(coordinator(cfg, larry))
        out += [worker_job(cfg, larry, worker) for worker in larry.workers]
        if larry.cluster_read:
            out.append(K8s(kube.CLUSTER_ROLE, f"{larry.id}-cluster-read", {
                "metadata": meta(f"larry:{larry.id}:cluster-read", None),
                "rules": [{"apiGroups": [""], "resources": ["pods", "nodes"], "verbs": ["get", "list", "watch"]}]}))
    out += [K8s(kube.RESOURCE_QUOTA, f"{ns}-quota", {"metadata": meta("larry-budget", ns),
                                                     "spec": {"hard": {"pods": "20"}}}) for ns in cfg.namespaces]
    return out + redis(cfg)


def named(resources: list[K8s], name: str) -> K8s:
    return next(r for r in resources if r.name == name)


def without(resources: list[K8s], name: str) -> list[K8s]:
    return [r for r in resources if r.name != name]


def containers_of(resource: K8s) -> list[dict]:
    return kube.pod_spec(resource.type, resource.props)["containers"]


def raise_cortex_budget(values: dict) -> None:
    values["larry:budget"]["systemTokens"] = 365_000


def program_resources(stack: str, edit: Callable[[dict], None] | None = None) -> list[K8s]:
    """The Kubernetes objects ``__main__.py`` registers for a stack (under Pulumi mocks), with
    their inputs as the engine passes them, secret envelopes included."""
    values = stack_values(stack)
    if edit:
        edit(values)
    return [K8s(r.typ, r.name, r.inputs) for r in run_program(stack, values).kubernetes()]
