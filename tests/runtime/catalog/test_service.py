"""The catalog service end to end: real uvicorn replicas on loopback ports over a real Redis,
driven by real HTTP and WebSocket (graphql-transport-ws) clients."""
from __future__ import annotations

import subprocess

from runtime.catalog.assets import ASSET_TYPES, asset_id
from tests.runtime.catalog.conftest import BASELINE
from tests.runtime.catalog.service import LARRY, Subscriber, redis_env
from tests.support.project import ROOT

ADD = """mutation($input: AddAssetInput!) {
  addAsset(input: $input) { id name type namespace discoveredBy discoveredAt health metadata tags lineage { id name } }
}"""
ADDED = "subscription { assetAdded { id name type discoveredBy lineage { name } } }"
UPDATED = "subscription { assetUpdated { id name health metadata } }"
TOTAL = "{ stats { assets { total baseline new } } }"


def deployment(name: str, by: str = "catalog-worker-01", **extra) -> dict:
    return {"name": name, "type": "DEPLOYMENT", "source": "k3s-cluster", "namespace": "cortex",
            "discoveredBy": by, **extra}


def test_phase_zero_baseline_queries_and_mutations(replicas):
    (api,) = replicas(1, BASELINE)
    # Phase 0's baseline: the seed's 42 assets.
    assert api.data(TOTAL)["stats"]["assets"] == {"total": 42, "baseline": 42, "new": 0}
    nodes = api.data("{ assets(type: NODE) { name health } }")["assets"]
    assert len(nodes) == 7 and all(n["health"] == "HEALTHY" for n in nodes)
    assert {a["name"] for a in api.data('{ assets(source: "github") { name } }')["assets"]} == {"cortex", "aiana"}
    found = api.data('{ search(query: "grafana monitoring") { type name lineage { type name } } }')["search"]
    assert {(a["type"], a["name"]) for a in found} == {("DEPLOYMENT", "grafana"), ("SERVICE", "grafana")}
    service = next(a for a in found if a["type"] == "SERVICE")
    assert service["lineage"] == [{"type": "DEPLOYMENT", "name": "grafana"}]

    image = api.data('{ search(query: "grafana/grafana") { id } }')["search"][0]["id"]
    added = api.data(ADD, {"input": deployment("cortex-worker", metadata={"replicas": 3}, lineage=[image],
                                               tags=["team=cortex"])})["addAsset"]
    assert added["id"] == asset_id("k3s-cluster", "DEPLOYMENT", "cortex", "cortex-worker")
    assert added["discoveredBy"] == "catalog-worker-01" and added["health"] == "UNKNOWN"
    assert added["lineage"] == [{"id": image, "name": "grafana/grafana:11.4.0"}]
    assert api.data("query($id: ID!) { asset(id: $id) { name metadata tags } }", {"id": added["id"]})["asset"] == \
        {"name": "cortex-worker", "metadata": {"replicas": 3}, "tags": ["team=cortex"]}
    assert api.data(TOTAL)["stats"]["assets"] == {"total": 43, "baseline": 42, "new": 1}

    updated = api.data("mutation($id: ID!) { updateAsset(id: $id, input: {health: DEGRADED, tags: [\"x\"]}) "
                       "{ health tags metadata discoveredAt } }", {"id": added["id"]})["updateAsset"]
    assert updated == {"health": "DEGRADED", "tags": ["x"], "metadata": {"replicas": 3},
                       "discoveredAt": added["discoveredAt"]}
    assert api.data("mutation($id: ID!) { deleteAsset(id: $id) }", {"id": added["id"]}) == {"deleteAsset": True}
    assert api.data("mutation($id: ID!) { deleteAsset(id: $id) }", {"id": added["id"]}) == {"deleteAsset": False}
    assert api.data("query($id: ID!) { asset(id: $id) { id } }", {"id": added["id"]}) == {"asset": None}


def test_bad_input_is_one_clear_error_and_writes_nothing(replicas):
    (api,) = replicas(1)
    cases = [
        (deployment("a", type="BOGUS"), "AssetType"),
        (deployment(""), "name: expected a non-empty string"),
        (deployment("a", by=""), "discoveredBy: expected a non-empty string"),
        (deployment("a", lineage=[""]), "lineage[0]: expected an asset id"),
        (deployment("a", metadata={"blob": "x" * 20_000}), "metadata: expected at most 16,384 bytes"),
    ]
    for given, expected in cases:
        errors = api.gql(ADD, {"input": given})["errors"]
        assert len(errors) == 1 and expected in errors[0]["message"], (given, errors)
    batch = "mutation($inputs: [AddAssetInput!]!) { addAssets(inputs: $inputs) { id } }"
    errors = api.gql(batch, {"inputs": [deployment("good"), deployment("bad", tags=[""])]})["errors"]
    assert "input[1].tags" in errors[0]["message"]
    assert api.data(TOTAL)["stats"]["assets"]["total"] == 0  # the good one of the batch neither


def test_upsert_is_idempotent_by_natural_key(replicas):
    (api,) = replicas(1)
    added, updated = Subscriber(api, ADDED), Subscriber(api, UPDATED)
    try:
        first = api.data(ADD, {"input": deployment("cortex-api", metadata={"replicas": 2})})["addAsset"]
        again = api.data(ADD, {"input": deployment("cortex-api", by="catalog-worker-02",
                                                   metadata={"replicas": 2})})["addAsset"]
        assert again == first  # same id, first discoverer and discovery time kept
        changed = api.data(ADD, {"input": deployment("cortex-api", metadata={"replicas": 3})})["addAsset"]
        assert changed["id"] == first["id"] and changed["discoveredAt"] == first["discoveredAt"]
        other = api.data(ADD, {"input": deployment("cortex-api", namespace="aiana")})["addAsset"]
        assert other["id"] != first["id"]  # another namespace: another asset

        assert api.data(TOTAL)["stats"]["assets"]["total"] == 2
        # The identical re-report notified nobody: the next addition after the first is the other namespace's.
        assert added.next()["assetAdded"]["id"] == first["id"]
        assert added.next()["assetAdded"]["id"] == other["id"]
        assert updated.next()["assetUpdated"] == {"id": first["id"], "name": "cortex-api", "health": "UNKNOWN",
                                                  "metadata": {"replicas": 3}}
    finally:
        added.close()
        updated.close()


def test_two_replicas_serve_one_catalog_and_subscriptions_see_writes_through_either(replicas):
    a, b = replicas(2)
    on_a = Subscriber(a, ADDED)
    progress_on_a = Subscriber(a, 'subscription { workerProgress(workerId: "catalog-worker-03") '
                                  '{ workerId status progress tokensUsed task } }')
    try:
        written = b.data(ADD, {"input": deployment("written-through-b")})["addAsset"]
        assert on_a.next()["assetAdded"] == {"id": written["id"], "name": "written-through-b", "type": "DEPLOYMENT",
                                             "discoveredBy": "catalog-worker-01", "lineage": []}
        assert a.data("query($id: ID!) { asset(id: $id) { name } }", {"id": written["id"]})["asset"]["name"] == \
            "written-through-b"
        report = "mutation($input: WorkerProgressInput!) { reportProgress(input: $input) { workerId } }"
        b.data(report, {"input": {"workerId": "catalog-worker-04", "status": "busy", "progress": 10}})
        b.data(report, {"input": {"workerId": "catalog-worker-03", "status": "busy", "progress": 50,
                                  "tokensUsed": 1200, "task": "CATALOG-DEEP-SCAN-003"}})
        # Only the subscribed worker's progress arrives.
        assert progress_on_a.next()["workerProgress"] == {
            "workerId": "catalog-worker-03", "status": "busy", "progress": 50, "tokensUsed": 1200,
            "task": "CATALOG-DEEP-SCAN-003"}
        assert a.data("{ stats { workers } }")["stats"]["workers"] == 2
    finally:
        on_a.close()
        progress_on_a.close()


def test_sentinel_failover_under_the_catalog_keeps_it_serving(sentinel_cluster, replicas, prefix):
    sentinels = ",".join(f"{h}:{p}" for h, p in sentinel_cluster.sentinel_addresses)
    env = {"LARRY_REDIS_SENTINELS": sentinels, "LARRY_REDIS_MASTER_NAME": sentinel_cluster.master_name,
           "LARRY_REDIS_RETRY_FOR": "60"}
    (api,) = replicas(1, env=env)
    watcher = Subscriber(api, ADDED)
    try:
        before = api.data(ADD, {"input": deployment("before-failover")})["addAsset"]
        assert watcher.next()["assetAdded"]["id"] == before["id"]
        new_primary = sentinel_cluster.failover()
        after = api.data(ADD, {"input": deployment("after-failover")})["addAsset"]
        assert watcher.next(timeout=60)["assetAdded"]["id"] == after["id"]
        names = {a["name"] for a in api.data("{ assets { name } }")["assets"]}
        assert names == {"before-failover", "after-failover"}
        assert new_primary.client().hlen(f"{prefix}catalog:assets") == 2  # written on the promoted primary
    finally:
        watcher.close()


def test_a_bad_baseline_is_refused_in_one_line_with_nothing_written(redis_server, prefix, tmp_path, r):
    bad = tmp_path / "baseline.yaml"
    bad.write_text("assets:\n  - {name: a, type: DEPLOYMENT, source: k}\n  - {name: b, type: ROCKET, source: k}\n")
    done = subprocess.run([*LARRY, "catalog", "serve", "--port", "1", "--key-prefix",
                           prefix, "--baseline", str(bad)], cwd=ROOT, env={**redis_env(redis_server.url)},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"larry catalog: {bad}: assets[1].type: expected one of {', '.join(ASSET_TYPES)}, got \"ROCKET\""]
    assert r.exists(f"{prefix}catalog:assets") == 0
