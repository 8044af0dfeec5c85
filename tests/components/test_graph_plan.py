"""The plan as the program renders it: read from ``larry:planFile`` as from inline config, its
content in the graph (so a change in the file is a change ``pulumi preview`` shows)."""
import pytest
import yaml

from tests.components.pulumi_graph import CM, run_program, stack_values


def _plan_maps(graph):
    return {name: r.manifest["data"] for name, r in graph.named(CM).items() if "plan.yaml" in r.manifest["data"]}


def _plans(graph):
    """Each plan ConfigMap's plan, parsed: the keys' order depends on where they were given."""
    return {name: yaml.safe_load(data["plan.yaml"]) for name, data in _plan_maps(graph).items()}


@pytest.fixture
def split_dev(tmp_path, monkeypatch):
    """The dev stack's Larrys in plans/fleet.yaml; the program runs in the project, as under the engine."""
    values = stack_values("dev")
    (tmp_path / "plans").mkdir()
    fleet = tmp_path / "plans" / "fleet.yaml"
    fleet.write_text(yaml.safe_dump({"larry:larrys": values.pop("larry:larrys")}, sort_keys=False))
    values["larry:planFile"] = "plans/fleet.yaml"
    monkeypatch.chdir(tmp_path)
    return values, fleet


def test_a_plan_file_renders_the_graph_inline_config_renders(split_dev, dev):
    values, _ = split_dev
    split = run_program("dev", values)
    assert _plans(split) == _plans(dev)
    assert sorted((r.typ, r.name) for r in split.resources) == sorted((r.typ, r.name) for r in dev.resources)


def test_a_change_in_the_plan_file_changes_the_plan_config_maps(split_dev):
    values, fleet = split_dev
    before = _plan_maps(run_program("dev", values))
    larrys = yaml.safe_load(fleet.read_text())
    larrys["larry:larrys"][0]["workers"][0]["tasks"][0]["title"] = "A title changed in the plan file"
    fleet.write_text(yaml.safe_dump(larrys, sort_keys=False))
    after = _plan_maps(run_program("dev", values))
    changed = [name for name in before if before[name] != after[name]]
    assert changed and all("A title changed in the plan file" in after[name]["plan.yaml"] for name in changed)
