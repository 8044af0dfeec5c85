"""Seed 004's master events with real `larry` processes at speed 1 on the cortex plan (queue
assignment): a master hands a task over and the receiving master's process acknowledges it
(the task moves to its queue, handoffs.json records it); a killed master is declared silent by
its coordinator once past a short configured grace and its pending tasks are handed over to a
live master (seed 003 scenario 2)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid

import pytest

from runtime.commands.coordinator import Coordinator
from runtime.coordination.events import EventLog
from runtime.coordination.handoffs import Handoffs
from runtime.coordination.keys import Keyspace
from runtime.coordination.registry import WorkerRegistry
from runtime.support.timing import Timing
from tests.runtime.commands.worker_rig import _QUEUED as CORTEX
from tests.support.project import ROOT
from tests.support.waiting import wait_for

SECURITY = ("scan-cortex-namespace", "scan-catalog-system-namespace", "scan-cortex-system-namespace",
            "write-cve-remediation-plan")
GRACE = 8  # seconds: past the masters' 5 s heartbeat at speed 1


@pytest.fixture
def fleet(redis_server, r, tmp_path):
    """Start `larry` processes (killed at the end) on the queued cortex plan under a prefix of
    this test's own."""
    ks = Keyspace.for_plan(CORTEX.channels, f"m{uuid.uuid4().hex[:10]}:")
    plan = tmp_path / "plan.yaml"
    plan.write_text(CORTEX.plan_document())
    processes: list[subprocess.Popen] = []

    def start(*argv: str) -> subprocess.Popen:
        log = open(tmp_path / f"{argv[0]}-{len(processes)}.log", "w")
        process = subprocess.Popen(
            [sys.executable, "-m", "runtime.cli", *argv, "--plan", str(plan), "--redis-url", redis_server.url,
             "--key-prefix", ks.prefix, "--coordination-dir", str(tmp_path), "--speed", "1"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        processes.append(process)
        return process

    yield ks, start
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def queue_of(r, ks, task: str) -> str:
    return json.loads(r.hget(ks.task_queue_entries, task))["master"]


def recorded_handoffs(coordination_dir) -> list[tuple[str, str, str]] | None:
    """(id, task, status) of each handoff in ``handoffs.json``; None before it is written."""
    try:
        document = json.loads((coordination_dir / "handoffs.json").read_text())
    except FileNotFoundError:
        return None
    return [(h["id"], h["task_id"], h["status"]) for h in document["handoffs"]]


def test_a_handoff_is_acknowledged_and_a_killed_masters_tasks_are_handed_over(fleet, r, tmp_path):
    ks, start = fleet
    log = EventLog(r, ks)
    names = lambda name: [e for e in log.history() if e.name == name]  # noqa: E731
    Coordinator(CORTEX, CORTEX.larry("development"), r, ks, Timing(1), tmp_path).initialise()
    # a live worker of the development master's queue: a master worth handing tasks to
    WorkerRegistry(r, ks).register("implementation-worker-01", "development-master", "k3s-worker01")
    start("coordinator", "--larry", "security", "--port", "0", "--master-grace", str(GRACE))
    security = start("master", "--larry", "security", "--master", "security-master")
    start("master", "--larry", "development", "--master", "development-master")
    wait_for(lambda: len(names("MASTER_ACTIVATION")) == 2, "both masters' MASTER_ACTIVATION", timeout=120)
    (activation,) = [e for e in names("MASTER_ACTIVATION") if e.data["master"] == "security-master"]
    assert activation.channel == ks.coordination and activation.data["tasks"] == list(SECURITY)

    # 1. the security master hands one task over; the development master's process acknowledges.
    # A task is handed over from its queue: the security coordinator (a process of its own) must
    # have queued its Larry's tasks, which a master's activation does not wait for.
    wait_for(lambda: all(r.hexists(ks.task_queue_entries, t) for t in SECURITY),
             "the security coordinator to queue its Larry's tasks", timeout=60)
    handoffs = Handoffs(r, ks)
    assert handoffs.request("security/security-master", "security-master", "development-master", SECURITY[0],
                            {"note": "needs the catalog's API"}) == ("requested", "handoff-1")
    assert handoffs.request("security/security-master", "security-master", "development-master", SECURITY[0]
                            ) == ("open", "handoff-1")
    assert handoffs.request("security/security-master", "testing-master", "development-master", SECURITY[1]
                            ) == ("refused", f"cannot hand over {SECURITY[1]}: it is in the queue of security-master")
    wait_for(lambda: names("HANDOFF_ACCEPTED"), "the development master to acknowledge handoff-1", timeout=60)
    assert queue_of(r, ks, SECURITY[0]) == "development-master"
    (request,) = names("HANDOFF_REQUEST")
    assert request.channel == ks.schema_channel("masters", "handoff")
    assert {k: request.data[k] for k in ("from_master", "to_master", "task_id", "context")} == {
        "from_master": "security-master", "to_master": "development-master", "task_id": SECURITY[0],
        "context": {"note": "needs the catalog's API"}}
    # The master rewrites handoffs.json once it has acknowledged (and announced) the handoff.
    wait_for(lambda: recorded_handoffs(tmp_path) == [("handoff-1", SECURITY[0], "accepted")],
             "handoffs.json to record the accepted handoff", timeout=30)
    assert handoffs.of(SECURITY[0])["context"] == {"note": "needs the catalog's API"}

    # 2. the security master dies: past the grace its coordinator declares it silent and hands
    # its pending tasks to the live development master, which acknowledges them
    security.send_signal(signal.SIGKILL)
    security.wait()
    wait_for(lambda: len(names("HANDOFF_ACCEPTED")) == 4, "the silent master's three tasks handed over",
             timeout=90)
    (silent,) = names("master_silent")
    assert silent.channel == ks.alerts and silent.data["master"] == "security-master"
    assert [queue_of(r, ks, t) for t in SECURITY] == ["development-master"] * 4
    assert {e.data["from"] for e in names("HANDOFF_REQUEST")[1:]} == {"security/coordinator"}
    wait_for(lambda: [status for _, _, status in recorded_handoffs(tmp_path)] == ["accepted"] * 4,
             "handoffs.json to record the four accepted handoffs", timeout=30)
