"""Compute budget rules (policies/rules/compute.py)."""
from __future__ import annotations

from tests.policies.harness import (
    CLEANUP,
    COORDINATOR_02,
    REDIS,
    containers_of,
    larry_values,
    named,
    pinned,
    plan,
    render,
    violations,
    without,
)


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
