"""How a rule of the pack is declared: a check, its name, level and settings, turned into the
pulumi-policy ``Policy`` the engine calls.

``resource_rule`` and ``stack_rule`` wrap a check into the ``validate(args, report)`` function
pulumi-policy calls, so each rule can be called with the arguments the engine builds.
Guaranteed: the check runs with its settings filled in (the operator's
``--policy-pack-config`` over the defaults written here), and a fact it cannot read is
reported as a violation at the rule's own level (``facts.evaluating``); a stack rule that
needs the plan runs only once the plan has loaded, the failure to load being reported
instead. Not guaranteed: that the engine calls a rule at all (``--policy-pack`` decides).
"""
from __future__ import annotations

from collections.abc import Mapping
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

from policies.facts import describe, evaluating, load_plan

MANDATORY = EnforcementLevel.MANDATORY
ADVISORY = EnforcementLevel.ADVISORY


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


def _settings(args: Any, settings: Iterable[Setting]) -> dict[str, Any]:
    given = args.get_config() or {}
    return {s.key: given.get(s.key, s.default) for s in settings}


def resource_rule(name: str, description: str, level: EnforcementLevel, types: Iterable[str],
                  settings: Iterable[Setting] = ()) -> Callable[[Callable], Rule]:
    """A resource policy on ``types`` from ``check(args, report, subject, settings)``."""
    types, settings = tuple(types), tuple(settings)

    def declare(check: Callable) -> Rule:
        def validate(args: Any, report: ReportViolation) -> None:
            if args.resource_type not in types:
                return
            where = describe(args.resource_type, args.props, args.name)
            with evaluating(report, where):
                check(args, report, where, _settings(args, settings))

        return Rule(name, description, level, validate, types, settings)

    return declare


def stack_rule(name: str, description: str, level: EnforcementLevel, settings: Iterable[Setting] = (),
               needs_plan: bool = True) -> Callable[[Callable], Rule]:
    """A stack policy from ``check(resources, plan, report, settings)`` (``plan`` is None when
    the rule does not need it)."""
    settings = tuple(settings)

    def declare(check: Callable) -> Rule:
        def validate(args: Any, report: ReportViolation) -> None:
            resources = list(args.resources)
            plan = load_plan(resources, report) if needs_plan else None
            if plan is not None or not needs_plan:
                check(resources, plan, report, _settings(args, settings))

        return Rule(name, description, level, validate, None, settings)

    return declare
