"""The policy pack through the real engine, run exactly as the README's CI recipe says:
`make preview STACK=<name> POLICY=1`, on the committed stacks and on over-budget variants
generated from them."""
from __future__ import annotations

import copy

import pytest

from tests.engine.pulumi_cli import copy_project, engine_env, run, stack_document


def preview_with_policies(tmp_path, stack: str, document: dict):
    project = copy_project(tmp_path / "project", {stack: document})
    env = engine_env(f"file://{tmp_path / 'state'}")
    (tmp_path / "state").mkdir()
    # The copy's .venv is the project's own: -o keeps make from re-installing the project into
    # it from the copy (which would point the shared virtualenv's `larry` at a temporary directory).
    done = run(["make", "--no-print-directory", "-o", ".venv/.installed", "preview", f"STACK={stack}", "POLICY=1"],
               project, env, check=False)
    return done.returncode, done.stdout + done.stderr


def test_dev_passes_with_no_mandatory_violation(tmp_path):
    code, output = preview_with_policies(tmp_path, "dev", stack_document("dev"))
    assert code == 0, output
    assert "Loading policy packs" in output and "[mandatory]" not in output


def test_committed_cortex_plan_is_blocked_naming_the_allocations_and_the_budget(tmp_path):
    code, output = preview_with_policies(tmp_path, "cortex", stack_document("cortex"))
    assert code != 0
    assert "[mandatory]  system-token-budget" in output
    assert "The plan allocates 365,000 tokens, the system budget is 295,000 (over by 70,000)" in output
    assert "meta-coordinator 105,000 (orchestration 50,000, worker pool 30,000, emergency reserve 25,000)" in output


def test_cortex_passes_once_its_system_budget_fits(tmp_path):
    document = stack_document("cortex")
    document["config"]["larry:budget"]["systemTokens"] = 365_000
    code, output = preview_with_policies(tmp_path, "cortex", document)
    assert code == 0, output
    assert "[mandatory]" not in output
    assert "[advisory]  master-pool-overcommit" in output  # seed 004's pools stay overcommitted


def _dev_worker(document, larry: int, name: str) -> dict:
    return next(w for w in document["config"]["larry:larrys"][larry]["workers"] if w["name"] == name)


def _raise_feature_worker(document):
    _dev_worker(document, 2, "feature-worker")["tokens"] = 30_000


def _shrink_system_budget(document):
    document["config"]["larry:budget"]["systemTokens"] = 400_000


def _crowd_worker01(document):
    workers = document["config"]["larry:larrys"][0]["workers"]
    template = workers[0]
    for n in range(5):
        extra = copy.deepcopy(template)
        extra.update(name=f"extra-worker-{n}", tokens=1,
                     tasks=[{"id": f"extra-task-{n}", "title": "extra work on k3s-worker01"}])
        workers.append(extra)


def _stretch_cleanup_worker(document):
    _dev_worker(document, 0, "cleanup-worker")["minutes"] = 30


@pytest.mark.parametrize("mutate,policy,numbers", [
    (_raise_feature_worker, "larry-token-budget", ["229,000", "211,000"]),
    (_shrink_system_budget, "system-token-budget", ["478,000", "400,000"]),
    (_crowd_worker01, "node-capacity", ["k3s-worker01"]),
    (_stretch_cleanup_worker, "worker-deadline", ["30 min exceed the phase deadline 25 min"]),
], ids=["worker-past-larry-budget", "system-past-cap", "node-overfull", "deadline-past-phase"])
def test_over_budget_variants_are_blocked_by_the_right_policy(tmp_path, mutate, policy, numbers):
    document = stack_document("dev")
    mutate(document)
    code, output = preview_with_policies(tmp_path, "dev", document)
    assert code != 0
    blocks = output.split("- [mandatory]  ")[1:]
    named = [block for block in blocks if block.startswith(policy)]
    assert named, f"{policy} not reported:\n{output[-4000:]}"
    assert all(any(number in block for block in named) for number in numbers), named
