"""A plan in real pods (issue 12, 3b): a stack sized for the local cluster's one real node,
deployed with `pulumi up` through the real engine, runs at speed 1 in containers of the images
scripts/images.sh built — Redis with Sentinel, the coordinator, a master, three worker Jobs and
converge, every pod on `larry-node`.

One deployment serves every check (suite time): while the workers run, one worker's pod is
deleted mid-task and then the Redis primary's pod. What is read back comes through the API
server only: task statuses and the event stream through redis-cli in a sentinel pod (the
sentinel knows the primary after the failover), the summary and the archive through a pod that
mounts converge's volume.
"""
from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from components.meta_coordinator import JOB_NAME
from plan.labels import WORKER
from plan.pods import COORDINATION_DIR
from plan.statuses import TaskStatus
from runtime.reporting.schema import report_path
from tests.engine.pulumi_cli import stack_document
from tests.support.cluster import NODE_IP, REAL_NODE, REDIS_IMAGE, Deployed

STACK = "realnode"
LARRY = "larry-01"
LARRY_NS, REDIS_NS = "realnode-larry", "realnode-redis"
REDIS_SERVICE, MASTER_NAME, SENTINEL_PORT = "redis-cluster", "larry", 26379
#: The worker whose pod is deleted mid-task, and the task it is then running.
VICTIM, VICTIM_TASK = "cleanup-worker", "fix-pgadmin-crashloop"
#: Bounds of the waits (real time: speed 1).
TASK_START_TIMEOUT = 120
FAILOVER_TIMEOUT = 60
RUN_TIMEOUT = 300
POD_TIMEOUT = 90

SMALL = {"requests": {"cpu": "50m", "memory": "96Mi"}, "limits": {"cpu": "500m", "memory": "384Mi"}}


def one_node_stack() -> dict:
    """dev's first Larry cut to three workers of two tasks (two minutes each, so tasks of about
    30 s), one master, on the real node alone; Redis (three servers, three sentinels) from
    the Debian redis image, without the exporter (no image of it here)."""
    document = stack_document("dev")
    config = document["config"]
    larry = next(larry for larry in config["larry:larrys"] if larry["id"] == LARRY)
    workers = larry["workers"][:3]
    for worker in workers:
        worker.update(node=REAL_NODE, minutes=2, resources=SMALL, tasks=worker["tasks"][:2])
    # Deadlines with room for a loaded machine: a Job's counts from its creation, and when it
    # passes, the Job's pods are deleted.
    larry.update(namespace=LARRY_NS, node=REAL_NODE, workerNodes=[REAL_NODE], deadlineMinutes=8, storage="1Gi",
                 coordinator=SMALL, masters=larry["masters"][:1], workers=workers)
    config.update({
        "larry:executionWindowMinutes": 10,
        "larry:nodes": {REAL_NODE: {"role": "master", "ip": NODE_IP, "cpu": "2", "memory": "8Gi"}},
        "larry:larrys": [larry],
        "larry:redis": {"namespace": REDIS_NS, "serviceName": REDIS_SERVICE, "port": 6379, "replicas": 3,
                        "sentinels": 3, "downAfterMilliseconds": 2000, "image": REDIS_IMAGE, "exporter": False,
                        "resources": SMALL},
        "larry:observability": {"serviceMonitors": False, "grafanaDashboard": False},
    })
    return document


def await_condition(what: str, timeout: float, probe):
    """``probe()`` until it returns something truthy, at most ``timeout`` seconds."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(1)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last seen: {last!r})")


class Hub:
    """redis-cli in a sentinel pod: the sentinel names the primary, the primary answers."""

    def __init__(self, cluster):
        self.cluster = cluster

    def _cli(self, *args: str, check: bool = True) -> str:
        done = self.cluster.kubectl("exec", "-n", REDIS_NS, f"{REDIS_SERVICE}-sentinel-0", "--", "redis-cli",
                                    "--no-auth-warning", *args, check=check)
        return done.stdout if done.returncode == 0 else ""

    def primary(self) -> str:
        """The primary's pod name, as Sentinel knows it ('' while it cannot say)."""
        out = self._cli("-p", str(SENTINEL_PORT), "--raw", "sentinel", "get-master-addr-by-name", MASTER_NAME,
                        check=False)
        return out.split(".", 1)[0].strip() if out.strip() else ""

    def primary_cli(self, *args: str) -> str:
        primary = self.primary()
        assert primary, "Sentinel names no primary"
        return self._cli("-h", f"{primary}.{REDIS_SERVICE}-headless.{REDIS_NS}.svc.cluster.local", "--raw", *args)

    def status(self, task: str) -> str:
        return self.primary_cli("get", f"task:status:{task}").strip()

    def events(self) -> list[dict]:
        """Every event of the run's stream and of each Larry's (the set ``phase:larrys`` names
        them), read as an operator reads them with redis-cli: the ``data`` field of each entry."""
        streams = ["larry:events", *(f"larry:events:{larry}" for larry in self.primary_cli(
            "smembers", "phase:larrys").split())]
        return [json.loads(line) for stream in streams for line in self.primary_cli("xrange", stream, "-", "+")
                .splitlines() if line.startswith("{")]


def pods(cluster, namespace: str, selector: str) -> list[dict]:
    return cluster.get("pods", "-n", namespace, "-l", selector)["items"]


def read_volume(cluster, claim: str, script: str) -> str:
    """What ``script`` prints in a pod on the real node that mounts ``claim`` read-only."""
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "volume-reader", "namespace": REDIS_NS},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": REAL_NODE}, "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "read", "image": REDIS_IMAGE, "imagePullPolicy": "Never",
                            "command": ["sh", "-c", script], "volumeMounts": [{"name": "v", "mountPath": "/v", "readOnly": True}],
                            "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
            "volumes": [{"name": "v", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}]}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    try:
        await_condition("the volume reader pod to finish", POD_TIMEOUT,
                        lambda: cluster.get("pod", "volume-reader", "-n", REDIS_NS)["status"].get("phase")
                        in ("Succeeded", "Failed"))
        return cluster.kubectl("logs", "-n", REDIS_NS, "volume-reader").stdout
    finally:
        # A pod using the claim holds it (pvc-protection): `destroy` would wait on it.
        cluster.kubectl("delete", "pod", "-n", REDIS_NS, "volume-reader", "--wait=false")


@pytest.fixture(scope="module")
def run(cluster, tmp_path_factory):
    """Deploys the one-node stack, deletes a worker's pod mid-task and the Redis primary's pod,
    awaits converge; yields what was observed, then destroys the stack."""
    deployed = Deployed(tmp_path_factory.mktemp("real-node"), cluster, STACK, one_node_stack())
    seen: dict = {"plan": deployed.plan}
    try:
        deployed.up()
        hub = Hub(cluster)
        seen["first_primary"] = await_condition("Sentinel to name a primary", FAILOVER_TIMEOUT, hub.primary)
        await_condition(f"{VICTIM_TASK} to be in progress", TASK_START_TIMEOUT,
                        lambda: hub.status(VICTIM_TASK) == TaskStatus.IN_PROGRESS)
        (victim,) = [p["metadata"]["name"] for p in pods(cluster, LARRY_NS, f"{WORKER}={VICTIM}")]
        seen["victim_pod"] = victim
        cluster.kubectl("delete", "pod", "-n", LARRY_NS, victim, "--wait=false")
        cluster.kubectl("delete", "pod", "-n", REDIS_NS, seen["first_primary"], "--wait=false")
        seen["second_primary"] = await_condition(
            "Sentinel to promote a replica", FAILOVER_TIMEOUT,
            lambda: (p := hub.primary()) and p != seen["first_primary"] and p)
        done = cluster.kubectl("wait", "--for=condition=Complete", f"job/{JOB_NAME}", "-n", REDIS_NS,
                               f"--timeout={RUN_TIMEOUT}s", check=False, timeout=RUN_TIMEOUT + 30)
        assert done.returncode == 0, f"converge not Complete within {RUN_TIMEOUT}s: {done.stderr.strip()}"
        seen["converge_log"] = cluster.kubectl("logs", "-n", REDIS_NS, f"job/{JOB_NAME}").stdout
        seen["statuses"] = {t.id: hub.status(t.id) for t in deployed.plan.larrys[0].tasks}
        seen["events"] = hub.events()
        seen["victim_pods"] = pods(cluster, LARRY_NS, f"{WORKER}={VICTIM}")
        seen["victim_job"] = cluster.get("job", VICTIM, "-n", LARRY_NS)["status"]
        seen["pods"] = [p for ns in (LARRY_NS, REDIS_NS) for p in cluster.get("pods", "-n", ns)["items"]]
        yield seen
    finally:
        deployed.pulumi("destroy", "--yes", "--skip-preview", "--stack", STACK)


def test_every_pod_of_the_stack_ran_on_the_real_node(run):
    placed = {p["metadata"]["name"]: p["spec"].get("nodeName") for p in run["pods"]}
    assert placed and set(placed.values()) == {REAL_NODE}, placed


def test_sentinel_failed_over_when_the_primary_pod_was_deleted(run):
    assert run["second_primary"] != run["first_primary"]


def test_the_deleted_worker_pod_was_replaced_by_its_job(run):
    names = {p["metadata"]["name"] for p in run["victim_pods"]}
    assert run["victim_pod"] not in names and len(names) == 1, f"{VICTIM}'s pods {names}, Job {run['victim_job']}"
    (pod,) = run["victim_pods"]
    assert pod["status"]["phase"] == "Succeeded", pod["status"]


def test_every_task_was_completed_exactly_once(run):
    statuses = run["statuses"]
    failures = [e for e in run["events"] if e.get("event") == "task_failed"]
    assert set(statuses.values()) == {TaskStatus.COMPLETED}, f"{statuses}; failures: {failures}"
    completions = [e["task_id"] for e in run["events"] if e.get("event") == "task_completed"]
    assert sorted(completions) == sorted(statuses), "each task completed once, and no other"
    # The deleted pod's task went back and was claimed again: it ran twice, finished once.
    claims = [e for e in run["events"] if e.get("event") == "task_claimed" and e.get("task_id") == VICTIM_TASK]
    assert len(claims) >= 2, claims


def test_converge_wrote_the_summary_and_archived_every_result(cluster, run):
    log = run["converge_log"]
    archive = re.search(r"^archive: (\S+)", log, re.M)
    summary = re.search(r"^summary: (\S+)", log, re.M)
    assert archive and summary, log
    tasks = sorted(run["statuses"])
    # Converge's paths are under its mount of the volume; the reader mounts it at /v.
    archive_path, summary_path = (f"/v/{Path(m.group(1)).relative_to(COORDINATION_DIR)}" for m in (archive, summary))
    listing = read_volume(cluster, f"{JOB_NAME}-reports", f"tar tzf {archive_path} && head -n 1 {summary_path}")
    for task in tasks:
        assert f"results/{LARRY}/{task}.json" in listing, f"{task}'s result is not in the archive:\n{listing}"
    assert str(report_path(Path("reports"), LARRY)) in listing, listing
    assert "SUMMARY" in listing.upper(), listing


def test_a_pod_outside_the_larry_namespaces_cannot_reach_redis(cluster, run):
    """The stack's NetworkPolicies, enforced on the real node by kube-router (as k3s does): a pod
    of another namespace is refused by Redis's ingress policy, while the plan's own pods reached
    it throughout the run."""
    cluster.kubectl("create", "namespace", "realnode-outsider")
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe", "namespace": "realnode-outsider"},
        "spec": {"nodeSelector": {"kubernetes.io/hostname": REAL_NODE}, "restartPolicy": "Never",
                 "containers": [{"name": "probe", "image": REDIS_IMAGE, "imagePullPolicy": "Never",
                                 "command": ["sh", "-c", f"redis-cli -h {REDIS_SERVICE}.{REDIS_NS} ping"]}]}}
    try:
        cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
        await_condition("the probe pod to finish", POD_TIMEOUT, lambda: cluster.get(
            "pod", "probe", "-n", "realnode-outsider")["status"].get("phase") in ("Succeeded", "Failed"))
        answer = cluster.kubectl("logs", "-n", "realnode-outsider", "probe").stdout
    finally:
        cluster.kubectl("delete", "namespace", "realnode-outsider", "--wait=false")
    # Without the password Redis answers NOAUTH: an answer at all means the connection was made.
    assert "NOAUTH" not in answer and "PONG" not in answer, f"a pod outside the Larry namespaces reached Redis: {answer}"
    # Refused by the policy (kube-router rejects), not lost to a name that did not resolve.
    assert re.search(r"Could not connect to Redis at \S+: Connection refused", answer), answer
