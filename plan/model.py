"""The stack's plan as typed, frozen objects, and the budget arithmetic read by every part.

These dataclasses are what :mod:`plan.loader` builds from ``larry:*`` config once it is
valid; the components render them, the policy pack checks them and the runtime runs them.
The budget arithmetic (per master, per Larry, per system, reserve, utilisation) lives here
once, and so do the agent profiles' vocabulary (usage adapters, command placeholders, which
variable names look like secrets). Budget *limits* are not enforced here: blocking an
over-budget plan is the policy pack's job and, at run time, the token ledger's; an agent
profile's egress being narrow enough is the policy pack's to judge too.

The plan is written out here too, in two forms :mod:`plan.loader` reads back: the whole plan
(``plan_document``) and each Larry's slice (``slice_documents``: its Larry, the stack-wide keys
and a :class:`PlanIndex` of the rest), whose size grows with that Larry, not with the stack,
but for one line per Larry of the stack in the index.
"""
from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any, Mapping

import yaml

from plan.quantities import ResourceList, Resources

PROJECT = "larry"
DEFAULT_STORAGE_CLASS = "longhorn"
DEFAULT_RUNTIME_IMAGE = "ghcr.io/larry-dev/larry-runtime:0.1.0"
DEFAULT_REDIS_IMAGE = "redis:7.2.5-alpine"
DEFAULT_REDIS_EXPORTER_IMAGE = "oliver006/redis_exporter:v1.62.0"
#: Share of a Larry's limit at which the ledger draws the emergency reserve (seed risk 4).
DEFAULT_RESERVE_TRIGGER = 0.9
#: Seed 001 "System-Wide": token budget utilisation < 95 %.
DEFAULT_UTILISATION_TARGET = 0.95
# Bounds of the plan's numbers (the loader refuses anything above them). No real stack
# nears them; they keep every sum and conversion exact wherever the numbers go.
#: Any token figure (budgets, pools, reserves, a worker's tokens, one agent's report, one
#: ledger booking): a Larry's limit plus the
#: whole emergency reserve stays far below 2**53, where the ledger's Lua numbers (doubles)
#: stop counting exactly, and far inside Redis's 64-bit integers.
MAX_TOKENS = 10**12
#: Any duration in minutes (window, deadlines, a worker's minutes): one year, so deadlines
#: as datetimes (which end in year 9999) or millisecond timestamps never overflow.
MAX_MINUTES = 365 * 24 * 60
#: Redis replicas, sentinels and quorum: a Sentinel set is 3 to 5; Kubernetes replicas are int32.
MAX_COUNT = 100
#: Sentinel timeouts in milliseconds: one day.
MAX_MILLISECONDS = 24 * 60 * 60 * 1000
#: Kubernetes holds a quantity as a 64-bit integer of its smallest unit (millicores, bytes).
MAX_QUANTITY = 2**63 - 1

@dataclass(frozen=True)
class Node:
    name: str
    role: str  # "master" | "worker"
    ip: str
    cpu: str
    memory: str

    @property
    def allocatable(self) -> ResourceList:
        return ResourceList(self.cpu, self.memory)


#: Seed 004 "Conflict Resolution": who is served first when tokens run short, highest first.
PRIORITIES = ("critical", "high", "medium", "low")
DEFAULT_PRIORITY = "medium"
#: The share of the emergency reserve a priority may not draw, kept back for the priorities
#: above it: the reserve goes to the highest priority first without a queue.
RESERVE_KEPT_BACK = {"critical": 0.0, "high": 0.25, "medium": 0.5, "low": 0.75}
#: Seed 003 "Scenario 4": the reserve is lent in slices (10k of a 25k reserve).
RESERVE_SLICE_SHARE = 0.4


def highest_priority(*priorities: str) -> str:
    return min(priorities, key=PRIORITIES.index)


#: How tasks reach workers (``larry:taskAssignment``). ``static`` (seed 001): each worker runs
#: the tasks the plan lists under it. ``queue`` (seed 004, "Pulls task from master's queue"):
#: the tasks of a master's workers form that master's queue, and each of its workers takes the
#: highest-priority claimable task of it, then the next, until the queue is done.
ASSIGNMENTS = ("static", "queue")
DEFAULT_ASSIGNMENT = "static"


@dataclass(frozen=True)
class Task:
    id: str
    title: str
    depends_on: tuple[str, ...] = ()
    priority: str = DEFAULT_PRIORITY


@dataclass(frozen=True)
class WorkerType:
    name: str
    tokens: int
    minutes: int


@dataclass(frozen=True)
class Worker:
    name: str
    node: str
    tokens: int
    minutes: int
    resources: Resources
    tasks: tuple[Task, ...]
    master: str | None = None
    type: str | None = None
    priority: str = DEFAULT_PRIORITY
    #: The agent profile it runs (``larry:agents``); None: the stack's default agent.
    agent: str | None = None


@dataclass(frozen=True)
class Master:
    name: str
    personal_tokens: int
    worker_pool_tokens: int
    #: The agent profile it runs (``larry:agents``); None: the stack's default agent.
    agent: str | None = None

    @property
    def total_tokens(self) -> int:
        return self.personal_tokens + self.worker_pool_tokens


@dataclass(frozen=True)
class Rollback:
    """A Larry's rollback procedure (seed 001 appendix B, ``rollback`` of a Larry): its steps,
    run in order by `larry rollback` as the tasks of one worker of the Larry (:meth:`worker`),
    with ``tokens`` and ``minutes`` as that worker's budget and deadline."""

    tokens: int
    minutes: int
    steps: tuple[Task, ...]
    #: The agent profile that runs the steps (``larry:agents``); None: the stack's default agent.
    agent: str | None = None

    def worker(self, larry: "Larry") -> Worker:
        """The worker that runs the steps: ``{larry}-rollback`` on the Larry's node, its budget
        drawn on the Larry's; each step depends on the one before, so a failed step stops the rest."""
        steps = tuple(Task(s.id, s.title, (prev.id,) if prev else (), s.priority)
                      for prev, s in zip((None, *self.steps), self.steps))
        return Worker(rollback_worker(larry.id), larry.node, self.tokens, self.minutes, larry.coordinator, steps,
                      agent=self.agent)


def rollback_worker(larry: str) -> str:
    return f"{larry}-rollback"


@dataclass(frozen=True)
class Larry:
    id: str
    phase: str
    namespace: str
    node: str
    worker_nodes: tuple[str, ...]
    deadline_minutes: int
    token_budget: int
    storage: str
    storage_class: str
    cluster_read: bool
    coordinator: Resources
    masters: tuple[Master, ...]
    workers: tuple[Worker, ...]
    rollback: Rollback | None = None

    @property
    def allocated_tokens(self) -> int:
        """Masters' personal tokens + their worker pools + workers that name no master.

        A worker that names a master draws on that master's pool, so it is already counted.
        """
        return sum(m.total_tokens for m in self.masters) + sum(
            w.tokens for w in self.workers if w.master is None
        )

    def master(self, name: str) -> Master:
        return next(m for m in self.masters if m.name == name)

    def pool_draw(self, master: str) -> int:
        """Tokens of the workers that draw on ``master``'s worker pool."""
        return sum(w.tokens for w in self.workers if w.master == master)

    @property
    def tasks(self) -> tuple[Task, ...]:
        return tuple(t for w in self.workers for t in w.tasks)

    def overseer(self, worker: Worker) -> str | None:
        """The master overseeing ``worker``: the one it names, else the one it is dealt to (the
        workers that name no master are dealt to the masters in turn); None without masters."""
        if worker.master or not self.masters:
            return worker.master
        unowned = [w.name for w in self.workers if w.master is None]
        return self.masters[unowned.index(worker.name) % len(self.masters)].name

    def queue_of(self, worker: Worker) -> str:
        """The queue ``worker`` takes from in ``queue`` assignment: its master's, or, for a worker
        that names no master, its Larry's (the id of a Larry is never a master's name of it)."""
        return worker.master or self.id

    def queue_tasks(self, queue: str) -> tuple[tuple[Worker, Task], ...]:
        """The tasks of ``queue`` in plan order, each with the worker the plan lists it under."""
        return tuple((w, t) for w in self.workers if self.queue_of(w) == queue for t in w.tasks)


@dataclass(frozen=True)
class MetaCoordinator:
    orchestration_tokens: int
    emergency_reserve_tokens: int
    #: Seed 004's coordinator-master also holds a worker pool (30k); seed 001's has none.
    worker_pool_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.orchestration_tokens + self.worker_pool_tokens + self.emergency_reserve_tokens


@dataclass(frozen=True)
class Budget:
    system_tokens: int
    meta: MetaCoordinator
    reserve_trigger: float = DEFAULT_RESERVE_TRIGGER
    utilisation_target: float = DEFAULT_UTILISATION_TARGET

    @property
    def reserve_slice(self) -> int:
        """Tokens of the emergency reserve lent at a time (seed 003: 10k of 25k)."""
        return max(1, round(self.meta.emergency_reserve_tokens * RESERVE_SLICE_SHARE))


@dataclass(frozen=True)
class Redis:
    namespace: str
    service_name: str
    port: int
    replicas: int
    sentinels: int
    master_name: str = "larry"
    sentinel_port: int = 26379
    quorum: int = 2
    down_after_ms: int = 5000
    failover_timeout_ms: int = 60000
    storage: str = "2Gi"
    image: str = DEFAULT_REDIS_IMAGE
    exporter: bool = True
    exporter_image: str = DEFAULT_REDIS_EXPORTER_IMAGE
    resources: Resources = Resources(ResourceList("250m", "256Mi"), ResourceList("500m", "512Mi"))

    @property
    def host(self) -> str:
        return f"{self.service_name}.{self.namespace}.svc.cluster.local"

    @property
    def sentinel_service(self) -> str:
        return f"{self.service_name}-sentinel"

    @property
    def sentinel_host(self) -> str:
        return f"{self.sentinel_service}.{self.namespace}.svc.cluster.local"


@dataclass(frozen=True)
class Channels:
    """Pub/sub channel and stream names; the key templates themselves live in runtime.keys."""

    coordination: str = "larry:coordination"
    alerts: str = "larry:alerts"
    events: str = "larry:events"


@dataclass(frozen=True)
class Observability:
    """Resources that need prometheus-operator / the Grafana sidecar on the cluster."""

    service_monitors: bool = True
    grafana_dashboard: bool = True
    #: The namespace the cluster's Prometheus runs in: the NetworkPolicies let it scrape.
    prometheus_namespace: str = "monitoring"
    #: Labels the cluster's Prometheus selects ServiceMonitors and PrometheusRules on
    #: (kube-prometheus-stack: ``release: <its Helm release>``).
    prometheus_labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Approval:
    """Seed 004 "Approval Required: Human operator sign-off": with ``required`` no worker starts
    its first task until an operator approves the run (`larry approve run`, `larry run --approve`)."""

    required: bool = False


#: Catalog replicas a stack may ask for (the seed runs 2; more only add failover headroom).
MAX_CATALOG_REPLICAS = 10


@dataclass(frozen=True)
class Catalog:
    """Seed 004's Catalog API (``larry:catalog``): the asset registry the inventory workers
    fill. Its state lives in the stack's Redis hub under ``catalog:*`` keys."""

    enabled: bool = False
    replicas: int = 2
    port: int = 3000
    #: The assets it holds before a run (YAML ``{assets: [...]}``), relative to the project.
    baseline: str | None = None
    namespace: str = "catalog-system"
    service_name: str = "catalog-api"

    @property
    def url(self) -> str:
        """Where a worker in the cluster reaches the GraphQL endpoint."""
        return f"http://{self.service_name}.{self.namespace}.svc.cluster.local:{self.port}/graphql"


@dataclass(frozen=True)
class Cluster:
    """Where `pulumi up` sends manifests: a kubeconfig/context, or render mode when neither."""

    kubeconfig: str | None = None
    context: str | None = None
    render_directory: str = "rendered"

    @property
    def render_mode(self) -> bool:
        return not (self.kubeconfig or self.context)


# ---- agent profiles (``larry:agents``): what a worker or master runs instead of the simulation

#: The adapters that meter an agent from its own output, by the name ``usage`` gives.
USAGE_ADAPTERS = ("claude-code", "codex", "aider", "larry-protocol")
#: What a profile's ``command`` may name, written ``{task_id}`` (``{{`` and ``}}`` are literal
#: braces): the task's id and title, the file holding its prompt, its results directory.
COMMAND_PLACEHOLDERS = ("task_id", "title", "prompt_file", "results_dir")
#: Bounds of a profile's limits and prices.
MAX_AGENT_TURNS = 10_000
MAX_AGENT_RETRIES = 100
#: US dollars per million tokens: ten times the dearest model sold today.
MAX_PRICE_PER_MILLION = 10_000
#: Variable names that hold a credential: a literal value for one belongs in ``secretEnv``.
#: Matched on whole ``_``-separated words at the end, so ``MAX_OUTPUT_TOKENS`` is not one.
_SECRET_NAME = re.compile(r"(?:^|_)(?:API_?KEY|(?:ACCESS_|AUTH_|SESSION_|REFRESH_)?TOKEN|SECRET(?:_ACCESS)?(?:_KEY)?"
                          r"|PASSWORD|PASSWD|PASSPHRASE|CREDENTIALS?|PRIVATE_KEY)$", re.IGNORECASE)


def looks_like_secret(variable: str) -> bool:
    """Whether an environment variable's name says it holds a credential (``ANTHROPIC_API_KEY``,
    ``GITHUB_TOKEN``, ``AWS_SECRET_ACCESS_KEY``). A name is all there is to go on: a credential
    under an innocent name is not caught."""
    return bool(_SECRET_NAME.search(variable))


def command_placeholders(argument: str) -> list[str]:
    """The placeholders one command argument names, in order; raises ValueError for a brace
    that is neither a placeholder nor doubled. Anything else inside braces (``{title!r}``,
    ``{task_id:>8}``, ``{0}``) is returned as written, for the caller to refuse."""
    found = []
    for _, name, spec, conversion in string.Formatter().parse(argument):
        if name is not None:
            found.append(name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else ""))
    return found


def expand_command(command: tuple[str, ...], values: Mapping[str, str]) -> list[str]:
    """``command`` with each placeholder replaced by its value (one argument stays one argument,
    whatever the value holds: no shell is involved). ``values`` has every COMMAND_PLACEHOLDERS."""
    return [argument.format_map(values) for argument in command]


@dataclass(frozen=True)
class SecretRef:
    """A key of a Kubernetes Secret in the worker's namespace: where a variable's value lives."""

    secret: str
    key: str


@dataclass(frozen=True)
class Egress:
    """One destination an agent may reach: a CIDR, or the pods of a Service (an egress proxy)
    named ``name`` (the worker's namespace) or ``name.namespace``; TCP ``ports``, all when empty."""

    cidr: str | None = None
    service: str | None = None
    ports: tuple[int, ...] = ()

    def service_pods(self, default_namespace: str) -> tuple[str, str]:
        """(name, namespace) of the Service, its namespace ``default_namespace`` unless named."""
        name, _, namespace = (self.service or "").partition(".")
        return name, namespace or default_namespace


@dataclass(frozen=True)
class ModelPrice:
    """US dollars per million tokens of one model, for adapters whose CLI reports no cost."""

    name: str  # the model, as the agent's output names it
    input: float
    output: float
    cache_read: float = 0.0
    cache_write: float = 0.0


@dataclass(frozen=True)
class AgentProfile:
    """How to run one kind of agent: its argv (with COMMAND_PLACEHOLDERS), the adapter that
    meters it, its image, environment (plain values, and Secret keys by reference only), what
    it may reach, its models' prices and the limits its CLI takes."""

    name: str
    command: tuple[str, ...]
    usage: str
    image: str = DEFAULT_RUNTIME_IMAGE
    env: Mapping[str, str] = field(default_factory=dict)
    secret_env: Mapping[str, SecretRef] = field(default_factory=dict)
    egress: tuple[Egress, ...] = ()
    prices: Mapping[str, ModelPrice] = field(default_factory=dict)
    max_turns: int | None = None
    max_retries: int | None = None


@dataclass(frozen=True)
class UpstreamTask:
    """A task of another Larry that a task of a slice's Larry waits for, directly or through
    other tasks: what the slice's Larry needs of it to see it block its own tasks."""

    id: str
    larry: str
    worker: str
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlanIndex:
    """What one Larry's pods are told of the rest of the stack besides their slice: every
    Larry's id (the barriers wait for all of them) and the other Larrys' tasks its own tasks
    wait for (the task graph). Budgets need nothing more: a worker's charge is booked on its
    own Larry's accounts, the system and the meta-coordinator's, all in the slice."""

    larry: str
    larrys: tuple[str, ...]
    upstream: tuple[UpstreamTask, ...] = ()


@dataclass(frozen=True)
class StackConfig:
    stack: str
    source: str
    execution_window_minutes: int
    budget: Budget
    nodes: Mapping[str, Node]
    redis: Redis
    larrys: tuple[Larry, ...]
    worker_types: Mapping[str, WorkerType] = field(default_factory=dict)
    channels: Channels = Channels()
    observability: Observability = Observability()
    approval: Approval = Approval()
    catalog: Catalog = Catalog()
    cluster: Cluster = Cluster()
    runtime_image: str = DEFAULT_RUNTIME_IMAGE
    #: Secrets (kubernetes.io/dockerconfigjson) every namespace of the stack holds for pulling
    #: its images from a private registry.
    image_pull_secrets: tuple[str, ...] = ()
    #: Names one run of the plan; a new id is a new run on fresh keys (``key_prefix``).
    run_id: str | None = None
    agents: Mapping[str, AgentProfile] = field(default_factory=dict)
    #: The profile of every worker and master that names none; None: the simulated payload.
    default_agent: str | None = None
    #: One of ASSIGNMENTS: how tasks reach workers.
    task_assignment: str = DEFAULT_ASSIGNMENT
    #: The validated ``larry:*`` values as given: what the plan ConfigMaps carry, so the
    #: runtime and the policy pack load them through this same module.
    values: Mapping[str, Any] = field(default_factory=dict, compare=False)
    #: None for a whole plan; for one Larry's slice (``larrys`` holds that Larry alone), what
    #: it is told of the others.
    index: PlanIndex | None = None

    @property
    def key_prefix(self) -> str:
        """What every key and channel of the run starts with on the hub: empty without a run id."""
        return f"{self.run_id}:" if self.run_id else ""

    def plan_document(self) -> str:
        """The stack config as a YAML document of the stack file's shape, without
        ``larry:cluster``: where `pulumi` deploys (a kubeconfig path or context) is no business
        of the pods, and a kubeconfig is a credential."""
        return _dump({"stack": self.stack, "config": self._pod_values()})

    def _pod_values(self) -> dict[str, Any]:
        return {key: value for key, value in self.values.items() if key != f"{PROJECT}:cluster"}

    # ---- slices: what one Larry's pods are given (plan.loader reads them back)
    @property
    def larry_ids(self) -> tuple[str, ...]:
        """Every Larry of the stack, in plan order, a slice's included."""
        return self.index.larrys if self.index else tuple(larry.id for larry in self.larrys)

    @property
    def upstream(self) -> tuple[UpstreamTask, ...]:
        """Tasks of other Larrys this (sliced) plan's tasks wait for; none in a whole plan."""
        return self.index.upstream if self.index else ()

    def slice_documents(self) -> dict[str, str]:
        """Each Larry's slice of this whole plan, by Larry id: a plan document holding the
        stack-wide keys, that Larry alone under ``larry:larrys``, and a ``slice:`` section
        (the :class:`PlanIndex`). Its size is the Larry's own plus the stack-wide keys plus one
        line per Larry of the stack (its id) plus the other Larrys' tasks it waits for."""
        assert self.index is None, "a slice is cut from the whole plan"
        owners = {t.id: (larry.id, w.name, t.depends_on) for larry in self.larrys for w in larry.workers
                  for t in w.tasks}
        shared = {key: value for key, value in self._pod_values().items() if key != f"{PROJECT}:larrys"}
        ids = list(self.larry_ids)
        documents = {}
        for larry, entry in zip(self.larrys, self.values[f"{PROJECT}:larrys"]):
            index: dict[str, Any] = {"larry": larry.id, "larrys": ids}
            upstream = _upstream(larry, owners)
            if upstream:
                index["upstream"] = [{"id": t, "larry": owners[t][0], "worker": owners[t][1],
                                      **({"dependsOn": list(owners[t][2])} if owners[t][2] else {})} for t in upstream]
            documents[larry.id] = _dump({"stack": self.stack, "slice": index,
                                         "config": {**shared, f"{PROJECT}:larrys": [entry]}})
        return documents

    # ---- budget arithmetic: the one place it is done
    @property
    def larry_tokens(self) -> int:
        """What all Larrys allocate (each Larry's masters, pools and master-less workers)."""
        return sum(larry.allocated_tokens for larry in self.larrys)

    @property
    def allocated_tokens(self) -> int:
        """All Larrys + the meta-coordinator's orchestration tokens + the emergency reserve."""
        return self.larry_tokens + self.budget.meta.total_tokens

    @property
    def reserve_share(self) -> float:
        return self.budget.meta.emergency_reserve_tokens / self.budget.system_tokens

    def larry(self, larry_id: str) -> Larry:
        for larry in self.larrys:
            if larry.id == larry_id:
                return larry
        raise KeyError(f"{self.source}: no Larry {larry_id!r} in larry:larrys")

    @property
    def only_node(self) -> str | None:
        """The stack's node when it declares exactly one: a one-node k3s cluster, whose server
        runs every workload. It serves as master and worker node, and every pod is pinned to
        it, the Redis hub's and the meta-coordinator's too; None for any other stack."""
        return next(iter(self.nodes)) if len(self.nodes) == 1 else None

    @property
    def namespaces(self) -> tuple[str, ...]:
        """Larry namespaces in first-use order, each once (several Larrys may share one)."""
        return tuple(dict.fromkeys(larry.namespace for larry in self.larrys))

    @property
    def workers(self) -> tuple[tuple[Larry, Worker], ...]:
        return tuple((larry, w) for larry in self.larrys for w in larry.workers)

    @property
    def queued(self) -> bool:
        """Workers take their tasks from their master's queue (``larry:taskAssignment: queue``)."""
        return self.task_assignment == "queue"

    def takes(self, larry: Larry, worker: Worker) -> tuple[Task, ...]:
        """The tasks ``worker`` may run: its own (static) or its queue's (queue)."""
        if not self.queued:
            return worker.tasks
        return tuple(t for _, t in larry.queue_tasks(larry.queue_of(worker)))

    def agent_of(self, member: Worker | Master) -> AgentProfile | None:
        """The profile a worker or master runs: its own ``agent``, else the stack's
        ``defaultAgent``; None when neither is set (the built-in simulated payload)."""
        name = member.agent or self.default_agent
        return self.agents[name] if name else None


#: libyaml's emitter where PyYAML has it: the same text as the pure-Python one, in a third of
#: the time (the program writes every Larry's slice).
_DUMPER = yaml.CSafeDumper if yaml.__with_libyaml__ else yaml.SafeDumper


def _dump(document: Mapping[str, Any]) -> str:
    return yaml.dump(document, Dumper=_DUMPER, sort_keys=False)


def _upstream(larry: Larry, owners: Mapping[str, tuple[str, str, tuple[str, ...]]]) -> list[str]:
    """The other Larrys' tasks ``larry``'s tasks wait for, directly or through one another, in
    the order they are found."""
    own = {t.id for t in larry.tasks}
    found: dict[str, None] = {}
    waiting = [dep for t in larry.tasks for dep in t.depends_on]
    while waiting:
        task = waiting.pop()
        if task not in own and task not in found and task in owners:
            found[task] = None
            waiting.extend(owners[task][2])
    return list(found)


# ---- the account tree: what the token ledger books and the policy pack checks
SYSTEM_ACCOUNT = "system"
#: Account kinds that lend to their children and may borrow from the emergency reserve.
POOL_KINDS = frozenset({"larry", "pool", "meta-pool"})
#: The kinds of the accounts of one Larry's budget, its own first.
LARRY_ACCOUNT_KINDS = ("larry", "personal", "pool", "worker")


@dataclass(frozen=True)
class Account:
    """One budget of the hierarchy (seed 004: system → meta-coordinator and Larrys → masters →
    workers). A charge on an account is booked on it and on every ancestor up to ``system``.
    ``kind``: system | orchestration | meta-pool | reserve | larry | personal | pool | worker."""

    name: str
    kind: str
    limit: int
    parent: str | None


def larry_account(larry: str) -> str:
    return larry


def master_account(larry: str, master: str, part: str) -> str:
    """``part``: personal | pool."""
    return f"{larry}/{master}/{part}"


def master_track(master: str) -> str:
    """The track a master's name stands for, as seed 001's keys name it
    (``phase:larry-03:inventory:assets_discovered``): ``inventory-master`` -> ``inventory``."""
    return master.removesuffix("-master")


def master_of_account(account: Account) -> str | None:
    """The master a personal or pool account (:func:`master_account`) is of; None for others."""
    return account.name.split("/")[1] if account.kind in ("personal", "pool") else None


def worker_account(larry: str, worker: str) -> str:
    return f"{larry}/{worker}"


def meta_account(part: str) -> str:
    """``part``: orchestration | pool | reserve."""
    return f"meta-coordinator/{part}"


def budget_accounts(cfg: "StackConfig") -> dict[str, Account]:
    """Every account of the plan by name, parents before children. A worker that names a master
    draws on that master's pool; one that names none on its Larry. The reserve is a child of
    the system that lends to pools; it is never charged itself."""
    meta = cfg.budget.meta
    accounts = [Account(SYSTEM_ACCOUNT, "system", cfg.budget.system_tokens, None),
                Account(meta_account("orchestration"), "orchestration", meta.orchestration_tokens, SYSTEM_ACCOUNT),
                Account(meta_account("pool"), "meta-pool", meta.worker_pool_tokens, SYSTEM_ACCOUNT),
                Account(meta_account("reserve"), "reserve", meta.emergency_reserve_tokens, SYSTEM_ACCOUNT)]
    for larry in cfg.larrys:
        accounts.append(Account(larry_account(larry.id), "larry", larry.token_budget, SYSTEM_ACCOUNT))
        for m in larry.masters:
            accounts.append(Account(master_account(larry.id, m.name, "personal"), "personal", m.personal_tokens,
                                    larry_account(larry.id)))
            accounts.append(Account(master_account(larry.id, m.name, "pool"), "pool", m.worker_pool_tokens,
                                    larry_account(larry.id)))
        for w in larry.workers:
            parent = master_account(larry.id, w.master, "pool") if w.master else larry_account(larry.id)
            accounts.append(Account(worker_account(larry.id, w.name), "worker", w.tokens, parent))
    return {a.name: a for a in accounts}


def account_path(accounts: Mapping[str, Account], name: str) -> tuple[Account, ...]:
    """``name``'s account and its ancestors, leaf first, ``system`` last."""
    path = [accounts[name]]
    while path[-1].parent is not None:
        path.append(accounts[path[-1].parent])
    return tuple(path)


def larry_of_account(accounts: Mapping[str, Account], name: str) -> str | None:
    """The Larry whose budget ``name`` is part of; None for the system and the meta-coordinator's."""
    return next((a.name for a in account_path(accounts, name) if a.kind == "larry"), None)


def allocated(accounts: Mapping[str, Account], name: str) -> int:
    """What ``name``'s children are allotted together (its reserve and pools included)."""
    return sum(a.limit for a in accounts.values() if a.parent == name)


def utilisation(used: int, limit: int) -> float:
    """Share of ``limit`` used; 0 for an empty limit."""
    return used / limit if limit else 0.0
