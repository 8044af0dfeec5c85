"""Seed 004's control of workers and seed 001's critical_cve, against a real worker (the `larry`
CLI entry point in the test process) on the cortex plan: a CVE the payload reports as critical
pauses the workers it names; WORKER_TERMINATE stops the payload and the task is done once."""
from __future__ import annotations

import os

import pytest

from plan.model import worker_account
from runtime import cli
from runtime.commands import worker
from runtime.commands.coordinator import Coordinator
from runtime.coordination.control import WorkerControl
from runtime.coordination.escalations import Escalations
from runtime.coordination.events import EventListener
from runtime.coordination.handoffs import Handoffs
from runtime.reporting.results import results_dir
from runtime.support.timing import Timing
from tests.runtime.commands.test_worker import escalation_args, in_thread, join_ok, payload
from tests.runtime.commands.worker_rig import _QUEUED as QUEUED
from tests.support.waiting import wait_for


@pytest.fixture(autouse=True)
def short_catalog_drain(monkeypatch):
    """The plan's catalog is a cluster Service these tests do not run: an exiting worker need not
    spend its 10 s trying to empty its outbox."""
    monkeypatch.setattr(worker, "CATALOG_DRAIN_SECONDS", 0.2)

CVES = payload("""
    import json
    cve = {"cve_id": "CVE-2025-12345", "affected_service": "postgresql", "namespace": "database",
           "recommendation": "Immediate patching required"}
    print("@larry " + json.dumps({"cve": {**cve, "cve_id": "CVE-2025-1", "cvss": 7.5, "workers": ["scan-worker-03"]}}))
    print("@larry " + json.dumps({"cve": {**cve, "cvss": "9.8"}}))
    print("@larry " + json.dumps({"cve": {**cve, "cvss": 9.8, "workers": ["scan-worker-02"]}}), flush=True)
""")


def test_a_critical_cve_found_by_a_payload_pauses_the_workers_it_names(rig, capsys):
    coordinator = rig.start_phase("security")
    assert rig.worker("security", "scan-worker-01", CVES) == 0
    (alert,) = rig.events("critical_cve")
    assert alert.channel == rig.ks.alerts and alert.sender == "security/scan-worker-01"
    assert alert.data["severity"] == "critical" and alert.data["task_id"] == "scan-cortex-namespace"
    assert alert.data["data"] == {"cve_id": "CVE-2025-12345", "cvss": 9.8, "affected_service": "postgresql",
                                  "namespace": "database", "recommendation": "Immediate patching required",
                                  "workers": ["scan-worker-02"]}
    assert "skipping a malformed protocol line ('cve.cvss' must be a number 0-10, got \"9.8\")" in capsys.readouterr().out
    coordinator.history.add(EventListener(rig.r, rig.ks, "0-0").poll(None))
    coordinator.apply_pauses()
    assert rig.r.get(rig.ks.worker_paused("scan-worker-02")) == "critical_cve CVE-2025-12345 from security/scan-worker-01"
    assert rig.r.get(rig.ks.worker_paused("scan-worker-03")) is None


ESCALATES = payload("""
    import json
    print("@larry " + json.dumps({"escalation": {"issue": "the fix needs a schema migration", "severity": "high",
                                                 "recommendation": "approve a maintenance window"}}))
    print('@larry {"escalation": {"issue": "no severity"}}')
    print('@larry {"tokens": 10, "progress": 100}', flush=True)
""")


def test_an_agent_escalates_through_the_protocol_and_its_task_goes_on(rig, capsys):
    rig.start_phase("security")
    assert rig.worker("security", "scan-worker-01", ESCALATES) == 0
    (raised,) = rig.events("escalation_raised")
    assert raised.channel == rig.ks.alerts and rig.ks.alerts.endswith("cortex:masters:escalation")
    (escalation,) = Escalations(rig.r, rig.ks).all()
    assert escalation["status"] == "open" and escalation["severity"] == "high"
    assert escalation["issue"] == "the fix needs a schema migration" == raised.data["issue"]
    assert escalation["task"] == "scan-cortex-namespace" and escalation["options"] == raised.data["options"]
    assert escalation["account"] == worker_account("security", "scan-worker-01")
    assert "'escalation.issue'" not in (out := capsys.readouterr().out) and "'escalation.severity' is required" in out
    assert rig.board.statuses(["scan-cortex-namespace"]) == {"scan-cortex-namespace": "completed"}
    # approved as it is: it asked for no tokens, so none are granted
    limit = rig.ledger().snapshot(escalation["account"])["limit"]
    assert cli.main(escalation_args(rig, "approve", escalation["id"], "--by", "ops")) == 0
    assert Escalations(rig.r, rig.ks).get(escalation["id"])["status"] == "approved"
    assert rig.ledger().snapshot(escalation["account"])["limit"] == limit
    assert "no tokens asked, none granted" in capsys.readouterr().out


#: Records its pid, reports progress, then works for a minute.
SLOW = payload("""
    import os, time
    with open(os.path.join(os.environ["LARRY_RESULTS_DIR"], "pid"), "w") as f:
        f.write(str(os.getpid()))
    print('@larry {"tokens": 10, "progress": 40}', flush=True)
    time.sleep(60)
""")
QUICK = payload("""print('@larry {"tokens": 10, "progress": 100}')""")


def test_worker_terminate_stops_the_payload_hands_the_task_back_and_it_is_done_once(rig, tmp_path):
    rig.start_phase("security")
    task, control = "scan-cortex-namespace", WorkerControl(rig.r, rig.ks)
    status_channel = rig.ks.schema_channel("workers", "status")
    pid_file = results_dir(rig.dir, "security") / task / "pid"

    def stop_it():
        wait_for(lambda: pid_file.exists() and rig.r.hget(rig.ks.schema_worker("scan-worker-01"), "progress") == "40",
                 "the payload to start and report progress", timeout=30)
        control.request_status("operator", "scan-worker-01")
        wait_for(lambda: rig.events("WORKER_STATUS"), "the worker's answer to WORKER_STATUS_REQUEST", timeout=10)
        control.terminate("security/security-master", "scan-worker-01", "rebalancing")

    helper = in_thread(stop_it)
    assert rig.worker("security", "scan-worker-01", SLOW) == 1
    join_ok(helper)
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert rig.r.get(rig.ks.task_status(task)) == "pending" and rig.r.get(rig.ks.task_lock(task)) is None
    (answer,) = rig.events("WORKER_STATUS")
    assert answer.channel == status_channel and answer.sender == "scan-worker-01"
    assert {k: answer.data[k] for k in ("worker_id", "status", "progress", "master")} == {
        "worker_id": "scan-worker-01", "status": "running", "progress": "40", "master": "security-master"}
    (terminate,) = rig.events("WORKER_TERMINATE")
    assert terminate.channel == rig.ks.schema_channel("workers", "control")
    assert terminate.data["worker_id"] == "scan-worker-01" and terminate.data["reason"] == "rebalancing"
    assert rig.r.get(rig.ks.worker_terminate("scan-worker-01")) is None, "the flag is consumed"
    (spawn,) = rig.events("WORKER_SPAWN")
    assert spawn.channel == rig.ks.schema_channel("workers", "spawn")
    assert {k: spawn.data[k] for k in ("worker_id", "type", "task", "budget")} == {
        "worker_id": "scan-worker-01", "type": "simulated", "task": [task], "budget": 8000}

    # the restart (the Job's) carries on: the task is run again, and completed once
    assert rig.worker("security", "scan-worker-01", QUICK) == 0
    assert rig.r.get(rig.ks.task_status(task)) == "completed"
    assert len(rig.events("task_claimed", task)) == 2 and len(rig.events("task_completed", task)) == 1
    assert len(rig.events("WORKER_SPAWN")) == 1, "a restart is no new spawn"


def test_a_queue_worker_runs_a_task_handed_to_its_master_with_its_context(rig):
    rig.plan.write_text(QUEUED.plan_document())  # queue assignment
    for larry in ("security", "development"):
        Coordinator(QUEUED, QUEUED.larry(larry), rig.r, rig.ks, Timing(600), rig.dir).initialise()
    handoffs, task = Handoffs(rig.r, rig.ks), "update-api-docs"
    status, handoff = handoffs.request("development/development-master", "development-master", "security-master",
                                       task, {"why": "the security master knows the API"})
    assert status == "requested"
    assert handoffs.acknowledge("security/security-master", handoff, "security-master") == ("accepted", "")
    assert rig.worker("security", "scan-worker-01", QUICK) == 0
    result = rig.board.result(task)
    assert result["outcome"] == "completed" and result["owner"].startswith("security/scan-worker-01/")
    prompt = next((results_dir(rig.dir, "security") / task).glob("prompt-*.md")).read_text()
    assert f"from development-master to security-master ({handoff}); context: " \
           '{"why": "the security master knows the API"}' in prompt
    # charged to the account of the worker the plan lists it under, whoever ran it
    assert rig.ledger().snapshot(worker_account("development", "documentation-worker-01"))["committed"] == 10


def test_a_worker_terminated_while_it_waits_exits_at_once_without_claiming(rig):
    coordinator = rig.start_phase("security")
    coordinator.registry.pause("security", "scan-worker-01", "critical_cve CVE-2025-12345 from operator")

    def stop_it():
        wait_for(lambda: rig.r.get(rig.ks.worker_status("scan-worker-01")) == "paused", "the worker to pause")
        WorkerControl(rig.r, rig.ks).terminate("operator", "scan-worker-01", "drain")

    helper = in_thread(stop_it)
    assert rig.worker("security", "scan-worker-01", QUICK) == 1
    join_ok(helper)
    assert rig.events("task_claimed") == []
