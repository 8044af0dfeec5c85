"""Holders that die or freeze: kill -9, SIGSTOP past the TTL, and a Redis that stops answering."""

import multiprocessing
import os
import signal
import threading
import time

from runtime.coordination.connection import RedisSettings, connect
from runtime.coordination.keys import Keyspace
from runtime.coordination.leases import Lease, LeaseManager
from runtime.coordination.tasks import TaskBoard

ctx = multiprocessing.get_context("fork")


def _acquire_until(manager, task, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        claim = manager.acquire(task)
        if claim:
            return claim.lease
        time.sleep(0.02)
    raise AssertionError(f"{task} never became acquirable")


def holder_that_gets_killed(url, prefix, conn):
    r = connect(RedisSettings(url=url))
    m = LeaseManager(r, Keyspace(prefix=prefix), "larry-01", ttl_ms=1500)
    lease = m.acquire("t").lease
    m.keep(lease, lambda l, why: None)
    conn.send((lease.owner, lease.token))
    time.sleep(60)


def test_kill_9_holder_task_reacquired_after_expiry_and_late_write_rejected(r, ks, redis_server):
    parent, child = ctx.Pipe()
    p = ctx.Process(target=holder_that_gets_killed, args=(redis_server.url, ks.prefix, child))
    p.start()
    dead_owner, dead_token = parent.recv()
    other = LeaseManager(r, ks, "larry-02")
    assert other.acquire("t").status == "conflict", "the live holder's lease must exclude others"
    os.kill(p.pid, signal.SIGKILL)
    p.join()

    board = TaskBoard(r, ks)
    board.define("larry-01", {"t": []})
    deadline = time.monotonic() + 5

    def orphaned() -> bool:  # still in progress, its lease gone
        return r.get(ks.task_status("t")) == "in_progress" and not r.exists(ks.task_lock("t"))

    while not orphaned() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert orphaned(), "the dead holder's lease did not expire"
    new = _acquire_until(other, "t", timeout=5)
    assert new.token > dead_token and not orphaned()
    # The dead holder's write arrives late (e.g. from a request still in flight).
    late = LeaseManager(r, ks, "larry-01").complete(Lease("t", dead_owner, dead_token, 1500, 0.0), {"late": True})
    assert late.status == "stale"
    assert other.complete(new, {"ok": True}).status == "accepted"


def holder_that_gets_paused(url, prefix, conn):
    r = connect(RedisSettings(url=url))
    m = LeaseManager(r, Keyspace(prefix=prefix), "larry-01", ttl_ms=600)
    lease = m.acquire("t").lease
    fired = threading.Event()
    m.keep(lease, lambda l, why: fired.set())
    conn.send(lease.token)
    conn.recv()  # the parent resumes us and says "go": write as if the work just finished
    write = m.complete(lease, {"late": True})
    conn.send((write.status, fired.wait(2), lease.lost_reason))


def test_sigstop_past_ttl_then_sigcont_writes_rejected_and_callback_fired(r, ks, redis_server):
    parent, child = ctx.Pipe()
    p = ctx.Process(target=holder_that_gets_paused, args=(redis_server.url, ks.prefix, child))
    p.start()
    stopped_token = parent.recv()
    os.kill(p.pid, signal.SIGSTOP)
    try:
        other = LeaseManager(r, ks, "larry-02")
        new = _acquire_until(other, "t", timeout=5)  # succeeds only once the frozen holder's TTL ran out
    finally:
        os.kill(p.pid, signal.SIGCONT)
    parent.send("go")
    assert parent.poll(10), "paused holder never reported"
    status, fired, reason = parent.recv()
    p.join(5)
    assert new.token > stopped_token
    assert status == "stale", "a holder that slept through its TTL must not overwrite the new holder"
    assert fired, "the lost-lease callback did not fire"
    assert reason in ("not renewed in time", "stolen")
    assert other.complete(new, {"ok": True}).status == "accepted"


class RecordingManager(LeaseManager):
    """Records when each successful extension was sent: the server-side expiry is at least ttl after it."""

    def extend(self, lease):
        sent = time.monotonic()
        status = super().extend(lease)
        if status == "extended":
            self.last_ok_sent = sent
        return status


def test_callback_fires_before_expiry_when_redis_stops_answering(ks, own_server):
    client = connect(RedisSettings(url=own_server.url, retry_for=10, socket_timeout=10))
    m = RecordingManager(client, ks, "larry-01", ttl_ms=1000)
    lease = m.acquire("t").lease
    m.last_ok_sent = time.monotonic()  # the grant counts as the first "extension"
    fired_at = []
    done = threading.Event()
    # The margin must exceed scheduling delays (this machine may be busy): 0.4 s of the 1 s TTL.
    keeper = m.keep(lease, lambda l, why: (fired_at.append(time.monotonic()), done.set()), margin=0.4)
    time.sleep(0.5)  # at least one renewal succeeds
    own_server.pause()  # renewals now hang inside redis-py's retries
    try:
        assert done.wait(3), "callback never fired while Redis was unreachable"
    finally:
        own_server.resume()
        keeper.stop()
    assert fired_at[0] < m.last_ok_sent + 1.0, "callback fired after the lease could have expired"
    assert lease.lost_reason == "not renewed in time"
