"""Token budget rules (policies/rules/tokens.py)."""
from __future__ import annotations

from pulumi_policy import EnforcementLevel

from policies.rules import RULES
from tests.policies.harness import (
    larry_values,
    plan,
    raise_cortex_budget,
    render,
    violations,
    worker_values,
)


def test_larry_budget_fails_when_a_worker_outgrows_it():
    cfg = plan("dev", lambda values: worker_values(values, "cleanup-worker").update(tokens=16_000))
    assert violations("larry-token-budget", render(cfg)) == [
        "Larry larry-01: allocates 119,000 tokens, its tokenBudget is 111,000 (over by 8,000): "
        "cicd-master 45,000 (30,000 personal + 15,000 worker pool), monitoring-master 30,000 (20,000 personal + "
        "10,000 worker pool), cleanup-worker 16,000 (no master), consolidation-worker 10,000 (no master), "
        "optimization-worker 8,000 (no master), monitoring-worker 10,000 (no master)"]


def test_larry_budget_counts_a_master_workers_draw_only_through_the_pool():
    # A worker naming a master draws on that master's pool: giving larry-01's workers to
    # cicd-master frees 36,000 of the Larry's budget instead of adding to it.
    def give_to_master(values):
        for worker in larry_values(values, "larry-01")["workers"]:
            worker["master"] = "cicd-master"
            worker["tokens"] = 4_000
    cfg = plan("dev", give_to_master)
    assert violations("larry-token-budget", render(cfg)) == []
    assert violations("worker-fits-master-pool", render(cfg)) == []


def test_system_budget_fails_when_the_dev_plan_outgrows_it(dev_resources):
    assert violations("system-token-budget", dev_resources) == []
    cfg = plan("dev", lambda values: values["larry:budget"].update(systemTokens=470_000))
    [message] = violations("system-token-budget", render(cfg))
    assert message.startswith("The plan allocates 478,000 tokens, the system budget is 470,000 (over by 8,000): "
                              "Larrys 403,000 (larry-01 111,000, larry-02 81,000, larry-03 211,000)")


def test_a_worker_that_names_a_master_must_fit_its_pool():
    cfg = plan("cortex", lambda values: (raise_cortex_budget(values), worker_values(
        values, "analysis-worker-02").update(tokens=12_000)))
    assert violations("worker-fits-master-pool", render(cfg)) == [
        "Worker analysis-worker-02 (Larry monitoring): needs 12,000 tokens, master monitoring-master's "
        "worker pool holds 10,000"]


def test_pool_overcommit_is_advisory_and_its_ratio_is_configurable():
    assert RULES["master-pool-overcommit"].level is EnforcementLevel.ADVISORY
    resources = render(plan("cortex", raise_cortex_budget))
    assert len(violations("master-pool-overcommit", resources)) == 4  # security, development, inventory, testing
    assert violations("master-pool-overcommit", resources, {"maxOvercommit": 2.2}) == []


def test_worker_type_cap():
    resources = render(plan("cortex", raise_cortex_budget))
    assert violations("worker-type-cap", resources) == []
    cfg = plan("cortex", lambda values: worker_values(values, "scan-worker-02").update(tokens=9_000))
    assert violations("worker-type-cap", render(cfg)) == [
        "Worker scan-worker-02 (Larry security): needs 9,000 tokens, its type scan-worker caps workers at 8,000"]


def test_emergency_reserve_share_default_and_configured(dev_resources):
    assert violations("emergency-reserve", dev_resources) == []  # 25,000 of 478,000 = 5.2 %
    assert violations("emergency-reserve", dev_resources, {"minShare": 0.06}) == [
        "The emergency reserve is 25,000 tokens, 5.2% of the system budget 478,000; at least 6.0% (28,680) "
        "is required"]
    cfg = plan("dev", lambda values: values["larry:budget"]["metaCoordinator"].update(emergencyReserveTokens=20_000))
    assert violations("emergency-reserve", render(cfg)) == [
        "The emergency reserve is 20,000 tokens, 4.2% of the system budget 478,000; at least 5.0% (23,900) "
        "is required"]
