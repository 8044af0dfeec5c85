"""The real Pulumi engine, offline: preview, up, idempotence, schema validity, destroy, an S3
state backend served by moto, and config mistakes reported as one line."""
from __future__ import annotations

import json

import boto3
import yaml
from moto.server import ThreadedMotoServer

from tests.engine.pulumi_cli import copy_project, engine_env, init_stack, pulumi, stack_document
from tests.support.manifests import validate_manifest


def _rendered_documents(render_dir):
    documents = []
    for path in sorted(render_dir.rglob("*.yaml")):
        documents += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return documents


# Render mode (no cluster: what CI previews and GitOps users apply). Both stacks go through
# `up`, a second `up` and `destroy` against a real API server in tests/cluster; here dev's
# rendered files, its outputs and its state are what is checked.
def test_dev_preview_up_again_validate_destroy(tmp_path):
    stack = "dev"
    project = copy_project(tmp_path / "project", {stack: stack_document(stack)})
    env = engine_env(f"file://{tmp_path / 'state'}")
    (tmp_path / "state").mkdir()
    init_stack(stack, project, env)

    preview = pulumi(["preview", "--stack", stack, "--diff"], project, env)
    assert "kubernetes:batch/v1:Job" in preview.stdout

    pulumi(["up", "--yes", "--skip-preview", "--stack", stack], project, env)
    # A second up changes nothing: --expect-no-changes fails the command otherwise.
    pulumi(["up", "--yes", "--expect-no-changes", "--stack", stack], project, env)

    documents = _rendered_documents(project / "rendered" / stack)
    jobs = [doc for _, doc in documents
            if doc["kind"] == "Job" and doc["metadata"]["labels"].get("app") == "larry-worker"]
    assert len(jobs) == 16
    problems = [f"{path.name}: {problem}" for path, doc in documents for problem in validate_manifest(doc)]
    assert problems == []

    outputs = json.loads(pulumi(["stack", "output", "--json", "--stack", stack], project, env).stdout)
    assert outputs["redisPassword"] == "[secret]"
    assert outputs["budget"]["allocatedTokens"] == 478_000
    password = json.loads(pulumi(["stack", "output", "redisPassword", "--json", "--show-secrets", "--stack", stack],
                                 project, env).stdout)
    assert len(password) == 32
    state = pulumi(["stack", "export", "--stack", stack], project, env).stdout
    assert password not in state, "the password must be encrypted in the state"

    pulumi(["destroy", "--yes", "--skip-preview", "--stack", stack], project, env)
    state = json.loads(pulumi(["stack", "export", "--stack", stack], project, env).stdout)
    left = [r["type"] for r in state["deployment"].get("resources") or [] if r["type"] != "pulumi:pulumi:Stack"]
    assert left == []


def test_dev_stack_on_an_s3_backend_served_by_moto(tmp_path, monkeypatch):
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        credentials = dict(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_REGION="us-east-1",
                           AWS_DEFAULT_REGION="us-east-1")
        for key, value in credentials.items():
            monkeypatch.setenv(key, value)
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="larry-state")
        backend = (f"s3://larry-state?endpoint={host}:{port}&disableSSL=true&s3ForcePathStyle=true"
                   f"&region=us-east-1")
        env = engine_env(backend, **credentials)
        project = copy_project(tmp_path / "project", {"dev": stack_document("dev")})
        init_stack("dev", project, env)
        pulumi(["up", "--yes", "--skip-preview", "--stack", "dev"], project, env)
        pulumi(["preview", "--expect-no-changes", "--stack", "dev"], project, env)
        keys = [o["Key"] for o in boto3.client("s3", endpoint_url=endpoint)
                .list_objects_v2(Bucket="larry-state").get("Contents", [])]
        assert any(key.endswith("stacks/larry/dev.json") for key in keys), keys
    finally:
        server.stop()


def test_config_mistake_fails_preview_with_one_line(tmp_path):
    document = stack_document("dev")
    document["config"]["larry:larrys"][2]["workers"][4]["node"] = "k3s-worker09"
    project = copy_project(tmp_path / "project", {"dev": document})
    env = engine_env(f"file://{tmp_path / 'state'}")
    (tmp_path / "state").mkdir()
    init_stack("dev", project, env)
    done = pulumi(["preview", "--stack", "dev"], project, env, check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "larry:larrys[2].workers[4].node: 'k3s-worker09' is not declared in larry:nodes" in output
    assert "Traceback" not in output
