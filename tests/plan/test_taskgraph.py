"""The plan's task graph: owners, dependencies, tasks that can never run; chains and cycles of
any length (no recursion, so no depth limit)."""
from plan.loader import load_config, load_stack
from plan.statuses import TaskStatus
from plan.taskgraph import TaskGraph
from tests.plan.test_config import _dev_values, _problems, _worker
from tests.support.project import ROOT

DEV = load_stack("dev", ROOT)


def test_every_plan_task_has_its_larry_and_dependencies_in_plan_order():
    graph = TaskGraph(DEV)
    assert graph.ids == [t.id for larry in DEV.larrys for t in larry.tasks]
    assert graph.larry["scan-core-namespaces"] == "larry-02"
    assert graph.deps["identify-critical-cves"] == ("scan-core-namespaces",)
    assert graph.deps["fix-pgadmin-crashloop"] == ()


def test_nothing_is_doomed_while_no_task_failed():
    graph = TaskGraph(DEV)
    assert graph.doomed({}) == {}
    assert graph.doomed({t: TaskStatus.COMPLETED for t in graph.ids}) == {}


def test_a_failed_task_dooms_everything_downstream_across_larrys_and_names_the_cause():
    graph = TaskGraph(DEV)
    doomed = graph.doomed({"scan-k8s-deployments": TaskStatus.FAILED})
    # direct dependants, and the classification chain two and three steps away
    assert doomed["extract-deployment-metadata"] == "scan-k8s-deployments"
    assert doomed["tag-assets-by-category"] == "scan-k8s-deployments"
    assert doomed["write-portfolio-health-report"] == "scan-k8s-deployments"
    assert "scan-k8s-deployments" not in doomed, "the failed task itself is not doomed, it is over"
    assert "discover-helm-releases" not in doomed


def test_a_task_that_already_ended_is_not_doomed_even_downstream_of_a_failure():
    graph = TaskGraph(DEV)
    statuses = {"scan-core-namespaces": TaskStatus.FAILED, "identify-critical-cves": TaskStatus.FAILED}
    doomed = graph.doomed(statuses)
    assert "identify-critical-cves" not in doomed
    # the nearest failed dependency is named, not the root
    assert doomed["write-vulnerability-report"] == "identify-critical-cves"


def _chain(values, length, closed=False):
    """One worker whose tasks form a chain t0 -> t1 -> ... (each depends on the next)."""
    _worker(values, 0, 0)["tasks"] = [
        {"id": f"t{i}", "title": "t", **({"dependsOn": [f"t{i + 1}"]} if i + 1 < length else {})}
        for i in range(length)]
    if closed:
        _worker(values, 0, 0)["tasks"][-1]["dependsOn"] = ["t0"]


def test_a_long_dependency_chain_loads_and_a_long_cycle_is_one_line():
    values = _dev_values()
    _chain(values, 1500)
    cfg = load_config(values, "dev")
    assert len(cfg.larrys[0].workers[0].tasks) == 1500
    _chain(values, 1500, closed=True)
    [line] = _problems(values).splitlines()
    assert line.startswith("Pulumi.dev.yaml: larry:larrys[0].workers[0].tasks[0].dependsOn: dependency cycle t0 -> t1")
    assert line.endswith("t1499 -> t0")


def test_doomed_follows_a_long_chain():
    values = _dev_values()
    _chain(values, 1500)
    graph = TaskGraph(load_config(values, "dev"))
    doomed = graph.doomed({"t1499": "failed"})
    assert doomed == {f"t{i}": "t1499" for i in range(1499)}


def test_doomed_names_the_first_failed_dependency_in_declared_order():
    values = _dev_values()
    cfg = load_config(values, "dev")
    graph = TaskGraph(cfg)
    # generate-cve-fix-prs depends on identify-critical-cves (via scan-core-namespaces) and flag-high-risk-components
    doomed = graph.doomed({"scan-core-namespaces": "failed", "flag-high-risk-components": "failed",
                           "patch-helm-charts": "completed"})
    assert doomed["identify-critical-cves"] == "scan-core-namespaces"
    assert doomed["generate-cve-fix-prs"] == "scan-core-namespaces"
    assert "patch-helm-charts" not in doomed  # finished tasks are not doomed
    assert "scan-core-namespaces" not in doomed and "audit-dependencies" not in doomed


def test_a_cycle_is_reported_from_where_it_loops_not_from_the_tasks_behind_it():
    values = _dev_values()
    _worker(values, 0, 0)["tasks"][0]["dependsOn"] = ["investigate-pgadmin-root-cause"]
    _worker(values, 0, 2)["tasks"][1]["dependsOn"] = ["remediate-pgadmin"]
    assert _problems(values) == (
        "Pulumi.dev.yaml: larry:larrys[0].workers[0].tasks[0].dependsOn: dependency cycle "
        "fix-pgadmin-crashloop -> investigate-pgadmin-root-cause -> fix-pgadmin-crashloop")
    _worker(values, 0, 0)["tasks"][0]["dependsOn"] = []
    _worker(values, 0, 2)["tasks"][1]["dependsOn"] = ["deploy-pgbouncer"]
    assert _problems(values) == ("Pulumi.dev.yaml: larry:larrys[0].workers[2].tasks[1].dependsOn: dependency cycle "
                                 "deploy-pgbouncer -> deploy-pgbouncer")


def test_around_keeps_the_tasks_and_everything_they_wait_on_across_larrys_and_nothing_else():
    part = TaskGraph(DEV).around(["patch-helm-charts"])
    assert set(part.ids) == {"patch-helm-charts", "generate-cve-fix-prs", "discover-helm-releases",
                             "identify-critical-cves", "flag-high-risk-components", "scan-core-namespaces",
                             "scan-platform-namespaces"}
    assert part.ids == [t for t in TaskGraph(DEV).ids if t in set(part.ids)], "plan order kept"
    assert part.larry["discover-helm-releases"] == "larry-03" and set(part.larry.values()) == {"larry-02", "larry-03"}
    doomed = part.doomed({"scan-core-namespaces": TaskStatus.FAILED})
    assert doomed == {t: "scan-core-namespaces" for t in ("identify-critical-cves", "generate-cve-fix-prs",
                                                           "patch-helm-charts")}
