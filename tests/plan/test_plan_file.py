"""``larry:planFile``: the plan kept in a file the stack config names, validated exactly like
inline config, each mistake one line naming the file it is in and the key."""
import copy
from dataclasses import replace

import pytest
import yaml

from plan.loader import ConfigError, load_config, load_stack, load_stack_file
from tests.support.project import ROOT


def _split(tmp_path, moved=("larry:larrys",), file_values=None):
    """The dev stack in ``tmp_path`` with ``moved`` keys in plans/fleet.yaml; the stack's values."""
    values = copy.deepcopy(yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"])
    in_file = {key: values.pop(key) for key in moved}
    (tmp_path / "plans").mkdir()
    (tmp_path / "plans" / "fleet.yaml").write_text(yaml.safe_dump(file_values or in_file, sort_keys=False))
    values["larry:planFile"] = "plans/fleet.yaml"
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": values}, sort_keys=False))
    return values, in_file


def _problems(values, tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(values, "dev", project_dir=tmp_path)
    return err.value.problems


def test_a_plan_in_a_file_loads_as_the_same_plan(tmp_path):
    _split(tmp_path, moved=("larry:larrys", "larry:nodes"))
    inline, split = load_stack("dev", ROOT), load_stack_file(tmp_path / "Pulumi.dev.yaml")
    assert replace(split, source=inline.source) == inline
    # What pods and the policy pack read holds the file's content, never the path to it.
    assert "larry:planFile" not in split.values
    assert yaml.safe_load(split.plan_document())["config"] == yaml.safe_load(inline.plan_document())["config"]


def test_keys_in_the_file_may_omit_the_prefix(tmp_path):
    values, in_file = _split(tmp_path)
    (tmp_path / "plans" / "fleet.yaml").write_text(yaml.safe_dump({"larrys": in_file["larry:larrys"]}))
    assert len(load_config(values, "dev", project_dir=tmp_path).larrys) == 3


def test_a_mistake_in_the_file_names_the_file_and_key(tmp_path):
    values, in_file = _split(tmp_path)
    in_file["larry:larrys"][2]["workers"][4]["node"] = "k3s-worker09"
    (tmp_path / "plans" / "fleet.yaml").write_text(yaml.safe_dump(in_file))
    assert _problems(values, tmp_path) == [
        "plans/fleet.yaml: larry:larrys[2].workers[4].node: 'k3s-worker09' is not declared in larry:nodes"]
    in_file["larry:larrys"][0]["tokenBudget"] = "lots"
    (tmp_path / "plans" / "fleet.yaml").write_text(yaml.safe_dump(in_file))
    assert _problems(values, tmp_path) == [
        "plans/fleet.yaml: larry:larrys[0].tokenBudget: expected a positive integer, got string 'lots'"]


def test_a_mistake_inline_still_names_the_stack_file(tmp_path):
    values, _ = _split(tmp_path)
    values["larry:budget"]["systemTokens"] = -1
    assert _problems(values, tmp_path) == [
        "Pulumi.dev.yaml: larry:budget.systemTokens: expected a positive integer, got number -1"]


def test_a_missing_file_is_one_line(tmp_path):
    values, _ = _split(tmp_path)
    values["larry:planFile"] = "plans/missing.yaml"
    assert _problems(values, tmp_path) == [
        "plans/missing.yaml: plan file (larry:planFile in Pulumi.dev.yaml) not found"]


@pytest.mark.parametrize("given", [3, "", "/etc/fleet.yaml", "../fleet.yaml", ["plans/fleet.yaml"]])
def test_plan_file_must_be_a_path_inside_the_project(tmp_path, given):
    values, _ = _split(tmp_path)
    values["larry:planFile"] = given
    (problem,) = _problems(values, tmp_path)
    assert problem.startswith("Pulumi.dev.yaml: larry:planFile: expected a path inside the project, relative to it")


@pytest.mark.parametrize("content, expected", [
    ("larry:larrys: [\n", "plans/fleet.yaml: not valid YAML (line 2, column 1: "),
    ("- 1\n- 2\n", "plans/fleet.yaml: expected a mapping of larry:* keys, as under a stack file's config: "
                   "(larry:planFile in Pulumi.dev.yaml), got a list"),
    ("larry:larrys: 3\n", "plans/fleet.yaml: larry:larrys: expected a list, got number 3"),
    ("larry:larrys: []\nlarry:larrys: []\n", "plans/fleet.yaml: line 2: duplicate key 'larry:larrys' (first at line 1)"),
    ("kubernetes:context: k3s\nlarry:larrys: []\n", "plans/fleet.yaml: kubernetes:context: only larry:* keys belong"),
    ("larry:planFile: other.yaml\n", "plans/fleet.yaml: larry:planFile: a plan file cannot name another plan file"),
])
def test_a_bad_file_is_one_line_naming_it(tmp_path, content, expected):
    values, _ = _split(tmp_path)
    (tmp_path / "plans" / "fleet.yaml").write_text(content)
    problems = _problems(values, tmp_path)
    assert problems[0].startswith(expected), problems
    assert all("\n" not in p and "Traceback" not in p for p in problems)


def test_a_key_given_inline_and_in_the_file_is_one_clear_line(tmp_path):
    values, in_file = _split(tmp_path)
    values["larry:larrys"] = in_file["larry:larrys"]
    assert _problems(values, tmp_path) == [
        "Pulumi.dev.yaml: larry:larrys: given both here and in plans/fleet.yaml (larry:planFile); give it in one place"]
