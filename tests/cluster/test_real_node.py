"""The local cluster's real node (kubelet + containerd): a pod of the runtime image built from
the project's Dockerfile runs there under Pod Security `restricted`, with no registry (the
image was imported from scripts/images.sh's archive), and its output comes back through the
API server; a pod there finds a Service by name through the cluster DNS and reaches it at its
ClusterIP through kube-proxy."""
from __future__ import annotations

import json
import time

import pytest

from plan.model import DEFAULT_RUNTIME_IMAGE
from tests.support.cluster import REAL_NODE, REDIS_IMAGE

RUN_TIMEOUT = 180
RESTRICTED = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
LOCKED_DOWN = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}


def restricted_namespace(cluster, name: str) -> None:
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, "pod-security.kubernetes.io/enforce=restricted")


def real_node_pod(name: str, namespace: str, image: str, labels: dict | None = None, **container) -> dict:
    return {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": REAL_NODE},
            "restartPolicy": "Never", "automountServiceAccountToken": False, "securityContext": RESTRICTED,
            "containers": [{"name": "main", "image": image, "imagePullPolicy": "Never", "securityContext": LOCKED_DOWN,
                            **container}],
        },
    }


def await_finished(cluster, namespace: str, pod: str) -> str:
    deadline, status = time.monotonic() + RUN_TIMEOUT, {}
    while time.monotonic() < deadline:
        status = cluster.get("pod", pod, "-n", namespace)["status"]
        if status.get("phase") in ("Succeeded", "Failed"):
            return status["phase"]
        time.sleep(1)
    pytest.fail(f"pod {namespace}/{pod} did not finish within {RUN_TIMEOUT}s: {status}")


def test_the_runtime_image_runs_on_the_real_node_as_a_restricted_pod(cluster):
    restricted_namespace(cluster, "real-node")
    pod = real_node_pod("larry-help", "real-node", DEFAULT_RUNTIME_IMAGE, args=["--help"])
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    assert await_finished(cluster, "real-node", "larry-help") == "Succeeded"
    logs = cluster.kubectl("logs", "-n", "real-node", "larry-help").stdout
    assert "coordinator" in logs and "worker" in logs, logs
    cluster.kubectl("delete", "namespace", "real-node", "--wait=true", timeout=RUN_TIMEOUT + 30)


def test_a_pod_on_the_real_node_reaches_a_service_by_name(cluster):
    namespace = "real-node-services"
    restricted_namespace(cluster, namespace)
    server = real_node_pod("echo", namespace, REDIS_IMAGE, {"app": "echo"},
                           command=["redis-server", "--port", "6379", "--protected-mode", "no", "--dir", "/tmp",
                                    "--save", ""])
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo", "namespace": namespace},
               "spec": {"selector": {"app": "echo"}, "ports": [{"port": 6379, "targetPort": 6379}]}}
    # The name through CoreDNS, then the ClusterIP through kube-proxy's rules: the server may
    # still be starting, so the client tries for a while before it gives up.
    client = real_node_pod("client", namespace, REDIS_IMAGE, command=["sh", "-c", (
        f"getent hosts echo.{namespace}.svc.cluster.local || exit 2; "
        "for i in $(seq 60); do redis-cli -h echo ping 2>/dev/null | grep PONG && exit 0; sleep 1; done; exit 1")])
    for item in (server, service, client):
        cluster.kubectl("apply", "-f", "-", input=json.dumps(item))
    cluster_ip = cluster.get("service", "echo", "-n", namespace)["spec"]["clusterIP"]
    phase = await_finished(cluster, namespace, "client")
    logs = cluster.kubectl("logs", "-n", namespace, "client").stdout
    assert phase == "Succeeded", f"the client pod failed: {logs}"
    assert logs.split()[:2] == [cluster_ip, f"echo.{namespace}.svc.cluster.local"] and "PONG" in logs, logs
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
