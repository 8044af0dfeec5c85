"""The local cluster's volume provisioner: k3s's local-path provisioner, reduced to what a
one-machine test cluster needs.

Every PersistentVolumeClaim of a StorageClass whose provisioner is ``PROVISIONER`` gets a
hostPath PersistentVolume of its own, pre-bound to it (``claimRef``), in a directory under the
cluster's run directory; a volume released by its claim is deleted with its directory. The
real kube-controller-manager does the binding, so claims, StatefulSet volume templates and
pods see what they would see on k3s with ``local-path``.

Guaranteed: one volume per claim (named from the claim's uid, so a retry never makes a second).
Not guaranteed: capacity is not enforced (hostPath), and a hostPath directory only exists on
this machine — fine for the fake nodes, which run nothing, and for the one real node, which is
this machine.

Usage (inside the cluster's network namespace): provisioner.py KUBECTL KUBECONFIG VOLUME_DIR
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

PROVISIONER = "larry.local/host-path"
#: A pass is made on every change the watches see, and at least this often: it bounds how late
#: a change a restarting watch missed is acted on. (Polling every second cost a kubectl
#: process per kind per second — most of a core on this machine — while nothing changed.)
RESYNC = 30.0
WATCHED = ("pvc", "pv", "storageclass")


class Cluster:
    def __init__(self, kubectl: str, kubeconfig: str):
        self.base = [kubectl, "--kubeconfig", kubeconfig]

    def items(self, *what: str) -> list[dict]:
        done = subprocess.run([*self.base, "get", *what, "-o", "json"], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(done.stderr.strip())
        return json.loads(done.stdout)["items"]

    def create(self, document: dict) -> None:
        subprocess.run([*self.base, "create", "-f", "-"], input=json.dumps(document), text=True,
                       capture_output=True, timeout=30, check=True)

    def delete_volume(self, name: str) -> None:
        subprocess.run([*self.base, "delete", "pv", name, "--wait=false"], capture_output=True, timeout=30, check=True)


def volume_for(claim: dict, directory: Path) -> dict:
    meta, spec = claim["metadata"], claim["spec"]
    path = directory / meta["uid"]
    path.mkdir(parents=True, exist_ok=True)
    # Pods run as non-root users the provisioner cannot know (fsGroup is not applied to
    # hostPath): world-writable, as k3s's local-path provisioner makes its directories.
    path.chmod(0o777)
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"pvc-{meta['uid']}", "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec["accessModes"],
            "storageClassName": spec["storageClassName"],
            "persistentVolumeReclaimPolicy": "Delete",
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
                         "name": meta["name"], "uid": meta["uid"]},
            "hostPath": {"path": str(path), "type": "Directory"},
        },
    }


def tend(cluster: Cluster, directory: Path) -> None:
    ours = {sc["metadata"]["name"] for sc in cluster.items("storageclass") if sc.get("provisioner") == PROVISIONER}
    volumes = cluster.items("pv")
    have = {pv["metadata"]["name"] for pv in volumes}
    for claim in cluster.items("pvc", "--all-namespaces"):
        if (claim["spec"].get("storageClassName") in ours and not claim["spec"].get("volumeName")
                and claim.get("status", {}).get("phase") == "Pending"
                and f"pvc-{claim['metadata']['uid']}" not in have):
            cluster.create(volume_for(claim, directory))
            print(f"provisioned pvc-{claim['metadata']['uid']} for {claim['metadata']['namespace']}/"
                  f"{claim['metadata']['name']}", flush=True)
    for pv in volumes:
        annotations = pv["metadata"].get("annotations", {})
        if annotations.get("pv.kubernetes.io/provisioned-by") == PROVISIONER and pv.get("status", {}).get("phase") == "Released":
            cluster.delete_volume(pv["metadata"]["name"])
            shutil.rmtree(directory / pv["metadata"]["name"].removeprefix("pvc-"), ignore_errors=True)
            print(f"deleted {pv['metadata']['name']} (released)", flush=True)


def watch(cluster: Cluster, kind: str, changed: threading.Event) -> None:
    """Sets ``changed`` on every event of ``kind``; a watch the API server ends is restarted.
    The kubectl processes are in the provisioner's process group and stop with it."""
    while True:
        with subprocess.Popen([*cluster.base, "get", kind, "--all-namespaces", "--watch", "-o", "name"],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as process:
            for _ in process.stdout:
                changed.set()
        changed.set()
        time.sleep(1)


def main(kubectl: str, kubeconfig: str, volume_dir: str) -> None:
    cluster, directory = Cluster(kubectl, kubeconfig), Path(volume_dir)
    changed = threading.Event()
    for kind in WATCHED:
        threading.Thread(target=watch, args=(cluster, kind, changed), daemon=True).start()
    while True:
        changed.wait(RESYNC)
        # Cleared before the pass: a change made during it makes another.
        changed.clear()
        try:
            tend(cluster, directory)
        except (RuntimeError, subprocess.SubprocessError, KeyError, json.JSONDecodeError) as e:
            # The API server restarting or an object changing under us: the next pass retries.
            print(f"provisioner: {e}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: provisioner.py KUBECTL KUBECONFIG VOLUME_DIR")
    main(*sys.argv[1:])
