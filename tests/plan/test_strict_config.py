"""Strict config (issue 11): no key is ignored without a word, no number is out of range,
and no input — however hostile — gets a traceback instead of one line naming the file, the
key path and what was expected."""
import copy

import pytest

from plan.loader import ConfigError, load_config, load_stack_file
from tests.plan.test_config import _dev_values, _problems, _worker
from tests.support.project import ROOT

DEV_TEXT = (ROOT / "Pulumi.dev.yaml").read_text()


# --------------------------------------------------------------------------- unknown keys

@pytest.mark.parametrize("edit,expected", [
    (lambda v: _worker(v, 0, 0)["tasks"][1].update(dependOn=["fix-pgadmin-crashloop"]),
     "larry:larrys[0].workers[0].tasks[1].dependOn: unknown key (did you mean 'dependsOn'?)"),
    (lambda v: _worker(v, 1, 0).update(masterr="security-master"),
     "larry:larrys[1].workers[0].masterr: unknown key (did you mean 'master'?)"),
    (lambda v: v.update({"larry:storageclass": "local-path"}),
     "larry:storageclass: unknown key (did you mean 'larry:storageClass'?)"),
    (lambda v: v["larry:redis"].update(sentinelport=26380),
     "larry:redis.sentinelport: unknown key (did you mean 'sentinelPort'?)"),
    (lambda v: v["larry:budget"]["metaCoordinator"].update(reserve=1),
     "larry:budget.metaCoordinator.reserve: unknown key (expected one of orchestrationTokens, "
     "emergencyReserveTokens, workerPoolTokens)"),
    (lambda v: v["larry:nodes"]["k3s-worker01"].update(zone="a"),
     "larry:nodes.k3s-worker01.zone: unknown key (expected one of role, ip, cpu, memory)"),
    (lambda v: _worker(v, 0, 0)["resources"].update(limit={}),
     "larry:larrys[0].workers[0].resources.limit: unknown key (did you mean 'limits'?)"),
])
def test_unknown_keys_are_errors_with_a_suggestion(edit, expected):
    values = _dev_values()
    _worker(values, 0, 0)["resources"] = copy.deepcopy(_worker(values, 0, 0)["resources"])
    edit(values)
    assert _problems(values) == f"Pulumi.dev.yaml: {expected}"


def test_keys_without_the_prefix_are_read_as_larry_keys_and_checked_alike():
    values = {key.removeprefix("larry:"): value for key, value in _dev_values().items()}
    assert load_config(values, "dev").execution_window_minutes == 40
    values["executionWindowMinute"] = 40
    assert _problems(values) == ("Pulumi.dev.yaml: larry:executionWindowMinute: unknown key "
                                 "(did you mean 'larry:executionWindowMinutes'?)")


def test_other_namespaces_of_a_stack_file_are_not_ours(tmp_path):
    text = DEV_TEXT.replace("config:\n", "config:\n  kubernetes:context: lab\n  aws:region: eu-west-1\n", 1)
    (tmp_path / "Pulumi.dev.yaml").write_text(text)
    cfg = load_stack_file(tmp_path / "Pulumi.dev.yaml")
    assert cfg.allocated_tokens == 478_000
    assert "aws:region" not in cfg.plan_document()


# --------------------------------------------------------------------------- empty Larrys and bounds

def test_a_larry_without_workers_is_rejected():
    values = _dev_values()
    values["larry:larrys"][0]["workers"] = []
    assert _problems(values) == "Pulumi.dev.yaml: larry:larrys[0].workers: expected at least one worker"


@pytest.mark.parametrize("edit,path,most", [
    (lambda v, n: _worker(v, 0, 0).update(tokens=n), "larry:larrys[0].workers[0].tokens", 10**12),
    (lambda v, n: v["larry:larrys"][0].update(tokenBudget=n), "larry:larrys[0].tokenBudget", 10**12),
    (lambda v, n: v["larry:budget"].update(systemTokens=n), "larry:budget.systemTokens", 10**12),
    (lambda v, n: v["larry:larrys"][0]["masters"][0].update(personalTokens=n),
     "larry:larrys[0].masters[0].personalTokens", 10**12),
    (lambda v, n: _worker(v, 0, 0).update(minutes=n), "larry:larrys[0].workers[0].minutes", 525_600),
    (lambda v, n: v.update({"larry:executionWindowMinutes": n}), "larry:executionWindowMinutes", 525_600),
    (lambda v, n: v["larry:redis"].update(replicas=n), "larry:redis.replicas", 100),
    (lambda v, n: v["larry:redis"].update(downAfterMilliseconds=n), "larry:redis.downAfterMilliseconds",
     86_400_000),
])
def test_numbers_have_bounds(edit, path, most):
    values = _dev_values()
    edit(values, most + 1)
    assert _problems(values) == (f"Pulumi.dev.yaml: {path}: expected a positive integer of at most {most:,}, "
                                 f"got number {most + 1}")


def test_a_number_too_long_to_print_is_still_one_line():
    values = _dev_values()
    _worker(values, 0, 0)["tokens"] = 10**5000
    assert _problems(values) == ("Pulumi.dev.yaml: larry:larrys[0].workers[0].tokens: expected a positive integer "
                                 "of at most 1,000,000,000,000, got a number of more than 4300 digits")


def test_worker_tokens_of_10_to_the_30_are_refused():
    values = _dev_values()
    _worker(values, 0, 0)["tokens"] = 10**30
    assert "larry:larrys[0].workers[0].tokens: expected a positive integer of at most" in _problems(values)


@pytest.mark.parametrize("quantity", ["10000000000Ei", "99999999999999999999"])
def test_quantities_have_bounds(quantity):
    values = _dev_values()
    values["larry:larrys"][0]["storage"] = quantity
    assert _problems(values) == (f"Pulumi.dev.yaml: larry:larrys[0].storage: {quantity!r} is too large a memory "
                                 "quantity (more than 2^63-1 bytes)")


# --------------------------------------------------------------------------- tracebacks that were

@pytest.mark.parametrize("bad,got", [({"a": 1}, "a mapping"), (123, "number 123")])
def test_worker_nodes_items_are_checked(bad, got):
    values = _dev_values()
    values["larry:larrys"][0]["workerNodes"] = [bad]
    assert _problems(values) == ("Pulumi.dev.yaml: larry:larrys[0].workerNodes[0]: expected a lowercase DNS label "
                                 f"(a-z, 0-9, '-', at most 63 characters), got {got}")


# --------------------------------------------------------------------------- fuzz

HOSTILE = (None, 0, -1, 10**30, 1.5, float("nan"), True, "", "x", "k3s-worker01", [], [1], [{"a": 1}], {},
           {"a": 1}, {1: 2})


def _paths(value, path=()):
    """Every key path of the dev stack, lists represented by their first item only."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, path + (key,))
    elif isinstance(value, list) and value:
        yield from _paths(value[0], path + (0,))


def test_fuzz_every_key_of_the_dev_stack_with_hostile_values():
    base = _dev_values()
    paths = [p for p in _paths(base) if p]
    assert len(paths) > 60
    for path in paths:
        for bad in HOSTILE:
            values = copy.deepcopy(base)
            parent = values
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = copy.deepcopy(bad)
            try:
                load_config(values, "dev")
            except ConfigError as exc:
                assert all(line.startswith("Pulumi.dev.yaml: larry:") for line in str(exc).splitlines()), (path, bad)
