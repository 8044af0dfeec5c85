"""A real Kubernetes cluster from the project's own `scripts/cluster.sh`, for the cluster tests
and bench/bench_cluster.py: in a network namespace and a run directory of the caller's own, so
a cluster a user has up is left alone; `down` at the end must leave nothing behind. And a
stack deployed to it through the real engine (:class:`Deployed`).
"""
from __future__ import annotations

import json
import os
import subprocess
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from plan.loader import load_stack
from tests.engine.pulumi_cli import TIMEOUT, copy_project, engine_env, stack_document
from tests.support.project import ROOT

SCRIPT = ROOT / "scripts" / "cluster.sh"
#: What scripts/cluster.sh and scripts/images.sh name: the real node (a kubelet with containerd),
#: the node address the API server advertises, and the Redis image imported into the node.
REAL_NODE = "larry-node"
NODE_IP = "10.201.0.1"
REDIS_IMAGE = "localhost/larry-redis:7-bookworm"
UP_TIMEOUT = 300
DOWN_TIMEOUT = 180


@dataclass(frozen=True)
class Cluster:
    netns: str
    kubeconfig: Path
    bin: Path

    def env(self, base: dict[str, str]) -> dict[str, str]:
        return {**base, "KUBECONFIG": str(self.kubeconfig), "PATH": f"{self.bin}:{base['PATH']}"}

    def inside(self, argv: list[str]) -> list[str]:
        """``argv`` run inside the cluster's network namespace, where its addresses live."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def kubectl(self, *args: str, check: bool = True, timeout: int = 120,
                input: str | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(self.inside([str(self.bin / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]),
                              capture_output=True, text=True, timeout=timeout, input=input)
        if check and done.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    def warnings(self, last: int = 40) -> str:
        """The cluster's newest warning events and its pods not running: why an await timed out."""
        events = self.kubectl("get", "events", "-A", "--field-selector", "type=Warning",
                              "--sort-by=.lastTimestamp", check=False).stdout.splitlines()
        stuck = self.kubectl("get", "pods", "-A", "--field-selector",
                             "status.phase!=Running,status.phase!=Succeeded", check=False).stdout
        return "\n".join(events[:1] + events[1:][-last:]) + "\n--- pods not running\n" + stuck


def _script(args: list[str], env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)


@contextmanager
def local_cluster(run_dir: Path, netns: str, stack: str = "dev") -> Iterator[Cluster]:
    """A cluster with ``stack``'s nodes, up for the ``with`` block; fails saying what is missing."""
    if os.geteuid() != 0:
        pytest.fail("a local cluster needs root (network namespaces, the kubelet): run as root")
    env = {**os.environ, "LARRY_CLUSTER_NETNS": netns, "LARRY_CLUSTER_DIR": str(run_dir)}
    done = _script(["up", "--stack", stack], env, UP_TIMEOUT)
    if done.returncode != 0:
        pytest.fail(f"scripts/cluster.sh up failed (`make test` builds the cluster binaries first):\n"
                    f"{done.stderr[-4000:]}")
    exports = dict(line.removeprefix("export ").split("=", 1) for line in done.stdout.splitlines()
                   if line.startswith("export "))
    try:
        yield Cluster(netns, run_dir / "kubeconfig", Path(exports["PATH"].split(":", 1)[0]))
    finally:
        down = _script(["down"], env, DOWN_TIMEOUT)
        assert down.returncode == 0, f"scripts/cluster.sh down failed: {down.stderr[-4000:]}"
        assert not Path(f"/run/netns/{netns}").exists(), f"netns {netns} left after down"


class Deployed:
    """One stack's project copy, pointed at the cluster, driven with `pulumi` inside its netns."""

    def __init__(self, tmp_path: Path, cluster, stack: str, document: dict | None = None):
        self.cluster, self.stack = cluster, stack
        document = document or stack_document(stack)
        document["config"]["larry:cluster"] = {"kubeconfig": str(cluster.kubeconfig)}
        self.project = copy_project(tmp_path / "project", {stack: document})
        (tmp_path / "state").mkdir()
        self.env = cluster.env(engine_env(f"file://{tmp_path / 'state'}"))
        self.pulumi("stack", "select", "--create", stack)
        self.plan = load_stack(stack, self.project)

    def pulumi(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = self.cluster.inside(["pulumi", *args, "--non-interactive"])
        done = subprocess.run(argv, cwd=self.project, env=self.env, capture_output=True, text=True, timeout=TIMEOUT)
        if check and done.returncode != 0:
            # The engine prints why a resource failed in its Diagnostics section, before the
            # outputs: a tail of stdout alone may miss it.
            diagnostics = done.stdout[done.stdout.find("Diagnostics:"):][:6000] if "Diagnostics:" in done.stdout else ""
            pytest.fail(f"`pulumi {' '.join(args)}` exited {done.returncode}\n--- diagnostics\n{diagnostics}"
                        f"\n--- stdout\n{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}"
                        f"\n--- cluster\n{self.cluster.warnings()}")
        return done

    def up(self, *extra: str) -> subprocess.CompletedProcess:
        return self.pulumi("up", "--yes", "--skip-preview", "--stack", self.stack, *extra)

    def edit(self, change) -> None:
        path = self.project / f"Pulumi.{self.stack}.yaml"
        document = yaml.safe_load(path.read_text())
        change(document["config"])
        path.write_text(yaml.safe_dump(document, sort_keys=False))

    def kubernetes_resources(self) -> list[dict]:
        state = json.loads(self.pulumi("stack", "export", "--stack", self.stack).stdout)
        return [r for r in state["deployment"].get("resources") or []
                if r["type"].startswith("kubernetes:") and not r["type"].startswith("pulumi:providers")]
