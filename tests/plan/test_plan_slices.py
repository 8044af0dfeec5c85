"""Slices of the plan: each Larry's pods read their Larry plus a small index of the rest
(``StackConfig.slice_documents``); every slice together is the whole plan again
(``load_plan_documents``), and a slice or a set of slices that is not one plan is one line."""
from dataclasses import replace

import pytest
import yaml

from plan.loader import (
    ConfigError,
    load_config,
    load_plan_document,
    load_plan_documents,
    load_plan_path,
    load_stack,
)
from plan.model import UpstreamTask
from plan.taskgraph import TaskGraph
from tests.support.project import ROOT


@pytest.fixture(scope="module")
def dev():
    return load_stack("dev", ROOT)


@pytest.fixture(scope="module")
def slices(dev):
    return dev.slice_documents()


@pytest.mark.parametrize("stack", ["dev", "cortex"])
def test_every_slice_together_is_the_whole_plan(stack):
    cfg = load_stack(stack, ROOT)
    slices = cfg.slice_documents()
    assert list(slices) == list(cfg.larry_ids)
    for larry, text in slices.items():
        part = load_plan_document(text, f"{larry}.yaml")
        assert part.larrys == (cfg.larry(larry),) and part.larry_ids == cfg.larry_ids
        assert (part.budget, part.nodes, part.redis, part.agents) == (cfg.budget, cfg.nodes, cfg.redis, cfg.agents)
    assert replace(load_plan_documents(slices), source=cfg.source) == cfg
    # Given twice (the meta-coordinator's copies beside the Larrys'), a slice counts once.
    twice = {**slices, **{f"copy-{larry}": text for larry, text in slices.items()}}
    assert replace(load_plan_documents(twice), source=cfg.source) == cfg


def test_a_slice_carries_the_other_larrys_tasks_its_own_wait_for(dev, slices):
    part = load_plan_document(slices["larry-02"], "larry-02.yaml")
    assert part.upstream == (UpstreamTask("discover-helm-releases", "larry-03", "catalog-worker-02"),)
    # The slice sees its task blocked when the other Larry's task fails, as the whole plan does.
    statuses = {"discover-helm-releases": "failed"}
    assert TaskGraph(part).doomed(statuses) == {
        t: c for t, c in TaskGraph(dev).doomed(statuses).items() if t in {t.id for t in part.larrys[0].tasks}}
    assert "patch-helm-charts" in TaskGraph(part).doomed(statuses)
    assert load_plan_document(slices["larry-01"], "larry-01.yaml").upstream == ()


def test_upstream_follows_dependencies_through_other_larrys(dev):
    values = yaml.safe_load(dev.plan_document())["config"]
    larrys = values["larry:larrys"]
    # larry-01's first task now waits for larry-02's PR task, which waits (through its own
    # Larry) for larry-03's discovery: larry-01 must see both.
    larrys[0]["workers"][0]["tasks"][0]["dependsOn"] = ["patch-helm-charts"]
    cfg = load_config(values, "dev")
    part = load_plan_document(cfg.slice_documents()["larry-01"], "larry-01.yaml")
    upstream = {t.id: t for t in part.upstream}
    assert {"patch-helm-charts", "generate-cve-fix-prs", "discover-helm-releases"} <= set(upstream)
    assert all(t.larry != "larry-01" for t in part.upstream)
    assert TaskGraph(part).doomed({"discover-helm-releases": "failed"})[larrys[0]["workers"][0]["tasks"][0]["id"]] \
        == "discover-helm-releases"


def test_slice_bytes_grow_with_the_larry_not_the_stack(dev, slices):
    whole = len(dev.plan_document().encode())
    assert all(len(text.encode()) < whole * 0.6 for text in slices.values())


def _edited(text, edit):
    document = yaml.safe_load(text)
    edit(document)
    return yaml.safe_dump(document, sort_keys=False)


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d["slice"].update(larrys="larry-01"), "slice.larrys: expected a list, got string 'larry-01'"),
    (lambda d: d["slice"].pop("larry"), "slice.larry: required key is missing"),
    (lambda d: d["slice"].update(surplus=1), "slice.surplus: unknown key"),
    (lambda d: d["slice"].update(larry="larry-01"),
     "larry:larrys: a slice holds its own Larry alone, expected [larry-01], got [larry-02]"),
    (lambda d: d["slice"]["larrys"].remove("larry-02"), "slice.larrys: does not list the slice's own Larry 'larry-02'"),
    (lambda d: d["slice"].pop("upstream"),
     "larry:larrys[0].workers[3].tasks[1].dependsOn: 'discover-helm-releases' is not a task id of this stack"),
    (lambda d: d["slice"]["upstream"][0].update(dependsOn=["nowhere"]),
     "slice.upstream[0].dependsOn: 'nowhere' is not a task of this slice or of slice.upstream"),
    (lambda d: d["slice"]["upstream"][0].update(larry="larry-09"),
     "slice.upstream[0].larry: 'larry-09' is not another Larry of slice.larrys"),
])
def test_a_bad_slice_is_one_line_naming_the_key(slices, edit, expected):
    with pytest.raises(ConfigError) as err:
        load_plan_document(_edited(slices["larry-02"], edit), "larry-02.yaml")
    assert err.value.problems[0].startswith(f"larry-02.yaml: {expected}"), err.value.problems
    assert all("\n" not in p for p in err.value.problems)


def test_slices_that_are_not_one_plan_are_one_line_each(dev, slices):
    def problems(documents):
        with pytest.raises(ConfigError) as err:
            load_plan_documents(documents)
        return err.value.problems

    assert problems({"a": slices["larry-01"], "b": slices["larry-03"]}) == [
        "a: no slice of larry-02 (slice.larrys lists every Larry of the plan)"]
    other = _edited(slices["larry-02"], lambda d: d["config"]["larry:budget"].update(systemTokens=1))
    assert problems({"a": slices["larry-01"], "b": other, "c": slices["larry-03"]}) == [
        "b: larry:budget differs from a's (slices of one plan share it)"]
    retitled = _edited(slices["larry-01"], lambda d: d["config"]["larry:larrys"][0].update(phase="Another"))
    assert problems({"a": slices["larry-01"], "b": retitled, "c": slices["larry-02"], "d": slices["larry-03"]}) == [
        "b: a second, different slice of larry-01 (also a)"]
    assert problems({"a": slices["larry-01"], "w": dev.plan_document()}) == [
        "w: a whole plan given beside other plans or slices (a)"]


def test_a_directory_of_slices_is_the_whole_plan(tmp_path, dev, slices):
    for larry, text in slices.items():
        (tmp_path / f"{larry}.yaml").write_text(text)
    (tmp_path / "..data").mkdir()  # what a mounted ConfigMap keeps beside its files
    assert replace(load_plan_path(tmp_path), source=dev.source) == dev
    assert load_plan_path(tmp_path / "larry-01.yaml").larrys == (dev.larry("larry-01"),)
    (tmp_path / "larry-02.yaml").unlink()
    with pytest.raises(ConfigError, match="no slice of larry-02"):
        load_plan_path(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_plan_path(tmp_path / "empty")
    assert err.value.problems == [f"{tmp_path / 'empty'}: stack file not found"]
