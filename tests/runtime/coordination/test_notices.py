"""DEPENDENCY_MET and RESOURCE_CONFLICT, announced once each by the Larry's coordinator, even
when a restarted coordinator folds the same state and stream again."""
from __future__ import annotations

from runtime.coordination.events import EventLog
from runtime.coordination.leases import LeaseManager
from runtime.coordination.notices import Notices
from tests.runtime.commands.worker_rig import CORTEX, Rig

SCANS = ("scan-cortex-namespace", "scan-catalog-system-namespace", "scan-cortex-system-namespace")


def test_dependencies_met_and_conflicts_between_masters_are_announced_once(redis_server, r, tmp_path):
    rig = Rig(redis_server, r, tmp_path)
    coordinator = rig.start_phase("security")
    security = LeaseManager(r, rig.ks, "security", worker="scan-worker-01")
    development = LeaseManager(r, rig.ks, "development", worker="implementation-worker-01")
    held = security.acquire(SCANS[0]).lease
    assert development.acquire(SCANS[0]).status == "conflict"  # another master's worker
    assert security.complete(held, {"tokens": 1}).ok
    log = EventLog(r, rig.ks)
    for _ in range(2):  # the coordinator, then its restart replaying the same stream and state
        notices = Notices(r, rig.ks, CORTEX, CORTEX.larry("security"))
        notices.conflicts(log.history())
        notices.dependencies(coordinator._statuses()[0])
    events = log.history()
    (met,) = [e for e in events if e.name == "DEPENDENCY_MET"]
    assert met.channel == rig.ks.schema_channel("masters", "dependencies")
    assert {k: met.data[k] for k in ("master", "task_id", "dependency_resolved")} == {
        "master": "security-master", "task_id": "write-cve-remediation-plan", "dependency_resolved": SCANS[0]}
    (conflict,) = [e for e in events if e.name == "RESOURCE_CONFLICT"]
    assert conflict.channel == rig.ks.coordination and met.sender == conflict.sender == "security/coordinator"
    assert conflict.data["masters_involved"] == ["development-master", "security-master"]
    assert conflict.data["resource"] == f"task:{SCANS[0]}"
