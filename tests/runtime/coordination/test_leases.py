"""Lease semantics on a real Redis: outcomes, fencing, dependencies, conflict alert, keeper."""

import threading
import time

from runtime.coordination.events import EventListener
from runtime.coordination.leases import LeaseManager
from runtime.coordination.tasks import TaskBoard
from tests.support.waiting import wait_for


def test_acquire_is_exclusive_and_conflict_publishes_seed_alert(r, ks):
    alerts = r.pubsub()
    alerts.subscribe(ks.alerts)
    wait_for(lambda: alerts.get_message(timeout=0.5), "the subscription confirmation", timeout=10)
    a, b = LeaseManager(r, ks, "larry-01"), LeaseManager(r, ks, "larry-02")
    first = a.acquire("fix-pgadmin-crashloop")
    assert first.status == "acquired" and first.lease.token > 0
    assert r.get(ks.task_lock("fix-pgadmin-crashloop")) == a.owner
    assert r.get(ks.task_status("fix-pgadmin-crashloop")) == "in_progress"

    second = b.acquire("fix-pgadmin-crashloop")
    assert second.status == "conflict" and second.holder == a.owner and not second

    message = wait_for(lambda: alerts.get_message(ignore_subscribe_messages=True, timeout=0.5),
                       "the task_conflict alert", timeout=10)
    import json
    alert = json.loads(message["data"])
    assert alert["event"] == "task_conflict" and alert["task_id"] == "fix-pgadmin-crashloop"
    assert alert["owner"] == a.owner and alert["from"] == b.owner and alert["timestamp"]
    alerts.close()


def test_reacquire_by_owner_is_idempotent(r, ks):
    a = LeaseManager(r, ks, "larry-01")
    first = a.acquire("t")
    listener = EventListener(r, ks, "$")
    again = a.acquire("t")
    assert again.status == "held" and again.lease.token == first.lease.token
    assert listener.poll(block_ms=None) == [], "a replayed acquire must not emit a second event"


def test_release_and_extend_report_outcomes(r, ks):
    a, b = LeaseManager(r, ks, "larry-01", ttl_ms=200), LeaseManager(r, ks, "larry-02")
    lease = a.acquire("t").lease
    assert a.extend(lease) == "extended"
    assert a.release(lease) == "released"
    assert r.get(ks.task_status("t")) == "pending"
    assert a.release(lease) == "expired"

    lease = a.acquire("t").lease
    wait_for(lambda: r.get(ks.task_lock("t")) is None, "the 0.2 s lease to expire", timeout=10)
    assert a.extend(lease) == "expired"
    other = b.acquire("t").lease
    assert a.release(lease) == "stolen" and a.extend(lease) == "stolen"
    assert other.token > lease.token
    assert r.get(ks.task_lock("t")) == b.owner, "a stolen release must not delete the new holder's lock"


def test_stale_token_write_is_rejected_and_winner_accepted(r, ks):
    a, b = LeaseManager(r, ks, "larry-01", ttl_ms=100), LeaseManager(r, ks, "larry-02")
    old = a.acquire("t").lease
    wait_for(lambda: r.get(ks.task_lock("t")) is None, "the 0.1 s lease to expire", timeout=10)
    new = b.acquire("t").lease
    assert a.complete(old, {"by": "a"}).status == "stale"
    assert b.complete(new, {"by": "b"}).status == "accepted"
    assert b.complete(new, {"by": "b"}).status == "duplicate"
    assert a.complete(old, {"by": "a"}).status == "finished"
    result = TaskBoard(r, ks).result("t")
    assert result["data"] == {"by": "b"} and result["token"] == new.token
    assert r.get(ks.task_status("t")) == "completed" and r.get(ks.task_lock("t")) is None
    assert r.get(ks.metric("larry-02", "tasks_completed")) == "1"
    assert b.acquire("t").status == "completed"


def test_token_stays_monotonic_when_a_failover_loses_the_counter(r, ks):
    """A promoted replica may miss the last grants: simulate by deleting lock and fence."""
    a = LeaseManager(r, ks, "larry-01")
    lost = a.acquire("t").lease
    r.delete(ks.task_lock("t"), ks.task_fence("t"))
    b = LeaseManager(r, ks, "larry-02")
    new = b.acquire("t").lease
    assert new.token > lost.token
    assert a.complete(lost, "late").status == "stale"


def test_fail_with_retry_makes_task_claimable_again_and_terminal_fail_blocks_it(r, ks):
    a, b = LeaseManager(r, ks, "larry-01"), LeaseManager(r, ks, "larry-02")
    lease = a.acquire("t").lease
    assert a.fail(lease, "flaky").ok
    assert r.get(ks.task_status("t")) == "pending"
    lease = b.acquire("t").lease
    assert b.fail(lease, "broken", retry=False).ok
    assert a.acquire("t").status == "failed"


def test_dependencies_gate_claims(r, ks):
    board = TaskBoard(r, ks)
    order = board.define("larry-01", {"task-001": [], "task-002": [], "task-003": ["task-001", "task-002"]})
    assert order.index("task-003") == 2
    m = LeaseManager(r, ks, "larry-01")
    blocked = m.acquire("task-003")
    assert blocked.status == "blocked" and set(blocked.waiting_on) == {"task-001", "task-002"}
    assert m.complete(m.acquire("task-001").lease, 1).ok
    assert m.acquire("task-003").waiting_on == ("task-002",)
    lease2 = m.acquire("task-002").lease
    assert m.acquire("task-003").status == "blocked", "in_progress is not completed"
    assert m.complete(lease2, 2).ok
    assert m.acquire("task-003").status == "acquired"


def test_dependency_cycle_is_refused(r, ks):
    import pytest
    with pytest.raises(ValueError, match="cycle"):
        TaskBoard(r, ks).define("larry-01", {"a": ["b"], "b": ["a"]})


def test_keeper_renews_past_ttl_and_fires_when_stolen(r, ks):
    a = LeaseManager(r, ks, "larry-01", ttl_ms=600)
    lease = a.acquire("t").lease
    fired = []
    with a.keep(lease, lambda l, why: fired.append(why)):
        time.sleep(1.5)  # well past the TTL: only renewals keep it
        assert r.get(ks.task_lock("t")) == a.owner and not fired
        r.set(ks.task_lock("t"), "intruder")  # someone else holds it now
        assert lease.lost.wait(2), "keeper did not notice the stolen lease"
    assert fired == ["stolen"] and lease.lost_reason == "stolen"


def test_keeper_reacquires_a_lock_rolled_back_while_still_valid(r, ks):
    # A TTL a busy machine cannot outlast between two renewals: this is not about expiry.
    a = LeaseManager(r, ks, "larry-01", ttl_ms=3000)
    lease = a.acquire("t").lease
    first = lease.token
    with a.keep(lease, lambda l, why: None, renew_every=0.1):
        r.delete(ks.task_lock("t"))  # as after a failover that lost the grant
        wait_for(lambda: r.get(ks.task_lock("t")) == a.owner, "the keeper to re-acquire the rolled-back lock",
                 timeout=10)
        assert not lease.lost.is_set()
    assert lease.token > first


def test_lease_callbacks_run_once_even_if_both_threads_notice(r, ks):
    a = LeaseManager(r, ks, "larry-01", ttl_ms=200)
    lease = a.acquire("t").lease
    calls = []
    done = threading.Event()
    keeper = a.keep(lease, lambda l, why: (calls.append(why), done.set()), renew_every=5)  # never renews
    assert done.wait(10), "the keeper never gave up the unrenewed lease"
    keeper.stop()  # joins both threads: any second call would have happened by now
    assert calls == ["not renewed in time"]


def test_take_over_frees_only_a_dead_predecessors_lease_and_fences_it_off(r, ks):
    dead = LeaseManager(r, ks, "larry-01", worker="scan-worker-01")
    lease = dead.acquire("t").lease
    stranger = LeaseManager(r, ks, "larry-01", worker="scan-worker-02")
    assert stranger.take_over("t", "larry-01/scan-worker-02/") is False, "not a predecessor of the caller"
    successor = LeaseManager(r, ks, "larry-01", worker="scan-worker-01")
    assert successor.take_over("t", "larry-01/scan-worker-01/") is True
    assert successor.take_over("t", "larry-01/scan-worker-01/") is False, "nothing left to take over"
    new = successor.acquire("t").lease
    assert new.token > lease.token and dead.complete(lease, "late").status == "stale"
    (event,) = [e for e in EventListener(r, ks, "0-0").poll(None) if e.name == "task_takeover"]
    assert event.data["previous"] == dead.owner and event.data["owner"] == successor.owner
    assert successor.take_over("t", "larry-01/scan-worker-01/") is False, "never frees its own lease"
