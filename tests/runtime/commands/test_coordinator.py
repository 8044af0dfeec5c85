"""`larry coordinator` pieces on a real redis-server: resuming from Redis state, ending the
phase, dead workers, pause requests, the final report and its validation. The whole
coordinator process, in runs with real workers, is exercised by test_run.py."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import replace

import pytest
import yaml

from plan.loader import load_stack
from plan.model import meta_account
from runtime import cli
from runtime.commands.coordinator import Coordinator
from runtime.commands.run import larry_command
from runtime.coordination.events import EventListener, EventLog
from runtime.coordination.keys import Keyspace
from runtime.coordination.leases import LeaseManager
from runtime.coordination.registry import WorkerRegistry
from runtime.reporting.schema import load_larry_report, write_larry_report
from runtime.reporting.validation import validate
from tests.runtime.commands.worker_rig import CORTEX, ROOT
from tests.support.waiting import wait_for

FOREVER = float("inf")


def names(rig, event):
    return [e for e in EventLog(rig.r, rig.ks).history() if e.name == event]


def test_a_restarted_coordinator_resumes_from_redis_state(rig):
    first = rig.start_phase("security")
    ledger = rig.ledger()
    assert ledger.record("op-1", "security", 500).ok
    worker = LeaseManager(rig.r, rig.ks, "security", worker="scan-worker-01")
    assert worker.complete(worker.acquire("scan-cortex-namespace").lease, {"tokens": 500}).ok
    rig.r.hset(rig.ks.token_account(meta_account("reserve")), "lent", 24_990)  # as if 24,990 had been lent
    first.phase.progress(25)

    # The same plan, or one whose budget changed meanwhile: Redis state wins either way.
    larry = replace(CORTEX.larry("security"), token_budget=1)
    again = Coordinator(CORTEX, larry, rig.r, rig.ks, first.timing, rig.dir)
    again.initialise()
    snapshot = ledger.snapshot("security")
    assert (snapshot["limit"], snapshot["committed"], snapshot["pool"]) == (45_000, 500, 10)
    assert rig.board.statuses(["scan-cortex-namespace"]) == {"scan-cortex-namespace": "completed"}
    assert again.phase.snapshot()["status"] == "in_progress" and again.phase.snapshot()["progress"] == 25
    assert len(names(rig, "phase_started")) == 1


def test_the_phase_ends_as_soon_as_its_outcome_is_known(rig):
    coordinator = rig.start_phase("security")
    workers = LeaseManager(rig.r, rig.ks, "security", worker="scan-worker-01")
    assert coordinator.outcome(FOREVER) is None
    assert workers.fail(workers.acquire("scan-cortex-namespace").lease, "budget exhausted", retry=False).ok
    # The remediation plan can never run now, but two scans still can.
    assert coordinator.outcome(FOREVER) is None
    for task in ("scan-catalog-system-namespace", "scan-cortex-system-namespace"):
        assert workers.complete(workers.acquire(task).lease, {}).ok
    assert coordinator.outcome(FOREVER) == (
        "failed", "2/4 tasks completed; failed: scan-cortex-namespace; cannot run: write-cve-remediation-plan")
    status, message = coordinator.outcome(deadline=0.0)
    assert status == "failed"


def test_deadline_and_completion(rig):
    coordinator = rig.start_phase("cicd")
    status, message = coordinator.outcome(deadline=0.0)
    assert (status, message) == ("failed", "deadline passed (50 plan minutes at speed 600) with 0/2 tasks completed")
    worker = LeaseManager(rig.r, rig.ks, "cicd", worker="analysis-worker-01")
    for task in ("audit-github-actions", "optimize-cronjob-schedules"):
        assert worker.complete(worker.acquire(task).lease, {}).ok
    assert coordinator.outcome(deadline=0.0) == ("completed", "all 2 tasks completed")


def test_a_dead_workers_orphaned_task_is_requeued_and_reported(rig):
    coordinator = rig.start_phase("security")
    coordinator.registry = WorkerRegistry(rig.r, rig.ks, grace_ms=300)
    coordinator.registry.register("scan-worker-01", "security-master", "k3s-worker01", "busy")
    dying = LeaseManager(rig.r, rig.ks, "security", worker="scan-worker-01", ttl_ms=300)
    assert dying.acquire("scan-cortex-namespace")
    wait_for(lambda: coordinator.registry.dead() == ["scan-worker-01"]  # no heartbeat, no renewal: both run out
             and rig.r.get(rig.ks.task_lock("scan-cortex-namespace")) is None,
             "the worker's 0.3 s heartbeat grace and lease to run out", timeout=10)
    coordinator.reap_dead_workers()
    assert rig.r.get(rig.ks.worker_status("scan-worker-01")) == "dead"
    coordinator.requeue_orphans({"scan-worker-01": "dead"})
    assert rig.board.statuses(["scan-cortex-namespace"]) == {"scan-cortex-namespace": "pending"}
    [requeued] = names(rig, "task_requeued")
    assert requeued.data == requeued.data | {"task_id": "scan-cortex-namespace", "worker": "scan-worker-01"}

    coordinator.phase.fail("test over")
    coordinator.history.add(EventListener(rig.r, rig.ks, "0-0").poll(None))
    report = coordinator.build_report()
    path = write_larry_report(rig.dir / "reports", report)  # the schema converge reads
    assert load_larry_report(path)["requeued_tasks"] == ["scan-cortex-namespace"]
    assert [a["event"] for a in report["alerts"]] == ["worker_dead", "phase_failed"]
    task = next(t for t in report["tasks"] if t["id"] == "scan-cortex-namespace")
    assert (task["status"], task["attempts"], task["detail"]) == ("pending", 1, "pending when the phase ended")
    assert report["workers"]["scan-worker-01"] == {"node": "k3s-worker01", "status": "dead", "restarts": 0}


def test_pause_requests_replayed_after_a_restart_act_only_on_their_net_effect(rig):
    alerts = EventLog(rig.r, rig.ks)
    alerts.emit("critical_cve", "development", alert=True, larrys=["security"], cve_id="CVE-2025-12345")
    alerts.emit("critical_cve_resolved", "development", larrys=["security"])
    alerts.emit("critical_cve", "development", alert=True, workers=["scan-worker-02"])
    history = EventListener(rig.r, rig.ks, "0-0").poll(None)
    for _restart in range(2):
        coordinator = rig.coordinator("security")
        coordinator.history.add(history)
        coordinator.apply_pauses()
    paused = {w.name: rig.r.get(rig.ks.worker_paused(w.name)) for w in CORTEX.larry("security").workers}
    assert paused == {"scan-worker-01": None, "scan-worker-02": "critical_cve from development",
                      "scan-worker-03": None}
    assert [e.data["worker"] for e in names(rig, "worker_paused")] == ["scan-worker-02"]
    assert names(rig, "worker_resumed") == []
    assert {a["event"] for a in coordinator.history.alerts} == {"critical_cve"}


def _report(larry: str, findings: dict, statuses: dict[str, str]) -> dict:
    base = {"cves": {s: 0 for s in ("critical", "high", "medium", "low")}, "prs_created": 0,
            "assets_discovered": 0, "coverage_delta": 0.0}
    return {"larry": larry, "findings": base | findings,
            "tasks": [{"worker": w, "status": s} for w, s in statuses.items()],
            "tokens": {"limit": 1000, "reserved": 0, "committed": 1200, "emergency_drawn": 100}}


def test_validation_derives_the_seed_criteria_from_the_report():
    checks = validate(_report("larry-02", {"prs_created": 2},
                              {"scan-worker-01": "completed", "remediation-worker": "failed"}))
    assert [(c["check"], c["passed"], c["detail"]) for c in checks] == [
        ("All plan tasks completed", False, "1/2 completed"),
        ("Token use within the Larry's budget", False,
         "1,200 of 1,000 tokens committed (120.0%); 100 drawn from the emergency reserve"),
        ("Complete security scan (all namespaces)", True, "1/1 tasks of scan-worker-01 completed"),
        ("3+ automated fix PRs created", False, "prs_created = 2 (at least 3 wanted)"),
        ("Compliance audit trail created", False, "0/1 tasks of remediation-worker completed"),
    ]
    inventory = validate(_report("inventory", {"assets_discovered": 158}, {"catalog-worker-01": "completed"}))
    assert inventory[-1] == {"check": "100+ new assets discovered", "passed": True,
                             "detail": "assets_discovered = 158 (at least 100 wanted)"}
    assert len(validate(_report("not-in-a-seed", {}, {}))) == 2


def test_usage_errors_are_one_line_and_exit_2(rig, capsys):
    base = ["coordinator", "--stack", "cortex", "--project-dir", str(ROOT), "--redis-url", rig.url,
            "--key-prefix", rig.ks.prefix]
    assert cli.main(base + ["--larry", "nowhere"]) == 2
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(base + ["--larry", "security", "--host", "127.0.0.1", "--port", str(port)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0].startswith("larry coordinator: ") and "no Larry 'nowhere'" in lines[0]
    assert lines[1].startswith(f"larry coordinator: cannot serve /metrics on 127.0.0.1:{port} (")
    assert len(lines) == 2


# --------------------------------------------------------------------------- real time

#: Every task takes seconds, except ``slow``, which ``after`` (another worker's) waits on.
SLOW_SECONDS = 58
REAL_TIME_PAYLOAD = f"""
import os, time
time.sleep({{"slow": {SLOW_SECONDS}}}.get(os.environ["LARRY_TASK_ID"], 2))
print('@larry {{"tokens": 10, "message": "done"}}', flush=True)
"""


def real_time_plan(path):
    """The dev stack's first Larry with two workers: ``waiting-worker``'s ``after`` waits on
    ``slow-worker``'s ``slow`` for about ``SLOW_SECONDS``."""
    doc = yaml.safe_load(load_stack("dev", ROOT).plan_document())
    larry = doc["config"]["larry:larrys"][0]
    worker = {k: larry["workers"][0][k] for k in ("node", "tokens", "minutes", "resources")}
    larry["workers"] = [
        {**worker, "name": "slow-worker", "tasks": [{"id": "slow", "title": "A task of about a minute"}]},
        {**worker, "name": "waiting-worker", "tasks": [{"id": "quick", "title": "A task of seconds"},
                                                       {"id": "after", "title": "Waits on slow",
                                                        "dependsOn": ["slow"]}]},
    ]
    doc["config"]["larry:larrys"] = [larry]
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.timeout(400)
def test_every_process_runs_at_speed_1_for_over_a_minute_without_a_restart(redis_server, r, tmp_path):
    """No blocking read outlasts the client's 5 s socket timeout: the coordinator's follow loop
    (5 s waits) and sign-off wait (10 s), and a worker waiting on a dependency (30 s waits)."""
    prefix = f"rt{uuid.uuid4().hex[:10]}:"
    common = ["--plan", str(real_time_plan(tmp_path / "plan.yaml")), "--larry", "larry-01",
              "--redis-url", redis_server.url, "--key-prefix", prefix, "--coordination-dir", str(tmp_path),
              "--speed", "1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LARRY_")}  # defaults: a cluster's
    commands = {"coordinator": ["coordinator", *common, "--port", "0", "--host", "127.0.0.1", "--once"]}
    for worker in ("slow-worker", "waiting-worker"):
        commands[worker] = ["worker", *common, "--worker", worker, "--", sys.executable, "-c", REAL_TIME_PAYLOAD]
    started = time.monotonic()
    procs = {name: subprocess.Popen([*larry_command(), *argv], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    text=True, env=env) for name, argv in commands.items()}
    out = {}
    try:
        for name, proc in procs.items():
            try:
                out[name] = proc.communicate(timeout=300)[0]
            except subprocess.TimeoutExpired:
                pytest.fail(f"{name} still running after 300 s")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    elapsed = time.monotonic() - started
    codes = {name: proc.returncode for name, proc in procs.items()}
    assert codes == dict.fromkeys(procs, 0), out
    for name, text in out.items():
        for sign in ("lost Redis", "Redis unreachable", "degrading", "waiting for Redis", "Timeout"):
            assert sign not in text, f"{name}: {sign!r} in its output:\n{text}"
    assert not (tmp_path / "fallback").exists(), "a worker switched to file mode"
    assert elapsed > 60, f"the run took {elapsed:.0f} s: not the minute it was meant to last"

    ks = Keyspace.for_plan(load_stack("dev", ROOT).channels, prefix)
    events = EventLog(r, ks).history()
    started_events = [e.data["worker"] for e in events if e.name == "worker_started"]
    assert sorted(started_events) == ["slow-worker", "waiting-worker"], "a worker was started twice"
    stamp = {(e.name, e.data.get("task_id")): int(e.id.split("-")[0]) / 1000 for e in events}
    waited = stamp["task_claimed", "after"] - stamp["task_completed", "quick"]
    assert waited > 40, f"waiting-worker waited only {waited:.0f} s on its dependency"
    assert r.get(ks.phase_status("larry-01")) == "completed"
