"""What the rules read from a stack: its plan, the objects' names and labels, numbers from
annotations, and the way a fact that cannot be read becomes a violation.

Where the numbers come from:

* The stack config the plan ConfigMaps carry (``data[plan.pods.PLAN_KEY]``, each Larry's
  slice), joined into the whole plan by ``plan.loader.load_plan_documents``. Its objects hold all budget arithmetic
  (``allocated_tokens``, ``pool_draw``, ``reserve_share`` ...); the rules only compare.
* Per worker, the ``larry.dev/*`` annotations of its Job, which resource policies can read on
  their own; ``plan-matches-resources`` holds them equal to the plan.
* Compute requests, limits, placement and security from the rendered objects themselves.

Guaranteed: a fact that is absent, malformed or unknown during preview raises
``CannotEvaluate`` or pulumi-policy's ``UnknownValueError``, and ``evaluating`` reports either
as a violation: pulumi-policy itself would turn an unknown value into an advisory note, and
an over-budget plan would then pass. Not guaranteed: that a fact read here is what the
cluster will run; the rules see the program's inputs, not the applied objects.
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Mapping
from typing import Any, Iterable

from pulumi_policy import ReportViolation
from pulumi_policy.policy import PolicyResource
from pulumi_policy.proxy import UnknownValueError

from plan import labels, pods
from plan.loader import ConfigError, load_plan_documents
from plan.model import Larry, StackConfig
from policies import kube


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


def describe(resource_type: str, props: Mapping[str, Any], fallback: str) -> str:
    """How messages name an object: ``Job larry-01/cleanup-worker (Larry larry-01, worker cleanup-worker)``,
    with the agent profile its labels name, if any."""
    try:
        text = kube.ref(resource_type, props, fallback)
        found = kube.labels(props)
        context = [f"{what} {found[key]}" for key, what in (
            (labels.LARRY, "Larry"), (labels.WORKER, "worker"), (labels.AGENT, "agent profile")) if key in found]
    except UnknownValueError:  # a name unknown in preview: the Pulumi name still identifies it
        return f"{kube.kind(resource_type)} {fallback}"
    return f"{text} ({', '.join(context)})" if context else text


@functools.lru_cache(maxsize=8)
def _parse_plan(documents: tuple[tuple[str, str], ...]) -> StackConfig:
    # Every stack policy reads the same documents; join and validate them once per run.
    return load_plan_documents(dict(documents))


def load_plan(resources: Iterable[PolicyResource], report: ReportViolation) -> StackConfig | None:
    """The stack config the plan ConfigMaps carry (each Larry's slice, joined), or None after
    reporting why not."""
    documents: dict[str, str] = {}
    for resource in resources:
        if resource.resource_type != kube.CONFIG_MAP:
            continue
        where = describe(resource.resource_type, resource.props, resource.name)
        with evaluating(report, where, resource.urn):
            text = kube.mapping(resource.props.get("data")).get(pods.PLAN_KEY)
            if text is not None:
                documents[where] = str(text)
    if not documents:
        report(f"cannot evaluate: the stack has no plan ConfigMap (data {pods.PLAN_KEY!r}, one per Larry)", None)
        return None
    try:
        return _parse_plan(tuple(documents.items()))
    except ConfigError as exc:
        report(f"cannot evaluate: the plan does not load: {exc}", None)
        return None


def plan_larry(plan: StackConfig, larry_id: Any) -> Larry:
    """The Larry a ``larry.dev/larry`` label names."""
    if larry_id is None:
        raise CannotEvaluate(f"label {labels.LARRY} is missing")
    try:
        return plan.larry(str(larry_id))
    except KeyError:
        raise CannotEvaluate(f"label {labels.LARRY}={larry_id} names no Larry of the plan") from None


def whole_number(value: Any, what: str) -> int:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CannotEvaluate(f"{what} is {value!r}, not a number") from None
    if not number.is_integer():
        raise CannotEvaluate(f"{what} is {value!r}, not a whole number")
    return int(number)


def app(props: Mapping[str, Any]) -> Any:
    """The object's ``app`` label: which part of a Larry it is (coordinator, worker)."""
    return kube.labels(props).get(labels.APP)


def workloads(resources: Iterable[PolicyResource]) -> Iterator[tuple[PolicyResource, str]]:
    """Every pod-creating object of the stack, with its subject."""
    for resource in resources:
        if resource.resource_type in kube.WORKLOAD_TYPES:
            yield resource, describe(resource.resource_type, resource.props, resource.name)


def containers(args: Any) -> list[Mapping[str, Any]]:
    """The containers of the workload a resource policy is given."""
    return kube.containers(kube.pod_spec(args.resource_type, args.props))


def container_name(container: Mapping[str, Any]) -> str:
    return str(container.get("name") or "?")


def grouped(number: float) -> str:
    """A whole number as messages write it: ``365,000``."""
    return f"{int(number):,}"
