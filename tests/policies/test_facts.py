"""Reading the plan from the stack's ConfigMaps, and what a rule does when it cannot (policies/facts.py)."""
from __future__ import annotations

from pulumi_policy.proxy import UNKNOWN_STRING_VALUE

from policies import kube
from policies.rules import RULES
from tests.policies.harness import (
    all_violations,
    named,
    plan,
    violations,
)


def test_without_a_plan_every_plan_policy_reports_it_cannot_evaluate(dev_resources):
    resources = [r for r in dev_resources if r.type != kube.CONFIG_MAP]
    found = all_violations(resources)
    plan_rules = [name for name, rule in RULES.items() if rule.resource_types is None and name != "redis-password"]
    assert sorted(found) == sorted(plan_rules)
    assert all(messages == ["cannot evaluate: the stack has no plan ConfigMap (data 'plan.yaml', one per Larry)"]
               for name, messages in found.items())


def test_a_plan_unknown_in_preview_is_a_violation_not_a_pass(dev_resources):
    for resource in dev_resources:
        if resource.type == kube.CONFIG_MAP:
            resource.props["data"]["plan.yaml"] = UNKNOWN_STRING_VALUE
    found = violations("system-token-budget", dev_resources)
    assert found[0] == ("ConfigMap larry-01/larry-01-plan: cannot evaluate, string value at .data.plan.yaml "
                        "can't be known during preview")
    assert found[-1] == "cannot evaluate: the stack has no plan ConfigMap (data 'plan.yaml', one per Larry)"


def test_plan_maps_that_disagree_or_do_not_load_cannot_evaluate(dev, dev_resources):
    other = plan("dev", lambda values: values["larry:budget"].update(systemTokens=1_000_000))
    named(dev_resources, "larry-02-plan").props["data"]["plan.yaml"] = other.slice_documents()["larry-02"]
    assert violations("system-token-budget", dev_resources) == [
        "cannot evaluate: the plan does not load: ConfigMap larry-02/larry-02-plan: larry:budget differs from "
        "ConfigMap larry-01/larry-01-plan's (slices of one plan share it)"]
    named(dev_resources, "larry-02-plan").props["data"]["plan.yaml"] = other.plan_document()
    assert violations("system-token-budget", dev_resources) == [
        "cannot evaluate: the plan does not load: ConfigMap larry-02/larry-02-plan: a whole plan given beside "
        "other plans or slices (ConfigMap larry-01/larry-01-plan, ConfigMap larry-03/larry-03-plan)"]
    for resource in dev_resources:
        if resource.type == kube.CONFIG_MAP:
            resource.props["data"]["plan.yaml"] = "config: {larry:executionWindowMinutes: -1}"
    [message] = violations("system-token-budget", dev_resources)
    assert message.startswith("cannot evaluate: the plan does not load: ConfigMap larry-01/larry-01-plan: "
                              "larry:executionWindowMinutes: expected a positive integer, got number -1")
