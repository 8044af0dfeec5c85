"""Strict config (issue 11): no key is ignored without a word, no number is out of range,
and no input — however hostile — gets a traceback instead of one line naming the file, the
key path and what was expected."""
import copy

import pytest
import yaml

from plan import loader
from plan.loader import ConfigError, load_config, load_plan_document, load_stack_file
from tests.plan.test_config import _dev_values, _problems, _worker
from tests.support.project import ROOT

DEV_TEXT = (ROOT / "Pulumi.dev.yaml").read_text()


def _file_problems(path):
    with pytest.raises(ConfigError) as caught:
        load_stack_file(path)
    message = str(caught.value)
    assert "Traceback" not in message
    return message


def _line_of(text, needle):
    return text[:text.index(needle)].count("\n") + 1


# --------------------------------------------------------------------------- unknown and duplicate keys

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


@pytest.fixture(params=["default", "pure-python"])
def yaml_loader(request, monkeypatch):
    """The stack loader as shipped (libyaml where present) and its pure-Python fallback."""
    if request.param == "pure-python":
        monkeypatch.setattr(loader, "_StackLoader", loader._strict_loader(yaml.SafeLoader))
    return loader._StackLoader


def test_libyaml_parses_where_present():
    if not yaml.__with_libyaml__:
        pytest.skip("PyYAML built without libyaml")
    from yaml.cyaml import CParser
    assert issubclass(loader._StackLoader, CParser)


def test_duplicate_keys_are_errors_naming_both_lines(tmp_path, yaml_loader):
    first = "  larry:executionWindowMinutes: 40\n"
    text = DEV_TEXT.replace(first, first + "  larry:executionWindowMinutes: 45\n")
    text = text.replace("{name: security-master, personalTokens: 30000, workerPoolTokens: 15000}",
                        "{name: security-master, personalTokens: 30000, workerPoolTokens: 15000,\n"
                        "           personalTokens: 90000}", 1)
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(text)
    window = _line_of(text, first)
    master = _line_of(text, "{name: security-master")
    assert _file_problems(path).splitlines() == [
        f"{path}: line {window + 1}: duplicate key 'larry:executionWindowMinutes' (first at line {window})",
        f"{path}: line {master + 1}: duplicate key 'personalTokens' (first at line {master})",
    ]


def test_merge_keys_may_override_what_they_merge(tmp_path, yaml_loader):
    text = DEV_TEXT.replace("        - name: consolidation-worker\n          node: k3s-worker01\n"
                            "          tokens: 10000\n          minutes: 20\n",
                            "        - name: consolidation-worker\n          <<: &defaults {node: k3s-worker01, "
                            "tokens: 8000, minutes: 20}\n          tokens: 10000\n")
    assert "<<: &defaults" in text
    (tmp_path / "Pulumi.dev.yaml").write_text(text)
    worker = load_stack_file(tmp_path / "Pulumi.dev.yaml").larrys[0].workers[1]
    assert (worker.node, worker.tokens, worker.minutes) == ("k3s-worker01", 10000, 20)


def test_a_mapping_both_merged_and_used_is_checked_once(yaml_loader):
    # Merging flattens the merged mapping in place (x: 1 then x: 2): not a duplicate.
    text = "a: &a {<<: {x: 1}, x: 2}\nb: {<<: *a, y: 1}\nc: *a\nconfig: {larry:runtimeImage: 1}\n"
    with pytest.raises(ConfigError) as caught:
        load_plan_document(text, "src")
    assert "duplicate" not in str(caught.value)


def test_yaml_syntax_errors_keep_their_line(tmp_path, yaml_loader):
    text = DEV_TEXT.replace("      phase: Security & Compliance\n", "      phase: [Security & Compliance\n")
    path = tmp_path / "Pulumi.dev.yaml"
    path.write_text(text)
    message = _file_problems(path)
    line = _line_of(text, "phase: [Security")
    assert message.startswith(f"{path}: not valid YAML (line {line + 1}, column ")
    assert len(message.splitlines()) == 1


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
    values = _dev_values()
    values["larry:larrys"][0]["storage"] = 10**5000
    assert _problems(values) == ("Pulumi.dev.yaml: larry:larrys[0].storage: expected a Kubernetes quantity string, "
                                 "got a number of more than 4300 digits")


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


def test_a_non_utf8_byte_names_the_file_and_line(tmp_path):
    path = tmp_path / "Pulumi.dev.yaml"
    data = DEV_TEXT.encode().replace(b"Security & Compliance", b"Security \xff Compliance")
    path.write_bytes(data)
    line = data[:data.index(b"\xff")].count(b"\n") + 1
    assert _file_problems(path) == f"{path}: line {line}: not UTF-8 text (byte 0xff)"


def test_a_directory_where_the_stack_file_should_be(tmp_path):
    (tmp_path / "Pulumi.dev.yaml").mkdir()
    assert _file_problems(tmp_path / "Pulumi.dev.yaml") == (
        f"{tmp_path / 'Pulumi.dev.yaml'}: cannot read the file (Is a directory)")


@pytest.mark.parametrize("text,expected", [
    ("config: {larry:larrys: " + "[" * 100_000 + "]" * 100_000 + "}\n",
     "src: not valid YAML (nested more deeply than any stack config)"),
    ("config: {larry:executionWindowMinutes: " + "9" * 5000 + "}\n",
     "src: not valid YAML (line 1, column 40: an integer of 5000 digits is too long)"),
    ("stack: [dev]\nconfig: {}\n", "src: stack: expected a stack name, got a list"),
    ("- config\n", "src: expected a top-level 'config:' mapping"),
])
def test_hostile_documents_are_one_line(text, expected, yaml_loader):
    with pytest.raises(ConfigError) as caught:
        load_plan_document(text, "src")
    assert str(caught.value) == expected


def test_control_characters_and_unprintable_keys_are_one_line(yaml_loader):
    with pytest.raises(ConfigError) as caught:
        load_plan_document("config:\n  larry:x: \"a\x00\"\n", "src")
    assert str(caught.value).startswith("src: not valid YAML (line 2: unacceptable character #x0000")
    with pytest.raises(ConfigError) as caught:  # a plan handed over as JSON text may hold one
        load_plan_document("config:\n  larry:x: \ud800\n", "src")
    assert str(caught.value).startswith("src: not valid YAML (line 2: ")
    with pytest.raises(ConfigError) as caught:
        load_plan_document('config: {"larry:x\\ny": 1}\n', "src")
    assert str(caught.value).splitlines()[0] == "src: 'larry:x\\ny': unknown key (did you mean 'larry:larrys'?)"


def test_aliases_expanding_to_a_billion_values_are_refused():
    def thousand(alias):
        return "[" + ", ".join([alias] * 1000) + "]"
    text = (f"anchors:\n  - &t {{id: t, title: t}}\n  - &w {thousand('*t')}\n  - &l {thousand('*w')}\n"
            f"config:\n  larry:larrys: {thousand('*l')}\n")
    with pytest.raises(ConfigError) as caught:
        load_plan_document(text, "src")
    assert str(caught.value) == ("src: more than 2,000,000 values with YAML aliases expanded "
                                 "(more than any stack config holds)")


def test_a_deeply_nested_json_string_value_is_reported_not_raised():
    text = "config:\n  larry:larrys: '" + "[" * 100_000 + "'\n"
    with pytest.raises(ConfigError) as caught:
        load_plan_document(text, "src")
    assert "src: larry:larrys: expected a list, got string '[[[[" in str(caught.value)
    assert len(max(str(caught.value).splitlines(), key=len)) < 200


# --------------------------------------------------------------------------- fuzz

HOSTILE = (None, -1, 10**30, 1.5, True, "", "k3s-worker01", [], [{"a": 1}], {"a": 1}, {1: 2})


def _paths(value, path=()):
    """Every key path of a stack's config, lists represented by their first item only."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, path + (key,))
    elif isinstance(value, list) and value:
        yield from _paths(value[0], path + (0,))


def fuzz(values, section, stack):
    """Each key path of ``section`` (a part of ``values``) set in turn to every HOSTILE value:
    ``values`` loads or fails with one line per problem, never a traceback. The paths tried."""
    paths = [p for p in _paths(section) if p]
    for path in paths:
        parent = section
        for key in path[:-1]:
            parent = parent[key]
        original = parent[path[-1]]
        for bad in HOSTILE:
            parent[path[-1]] = copy.deepcopy(bad)  # the loader never writes to what it reads
            try:
                load_config(values, stack)
            except ConfigError as exc:
                assert all(line.startswith(f"Pulumi.{stack}.yaml: larry:") and len(line) < 400
                           for line in str(exc).splitlines()), (path, bad)
        parent[path[-1]] = original
    return len(paths)


@pytest.mark.parametrize("stack", ["dev", "cortex"])
def test_fuzz_every_key_of_a_stack_with_hostile_values(stack):
    base = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text())["config"]
    assert fuzz(base, base, stack) > 60
