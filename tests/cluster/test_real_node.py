"""The local cluster's real node (kubelet + containerd): a pod of the runtime image built from
the project's Dockerfile runs there under Pod Security `restricted`, with no registry (the
image was imported from scripts/images.sh's archive), and its output comes back through the
API server."""
from __future__ import annotations

import json
import time

from plan.model import DEFAULT_RUNTIME_IMAGE
from tests.support.cluster import REAL_NODE

RUN_TIMEOUT = 180


def test_the_runtime_image_runs_on_the_real_node_as_a_restricted_pod(cluster):
    cluster.kubectl("create", "namespace", "real-node")
    cluster.kubectl("label", "namespace", "real-node", "pod-security.kubernetes.io/enforce=restricted")
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "larry-help", "namespace": "real-node"},
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": REAL_NODE},
            "restartPolicy": "Never", "automountServiceAccountToken": False,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "larry", "image": DEFAULT_RUNTIME_IMAGE, "imagePullPolicy": "Never", "args": ["--help"],
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}}}],
        },
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(pod))
    deadline, phase = time.monotonic() + RUN_TIMEOUT, None
    while time.monotonic() < deadline:
        status = cluster.get("pod", "larry-help", "-n", "real-node")["status"]
        phase = status.get("phase")
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(1)
    assert phase == "Succeeded", f"the pod did not succeed within {RUN_TIMEOUT}s: {status}"
    logs = cluster.kubectl("logs", "-n", "real-node", "larry-help").stdout
    assert "coordinator" in logs and "worker" in logs, logs
    cluster.kubectl("delete", "namespace", "real-node", "--wait=true", timeout=RUN_TIMEOUT + 30)
