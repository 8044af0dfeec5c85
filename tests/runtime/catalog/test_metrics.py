"""The catalog's metrics through a real replica: ``cortex_catalog_assets_discovered_total`` counts
every asset ever added (its rate is the discovery rate): a re-report or a delete does not move
it, while ``cortex_catalog_assets_total`` follows what the catalog holds."""
from __future__ import annotations

import httpx

from tests.runtime.catalog.test_service import deployment

BATCH = "mutation($inputs: [AddAssetInput!]!) { addAssets(inputs: $inputs) { id } }"


def _metrics(api) -> dict[str, float]:
    text = httpx.get(f"http://127.0.0.1:{api.port}/metrics", timeout=5).text
    return {line.split()[0]: float(line.split()[1]) for line in text.splitlines()
            if line.startswith(("cortex_catalog_assets_discovered_total ", "cortex_catalog_assets_total "))}


def test_discoveries_are_counted_once_and_never_uncounted(replicas):
    (api,) = replicas(1)
    assert _metrics(api) == {"cortex_catalog_assets_total": 0, "cortex_catalog_assets_discovered_total": 0}
    added = api.data(BATCH, {"inputs": [deployment("a"), deployment("b")]})["addAssets"]
    api.data(BATCH, {"inputs": [deployment("a")]})  # a re-report is no discovery
    api.data("mutation($id: ID!) { deleteAsset(id: $id) }", {"id": added[0]["id"]})
    assert _metrics(api) == {"cortex_catalog_assets_total": 1, "cortex_catalog_assets_discovered_total": 2}
