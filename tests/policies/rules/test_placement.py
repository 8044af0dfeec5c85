"""Placement rules (policies/rules/placement.py)."""
from __future__ import annotations

from plan.labels import LARRY
from tests.policies.harness import (
    AUDIT,
    CLEANUP,
    named,
    pinned,
    violations,
)


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
    plans = [named(dev_resources, f"{larry}-plan") for larry in ("larry-01", "larry-02", "larry-03")]
    assert violations("worker-placement", [job, *plans]) == [
        f"{CLEANUP}: no required node affinity on kubernetes.io/hostname "
        "(allowed: larry-01's worker nodes k3s-worker01)"]


def test_coordinators_sit_on_master_nodes(dev_resources):
    named(dev_resources, "larry-03-coordinator").props["spec"]["template"]["spec"]["affinity"] = pinned(
        ["k3s-worker03"])
    assert violations("coordinator-placement", dev_resources) == [
        "Deployment larry-03/larry-03-coordinator (Larry larry-03): may run on k3s-worker03 "
        "(allowed: master nodes k3s-master01, k3s-master02, k3s-master03)"]


def test_placement_of_a_workload_naming_no_planned_larry_cannot_evaluate(dev_resources):
    named(dev_resources, "larry-01-cleanup-worker").props["metadata"]["labels"][LARRY] = "larry-09"
    assert violations("worker-placement", dev_resources) == [
        "Job larry-01/cleanup-worker (Larry larry-09, worker cleanup-worker): cannot evaluate, "
        "label larry.dev/larry=larry-09 names no Larry of the plan"]
