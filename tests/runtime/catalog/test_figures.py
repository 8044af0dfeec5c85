"""The catalog's figures a run shows (summary, dashboard): the same from Redis and from the API,
new counted from the baseline, and a reason instead of a figure when the catalog is out of reach."""
from __future__ import annotations

import dataclasses

from plan import environment as envvar
from runtime.catalog.figures import CatalogAssets, assets_text, from_api, from_redis
from runtime.coordination.keys import Keyspace
from tests.runtime.catalog.conftest import BASELINE
from tests.runtime.catalog.test_metrics import BATCH
from tests.runtime.catalog.test_service import deployment


def test_redis_and_the_api_agree_on_assets_new_since_the_baseline(replicas, r, prefix, monkeypatch):
    (api,) = replicas(1, BASELINE)
    api.data(BATCH, {"inputs": [deployment("a"), deployment("b"), deployment("a", by="catalog-worker-02")]})
    monkeypatch.setenv(envvar.CATALOG_URL, api.url)
    expected = CatalogAssets(total=44, baseline=42, new=2)
    assert from_api().assets == from_redis(r, Keyspace(prefix=prefix)).assets == expected
    assert assets_text(from_api()) == "44 assets in the catalog, 2 new since its baseline of 42"
    api.stop()
    down = from_api(timeout=2)
    assert down.assets is None and api.url in assets_text(down)
    monkeypatch.delenv(envvar.CATALOG_URL)
    assert assets_text(from_api()) == f"catalog figures unavailable: ${envvar.CATALOG_URL} is not set"
    assert dataclasses.asdict(from_redis(r, Keyspace(prefix="elsewhere:")).assets) == {"total": 0, "baseline": 0,
                                                                                      "new": 0}
