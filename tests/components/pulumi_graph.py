"""Run the real ``__main__.py`` under ``pulumi.runtime.set_mocks`` and capture the resource graph.

No engine is involved: the mock monitor records every registration with its inputs exactly
as the Kubernetes provider would receive them (camelCase manifests, secrets still wrapped in
Pulumi's secret envelope). The program runs as in ``pulumi preview`` (the mode the policy
pack sees), and the mocked providers return no state but the generated password: nothing in
the program reads a Kubernetes object's outputs. Config reaches the program the way the engine passes it: each
``larry:*`` value as a string, structured values JSON-encoded. Used by the graph tests and by
bench/bench_program.py.
"""
from __future__ import annotations

import copy
import gc
import json
import runpy
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import pulumi
import yaml
from pulumi.runtime import rpc, settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from tests.support.project import ROOT  # noqa: E402

MAIN = ROOT / "__main__.py"
#: What the mocked RandomPassword returns; the tests look for it everywhere in the graph.
MOCK_PASSWORD = "Mock0Redis0Password0a1b2c3d4e5f6"

# Type tokens of the resources the program registers.
K = "kubernetes:"
JOB, DEPLOY, STS = f"{K}batch/v1:Job", f"{K}apps/v1:Deployment", f"{K}apps/v1:StatefulSet"
CM, PVC, SVC, SECRET = (f"{K}core/v1:{kind}" for kind in ("ConfigMap", "PersistentVolumeClaim", "Service", "Secret"))
NS, QUOTA, LIMITS = (f"{K}core/v1:{kind}" for kind in ("Namespace", "ResourceQuota", "LimitRange"))
NETPOL, PDB = f"{K}networking.k8s.io/v1:NetworkPolicy", f"{K}policy/v1:PodDisruptionBudget"
SM, RULE = f"{K}monitoring.coreos.com/v1:ServiceMonitor", f"{K}monitoring.coreos.com/v1:PrometheusRule"
RBAC = f"{K}rbac.authorization.k8s.io/v1:"


@dataclass(frozen=True)
class Registered:
    typ: str
    name: str
    inputs: dict[str, Any]

    @property
    def manifest(self) -> dict[str, Any]:
        """The Kubernetes object as it would be applied (secret envelopes removed)."""
        return plain(self.inputs)

    @property
    def kind(self) -> str:
        return self.inputs.get("kind", "")

    @property
    def metadata(self) -> dict[str, Any]:
        return self.manifest.get("metadata", {})


#: How a dynamic resource (components.password.GeneratedPassword) registers.
PASSWORD_TYPE = "pulumi-python:dynamic:Resource"


class GraphMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[Registered] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict]:
        self.resources.append(Registered(args.typ, args.name, args.inputs))
        if args.typ == PASSWORD_TYPE:
            return f"{args.name}-id", {"result": MOCK_PASSWORD}
        return f"{args.name}-id", {}

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        return {}


@dataclass
class Graph:
    resources: list[Registered]
    #: Wall and CPU time of the program run: __main__ and every registration it made.
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)

    def of(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == typ]

    def named(self, typ: str) -> dict[str, Registered]:
        """Resources of a type by their Kubernetes name (namespace/name when namespaced)."""
        found = {}
        for r in self.of(typ):
            meta = r.metadata
            key = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]
            assert key not in found, f"two {typ} objects named {key}"
            found[key] = r
        return found

    def types(self) -> Counter:
        return Counter(r.typ for r in self.resources)

    def kubernetes(self) -> list[Registered]:
        """Every Kubernetes object the provider would apply (not the provider itself)."""
        return [r for r in self.resources if r.typ.startswith("kubernetes:")]


def plain(value: Any) -> Any:
    """Inputs as JSON the provider would send: secrets unwrapped, whole numbers as integers
    (the RPC layer carries every number as a float)."""
    if rpc.is_rpc_secret(value):
        return plain(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def stack_values(stack: str) -> dict[str, Any]:
    """The ``larry:*`` config of a committed stack file (a deep copy the caller may edit)."""
    document = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())
    return copy.deepcopy(document["config"])


def fleet_values(larrys: int, workers: int) -> dict[str, Any]:
    """A generated fleet: the dev stack with its Larrys replaced by ``larrys`` copies of larry-03
    (each in a namespace of its own, three masters) carrying ``workers`` workers each, spread
    over the dev stack's four worker nodes, three chained tasks per worker."""
    values = stack_values("dev")
    template = next(larry for larry in values["larry:larrys"] if larry["id"] == "larry-03")
    worker_nodes = sorted(n for n, spec in values["larry:nodes"].items() if spec["role"] == "worker")
    masters = sorted(n for n, spec in values["larry:nodes"].items() if spec["role"] == "master")
    generated = []
    for i in range(larrys):
        larry = copy.deepcopy(template)
        larry_id = f"larry-{i:03d}"
        larry.update(id=larry_id, namespace=larry_id, node=masters[i % len(masters)], workerNodes=worker_nodes)
        for step in larry.get("rollback", {}).get("steps", ()):  # task ids are the stack's, once
            step["id"] = f"{larry_id}-{step['id']}"
        base = template["workers"][0]
        larry["workers"] = [{
            **copy.deepcopy(base), "name": f"{larry_id}-w{j:02d}", "node": worker_nodes[j % len(worker_nodes)],
            "tasks": [{"id": f"{larry_id}-w{j:02d}-t{k}", "title": f"task {k}",
                       **({"dependsOn": [f"{larry_id}-w{j:02d}-t{k - 1}"]} if k else {})} for k in range(3)],
        } for j in range(workers)]
        generated.append(larry)
    values["larry:larrys"] = generated
    return values


def stored_bytes(resource: Registered) -> int:
    """What the API server stores of an object, near enough: its manifest as compact JSON;
    for a ConfigMap, what its 1 MiB limit counts (every key and value of its data)."""
    manifest = resource.manifest
    if resource.typ == CM:
        return sum(len(key.encode()) + len(str(value).encode()) for key, value in manifest.get("data", {}).items())
    return len(json.dumps(manifest, separators=(",", ":")).encode())


def engine_config(values: Mapping[str, Any]) -> dict[str, str]:
    """Config as the engine hands it to the language host: strings, structured ones as JSON."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in values.items()}


def run_program(stack: str, values: Mapping[str, Any], mocks: pulumi.runtime.Mocks | None = None) -> Graph:
    """Run ``__main__.py`` for ``stack`` with ``values``; raises what the program raises."""
    mocks = mocks or GraphMocks()
    settings.ROOT.set(None)  # a fresh root Stack per run, so outputs never leak between runs
    pulumi.runtime.set_mocks(mocks, project="larry", stack=stack, preview=True)
    pulumi.runtime.set_all_config(engine_config(values))
    collecting = gc.isenabled()
    # The engine starts each program in a fresh process: leave nothing of earlier runs to collect.
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        _sync_await(run_pulumi_func(lambda: runpy.run_path(str(MAIN), run_name="__main__")))
    finally:
        if collecting:  # __main__ turns the collector off for its own process; this one goes on
            gc.enable()
    graph = Graph(getattr(mocks, "resources", []), seconds=time.perf_counter() - wall,
                  cpu_seconds=time.process_time() - cpu)
    for name, value in settings.get_root_resource().outputs.items():
        output = pulumi.Output.from_input(value)
        graph.outputs[name] = _sync_await(output.future())
        if _sync_await(output.is_secret()):
            graph.secret_outputs.add(name)
    return graph


def walk_strings(value: Any, path: str = "") -> Iterator[tuple[str, str, bool]]:
    """Every string in ``value`` as (path, text, inside_a_secret)."""
    yield from _walk(value, path, False)


def _walk(value: Any, path: str, secret: bool) -> Iterator[tuple[str, str, bool]]:
    if rpc.is_rpc_secret(value):
        yield from _walk(rpc.unwrap_rpc_secret(value), path, True)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}", secret)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _walk(item, f"{path}[{index}]", secret)
    elif isinstance(value, str):
        yield path, value, secret


# ---- reading pod specs

def hostnames(pod_spec):
    terms = pod_spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert len(terms) == 1 and len(terms[0]["matchExpressions"]) == 1
    expr = terms[0]["matchExpressions"][0]
    assert (expr["key"], expr["operator"]) == ("kubernetes.io/hostname", "In")
    return expr["values"]


def env_of(container):
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
