"""`larry inventory`'s walk on plain objects (lineage, owners, health, Helm records, bounds) and its
reading of bad API answers: one line each, never a traceback, nothing reported."""
from __future__ import annotations

import json
import os
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import yaml

from runtime.catalog.assets import asset_id
from runtime.inventory.reader import KINDS, ReadError, api_client, parse_list, read
from runtime.inventory.walk import assets_of, image_parts
from tests.runtime.catalog.service import LARRY
from tests.support.project import ROOT

SRC = "k3s-cluster"


def _obj(name, namespace="ns", labels=None, owner=None, **fields):
    meta = {"name": name, "namespace": namespace, "labels": labels or {}}
    if owner:
        meta["ownerReferences"] = [{"kind": owner[0], "name": owner[1]}]
    return {"metadata": meta, **fields}


def _id(type_, name, namespace="ns"):
    return asset_id(SRC, type_, namespace, name)


def test_lineage_runs_deployment_replicaset_pod_image_and_service_slice_pod():
    objects = {
        "DEPLOYMENT": [_obj("web", labels={"team": "a"}, spec={"replicas": 2}, status={"availableReplicas": 1})],
        "REPLICASET": [_obj("web-1", owner=("Deployment", "web"), spec={"replicas": 2}, status={"readyReplicas": 2})],
        "POD": [_obj("web-1-x", owner=("ReplicaSet", "web-1"),
                     spec={"nodeName": "n1", "containers": [{"name": "c", "image": "ghcr.io/o/web:1.0"}]},
                     status={"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}],
                             "containerStatuses": [{"name": "c", "imageID": "ghcr.io/o/web@sha256:ab"}]}),
                _obj("job-x", owner=("Job", "job"), spec={"containers": [{"name": "c", "image": "busybox"}]},
                     status={"phase": "Pending"})],
        "SERVICE": [_obj("web", spec={"selector": {"app": "web"}}), _obj("idle", spec={"selector": {"app": "x"}})],
        "ENDPOINT_SLICE": [_obj("web-s", labels={"kubernetes.io/service-name": "web"},
                                endpoints=[{"conditions": {"ready": True},
                                            "targetRef": {"kind": "Pod", "name": "web-1-x"}}])],
        "JOB": [_obj("job", status={"conditions": [{"type": "Failed", "status": "True"}]})],
    }
    assets, problems = assets_of(objects)
    by = {a.id: a for a in assets}
    assert problems == []
    pod, image = by[_id("POD", "web-1-x")], by[_id("CONTAINER_IMAGE", "ghcr.io/o/web:1.0", "")]
    assert by[_id("REPLICASET", "web-1")].lineage == (_id("DEPLOYMENT", "web"),)
    assert pod.lineage == (_id("REPLICASET", "web-1"), image.id, _id("NODE", "n1", ""))
    assert image.metadata == {"registry": "ghcr.io", "repository": "o/web", "tag": "1.0", "digest": "sha256:ab"}
    assert by[_id("ENDPOINT_SLICE", "web-s")].lineage == (_id("SERVICE", "web"), pod.id)
    assert by[_id("POD", "job-x")].lineage[0] == _id("JOB", "job")
    health = {(a.type, a.name): a.health for a in assets}
    assert health == {("DEPLOYMENT", "web"): "DEGRADED", ("REPLICASET", "web-1"): "HEALTHY",
                      ("POD", "web-1-x"): "HEALTHY", ("POD", "job-x"): "DEGRADED", ("SERVICE", "web"): "HEALTHY",
                      ("SERVICE", "idle"): "UNHEALTHY", ("ENDPOINT_SLICE", "web-s"): "HEALTHY",
                      ("JOB", "job"): "UNHEALTHY", ("CONTAINER_IMAGE", "ghcr.io/o/web:1.0"): "UNKNOWN",
                      ("CONTAINER_IMAGE", "busybox"): "UNKNOWN"}
    assert {"label": "team", "name": "a"} in by[_id("DEPLOYMENT", "web")].metadata["owners"]
    assert {"kind": "Deployment", "name": "web"} in by[_id("REPLICASET", "web-1")].metadata["owners"]


def test_helm_records_make_one_release_from_the_newest_and_secrets_keep_labels_only():
    helm = {"owner": "helm", "name": "web"}
    objects = {"SECRET": [_obj("sh.helm.release.v1.web.v9", labels={**helm, "version": "9", "status": "failed"}),
                          _obj("sh.helm.release.v1.web.v10", labels={**helm, "version": "10", "status": "deployed"}),
                          _obj("creds")],
               "DEPLOYMENT": [{"metadata": {"name": "web", "namespace": "ns",
                                            "annotations": {"meta.helm.sh/release-name": "web"}}}]}
    assets, _ = assets_of(objects)
    by = {a.id: a for a in assets}
    release = by[_id("HELM_RELEASE", "web")]
    assert release.health == "HEALTHY" and release.metadata["version"] == 10
    assert release.id in by[_id("DEPLOYMENT", "web")].lineage
    assert sorted(a.type for a in assets) == ["DEPLOYMENT", "HELM_RELEASE", "SECRET"]


def test_an_object_that_makes_no_valid_asset_is_one_line_and_the_rest_is_kept():
    objects = {"NODE": [_obj("n" * 300, ""), _obj("ok", "")],
               "DEPLOYMENT": [_obj("bad", spec={"replicas": "two"}, status={"availableReplicas": 1})]}
    assets, problems = assets_of(objects)
    assert [a.name for a in assets] == ["ok"]
    assert len(problems) == 2 and all("\n" not in p for p in problems)
    assert "deployment ns/bad" in problems[1]


def test_image_references():
    assert image_parts("redis:7") == ("docker.io", "redis", "7", None)
    assert image_parts("localhost:5000/a/b") == ("localhost:5000", "a/b", "latest", None)
    assert image_parts("ghcr.io/a@sha256:0f") == ("ghcr.io", "a", "", "sha256:0f")


SECRETS = next(k for k in KINDS if k.resource == "secrets")
DEPLOYMENTS = next(k for k in KINDS if k.resource == "deployments")


def test_a_metadata_only_list_keeps_no_data_annotations_or_managed_fields():
    body = json.dumps({"metadata": {}, "items": [{"metadata": {
        "name": "s", "namespace": "ns", "labels": {"a": "b"}, "annotations": {"last-applied": "secret-bytes"},
        "managedFields": [{"fieldsV1": {"f:data": {"f:password": {}}}}]}, "data": {"password": "c2VjcmV0"}}]})
    page = parse_list(SECRETS, body)
    assert page["items"] == [{"metadata": {"name": "s", "namespace": "ns", "labels": {"a": "b"}}}]


@pytest.mark.parametrize("body, expected", [
    (b"<html>proxy error</html>", "GET /apis/apps/v1/deployments: expected a JSON list"),
    (b'{"kind": "Status"}', "GET /apis/apps/v1/deployments: expected a JSON object with an 'items' list"),
    (b'{"items": [{"metadata": {}}]}', "GET /apis/apps/v1/deployments: items[0]: expected an object with metadata.name"),
])
def test_bad_list_answers_are_one_line(body, expected):
    with pytest.raises(ReadError) as error:
        parse_list(DEPLOYMENTS, body)
    assert str(error.value).startswith(expected) and "\n" not in str(error.value)


class _API(BaseHTTPRequestHandler):
    """An API server answering 403 for secrets, 404 for ingresses, empty lists for the rest, and
    not JSON for deployments once ``garbage`` is set."""

    garbage = False

    def do_GET(self):
        path = self.path.split("?")[0]
        answers = {"/api/v1/secrets": (403, b"{}"), "/apis/networking.k8s.io/v1/ingresses": (404, b"{}"),
                   **({"/apis/apps/v1/deployments": (200, b"not json")} if self.garbage else {})}
        status, body = answers.get(path, (200, b'{"metadata": {}, "items": []}'))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _env(tmp_path) -> dict[str, str]:
    """No cluster configuration at all: no $KUBECONFIG, not in a pod, an empty HOME."""
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _run(tmp_path, server: str | None, *extra: str) -> subprocess.CompletedProcess:
    env = _env(tmp_path)
    if server:
        config = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
                  "clusters": [{"name": "k", "cluster": {"server": server}}],
                  "users": [{"name": "u", "user": {"token": "t"}}],
                  "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]}
        (tmp_path / "kubeconfig").write_text(yaml.safe_dump(config))
        env["KUBECONFIG"] = str(tmp_path / "kubeconfig")
    return subprocess.run([*LARRY, "inventory", *extra], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_bad_api_answers_and_missing_clusters_are_one_line_and_report_nothing(tmp_path):
    server = HTTPServer(("127.0.0.1", 0), _API)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        done = _run(tmp_path, f"http://127.0.0.1:{server.server_port}")
        assert done.returncode == 0, done.stderr
        assert done.stderr.splitlines() == [
            "larry inventory: skipped secrets.v1: forbidden to this identity (HTTP 403)",
            "larry inventory: skipped ingresses.networking.k8s.io/v1: not served by this API server (HTTP 404)"]
        assert '"assets_discovered":0' in done.stdout
        _API.garbage = True
        done = _run(tmp_path, f"http://127.0.0.1:{server.server_port}")
    finally:
        server.shutdown()
        server.server_close()
    assert done.returncode == 1 and done.stdout == "" and done.stderr.splitlines() == [
        "larry inventory: GET /apis/apps/v1/deployments: expected a JSON list, got b'not json' "
        "(Expecting value: line 1 column 1 (char 0))"]

    with pytest.raises(ReadError) as error:  # shut down: nothing listens
        read(api_client(str(tmp_path / "kubeconfig")))
    assert "Connection refused" in str(error.value) and "\n" not in str(error.value)

    done = _run(tmp_path, None)
    assert done.returncode == 2 and done.stderr.startswith("larry inventory: no cluster to read") and done.stdout == ""


def test_or_simulate_plays_the_simulated_payload_only_without_any_cluster(tmp_path):
    task = {"LARRY_TASK_ID": "t1", "LARRY_WORKER_ID": "catalog-worker-01", "LARRY_TOKEN_BUDGET": "1000",
            "LARRY_TASK_MINUTES": "0.001"}
    done = subprocess.run([*LARRY, "inventory", "--or-simulate", "--speed", "1000"], cwd=ROOT,
                          env=_env(tmp_path) | task, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and '"assets_discovered"' in done.stdout and "simulated" in done.stderr
