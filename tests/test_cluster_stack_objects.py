"""scripts/cluster/stack_objects.py: the kwok fake Nodes `scripts/cluster.sh up` creates for a
stack, from the stack's own larry:nodes (the real loader), run as the script runs it."""
import json
import subprocess
import sys

import pytest
import yaml

from plan.loader import load_stack
from tests.engine.pulumi_cli import stack_document
from tests.support.cluster import REAL_NODE
from tests.support.project import ROOT

SCRIPT = ROOT / "scripts" / "cluster" / "stack_objects.py"


def run(stack: str, project: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), stack, project, REAL_NODE], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT)}, timeout=60)


@pytest.mark.parametrize("stack", ["dev", "cortex"])
def test_one_fake_node_per_stack_node_named_sized_and_labelled_as_k3s_does(stack):
    done = run(stack, str(ROOT))
    assert done.returncode == 0, done.stderr
    items = json.loads(done.stdout)["items"]
    nodes = {n["metadata"]["name"]: n for n in items if n["kind"] == "Node"}
    cfg = load_stack(stack, ROOT)
    planned = cfg.nodes
    assert set(nodes) == set(planned)
    for name, node in planned.items():
        fake = nodes[name]
        assert fake["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}
        assert (fake["status"]["capacity"]["cpu"], fake["status"]["capacity"]["memory"]) == (node.cpu, node.memory)
        labels = fake["metadata"]["labels"]
        is_server = labels.get("node-role.kubernetes.io/control-plane") == "true" == \
            labels.get("node-role.kubernetes.io/master")
        assert is_server == (node.role == "master"), name
        assert "taints" not in fake.get("spec", {}), "k3s taints no server by default"


def test_a_stack_that_does_not_load_is_one_line_and_nothing_on_stdout(tmp_path):
    done = run("nope", str(tmp_path))
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "nope" in done.stderr


@pytest.mark.parametrize("stack", ["dev", "cortex"])
def test_every_storage_class_the_stack_names_exists_with_k3s_default_beside_it(stack):
    done = run(stack, str(ROOT))
    assert done.returncode == 0, done.stderr
    classes = {c["metadata"]["name"]: c for c in json.loads(done.stdout)["items"] if c["kind"] == "StorageClass"}
    assert set(classes) == {"local-path"} | {larry.storage_class for larry in load_stack(stack, ROOT).larrys}
    defaults = [name for name, c in classes.items()
                if c["metadata"]["annotations"].get("storageclass.kubernetes.io/is-default-class") == "true"]
    assert defaults == ["local-path"], "exactly one default class, k3s's"
    assert {c["provisioner"] for c in classes.values()} == {"larry.local/host-path"}


def test_the_real_node_named_by_a_stack_is_not_made_a_fake_one(tmp_path):
    document = stack_document("dev")
    document["config"]["larry:nodes"][REAL_NODE] = {"role": "worker", "ip": "10.201.0.1", "cpu": "2", "memory": "8Gi"}
    (tmp_path / "Pulumi.real.yaml").write_text(yaml.safe_dump(document))
    done = run("real", str(tmp_path))
    assert done.returncode == 0, done.stderr
    nodes = {n["metadata"]["name"] for n in json.loads(done.stdout)["items"] if n["kind"] == "Node"}
    assert nodes == set(stack_document("dev")["config"]["larry:nodes"])
