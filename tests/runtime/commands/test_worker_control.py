"""Seed 004's control of workers and seed 001's critical_cve, against a real worker (the `larry`
CLI entry point in the test process) on the cortex plan: a CVE the payload reports as critical
pauses the workers it names; WORKER_TERMINATE stops the payload and the task is done once."""
from __future__ import annotations

import pytest

from runtime.commands import worker
from runtime.coordination.events import EventListener
from tests.runtime.commands.test_worker import payload


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
