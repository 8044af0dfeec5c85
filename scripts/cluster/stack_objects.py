"""Prints, as a Kubernetes ``v1/List`` in JSON, the cluster-scoped objects a stack expects of
the k3s cluster it runs on, for `scripts/cluster.sh up` to create:

* one kwok fake Node per node of the stack's ``larry:nodes``: named and sized (cpu, memory) as
  the stack says, with the labels a k3s node carries, and on ``role: master`` the role labels
  k3s sets on its servers (``node-role.kubernetes.io/control-plane`` and ``.../master``, both
  ``"true"``);
* StorageClasses: k3s's default ``local-path``, and the classes its Larrys name (``larry:storageClass``; on a
  real cluster Longhorn's), both served by the local cluster's provisioner
  (``scripts/cluster/provisioner.py``).

k3s taints no server by default (a taint comes only from ``--node-taint``), so no taint is
added here. The stack's node ``ip`` is not used: kwok gives every fake node an address of the
cluster's namespace, so nothing the cluster does can reach an address outside it.

A node named as the cluster's real node (``REAL_NODE``, the kubelet scripts/cluster.sh runs)
is that node, not a fake one: a stack sized for the real node names it in ``larry:nodes``.

Usage: stack_objects.py STACK PROJECT_DIR REAL_NODE. A stack mistake prints one line per
problem and exits 2; nothing is printed on stdout then.
"""

import json
import sys
from pathlib import Path

from plan.loader import ConfigError, load_stack

sys.path.insert(0, str(Path(__file__).parent))
from provisioner import PROVISIONER  # noqa: E402

#: The annotation kwok is told to manage (scripts/cluster.sh starts it with this selector).
KWOK_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}
#: What k3s puts on its servers (pkg/server: ControlPlaneRoleLabelKey, MasterRoleLabelKey).
SERVER_LABELS = {"node-role.kubernetes.io/control-plane": "true", "node-role.kubernetes.io/master": "true"}
MAX_PODS = "110"  # the kubelet's default, which k3s keeps
#: k3s's default StorageClass (its bundled local-path provisioner).
K3S_STORAGE_CLASS = "local-path"


def node_object(name: str, role: str, cpu: str, memory: str) -> dict:
    labels = {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "k3s",
        "type": "kwok",
    }
    if role == "master":
        labels.update(SERVER_LABELS)
    resources = {"cpu": cpu, "memory": memory, "pods": MAX_PODS}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels, "annotations": dict(KWOK_ANNOTATION)},
        # kwok's node-initialize stage fills in the conditions, addresses and nodeInfo.
        "status": {"capacity": resources, "allocatable": resources},
    }


def storage_class(name: str, default: bool) -> dict:
    annotations = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
    return {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name, "annotations": annotations},
        "provisioner": PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print("usage: stack_objects.py STACK PROJECT_DIR REAL_NODE", file=sys.stderr)
        return 2
    stack, project, real_node = argv[1:]
    try:
        cfg = load_stack(stack, project)
    except ConfigError as err:
        for problem in err.problems:
            print(problem, file=sys.stderr)
        return 2
    except OSError as err:
        print(f"stack {stack}: {err.strerror}: {err.filename}", file=sys.stderr)
        return 2
    items = [node_object(n.name, n.role, n.cpu, n.memory) for n in cfg.nodes.values() if n.name != real_node]
    items += [storage_class(name, name == K3S_STORAGE_CLASS) for name in sorted({K3S_STORAGE_CLASS, *(larry.storage_class for larry in cfg.larrys)})]
    json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
