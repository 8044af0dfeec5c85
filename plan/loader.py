"""Loading and validating a stack's ``larry:*`` config: from a stack file, a rendered plan
document, or the values the Pulumi engine hands the program.

Structure and references are checked before any resource is created. Every mistake becomes
one line naming the source, the key path and what was expected, e.g.
``Pulumi.dev.yaml: larry:larrys[2].workers[4].node: 'k3s-worker09' is not declared in
larry:nodes``; all mistakes of a stack are reported together in one :class:`ConfigError`.
"""
from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

import yaml

from plan.model import (
    DEFAULT_PRIORITY,
    DEFAULT_REDIS_EXPORTER_IMAGE,
    DEFAULT_REDIS_IMAGE,
    DEFAULT_RESERVE_TRIGGER,
    DEFAULT_RUNTIME_IMAGE,
    DEFAULT_STORAGE_CLASS,
    DEFAULT_UTILISATION_TARGET,
    PRIORITIES,
    PROJECT,
    Budget,
    Channels,
    Cluster,
    Larry,
    Master,
    MetaCoordinator,
    Node,
    Observability,
    Redis,
    StackConfig,
    Task,
    Worker,
    WorkerType,
)
from plan.quantities import ResourceList, Resources, parse_cpu, parse_memory

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # RFC 1123 label
_TASK_ID = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


class ConfigError(Exception):
    """A stack configuration mistake: one line per problem, no traceback wanted."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("\n".join(problems))


#: The stack config keys this project reads, without the ``larry:`` prefix.
CONFIG_KEYS = (
    "executionWindowMinutes", "budget", "nodes", "redis", "larrys", "workerTypes",
    "channels", "observability", "cluster", "runtimeImage", "storageClass",
)


class _Reader:
    """Walks raw config with key paths, collecting every problem instead of stopping."""

    def __init__(self) -> None:
        self.problems: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(f"{path}: {message}")

    def mapping(self, value: Any, path: str) -> Mapping[str, Any] | None:
        if isinstance(value, Mapping):
            return value
        self.fail(path, f"expected a mapping, got {_describe(value)}")
        return None

    def get(self, parent: Mapping[str, Any], key: str, path: str, kind: str,
            default: Any = ..., allowed: Iterable[str] = ()) -> Any:
        """Read ``parent[key]`` as ``kind``; ``...`` default means required."""
        full = f"{path}.{key}" if path else key
        if key not in parent or parent[key] is None:
            if default is ...:
                self.fail(full, f"required key is missing (expected {_KIND_TEXT[kind]})")
            return None if default is ... else default
        value = parent[key]
        checked = _CHECKS[kind](value)
        if checked is None:
            self.fail(full, f"expected {_KIND_TEXT[kind]}, got {_describe(value)}")
            return None
        allowed = tuple(allowed)
        if allowed and checked not in allowed:
            self.fail(full, f"{checked!r} is not one of {', '.join(allowed)}")
            return None
        return checked

    def quantity(self, parent: Mapping[str, Any], key: str, path: str, parse: Callable[[str], int],
                 what: str, default: Any = ...) -> str | None:
        text = self.get(parent, key, path, "quantity", default)
        if text is None:
            return None
        try:
            if parse(text) <= 0:
                raise ValueError(text)
        except ValueError:
            self.fail(f"{path}.{key}", f"{text!r} is not a valid {what} quantity (expected e.g. {_EXAMPLE[what]})")
            return None
        return text


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"boolean {value}"
    if isinstance(value, (int, float)):
        return f"number {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return value


def _share(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        return None
    return float(value)


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "positive": _positive_int,
    "port": lambda v: v if _positive_int(v) and v < 65536 else None,
    "string": lambda v: v if isinstance(v, str) and v.strip() else None,
    "name": lambda v: v if isinstance(v, str) and _NAME.match(v) and len(v) <= 63 else None,
    "task_id": lambda v: v if isinstance(v, str) and _TASK_ID.match(v) else None,
    "bool": lambda v: v if isinstance(v, bool) else None,
    "list": lambda v: v if isinstance(v, list) else None,
    "mapping": lambda v: v if isinstance(v, Mapping) else None,
    "quantity": lambda v: str(v) if isinstance(v, (str, int)) and not isinstance(v, bool) else None,
    "share": _share,
}
_KIND_TEXT = {
    "positive": "a positive integer",
    "port": "a port number (1-65535)",
    "string": "a non-empty string",
    "name": "a lowercase DNS label (a-z, 0-9, '-', at most 63 characters)",
    "task_id": "a task id (letters, digits, '-', '_', '.')",
    "bool": "true or false",
    "list": "a list",
    "mapping": "a mapping",
    "quantity": "a Kubernetes quantity string",
    "share": "a number in (0, 1]",
}
_EXAMPLE = {"cpu": '"500m" or "2"', "memory": '"512Mi" or "4Gi"'}


def _resources(r: _Reader, raw: Any, path: str) -> Resources | None:
    data = r.mapping(raw, path)
    if data is None:
        return None
    lists = {}
    for part in ("requests", "limits"):
        sub = r.get(data, part, path, "mapping")
        if sub is None:
            continue
        cpu = r.quantity(sub, "cpu", f"{path}.{part}", parse_cpu, "cpu")
        memory = r.quantity(sub, "memory", f"{path}.{part}", parse_memory, "memory")
        if cpu and memory:
            lists[part] = ResourceList(cpu, memory)
    if len(lists) != 2:
        return None
    return Resources(lists["requests"], lists["limits"])


def _budget(r: _Reader, raw: Any) -> Budget | None:
    data = r.mapping(raw, "larry:budget")
    if data is None:
        return None
    system = r.get(data, "systemTokens", "larry:budget", "positive")
    meta_raw = r.get(data, "metaCoordinator", "larry:budget", "mapping")
    meta = None
    if meta_raw is not None:
        path = "larry:budget.metaCoordinator"
        orchestration = r.get(meta_raw, "orchestrationTokens", path, "positive")
        reserve = r.get(meta_raw, "emergencyReserveTokens", path, "positive")
        pool = r.get(meta_raw, "workerPoolTokens", path, "positive", 0)
        if orchestration and reserve and pool is not None:
            meta = MetaCoordinator(orchestration, reserve, pool)
    trigger = r.get(data, "reserveTrigger", "larry:budget", "share", DEFAULT_RESERVE_TRIGGER)
    target = r.get(data, "utilisationTarget", "larry:budget", "share", DEFAULT_UTILISATION_TARGET)
    if system and meta:
        return Budget(system, meta, trigger, target)
    return None


def _nodes(r: _Reader, raw: Any) -> dict[str, Node]:
    data = r.mapping(raw, "larry:nodes")
    nodes: dict[str, Node] = {}
    for name, spec in (data or {}).items():
        path = f"larry:nodes.{name}"
        if not _CHECKS["name"](name):
            r.fail(path, f"node name {name!r} is not {_KIND_TEXT['name']}")
            continue
        spec = r.mapping(spec, path)
        if spec is None:
            continue
        role = r.get(spec, "role", path, "string", allowed=("master", "worker"))
        ip = r.get(spec, "ip", path, "string")
        cpu = r.quantity(spec, "cpu", path, parse_cpu, "cpu")
        memory = r.quantity(spec, "memory", path, parse_memory, "memory")
        if role and ip and cpu and memory:
            nodes[name] = Node(name, role, ip, cpu, memory)
    if data is not None and not data:
        r.fail("larry:nodes", "expected at least one node")
    return nodes


def _redis(r: _Reader, raw: Any) -> Redis | None:
    data = r.mapping(raw, "larry:redis")
    if data is None:
        return None
    p = "larry:redis"
    values = dict(
        namespace=r.get(data, "namespace", p, "name"),
        service_name=r.get(data, "serviceName", p, "name"),
        port=r.get(data, "port", p, "port"),
        replicas=r.get(data, "replicas", p, "positive"),
        sentinels=r.get(data, "sentinels", p, "positive"),
        master_name=r.get(data, "masterName", p, "name", "larry"),
        sentinel_port=r.get(data, "sentinelPort", p, "port", 26379),
        quorum=r.get(data, "quorum", p, "positive", 2),
        down_after_ms=r.get(data, "downAfterMilliseconds", p, "positive", 5000),
        failover_timeout_ms=r.get(data, "failoverTimeoutMilliseconds", p, "positive", 60000),
        storage=r.quantity(data, "storage", p, parse_memory, "memory", "2Gi"),
        image=r.get(data, "image", p, "string", DEFAULT_REDIS_IMAGE),
        exporter=r.get(data, "exporter", p, "bool", True),
        exporter_image=r.get(data, "exporterImage", p, "string", DEFAULT_REDIS_EXPORTER_IMAGE),
    )
    if "resources" in data:
        values["resources"] = _resources(r, data["resources"], f"{p}.resources")
    if any(v is None for v in values.values()):
        return None
    redis = Redis(**values)
    if redis.quorum > redis.sentinels:
        r.fail(f"{p}.quorum", f"{redis.quorum} exceeds the {redis.sentinels} sentinels")
    return redis


def _worker_types(r: _Reader, raw: Any) -> dict[str, WorkerType]:
    if raw is None:
        return {}
    data = r.mapping(raw, "larry:workerTypes")
    types = {}
    for name, spec in (data or {}).items():
        path = f"larry:workerTypes.{name}"
        spec = r.mapping(spec, path)
        if spec is None:
            continue
        tokens = r.get(spec, "tokens", path, "positive")
        minutes = r.get(spec, "minutes", path, "positive")
        if tokens and minutes:
            types[name] = WorkerType(name, tokens, minutes)
    return types


def _tasks(r: _Reader, raw: Any, path: str) -> tuple[Task, ...]:
    tasks = []
    for k, item in enumerate(raw or ()):
        tpath = f"{path}[{k}]"
        item = r.mapping(item, tpath)
        if item is None:
            continue
        task_id = r.get(item, "id", tpath, "task_id")
        title = r.get(item, "title", tpath, "string")
        deps = r.get(item, "dependsOn", tpath, "list", [])
        bad = [d for d in deps or () if not _CHECKS["task_id"](d)]
        for dep in bad:
            r.fail(f"{tpath}.dependsOn", f"{dep!r} is not {_KIND_TEXT['task_id']}")
        priority = r.get(item, "priority", tpath, "string", DEFAULT_PRIORITY, allowed=PRIORITIES)
        if task_id and title and priority and not bad:
            tasks.append(Task(task_id, title, tuple(deps or ()), priority))
    return tuple(tasks)


def _worker(r: _Reader, raw: Any, path: str, types: Mapping[str, WorkerType]) -> Worker | None:
    data = r.mapping(raw, path)
    if data is None:
        return None
    name = r.get(data, "name", path, "name")
    node = r.get(data, "node", path, "name")
    type_name = r.get(data, "type", path, "string", None)
    worker_type = None
    if type_name is not None:
        worker_type = types.get(type_name)
        if worker_type is None:
            r.fail(f"{path}.type", f"{type_name!r} is not declared in larry:workerTypes")
    # A declared worker type supplies the defaults for tokens and minutes (seed 004).
    tokens = r.get(data, "tokens", path, "positive", worker_type.tokens if worker_type else ...)
    minutes = r.get(data, "minutes", path, "positive", worker_type.minutes if worker_type else ...)
    resources = _resources(r, data.get("resources"), f"{path}.resources") if "resources" in data else None
    if "resources" not in data:
        r.fail(f"{path}.resources", "required key is missing (expected requests and limits)")
    master = r.get(data, "master", path, "name", None)
    priority = r.get(data, "priority", path, "string", DEFAULT_PRIORITY, allowed=PRIORITIES)
    tasks_raw = r.get(data, "tasks", path, "list")
    if tasks_raw is not None and not tasks_raw:
        r.fail(f"{path}.tasks", "expected at least one task")
    tasks = _tasks(r, tasks_raw, f"{path}.tasks")
    if None in (name, node, tokens, minutes, resources, tasks_raw, priority) or (type_name and not worker_type):
        return None
    return Worker(name, node, tokens, minutes, resources, tasks, master, type_name, priority)


def _larry(r: _Reader, raw: Any, path: str, types: Mapping[str, WorkerType], storage_class: str) -> Larry | None:
    data = r.mapping(raw, path)
    if data is None:
        return None
    values = dict(
        id=r.get(data, "id", path, "name"),
        phase=r.get(data, "phase", path, "string"),
        namespace=r.get(data, "namespace", path, "name"),
        node=r.get(data, "node", path, "name"),
        worker_nodes=r.get(data, "workerNodes", path, "list"),
        deadline_minutes=r.get(data, "deadlineMinutes", path, "positive"),
        token_budget=r.get(data, "tokenBudget", path, "positive"),
        storage=r.quantity(data, "storage", path, parse_memory, "memory"),
        storage_class=r.get(data, "storageClass", path, "name", storage_class),
        cluster_read=r.get(data, "clusterRead", path, "bool", False),
        coordinator=_resources(r, data.get("coordinator"), f"{path}.coordinator"),
    )
    masters = []
    for k, item in enumerate(r.get(data, "masters", path, "list") or ()):
        mpath = f"{path}.masters[{k}]"
        item = r.mapping(item, mpath)
        if item is None:
            continue
        name = r.get(item, "name", mpath, "name")
        personal = r.get(item, "personalTokens", mpath, "positive")
        pool = r.get(item, "workerPoolTokens", mpath, "positive")
        if name and personal and pool:
            masters.append(Master(name, personal, pool))
    workers_raw = r.get(data, "workers", path, "list")
    workers = [_worker(r, w, f"{path}.workers[{k}]", types) for k, w in enumerate(workers_raw or ())]
    if any(v is None for v in values.values()) or None in workers or workers_raw is None:
        return None
    values["worker_nodes"] = tuple(values["worker_nodes"])
    return Larry(masters=tuple(masters), workers=tuple(workers), **values)


def _check_references(r: _Reader, cfg: StackConfig) -> None:
    """Cross-references: nodes, roles, masters, unique ids, dependency targets and cycles."""
    seen_larrys: dict[str, str] = {}
    seen_workers: dict[str, str] = {}
    task_owner: dict[str, str] = {}
    for i, larry in enumerate(cfg.larrys):
        lpath = f"larry:larrys[{i}]"
        if larry.id in seen_larrys:
            r.fail(f"{lpath}.id", f"duplicate Larry id {larry.id!r} (also {seen_larrys[larry.id]})")
        seen_larrys.setdefault(larry.id, lpath)
        _check_node(r, cfg, larry.node, f"{lpath}.node", "master")
        for k, node in enumerate(larry.worker_nodes):
            _check_node(r, cfg, node, f"{lpath}.workerNodes[{k}]", "worker")
        masters = [m.name for m in larry.masters]
        for dup in {m for m in masters if masters.count(m) > 1}:
            r.fail(f"{lpath}.masters", f"duplicate master name {dup!r}")
        for j, worker in enumerate(larry.workers):
            wpath = f"{lpath}.workers[{j}]"
            if worker.name in seen_workers:
                r.fail(f"{wpath}.name", f"duplicate worker name {worker.name!r} (also {seen_workers[worker.name]})")
            seen_workers.setdefault(worker.name, wpath)
            if _check_node(r, cfg, worker.node, f"{wpath}.node", "worker") and worker.node not in larry.worker_nodes:
                r.fail(f"{wpath}.node", f"{worker.node!r} is not one of {larry.id}'s workerNodes "
                       f"({', '.join(larry.worker_nodes)})")
            if worker.master is not None and worker.master not in masters:
                r.fail(f"{wpath}.master", f"{worker.master!r} is not a master of {larry.id} "
                       f"({', '.join(masters) or 'none declared'})")
            for k, task in enumerate(worker.tasks):
                tpath = f"{wpath}.tasks[{k}].id"
                if task.id in task_owner:
                    r.fail(tpath, f"duplicate task id {task.id!r} (also {task_owner[task.id]})")
                task_owner.setdefault(task.id, tpath)
    for i, larry in enumerate(cfg.larrys):
        for j, worker in enumerate(larry.workers):
            for k, task in enumerate(worker.tasks):
                for dep in task.depends_on:
                    if dep not in task_owner:
                        r.fail(f"larry:larrys[{i}].workers[{j}].tasks[{k}].dependsOn",
                               f"{dep!r} is not a task id of this stack")
    cycle = _find_cycle({t.id: t.depends_on for larry in cfg.larrys for t in larry.tasks})
    if cycle:
        r.fail(task_owner[cycle[0]].removesuffix(".id") + ".dependsOn",
               "dependency cycle " + " -> ".join(cycle))


def _check_node(r: _Reader, cfg: StackConfig, node: str, path: str, role: str) -> bool:
    if node not in cfg.nodes:
        r.fail(path, f"{node!r} is not declared in larry:nodes")
        return False
    if cfg.nodes[node].role != role:
        r.fail(path, f"{node!r} is a {cfg.nodes[node].role} node, expected a {role} node")
        return False
    return True


def _find_cycle(graph: Mapping[str, tuple[str, ...]]) -> list[str] | None:
    """One dependency cycle as a path (first node repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep in graph and state.get(dep) is None:
                found = visit(dep)
                if found:
                    return found
        state[node] = 2
        path.pop()
        return None

    for start in graph:
        if state.get(start) is None:
            found = visit(start)
            if found:
                return found
    return None


def load_config(values: Mapping[str, Any], stack: str, source: str | None = None) -> StackConfig:
    """Build and validate a StackConfig from ``larry:*`` values (keys with or without prefix).

    Raises ConfigError listing every problem, each prefixed with the stack's source.
    """
    source = source or f"Pulumi.{stack}.yaml"
    raw = {key.removeprefix(f"{PROJECT}:"): value for key, value in values.items()}
    r = _Reader()
    window = r.get(raw, "executionWindowMinutes", "", "positive")
    storage_class = r.get(raw, "storageClass", "", "name", DEFAULT_STORAGE_CLASS)
    budget = _budget(r, raw["budget"]) if raw.get("budget") is not None else r.get(raw, "budget", "", "mapping")
    nodes = _nodes(r, raw["nodes"]) if raw.get("nodes") is not None else r.get(raw, "nodes", "", "mapping")
    redis = _redis(r, raw["redis"]) if raw.get("redis") is not None else r.get(raw, "redis", "", "mapping")
    types = _worker_types(r, raw.get("workerTypes"))
    larrys_raw = r.get(raw, "larrys", "", "list")
    if larrys_raw is not None and not larrys_raw:
        r.fail("larrys", "expected at least one Larry")
    larrys = [_larry(r, item, f"larry:larrys[{i}]", types, storage_class or DEFAULT_STORAGE_CLASS)
              for i, item in enumerate(larrys_raw or ())]
    channels = _section(r, raw, "channels", Channels, {"coordination": "string", "alerts": "string", "events": "string"})
    observability = _section(r, raw, "observability", Observability,
                             {"serviceMonitors": "bool", "grafanaDashboard": "bool"})
    cluster = _section(r, raw, "cluster", Cluster,
                       {"kubeconfig": "string", "context": "string", "renderDirectory": "string"})
    image = r.get(raw, "runtimeImage", "", "string", DEFAULT_RUNTIME_IMAGE)
    # Problems so far carry paths without the prefix at the top level: add it uniformly.
    r.problems = [p if p.startswith("larry:") else f"larry:{p}" for p in r.problems]
    if not r.problems:
        cfg = StackConfig(stack, source, window, budget, nodes, redis, tuple(larrys), types,
                          channels, observability, cluster, image,
                          {f"{PROJECT}:{k}": v for k, v in raw.items()})
        _check_references(r, cfg)
        if not r.problems:
            return cfg
    raise ConfigError([f"{source}: {p}" for p in r.problems])


def _section(r: _Reader, raw: Mapping[str, Any], key: str, cls: type, kinds: Mapping[str, str]) -> Any:
    """An optional flat section whose camelCase keys map onto a dataclass's fields."""
    data = raw.get(key)
    if data is None:
        return cls()
    data = r.mapping(data, f"larry:{key}")
    if data is None:
        return cls()
    for unknown in set(data) - set(kinds):
        r.fail(f"larry:{key}.{unknown}", f"unknown key (expected one of {', '.join(kinds)})")
    values = {_snake(k): r.get(data, k, f"larry:{key}", kind, None) for k, kind in kinds.items()}
    return cls(**{k: v for k, v in values.items() if v is not None})


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def load_stack_file(path: str | Path, stack: str | None = None) -> StackConfig:
    """Load ``Pulumi.<stack>.yaml`` (or any file of that shape) from disk."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ConfigError([f"{path}: stack file not found"]) from None
    cfg = load_plan_document(text, str(path))
    return cfg if stack in (None, cfg.stack) else replace(cfg, stack=stack)


def load_plan_document(text: str, source: str) -> StackConfig:
    """Load the document ``StackConfig.plan_document`` rendered (e.g. from a ConfigMap)."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: not valid YAML ({str(exc).splitlines()[0]})"]) from None
    if not isinstance(document, Mapping) or not isinstance(document.get("config"), Mapping):
        raise ConfigError([f"{source}: expected a top-level 'config:' mapping"])
    values = {k: parse_config_value(v) for k, v in document["config"].items() if str(k).startswith(f"{PROJECT}:")}
    stack = document.get("stack") or Path(source).name.removeprefix("Pulumi.").removesuffix(".yaml")
    return load_config(values, str(stack), source)


def parse_config_value(value: Any) -> Any:
    """A top-level config value read one way from the engine and from a stack file: the
    engine hands every value over as text (structured ones as JSON) and `pulumi config set`
    stores scalars as strings ("45"), so text that parses as JSON is that JSON, and any other
    text (e.g. ``storageClass: longhorn``) stays a string."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def load_stack(stack: str, project_dir: str | Path = ".") -> StackConfig:
    return load_stack_file(Path(project_dir) / f"Pulumi.{stack}.yaml", stack)
