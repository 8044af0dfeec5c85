"""The pack's rules, one module per domain:

* ``tokens``: Larry and system token budgets, master pools, worker-type caps, the emergency reserve
* ``deadlines``: worker Job deadlines within the phase, phase deadlines within the window
* ``compute``: node capacity, container requests and limits, namespace quotas
* ``placement``: workers on their Larry's worker nodes, coordinators on master nodes
* ``consistency``: the Jobs' annotations and the plan ConfigMaps are the same plan
* ``safety``: Redis password and network fence, container privileges, read-only ClusterRoles, pinned images,
  egress open to everything, credentials as literal values

Guaranteed: every rule has a unique name; ``policies()`` lists them in the order above. Not
guaranteed: one report per mistake; a missing plan ConfigMap, say, stops every rule that
needs the plan, and each says so.
"""
from __future__ import annotations

from pulumi_policy import Policy

from policies.rule import Rule
from policies.rules import compute, consistency, deadlines, placement, safety, tokens


def _by_name(rules: list[Rule]) -> dict[str, Rule]:
    named = {rule.name: rule for rule in rules}
    if len(named) != len(rules):
        raise ValueError(f"two rules share a name: {sorted(rule.name for rule in rules)}")
    return named


RULES: dict[str, Rule] = _by_name([rule for domain in (tokens, deadlines, compute, placement, consistency, safety)
                                   for rule in domain.RULES])


def policies() -> list[Policy]:
    """Every rule as a pulumi-policy Policy, for ``PolicyPack(policies=...)``."""
    return [rule.policy() for rule in RULES.values()]
