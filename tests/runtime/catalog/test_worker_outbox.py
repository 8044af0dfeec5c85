"""Workers write to the catalog (seed 004 risk 4): a worker whose payload reports assets while
the catalog is down buffers them on the coordination volume and replays them once a replica
answers, with nothing lost and nothing duplicated. Real parts: the worker through the `larry`
entry point, a `larry catalog serve` process, the session's redis-server."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import httpx
import pytest

from runtime.agent.protocol import parse_line
from runtime.agent.simulated import assets_for
from runtime.catalog.assets import Asset
from runtime.catalog.client import CatalogClient, CatalogUnavailable, asset_input
from runtime.catalog.outbox import CatalogOutbox, outbox_path
from runtime.catalog.store import CatalogStore
from runtime.coordination.keys import Keyspace
from runtime.reporting.results import results_dir
from runtime.support.ports import free_port
from tests.runtime.catalog.service import LARRY, CatalogProcess, redis_env
from tests.runtime.commands.test_worker import in_thread, join_ok
from tests.support.waiting import wait_for

A = {"name": "cortex-api", "type": "deployment", "source": "k3s-cluster", "namespace": "cortex",
     "lineage": [{"type": "CONTAINER_IMAGE", "name": "ghcr.io/cortex/cortex-api:1.8.2"}]}
B = {"name": "ghcr.io/cortex/cortex-api:1.8.2", "type": "CONTAINER_IMAGE", "source": "k3s-cluster"}
C = {"name": "k3s-worker01", "type": "NODE", "source": "k3s-cluster", "health": "HEALTHY"}

#: Reports A and B, then B again with C (B twice: one asset), then waits for the test's go.
REPORTS_THEN_WAITS = [sys.executable, "-c", textwrap.dedent(f"""
    import json, os, time
    print('@larry ' + json.dumps({{"assets": [{A!r}, {B!r}], "progress": 40, "tokens": 10}}).replace("'", '"'))
    print('@larry ' + json.dumps({{"assets": [{B!r}, {C!r}], "progress": 80}}).replace("'", '"'), flush=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(os.environ["GO_FILE"]) and time.monotonic() < deadline:
        time.sleep(0.05)
""")]


def test_a_worker_buffers_assets_while_the_catalog_is_down_and_replays_them_once_it_is_up(
        rig, monkeypatch, tmp_path, redis_server):
    port = free_port()
    monkeypatch.setenv("LARRY_CATALOG_URL", f"http://127.0.0.1:{port}/graphql")
    go = tmp_path / "go"
    monkeypatch.setenv("GO_FILE", str(go))
    rig.start_phase("inventory")
    outbox = outbox_path(results_dir(rig.dir, "inventory"), "catalog-worker-01")
    replica = CatalogProcess(tmp_path, "catalog", redis_env(redis_server.url), rig.ks.prefix, port=port)
    store = CatalogStore(rig.r, rig.ks)

    def bring_the_catalog_up_late():
        # Both batches are on the volume before any replica exists: nothing could have been sent.
        wait_for(lambda: outbox.exists() and len(outbox.read_text().splitlines()) == 2,
                 "the worker to buffer both batches in its outbox", 30)
        replica.start()
        wait_for(lambda: store.count() == 3, "the buffered assets to reach the catalog", 30)
        go.touch()

    helper = in_thread(bring_the_catalog_up_late)
    try:
        assert rig.worker("inventory", "catalog-worker-01", REPORTS_THEN_WAITS) == 0
        join_ok(helper)
        records = {rec.asset.name: rec for rec in store.all()}
        assert set(records) == {A["name"], B["name"], C["name"]}
        assert {rec.discovered_by for rec in records.values()} == {"catalog-worker-01"}
        assert records[A["name"]].asset.lineage == (records[B["name"]].id,)
        added = [e for e in rig.r.xrange(store.changes_key) if '"asset_added"' in e[1]["payload"]]
        assert len(added) == 3  # B reported twice, added (and announced) once
        assert outbox.read_text() == ""  # everything replayed
        final = store.progress("catalog-worker-01")
        assert final["status"] == "completed" and final["tokensUsed"] == 10
        result = rig.board.result("catalog-deep-scan-001")
        assert result["data"]["assets_reported"] == 4
    finally:
        go.touch()
        replica.stop()


def test_a_batch_sent_again_after_a_crash_duplicates_nothing_and_a_cut_short_line_is_skipped(
        replicas, tmp_path, r, prefix):
    (api,) = replicas(1)
    client = CatalogClient(api.url)
    outbox = CatalogOutbox(tmp_path / "catalog-outbox-w.jsonl", client)
    assets = assets_for("CATALOG-DEEP-SCAN-001", 10)
    outbox.put(assets[:6], "w")
    # The catalog took the first batch, then the worker died before removing it from its file.
    client.add_assets([asset_input(a, "w") for a in assets[:6]])
    with outbox.path.open("a") as handle:
        handle.write('{"assets": [{"name": "cut-sh')  # a crash in the middle of an append
    outbox.put(assets[6:], "w")
    assert outbox.pending() == 2
    assert outbox.flush() is True and outbox.pending() == 0
    store = CatalogStore(r, Keyspace(prefix=prefix))
    assert store.count() == 10
    assert sum('"asset_added"' in e[1]["payload"] for e in r.xrange(store.changes_key)) == 10


def test_larry_catalog_replay_sends_what_an_exited_worker_left(replicas, tmp_path):
    (api,) = replicas(1)
    left = CatalogOutbox(outbox_path(results_dir(tmp_path, "inventory"), "catalog-worker-02"),
                         CatalogClient(api.url))
    left.put([Asset("k3s-worker02", "NODE", "k3s-cluster")], "catalog-worker-02")
    done = subprocess.run([*LARRY, "catalog", "replay", "--coordination-dir", str(tmp_path), "--url", api.url],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "1 batch(es) sent, 0 left" in done.stdout
    assert api.data('{ assets(type: NODE) { name discoveredBy } }')["assets"] == \
        [{"name": "k3s-worker02", "discoveredBy": "catalog-worker-02"}]


def test_the_simulated_catalog_workers_report_plausible_linked_assets():
    assets = assets_for("catalog-deep-scan-002", 47)
    assert len(assets) == 47 and len({a.id for a in assets}) == 47
    ids = {a.id for a in assets}
    pods = [a for a in assets if a.type == "POD"]
    assert pods and all(set(p.lineage) <= ids for p in pods)  # each pod's ReplicaSet and image are reported too
    line = json.dumps({"assets": [json.loads(a.content()) for a in assets]})
    assert parse_line("@larry " + line).assets == tuple(assets)


def test_a_replica_without_redis_answers_503_and_the_outbox_keeps_the_batch(own_server, tmp_path, prefix):
    env = {**redis_env(own_server.url), "LARRY_REDIS_RETRY_FOR": "2"}
    replica = CatalogProcess(tmp_path, "catalog", env, prefix).start()
    try:
        outbox = CatalogOutbox(tmp_path / "catalog-outbox-w.jsonl", CatalogClient(replica.url))
        with pytest.raises(CatalogUnavailable):  # a wrong URL is no verdict on the batch either
            CatalogClient(replica.url.replace("/graphql", "/nowhere")).add_assets([])
        own_server.kill()
        outbox.put([Asset("k3s-worker03", "NODE", "k3s-cluster")], "w")
        assert outbox.flush() is False and outbox.pending() == 1  # unavailable, not refused: kept
        answer = httpx.post(replica.url, json={"query": "{ stats { assets { total } } }"}, timeout=30)
        assert answer.status_code == 503 and "Redis is unavailable" in answer.json()["errors"][0]["message"]
        own_server.start()
        wait_for(outbox.flush, "the outbox to deliver its batch once Redis is back", 30)
        assert replica.data('{ assets { name discoveredBy } }')["assets"] == \
            [{"name": "k3s-worker03", "discoveredBy": "w"}]
    finally:
        replica.stop()
