"""The seeds' Redis names kept with the state they mirror: seed 004's worker and master hashes,
metric series and event entries; seed 001's per-phase figures and ``tokens:{larry}:used``."""

import json

from plan.loader import load_stack
from plan.model import master_account, worker_account
from runtime.coordination.events import EventLog
from runtime.coordination.keys import Keyspace
from runtime.coordination.leases import LeaseManager
from runtime.coordination.ledger import Ledger
from runtime.coordination.registry import WorkerRegistry
from runtime.coordination.schema import MasterBoard
from runtime.coordination.tasks import QueueEntry, TaskBoard
from tests.support.project import ROOT

CORTEX = load_stack("cortex", ROOT)


def last(r, key: str) -> float:
    return float(r.xrevrange(key, count=1)[0][1]["value"])


def test_a_worker_s_hash_follows_its_status_and_its_master_counts_it_once(r, ks):
    registry = WorkerRegistry(r, ks, grace_ms=1)
    assert registry.register("w1", "m", "node-1", counted_by="m") is True
    assert registry.register("w1", "m", "node-1", counted_by="m") is False, "a restart is not a new worker"
    registry.register("w2", "larry-01", "node-1")  # names no master: counted by none
    worker = r.hgetall(ks.schema_worker("w1"))
    assert (worker["status"], worker["progress"], worker["tokens_used"], worker["master"]) == ("pending", "0", "0", "m")
    assert r.hgetall(ks.schema_master("m")) == {"workers_spawned": "1"}
    registry.heartbeat("w1", "busy")
    registry.progress("w1", 140)
    assert r.hmget(ks.schema_worker("w1"), "status", "progress") == ["running", "100"]
    registry.deregister("w1", "completed")
    assert r.hmget(ks.schema_worker("w1"), "status", "progress") == ["completed", "100"]
    assert registry.reap("w2") and r.hget(ks.schema_worker("w2"), "status") == "failed"


def test_spent_tokens_are_mirrored_once_in_the_booking_script(r, ks):
    ks = Keyspace.cortex(ks.prefix)
    ledger = Ledger.for_plan(r, ks, CORTEX)
    ledger.open()
    account = worker_account("security", "scan-worker-01")
    assert ledger.record("op-1", account, 700, worker="scan-worker-02").status == "committed"
    assert ledger.record("op-1", account, 700, worker="scan-worker-02").replay, "a replay books nothing"
    ledger.reserve("op-2", account, 500)  # reserved is not spent
    ledger.record("duty", master_account("security", "security-master", "personal"), 50)
    assert r.hget(ks.schema_worker("scan-worker-02"), "tokens_used") == "700", "the worker that spent them"
    assert r.hget(ks.schema_master("security-master"), "tokens_used") == "750", "its pool and personal account"
    assert r.get(ks.tokens_used("security")) == "750" and ks.tokens_used("security") == ks.prefix + "tokens:security:used"
    assert last(r, ks.schema_series("tokens_used")) == 750 and r.xlen(ks.schema_series("tokens_used")) == 2


def test_a_completed_task_s_findings_and_the_queue_depth_are_counted_when_it_completes(r, ks):
    board = TaskBoard(r, ks)
    board.define("larry-03", {"scan": [], "count": [], "broken": []},
                 {t: QueueEntry("inventory-master", "medium", i) for i, t in enumerate(("scan", "count", "broken"))},
                 ["w1"])
    assert r.smembers(ks.phase_workers("larry-03")) == {"w1"} and last(r, ks.schema_series("task_queue_depth")) == 3
    leases = LeaseManager(r, ks, "larry-03", worker="w1", tracks={"scan": "inventory", "count": "inventory"})
    found = {"cves": {"critical": 1, "high": 2}, "prs_created": 1, "assets_discovered": 40, "coverage_delta": 2.5}
    assert leases.complete(leases.acquire("scan").lease, {"findings": found}).status == "accepted"
    lease = leases.acquire("count").lease
    assert leases.complete(lease, {"findings": found}).ok and leases.complete(lease, {"findings": found}).ok
    assert leases.fail(leases.acquire("broken").lease, "no", retry=False).ok  # a failure counts nothing
    assert r.hgetall(ks.phase_findings("larry-03")) == {"critical": "2", "high": "4"}
    assert r.get(ks.metric("larry-03", "cves_found")) == "6"
    assert r.get(ks.phase_figure("larry-03", "assets_discovered", "inventory")) == "80"
    assert ks.phase_figure("larry-03", "assets_discovered", "inventory") == ks.prefix + "phase:larry-03:inventory:assets_discovered"
    assert r.get(ks.metric("larry-03", "assets_cataloged")) == "80"
    assert r.get(ks.phase_figure("larry-03", "prs_created")) == "2"
    assert float(r.get(ks.phase_figure("larry-03", "coverage_increase", "inventory"))) == 5.0
    assert last(r, ks.schema_series("tasks_completed")) == 2 and last(r, ks.schema_series("cves_found")) == 6
    assert last(r, ks.schema_series("task_queue_depth")) == 0


def test_stream_entries_carry_the_seed_s_fields(r, ks):
    EventLog(r, ks).emit("worker_spawn", "larry-01/master", worker="w1")
    [(_, fields)] = r.xrange(ks.stream)
    assert set(fields) == {"event_type", "source", "timestamp", "channel", "payload"}
    assert (fields["event_type"], fields["source"]) == ("worker_spawn", "larry-01/master")
    assert json.loads(fields["payload"])["timestamp"] == fields["timestamp"]


def test_a_master_s_status_is_active_idle_or_overloaded(r, ks):
    ledger = Ledger.for_plan(r, ks, CORTEX)
    ledger.open()
    board = MasterBoard(r, ks, ledger, trigger=0.9)
    security = CORTEX.larry("security")
    board.beat("security-master")
    board.refresh(security, {"scan-cortex-namespace": "in_progress"})
    assert r.hmget(ks.schema_master("security-master"), "status", "tasks_active") == ["active", "1"]
    pool = master_account("security", "security-master", "pool")
    ledger.record("big", worker_account("security", "scan-worker-01"), int(0.95 * ledger.accounts[pool].limit))
    board.refresh(security, {"scan-cortex-namespace": "in_progress"})
    assert r.hget(ks.schema_master("security-master"), "status") == "overloaded"
    board.refresh(security, {"scan-cortex-namespace": "completed"})
    assert r.hmget(ks.schema_master("security-master"), "status", "tasks_active") == ["idle", "0"]
    assert r.hget(ks.schema_master("security-master"), "last_heartbeat").endswith("Z")
