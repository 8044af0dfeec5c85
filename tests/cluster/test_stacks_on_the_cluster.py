"""The committed stacks through the real Pulumi engine against a real API server (issue 12, 3a):
the seed topology as kwok fake nodes, the real scheduler, Pod Security and quota admission, the
controllers, and pulumi-kubernetes' await logic — no render mode.

Each test is one stack's life: `pulumi up`, what the cluster then holds, a second `up` with no
changes, the edits users make (a worker's tokens, a Redis script) and `destroy`.
"""
from __future__ import annotations

import pytest

from plan.labels import APP, COORDINATOR_APP, LARRY, SCRIPTS_DIGEST, WORKER, WORKER_APP
from tests.support.cluster import Deployed


def _object_ref(resource: dict) -> tuple[str, str, str | None]:
    outputs = resource["outputs"]
    meta = outputs["metadata"]
    group_version = outputs["apiVersion"]
    kind = outputs["kind"]
    resource_name = f"{kind}.{group_version.split('/')[0]}" if "/" in group_version else kind
    return resource_name, meta["name"], meta.get("namespace")


def assert_every_resource_is_in_the_api_server(deployed: Deployed) -> None:
    missing = []
    resources = deployed.kubernetes_resources()
    assert resources, "the stack's state holds no Kubernetes resource"
    for resource in resources:
        kind, name, namespace = _object_ref(resource)
        args = ["get", kind, name] + (["-n", namespace] if namespace else [])
        if deployed.cluster.kubectl(*args, check=False).returncode != 0:
            missing.append(f"{kind} {namespace}/{name}")
    assert missing == []


def assert_placed_admitted_and_done(deployed: Deployed) -> None:
    cluster, plan = deployed.cluster, deployed.plan
    for larry in plan.larrys:
        namespace = cluster.get("namespace", larry.namespace)
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
        # Several Larrys may share a namespace (cortex): select by Larry too.
        mine = f"{LARRY}={larry.id}"
        coordinators = cluster.get("pods", "-n", larry.namespace, "-l", f"{APP}={COORDINATOR_APP},{mine}")["items"]
        assert [p["spec"]["nodeName"] for p in coordinators] == [larry.node], f"{larry.id}'s coordinator"
        jobs = {j["metadata"]["labels"][WORKER]: j for j in
                cluster.get("jobs", "-n", larry.namespace, "-l", f"{APP}={WORKER_APP},{mine}")["items"]}
        assert set(jobs) == {w.name for w in larry.workers}
        # kwok runs every pod of a fake node to completion: Complete means the pod was admitted
        # (restricted, the ResourceQuota) and scheduled. `up` does not await worker Jobs
        # (skipAwait), so their completion is awaited here.
        done = cluster.kubectl("wait", "--for=condition=Complete", "job", "-n", larry.namespace, "-l",
                               f"{APP}={WORKER_APP},{mine}", f"--timeout={JOBS_TIMEOUT}s", check=False,
                               timeout=JOBS_TIMEOUT + 30)
        assert done.returncode == 0, f"{larry.id}'s worker Jobs not Complete within {JOBS_TIMEOUT}s: {done.stderr}"
        for worker in larry.workers:
            pods = cluster.get("pods", "-n", larry.namespace, "-l", f"{WORKER}={worker.name}")["items"]
            assert {p["spec"]["nodeName"] for p in pods} == {worker.node}, f"{larry.id}/{worker.name}"
        # Nothing a controller created was refused by admission (Pod Security, quota).
        refused = [e["message"] for e in cluster.get("events", "-n", larry.namespace)["items"]
                   if e["reason"] == "FailedCreate"]
        assert refused == [], f"{larry.id}: {refused}"
        quota = cluster.get("resourcequota", "-n", larry.namespace)["items"]
        assert quota and all(q["status"].get("used") for q in quota), f"{larry.id}: no ResourceQuota tracks usage"
    for kind, items in (("deployment", cluster.get("deployments", "-A")["items"]),
                        ("statefulset", cluster.get("statefulsets", "-A")["items"])):
        for item in items:
            ready = item["status"].get("availableReplicas" if kind == "deployment" else "readyReplicas", 0)
            assert ready == item["spec"]["replicas"], f"{kind} {item['metadata']['name']}: {item['status']}"


def assert_destroy_leaves_nothing(deployed: Deployed) -> None:
    deployed.pulumi("destroy", "--yes", "--skip-preview", "--stack", deployed.stack)
    cluster, plan = deployed.cluster, deployed.plan
    namespaces = {n["metadata"]["name"] for n in cluster.get("namespaces")["items"]}
    ours = {larry.namespace for larry in plan.larrys} | {plan.redis.namespace}
    assert namespaces & ours == set(), "namespaces left (or still terminating) after destroy"
    # Cluster-scoped names carry the stack (the ClusterRole) or a namespace of it (the bindings).
    prefixes = tuple(f"larry:{name}:" for name in (deployed.stack, *ours))
    for kind in ("clusterroles", "clusterrolebindings"):
        left = [i["metadata"]["name"] for i in cluster.get(kind)["items"]
                if i["metadata"]["name"].startswith(prefixes)]
        assert left == [], f"{kind} of the stack left after destroy"


#: A stack's life here is several `pulumi up`s, each awaiting what pulumi-kubernetes awaits.
LIFE_TIMEOUT = 1800
ROLL_TIMEOUT = 300
JOBS_TIMEOUT = 300


@pytest.mark.timeout(LIFE_TIMEOUT)
def test_dev_up_again_edit_and_destroy_on_the_seed_topology(tmp_path, cluster):
    deployed = Deployed(tmp_path, cluster, "dev")
    deployed.up()
    assert_every_resource_is_in_the_api_server(deployed)
    assert_placed_admitted_and_done(deployed)
    deployed.up("--expect-no-changes")

    # One worker's tokens: its Job is replaced (a Job's pod template is immutable) without
    # `field is immutable` (pulumi-kubernetes #2575), and runs again.
    larry = deployed.plan.larrys[0]
    worker = larry.workers[0]
    before = cluster.get("job", worker.name, "-n", larry.namespace)["metadata"]["uid"]
    deployed.edit(lambda config: config["larry:larrys"][0]["workers"][0].update(tokens=worker.tokens - 1000))
    deployed.up()
    after = cluster.get("job", worker.name, "-n", larry.namespace)
    assert after["metadata"]["uid"] != before

    # A Redis script: both StatefulSets roll to a new revision carrying the new digest.
    redis = deployed.plan.redis
    revisions = {s["metadata"]["name"]: s["status"]["updateRevision"]
                 for s in cluster.get("statefulsets", "-n", redis.namespace)["items"]}
    with (deployed.project / "components" / "redis" / "common.sh").open("a") as f:
        f.write("# edited by the cluster test\n")
    deployed.up()
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

    assert_destroy_leaves_nothing(deployed)


@pytest.mark.timeout(LIFE_TIMEOUT)
def test_cortex_up_and_the_policy_pack_against_the_cluster(tmp_path, cluster):
    deployed = Deployed(tmp_path, cluster, "cortex")
    preview = deployed.pulumi("preview", "--stack", "cortex", "--policy-pack", "policies", check=False)
    assert preview.returncode != 0
    output = preview.stdout + preview.stderr
    assert "[mandatory]  system-token-budget" in output
    assert "The plan allocates 365,000 tokens, the system budget is 295,000 (over by 70,000)" in output

    deployed.up()
    assert_every_resource_is_in_the_api_server(deployed)
    assert_placed_admitted_and_done(deployed)
    deployed.up("--expect-no-changes")
    assert_destroy_leaves_nothing(deployed)
