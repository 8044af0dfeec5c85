"""The committed stacks through the real Pulumi engine against a real API server (issue 12, 3a):
the seed topology as kwok fake nodes, the real scheduler, Pod Security and quota admission, the
controllers, and pulumi-kubernetes' await logic — no render mode.

dev and cortex are deployed once for the module, side by side (their namespaces and
cluster-scoped names differ), and each test checks one thing users rely on. The edits users
make (a worker's tokens, a Redis script) are made to dev; the last test destroys both, so
the tests run in file order.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Iterator

import pytest

from plan.labels import APP, COORDINATOR_APP, LARRY, SCRIPTS_DIGEST, WORKER, WORKER_APP
from plan.quantities import parse_cpu, parse_memory
from tests.support.cluster import REAL_NODE, Deployed

STACKS = ("dev", "cortex")
#: Each `pulumi up` awaits what pulumi-kubernetes awaits; the module deploys twice over.
LIFE_TIMEOUT = 1200
ROLL_TIMEOUT = 300
JOBS_TIMEOUT = 300


def each(action, deployments) -> list:
    """``action`` on every deployment at once: the engines mostly wait on the API server."""
    with ThreadPoolExecutor(len(deployments)) as pool:
        return [future.result() for future in [pool.submit(action, d) for d in deployments]]


def set_capacity(cluster, node: str, resources: dict) -> None:
    """A fake node's capacity and allocatable (kwok keeps what its status says)."""
    cluster.kubectl("patch", "node", node, "--subresource=status", "--type=merge",
                    "-p", json.dumps({"status": {"capacity": resources, "allocatable": resources}}))


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, cluster) -> Iterator[dict[str, Deployed]]:
    # The seed topology is the fake nodes: a pod the scheduler put on the real node (a catalog
    # replica, spread across nodes) would really run there, apart from the rest of its stack.
    stacks = {name: Deployed(tmp_path_factory.mktemp(name), cluster, name) for name in STACKS}
    # Each stack is sized for the seed's nodes alone; deployed side by side, each node holds
    # what both place on it (dev's larry-03 and cortex's two Larrys fill k3s-master03 to 95 %):
    # its capacity is the sum of what the stacks give it, or placement would depend on order.
    sizes: dict[str, tuple[int, int]] = {}
    for deployment in stacks.values():
        for node in deployment.plan.nodes.values():
            cpu, memory = sizes.get(node.name, (0, 0))
            sizes[node.name] = (cpu + parse_cpu(node.cpu), memory + parse_memory(node.memory))
    before = {name: cluster.get("node", name)["status"]["capacity"] for name in sizes}
    cluster.kubectl("cordon", REAL_NODE)
    for name, (millicores, memory) in sizes.items():
        set_capacity(cluster, name, {**before[name], "cpu": f"{millicores}m", "memory": str(memory)})
    try:
        each(Deployed.up, list(stacks.values()))
        yield stacks
    finally:
        for name, resources in before.items():
            set_capacity(cluster, name, resources)
        cluster.kubectl("uncordon", REAL_NODE)


def _ref(kind: str, api_version: str, namespace: str | None, name: str) -> str:
    group = api_version.split("/")[0] if "/" in api_version else ""
    return f"{kind}.{group}".rstrip(".") + f" {namespace or ''}/{name}"


def _namespaces(deployment: Deployed) -> set[str]:
    return {r["outputs"]["metadata"]["name"] for r in deployment.kubernetes_resources()
            if r["type"] == "kubernetes:core/v1:Namespace"}


@pytest.mark.timeout(LIFE_TIMEOUT)
@pytest.mark.parametrize("stack", STACKS)
def test_every_resource_of_the_state_is_in_the_api_server(deployed, stack):
    deployment = deployed[stack]
    resources = deployment.kubernetes_resources()
    assert resources, "the stack's state holds no Kubernetes resource"
    wanted = {_ref(r["outputs"]["kind"], r["outputs"]["apiVersion"], r["outputs"]["metadata"].get("namespace"),
                   r["outputs"]["metadata"]["name"]) for r in resources}
    kinds = sorted({ref.split(" ")[0] for ref in wanted})
    # One request for every kind: a `kubectl get` per object costs minutes on a busy machine.
    listed = deployment.cluster.get(",".join(kinds), "-A")["items"]
    present = {_ref(i["kind"], i["apiVersion"], i["metadata"].get("namespace"), i["metadata"]["name"])
               for i in listed}
    assert sorted(wanted - present) == []


@pytest.mark.timeout(LIFE_TIMEOUT)
@pytest.mark.parametrize("stack", STACKS)
def test_pods_are_placed_admitted_and_their_workloads_done(deployed, stack):
    deployment = deployed[stack]
    cluster, plan = deployment.cluster, deployment.plan
    namespaces = _namespaces(deployment)
    # `up` does not await worker Jobs (skipAwait): their completion is awaited here. kwok runs
    # every pod of a fake node to completion, so Complete means admitted (restricted, the
    # ResourceQuota) and scheduled.
    for namespace in sorted({larry.namespace for larry in plan.larrys}):
        done = cluster.kubectl("wait", "--for=condition=Complete", "job", "-n", namespace, "-l",
                               f"{APP}={WORKER_APP}", f"--timeout={JOBS_TIMEOUT}s", check=False,
                               timeout=JOBS_TIMEOUT + 30)
        assert done.returncode == 0, f"{namespace}: worker Jobs not Complete within {JOBS_TIMEOUT}s: {done.stderr}"
    pods = [p for p in cluster.get("pods", "-A")["items"] if p["metadata"]["namespace"] in namespaces]
    jobs = [j for j in cluster.get("jobs", "-A")["items"] if j["metadata"]["namespace"] in namespaces]

    def labelled(items, **labels):
        return [i for i in items if all(i["metadata"].get("labels", {}).get(k) == v for k, v in labels.items())]

    for larry in plan.larrys:
        in_namespace = [p for p in pods if p["metadata"]["namespace"] == larry.namespace]
        coordinators = labelled(in_namespace, **{APP: COORDINATOR_APP, LARRY: larry.id})
        assert [p["spec"]["nodeName"] for p in coordinators] == [larry.node], f"{larry.id}'s coordinator"
        worker_jobs = labelled([j for j in jobs if j["metadata"]["namespace"] == larry.namespace],
                               **{APP: WORKER_APP, LARRY: larry.id})
        assert {j["metadata"]["labels"][WORKER] for j in worker_jobs} == {w.name for w in larry.workers}
        for worker in larry.workers:
            nodes = {p["spec"]["nodeName"] for p in labelled(in_namespace, **{WORKER: worker.name})}
            assert nodes == {worker.node}, f"{larry.id}/{worker.name}"
    for namespace in namespaces:
        labels = cluster.get("namespace", namespace)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted", namespace
    # Nothing a controller created was refused by admission (Pod Security, quota).
    refused = [f"{e['metadata']['namespace']}: {e['message']}" for e in cluster.get("events", "-A")["items"]
               if e["metadata"]["namespace"] in namespaces and e["reason"] == "FailedCreate"]
    assert refused == []
    quotas = [q for q in cluster.get("resourcequota", "-A")["items"] if q["metadata"]["namespace"] in namespaces]
    assert {q["metadata"]["namespace"] for q in quotas} >= {larry.namespace for larry in plan.larrys}
    assert all(q["status"].get("used") for q in quotas), "a ResourceQuota tracks no usage"
    for kind, ready_field in (("deployments", "availableReplicas"), ("statefulsets", "readyReplicas")):
        for item in cluster.get(kind, "-A")["items"]:
            if item["metadata"]["namespace"] in namespaces:
                ready = item["status"].get(ready_field, 0)
                assert ready == item["spec"]["replicas"], f"{kind} {item['metadata']['name']}: {item['status']}"


@pytest.mark.timeout(LIFE_TIMEOUT)
def test_the_policy_pack_blocks_cortex_with_its_numbers(deployed):
    preview = deployed["cortex"].pulumi("preview", "--stack", "cortex", "--policy-pack", "policies", check=False)
    assert preview.returncode != 0
    output = preview.stdout + preview.stderr
    assert "[mandatory]  system-token-budget" in output
    assert "The plan allocates 365,000 tokens, the system budget is 295,000 (over by 70,000)" in output


@pytest.mark.timeout(LIFE_TIMEOUT)
def test_a_second_up_changes_nothing(deployed):
    each(lambda d: d.up("--expect-no-changes"), list(deployed.values()))


@pytest.mark.timeout(LIFE_TIMEOUT)
def test_a_worker_tokens_edit_replaces_its_job(deployed):
    # A Job's pod template is immutable: the Job is replaced, without `field is immutable`
    # (pulumi-kubernetes #2575), and runs again.
    dev = deployed["dev"]
    larry = dev.plan.larrys[0]
    worker = larry.workers[0]
    before = dev.cluster.get("job", worker.name, "-n", larry.namespace)["metadata"]["uid"]
    dev.edit(lambda config: config["larry:larrys"][0]["workers"][0].update(tokens=worker.tokens - 1000))
    dev.up()
    assert dev.cluster.get("job", worker.name, "-n", larry.namespace)["metadata"]["uid"] != before


@pytest.mark.timeout(LIFE_TIMEOUT)
def test_a_redis_script_edit_rolls_both_statefulsets(deployed):
    dev = deployed["dev"]
    cluster, redis = dev.cluster, dev.plan.redis
    revisions = {s["metadata"]["name"]: s["status"]["updateRevision"]
                 for s in cluster.get("statefulsets", "-n", redis.namespace)["items"]}
    with (dev.project / "components" / "redis" / "common.sh").open("a") as f:
        f.write("# edited by the cluster test\n")
    dev.up()
    for name in revisions:
        # pulumi-kubernetes may return once the new revision is out; the roll itself is the
        # StatefulSet controller's, one pod at a time.
        cluster.kubectl("rollout", "status", f"statefulset/{name}", "-n", redis.namespace,
                        f"--timeout={ROLL_TIMEOUT}s", timeout=ROLL_TIMEOUT + 30)
    for sts in cluster.get("statefulsets", "-n", redis.namespace)["items"]:
        name = sts["metadata"]["name"]
        assert sts["status"]["updateRevision"] != revisions[name], f"{name} did not roll"
        assert sts["status"].get("updatedReplicas") == sts["spec"]["replicas"], f"{name}: {sts['status']}"
        assert SCRIPTS_DIGEST in sts["spec"]["template"]["metadata"]["annotations"]


@pytest.mark.timeout(LIFE_TIMEOUT)
def test_destroy_leaves_no_namespace_or_cluster_scoped_object(deployed):
    owned = {name: _namespaces(d) for name, d in deployed.items()}
    each(lambda d: d.pulumi("destroy", "--yes", "--skip-preview", "--stack", d.stack), list(deployed.values()))
    cluster = deployed["dev"].cluster
    namespaces = {n["metadata"]["name"] for n in cluster.get("namespaces")["items"]}
    for stack, ours in owned.items():
        assert ours and namespaces & ours == set(), f"{stack}: namespaces left (or still terminating) after destroy"
        # Cluster-scoped names carry the stack (the ClusterRole) or a namespace of it (the bindings).
        prefixes = tuple(f"larry:{name}:" for name in (stack, *ours))
        for kind in ("clusterroles", "clusterrolebindings"):
            left = [i["metadata"]["name"] for i in cluster.get(kind)["items"]
                    if i["metadata"]["name"].startswith(prefixes)]
            assert left == [], f"{stack}: {kind} left after destroy"
