"""The policy pack through the real engine, run exactly as the README's CI recipe says:
`make preview STACK=<name> POLICY=1`, on the committed stacks and on over-budget variants
generated from them."""
from __future__ import annotations

import copy

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


#: Every variant in one document, so one preview shows each policy blocking with its own
#: numbers (the numbers are the combined document's). Each rule alone is tested against the
#: program under mocks in test_pack.py.
VARIANTS = {
    "larry-token-budget": (_raise_feature_worker,
                           ["Larry larry-03: allocates 229,000 tokens, its tokenBudget is 211,000"]),
    "system-token-budget": (_shrink_system_budget, ["The plan allocates 496,005 tokens, the system budget is 400,000"]),
    "node-capacity": (_crowd_worker01, ["Node k3s-worker01: pods that can run there request 9,650m cpu"]),
    "worker-deadline": (_stretch_cleanup_worker, ["30 min exceed the phase deadline 25 min"]),
}


def test_over_budget_variants_are_each_blocked_by_the_right_policy(tmp_path):
    document = stack_document("dev")
    for mutate, _ in VARIANTS.values():
        mutate(document)
    code, output = preview_with_policies(tmp_path, "dev", document)
    assert code != 0
    blocks = output.split("- [mandatory]  ")[1:]
    for policy, (_, numbers) in VARIANTS.items():
        named = [block for block in blocks if block.startswith(policy)]
        assert named, f"{policy} not reported:\n{output[-4000:]}"
        assert all(any(number in block for block in named) for number in numbers), (policy, named)
