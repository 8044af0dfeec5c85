"""A Larry's event stream folded: attempts, claim times, restarts, re-queues, alerts, pauses."""
import itertools

from plan.loader import load_stack
from runtime.coordination.events import Event
from runtime.coordination.keys import Keyspace
from runtime.reporting.history import History
from tests.support.project import ROOT

DEV = load_stack("dev", ROOT)
KS = Keyspace()
_ids = itertools.count(1)


def event(name: str, channel: str = KS.coordination, **data) -> Event:
    return Event(f"{next(_ids)}-0", channel, {"event": name, **data})


def history(larry: str = "larry-02") -> History:
    return History(DEV.larry(larry), KS)


def test_claims_count_attempts_and_keep_each_fence_s_claim_time():
    h = history()
    touched = h.add([event("task_claimed", task_id="scan-core-namespaces", token=1, timestamp="T1"),
                     event("task_claimed", task_id="scan-core-namespaces", token=4, timestamp="T4")])
    assert touched
    assert h.attempts == {"scan-core-namespaces": 2}
    assert h.claim_time("scan-core-namespaces", 1) == "T1"
    assert h.claim_time("scan-core-namespaces", 9) == "T4", "an unknown fence falls back to the latest claim"
    assert h.claim_time("audit-dependencies", 1) is None


def test_another_larry_s_task_is_not_this_history_s():
    h = history()
    assert not h.add([event("task_claimed", task_id="fix-pgadmin-crashloop", token=1)])
    assert h.attempts == {}


def test_restarts_count_worker_starts_beyond_the_first():
    h = history()
    h.add([event("worker_started", worker="audit-worker")] * 3 + [event("worker_started", worker="cleanup-worker")])
    assert h.restarts("audit-worker") == 2
    assert h.restarts("scan-worker-01") == 0
    assert "cleanup-worker" not in h.starts, "larry-01's worker is not counted for larry-02"


def test_requeues_and_conflicts():
    h = history()
    h.add([event("task_requeued", task_id="audit-dependencies"), event("task_conflict", task_id="audit-dependencies")])
    assert h.requeued == ["audit-dependencies"] and h.conflicts == 1


def test_alerts_concerning_the_larry_are_kept_without_their_envelope():
    h = history()
    h.add([event("token_overrun", KS.alerts, larry="larry-02", used=10, limit=5, timestamp="T", token=3,
                 **{"from": "larry-02/audit-worker"}),
           event("token_overrun", KS.alerts, larry="larry-01", used=1, limit=0, **{"from": "larry-01/x"}),
           event("task_claimed", KS.coordination, task_id="audit-dependencies", token=1)])
    assert h.alerts == [{"event": "token_overrun", "from": "larry-02/audit-worker",
                         "detail": '{"larry":"larry-02","limit":5,"used":10}'}]


def test_a_critical_cve_pauses_the_workers_it_names_and_its_resolution_resumes_them():
    h = history()
    h.add([event("critical_cve", KS.alerts, cve_id="CVE-1", workers=["audit-worker"], **{"from": "scanner"})])
    assert h.pause_requests == {"audit-worker": "critical_cve CVE-1 from scanner"}
    h.add([event("critical_cve_resolved", KS.alerts, data={"workers": ["audit-worker"]})])
    assert h.pause_requests == {"audit-worker": None}


def test_a_critical_cve_naming_the_larry_pauses_all_its_workers_and_one_naming_nobody_none():
    h = history()
    h.add([event("critical_cve", KS.alerts, data={"larrys": ["larry-02"], "cve_id": "CVE-2"})])
    assert set(h.pause_requests) == {w.name for w in DEV.larry("larry-02").workers}
    other = history()
    other.add([event("critical_cve", KS.alerts, cve_id="CVE-3")])
    assert other.pause_requests == {}


def test_the_runs_sign_off_is_recorded_in_every_larrys_alerts():
    h = history()
    h.add([event("run_approved", KS.alerts, at="2026-11-30T15:00:00.000Z", larrys=["larry-01", "larry-02"],
                 **{"from": "ops"})])
    assert h.alerts == [{"event": "run_approved", "from": "ops",
                         "detail": '{"at":"2026-11-30T15:00:00.000Z","larrys":["larry-01","larry-02"]}'}]
