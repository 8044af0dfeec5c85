"""How a stack fits the cluster it lands on: where Prometheus runs and what it selects on
(`larry:observability`), the Secrets images are pulled with (`larry:imagePullSecrets`), the run id (`larry:runId`)."""
import pytest

from plan.loader import load_config
from tests.plan.test_config import _dev_values, _problems


def test_prometheus_defaults_to_kube_prometheus_stacks_namespace_with_no_extra_labels():
    observability = load_config(_dev_values(), "dev").observability
    assert (observability.prometheus_namespace, dict(observability.prometheus_labels)) == ("monitoring", {})
    values = _dev_values()
    values["larry:observability"] = {"prometheusNamespace": "observability",
                                     "prometheusLabels": {"release": "kps", "example.com/team": "platform"}}
    observability = load_config(values, "dev").observability
    assert observability.prometheus_namespace == "observability"
    assert dict(observability.prometheus_labels) == {"release": "kps", "example.com/team": "platform"}


@pytest.mark.parametrize("given, problem", [
    ({"prometheusNamespace": "Monitoring"},
     "larry:observability.prometheusNamespace: expected a lowercase DNS label"),
    ({"prometheusLabels": ["release"]},
     "larry:observability.prometheusLabels: expected a mapping of label names to values, got a list"),
    ({"prometheusLabels": {"release": "kube prometheus"}},
     "larry:observability.prometheusLabels.release: expected a label value"),
    ({"prometheusLabels": {"release": 1}},
     "larry:observability.prometheusLabels.release: expected a label value"),
    ({"prometheusLabels": {"-release": "x"}},
     "larry:observability.prometheusLabels.-release: label name '-release' is not a label name ([prefix/]name)"),
])
def test_prometheus_mistakes_are_one_line_each(given, problem):
    values = _dev_values()
    values["larry:observability"] = given
    found = _problems(values)
    assert found.startswith(f"Pulumi.dev.yaml: {problem}") and "\n" not in found, found


@pytest.mark.parametrize("given, problem", [
    ("regcred", "larry:imagePullSecrets: expected a list, got string 'regcred'"),
    (["Regcred"], "larry:imagePullSecrets[0]: expected a lowercase DNS label"),
])
def test_pull_secret_mistakes_are_one_line_each(given, problem):
    values = _dev_values()
    values["larry:imagePullSecrets"] = given
    found = _problems(values)
    assert found.startswith(f"Pulumi.dev.yaml: {problem}") and "\n" not in found, found


def test_a_run_id_prefixes_the_runs_keys():
    values = _dev_values()
    assert load_config(values, "dev").key_prefix == ""
    values["larry:runId"] = "run-2"
    assert load_config(values, "dev").key_prefix == "run-2:"
    values["larry:runId"] = "Run 2"
    assert _problems(values).startswith("Pulumi.dev.yaml: larry:runId: expected a lowercase DNS label")
