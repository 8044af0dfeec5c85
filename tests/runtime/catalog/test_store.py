"""The store's totals (what `stats` reads) agree with its assets through every kind of write:
added, re-reported, updated, compare-and-set, deleted, loaded from a baseline. Real Redis."""
from __future__ import annotations

from runtime.catalog.assets import BASELINE, Asset
from runtime.catalog.baseline import load_baseline, read_baseline
from runtime.catalog.store import CatalogStore
from tests.runtime.catalog.conftest import BASELINE as BASELINE_FILE


def recount(store: CatalogStore) -> dict:
    """The totals computed from the assets themselves."""
    records = store.all()

    def by(key) -> dict[str, int]:
        counts: dict[str, int] = {}
        for rec in records:
            counts[key(rec)] = counts.get(key(rec), 0) + 1
        return dict(sorted(counts.items()))
    baseline = sum(rec.discovered_by == BASELINE for rec in records)
    return {"total": len(records), "baseline": baseline, "new": len(records) - baseline,
            "by_type": by(lambda rec: rec.asset.type), "by_source": by(lambda rec: rec.asset.source),
            "by_health": by(lambda rec: rec.asset.health), "by_discoverer": by(lambda rec: rec.discovered_by),
            "last_discovered_at": max((rec.discovered_at for rec in records), default=None)}


def totals(store: CatalogStore) -> dict:
    return {k: v for k, v in store.stats().items() if k != "workers"}


def test_the_totals_follow_every_write(r, ks):
    store = CatalogStore(r, ks)
    assert totals(store) == recount(store) == {"total": 0, "baseline": 0, "new": 0, "by_type": {}, "by_source": {},
                                               "by_health": {}, "by_discoverer": {}, "last_discovered_at": None}
    assert load_baseline(store, read_baseline(BASELINE_FILE)) == 42
    assert load_baseline(store, read_baseline(BASELINE_FILE)) == 0
    api = Asset("cortex-api", "DEPLOYMENT", "k3s-cluster", "cortex", {"replicas": 1}, "HEALTHY")
    pod = Asset("cortex-api-1", "POD", "k3s-cluster", "cortex", {}, "UNKNOWN", (api.id,))
    assert [kind for _id, kind in store.upsert([api, pod], "catalog-worker-01")] == ["updated", "added"]
    assert [kind for _id, kind in store.upsert([pod], "catalog-worker-02")] == ["unchanged"]
    store.update(pod.id, {"health": "DEGRADED"})
    store.update(pod.id, {"tags": ["x"]})
    assert store.delete(api.id) and not store.delete(api.id)
    expected = recount(store)
    assert totals(store) == expected
    assert expected["total"] == 42 and expected["baseline"] == 41 and expected["by_discoverer"] == {
        "baseline": 41, "catalog-worker-01": 1}
    assert expected["by_health"]["DEGRADED"] == 1
