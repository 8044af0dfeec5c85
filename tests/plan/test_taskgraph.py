"""The plan's task graph: owners, dependencies, and tasks that can never run."""
from plan.loader import load_stack
from plan.statuses import TaskStatus
from plan.taskgraph import TaskGraph
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
