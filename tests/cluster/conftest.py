"""A real Kubernetes cluster for the tests: `scripts/cluster.sh up` in a network namespace and a
run directory of the test session's own, so a cluster a user has up is left alone; stopped
with `down` at the end of the session, which must leave nothing behind.

The cluster is part of the normal run: a host without what it needs (root, the binaries
`make setup` builds) fails the tests, saying what is missing.
"""
from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.project import ROOT

SCRIPT = ROOT / "scripts" / "cluster.sh"
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

    def kubectl(self, *args: str, check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess:
        done = subprocess.run(self.inside([str(self.bin / "kubectl"), "--kubeconfig", str(self.kubeconfig), *args]),
                              capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            pytest.fail(f"kubectl {' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)


def _script(args: list[str], env: dict[str, str], timeout: int) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("the cluster tests need root (network namespaces, the kubelet): run them as root")
    run_dir = tmp_path_factory.mktemp("cluster") / "run"
    env = {**os.environ, "LARRY_CLUSTER_NETNS": f"larry-test-{os.getpid()}", "LARRY_CLUSTER_DIR": str(run_dir)}
    done = _script(["up", "--stack", "dev"], env, UP_TIMEOUT)
    if done.returncode != 0:
        pytest.fail(f"scripts/cluster.sh up failed (run `make setup` to build the cluster binaries):\n"
                    f"{done.stderr[-4000:]}")
    exports = dict(line.removeprefix("export ").split("=", 1) for line in done.stdout.splitlines()
                   if line.startswith("export "))
    bin_dir = Path(exports["PATH"].split(":", 1)[0])
    try:
        yield Cluster(env["LARRY_CLUSTER_NETNS"], run_dir / "kubeconfig", bin_dir)
    finally:
        down = _script(["down"], env, DOWN_TIMEOUT)
        assert down.returncode == 0, f"scripts/cluster.sh down failed: {down.stderr[-4000:]}"
        assert not Path(f"/run/netns/{env['LARRY_CLUSTER_NETNS']}").exists()
