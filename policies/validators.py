"""The Larry policy pack's rules, apart from the ``PolicyPack(...)`` call (which starts a gRPC
server and blocks), so each validator can be called with the arguments the engine builds.

Where the numbers come from:

* The stack config each Larry's plan ConfigMap carries (``data["plan.yaml"]``), loaded with
  ``components.config.load_plan_document``. Its objects hold all budget arithmetic
  (``allocated_tokens``, ``pool_draw``, ``reserve_share`` ...); the rules only compare.
* Per worker, the ``larry.dev/*`` annotations of its Job, which resource policies can read
  on their own; ``plan-matches-resources`` holds them equal to the plan.
* Compute requests, limits, placement and security from the rendered objects themselves.

A rule that cannot evaluate (no plan, a missing field, a value unknown during preview)
reports that as a violation at its own enforcement level. pulumi-policy itself would turn an
unknown value into an advisory note, and an over-budget plan would then pass.
"""
from __future__ import annotations

import contextlib
import functools
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationPolicy,
    StackValidationPolicy,
)
from pulumi_policy.policy import PolicyResource
from pulumi_policy.proxy import UnknownValueError

from plan.labels import (
    COORDINATOR_APP,
    LARRY,
    MASTER,
    MINUTES,
    PHASE_DEADLINE,
    TOKENS,
    WINDOW,
    WORKER,
    WORKER_APP,
    WORKER_TYPE,
)
from plan.loader import ConfigError, load_plan_document
from plan.model import Larry, StackConfig, Worker
from plan.quantities import parse_cpu, parse_memory
from policies import kube

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY

# The contract with the components: what they render for the policies to read.
PLAN_KEY = "plan.yaml"
PLAN_LARRY_KEY = "larry-id"


# --------------------------------------------------------------------------- machinery

class CannotEvaluate(Exception):
    """A fact a rule needs is absent or malformed: reported, never passed over."""


@contextlib.contextmanager
def evaluating(report: ReportViolation, subject: str, urn: str | None = None) -> Iterator[None]:
    """Turn what stops a check (unknown in preview, missing input) into a violation."""
    try:
        yield
    except UnknownValueError as exc:
        report(f"{subject}: cannot evaluate, {exc.message}", urn)
    except CannotEvaluate as exc:
        report(f"{subject}: cannot evaluate, {exc}", urn)


@dataclass(frozen=True)
class Setting:
    """A threshold an operator may set with ``--policy-pack-config``."""

    key: str
    default: Any
    schema: Mapping[str, Any]  # JSON schema of the value; the engine validates against it

    def json_schema(self) -> dict[str, Any]:
        # The engine fills in "default" before calling the pack; the validators fall back to
        # the same value when called directly, so the default is written once, here.
        return {**self.schema, "default": self.default}


@dataclass(frozen=True)
class Rule:
    name: str
    description: str
    level: EnforcementLevel
    validate: Callable[[Any, ReportViolation], None]
    resource_types: tuple[str, ...] | None  # None: a stack policy
    settings: tuple[Setting, ...] = ()

    def policy(self) -> Policy:
        schema = (PolicyConfigSchema({s.key: s.json_schema() for s in self.settings})
                  if self.settings else None)
        kind = StackValidationPolicy if self.resource_types is None else ResourceValidationPolicy
        return kind(name=self.name, description=self.description, validate=self.validate,
                    enforcement_level=self.level, config_schema=schema)


RULES: dict[str, Rule] = {}


def policies() -> list[Policy]:
    """Every rule as a pulumi-policy Policy, for ``PolicyPack(policies=...)``."""
    return [rule.policy() for rule in RULES.values()]


def _settings(args: Any, settings: Iterable[Setting]) -> dict[str, Any]:
    given = args.get_config() or {}
    return {s.key: given.get(s.key, s.default) for s in settings}


def _subject(resource_type: str, props: Mapping[str, Any], fallback: str) -> str:
    """``Job larry-01/cleanup-worker (Larry larry-01, worker cleanup-worker)``."""
    try:
        text = kube.ref(resource_type, props, fallback)
        labels = kube.labels(props)
        context = [f"{what} {labels[key]}" for key, what in ((LARRY, "Larry"), (WORKER, "worker")) if key in labels]
    except UnknownValueError:  # a name unknown in preview: the Pulumi name still identifies it
        return f"{kube.kind(resource_type)} {fallback}"
    return f"{text} ({', '.join(context)})" if context else text


def resource_rule(name: str, description: str, level: EnforcementLevel, types: Iterable[str],
                  settings: Iterable[Setting] = ()) -> Callable:
    """Register ``check(args, report, subject, settings)`` as a resource policy on ``types``."""
    types, settings = tuple(types), tuple(settings)

    def register(check: Callable) -> Callable[[Any, ReportViolation], None]:
        def validate(args: Any, report: ReportViolation) -> None:
            if args.resource_type not in types:
                return
            subject = _subject(args.resource_type, args.props, args.name)
            with evaluating(report, subject):
                check(args, report, subject, _settings(args, settings))

        RULES[name] = Rule(name, description, level, validate, types, settings)
        return validate

    return register


def stack_rule(name: str, description: str, level: EnforcementLevel, settings: Iterable[Setting] = (),
               needs_plan: bool = True) -> Callable:
    """Register ``check(resources, plan, report, settings)`` as a stack policy (``plan`` is None
    when the rule does not need it)."""
    settings = tuple(settings)

    def register(check: Callable) -> Callable[[Any, ReportViolation], None]:
        def validate(args: Any, report: ReportViolation) -> None:
            resources = list(args.resources)
            plan = load_plan(resources, report) if needs_plan else None
            if plan is not None or not needs_plan:
                check(resources, plan, report, _settings(args, settings))

        RULES[name] = Rule(name, description, level, validate, None, settings)
        return validate

    return register


@functools.lru_cache(maxsize=8)
def _parse_plan(text: str, source: str) -> StackConfig:
    # Every stack policy reads the same document; parse and validate it once per run.
    return load_plan_document(text, source)


def load_plan(resources: Iterable[PolicyResource], report: ReportViolation) -> StackConfig | None:
    """The stack config the plan ConfigMaps carry, or None after reporting why not."""
    documents: dict[str, list[str]] = {}
    for resource in resources:
        if resource.resource_type != kube.CONFIG_MAP:
            continue
        subject = _subject(resource.resource_type, resource.props, resource.name)
        with evaluating(report, subject, resource.urn):
            text = kube.mapping(resource.props.get("data")).get(PLAN_KEY)
            if text is not None:
                documents.setdefault(str(text), []).append(subject)
    if not documents:
        report(f"cannot evaluate: the stack has no plan ConfigMap (data {PLAN_KEY!r}, one per Larry)", None)
        return None
    if len(documents) > 1:
        groups = "; ".join(", ".join(sources) for sources in documents.values())
        report(f"cannot evaluate: the plan ConfigMaps carry {len(documents)} different plans ({groups})", None)
        return None
    (text, sources), = documents.items()
    try:
        return _parse_plan(text, sources[0])
    except ConfigError as exc:
        report(f"cannot evaluate: the plan does not load: {exc}", None)
        return None


def _n(number: float) -> str:
    return f"{int(number):,}"


def _cpu(millis: float) -> str:
    return f"{int(millis):,}m"


def _memory(size: float) -> str:
    return f"{size / 2**20:,.0f}Mi"


def _whole_number(value: Any, what: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CannotEvaluate(f"{what} is {value!r}, not a number") from None
    if not number.is_integer():
        raise CannotEvaluate(f"{what} is {value!r}, not a whole number")
    return int(number)


def _annotation(props: Mapping[str, Any], key: str) -> int:
    value = kube.annotations(props).get(key)
    if value is None:
        raise CannotEvaluate(f"annotation {key} is missing")
    return _whole_number(value, f"annotation {key}")


def _quantity(value: Any, parse: Callable[[str], int], what: str) -> int:
    try:
        return parse(str(value))
    except ValueError:
        raise CannotEvaluate(f"{what} {value!r} is not a Kubernetes quantity") from None


def _container_name(container: Mapping[str, Any]) -> str:
    return str(container.get("name") or "?")


def _app(props: Mapping[str, Any]) -> Any:
    return kube.labels(props).get("app")


def _workloads(resources: Iterable[PolicyResource]) -> Iterator[tuple[PolicyResource, str]]:
    for resource in resources:
        if resource.resource_type in kube.WORKLOAD_TYPES:
            yield resource, _subject(resource.resource_type, resource.props, resource.name)


def _plan_larry(plan: StackConfig, larry_id: Any) -> Larry:
    if larry_id is None:
        raise CannotEvaluate(f"label {LARRY} is missing")
    try:
        return plan.larry(str(larry_id))
    except KeyError:
        raise CannotEvaluate(f"label {LARRY}={larry_id} names no Larry of the plan") from None


# --------------------------------------------------------------------------- token budgets

@stack_rule("larry-token-budget",
            "A Larry's masters (personal tokens and worker pools) and its workers without a master "
            "fit the Larry's tokenBudget", MANDATORY)
def larry_token_budget(_resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    for larry in plan.larrys:
        used, allowed = larry.allocated_tokens, larry.token_budget
        if used > allowed:
            parts = [f"{m.name} {_n(m.total_tokens)} ({_n(m.personal_tokens)} personal + "
                     f"{_n(m.worker_pool_tokens)} worker pool)" for m in larry.masters]
            parts += [f"{w.name} {_n(w.tokens)} (no master)" for w in larry.workers if w.master is None]
            report(f"Larry {larry.id}: allocates {_n(used)} tokens, its tokenBudget is {_n(allowed)} "
                   f"(over by {_n(used - allowed)}): {', '.join(parts)}", None)


@stack_rule("system-token-budget",
            "All Larrys plus the meta-coordinator (orchestration, worker pool, emergency reserve) "
            "fit the system token budget", MANDATORY)
def system_token_budget(_resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    used, allowed, meta = plan.allocated_tokens, plan.budget.system_tokens, plan.budget.meta
    if used > allowed:
        larrys = ", ".join(f"{larry.id} {_n(larry.allocated_tokens)}" for larry in plan.larrys)
        report(f"The plan allocates {_n(used)} tokens, the system budget is {_n(allowed)} "
               f"(over by {_n(used - allowed)}): Larrys {_n(plan.larry_tokens)} ({larrys}); "
               f"meta-coordinator {_n(meta.total_tokens)} (orchestration {_n(meta.orchestration_tokens)}, "
               f"worker pool {_n(meta.worker_pool_tokens)}, emergency reserve {_n(meta.emergency_reserve_tokens)})",
               None)


@stack_rule("worker-fits-master-pool",
            "A worker that names a master needs no more tokens than that master's worker pool", MANDATORY)
def worker_fits_master_pool(_resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    for larry, worker in plan.workers:
        if worker.master is None:
            continue
        pool = larry.master(worker.master).worker_pool_tokens
        if worker.tokens > pool:
            report(f"Worker {worker.name} (Larry {larry.id}): needs {_n(worker.tokens)} tokens, "
                   f"master {worker.master}'s worker pool holds {_n(pool)}", None)


@stack_rule("master-pool-overcommit",
            "The workers drawing on one master's worker pool together fit that pool", ADVISORY,
            [Setting("maxOvercommit", 1.0, {"type": "number", "exclusiveMinimum": 0, "description":
                     "How many times its worker pool a master's workers may draw together"})])
def master_pool_overcommit(_resources, plan: StackConfig, report: ReportViolation, settings) -> None:
    # Advisory by default: the token ledger enforces the pool at run time, and seed 004 plans
    # more work per master than its pool holds (inventory: 32,000 on 15,000).
    ratio = float(settings["maxOvercommit"])
    for larry in plan.larrys:
        for master in larry.masters:
            used, allowed = larry.pool_draw(master.name), master.worker_pool_tokens * ratio
            if used > allowed:
                drawers = ", ".join(f"{w.name} {_n(w.tokens)}" for w in larry.workers if w.master == master.name)
                report(f"Master {master.name} (Larry {larry.id}): its workers draw {_n(used)} tokens on a "
                       f"worker pool of {_n(master.worker_pool_tokens)} (allowed {_n(allowed)} at "
                       f"maxOvercommit {ratio:g}): {drawers}", None)


@stack_rule("worker-type-cap", "A worker of a declared worker type needs no more tokens than the type's cap",
            MANDATORY)
def worker_type_cap(_resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    for larry, worker in plan.workers:
        if worker.type is None:
            continue  # typed workers only: a stack without larry:workerTypes has no caps
        cap = plan.worker_types[worker.type].tokens
        if worker.tokens > cap:
            report(f"Worker {worker.name} (Larry {larry.id}): needs {_n(worker.tokens)} tokens, "
                   f"its type {worker.type} caps workers at {_n(cap)}", None)


@stack_rule("emergency-reserve",
            "The meta-coordinator holds an emergency reserve of at least a share of the system budget",
            MANDATORY,
            [Setting("minShare", 0.05, {"type": "number", "minimum": 0, "maximum": 1, "description":
                     "Smallest emergency reserve, as a share of the system token budget"})])
def emergency_reserve(_resources, plan: StackConfig, report: ReportViolation, settings) -> None:
    share, system = float(settings["minShare"]), plan.budget.system_tokens
    reserve = plan.budget.meta.emergency_reserve_tokens
    if reserve <= 0 or plan.reserve_share < share:
        report(f"The emergency reserve is {_n(reserve)} tokens, {plan.reserve_share:.1%} of the system "
               f"budget {_n(system)}; at least {share:.1%} ({_n(math.ceil(share * system))}) is required", None)


# --------------------------------------------------------------------------- time budgets

@resource_rule("worker-deadline",
               "A worker Job's activeDeadlineSeconds and minutes fit its Larry's phase deadline",
               MANDATORY, [kube.JOB])
def worker_deadline(args, report: ReportViolation, subject: str, _settings) -> None:
    if _app(args.props) != WORKER_APP:
        return
    phase = _annotation(args.props, PHASE_DEADLINE)
    minutes = _annotation(args.props, MINUTES)
    deadline = kube.dig(args.props, "spec", "activeDeadlineSeconds")
    if deadline is None:
        report(f"{subject}: has no spec.activeDeadlineSeconds; allowed at most the phase deadline "
               f"{phase} min = {_n(phase * 60)} s", None)
    elif _whole_number(deadline, "spec.activeDeadlineSeconds") > phase * 60:
        report(f"{subject}: activeDeadlineSeconds {_n(deadline)} exceeds the phase deadline "
               f"{phase} min = {_n(phase * 60)} s", None)
    if minutes > phase:
        report(f"{subject}: the worker's {minutes} min exceed the phase deadline {phase} min", None)


@stack_rule("phase-deadline-window", "Each Larry's phase deadline fits the execution window", MANDATORY)
def phase_deadline_window(_resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    for larry in plan.larrys:
        if larry.deadline_minutes > plan.execution_window_minutes:
            report(f"Larry {larry.id}: phase deadline {larry.deadline_minutes} min exceeds the execution "
                   f"window {plan.execution_window_minutes} min", None)


# --------------------------------------------------------------------------- compute budgets

_COMPUTE = (("cpu", parse_cpu, _cpu), ("memory", parse_memory, _memory))


def _pod_requests(spec: Mapping[str, Any]) -> dict[str, int]:
    """What the scheduler reserves for one pod: its containers' requests, or the largest init
    container's if that is more (init containers run one at a time, before the others)."""
    totals = {}
    for resource, parse, _ in _COMPUTE:
        regular, init = 0, 0
        for key in ("containers", "initContainers"):
            for container in kube.items(spec.get(key)):
                container = kube.mapping(container)
                value = kube.dig(container, "resources", "requests", resource)
                if value is None:  # Kubernetes takes a missing request from the limit
                    value = kube.dig(container, "resources", "limits", resource)
                if value is None:
                    raise CannotEvaluate(f"container {_container_name(container)} requests no {resource}")
                amount = _quantity(value, parse, f"{resource} of container {_container_name(container)}")
                if key == "containers":
                    regular += amount
                else:
                    init = max(init, amount)
        totals[resource] = max(regular, init)
    return totals


@stack_rule("node-capacity",
            "On every node, the CPU and memory requests of the pods that can run there fit its allocatable "
            "from the stack config", MANDATORY,
            [Setting("maxShare", 1.0, {"type": "number", "exclusiveMinimum": 0, "maximum": 1, "description":
                     "Share of a node's allocatable that the requests may fill"})])
def node_capacity(resources, plan: StackConfig, report: ReportViolation, settings) -> None:
    """Worst case per node, since the scheduler's choices are unknown before it runs: a pod pinned
    by required node affinity counts on each node it may use, an unpinned one on every node; a
    workload whose required anti-affinity spreads it (Redis) counts once per node, any other
    with all its replicas."""
    share = float(settings["maxShare"])
    load: dict[str, dict[str, list[tuple[str, int]]]] = {node: {"cpu": [], "memory": []} for node in plan.nodes}
    for resource, subject in _workloads(resources):
        with evaluating(report, subject, resource.urn):
            template = kube.pod_template(resource.resource_type, resource.props)
            spec = kube.mapping(template.get("spec"))
            per_pod = _pod_requests(spec)
            hosts = kube.pinned_hostnames(spec)
            stray = sorted(set(hosts or ()) - set(plan.nodes))
            if stray:
                raise CannotEvaluate(f"pinned to {', '.join(stray)}, not in larry:nodes")
            pods = kube.pods_per_object(resource.resource_type, resource.props)
            if resource.resource_type == kube.DAEMON_SET or kube.one_per_node(
                    spec, kube.labels(template)):
                pods = min(pods, 1)
            who = kube.ref(resource.resource_type, resource.props, resource.name)  # short: lists get long
            for node in (hosts if hosts is not None else plan.nodes):
                for resource_name, amount in per_pod.items():
                    load[node][resource_name].append((f"{who} {pods}x", pods * amount))
    for node_name, demands in load.items():
        allocatable = plan.nodes[node_name].allocatable
        for resource_name, parse, fmt in _COMPUTE:
            used = sum(amount for _, amount in demands[resource_name])
            allowed = share * parse(getattr(allocatable, resource_name))
            if used > allowed:
                parts = ", ".join(f"{who} {fmt(amount)}" for who, amount in demands[resource_name])
                report(f"Node {node_name}: pods that can run there request {fmt(used)} {resource_name}, "
                       f"allowed {fmt(allowed)} ({share:.0%} of allocatable "
                       f"{getattr(allocatable, resource_name)}): {parts}", None)


def _containers(args) -> list[Mapping[str, Any]]:
    return kube.containers(kube.pod_spec(args.resource_type, args.props))


@resource_rule("container-resources", "Every container sets CPU and memory requests and limits",
               MANDATORY, kube.WORKLOAD_TYPES)
def container_resources(args, report: ReportViolation, subject: str, _settings) -> None:
    for container in _containers(args):
        missing = [f"{part}.{resource}" for part in ("requests", "limits") for resource, _, _ in _COMPUTE
                   if kube.dig(container, "resources", part, resource) is None]
        if missing:
            report(f"{subject}, container {_container_name(container)}: no {', '.join(missing)}", None)


@resource_rule("container-limit-ratio", "A container's limit is at most a set multiple of its request",
               MANDATORY, kube.WORKLOAD_TYPES,
               [Setting("maxRatio", 4, {"type": "number", "minimum": 1, "description":
                        "Largest limit / request ratio for CPU and memory"})])
def container_limit_ratio(args, report: ReportViolation, subject: str, settings) -> None:
    ratio = float(settings["maxRatio"])
    for container in _containers(args):
        where = f"{subject}, container {_container_name(container)}"
        for resource, parse, _ in _COMPUTE:
            with evaluating(report, where):
                request = kube.dig(container, "resources", "requests", resource)
                limit = kube.dig(container, "resources", "limits", resource)
                if request is None or limit is None:
                    side = "requests" if request is None else "limits"
                    raise CannotEvaluate(f"no {side}.{resource} to compare")
                used = _quantity(limit, parse, f"limits.{resource}")
                base = _quantity(request, parse, f"requests.{resource}")
                if used > ratio * base:
                    report(f"{where}: limits.{resource} {limit} is {used / base:.1f}x requests.{resource} "
                           f"{request} (allowed {ratio:g}x)", None)


@stack_rule("namespace-resource-quota", "Every Larry namespace has a ResourceQuota", MANDATORY)
def namespace_resource_quota(resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    covered = set()
    for resource in resources:
        if resource.resource_type == kube.RESOURCE_QUOTA:
            with evaluating(report, _subject(resource.resource_type, resource.props, resource.name), resource.urn):
                covered.add(kube.namespace(resource.props))
    for namespace in plan.namespaces:
        if namespace not in covered:
            larrys = ", ".join(larry.id for larry in plan.larrys if larry.namespace == namespace)
            report(f"Namespace {namespace} (Larrys {larrys}): no ResourceQuota", None)


# --------------------------------------------------------------------------- placement

def _check_pinned(resources, plan: StackConfig, report: ReportViolation, app: str,
                  allowed: Callable[[Larry], tuple[str, tuple[str, ...]]]) -> None:
    """Workloads labelled ``app`` carry required node affinity to nodes ``allowed`` names."""
    for resource, subject in _workloads(resources):
        with evaluating(report, subject, resource.urn):
            if _app(resource.props) != app:
                continue
            larry = _plan_larry(plan, kube.labels(resource.props).get(LARRY))
            what, nodes = allowed(larry)
            hosts = kube.pinned_hostnames(kube.pod_spec(resource.resource_type, resource.props))
            if not hosts:
                report(f"{subject}: no required node affinity on {kube.HOSTNAME} "
                       f"(allowed: {what} {', '.join(nodes)})", resource.urn)
            elif stray := sorted(hosts - set(nodes)):
                report(f"{subject}: may run on {', '.join(stray)} "
                       f"(allowed: {what} {', '.join(nodes)})", resource.urn)


@stack_rule("worker-placement",
            "Worker Jobs carry required node affinity to a worker node of their own Larry", MANDATORY)
def worker_placement(resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    _check_pinned(resources, plan, report, WORKER_APP,
                  lambda larry: (f"{larry.id}'s worker nodes", larry.worker_nodes))


@stack_rule("coordinator-placement", "Coordinators carry required node affinity to master nodes", MANDATORY)
def coordinator_placement(resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    masters = tuple(node.name for node in plan.nodes.values() if node.role == "master")
    _check_pinned(resources, plan, report, COORDINATOR_APP, lambda _larry: ("master nodes", masters))


# --------------------------------------------------------------------------- consistency

def _expected_annotations(plan: StackConfig, larry: Larry, worker: Worker) -> dict[str, Any]:
    return {TOKENS: worker.tokens, MINUTES: worker.minutes, PHASE_DEADLINE: larry.deadline_minutes,
            WINDOW: plan.execution_window_minutes, WORKER_TYPE: worker.type, MASTER: worker.master}


@stack_rule("plan-matches-resources",
            "Every planned worker has one Job whose larry.dev annotations equal the plan, and every Larry "
            "a coordinator and a plan ConfigMap", MANDATORY)
def plan_matches_resources(resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    # The resource policies read the Jobs' annotations and the stack policies the plan: this
    # keeps both views the same plan.
    jobs: dict[tuple[str, str], list[str]] = {}
    coordinators: set[str] = set()
    plan_maps: set[str] = set()
    for resource in resources:
        subject = _subject(resource.resource_type, resource.props, resource.name)
        with evaluating(report, subject, resource.urn):
            props = resource.props
            if resource.resource_type == kube.CONFIG_MAP and PLAN_KEY in kube.mapping(props.get("data")):
                plan_maps.add(str(kube.mapping(props.get("data")).get(PLAN_LARRY_KEY)))
            elif resource.resource_type in kube.WORKLOAD_TYPES and _app(props) == COORDINATOR_APP:
                coordinators.add(str(kube.labels(props).get(LARRY)))
            elif resource.resource_type == kube.JOB and _app(props) == WORKER_APP:
                _check_worker_job(plan, props, subject, report, jobs, resource.urn)
    for larry, worker in plan.workers:
        found = jobs.get((larry.id, worker.name), [])
        if len(found) != 1:
            report(f"Worker {worker.name} (Larry {larry.id}): {len(found)} Jobs, expected 1 "
                   f"({', '.join(found) or 'none'})", None)
    for larry in plan.larrys:
        if larry.id not in coordinators:
            report(f"Larry {larry.id}: no coordinator (a workload labelled app={COORDINATOR_APP}, "
                   f"{LARRY}={larry.id})", None)
        if larry.id not in plan_maps:
            report(f"Larry {larry.id}: no plan ConfigMap with data {PLAN_LARRY_KEY}={larry.id}", None)


def _check_worker_job(plan: StackConfig, props: Mapping[str, Any], subject: str, report: ReportViolation,
                      jobs: dict[tuple[str, str], list[str]], urn: str) -> None:
    labels, notes = kube.labels(props), kube.annotations(props)
    larry = _plan_larry(plan, labels.get(LARRY))
    worker = next((w for w in larry.workers if w.name == labels.get(WORKER)), None)
    if worker is None:
        raise CannotEvaluate(f"label {WORKER}={labels.get(WORKER)} names no worker of Larry {larry.id}")
    jobs.setdefault((larry.id, worker.name), []).append(subject)
    for key, want in _expected_annotations(plan, larry, worker).items():
        got = notes.get(key)
        if want is None and got in (None, ""):
            continue
        if got is None or str(got) != str(want):
            report(f"{subject}: annotation {key} is {got!r}, the plan gives {want!r}", urn)
    if labels.get(MASTER) != worker.master:
        report(f"{subject}: label {MASTER} is {labels.get(MASTER)!r}, the plan gives {worker.master!r}", urn)


# --------------------------------------------------------------------------- safety

def _is_redis(container: Mapping[str, Any]) -> bool:
    return kube.image_repository(str(container.get("image") or "")) == "redis"


# "requirepass" and its value: a variable ("$VAR", "${VAR}", "$(VAR)" for Kubernetes
# expansion), a printf placeholder filled from one, or else a password written out literally.
_REQUIREPASS = re.compile(r"requirepass[\s=]+[\"']?(?:\$[({]?(\w+)|(%s))?")
_PATH = re.compile(r"(?<![\w$.])/[\w.-]+(?:/[\w.-]+)+")


@stack_rule("redis-password",
            "Every container running the redis image (servers and sentinels) requires a password taken "
            "from a Secret", MANDATORY, needs_plan=False)
def redis_password(resources, _plan, report: ReportViolation, _settings) -> None:
    """``requirepass`` must appear in the container's command or args, or in a script or config
    file they name that a ConfigMap of the stack mounts, with its value from a Secret."""
    files = _config_map_files(resources, report)
    for resource, subject in _workloads(resources):
        with evaluating(report, subject, resource.urn):
            spec = kube.pod_spec(resource.resource_type, resource.props)
            for container in kube.containers(spec):
                if _is_redis(container):
                    where = f"{subject}, container {_container_name(container)}"
                    with evaluating(report, where, resource.urn):
                        _check_requirepass(where, container, _startup_texts(
                            container, spec, files, kube.namespace(resource.props)), report, resource.urn)


def _config_map_files(resources: list[PolicyResource], report: ReportViolation) -> dict[tuple[str, str], Any]:
    """Each ConfigMap's data by (namespace, name): where a pod's mounted scripts come from."""
    files = {}
    for resource in resources:
        if resource.resource_type == kube.CONFIG_MAP:
            with evaluating(report, _subject(resource.resource_type, resource.props, resource.name), resource.urn):
                files[(kube.namespace(resource.props), kube.name(resource.props))] = kube.mapping(
                    resource.props.get("data"))
    return files


def _startup_texts(container: Mapping[str, Any], spec: Mapping[str, Any], files: Mapping[tuple[str, str], Any],
                   namespace: str) -> dict[str, str]:
    """The command line, and the text of every file it (transitively) names that a ConfigMap in
    the stack provides through the container's mounts, by path."""
    line = " ".join(str(part) for key in ("command", "args") for part in kube.items(container.get(key)))
    texts, pending = {"its command and args": line}, _PATH.findall(line)
    volumes = {v.get("name"): v for v in map(kube.mapping, kube.items(spec.get("volumes")))}
    mounts = sorted(map(kube.mapping, kube.items(container.get("volumeMounts"))),
                    key=lambda m: -len(str(m.get("mountPath", ""))))  # the deepest mount serves a path
    while pending:
        path = pending.pop()
        if path in texts:
            continue
        mount = next((m for m in mounts if path.startswith(str(m.get("mountPath", "")).rstrip("/") + "/")), None)
        source = kube.dig(volumes.get(mount.get("name")) if mount else None, "configMap")
        if source is None:
            continue  # not from a ConfigMap (emptyDir, image): nothing the plan shows
        key = path[len(str(mount.get("mountPath")).rstrip("/")) + 1:]
        key = next((i.get("key") for i in map(kube.mapping, kube.items(source.get("items")))
                    if i.get("path") == key), key)
        data = files.get((namespace, source.get("name")))
        if data is None:
            raise CannotEvaluate(f"{path} comes from ConfigMap {source.get('name')}, which is not in the stack")
        text = data.get(key)
        if text is not None:
            texts[path] = str(text)
            pending += _PATH.findall(str(text))
    return texts


def _check_requirepass(where: str, container: Mapping[str, Any], texts: Mapping[str, str],
                       report: ReportViolation, urn: str) -> None:
    found = [(path, match) for path, text in texts.items() for match in _REQUIREPASS.finditer(text)]
    if not found:
        report(f"{where}: starts Redis without requirepass in {', '.join(texts)}", urn)
    for path, match in found:
        variable, placeholder = match.groups()
        if variable is None and placeholder is None:
            report(f"{where}: requirepass in {path} is not followed by a variable set from a Secret "
                   "(a literal password would sit in the manifest)", urn)
        elif variable and not _from_secret(container, variable):
            report(f"{where}: requirepass in {path} uses ${variable}, which is not set from a Secret", urn)
        elif not variable and not _from_secret(container, None):
            report(f"{where}: requirepass in {path} is filled from a printf placeholder, and the container "
                   "has no variable set from a Secret", urn)


def _from_secret(container: Mapping[str, Any], variable: str | None) -> bool:
    """``variable`` (any variable when None) is set from a Secret."""
    if any(kube.dig(source, "secretRef") is not None for source in kube.items(container.get("envFrom"))):
        return True
    return any(kube.dig(env, "valueFrom", "secretKeyRef") is not None
               for env in map(kube.mapping, kube.items(container.get("env")))
               if variable is None or env.get("name") == variable)


def _open_ingress(policy: Mapping[str, Any]) -> list[str]:
    """Why a NetworkPolicy admits traffic from anywhere: a rule without sources, or a source
    that is every namespace or every address."""
    reasons = []
    for i, rule in enumerate(kube.items(kube.dig(policy, "spec", "ingress"))):
        sources = kube.items(kube.mapping(rule).get("from"))
        if not sources:
            reasons.append(f"ingress rule {i} has no 'from'")
        for source in map(kube.mapping, sources):
            everyone = source.get("namespaceSelector") == {} and source.get("podSelector") in (None, {})
            if everyone or kube.dig(source, "ipBlock", "cidr") in ("0.0.0.0/0", "::/0"):
                reasons.append(f"ingress rule {i} admits every namespace or address")
    return reasons


def _fences_ingress(policy: Mapping[str, Any]) -> bool:
    types = kube.items(kube.dig(policy, "spec", "policyTypes"))
    return not types or "Ingress" in types  # without policyTypes, Ingress always applies


@stack_rule("redis-network-policy",
            "Every Redis workload is selected by a NetworkPolicy that restricts ingress, and none "
            "selecting it admits traffic from anywhere", MANDATORY)
def redis_network_policy(resources, plan: StackConfig, report: ReportViolation, _settings) -> None:
    network_policies = []
    for resource in resources:
        if resource.resource_type == kube.NETWORK_POLICY:
            subject = _subject(resource.resource_type, resource.props, resource.name)
            with evaluating(report, subject, resource.urn):
                network_policies.append((subject, kube.namespace(resource.props), resource.props))
    found = False
    for resource, subject in _workloads(resources):
        with evaluating(report, subject, resource.urn):
            template = kube.pod_template(resource.resource_type, resource.props)
            if not any(_is_redis(c) for c in kube.containers(kube.mapping(template.get("spec")))):
                continue
            found = True
            space, pod_labels = kube.namespace(resource.props), kube.labels(template)
            selecting = [(name, props) for name, policy_space, props in network_policies
                         if policy_space == space and _fences_ingress(props)
                         and kube.selector_matches(kube.dig(props, "spec", "podSelector"), pod_labels)]
            if not selecting:
                report(f"{subject}: no NetworkPolicy in namespace {space} selects its pods "
                       f"({', '.join(f'{k}={v}' for k, v in sorted(pod_labels.items()))}) for ingress", resource.urn)
            for name, props in selecting:
                for reason in _open_ingress(props):
                    report(f"{subject}: {name} {reason}", resource.urn)
    if not found:
        report(f"cannot evaluate: no workload runs the redis image, though the plan deploys Redis "
               f"in namespace {plan.redis.namespace}", None)


_ESCALATING_CAPABILITIES = {"ALL", "SYS_ADMIN"}


@resource_rule("container-security", "No container is privileged, may run as root, or may escalate privileges",
               MANDATORY, kube.WORKLOAD_TYPES)
def container_security(args, report: ReportViolation, subject: str, _settings) -> None:
    pod = kube.mapping(kube.pod_spec(args.resource_type, args.props).get("securityContext"))
    for container in _containers(args):
        context = kube.mapping(container.get("securityContext"))
        # A container's own setting wins over the pod's.
        user = next((v for v in (context.get("runAsUser"), pod.get("runAsUser")) if v is not None), None)
        non_root = next((v for v in (context.get("runAsNonRoot"), pod.get("runAsNonRoot")) if v is not None), None)
        problems = []
        if context.get("privileged") is True:
            problems.append("privileged: true")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append("allowPrivilegeEscalation is not false (Kubernetes defaults it to true)")
        added = {str(c) for c in kube.items(kube.dig(context, "capabilities", "add"))} & _ESCALATING_CAPABILITIES
        if added:
            problems.append(f"adds capabilities {', '.join(sorted(added))}")
        if user is not None and _whole_number(user, "runAsUser") == 0:
            problems.append("runs as root (runAsUser 0)")
        elif user is None and non_root is not True:
            problems.append("may run as root (neither runAsNonRoot: true nor a non-zero runAsUser)")
        if problems:
            report(f"{subject}, container {_container_name(container)}: {'; '.join(problems)}", None)


@resource_rule("clusterrole-read-only",
               "ClusterRoles only read: no write verb, no access to Secrets, no wildcard resources",
               MANDATORY, [kube.CLUSTER_ROLE],
               [Setting("allowedVerbs", ["get", "list", "watch"], {"type": "array", "items": {"type": "string"},
                        "description": "Verbs a ClusterRole may grant"}),
                Setting("forbiddenResources", ["secrets", "*"], {"type": "array", "items": {"type": "string"},
                        "description": "Resources a ClusterRole may not name"})])
def clusterrole_read_only(args, report: ReportViolation, subject: str, settings) -> None:
    if args.props.get("aggregationRule") is not None:
        raise CannotEvaluate("it aggregates other ClusterRoles, whose rules this policy does not see")
    allowed, forbidden = set(settings["allowedVerbs"]), set(settings["forbiddenResources"])
    for i, rule in enumerate(map(kube.mapping, kube.items(args.props.get("rules")))):
        verbs = [str(v) for v in kube.items(rule.get("verbs"))]
        targets = [str(r) for r in kube.items(rule.get("resources"))] or [
            str(u) for u in kube.items(rule.get("nonResourceURLs"))]
        writes = [v for v in verbs if v not in allowed]
        if writes:
            report(f"{subject}: rule {i} grants {', '.join(writes)} on {', '.join(targets)} "
                   f"(allowed verbs: {', '.join(sorted(allowed))})", None)
        named = [r for r in targets if r in forbidden]
        if named:
            report(f"{subject}: rule {i} grants access to {', '.join(named)}", None)


@resource_rule("image-tag", "Every container image names a tag other than latest (or a digest)",
               ADVISORY, kube.WORKLOAD_TYPES,
               [Setting("forbiddenTags", ["latest"], {"type": "array", "items": {"type": "string"},
                        "description": "Image tags that do not pin a version"})])
def image_tag(args, report: ReportViolation, subject: str, settings) -> None:
    forbidden = set(settings["forbiddenTags"])
    for container in _containers(args):
        image = str(container.get("image") or "")
        tag = kube.image_tag(image)
        if tag is None or tag in forbidden:
            report(f"{subject}, container {_container_name(container)}: image {image or '(none)'} "
                   f"is {'untagged' if tag is None else 'tagged ' + tag}, so it is not pinned", None)
