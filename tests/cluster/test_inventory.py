"""`larry inventory` against the session cluster's real API server: real objects (kwok runs their
pods on a fake node) become catalog assets with their lineage, owners, health and images,
through the worker protocol into the catalog's store on a real redis-server; no byte of a
Secret's data reaches the output or Redis; with the identity a clusterRead Larry's workers get
(the stack's ClusterRole) only Secrets are skipped, in one line.
"""
from __future__ import annotations

import base64
import json
import os
import subprocess
import sys

import yaml

from components.larry import CLUSTER_READ_RULES
from runtime.agent.protocol import is_protocol_line, parse_line
from runtime.catalog.assets import asset_id
from runtime.catalog.store import CatalogStore
from runtime.coordination.keys import Keyspace
from tests.support.project import ROOT
from tests.support.waiting import wait_for

NS = "inventory-test"
SOURCE = "k3s-cluster"
SECRET_VALUE = "inventory-secret-9f3a1c7e"
HELM_PAYLOAD = "helm-release-payload-7b2e4d11"
READY_TIMEOUT = 90
LARRY = [sys.executable, "-c", "import sys; from runtime.cli import main; sys.exit(main())"]


def _pinned(node: str, image: str, labels: dict, **spec) -> dict:
    """A pod template on the fake ``node``."""
    return {"metadata": {"labels": labels}, "spec": {"nodeSelector": {"kubernetes.io/hostname": node},
                                                    "containers": [{"name": "main", "image": image}], **spec}}


def _objects(node: str) -> list[dict]:
    helm = {"owner": "helm", "name": "web", "status": "deployed", "version": "2"}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "web", "namespace": NS, "labels": {"app": "web", "team": "inventory"},
                      "annotations": {"meta.helm.sh/release-name": "web", "meta.helm.sh/release-namespace": NS}},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                  "template": _pinned(node, "registry.local/inv/web:1.2", {"app": "web"})}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": NS},
         "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}},
        {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "batch", "namespace": NS},
         "spec": {"backoffLimit": 0, "template": _pinned(node, "registry.local/inv/batch:0.1", {"app": "batch"},
                                                         restartPolicy="Never")}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "db", "namespace": NS},
         "spec": {"clusterIP": "None", "selector": {"app": "db"}, "ports": [{"port": 6379}]}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db", "namespace": NS},
         "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                  "template": _pinned(node, "registry.local/inv/db:7", {"app": "db"})}},
        # Applied with kubectl apply: its last-applied-configuration annotation holds the data too.
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": NS},
         "stringData": {"password": SECRET_VALUE}},
        {"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
         "metadata": {"name": "sh.helm.release.v1.web.v1", "namespace": NS,
                      "labels": {**helm, "status": "superseded", "version": "1"}},
         "stringData": {"release": HELM_PAYLOAD}},
        {"apiVersion": "v1", "kind": "Secret", "type": "helm.sh/release.v1",
         "metadata": {"name": "sh.helm.release.v1.web.v2", "namespace": NS, "labels": helm},
         "stringData": {"release": HELM_PAYLOAD}},
    ]


def _ready(cluster) -> None:
    def pods_and_endpoints():
        items = cluster.get("pods,endpointslices", "-n", NS)["items"]  # one kubectl per look
        phases = {p["metadata"]["labels"].get("app"): p["status"].get("phase") for p in items if p["kind"] == "Pod"}
        ready = any(e.get("conditions", {}).get("ready") for s in items if s["kind"] == "EndpointSlice"
                    and s["metadata"].get("labels", {}).get("kubernetes.io/service-name") == "web"
                    for e in s.get("endpoints") or [])
        # The Job's pod running is enough: its completion takes kwok and the Job controller a
        # minute or more on a busy machine, and a running Job is healthy too.
        return phases.get("web") == phases.get("db") == "Running" and phases.get("batch") in ("Running", "Succeeded") \
            and ready
    wait_for(pods_and_endpoints, "kwok to run the web, db and batch pods and the web Service to get a ready endpoint",
             timeout=READY_TIMEOUT, interval=0.5)


def _inventory(cluster, kubeconfig) -> subprocess.CompletedProcess:
    env = {**os.environ, "KUBECONFIG": str(kubeconfig),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(cluster.inside([*LARRY, "inventory"]), env=env, cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def _redis_bytes(r) -> str:
    """Every key and value in the server, as one text."""
    parts = []
    for key in r.scan_iter(count=1000):
        kind = r.type(key)
        value = {"string": lambda: r.get(key), "hash": lambda: r.hgetall(key), "list": lambda: r.lrange(key, 0, -1),
                 "set": lambda: r.smembers(key), "zset": lambda: r.zrange(key, 0, -1),
                 "stream": lambda: r.xrange(key)}[kind]()
        parts.append(f"{key} {value!r}")
    return "\n".join(parts)


def test_inventory_registers_the_clusters_objects_with_lineage_and_never_secret_data(cluster, r, tmp_path):
    node = next(n["metadata"]["name"] for n in cluster.get("nodes")["items"]
                if n["metadata"].get("annotations", {}).get("kwok.x-k8s.io/node") == "fake")
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": _objects(node)}))
    _ready(cluster)

    done = _inventory(cluster, cluster.kubeconfig)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr
    secrets = [SECRET_VALUE, HELM_PAYLOAD] + [base64.b64encode(v.encode()).decode() for v in (SECRET_VALUE, HELM_PAYLOAD)]
    assert not [s for s in secrets if s in done.stdout + done.stderr], "Secret data in the inventory's output"

    # What a worker does with its payload's lines: parse them, upsert the assets as its own.
    prefix = f"inv{os.getpid()}:"
    store = CatalogStore(r, Keyspace(prefix=prefix))
    reports = [parse_line(line) for line in done.stdout.splitlines() if is_protocol_line(line)]
    for report in reports:
        store.upsert(report.assets, "catalog-worker-01")
    assert reports[-1].findings["assets_discovered"] == store.count() > 0

    def one(type_: str, name: str, namespace: str = NS):
        record = store.get(asset_id(SOURCE, type_, namespace, name))
        assert record is not None, f"no {type_} {namespace}/{name} in the catalog"
        return record.asset

    def pod_of(app: str):
        pods = [rec.asset for rec in store.assets("POD") if rec.asset.namespace == NS
                and rec.asset.metadata["labels"].get("app") == app]
        assert len(pods) == 1, f"expected one pod of {app}, got {[p.name for p in pods]}"
        return pods[0]

    deployment, release = one("DEPLOYMENT", "web"), one("HELM_RELEASE", "web")
    assert deployment.health == "HEALTHY" and release.id in deployment.lineage
    assert "team=inventory" in deployment.tags
    assert {"label": "team", "name": "inventory"} in deployment.metadata["owners"]
    replica_sets = [rec.asset for rec in store.assets("REPLICASET") if rec.asset.namespace == NS]
    assert len(replica_sets) == 1 and replica_sets[0].lineage[0] == deployment.id
    assert {"kind": "Deployment", "name": "web"} in replica_sets[0].metadata["owners"]
    web = pod_of("web")
    image = one("CONTAINER_IMAGE", "registry.local/inv/web:1.2", "")
    assert web.health == "HEALTHY" and web.metadata["node"] == node
    assert web.lineage[0] == replica_sets[0].id and image.id in web.lineage and one("NODE", node, "").id in web.lineage
    assert image.metadata | {"digest": None} == {"registry": "registry.local", "repository": "inv/web", "tag": "1.2",
                                                 "digest": None}

    service = one("SERVICE", "web")
    assert service.health == "HEALTHY" and service.metadata["readyEndpoints"] == 1
    slices = [rec.asset for rec in store.assets("ENDPOINT_SLICE") if rec.asset.namespace == NS
              and service.id in rec.asset.lineage]
    assert len(slices) == 1 and web.id in slices[0].lineage and slices[0].health == "HEALTHY"

    job = one("JOB", "batch")
    assert job.health == "HEALTHY" and job.metadata["active"] + job.metadata["succeeded"] == 1
    assert pod_of("batch").lineage[0] == job.id and pod_of("batch").health == "HEALTHY"
    stateful = one("STATEFULSET", "db")
    assert stateful.health == "HEALTHY" and one("SERVICE", "db").id in stateful.lineage
    assert pod_of("db").lineage[0] == stateful.id

    assert release.health == "HEALTHY" and release.metadata["version"] == 2
    assert release.metadata["status"] == "deployed" and release.metadata["record"] == "sh.helm.release.v1.web.v2"
    assert one("SECRET", "creds").metadata["labels"] == {}
    assert not [rec for rec in store.assets("SECRET") if rec.asset.name.startswith("sh.helm.release")]
    assert one("NAMESPACE", NS, "").health == "HEALTHY"

    stored = _redis_bytes(r)
    assert prefix + "catalog:assets" in stored
    assert not [s for s in secrets if s in stored], "Secret data stored in Redis"

    # The identity a clusterRead Larry's workers get: the stack's ClusterRole, bound to a
    # ServiceAccount. Everything but Secrets is readable; Secrets are one skipped line.
    cluster.kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "reader", "namespace": NS}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "inventory-test-read"}, "rules": CLUSTER_READ_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "inventory-test-read"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "inventory-test-read"},
         "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": NS}]}]}))
    token = cluster.kubectl("create", "token", "reader", "-n", NS).stdout.strip()
    config = yaml.safe_load(cluster.kubeconfig.read_text())
    config["users"] = [{"name": "reader", "user": {"token": token}}]
    config["contexts"] = [{"name": "reader", "context": {"cluster": config["clusters"][0]["name"], "user": "reader"}}]
    config["current-context"] = "reader"
    (tmp_path / "reader.yaml").write_text(yaml.safe_dump(config))
    done = _inventory(cluster, tmp_path / "reader.yaml")
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr.splitlines() == ["larry inventory: skipped secrets.v1: forbidden to this identity (HTTP 403)"]
    assert not [s for s in secrets if s in done.stdout]
    cluster.kubectl("delete", "clusterrolebinding,clusterrole", "inventory-test-read")
    cluster.kubectl("delete", "namespace", NS, "--wait=false")
