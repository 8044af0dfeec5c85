"""The plan as the program renders it: read from ``larry:planFile`` as from inline config, its
content in the graph (so a change in the file is a change ``pulumi preview`` shows), and cut
into slices so that a 2,000-worker fleet stores bytes in proportion to its Larrys, every
object far below its size limit. Sizes only: timings are bench/bench_program.py's."""
import pytest
import yaml

from plan.loader import load_plan_document
from tests.components.pulumi_graph import CM, JOB, fleet_values, run_program, stack_values, stored_bytes

#: The limit this test states for any ConfigMap of the stack: a sixteenth of the 1 MiB the API
#: server accepts (a whole 100 x 20 plan was 997 KiB in one ConfigMap, once per Larry).
CONFIG_MAP_LIMIT = 64 * 1024
#: And for any other object (the meta-coordinator's Job lists every Larry's slice).
OBJECT_LIMIT = 64 * 1024


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


@pytest.fixture(scope="module")
def fleets():
    """The generated fleets of 3 and 100 Larrys x 20 workers (2,000 workers, 6,000 tasks)."""
    return {larrys: run_program("fleet", fleet_values(larrys, 20)) for larrys in (3, 100)}


def _plan_bytes(graph):
    return sum(stored_bytes(r) for r in graph.of(CM) if "plan.yaml" in r.manifest["data"])


def test_a_2000_worker_fleet_renders_every_object_far_below_its_limit(fleets):
    fleet = fleets[100]
    assert len([job for job in fleet.of(JOB) if job.metadata["name"] != "larry-converge"]) == 2000
    sizes = {f"{r.metadata.get('namespace')}/{r.metadata['name']}": stored_bytes(r) for r in fleet.of(CM)}
    assert max(sizes.values()) < CONFIG_MAP_LIMIT, max(sizes.items(), key=lambda item: item[1])
    largest = max(fleet.kubernetes(), key=stored_bytes)
    assert stored_bytes(largest) < OBJECT_LIMIT, (largest.typ, largest.name)
    # Each Larry's ConfigMap is its own slice, which holds its Larry and the index of the rest.
    data = fleet.named(CM)["larry-042/larry-042-plan"].manifest["data"]
    part = load_plan_document(data["plan.yaml"], "larry-042-plan")
    assert [larry.id for larry in part.larrys] == ["larry-042"] and len(part.larry_ids) == 100
    assert len(part.larrys[0].workers) == 20


def test_plan_bytes_per_larry_stay_constant_from_3_to_100_larrys(fleets):
    per_larry = {larrys: _plan_bytes(graph) / larrys for larrys, graph in fleets.items()}
    # Only the index's list of Larry ids (one line each) grows with the fleet.
    assert per_larry[100] / per_larry[3] < 1.2, per_larry
    objects = {larrys: sum(map(stored_bytes, graph.kubernetes())) / larrys for larrys, graph in fleets.items()}
    assert objects[100] / objects[3] < 1.2, objects
