"""Lease semantics on a real Redis: outcomes, fencing, dependencies, conflict alert, keeper."""

import json
import threading
import time

import pytest
import redis

from runtime.coordination.connection import Durability, RedisSettings, connect
from runtime.coordination.events import EventListener, EventLog
from runtime.coordination.leases import Lease, LeaseManager
from runtime.coordination.tasks import TaskBoard
from tests.support.redis_servers import RedisServer
from tests.support.waiting import Child, wait_for


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


def test_a_restarted_server_without_the_function_library_gets_it_again(own_server, ks):
    r = connect(RedisSettings(url=own_server.url, retry_for=20))
    m = LeaseManager(r, ks, "larry-01")
    before = m.acquire("t").lease
    own_server.kill()
    own_server.start()  # same port, nothing persisted: no keys, no functions
    assert r.function_list() == [], "the restarted server should have lost the library"
    again = m.acquire("t")
    assert again.status == "acquired" and again.lease.token > before.token, "the clock floor keeps tokens rising"
    assert m.release(again.lease) == "released"
    assert [e.name for e in EventLog(r, ks).history()] == ["task_claimed", "task_released"]
    r.close()


def test_a_durable_call_reloads_a_library_the_primary_lacks(own_server, ks, tmp_path):
    replica = RedisServer(tmp_path / "replica", replica_of=own_server.port).start()
    try:
        r = connect(RedisSettings(url=own_server.url, retry_for=20))
        wait_for(lambda: r.info("replication")["connected_slaves"] == 1, "the replica to connect", timeout=20)
        m = LeaseManager(r, ks, "larry-01", durability=Durability(replicas=1, timeout_ms=2000))
        lease = m.acquire("t").lease
        r.function_flush()  # as a primary promoted before FUNCTION LOAD reached it
        assert m.release(lease) == "released"
        assert replica.client().get(ks.task_status("t")) == "pending", \
            "released only once the replica holds it"
        r.close()
    finally:
        replica.stop()


def test_bad_arguments_are_refused_before_anything_is_written(r, ks):
    bad_ttl = LeaseManager(r, ks, "larry-01", ttl_ms=0)
    with pytest.raises(redis.exceptions.ResponseError, match="ttl .* must be a whole number above 0"):
        bad_ttl.acquire("t")
    assert r.get(ks.task_lock("t")) is None and r.get(ks.task_fence("t")) is None
    assert r.get(ks.task_status("t")) is None and EventLog(r, ks).history() == []

    m = LeaseManager(r, ks, "larry-01")
    lease = m.acquire("t").lease
    forged = Lease("t", m.owner, 0, lease.ttl_ms)
    for refused in (lambda: m.release(forged), lambda: m.extend(forged), lambda: m.complete(forged, "x")):
        with pytest.raises(redis.exceptions.ResponseError, match="the token must be a whole number above 0"):
            refused()
    with pytest.raises(redis.exceptions.ResponseError, match="owner prefix is required"):
        m.take_over("t", "")
    assert r.get(ks.task_lock("t")) == m.owner and r.get(ks.task_status("t")) == "in_progress"
    assert [e.name for e in EventLog(r, ks).history()] == ["task_claimed"]


def test_lease_transitions_are_streamed_not_published_and_alerts_are_both(r, ks):
    coordination, alerts = r.pubsub(), r.pubsub()
    coordination.subscribe(ks.coordination)
    alerts.subscribe(ks.alerts)
    for sub in (coordination, alerts):
        wait_for(lambda: sub.get_message(timeout=0.5), "the subscription confirmation", timeout=10)
    a, b = LeaseManager(r, ks, "larry-01"), LeaseManager(r, ks, "larry-02")
    lease = a.acquire("t").lease
    assert b.acquire("t").status == "conflict"
    assert a.release(lease) == "released"
    assert a.fail(a.acquire("t").lease, "broken", retry=False).ok
    EventLog(r, ks).emit("progress_update", "larry-01", progress=50)  # published after all of them

    def next_message(sub, what):
        return json.loads(wait_for(lambda: sub.get_message(ignore_subscribe_messages=True, timeout=0.5),
                                   what, timeout=10)["data"])["event"]

    assert next_message(coordination, "the progress update") == "progress_update", \
        "a lease transition was published on the coordination channel"
    assert next_message(alerts, "the conflict alert") == "task_conflict"
    assert next_message(alerts, "the terminal failure") == "task_failed"
    streamed = [(e.name, e.channel) for e in EventLog(r, ks).history()]
    assert streamed == [("task_claimed", ks.coordination), ("task_conflict", ks.alerts),
                        ("task_released", ks.coordination), ("task_claimed", ks.coordination),
                        ("task_failed", ks.alerts), ("progress_update", ks.coordination)]
    coordination.close()
    alerts.close()


def test_threads_sharing_a_manager_each_get_their_own_replies(r, ks):
    # The manager's own connection serves one thread at a time; the others take pooled ones.
    m = LeaseManager(r, ks, "larry-01")
    errors = []

    def claim_and_release(n):
        try:
            for i in range(50):
                claim = m.acquire(f"t{n}-{i}")
                assert claim.status == "acquired", claim
                assert m.release(claim.lease) == "released"
        except Exception as error:  # reported below: an assert in a thread fails nothing by itself
            errors.append(error)

    threads = [threading.Thread(target=claim_and_release, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads), "a thread did not finish its 50 claims within 60 s"
    assert errors == []
    assert len(EventLog(r, ks).history(count=2000)) == 8 * 50 * 2


def _claim_and_release(m, who: str, pairs: int) -> None:
    for i in range(pairs):
        claim = m.acquire(f"{who}-{i}")
        assert claim.status == "acquired", claim
        # another process's reply read here would carry another token: released as "stolen"
        assert m.release(claim.lease) == "released", f"{who}-{i}"


def _claim_in_child(conn, m):
    conn.send("started")
    _claim_and_release(m, "child", 300)
    conn.send("done")


def test_a_forked_child_does_not_share_the_managers_connection(r, ks, tmp_path):
    m = LeaseManager(r, ks, "larry-01")
    _claim_and_release(m, "parent-before", 1)  # the manager's own connection is open now
    child = Child("claimer", _claim_in_child, m, log_dir=tmp_path)
    try:
        assert child.recv("the child's start", timeout=30) == "started"
        _claim_and_release(m, "parent", 300)  # at the same time as the child
        assert child.recv("the child's 300 claims and releases", timeout=60) == "done"
    finally:
        child.stop()


def test_renewals_and_refused_claims_do_not_read_the_servers_clock(own_server, ks):
    # TIME is one of the few Redis calls a lease function makes: only a grant or an event needs it.
    r = connect(RedisSettings(url=own_server.url, retry_for=5))
    a, b = LeaseManager(r, ks, "larry-01"), LeaseManager(r, ks, "larry-02", alert_on_conflict=False)
    lease = a.acquire("t").lease
    r.config_resetstat()
    assert a.extend(lease) == "extended"
    assert a.acquire("t").status == "held"
    assert b.acquire("t").status == "conflict"
    assert "cmdstat_time" not in r.info("commandstats")
    assert a.release(lease) == "released"
    assert r.info("commandstats")["cmdstat_time"]["calls"] == 1, "the release event is stamped with it"
    r.close()
