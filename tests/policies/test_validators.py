"""The policy pack's validators, called with the arguments the engine hands them.

pulumi-policy's analyzer turns the engine's request into arguments like this: properties
travel as a protobuf Struct (so numbers arrive as floats), are deserialized, wrapped in the
unknown-checking proxy and passed to ResourceValidationArgs / StackValidationArgs with the
policy's config. ``engine_shaped`` does the same with the library's own functions.

The resources are rendered from the committed stack files in the shape the components
render (plan ConfigMaps, worker Jobs with their larry.dev annotations, coordinators, Redis,
quotas, ClusterRoles). Variants edit the stack file's values before loading them, so every
number still comes through components.config, as it does in the real program.
"""
from __future__ import annotations

import copy
import runpy
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
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
from pulumi_policy.proxy import UNKNOWN_NUMBER_VALUE, UNKNOWN_STRING_VALUE, unknown_checking_proxy

from plan.loader import load_config
from plan.model import StackConfig
from policies import kube
from policies import validators as v
from tests.components.pulumi_graph import run_program, stack_values
from tests.support.project import ROOT  # noqa: E402

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
    rule, found = v.RULES[policy], []

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
    return {name: found for name in v.RULES if (found := run_policy(name, shaped, (config or {}).get(name)))}


def mandatory(found: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name: messages for name, messages in found.items() if v.RULES[name].level is EnforcementLevel.MANDATORY}


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
    labels = {"app": v.WORKER_APP, v.LARRY: larry.id, v.WORKER: worker.name,
              **({v.MASTER: worker.master} if worker.master else {})}
    notes = {v.TOKENS: str(worker.tokens), v.MINUTES: str(worker.minutes),
             v.PHASE_DEADLINE: str(larry.deadline_minutes), v.WINDOW: str(cfg.execution_window_minutes),
             **({v.WORKER_TYPE: worker.type} if worker.type else {}),
             **({v.MASTER: worker.master} if worker.master else {}), "pulumi.com/skipAwait": "true"}
    return K8s(kube.JOB, f"{larry.id}-{worker.name}", {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": meta(worker.name, larry.namespace, labels, notes),
        "spec": {"backoffLimit": 3, "activeDeadlineSeconds": worker.minutes * 60, "template": {
            "metadata": {"labels": labels},
            "spec": pod([container("worker", cfg.runtime_image, worker.resources.as_dict())],
                        affinity=pinned([worker.node]), restartPolicy="OnFailure")}}})


def coordinator(cfg: StackConfig, larry) -> K8s:
    labels = {"app": v.COORDINATOR_APP, v.LARRY: larry.id}
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
    text, out = cfg.plan_document(), []
    for larry in cfg.larrys:
        out.append(K8s(kube.CONFIG_MAP, f"{larry.id}-plan", {
            "metadata": meta(f"{larry.id}-plan", larry.namespace), "data": {"plan.yaml": text, "larry-id": larry.id}}))
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


@pytest.fixture(scope="module")
def dev() -> StackConfig:
    return plan("dev")


@pytest.fixture
def dev_resources(dev) -> list[K8s]:
    return render(dev)


def raise_cortex_budget(values: dict) -> None:
    values["larry:budget"]["systemTokens"] = 365_000


# --------------------------------------------------------------------------- the committed stacks

def test_dev_plan_passes_every_policy(dev_resources):
    assert all_violations(dev_resources) == {}


def test_cortex_fails_only_the_system_budget_naming_allocations_and_budget():
    found = all_violations(render(plan("cortex")))
    assert list(mandatory(found)) == ["system-token-budget"]
    assert found["system-token-budget"] == [
        "The plan allocates 365,000 tokens, the system budget is 295,000 (over by 70,000): Larrys 260,000 "
        "(security 45,000, development 50,000, inventory 50,000, cicd 45,000, testing 40,000, monitoring 30,000); "
        "meta-coordinator 105,000 (orchestration 50,000, worker pool 30,000, emergency reserve 25,000)"]


def test_cortex_with_a_system_budget_that_fits_has_no_mandatory_violation():
    found = all_violations(render(plan("cortex", raise_cortex_budget)))
    assert mandatory(found) == {}
    # What stays is advice: seed 004 gives masters more workers than their pools hold.
    assert set(found) == {"master-pool-overcommit"}
    assert ("Master inventory-master (Larry inventory): its workers draw 32,000 tokens on a worker pool of 15,000 "
            "(allowed 15,000 at maxOvercommit 1): catalog-worker-01 8,000, catalog-worker-02 8,000, "
            "catalog-worker-03 8,000, catalog-worker-04 8,000") in found["master-pool-overcommit"]


# --------------------------------------------------------------------------- token budgets

def test_larry_budget_fails_when_a_worker_outgrows_it():
    cfg = plan("dev", lambda values: worker_values(values, "cleanup-worker").update(tokens=16_000))
    assert violations("larry-token-budget", render(cfg)) == [
        "Larry larry-01: allocates 119,000 tokens, its tokenBudget is 111,000 (over by 8,000): "
        "cicd-master 45,000 (30,000 personal + 15,000 worker pool), monitoring-master 30,000 (20,000 personal + "
        "10,000 worker pool), cleanup-worker 16,000 (no master), consolidation-worker 10,000 (no master), "
        "optimization-worker 8,000 (no master), monitoring-worker 10,000 (no master)"]


def test_larry_budget_counts_a_master_workers_draw_only_through_the_pool():
    # A worker naming a master draws on that master's pool: giving larry-01's workers to
    # cicd-master frees 36,000 of the Larry's budget instead of adding to it.
    def give_to_master(values):
        for worker in larry_values(values, "larry-01")["workers"]:
            worker["master"] = "cicd-master"
            worker["tokens"] = 4_000
    cfg = plan("dev", give_to_master)
    assert violations("larry-token-budget", render(cfg)) == []
    assert violations("worker-fits-master-pool", render(cfg)) == []


def test_system_budget_fails_when_the_dev_plan_outgrows_it(dev_resources):
    assert violations("system-token-budget", dev_resources) == []
    cfg = plan("dev", lambda values: values["larry:budget"].update(systemTokens=470_000))
    [message] = violations("system-token-budget", render(cfg))
    assert message.startswith("The plan allocates 478,000 tokens, the system budget is 470,000 (over by 8,000): "
                              "Larrys 403,000 (larry-01 111,000, larry-02 81,000, larry-03 211,000)")


def test_a_worker_that_names_a_master_must_fit_its_pool():
    cfg = plan("cortex", lambda values: (raise_cortex_budget(values), worker_values(
        values, "analysis-worker-02").update(tokens=12_000)))
    assert violations("worker-fits-master-pool", render(cfg)) == [
        "Worker analysis-worker-02 (Larry monitoring): needs 12,000 tokens, master monitoring-master's "
        "worker pool holds 10,000"]


def test_pool_overcommit_is_advisory_and_its_ratio_is_configurable():
    assert v.RULES["master-pool-overcommit"].level is EnforcementLevel.ADVISORY
    resources = render(plan("cortex", raise_cortex_budget))
    assert len(violations("master-pool-overcommit", resources)) == 4  # security, development, inventory, testing
    assert violations("master-pool-overcommit", resources, {"maxOvercommit": 2.2}) == []


def test_worker_type_cap():
    resources = render(plan("cortex", raise_cortex_budget))
    assert violations("worker-type-cap", resources) == []
    cfg = plan("cortex", lambda values: worker_values(values, "scan-worker-02").update(tokens=9_000))
    assert violations("worker-type-cap", render(cfg)) == [
        "Worker scan-worker-02 (Larry security): needs 9,000 tokens, its type scan-worker caps workers at 8,000"]


def test_emergency_reserve_share_default_and_configured(dev_resources):
    assert violations("emergency-reserve", dev_resources) == []  # 25,000 of 478,000 = 5.2 %
    assert violations("emergency-reserve", dev_resources, {"minShare": 0.06}) == [
        "The emergency reserve is 25,000 tokens, 5.2% of the system budget 478,000; at least 6.0% (28,680) "
        "is required"]
    cfg = plan("dev", lambda values: values["larry:budget"]["metaCoordinator"].update(emergencyReserveTokens=20_000))
    assert violations("emergency-reserve", render(cfg)) == [
        "The emergency reserve is 20,000 tokens, 4.2% of the system budget 478,000; at least 5.0% (23,900) "
        "is required"]


# --------------------------------------------------------------------------- time budgets

def test_worker_deadline_beyond_its_phase(dev):
    cfg = plan("dev", lambda values: worker_values(values, "cleanup-worker").update(minutes=35))
    assert violations("worker-deadline", render(cfg)) == [
        f"{CLEANUP}: activeDeadlineSeconds 2,100 exceeds "
        "the phase deadline 25 min = 1,500 s",
        f"{CLEANUP}: the worker's 35 min exceed the "
        "phase deadline 25 min"]


def test_worker_deadline_needs_active_deadline_and_annotations(dev_resources):
    job = named(dev_resources, "larry-01-cleanup-worker")
    del job.props["spec"]["activeDeadlineSeconds"]
    del job.props["metadata"]["annotations"][v.MINUTES]
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


# --------------------------------------------------------------------------- compute budgets

def test_node_capacity_fails_when_a_node_is_overcommitted():
    # Two CPUs per worker: k3s-worker04 holds five of larry-03's workers plus one Redis pod.
    def bigger_workers(values):
        for worker in larry_values(values, "larry-03")["workers"]:
            worker["resources"] = {"requests": {"cpu": "2", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    found = violations("node-capacity", render(plan("dev", bigger_workers)))
    assert found == [
        "Node k3s-worker04: pods that can run there request 10,750m cpu, allowed 8,000m (100% of allocatable 8): "
        "Job larry-03/code-quality-worker 1x 2,000m, Job larry-03/test-coverage-worker 1x 2,000m, "
        "Job larry-03/documentation-worker 1x 2,000m, Job larry-03/feature-worker 1x 2,000m, "
        "Job larry-03/review-worker 1x 2,000m, StatefulSet redis-ha/redis-cluster 1x 750m"]


def test_node_capacity_share_is_configurable(dev_resources):
    # k3s-master03: larry-03's coordinator (4 CPUs) and a Redis pod (750m) on 8 CPUs.
    found = violations("node-capacity", dev_resources, {"maxShare": 0.5})
    assert [m.split(":")[0] for m in found] == ["Node k3s-master03", "Node k3s-worker01", "Node k3s-worker02",
                                                "Node k3s-worker04"]
    assert "request 4,750m cpu, allowed 4,000m (50% of allocatable 8)" in found[0]


def test_node_capacity_counts_unspread_replicas_on_every_node(dev, dev_resources):
    redis_set = named(dev_resources, "redis")
    del redis_set.props["spec"]["template"]["spec"]["affinity"]
    redis_set.props["spec"]["replicas"] = 12  # all twelve could land on one node
    found = violations("node-capacity", [*without(dev_resources, "redis"), redis_set])
    worker01 = next(message for message in found if message.startswith("Node k3s-worker01:"))
    assert "pods that can run there request 13,000m cpu, allowed 8,000m" in worker01
    assert worker01.endswith(f"{REDIS} 12x 9,000m")


def test_node_capacity_cannot_evaluate_a_pod_pinned_off_the_plan_or_without_requests(dev_resources):
    job = named(dev_resources, "larry-01-cleanup-worker")
    job.props["spec"]["template"]["spec"]["affinity"] = pinned(["k3s-worker09"])
    coordinator_ = named(dev_resources, "larry-02-coordinator")
    containers_of(coordinator_)[0]["resources"] = {}
    found = violations("node-capacity", [*dev_resources])
    assert found == [
        f"{CLEANUP}: cannot evaluate, pinned to "
        "k3s-worker09, not in larry:nodes",
        f"{COORDINATOR_02}: cannot evaluate, container coordinator "
        "requests no cpu"]


def test_every_container_sets_requests_and_limits(dev_resources):
    job = named(dev_resources, "larry-01-cleanup-worker")
    containers_of(job)[0]["resources"] = {"requests": {"cpu": "1"}}
    assert violations("container-resources", dev_resources) == [
        f"{CLEANUP}, container worker: no requests.memory, limits.cpu, limits.memory"]


def test_limit_at_most_a_multiple_of_the_request(dev_resources):
    job = named(dev_resources, "larry-01-cleanup-worker")
    containers_of(job)[0]["resources"] = {"requests": {"cpu": "500m", "memory": "1Gi"},
                                          "limits": {"cpu": "4", "memory": "1Gi"}}
    assert violations("container-limit-ratio", dev_resources) == [
        f"{CLEANUP}, container worker: limits.cpu 4 is 8.0x requests.cpu 500m (allowed 4x)"]
    assert violations("container-limit-ratio", dev_resources, {"maxRatio": 8}) == []


def test_limit_ratio_without_a_request_cannot_evaluate(dev_resources):
    job = named(dev_resources, "larry-01-cleanup-worker")
    containers_of(job)[0]["resources"] = {"limits": {"cpu": "1", "memory": "1Gi"}}
    assert violations("container-limit-ratio", [job]) == [
        f"{CLEANUP}, container worker: cannot evaluate, no requests.cpu to compare",
        f"{CLEANUP}, container worker: cannot evaluate, no requests.memory to compare"]


def test_every_larry_namespace_has_a_resource_quota(dev_resources):
    assert violations("namespace-resource-quota", without(dev_resources, "larry-02-quota")) == [
        "Namespace larry-02 (Larrys larry-02): no ResourceQuota"]


# --------------------------------------------------------------------------- placement

def test_worker_jobs_are_pinned_to_a_worker_node_of_their_larry(dev_resources):
    job = named(dev_resources, "larry-01-cleanup-worker")
    job.props["spec"]["template"]["spec"]["affinity"] = pinned(["k3s-worker01", "k3s-worker02"])
    loose = named(dev_resources, "larry-02-audit-worker")
    del loose.props["spec"]["template"]["spec"]["affinity"]
    assert violations("worker-placement", dev_resources) == [
        f"{CLEANUP}: may run on k3s-worker02 "
        "(allowed: larry-01's worker nodes k3s-worker01)",
        f"{AUDIT}: no required node affinity on kubernetes.io/hostname "
        "(allowed: larry-02's worker nodes k3s-worker02)"]


def test_a_term_without_hostname_unpins_the_pod(dev_resources):
    job = named(dev_resources, "larry-01-cleanup-worker")
    terms = job.props["spec"]["template"]["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    terms.append({"matchExpressions": [{"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]}]})
    assert violations("worker-placement", [job, named(dev_resources, "larry-01-plan")]) == [
        f"{CLEANUP}: no required node affinity on kubernetes.io/hostname "
        "(allowed: larry-01's worker nodes k3s-worker01)"]


def test_coordinators_sit_on_master_nodes(dev_resources):
    named(dev_resources, "larry-03-coordinator").props["spec"]["template"]["spec"]["affinity"] = pinned(
        ["k3s-worker03"])
    assert violations("coordinator-placement", dev_resources) == [
        "Deployment larry-03/larry-03-coordinator (Larry larry-03): may run on k3s-worker03 "
        "(allowed: master nodes k3s-master01, k3s-master02, k3s-master03)"]


def test_placement_of_a_workload_naming_no_planned_larry_cannot_evaluate(dev_resources):
    named(dev_resources, "larry-01-cleanup-worker").props["metadata"]["labels"][v.LARRY] = "larry-09"
    assert violations("worker-placement", dev_resources) == [
        "Job larry-01/cleanup-worker (Larry larry-09, worker cleanup-worker): cannot evaluate, "
        "label larry.dev/larry=larry-09 names no Larry of the plan"]


# --------------------------------------------------------------------------- plan and resources agree

def test_job_annotations_must_equal_the_plan(dev_resources):
    job = named(dev_resources, "larry-01-cleanup-worker")
    job.props["metadata"]["annotations"][v.TOKENS] = "4000"
    assert violations("plan-matches-resources", dev_resources) == [
        f"{CLEANUP}: annotation larry.dev/tokens is "
        "'4000', the plan gives 8000"]


def test_every_planned_worker_larry_and_plan_map_is_rendered(dev_resources):
    resources = without(without(dev_resources, "larry-02-audit-worker"), "larry-03-coordinator")
    assert violations("plan-matches-resources", resources) == [
        "Worker audit-worker (Larry larry-02): 0 Jobs, expected 1 (none)",
        "Larry larry-03: no coordinator (a workload labelled app=larry-coordinator, larry.dev/larry=larry-03)"]


def test_a_job_for_a_worker_the_plan_lacks_cannot_evaluate(dev_resources):
    named(dev_resources, "larry-01-cleanup-worker").props["metadata"]["labels"][v.WORKER] = "ghost-worker"
    found = violations("plan-matches-resources", dev_resources)
    assert found[0] == ("Job larry-01/cleanup-worker (Larry larry-01, worker ghost-worker): cannot evaluate, "
                        "label larry.dev/worker=ghost-worker names no worker of Larry larry-01")
    assert found[1] == "Worker cleanup-worker (Larry larry-01): 0 Jobs, expected 1 (none)"


# --------------------------------------------------------------------------- the plan itself

def test_without_a_plan_every_plan_policy_reports_it_cannot_evaluate(dev_resources):
    resources = [r for r in dev_resources if r.type != kube.CONFIG_MAP]
    found = all_violations(resources)
    plan_rules = [name for name, rule in v.RULES.items() if rule.resource_types is None and name != "redis-password"]
    assert sorted(found) == sorted(plan_rules)
    assert all(messages == ["cannot evaluate: the stack has no plan ConfigMap (data 'plan.yaml', one per Larry)"]
               for name, messages in found.items())


def test_a_plan_unknown_in_preview_is_a_violation_not_a_pass(dev_resources):
    for resource in dev_resources:
        if resource.type == kube.CONFIG_MAP:
            resource.props["data"]["plan.yaml"] = UNKNOWN_STRING_VALUE
    found = violations("system-token-budget", dev_resources)
    assert found[0] == ("ConfigMap larry-01/larry-01-plan: cannot evaluate, string value at .data.plan.yaml "
                        "can't be known during preview")
    assert found[-1] == "cannot evaluate: the stack has no plan ConfigMap (data 'plan.yaml', one per Larry)"


def test_plan_maps_that_disagree_or_do_not_load_cannot_evaluate(dev, dev_resources):
    other = plan("dev", lambda values: values["larry:budget"].update(systemTokens=1_000_000))
    named(dev_resources, "larry-02-plan").props["data"]["plan.yaml"] = other.plan_document()
    assert violations("system-token-budget", dev_resources) == [
        "cannot evaluate: the plan ConfigMaps carry 2 different plans (ConfigMap larry-01/larry-01-plan, "
        "ConfigMap larry-03/larry-03-plan; ConfigMap larry-02/larry-02-plan)"]
    for resource in dev_resources:
        if resource.type == kube.CONFIG_MAP:
            resource.props["data"]["plan.yaml"] = "config: {larry:executionWindowMinutes: -1}"
    [message] = violations("system-token-budget", dev_resources)
    assert message.startswith("cannot evaluate: the plan does not load: ConfigMap larry-01/larry-01-plan: "
                              "larry:executionWindowMinutes: expected a positive integer, got number -1")


# --------------------------------------------------------------------------- safety

def redis_container(resources: list[K8s], name: str) -> dict:
    return next(c for c in containers_of(named(resources, "redis")) if c["name"] == name)


def test_redis_requires_a_password_from_a_secret(dev_resources):
    redis_container(dev_resources, "redis")["args"] = ["--port", "6379"]
    redis_container(dev_resources, "sentinel")["command"][-1] = "hunter2"
    assert violations("redis-password", dev_resources) == [
        f"{REDIS}, container redis: starts Redis without requirepass in its command "
        "and args",
        f"{REDIS}, container sentinel: requirepass in its command and args is not "
        "followed by a variable set from a Secret (a literal password would sit in the manifest)"]


def test_redis_password_variable_must_come_from_a_secret(dev_resources):
    redis_container(dev_resources, "redis")["env"] = [{"name": "REDIS_PASSWORD", "value": "hunter2"}]
    assert violations("redis-password", dev_resources) == [
        f"{REDIS}, container redis: requirepass in its command and args uses "
        "$REDIS_PASSWORD, which is not set from a Secret"]


def scripted_redis(resources: list[K8s], script: str) -> list[K8s]:
    """The server started by a script from a ConfigMap, as the RedisHA component does it."""
    server = redis_container(resources, "redis")
    server.update(command=["sh", "/scripts/redis.sh"], volumeMounts=[{"name": "scripts", "mountPath": "/scripts"}])
    del server["args"]
    pod_spec = named(resources, "redis").props["spec"]["template"]["spec"]
    pod_spec["volumes"] = [{"name": "scripts", "configMap": {"name": "redis-scripts"}}]
    scripts = K8s(kube.CONFIG_MAP, "redis-scripts", {"metadata": meta("redis-scripts", "redis-ha"), "data": {
        "redis.sh": ". /scripts/common.sh\nprintf 'port 6379\\n' > /run/redis.conf\nexec redis-server /run/redis.conf",
        "common.sh": script}})
    return [*resources, scripts]


def test_redis_password_set_by_a_mounted_script(dev_resources):
    # Followed through redis.sh into common.sh: the directive and its placeholder count.
    resources = scripted_redis(dev_resources, "printf 'requirepass \"%s\"\\n' \"$REDIS_PASSWORD\" >> /run/redis.conf")
    assert violations("redis-password", resources) == []
    resources = scripted_redis(render(plan("dev")), "echo starting")
    assert violations("redis-password", resources) == [
        f"{REDIS}, container redis: starts Redis without requirepass in its command "
        "and args, /scripts/redis.sh, /scripts/common.sh"]


def test_redis_script_from_a_config_map_outside_the_stack_cannot_evaluate(dev_resources):
    resources = without(scripted_redis(dev_resources, "requirepass $REDIS_PASSWORD"), "redis-scripts")
    assert violations("redis-password", resources) == [
        f"{REDIS}, container redis: cannot evaluate, /scripts/redis.sh comes from "
        "ConfigMap redis-scripts, which is not in the stack"]


def test_redis_is_fenced_by_a_network_policy(dev_resources):
    assert violations("redis-network-policy", dev_resources) == []
    unfenced = [r for r in dev_resources if r.type != kube.NETWORK_POLICY]
    assert violations("redis-network-policy", unfenced) == [
        f"{REDIS}: no NetworkPolicy in namespace redis-ha selects its pods "
        "(app.kubernetes.io/name=redis, app.kubernetes.io/part-of=larry) for ingress"]


def test_a_network_policy_open_to_everyone_is_no_fence(dev_resources):
    named(dev_resources, "redis-allow-larrys").props["spec"]["ingress"] = [
        {"ports": [{"port": 6379}]}, {"from": [{"namespaceSelector": {}}]},
        {"from": [{"ipBlock": {"cidr": "0.0.0.0/0"}}]}]
    assert violations("redis-network-policy", dev_resources) == [
        f"{REDIS}: NetworkPolicy redis-ha/allow-larrys ingress rule 0 has no 'from'",
        f"{REDIS}: NetworkPolicy redis-ha/allow-larrys ingress rule 1 admits every "
        "namespace or address",
        f"{REDIS}: NetworkPolicy redis-ha/allow-larrys ingress rule 2 admits every "
        "namespace or address"]


def test_a_stack_without_redis_cannot_show_it_is_fenced(dev_resources):
    assert violations("redis-network-policy", without(dev_resources, "redis")) == [
        "cannot evaluate: no workload runs the redis image, though the plan deploys Redis in namespace redis-ha"]


def test_no_privileged_root_or_escalating_container(dev_resources):
    job = named(dev_resources, "larry-01-cleanup-worker")
    containers_of(job)[0]["securityContext"] = {"privileged": True, "runAsUser": 0,
                                                "capabilities": {"add": ["SYS_ADMIN"]}}
    coordinator_ = named(dev_resources, "larry-01-coordinator")
    coordinator_.props["spec"]["template"]["spec"]["securityContext"] = {}
    containers_of(coordinator_)[0]["securityContext"] = {"allowPrivilegeEscalation": False}
    assert violations("container-security", dev_resources) == [
        f"{COORDINATOR_01}, container coordinator: may run as root (neither "
        "runAsNonRoot: true nor a non-zero runAsUser)",
        f"{CLEANUP}, container worker: privileged: true; allowPrivilegeEscalation is not false "
        "(Kubernetes defaults it to true); adds capabilities SYS_ADMIN; runs as root (runAsUser 0)"]


def test_cluster_roles_only_read(dev_resources):
    role = named(dev_resources, "larry-02-cluster-read")
    role.props["rules"] += [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]},
                            {"apiGroups": ["apps"], "resources": ["*"], "verbs": ["list", "patch", "*"]}]
    assert violations("clusterrole-read-only", dev_resources) == [
        "ClusterRole larry:larry-02:cluster-read: rule 1 grants access to secrets",
        "ClusterRole larry:larry-02:cluster-read: rule 2 grants patch, * on * (allowed verbs: get, list, watch)",
        "ClusterRole larry:larry-02:cluster-read: rule 2 grants access to *"]


def test_an_aggregated_cluster_role_cannot_be_evaluated(dev_resources):
    role = named(dev_resources, "larry-02-cluster-read")
    role.props["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {"rbac.example/aggregate": "true"}}]}
    assert violations("clusterrole-read-only", [role]) == [
        "ClusterRole larry:larry-02:cluster-read: cannot evaluate, it aggregates other ClusterRoles, whose rules "
        "this policy does not see"]


def test_untagged_or_latest_images_are_advised_against(dev_resources):
    assert v.RULES["image-tag"].level is EnforcementLevel.ADVISORY
    containers_of(named(dev_resources, "larry-01-cleanup-worker"))[0]["image"] = "ghcr.io/larry-dev/larry-runtime"
    containers_of(named(dev_resources, "larry-01-coordinator"))[0]["image"] = "registry:5000/larry-runtime:latest"
    containers_of(named(dev_resources, "larry-02-coordinator"))[0]["image"] = "registry:5000/larry-runtime"
    containers_of(named(dev_resources, "larry-03-coordinator"))[0]["image"] = "larry-runtime@sha256:" + "a" * 64
    assert violations("image-tag", dev_resources) == [
        f"{COORDINATOR_01}, container coordinator: image registry:5000/larry-runtime:latest "
        "is tagged latest, so it is not pinned",
        f"{CLEANUP}, container worker: image ghcr.io/larry-dev/larry-runtime is untagged, so it "
        "is not pinned",
        f"{COORDINATOR_02}, container coordinator: image registry:5000/larry-runtime is "
        "untagged, so it is not pinned"]


# --------------------------------------------------------------------------- the real program's resources

def program_resources(stack: str, edit: Callable[[dict], None] | None = None) -> list[K8s]:
    """The Kubernetes objects ``__main__.py`` registers for a stack (under Pulumi mocks), with
    their inputs as the engine passes them, secret envelopes included."""
    values = stack_values(stack)
    if edit:
        edit(values)
    return [K8s(r.typ, r.name, r.inputs) for r in run_program(stack, values).kubernetes()]


def test_program_dev_stack_passes_every_policy():
    assert all_violations(program_resources("dev")) == {}


def test_program_cortex_stack_fails_on_its_system_budget_until_it_is_raised():
    found = all_violations(program_resources("cortex"))
    assert list(mandatory(found)) == ["system-token-budget"]
    assert "allocates 365,000 tokens, the system budget is 295,000" in found["system-token-budget"][0]
    assert mandatory(all_violations(program_resources("cortex", raise_cortex_budget))) == {}


@pytest.mark.parametrize("edit, policy, expected", [
    (lambda values: worker_values(values, "feature-worker").update(tokens=30_000), "larry-token-budget",
     "Larry larry-03: allocates 229,000 tokens, its tokenBudget is 211,000 (over by 18,000)"),
    (lambda values: values["larry:budget"].update(systemTokens=400_000), "system-token-budget",
     "The plan allocates 478,000 tokens, the system budget is 400,000 (over by 78,000)"),
    (lambda values: larry_values(values, "larry-01")["workers"].extend(
        {**copy.deepcopy(worker_values(values, "cleanup-worker")), "name": f"extra-worker-{i}", "tokens": 1,
         "tasks": [{"id": f"extra-task-{i}", "title": "Extra"}]} for i in range(5)), "node-capacity",
     "Node k3s-worker01: pods that can run there request 9,"),
    (lambda values: worker_values(values, "cleanup-worker").update(minutes=30), "worker-deadline",
     f"{CLEANUP}: activeDeadlineSeconds 1,800 exceeds "
     "the phase deadline 25 min = 1,500 s"),
], ids=["worker-past-larry-budget", "system-past-cap", "node-overfull", "deadline-past-phase"])
def test_program_over_budget_variants_fail_the_right_policy(edit, policy, expected):
    found = mandatory(all_violations(program_resources("dev", edit)))
    assert policy in found and any(message.startswith(expected) for message in found[policy]), found


# --------------------------------------------------------------------------- reading engine-shaped objects

def test_label_selectors_follow_kubernetes_semantics():
    labels = {"app": "redis", "tier": "cache"}
    assert kube.selector_matches({}, labels)
    assert not kube.selector_matches(None, labels)
    assert kube.selector_matches({"matchLabels": {"app": "redis"},
                                  "matchExpressions": [{"key": "tier", "operator": "In", "values": ["cache"]},
                                                       {"key": "zone", "operator": "DoesNotExist"}]}, labels)
    assert not kube.selector_matches({"matchExpressions": [{"key": "app", "operator": "NotIn",
                                                            "values": ["redis"]}]}, labels)
    assert not kube.selector_matches({"matchExpressions": [{"key": "app", "operator": "Gt"}]}, labels)


def test_pinning_reads_node_selector_and_anded_expressions():
    spec = engine_shaped({"nodeSelector": {kube.HOSTNAME: "a"}, "affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": kube.HOSTNAME, "operator": "In", "values": ["a", "b"]},
                                  {"key": kube.HOSTNAME, "operator": "In", "values": ["a", "c"]}]}]}}}})
    assert kube.pinned_hostnames(spec) == {"a"}
    assert kube.pinned_hostnames(engine_shaped({"nodeSelector": {kube.HOSTNAME: "z"}})) == {"z"}
    assert kube.pinned_hostnames(engine_shaped({})) is None


def test_image_names():
    assert kube.image_repository("docker.io/library/redis:7.2.5-alpine") == "redis"
    assert kube.image_repository("oliver006/redis_exporter:v1.62.0") == "redis_exporter"
    assert kube.image_tag("registry:5000/redis") is None
    assert kube.image_tag("redis:7.2") == "7.2"


# --------------------------------------------------------------------------- the pack

def test_policies_carry_their_levels_and_config_schemas():
    policies = {p.name: p for p in v.policies()}
    assert len(policies) == len(v.RULES) == 20
    advisory = {name for name, p in policies.items() if p.enforcement_level is EnforcementLevel.ADVISORY}
    assert advisory == {"master-pool-overcommit", "image-tag"}
    schema = policies["container-limit-ratio"].config_schema.properties
    assert schema == {"maxRatio": {"type": "number", "minimum": 1, "default": 4,
                                   "description": "Largest limit / request ratio for CPU and memory"}}
    assert policies["emergency-reserve"].config_schema.properties["minShare"]["default"] == 0.05


def test_through_the_analyzer_an_unknown_is_a_mandatory_violation_and_config_applies(dev_resources):
    # pulumi-policy's own servicer (what PolicyPack serves over gRPC), fed protobuf requests as
    # the engine sends them: an unknown value must not fall back to its advisory note, and
    # --policy-pack-config must reach the validators and override enforcement levels.
    from pulumi.runtime.proto import analyzer_pb2 as proto
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    def struct(values: dict) -> struct_pb2.Struct:
        message = struct_pb2.Struct()
        message.update(values)
        return message

    servicer = _PolicyAnalyzerServicer("larry", "0.1.0", v.policies(), EnforcementLevel.ADVISORY)
    servicer.Configure(proto.ConfigureAnalyzerRequest(policyConfig={
        "container-limit-ratio": proto.PolicyConfig(enforcementLevel=proto.MANDATORY,
                                                    properties=struct({"maxRatio": 1})),
        "image-tag": proto.PolicyConfig(enforcementLevel=proto.DISABLED)}), None)
    job = named(dev_resources, "larry-01-cleanup-worker")
    job.props["spec"]["activeDeadlineSeconds"] = UNKNOWN_NUMBER_VALUE
    containers_of(job)[0]["image"] = "larry-runtime:latest"
    response = servicer.Analyze(proto.AnalyzeRequest(type=job.type, properties=struct(job.props), urn=job.urn,
                                                     name=job.name), None)
    found = {(d.policyName, d.enforcementLevel) for d in response.diagnostics}
    assert found == {("worker-deadline", proto.MANDATORY), ("container-limit-ratio", proto.MANDATORY)}
    assert any("can't be known during preview" in d.message for d in response.diagnostics)


def test_main_only_constructs_the_pack(monkeypatch):
    built = {}
    monkeypatch.setattr("pulumi_policy.PolicyPack", lambda **kwargs: built.update(kwargs))
    runpy.run_path(str(ROOT / "policies"), run_name="__main__")
    assert built["name"] == "larry"
    assert [p.name for p in built["policies"]] == list(v.RULES)


def test_policy_project_uses_the_project_virtualenv():
    project = yaml.safe_load((ROOT / "policies" / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    # The engine starts the pack in policies/, so the path is relative to it.
    venv = ROOT / "policies" / project["runtime"]["options"]["virtualenv"]
    assert venv.resolve() == (ROOT / ".venv").resolve()
