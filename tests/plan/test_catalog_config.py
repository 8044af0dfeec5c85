"""`larry:catalog`: off unless enabled, seed 004's defaults, one line per mistake."""
import pytest

from plan.loader import load_config
from plan.model import Catalog
from tests.plan.test_config import _dev_values, _problems


def test_the_catalog_is_off_unless_enabled_and_has_seed_004s_shape():
    values = _dev_values()
    assert load_config(values, "dev").catalog == Catalog(enabled=False)
    values["larry:catalog"] = {"enabled": True, "baseline": "catalog-baseline.yaml"}
    catalog = load_config(values, "dev").catalog
    assert (catalog.enabled, catalog.replicas, catalog.port, catalog.baseline) == (True, 2, 3000,
                                                                                  "catalog-baseline.yaml")
    assert catalog.url == "http://catalog-api.catalog-system.svc.cluster.local:3000/graphql"  # seed 004's CATALOG_API


@pytest.mark.parametrize("given, problem", [
    ({"enabled": "yes"}, "larry:catalog.enabled: expected true or false, got string 'yes'"),
    ({"replicas": 0}, "larry:catalog.replicas: expected a positive integer, got number 0"),
    ({"replicas": 11}, "larry:catalog.replicas: expected a positive integer of at most 10, got number 11"),
    ({"port": 70000}, "larry:catalog.port: expected a port number (1-65535), got number 70000"),
    ({"baseline": ""}, "larry:catalog.baseline: expected a non-empty string, got string ''"),
    ({"enable": True}, "larry:catalog.enable: unknown key (did you mean 'enabled'?)"),
    ([True], "larry:catalog: expected a mapping, got a list"),
])
def test_catalog_mistakes_are_one_line_each(given, problem):
    values = _dev_values()
    values["larry:catalog"] = given
    assert _problems(values) == f"Pulumi.dev.yaml: {problem}"
