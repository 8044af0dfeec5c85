"""The pack as a whole: every rule on the committed stacks and on the real program's objects,
the Policy objects it builds, pulumi-policy's analyzer, and the policy project (policies/__main__.py)."""
from __future__ import annotations

import copy
import runpy

import pytest
import yaml
from google.protobuf import struct_pb2
from pulumi_policy import EnforcementLevel
from pulumi_policy.proxy import UNKNOWN_NUMBER_VALUE

from policies.rules import RULES
from policies.rules import policies as pack_policies
from tests.policies.harness import (
    CLEANUP,
    all_violations,
    containers_of,
    larry_values,
    mandatory,
    named,
    plan,
    program_resources,
    raise_cortex_budget,
    render,
    worker_values,
)
from tests.support.project import ROOT

# --------------------------------------------------------------------------- the committed stacks

def test_dev_plan_passes_every_policy(dev_resources):
    assert all_violations(dev_resources) == {}


def test_cortex_fails_only_the_system_budget_naming_allocations_and_budget():
    found = all_violations(render(plan("cortex")))
    assert list(mandatory(found)) == ["system-token-budget"]
    assert found["system-token-budget"] == [
        "The plan allocates 365,000 tokens, the system budget is 295,000 (over by 70,000): Larrys 260,000 "
        "(security 45,000, development 50,000, inventory 50,000, cicd 45,000, testing 40,000, monitoring 30,000); "
        "meta-coordinator 105,000 (orchestration 50,000, worker pool 30,000, emergency reserve 25,000)"]


def test_cortex_with_a_system_budget_that_fits_has_no_mandatory_violation():
    found = all_violations(render(plan("cortex", raise_cortex_budget)))
    assert mandatory(found) == {}
    # What stays is advice: seed 004 gives masters more workers than their pools hold.
    assert set(found) == {"master-pool-overcommit"}
    assert ("Master inventory-master (Larry inventory): its workers draw 32,000 tokens on a worker pool of 15,000 "
            "(allowed 15,000 at maxOvercommit 1): catalog-worker-01 8,000, catalog-worker-02 8,000, "
            "catalog-worker-03 8,000, catalog-worker-04 8,000") in found["master-pool-overcommit"]


def test_program_dev_stack_passes_every_policy():
    assert all_violations(program_resources("dev")) == {}


def test_program_cortex_stack_fails_on_its_system_budget_until_it_is_raised():
    found = all_violations(program_resources("cortex"))
    assert list(mandatory(found)) == ["system-token-budget"]
    assert "allocates 365,000 tokens, the system budget is 295,000" in found["system-token-budget"][0]
    assert mandatory(all_violations(program_resources("cortex", raise_cortex_budget))) == {}


@pytest.mark.parametrize("edit, policy, expected", [
    (lambda values: worker_values(values, "feature-worker").update(tokens=30_000), "larry-token-budget",
     "Larry larry-03: allocates 229,000 tokens, its tokenBudget is 211,000 (over by 18,000)"),
    (lambda values: values["larry:budget"].update(systemTokens=400_000), "system-token-budget",
     "The plan allocates 478,000 tokens, the system budget is 400,000 (over by 78,000)"),
    (lambda values: larry_values(values, "larry-01")["workers"].extend(
        {**copy.deepcopy(worker_values(values, "cleanup-worker")), "name": f"extra-worker-{i}", "tokens": 1,
         "tasks": [{"id": f"extra-task-{i}", "title": "Extra"}]} for i in range(5)), "node-capacity",
     "Node k3s-worker01: pods that can run there request 9,"),
    (lambda values: worker_values(values, "cleanup-worker").update(minutes=30), "worker-deadline",
     f"{CLEANUP}: the worker's 30 min exceed the phase deadline 25 min"),
], ids=["worker-past-larry-budget", "system-past-cap", "node-overfull", "deadline-past-phase"])
def test_program_over_budget_variants_fail_the_right_policy(edit, policy, expected):
    found = mandatory(all_violations(program_resources("dev", edit)))
    assert policy in found and any(message.startswith(expected) for message in found[policy]), found


# --------------------------------------------------------------------------- the pack

def test_policies_carry_their_levels_and_config_schemas():
    policies = {p.name: p for p in pack_policies()}
    assert len(policies) == len(RULES) == 22
    advisory = {name for name, p in policies.items() if p.enforcement_level is EnforcementLevel.ADVISORY}
    assert advisory == {"master-pool-overcommit", "image-tag"}
    schema = policies["container-limit-ratio"].config_schema.properties
    assert schema == {"maxRatio": {"type": "number", "minimum": 1, "default": 4,
                                   "description": "Largest limit / request ratio for CPU and memory"}}
    assert policies["emergency-reserve"].config_schema.properties["minShare"]["default"] == 0.05


def test_through_the_analyzer_an_unknown_is_a_mandatory_violation_and_config_applies(dev_resources):
    # pulumi-policy's own servicer (what PolicyPack serves over gRPC), fed protobuf requests as
    # the engine sends them: an unknown value must not fall back to its advisory note, and
    # --policy-pack-config must reach the validators and override enforcement levels.
    from pulumi.runtime.proto import analyzer_pb2 as proto
    from pulumi_policy.policy import _PolicyAnalyzerServicer

    def struct(values: dict) -> struct_pb2.Struct:
        message = struct_pb2.Struct()
        message.update(values)
        return message

    servicer = _PolicyAnalyzerServicer("larry", "0.1.0", pack_policies(), EnforcementLevel.ADVISORY)
    servicer.Configure(proto.ConfigureAnalyzerRequest(policyConfig={
        "container-limit-ratio": proto.PolicyConfig(enforcementLevel=proto.MANDATORY,
                                                    properties=struct({"maxRatio": 1})),
        "image-tag": proto.PolicyConfig(enforcementLevel=proto.DISABLED)}), None)
    job = named(dev_resources, "larry-01-cleanup-worker")
    job.props["spec"]["activeDeadlineSeconds"] = UNKNOWN_NUMBER_VALUE
    containers_of(job)[0]["image"] = "larry-runtime:latest"
    response = servicer.Analyze(proto.AnalyzeRequest(type=job.type, properties=struct(job.props), urn=job.urn,
                                                     name=job.name), None)
    found = {(d.policyName, d.enforcementLevel) for d in response.diagnostics}
    assert found == {("worker-deadline", proto.MANDATORY), ("container-limit-ratio", proto.MANDATORY)}
    assert any("can't be known during preview" in d.message for d in response.diagnostics)


def test_main_only_constructs_the_pack(monkeypatch):
    built = {}
    monkeypatch.setattr("pulumi_policy.PolicyPack", lambda **kwargs: built.update(kwargs))
    runpy.run_path(str(ROOT / "policies"), run_name="__main__")
    assert built["name"] == "larry"
    assert [p.name for p in built["policies"]] == list(RULES)


def test_policy_project_uses_the_project_virtualenv():
    project = yaml.safe_load((ROOT / "policies" / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    # The engine starts the pack in policies/, so the path is relative to it.
    venv = ROOT / "policies" / project["runtime"]["options"]["virtualenv"]
    assert venv.resolve() == (ROOT / ".venv").resolve()
