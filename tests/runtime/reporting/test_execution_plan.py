"""Seed 004's phases against a real redis-server: a phase that misses its goal in its planned
time ends failed in Redis and in its file, and the coordination files follow Redis."""
from __future__ import annotations

import dataclasses
import json
import time
import uuid

from plan.loader import load_stack
from plan.statuses import WorkerStatus
from runtime.coordination.keys import Keyspace
from runtime.coordination.registry import WorkerRegistry
from runtime.reporting.execution_plan import ExecutionPlan
from runtime.support.timing import Timing
from tests.support.project import ROOT

CORTEX = load_stack("cortex", ROOT)


def test_a_phase_past_its_time_fails_and_the_files_follow_redis(r, tmp_path):
    ks = Keyspace.for_plan(CORTEX.channels, prefix=f"t{uuid.uuid4().hex[:10]}:")
    # speed 600, no allowance: phase 0's 5 plan minutes are 0.5 s, phase 1's 10 are 1 s.
    plan = ExecutionPlan(CORTEX, r, ks, tmp_path, Timing(speed=600, allowance=0), catalog_url=None,
                         prometheus_url=None, say=lambda _: None)
    assert plan.preflight(time.monotonic() + 30) is False, "no coordinator opened the ledger"
    assert r.get(ks.phase_status("execution-0")) == "failed"
    preflight = json.loads((tmp_path / "execution-plans" / "preflight-report.json").read_text())
    checks = {c["check"]: (c["outcome"], c["detail"]) for c in preflight["checks"]}
    assert checks["ledger matches plan"] == ("failed", "the run's ledger is not initialised yet")
    assert checks["Redis reachable"][0] == "ok" and checks["Catalog baseline"][0] == "skipped"
    assert preflight["execution_id"] == plan.id and preflight["passed"] is False
    r.hset(ks.schema_master("security-master"), "last_heartbeat", "2026-12-01T04:00:00.000Z")
    assert plan.activate_masters(time.monotonic() + 30) is False
    assert r.get(ks.phase_status("execution-1")) == "failed"
    activation = json.loads((tmp_path / "execution-plans" / "master-activation.json").read_text())
    assert activation["execution_id"] == plan.id and activation["phase"]["status"] == "failed"
    assert {m["name"]: m["status"] for m in activation["masters"]}["security-master"] == "active"
    assert {m["status"] for m in activation["masters"] if m["name"] != "security-master"} == {"missing"}

    WorkerRegistry(r, ks).register("scan-worker-01", "security-master", "k3s-worker01", WorkerStatus.BUSY)
    plan.refresh()
    pool = {w["worker_id"]: w for w in json.loads((tmp_path / "worker-pool.json").read_text())["workers"]}
    assert (pool["scan-worker-01"]["status"], pool["scan-worker-02"]["status"]) == ("running", "pending")
    assert pool["scan-worker-01"]["created_at"] and pool["scan-worker-02"]["created_at"] is None
    status = json.loads((tmp_path / "masters" / "security-master" / "status.json").read_text())
    assert status["last_heartbeat"] == "2026-12-01T04:00:00.000Z" and status["execution_id"] == plan.id
    budget = json.loads((tmp_path / "token-budget.json").read_text())
    assert (budget["total_budget"], budget["used"], budget["efficiency"]) == (CORTEX.budget.system_tokens, 0, "0%")


def test_a_named_run_is_its_own_execution_id(r, tmp_path):
    named = dataclasses.replace(CORTEX, run_id="run-7")
    ks = Keyspace.for_plan(named.channels, prefix=f"t{uuid.uuid4().hex[:10]}:")
    plan = ExecutionPlan(named, r, ks, tmp_path, Timing(speed=600, allowance=0), catalog_url=None,
                         prometheus_url=None, say=lambda _: None)
    plan.preflight(time.monotonic() + 30)
    assert plan.id == "run-7"
    assert json.loads((tmp_path / "execution-plans" / "preflight-report.json").read_text())["execution_id"] == "run-7"
