"""The typed stack config: both seed plans load, their totals match the seeds, and every
class of mistake produces one line naming the stack, the key path and what was expected."""
import copy

import pytest
import yaml

from plan.loader import ConfigError, load_config, load_stack, load_stack_file
from plan.model import utilisation
from tests.support.project import ROOT  # noqa: E402


def test_dev_totals_match_seed_001():
    cfg = load_stack("dev", ROOT)
    assert {l.id: l.allocated_tokens for l in cfg.larrys} == {
        "larry-01": 111_000, "larry-02": 81_000, "larry-03": 211_000}
    assert [l.token_budget for l in cfg.larrys] == [111_000, 81_000, 211_000]
    assert cfg.budget.meta.total_tokens == 75_000
    assert cfg.allocated_tokens == cfg.budget.system_tokens == 478_000
    assert len(cfg.workers) == 16
    assert [l.deadline_minutes for l in cfg.larrys] == [25, 30, 30]
    assert [l.storage for l in cfg.larrys] == ["10Gi", "10Gi", "20Gi"]


def test_dev_places_larry_03_teams_on_their_nodes():
    larry03 = load_stack("dev", ROOT).larry("larry-03")
    by_node = {}
    for worker in larry03.workers:
        by_node.setdefault(worker.node, []).append(worker.name)
    assert by_node["k3s-worker03"] == ["catalog-worker-01", "catalog-worker-02", "classification-worker"]
    assert len(by_node["k3s-worker04"]) == 5


def test_cortex_transcribes_seed_004_including_its_overrun():
    cfg = load_stack("cortex", ROOT)
    assert cfg.budget.system_tokens == 295_000
    assert cfg.budget.meta.emergency_reserve_tokens == 25_000
    # The seven masters allocate 340k (seed 003 "Token Budget Flow").
    assert cfg.larry_tokens + cfg.budget.meta.orchestration_tokens + cfg.budget.meta.worker_pool_tokens == 340_000
    assert cfg.allocated_tokens == 365_000 > cfg.budget.system_tokens
    assert cfg.namespaces == ("cortex-workers",)
    assert cfg.redis.namespace == "cortex-system"
    assert cfg.channels.coordination == "cortex:masters:coordination"
    nodes = [w.node for _, w in cfg.workers]
    assert len(nodes) == 16 and all(nodes.count(n) == 4 for n in set(nodes))
    catalog = next(w for _, w in cfg.workers if w.name == "catalog-worker-01")
    assert (catalog.tokens, catalog.minutes, catalog.type) == (8000, 15, "catalog-worker")  # type defaults
    assert catalog.resources.requests.cpu == "500m"


def test_utilisation():
    assert utilisation(450, 500) == pytest.approx(0.9)
    assert utilisation(1, 0) == 0.0


def _dev_values():
    document = yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())
    return copy.deepcopy(document["config"])


def _problems(values):
    with pytest.raises(ConfigError) as caught:
        load_config(values, "dev")
    message = str(caught.value)
    assert "Traceback" not in message
    return message


def _worker(values, larry, worker):
    return values["larry:larrys"][larry]["workers"][worker]


def test_unknown_node_names_the_key_path():
    values = _dev_values()
    _worker(values, 2, 4)["node"] = "k3s-worker09"
    assert _problems(values) == (
        "Pulumi.dev.yaml: larry:larrys[2].workers[4].node: 'k3s-worker09' is not declared in larry:nodes")


def test_missing_required_key():
    values = _dev_values()
    del values["larry:larrys"][1]["deadlineMinutes"]
    assert _problems(values) == (
        "Pulumi.dev.yaml: larry:larrys[1].deadlineMinutes: required key is missing (expected a positive integer)")


def test_missing_top_level_section():
    values = _dev_values()
    del values["larry:budget"]
    assert _problems(values) == "Pulumi.dev.yaml: larry:budget: required key is missing (expected a mapping)"


def test_wrong_type():
    values = _dev_values()
    values["larry:larrys"][0]["tokenBudget"] = "lots"
    assert _problems(values) == (
        "Pulumi.dev.yaml: larry:larrys[0].tokenBudget: expected a positive integer, got string 'lots'")


@pytest.mark.parametrize("bad", [0, -5])
def test_zero_or_negative_budget(bad):
    values = _dev_values()
    values["larry:budget"]["metaCoordinator"]["emergencyReserveTokens"] = bad
    assert _problems(values) == (
        f"Pulumi.dev.yaml: larry:budget.metaCoordinator.emergencyReserveTokens: expected a positive integer, got number {bad}")


def test_negative_worker_tokens():
    values = _dev_values()
    _worker(values, 0, 1)["tokens"] = -10000
    assert "larry:larrys[0].workers[1].tokens: expected a positive integer, got number -10000" in _problems(values)


@pytest.mark.parametrize("field,bad,what", [("cpu", "two", "cpu"), ("memory", "4GB", "memory")])
def test_malformed_quantity(field, bad, what):
    values = _dev_values()
    _worker(values, 1, 0)["resources"] = {"requests": {"cpu": "1", "memory": "2Gi"},
                                          "limits": {"cpu": "2", "memory": "4Gi"}}
    _worker(values, 1, 0)["resources"]["limits"][field] = bad
    message = _problems(values)
    assert message.startswith(f"Pulumi.dev.yaml: larry:larrys[1].workers[0].resources.limits.{field}: "
                              f"'{bad}' is not a valid {what} quantity")


def test_duplicate_larry_id():
    values = _dev_values()
    values["larry:larrys"][2]["id"] = "larry-01"
    assert "larry:larrys[2].id: duplicate Larry id 'larry-01' (also larry:larrys[0])" in _problems(values)


def test_duplicate_worker_name():
    values = _dev_values()
    _worker(values, 1, 3)["name"] = "cleanup-worker"
    assert ("larry:larrys[1].workers[3].name: duplicate worker name 'cleanup-worker' "
            "(also larry:larrys[0].workers[0])") in _problems(values)


def test_duplicate_task_id():
    values = _dev_values()
    _worker(values, 0, 2)["tasks"][0]["id"] = "fix-pgadmin-crashloop"
    assert ("larry:larrys[0].workers[2].tasks[0].id: duplicate task id 'fix-pgadmin-crashloop' "
            "(also larry:larrys[0].workers[0].tasks[0].id)") in _problems(values)


def test_unknown_dependency_target():
    values = _dev_values()
    _worker(values, 0, 0)["tasks"][1]["dependsOn"] = ["no-such-task"]
    assert _problems(values) == ("Pulumi.dev.yaml: larry:larrys[0].workers[0].tasks[1].dependsOn: "
                                 "'no-such-task' is not a task id of this stack")


def test_dependency_cycle():
    values = _dev_values()
    _worker(values, 0, 0)["tasks"][0]["dependsOn"] = ["remediate-pgadmin"]
    message = _problems(values)
    assert "dependency cycle" in message
    assert "fix-pgadmin-crashloop" in message and "remediate-pgadmin" in message


def test_worker_node_outside_its_larrys_worker_nodes():
    values = _dev_values()
    _worker(values, 0, 0)["node"] = "k3s-worker02"
    assert _problems(values) == ("Pulumi.dev.yaml: larry:larrys[0].workers[0].node: 'k3s-worker02' is not one "
                                 "of larry-01's workerNodes (k3s-worker01)")


def test_coordinator_on_a_worker_node():
    values = _dev_values()
    values["larry:larrys"][0]["node"] = "k3s-worker01"
    assert _problems(values) == ("Pulumi.dev.yaml: larry:larrys[0].node: 'k3s-worker01' is a worker node, "
                                 "expected a master node")


def test_worker_master_must_exist():
    values = _dev_values()
    _worker(values, 1, 0)["master"] = "cicd-master"
    assert _problems(values) == ("Pulumi.dev.yaml: larry:larrys[1].workers[0].master: 'cicd-master' is not a "
                                 "master of larry-02 (security-master)")


def test_priorities_of_workers_and_tasks_default_to_medium_and_are_checked():
    values = _dev_values()
    _worker(values, 2, 0)["priority"] = "critical"
    _worker(values, 2, 0)["tasks"][0]["priority"] = "low"
    cfg = load_config(values, "dev")
    worker = cfg.larrys[2].workers[0]
    assert (worker.priority, worker.tasks[0].priority) == ("critical", "low")
    assert {w.priority for w in cfg.larrys[1].workers} == {"medium"}
    _worker(values, 2, 0)["priority"] = "urgent"
    assert _problems(values) == ("Pulumi.dev.yaml: larry:larrys[2].workers[0].priority: 'urgent' is not one of "
                                 "critical, high, medium, low")


def test_an_operators_sign_off_is_off_unless_required():
    values = _dev_values()
    assert load_config(values, "dev").approval.required is False
    values["larry:approval"] = {"required": True}
    assert load_config(values, "dev").approval.required is True
    values["larry:approval"] = {"required": "yes"}
    assert _problems(values) == ("Pulumi.dev.yaml: larry:approval.required: expected true or false, "
                                 "got string 'yes'")


def test_tasks_reach_workers_statically_unless_a_queue_is_chosen():
    values = _dev_values()
    static = load_config(values, "dev")
    larry = static.larrys[2]
    worker = larry.workers[0]
    assert (static.task_assignment, static.takes(larry, worker)) == ("static", worker.tasks)
    values["larry:taskAssignment"] = "queue"
    queued = load_config(values, "dev")
    # seed 001's workers name no master: they take from their Larry's queue, every task of it
    assert queued.queued and queued.takes(larry, worker) == larry.tasks and larry.queue_of(worker) == larry.id
    assert load_stack("cortex", ROOT).queued
    values["larry:taskAssignment"] = "fifo"
    assert _problems(values) == "Pulumi.dev.yaml: larry:taskAssignment: 'fifo' is not one of static, queue"


def test_every_problem_is_reported_at_once():
    values = _dev_values()
    _worker(values, 2, 4)["node"] = "k3s-worker09"
    _worker(values, 0, 0)["tasks"][1]["dependsOn"] = ["no-such-task"]
    assert len(_problems(values).splitlines()) == 2
    values["larry:larrys"][0]["tokenBudget"] = 0
    values["larry:larrys"][1]["storage"] = "ten"
    assert len(_problems(values).splitlines()) == 2  # structure first, then references


def test_stack_file_errors_name_the_file(tmp_path):
    broken = tmp_path / "Pulumi.broken.yaml"
    broken.write_text("config: [unclosed\n")
    with pytest.raises(ConfigError, match=r"Pulumi.broken.yaml: not valid YAML"):
        load_stack_file(broken)
    with pytest.raises(ConfigError, match=r"Pulumi.missing.yaml: stack file not found"):
        load_stack("missing", tmp_path)


def test_plan_document_round_trips_through_the_same_loader():
    from plan.loader import load_plan_document
    cfg = load_stack("cortex", ROOT)
    again = load_plan_document(cfg.plan_document(), "configmap security-plan")
    assert again.stack == "cortex"
    assert again.allocated_tokens == cfg.allocated_tokens
    assert again.larrys == cfg.larrys


def test_scalars_stored_as_strings_by_pulumi_config_set_read_as_the_engine_reads_them(tmp_path):
    text = (ROOT / "Pulumi.dev.yaml").read_text().replace("larry:executionWindowMinutes: 40",
                                                            'larry:executionWindowMinutes: "45"')
    (tmp_path / "Pulumi.dev.yaml").write_text(text)
    assert load_stack("dev", tmp_path).execution_window_minutes == 45
