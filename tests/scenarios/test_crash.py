"""Holders that die or freeze: kill -9, SIGSTOP past the TTL, and a Redis that stops answering."""

import os
import signal
import threading
import time

import pytest

from runtime.coordination.connection import RedisSettings, connect
from runtime.coordination.keys import Keyspace
from runtime.coordination.leases import Lease, LeaseManager
from runtime.coordination.tasks import TaskBoard
from tests.support.waiting import Child, wait_for


@pytest.fixture
def children(tmp_path):
    """Start holders with ``children(target, *args)``; none outlives the test."""
    started = []

    def start(target, *args):
        started.append(Child(f"holder-{len(started)}", target, *args, log_dir=tmp_path))
        return started[-1]

    yield start
    for child in started:
        child.stop()


def _acquire_until(manager, task, timeout, what):
    return wait_for(lambda: manager.acquire(task).lease, what, timeout)


def holder_that_gets_killed(conn, url, prefix):
    r = connect(RedisSettings(url=url))
    m = LeaseManager(r, Keyspace(prefix=prefix), "larry-01", ttl_ms=1500)
    lease = m.acquire("t").lease
    m.keep(lease, lambda l, why: None)
    conn.send((lease.owner, lease.token))
    conn.recv()  # never comes: the test kills us (and a dead parent is EOF, which ends us too)


def test_kill_9_holder_task_reacquired_after_expiry_and_late_write_rejected(r, ks, redis_server, children):
    holder = children(holder_that_gets_killed, redis_server.url, ks.prefix)
    dead_owner, dead_token = holder.recv("its lease")
    other = LeaseManager(r, ks, "larry-02")
    assert other.acquire("t").status == "conflict", "the live holder's lease must exclude others"
    os.kill(holder.pid, signal.SIGKILL)
    assert holder.join("die of SIGKILL") == -signal.SIGKILL

    board = TaskBoard(r, ks)
    board.define("larry-01", {"t": []})

    def orphaned() -> bool:  # still in progress, its lease gone
        return r.get(ks.task_status("t")) == "in_progress" and not r.exists(ks.task_lock("t"))

    wait_for(orphaned, "the dead holder's task to show as orphaned (in progress, its lease gone)", timeout=10)
    new = _acquire_until(other, "t", 10, "the dead holder's 1.5 s lease to expire")
    assert new.token > dead_token and not orphaned()
    # The dead holder's write arrives late (e.g. from a request still in flight).
    late = LeaseManager(r, ks, "larry-01").complete(Lease("t", dead_owner, dead_token, 1500, 0.0), {"late": True})
    assert late.status == "stale"
    assert other.complete(new, {"ok": True}).status == "accepted"


def holder_that_gets_paused(conn, url, prefix):
    r = connect(RedisSettings(url=url))
    m = LeaseManager(r, Keyspace(prefix=prefix), "larry-01", ttl_ms=600)
    lease = m.acquire("t").lease
    fired = threading.Event()
    m.keep(lease, lambda l, why: fired.set())
    conn.send(lease.token)
    conn.recv()  # the parent resumes us and says "go": write as if the work just finished
    write = m.complete(lease, {"late": True})
    conn.send((write.status, fired.wait(2), lease.lost_reason))


def test_sigstop_past_ttl_then_sigcont_writes_rejected_and_callback_fired(r, ks, redis_server, children):
    holder = children(holder_that_gets_paused, redis_server.url, ks.prefix)
    stopped_token = holder.recv("its lease")
    os.kill(holder.pid, signal.SIGSTOP)
    try:
        other = LeaseManager(r, ks, "larry-02")
        # succeeds only once the frozen holder's TTL ran out
        new = _acquire_until(other, "t", 10, "the frozen holder's 0.6 s lease to expire")
    finally:
        os.kill(holder.pid, signal.SIGCONT)
    holder.send("go")
    status, fired, reason = holder.recv("the resumed holder's late write")
    assert holder.join("exit after its late write") == 0
    assert new.token > stopped_token
    assert status == "stale", "a holder that slept through its TTL must not overwrite the new holder"
    assert fired, "the lost-lease callback did not fire"
    assert reason in ("not renewed in time", "stolen")
    assert other.complete(new, {"ok": True}).status == "accepted"


class RecordingManager(LeaseManager):
    """Records when each successful extension was sent: the server-side expiry is at least ttl after it."""

    extensions = 0

    def extend(self, lease):
        sent = time.monotonic()
        status = super().extend(lease)
        if status == "extended":
            self.last_ok_sent = sent
            self.extensions += 1
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
    wait_for(lambda: m.extensions >= 1, "a first renewal of the 1 s lease", timeout=10)
    own_server.pause()  # renewals now hang inside redis-py's retries
    try:
        assert done.wait(3), "callback never fired while Redis was unreachable"
    finally:
        own_server.resume()
        keeper.stop()
    assert fired_at[0] < m.last_ok_sent + 1.0, "callback fired after the lease could have expired"
    assert lease.lost_reason == "not renewed in time"
