"""A Larry's ``rollback`` (seed 001 appendix B): the committed stacks carry the seed's steps,
the steps become one chained worker of the Larry, and each mistake is one line naming its key."""
import pytest

from plan.loader import load_config, load_stack
from tests.plan.test_config import _dev_values, _problems
from tests.support.project import ROOT


def test_the_stacks_give_the_seeds_larrys_their_rollback_steps():
    dev = {larry.id: larry.rollback for larry in load_stack("dev", ROOT).larrys}
    assert [s.id for s in dev["larry-01"].steps] == ["revert-postgres-consolidation", "restore-pgadmin"]
    assert all(dev[larry].steps for larry in ("larry-01", "larry-02", "larry-03"))
    cortex = {larry.id: larry.rollback for larry in load_stack("cortex", ROOT).larrys}
    assert {larry for larry, rollback in cortex.items() if rollback} == {"security", "development"}


def test_the_steps_run_in_order_as_one_worker_of_the_larry():
    larry = load_config(_dev_values(), "dev").larrys[0]
    worker = larry.rollback.worker(larry)
    assert (worker.name, worker.node, worker.tokens, worker.master) == ("larry-01-rollback", larry.node, 3000, None)
    assert [t.depends_on for t in worker.tasks] == [(), ("revert-postgres-consolidation",)]
    assert worker not in larry.workers and not set(worker.tasks) & set(larry.tasks)  # never run by the phase


def _with_rollback(rollback) -> dict:
    values = _dev_values()
    values["larry:larrys"][0]["rollback"] = rollback
    return values


@pytest.mark.parametrize("given, problem", [
    ({"tokens": 100, "minutes": 5, "steps": []}, "larry:larrys[0].rollback.steps: expected at least one step"),
    ({"minutes": 5, "steps": [{"id": "a", "title": "A"}]},
     "larry:larrys[0].rollback.tokens: required key is missing (expected a positive integer)"),
    ({"tokens": 100, "minutes": 5, "steps": [{"id": "fix-pgadmin-crashloop", "title": "A"}]},
     "larry:larrys[0].rollback.steps[0].id: duplicate task id 'fix-pgadmin-crashloop' "
     "(also larry:larrys[0].workers[0].tasks[0].id)"),
    ({"tokens": 100, "minutes": 5, "steps": [{"id": "a", "title": "A", "dependsOn": ["b"]}]},
     "larry:larrys[0].rollback.steps[0].dependsOn: unknown key (expected one of id, title)"),
    ({"tokens": 100, "minutes": 5, "steps": [{"id": "a", "title": "A"}], "agent": "nobody"},
     "larry:larrys[0].rollback.agent:"),
])
def test_rollback_mistakes_are_one_line_each(given, problem):
    assert _problems(_with_rollback(given)).startswith(f"Pulumi.dev.yaml: {problem}")
